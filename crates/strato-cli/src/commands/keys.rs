//! Key pairs and access keys.

use strato_proto::v1::{
    CreateAccessKeyRequest, CreateKeyPairRequest, DeleteAccessKeyRequest, DeleteKeyPairRequest,
    DescribeAccessKeysRequest, DescribeKeyPairsRequest, ImportKeyPairRequest,
};

use crate::args::keys::{
    CreateAccessKey, CreateKeyPair, DeleteAccessKey, DeleteKeyPair, DescribeAccessKeys,
    DescribeKeyPairs, ImportKeyPair,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{ControlView, View};
use crate::parse::{flatten, tags_for};

/// `create-key-pair`
pub async fn create_key_pair(conn: &Conn, a: CreateKeyPair) -> Result<View, CliError> {
    let tags =
        tags_for("key-pair", flatten(a.tag_specifications), Vec::new()).map_err(CliError::Usage)?;
    let request = CreateKeyPairRequest {
        key_name: a.key_name,
        key_type: a.key_type.unwrap_or_default(),
        tags,
    };
    let response = conn
        .key_pairs()
        .create_key_pair(request)
        .await
        .map_err(conn.error("CreateKeyPair"))?;
    Ok(View::Control(ControlView::KeyPairCreated(
        response.into_inner(),
    )))
}

/// `import-key-pair`
pub async fn import_key_pair(conn: &Conn, a: ImportKeyPair) -> Result<View, CliError> {
    let tags =
        tags_for("key-pair", flatten(a.tag_specifications), Vec::new()).map_err(CliError::Usage)?;
    let request = ImportKeyPairRequest {
        key_name: a.key_name,
        public_key_material: a.public_key_material.0,
        tags,
    };
    let response = conn
        .key_pairs()
        .import_key_pair(request)
        .await
        .map_err(conn.error("ImportKeyPair"))?;
    Ok(View::Control(ControlView::KeyPairImported(
        response.into_inner(),
    )))
}

/// `describe-key-pairs`
pub async fn describe_key_pairs(conn: &Conn, a: DescribeKeyPairs) -> Result<View, CliError> {
    let request = DescribeKeyPairsRequest {
        key_names: a.key_names,
        key_pair_ids: a.key_pair_ids,
        filters: flatten(a.filters),
        include_public_key: a.include_public_key,
    };
    let response = conn
        .key_pairs()
        .describe_key_pairs(request)
        .await
        .map_err(conn.error("DescribeKeyPairs"))?;
    Ok(View::Control(ControlView::KeyPairs(
        response.into_inner().key_pairs,
    )))
}

/// `delete-key-pair`
pub async fn delete_key_pair(conn: &Conn, a: DeleteKeyPair) -> Result<View, CliError> {
    let request = DeleteKeyPairRequest {
        key_name: a.key_name.unwrap_or_default(),
        key_pair_id: a.key_pair_id.unwrap_or_default(),
    };
    let response = conn
        .key_pairs()
        .delete_key_pair(request)
        .await
        .map_err(conn.error("DeleteKeyPair"))?;
    Ok(View::Control(ControlView::KeyPairDeleted(
        response.into_inner(),
    )))
}

/// `create-access-key`
pub async fn create_access_key(conn: &Conn, a: CreateAccessKey) -> Result<View, CliError> {
    let request = CreateAccessKeyRequest {
        account_id: a.account_id.unwrap_or_default(),
    };
    let response = conn
        .access_keys()
        .create_access_key(request)
        .await
        .map_err(conn.error("CreateAccessKey"))?;
    Ok(View::Control(ControlView::AccessKeyCreated(
        response.into_inner(),
    )))
}

/// `describe-access-keys`
pub async fn describe_access_keys(conn: &Conn, a: DescribeAccessKeys) -> Result<View, CliError> {
    let request = DescribeAccessKeysRequest {
        account_id: a.account_id.unwrap_or_default(),
        all: a.all,
    };
    let response = conn
        .access_keys()
        .describe_access_keys(request)
        .await
        .map_err(conn.error("DescribeAccessKeys"))?;
    Ok(View::Control(ControlView::AccessKeys(
        response.into_inner().access_keys,
    )))
}

/// `delete-access-key`
pub async fn delete_access_key(conn: &Conn, a: DeleteAccessKey) -> Result<View, CliError> {
    let request = DeleteAccessKeyRequest {
        access_key_id: a.access_key_id,
    };
    conn.access_keys()
        .delete_access_key(request)
        .await
        .map_err(conn.error("DeleteAccessKey"))?;
    Ok(View::Control(ControlView::Nothing))
}
