//! VPCs and subnets.

use super::super::value::Value;
use super::super::Ctx;
use super::{filters, page, tag_list, tags_for};
use crate::cloud::network::ipv6::AssociateVpcCidr;
use crate::cloud::network::vpcs::SubnetView;
use crate::db::ipv6::{SubnetIpv6Block, VpcIpv6Block};
use crate::db::network::Vpc;
use crate::error::ApiResult;

fn vpc_block(b: VpcIpv6Block, state: &str, region: &str) -> Value {
    Value::obj([
        ("AssociationId", b.association_id.into()),
        ("Ipv6CidrBlock", b.cidr.into()),
        ("Ipv6CidrBlockState", Value::obj([("State", state.into())])),
        ("Ipv6Pool", b.pool.into()),
        ("NetworkBorderGroup", region.into()),
    ])
}

fn subnet_block(b: SubnetIpv6Block, state: &str) -> Value {
    Value::obj([
        ("AssociationId", b.association_id.into()),
        ("Ipv6CidrBlock", b.cidr.into()),
        ("Ipv6CidrBlockState", Value::obj([("State", state.into())])),
    ])
}

fn vpc(ctx: &Ctx<'_>, v: Vpc, owner: String) -> ApiResult<Value> {
    let v6 = ctx.cloud.vpc_ipv6(&v.id)?;
    let region = ctx.cloud.cfg.region.clone();
    Ok(Value::obj([
        (
            "Ipv6CidrBlockAssociationSet",
            Value::list(v6.into_iter().map(|b| vpc_block(b, "associated", &region))),
        ),
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
    ]))
}

fn subnet(v: SubnetView) -> Value {
    let SubnetView {
        subnet: s,
        available,
        owner,
        map_public_ip_on_launch: map_public,
        zone_id,
        ipv6,
        assign_ipv6_on_creation,
    } = v;
    Value::obj([
        (
            "Ipv6CidrBlockAssociationSet",
            Value::list(ipv6.into_iter().map(|b| subnet_block(b, "associated"))),
        ),
        (
            "AssignIpv6AddressOnCreation",
            assign_ipv6_on_creation.into(),
        ),
        ("Ipv6Native", false.into()),
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
        .create_vpc_regional(
            ctx.account(),
            input.str("CidrBlock"),
            tags_for(input, "vpc"),
        )
        .await?;
    Ok(Value::obj([(
        "Vpc",
        vpc(ctx, v, ctx.account().to_string())?,
    )]))
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
            Value::List(
                list.into_iter()
                    .map(|(v, o)| vpc(ctx, v, o))
                    .collect::<ApiResult<Vec<_>>>()?,
            ),
        ),
        ("NextToken", next),
    ]))
}

/// DeleteVpc.
pub async fn delete_vpc(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .delete_vpc_regional(ctx.account(), input.str("VpcId"))
        .await?;
    Ok(Value::obj([]))
}

/// CreateSubnet.
pub async fn create_subnet(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let s = ctx
        .cloud
        .create_subnet_regional(
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
        .delete_subnet_regional(ctx.account(), input.str("SubnetId"))
        .await?;
    Ok(Value::obj([]))
}

/// ModifySubnetAttribute (MapPublicIpOnLaunch).
pub fn modify_subnet_attribute(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let map = input
        .get("MapPublicIpOnLaunch")
        .and_then(|v| v.bool("Value"));
    let v6 = input
        .get("AssignIpv6AddressOnCreation")
        .and_then(|v| v.bool("Value"));
    ctx.cloud
        .modify_subnet_attribute(ctx.account(), input.str("SubnetId"), map, v6)?;
    Ok(Value::obj([]))
}

/// AssociateVpcCidrBlock (IPv6 only).
pub fn associate_vpc_cidr_block(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let ask = AssociateVpcCidr {
        vpc_id: input.str("VpcId").to_string(),
        amazon_provided: input.bool("AmazonProvidedIpv6CidrBlock") == Some(true),
        ipv6_cidr_block: input.str("Ipv6CidrBlock").to_string(),
        ipv6_pool: input.str("Ipv6Pool").to_string(),
        cidr_block: input.str("CidrBlock").to_string(),
    };
    let b = ctx.cloud.associate_vpc_cidr_block(ctx.account(), &ask)?;
    Ok(Value::obj([
        ("VpcId", b.vpc_id.clone().into()),
        (
            "Ipv6CidrBlockAssociation",
            vpc_block(b, "associated", &ctx.cloud.cfg.region),
        ),
    ]))
}

/// DisassociateVpcCidrBlock.
pub fn disassociate_vpc_cidr_block(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let b = ctx
        .cloud
        .disassociate_vpc_cidr_block(ctx.account(), input.str("AssociationId"))?;
    Ok(Value::obj([
        ("VpcId", b.vpc_id.clone().into()),
        (
            "Ipv6CidrBlockAssociation",
            vpc_block(b, "disassociated", &ctx.cloud.cfg.region),
        ),
    ]))
}

/// AssociateSubnetCidrBlock.
pub async fn associate_subnet_cidr_block(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let b = ctx
        .cloud
        .associate_subnet_cidr_block(
            ctx.account(),
            input.str("SubnetId"),
            input.str("Ipv6CidrBlock"),
        )
        .await?;
    Ok(Value::obj([
        ("SubnetId", b.subnet_id.clone().into()),
        ("Ipv6CidrBlockAssociation", subnet_block(b, "associated")),
    ]))
}

/// DisassociateSubnetCidrBlock.
pub async fn disassociate_subnet_cidr_block(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let b = ctx
        .cloud
        .disassociate_subnet_cidr_block(ctx.account(), input.str("AssociationId"))
        .await?;
    Ok(Value::obj([
        ("SubnetId", b.subnet_id.clone().into()),
        ("Ipv6CidrBlockAssociation", subnet_block(b, "disassociated")),
    ]))
}

/// AssignIpv6Addresses.
pub async fn assign_ipv6_addresses(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let eni = input.str("NetworkInterfaceId");
    let count = i32::try_from(input.int("Ipv6AddressCount").unwrap_or(0))
        .map_err(|_| crate::error::ApiError::invalid("Ipv6AddressCount is out of range."))?;
    let added = ctx
        .cloud
        .assign_ipv6_addresses_routed(
            ctx.account(),
            eni,
            &input.strs("Ipv6Addresses"),
            count,
            crate::cluster::route::Origin::Caller,
        )
        .await?;
    Ok(Value::obj([
        ("NetworkInterfaceId", eni.into()),
        (
            "AssignedIpv6Addresses",
            Value::list(added.into_iter().map(Value::from)),
        ),
    ]))
}

/// UnassignIpv6Addresses.
pub async fn unassign_ipv6_addresses(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let eni = input.str("NetworkInterfaceId");
    let gone = ctx
        .cloud
        .unassign_ipv6_addresses_routed(
            ctx.account(),
            eni,
            &input.strs("Ipv6Addresses"),
            crate::cluster::route::Origin::Caller,
        )
        .await?;
    Ok(Value::obj([
        ("NetworkInterfaceId", eni.into()),
        (
            "UnassignedIpv6Addresses",
            Value::list(gone.into_iter().map(Value::from)),
        ),
    ]))
}
