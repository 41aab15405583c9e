//! Key pairs.

use super::super::value::{nonempty, Value};
use super::super::Ctx;
use super::{filters, tag_list, tags_for};
use crate::error::{ApiError, ApiResult};

/// CreateKeyPair.
pub async fn create(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    if !matches!(input.str("KeyFormat"), "" | "pem") {
        return Err(ApiError::invalid(
            "KeyFormat: strato returns keys in PEM (rsa) or the OpenSSH format (ed25519).",
        ));
    }
    let (k, material) = ctx
        .cloud
        .create_key_pair_regional(
            ctx.account(),
            input.str("KeyName"),
            input.str("KeyType"),
            tags_for(input, "key-pair"),
        )
        .await?;
    Ok(Value::obj([
        ("KeyName", k.name.into()),
        ("KeyFingerprint", k.fingerprint.into()),
        ("KeyMaterial", material.into()),
        ("KeyPairId", k.id.into()),
        ("Tags", tag_list(&k.tags)),
    ]))
}

/// ImportKeyPair.
pub async fn import(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let k = ctx
        .cloud
        .import_key_pair_regional(
            ctx.account(),
            input.str("KeyName"),
            input.blob("PublicKeyMaterial").unwrap_or_default(),
            tags_for(input, "key-pair"),
        )
        .await?;
    Ok(Value::obj([
        ("KeyName", k.name.into()),
        ("KeyFingerprint", k.fingerprint.into()),
        ("KeyPairId", k.id.into()),
        ("Tags", tag_list(&k.tags)),
    ]))
}

/// DescribeKeyPairs.
pub fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = ctx.cloud.describe_key_pairs(
        ctx.account(),
        &input.strs("KeyNames"),
        &input.strs("KeyPairIds"),
        &filters(input),
    )?;
    let public = input.bool("IncludePublicKey").unwrap_or(false);
    Ok(Value::obj([(
        "KeyPairs",
        Value::list(list.into_iter().map(|k| {
            Value::obj([
                ("KeyPairId", k.id.into()),
                ("KeyName", k.name.into()),
                ("KeyFingerprint", k.fingerprint.into()),
                ("KeyType", k.key_type.into()),
                ("Tags", tag_list(&k.tags)),
                ("CreateTime", Value::Time(k.created)),
                (
                    "PublicKey",
                    if public {
                        nonempty(&k.public_key)
                    } else {
                        Value::Null
                    },
                ),
            ])
        })),
    )]))
}

/// DeleteKeyPair.
pub async fn delete(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let id = ctx
        .cloud
        .delete_key_pair_regional(ctx.account(), input.str("KeyName"), input.str("KeyPairId"))
        .await?;
    Ok(Value::obj([
        ("Return", true.into()),
        ("KeyPairId", id.into()),
    ]))
}
