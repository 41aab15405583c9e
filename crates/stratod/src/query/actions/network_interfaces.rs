//! Elastic network interfaces and their private addresses.

use strato_proto::v1 as pb;

use super::super::value::Value;
use super::super::Ctx;
use super::{filters, page, tag_list, tags_for};
use crate::api::convert;
use crate::api::network_interfaces::eni_message;
use crate::cloud::network::network_interfaces::{CreateEni, EniAttribute};
use crate::cluster::interfaces::Described;
use crate::cluster::route::Origin;
use crate::cluster::volumes::Answer;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// An interface as DescribeNetworkInterfaces shows it, described here or by its host: the
/// instance shape of it (`shapes::eni`) with the members only this call shows.
fn eni(ctx: &Ctx<'_>, d: Described) -> ApiResult<Value> {
    let (e, names) = match d {
        Answer::Here(v) => {
            let names = ctx.cloud.eni_group_names(&v.eni.id)?;
            (eni_message(v), names)
        }
        Answer::There(e) => {
            let names = ctx.cloud.group_names(&e.group_ids)?;
            (e, names)
        }
    };
    let groups: Vec<pb::GroupIdentifier> = names
        .into_iter()
        .map(|(group_id, group_name)| pb::GroupIdentifier {
            group_id,
            group_name,
        })
        .collect();
    let mut v = super::shapes::eni(&e, &groups);
    if let (Value::Struct(m), Some(a)) = (&mut v, &e.attachment) {
        if let Some(att) = m.remove("Attachment") {
            let att = att.with([
                ("InstanceId", (&a.instance_id).into()),
                ("InstanceOwnerId", (&a.instance_owner_id).into()),
            ]);
            m.insert("Attachment".into(), att);
        }
    }
    Ok(v.with([
        ("AvailabilityZone", (&e.availability_zone).into()),
        ("RequesterManaged", false.into()),
        ("TagSet", tag_list(&convert::tags_in(&e.tags))),
    ]))
}

/// CreateNetworkInterface.
pub async fn create(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    if !matches!(input.str("InterfaceType"), "" | "interface") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "Only InterfaceType interface is supported by strato.",
        ));
    }
    // EC2's list form names the primary address too; the domain takes it apart.
    let mut private_ip = input.str("PrivateIpAddress").to_string();
    let mut secondary = Vec::new();
    for a in input.items("PrivateIpAddresses") {
        let ip = a.str("PrivateIpAddress").to_string();
        if a.bool("Primary") == Some(true) {
            if !private_ip.is_empty() && private_ip != ip {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterCombination,
                    "PrivateIpAddress and a different primary in PrivateIpAddresses cannot be given together.",
                ));
            }
            private_ip = ip;
        } else {
            secondary.push(ip);
        }
    }
    let create = CreateEni {
        subnet_id: input.str("SubnetId").to_string(),
        private_ip,
        description: input.str("Description").to_string(),
        groups: input.strs("Groups"),
        secondary_count: i32::try_from(input.int("SecondaryPrivateIpAddressCount").unwrap_or(0))
            .map_err(|_| ApiError::invalid("SecondaryPrivateIpAddressCount is out of range."))?,
        secondary_ips: secondary,
        tags: tags_for(input, "network-interface"),
        ipv6_count: input
            .int("Ipv6AddressCount")
            .map(|n| {
                i32::try_from(n).map_err(|_| ApiError::invalid("Ipv6AddressCount is out of range."))
            })
            .transpose()?,
        ipv6_addresses: input
            .items("Ipv6Addresses")
            .iter()
            .map(|a| a.str("Ipv6Address").to_string())
            .collect(),
    };
    let v = ctx
        .cloud
        .create_network_interface_indexed(ctx.account(), create)
        .await?;
    Ok(Value::obj([(
        "NetworkInterface",
        eni(ctx, Answer::Here(v))?,
    )]))
}

/// DescribeNetworkInterfaces.
pub async fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = ctx
        .cloud
        .describe_network_interfaces_routed(
            ctx.account(),
            &input.strs("NetworkInterfaceIds"),
            &filters(input),
            Origin::Caller,
        )
        .await?;
    let (list, next) = page(list, input)?;
    let items = list
        .into_iter()
        .map(|v| eni(ctx, v))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Value::obj([
        ("NetworkInterfaces", Value::List(items)),
        ("NextToken", next),
    ]))
}

/// AttachNetworkInterface.
pub async fn attach(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    if input.int("NetworkCardIndex").is_some_and(|n| n != 0) {
        return Err(ApiError::invalid(
            "strato instances have one network card (index 0).",
        ));
    }
    let index = input
        .int("DeviceIndex")
        .map(i32::try_from)
        .transpose()
        .map_err(|_| ApiError::invalid("DeviceIndex is out of range."))?;
    let attachment = ctx
        .cloud
        .attach_network_interface_routed(
            ctx.account(),
            input.str("NetworkInterfaceId"),
            input.str("InstanceId"),
            index,
            Origin::Caller,
        )
        .await?;
    Ok(Value::obj([
        ("AttachmentId", attachment.into()),
        ("NetworkCardIndex", 0i64.into()),
    ]))
}

/// DetachNetworkInterface.
pub async fn detach(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .detach_network_interface_routed(ctx.account(), input.str("AttachmentId"), Origin::Caller)
        .await?;
    Ok(Value::obj([]))
}

/// DeleteNetworkInterface.
pub async fn delete(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .delete_network_interface_routed(
            ctx.account(),
            input.str("NetworkInterfaceId"),
            Origin::Caller,
        )
        .await?;
    Ok(Value::obj([]))
}

/// AssignPrivateIpAddresses.
pub async fn assign_private_ips(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    if input.bool("AllowReassignment") == Some(true) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "AllowReassignment is not supported by strato: unassign the address first.",
        ));
    }
    let id = input.str("NetworkInterfaceId");
    let added = ctx
        .cloud
        .assign_private_ips_routed(
            ctx.account(),
            id,
            &input.strs("PrivateIpAddresses"),
            i32::try_from(input.int("SecondaryPrivateIpAddressCount").unwrap_or(0)).map_err(
                |_| ApiError::invalid("SecondaryPrivateIpAddressCount is out of range."),
            )?,
            Origin::Caller,
        )
        .await?;
    Ok(Value::obj([
        ("NetworkInterfaceId", id.into()),
        (
            "AssignedPrivateIpAddresses",
            Value::list(
                added
                    .into_iter()
                    .map(|ip| Value::obj([("PrivateIpAddress", ip.into())])),
            ),
        ),
    ]))
}

/// UnassignPrivateIpAddresses.
pub async fn unassign_private_ips(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .unassign_private_ips_routed(
            ctx.account(),
            input.str("NetworkInterfaceId"),
            &input.strs("PrivateIpAddresses"),
            Origin::Caller,
        )
        .await?;
    Ok(Value::obj([]))
}

/// ModifyNetworkInterfaceAttribute.
pub async fn modify_attribute(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    for m in [
        "AssociatePublicIpAddress",
        "AssociatedSubnetIds",
        "ConnectionTrackingSpecification",
        "EnaSrdSpecification",
    ] {
        if input.get(m).is_some() {
            return Err(ApiError::new(
                ErrorCode::UnsupportedOperation,
                format!("{m} is not supported by strato."),
            ));
        }
    }
    let change = EniAttribute {
        description: input.get("Description").map(|d| d.str("Value").to_string()),
        source_dest_check: input.get("SourceDestCheck").and_then(|v| v.bool("Value")),
        attachment: input.get("Attachment").map(|a| {
            (
                a.str("AttachmentId").to_string(),
                a.bool("DeleteOnTermination").unwrap_or(false),
            )
        }),
        groups: input.strs("Groups"),
    };
    ctx.cloud
        .modify_network_interface_attribute_routed(
            ctx.account(),
            input.str("NetworkInterfaceId"),
            &change,
            Origin::Caller,
        )
        .await?;
    Ok(Value::obj([]))
}
