//! The KeyPairs service.

use strato_proto::v1 as pb;
use strato_proto::v1::key_pairs_server::KeyPairs;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;

#[tonic::async_trait]
impl KeyPairs for Api {
    async fn create_key_pair(
        &self,
        req: Request<pb::CreateKeyPairRequest>,
    ) -> Result<Response<pb::CreateKeyPairResponse>, Status> {
        self.handle_async("CreateKeyPair", req, |account, r| async move {
            self.cloud
                .create_key_pair_regional(
                    &account,
                    &r.key_name,
                    &r.key_type,
                    convert::tags_in(&r.tags),
                )
                .await
                .map(|(k, private_key)| pb::CreateKeyPairResponse {
                    tags: convert::tags(&k.tags),
                    key_name: k.name,
                    key_fingerprint: k.fingerprint,
                    key_material: private_key,
                    key_pair_id: k.id,
                })
        })
        .await
    }

    async fn import_key_pair(
        &self,
        req: Request<pb::ImportKeyPairRequest>,
    ) -> Result<Response<pb::ImportKeyPairResponse>, Status> {
        self.handle_async("ImportKeyPair", req, |account, r| async move {
            self.cloud
                .import_key_pair_regional(
                    &account,
                    &r.key_name,
                    &r.public_key_material,
                    convert::tags_in(&r.tags),
                )
                .await
                .map(|k| pb::ImportKeyPairResponse {
                    tags: convert::tags(&k.tags),
                    key_name: k.name,
                    key_fingerprint: k.fingerprint,
                    key_pair_id: k.id,
                })
        })
        .await
    }

    async fn describe_key_pairs(
        &self,
        req: Request<pb::DescribeKeyPairsRequest>,
    ) -> Result<Response<pb::DescribeKeyPairsResponse>, Status> {
        self.handle("DescribeKeyPairs", req, |account, r| {
            self.cloud
                .describe_key_pairs(
                    account,
                    &r.key_names,
                    &r.key_pair_ids,
                    &convert::filters(&r.filters),
                )
                .map(|pairs| pb::DescribeKeyPairsResponse {
                    key_pairs: pairs
                        .into_iter()
                        .map(|k| pb::KeyPairInfo {
                            tags: convert::tags(&k.tags),
                            key_pair_id: k.id,
                            key_name: k.name,
                            key_fingerprint: k.fingerprint,
                            key_type: k.key_type,
                            create_time_unix: k.created,
                            public_key: if r.include_public_key {
                                k.public_key
                            } else {
                                String::new()
                            },
                        })
                        .collect(),
                })
        })
    }

    async fn delete_key_pair(
        &self,
        req: Request<pb::DeleteKeyPairRequest>,
    ) -> Result<Response<pb::DeleteKeyPairResponse>, Status> {
        self.handle_async("DeleteKeyPair", req, |account, r| async move {
            self.cloud
                .delete_key_pair_regional(&account, &r.key_name, &r.key_pair_id)
                .await
                .map(|id| pb::DeleteKeyPairResponse {
                    success: true,
                    key_pair_id: id.unwrap_or_default(),
                })
        })
        .await
    }
}
