//! CreateTags, DeleteTags, DescribeTags.

use super::super::value::nonempty;
use super::super::value::Value;
use super::super::Ctx;
use super::{filters, page_request, tags_in};
use crate::cloud::tags::TagKey;
use crate::cluster::route::Origin;
use crate::error::ApiResult;

/// CreateTags, each resource tagged on its host in a region of hosts.
pub async fn create(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .create_tags_routed(
            ctx.account(),
            &input.strs("Resources"),
            &tags_in(input.items("Tags")),
            Origin::Caller,
        )
        .await?;
    Ok(Value::obj([]))
}

/// DeleteTags: a tag given without a value goes whatever its value; with one (even
/// empty), only with that value.
pub async fn delete(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let keys: Vec<TagKey> = input
        .items("Tags")
        .iter()
        .map(|t| TagKey {
            key: t.str("Key").to_string(),
            value: t.opt_str("Value").map(str::to_string),
        })
        .collect();
    ctx.cloud
        .delete_tags_routed(
            ctx.account(),
            &input.strs("Resources"),
            &keys,
            Origin::Caller,
        )
        .await?;
    Ok(Value::obj([]))
}

/// DescribeTags (of the region's instances, volumes and snapshots too).
pub async fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let p = ctx
        .cloud
        .describe_tags_routed(
            ctx.account(),
            &filters(input),
            &page_request(input)?,
            Origin::Caller,
        )
        .await?;
    let (list, next) = (p.items, nonempty(&p.next_token));
    Ok(Value::obj([
        (
            "Tags",
            Value::list(list.into_iter().map(|d| {
                Value::obj([
                    ("ResourceId", d.resource_id.into()),
                    ("ResourceType", d.resource_type.into()),
                    ("Key", d.tag.key.into()),
                    ("Value", d.tag.value.into()),
                ])
            })),
        ),
        ("NextToken", next),
    ]))
}
