//! Elastic network interfaces and their private addresses.

use super::super::value::Value;
use super::super::Ctx;
use super::{filters, page, tag_list, tags_for};
use crate::cloud::network::dns::name_in;
use crate::cloud::network::network_interfaces::{CreateEni, EniAttribute, EniView};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// An interface as DescribeNetworkInterfaces shows it.
fn eni(ctx: &Ctx<'_>, v: EniView) -> ApiResult<Value> {
    let names = ctx.cloud.eni_group_names(&v.eni.id)?;
    let status = v.status();
    let dns = |ip: &str| name_in(ip, &v.dns_domain);
    let e = v.eni;
    let mut ips = vec![Value::obj([
        ("PrivateIpAddress", (&e.private_ip).into()),
        ("PrivateDnsName", dns(&e.private_ip).into()),
        ("Primary", true.into()),
    ])];
    ips.extend(v.secondary.iter().map(|ip| {
        Value::obj([
            ("PrivateIpAddress", ip.into()),
            ("PrivateDnsName", dns(ip).into()),
            ("Primary", false.into()),
        ])
    }));
    let attachment = match (&e.attachment_id, &e.instance_id) {
        (Some(att), Some(inst)) => Value::obj([
            ("AttachmentId", att.into()),
            ("InstanceId", inst.into()),
            ("InstanceOwnerId", (&e.owner).into()),
            ("DeviceIndex", e.device_index.into()),
            ("NetworkCardIndex", 0i64.into()),
            ("Status", "attached".into()),
            ("AttachTime", Value::Time(e.attach_time.unwrap_or(0))),
            ("DeleteOnTermination", e.delete_on_termination.into()),
        ]),
        _ => Value::Null,
    };
    Ok(Value::obj([
        ("NetworkInterfaceId", (&e.id).into()),
        ("SubnetId", (&e.subnet_id).into()),
        ("VpcId", (&v.subnet.vpc_id).into()),
        ("AvailabilityZone", (&v.subnet.az).into()),
        ("Description", (&e.description).into()),
        ("OwnerId", (&e.owner).into()),
        ("RequesterManaged", false.into()),
        ("Status", status.into()),
        ("MacAddress", (&e.mac).into()),
        ("PrivateIpAddress", (&e.private_ip).into()),
        ("PrivateDnsName", dns(&e.private_ip).into()),
        ("PrivateIpAddresses", Value::List(ips)),
        ("Ipv6Addresses", ipv6_addresses(&v.ipv6)),
        ("SourceDestCheck", e.source_dest_check.into()),
        ("InterfaceType", "interface".into()),
        ("Attachment", attachment),
        (
            "Groups",
            Value::list(v.groups.iter().map(|g| {
                let name = names.iter().find(|(id, _)| id == g).map(|(_, n)| n.clone());
                Value::obj([("GroupId", g.into()), ("GroupName", name.into())])
            })),
        ),
        ("TagSet", tag_list(&e.tags)),
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
        .create_network_interface(ctx.account(), create)
        .await?;
    Ok(Value::obj([("NetworkInterface", eni(ctx, v)?)]))
}

/// DescribeNetworkInterfaces.
pub fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let list = ctx.cloud.describe_network_interfaces(
        ctx.account(),
        &input.strs("NetworkInterfaceIds"),
        &filters(input),
    )?;
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
pub fn attach(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
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
    let attachment = ctx.cloud.attach_network_interface(
        ctx.account(),
        input.str("NetworkInterfaceId"),
        input.str("InstanceId"),
        index,
    )?;
    Ok(Value::obj([
        ("AttachmentId", attachment.into()),
        ("NetworkCardIndex", 0i64.into()),
    ]))
}

/// DetachNetworkInterface.
pub async fn detach(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .detach_network_interface(ctx.account(), input.str("AttachmentId"))
        .await?;
    Ok(Value::obj([]))
}

/// DeleteNetworkInterface.
pub async fn delete(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .delete_network_interface(ctx.account(), input.str("NetworkInterfaceId"))
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
        .assign_private_ips(
            ctx.account(),
            id,
            &input.strs("PrivateIpAddresses"),
            i32::try_from(input.int("SecondaryPrivateIpAddressCount").unwrap_or(0)).map_err(
                |_| ApiError::invalid("SecondaryPrivateIpAddressCount is out of range."),
            )?,
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
        .unassign_private_ips(
            ctx.account(),
            input.str("NetworkInterfaceId"),
            &input.strs("PrivateIpAddresses"),
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
        .modify_network_interface_attribute(ctx.account(), input.str("NetworkInterfaceId"), &change)
        .await?;
    Ok(Value::obj([]))
}

/// An interface's IPv6 addresses, as both of EC2's interface shapes list them.
pub(super) fn ipv6_addresses(addresses: &[String]) -> Value {
    Value::list(
        addresses
            .iter()
            .map(|a| Value::obj([("Ipv6Address", a.into()), ("IsPrimaryIpv6", false.into())])),
    )
}
