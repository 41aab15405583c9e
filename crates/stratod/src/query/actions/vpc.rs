//! VPCs and subnets.

use super::super::value::Value;
use super::super::Ctx;
use super::{filters, page, tag_list, tags_for};
use crate::cloud::network::vpcs::SubnetView;
use crate::db::network::Vpc;
use crate::error::ApiResult;

fn vpc(v: Vpc, owner: String) -> Value {
    Value::obj([
        ("VpcId", v.id.into()),
        ("CidrBlock", v.cidr.clone().into()),
        (
            "CidrBlockAssociationSet",
            Value::list([Value::obj([
                ("CidrBlock", v.cidr.into()),
                (
                    "CidrBlockState",
                    Value::obj([("State", "associated".into())]),
                ),
            ])]),
        ),
        ("State", v.state.into()),
        ("IsDefault", v.is_default.into()),
        ("OwnerId", owner.into()),
        ("InstanceTenancy", "default".into()),
        ("Tags", tag_list(&v.tags)),
    ])
}

fn subnet(v: SubnetView) -> Value {
    let SubnetView {
        subnet: s,
        available,
        owner,
        map_public_ip_on_launch: map_public,
        zone_id,
    } = v;
    Value::obj([
        ("SubnetId", s.id.into()),
        ("VpcId", s.vpc_id.into()),
        ("CidrBlock", s.cidr.into()),
        ("AvailabilityZone", s.az.into()),
        ("AvailabilityZoneId", zone_id.into()),
        (
            "AvailableIpAddressCount",
            Value::Int(available.clamp(0, i64::from(i32::MAX))),
        ),
        ("DefaultForAz", s.is_default.into()),
        ("MapPublicIpOnLaunch", map_public.into()),
        ("State", "available".into()),
        ("OwnerId", owner.into()),
    ])
}

/// CreateVpc.
pub async fn create_vpc(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let v = ctx
        .cloud
        .create_vpc(
            ctx.account(),
            input.str("CidrBlock"),
            tags_for(input, "vpc"),
        )
        .await?;
    Ok(Value::obj([("Vpc", vpc(v, ctx.account().to_string()))]))
}

/// DescribeVpcs.
pub fn describe_vpcs(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = ctx
        .cloud
        .describe_vpcs(ctx.account(), &input.strs("VpcIds"), &filters(input))?;
    let (list, next) = page(list, input)?;
    Ok(Value::obj([
        (
            "Vpcs",
            Value::list(list.into_iter().map(|(v, o)| vpc(v, o))),
        ),
        ("NextToken", next),
    ]))
}

/// DeleteVpc.
pub async fn delete_vpc(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .delete_vpc(ctx.account(), input.str("VpcId"))
        .await?;
    Ok(Value::obj([]))
}

/// CreateSubnet.
pub async fn create_subnet(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let s = ctx
        .cloud
        .create_subnet(
            ctx.account(),
            input.str("VpcId"),
            input.str("CidrBlock"),
            input.str("AvailabilityZone"),
        )
        .await?;
    Ok(Value::obj([("Subnet", subnet(s))]))
}

/// DescribeSubnets.
pub fn describe_subnets(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list =
        ctx.cloud
            .describe_subnets(ctx.account(), &input.strs("SubnetIds"), &filters(input))?;
    let (list, next) = page(list, input)?;
    Ok(Value::obj([
        ("Subnets", Value::list(list.into_iter().map(subnet))),
        ("NextToken", next),
    ]))
}

/// DeleteSubnet.
pub async fn delete_subnet(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .delete_subnet(ctx.account(), input.str("SubnetId"))
        .await?;
    Ok(Value::obj([]))
}

/// ModifySubnetAttribute (MapPublicIpOnLaunch).
pub fn modify_subnet_attribute(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let map = input
        .get("MapPublicIpOnLaunch")
        .and_then(|v| v.bool("Value"));
    ctx.cloud
        .modify_subnet_attribute(ctx.account(), input.str("SubnetId"), map)?;
    Ok(Value::obj([]))
}
