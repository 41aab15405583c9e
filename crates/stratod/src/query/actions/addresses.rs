//! Elastic IPs: allocate, associate, disassociate, release, describe.

use super::super::value::{nonempty, Value};
use super::super::Ctx;
use super::{filters, tag_list, tags_for};
use crate::cloud::network::addresses::POOL_NAME;
use crate::cluster::route::Origin;
use crate::db::addresses::PublicIp;
use crate::error::{ApiError, ApiResult, ErrorCode};

fn address(ctx: &Ctx<'_>, e: PublicIp) -> Value {
    let opt = |o: Option<String>| o.map(Value::from).into();
    Value::obj([
        ("PublicIp", e.public_ip.into()),
        ("AllocationId", opt(e.allocation_id)),
        ("AssociationId", opt(e.association_id)),
        ("Domain", "vpc".into()),
        ("InstanceId", opt(e.instance_id)),
        ("NetworkInterfaceId", opt(e.eni_id)),
        ("NetworkInterfaceOwnerId", opt(e.eni_owner)),
        ("PrivateIpAddress", opt(e.private_ip)),
        ("PublicIpv4Pool", POOL_NAME.into()),
        ("NetworkBorderGroup", ctx.cloud.region().into()),
        ("Tags", tag_list(&e.tags)),
    ])
}

/// The allocation an EC2-Classic style request names by its address (`PublicIp`), which
/// the aws CLI sends for `--public-ip`.
pub(super) fn allocation_of(ctx: &Ctx<'_>, input: &Value, id_member: &str) -> ApiResult<String> {
    let id = input.str(id_member);
    match input.opt_str("PublicIp") {
        Some(ip) if id.is_empty() => {
            let list = ctx
                .cloud
                .describe_addresses(ctx.account(), &[], &[ip.to_string()], &[])?;
            let e = list.into_iter().next().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidAddressNotFound,
                    format!("Address '{ip}' not found."),
                )
            })?;
            Ok(match id_member {
                "AssociationId" => e.association_id.unwrap_or_default(),
                _ => e.allocation_id.unwrap_or_default(),
            })
        }
        Some(_) => Err(ApiError::new(
            ErrorCode::InvalidParameterCombination,
            format!("PublicIp and {id_member} cannot be given together."),
        )),
        None => Ok(id.to_string()),
    }
}

/// AllocateAddress.
pub async fn allocate(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    for m in [
        "Address",
        "PublicIpv4Pool",
        "IpamPoolId",
        "CustomerOwnedIpv4Pool",
    ] {
        if input
            .opt_str(m)
            .is_some_and(|v| !v.is_empty() && v != POOL_NAME)
        {
            return Err(ApiError::new(
                ErrorCode::UnsupportedOperation,
                format!(
                    "{m} is not supported by strato: addresses come from the host's uplink pool."
                ),
            ));
        }
    }
    let a = ctx
        .cloud
        .allocate_address(
            ctx.account(),
            input.str("Domain"),
            tags_for(input, "elastic-ip"),
        )
        .await?;
    Ok(Value::obj([
        ("PublicIp", a.public_ip.into()),
        ("AllocationId", a.allocation_id.into()),
        ("Domain", "vpc".into()),
        ("PublicIpv4Pool", POOL_NAME.into()),
        ("NetworkBorderGroup", ctx.cloud.region().into()),
    ]))
}

/// AssociateAddress.
pub async fn associate(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let allocation = allocation_of(ctx, input, "AllocationId")?;
    let association = ctx
        .cloud
        .associate_address_routed(
            ctx.account(),
            &allocation,
            input.str("InstanceId"),
            input.str("NetworkInterfaceId"),
            input.str("PrivateIpAddress"),
            input.bool("AllowReassociation").unwrap_or(false),
            Origin::Caller,
        )
        .await?;
    Ok(Value::obj([("AssociationId", nonempty(&association))]))
}

/// DisassociateAddress.
pub async fn disassociate(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let association = allocation_of(ctx, input, "AssociationId")?;
    if association.is_empty() {
        return Err(ApiError::missing("AssociationId"));
    }
    ctx.cloud
        .disassociate_address(ctx.account(), &association)
        .await?;
    Ok(Value::obj([]))
}

/// ReleaseAddress.
pub async fn release(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let allocation = allocation_of(ctx, input, "AllocationId")?;
    ctx.cloud
        .release_address(ctx.account(), &allocation)
        .await?;
    Ok(Value::obj([]))
}

/// DescribeAddresses.
pub fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = ctx.cloud.describe_addresses(
        ctx.account(),
        &input.strs("AllocationIds"),
        &input.strs("PublicIps"),
        &filters(input),
    )?;
    Ok(Value::obj([(
        "Addresses",
        Value::list(list.into_iter().map(|e| address(ctx, e))),
    )]))
}
