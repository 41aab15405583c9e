//! RunInstances, DescribeInstances, DescribeInstanceStatus, GetConsoleOutput, the instance
//! attributes (Terraform's aws_instance reads four of them) and metadata options, and
//! DescribeInstanceCreditSpecifications (strato's types have no CPU credits).

use base64::Engine;

use super::super::value::{nonempty, Value};
use super::super::Ctx;
use super::shapes;
use super::{filters, page, page_request, tags_for};
use crate::cloud::compute::describe::{DescribeInstanceStatus, DescribeInstances, InstanceView};
use crate::cloud::compute::instances::InstanceAttributes;
use crate::cloud::compute::launch::{Override, RunRequest, TemplateRef};
use crate::cloud::compute::metadata::MetadataChange;
use crate::cluster::route::{in_request_order, Origin};
use crate::db::images::Mapping;
use crate::error::{ApiError, ApiResult, ErrorCode};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An instance as DescribeInstances and RunInstances show it: in the message form every
/// host's instances take, so that this host's and the region's others render alike.
pub fn instance(v: InstanceView) -> Value {
    shapes::instance(crate::api::compute::instance_message(v))
}

pub(super) fn mapping(m: &Value) -> Override {
    let ebs = m.get("Ebs").cloned().unwrap_or_else(|| Value::obj([]));
    Override {
        mapping: Mapping {
            device_name: m.str("DeviceName").to_string(),
            snapshot_id: ebs.str("SnapshotId").to_string(),
            volume_size: ebs.int("VolumeSize").unwrap_or(0),
            volume_type: ebs.str("VolumeType").to_string(),
            delete_on_termination: ebs.bool("DeleteOnTermination").unwrap_or(false),
            virtual_name: m.str("VirtualName").to_string(),
            no_device: m.get("NoDevice").is_some(),
        },
        delete_on_termination: ebs.bool("DeleteOnTermination"),
    }
}

/// UserData in base64, as EC2 takes it.
pub fn user_data(text: &str) -> ApiResult<Vec<u8>> {
    B64.decode(text.trim())
        .map_err(|_| ApiError::invalid("Invalid BASE64 encoding of user data."))
}

/// RunInstances.
pub async fn run(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let empty = Value::obj([]);
    let placement = input.get("Placement").unwrap_or(&empty);
    let md = input.get("MetadataOptions").unwrap_or(&empty);
    let metadata = MetadataChange::parse(
        md.str("HttpTokens"),
        i32::try_from(md.int("HttpPutResponseHopLimit").unwrap_or(0)).unwrap_or(-1),
        md.str("HttpEndpoint"),
        md.str("InstanceMetadataTags"),
    )?
    .with_protocol_ipv6(md.str("HttpProtocolIpv6"))?;
    let iam_instance_profile = match input.get("IamInstanceProfile") {
        Some(p) => match (p.opt_str("Arn"), p.opt_str("Name")) {
            (Some(arn), _) if !arn.is_empty() => arn.to_string(),
            (_, Some(name)) => name.to_string(),
            _ => return Err(ApiError::missing("IamInstanceProfile.Name")),
        },
        None => String::new(),
    };
    if input.bool("DisableApiStop") == Some(true) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "DisableApiStop (stop protection) is not supported by strato.",
        ));
    }
    // Network interfaces at launch: the primary one's subnet and groups (the domain makes
    // the interface itself).
    let nics = input.items("NetworkInterfaces");
    if nics.len() > 1
        || nics
            .iter()
            .any(|n| n.opt_str("NetworkInterfaceId").is_some())
    {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "RunInstances takes at most one NetworkInterfaces entry, for the new primary interface; attach more with AttachNetworkInterface.",
        ));
    }
    let nic = nics.first();
    let mut subnet_id = input.str("SubnetId").to_string();
    let mut group_ids = input.strs("SecurityGroupIds");
    let mut associate = None;
    let v6 = |v: &Value| -> Vec<String> {
        v.items("Ipv6Addresses")
            .iter()
            .map(|a| a.str("Ipv6Address").to_string())
            .collect()
    };
    let count6 = |v: &Value| -> ApiResult<Option<i32>> {
        v.int("Ipv6AddressCount")
            .map(|n| {
                i32::try_from(n).map_err(|_| ApiError::invalid("Ipv6AddressCount is out of range."))
            })
            .transpose()
    };
    let mut ipv6_addresses = v6(input);
    let mut ipv6_count = count6(input)?;
    if let Some(n) = nic {
        ipv6_addresses.extend(v6(n));
        ipv6_count = ipv6_count.or(count6(n)?);
        if subnet_id.is_empty() {
            subnet_id = n.str("SubnetId").to_string();
        }
        group_ids.extend(n.strs("Groups"));
        associate = n.bool("AssociatePublicIpAddress");
    }
    let template = input.get("LaunchTemplate").map(|t| TemplateRef {
        id: t.str("LaunchTemplateId").to_string(),
        name: t.str("LaunchTemplateName").to_string(),
        version: t.str("Version").to_string(),
    });
    let req = RunRequest {
        image_id: input.str("ImageId").to_string(),
        instance_type: input.str("InstanceType").to_string(),
        min_count: i32::try_from(input.int("MinCount").unwrap_or(1)).unwrap_or(0),
        max_count: i32::try_from(input.int("MaxCount").unwrap_or(1)).unwrap_or(0),
        subnet_id,
        security_group_ids: group_ids,
        security_group_names: input.strs("SecurityGroups"),
        user_data: match input.opt_str("UserData") {
            Some(u) => user_data(u)?,
            None => Vec::new(),
        },
        mappings: input
            .items("BlockDeviceMappings")
            .iter()
            .map(mapping)
            .collect(),
        key_name: input.str("KeyName").to_string(),
        availability_zone: placement.str("AvailabilityZone").to_string(),
        group_name: placement.str("GroupName").to_string(),
        partition_number: i32::try_from(placement.int("PartitionNumber").unwrap_or(0))
            .unwrap_or(-1),
        shutdown_behavior: input.str("InstanceInitiatedShutdownBehavior").to_string(),
        disable_api_termination: input.bool("DisableApiTermination"),
        tags: tags_for(input, "instance"),
        volume_tags: tags_for(input, "volume"),
        client_token: input.str("ClientToken").to_string(),
        launch_template: template,
        metadata,
        associate_public_ip: associate,
        ipv6_count,
        ipv6_addresses,
        // The domain runs every launch check, then answers DryRunOperation.
        dry_run: input.bool("DryRun") == Some(true),
        iam_instance_profile,
        pinned: None,
    };
    // In a region of hosts the launch is placed across the hosts, as gRPC's is.
    let r = ctx.cloud.run_instances_routed(ctx.account(), req).await?;
    Ok(Value::obj([
        ("ReservationId", r.reservation_id.into()),
        ("OwnerId", r.owner_id.into()),
        ("Groups", Value::list(Vec::<Value>::new())),
        (
            "Instances",
            Value::List(r.instances.into_iter().map(shapes::instance).collect()),
        ),
    ]))
}

/// DescribeInstances: one reservation per launch, as EC2 groups them. In a region of
/// hosts, instances named by ID are described by their hosts, and a plain describe covers
/// every available host.
pub async fn describe(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let ids = input.strs("InstanceIds");
    let page = page_request(input)?;
    crate::cloud::paging::check_ids_without_page_size("InstanceIds", &ids, &page)?;
    let p = ctx
        .cloud
        .describe_instances_routed(
            ctx.account(),
            &DescribeInstances {
                instance_ids: ids.clone(),
                filters: filters(input),
                page,
            },
            Origin::Caller,
        )
        .await?;
    let mut items: Vec<(String, String, String, Value)> = p
        .local
        .into_iter()
        .map(|v| {
            let i = &v.instance;
            let key = (i.id.clone(), i.reservation_id.clone(), i.owner.clone());
            (key.0, key.1, key.2, instance(v))
        })
        .collect();
    items.extend(p.remote.into_iter().map(|i| {
        let key = (
            i.instance_id.clone(),
            i.reservation_id.clone(),
            i.owner_id.clone(),
        );
        (key.0, key.1, key.2, shapes::instance(i))
    }));
    let items = in_request_order(&ids, items, |i| i.0.as_str());
    let mut reservations: Vec<(String, String, Vec<Value>)> = Vec::new();
    for (_, rid, owner, item) in items {
        match reservations.iter_mut().find(|r| r.0 == rid) {
            Some(r) => r.2.push(item),
            None => reservations.push((rid, owner, vec![item])),
        }
    }
    Ok(Value::obj([
        (
            "Reservations",
            Value::list(reservations.into_iter().map(|(rid, owner, items)| {
                Value::obj([
                    ("ReservationId", rid.into()),
                    ("OwnerId", owner.into()),
                    ("Groups", Value::list(Vec::<Value>::new())),
                    ("Instances", Value::List(items)),
                ])
            })),
        ),
        ("NextToken", nonempty(&p.next_token)),
    ]))
}

/// DescribeInstanceStatus, routed as DescribeInstances is (a plain one also shows the
/// instances of hosts found down, impaired).
pub async fn describe_status(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let ids = input.strs("InstanceIds");
    let p = ctx
        .cloud
        .describe_instance_status_routed(
            ctx.account(),
            &DescribeInstanceStatus {
                instance_ids: ids.clone(),
                filters: filters(input),
                include_all_instances: input.bool("IncludeAllInstances").unwrap_or(false),
                page: page_request(input)?,
            },
            Origin::Caller,
        )
        .await?;
    let zones = crate::cloud::placement::regions::all_zones(&ctx.cloud.cfg);
    let zone_of = |az: &str| zones.iter().find(|z| z.name == az).map(|z| z.id.clone());
    let items: Vec<(String, Value)> = p
        .local
        .into_iter()
        .map(crate::api::compute::instance_status)
        .chain(p.remote)
        .map(|s| {
            let zone_id = zone_of(&s.availability_zone);
            (s.instance_id.clone(), shapes::status(s, zone_id))
        })
        .collect();
    let items = in_request_order(&ids, items, |i| i.0.as_str());
    Ok(Value::obj([
        (
            "InstanceStatuses",
            Value::list(items.into_iter().map(|(_, v)| v)),
        ),
        ("NextToken", nonempty(&p.next_token)),
    ]))
}

/// GetConsoleOutput: the latest 64 KiB, base64 as EC2 sends it.
pub async fn console(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let c = ctx
        .cloud
        .console_output_routed(ctx.account(), input.str("InstanceId"), Origin::Caller)
        .await?;
    Ok(Value::obj([
        ("InstanceId", c.instance_id.into()),
        ("Timestamp", Value::Time(c.timestamp)),
        ("Output", B64.encode(&c.output).into()),
    ]))
}

fn attr_value(s: &str) -> Value {
    Value::obj([("Value", nonempty(s))])
}

fn attr_bool(b: bool) -> Value {
    Value::obj([("Value", b.into())])
}

/// DescribeInstanceAttribute, of an instance on any host of the region (its host answers,
/// in the message form every host's instances take).
pub async fn describe_attribute(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let attr = input.str("Attribute");
    let id = input.str("InstanceId");
    let i = ctx
        .cloud
        .instance_with_user_data_routed(ctx.account(), id, Origin::Caller)
        .await?;
    let member = match attr {
        "instanceType" => ("InstanceType", attr_value(&i.instance_type)),
        "userData" => (
            "UserData",
            Value::obj([(
                "Value",
                if i.user_data.is_empty() {
                    Value::Null
                } else {
                    B64.encode(&i.user_data).into()
                },
            )]),
        ),
        "disableApiTermination" => (
            "DisableApiTermination",
            attr_bool(i.disable_api_termination),
        ),
        "disableApiStop" => ("DisableApiStop", attr_bool(false)),
        "instanceInitiatedShutdownBehavior" => (
            "InstanceInitiatedShutdownBehavior",
            attr_value(&i.instance_initiated_shutdown_behavior),
        ),
        "rootDeviceName" => ("RootDeviceName", attr_value(&i.root_device_name)),
        "sourceDestCheck" => (
            "SourceDestCheck",
            attr_bool(
                i.network_interfaces
                    .first()
                    .is_none_or(|e| e.source_dest_check),
            ),
        ),
        "ebsOptimized" => ("EbsOptimized", attr_bool(false)),
        "enaSupport" => ("EnaSupport", attr_bool(i.ena_support)),
        "kernel" => ("KernelId", attr_value("")),
        "ramdisk" => ("RamdiskId", attr_value("")),
        "groupSet" => (
            "Groups",
            Value::list(i.security_groups.iter().map(|g| {
                Value::obj([
                    ("GroupId", (&g.group_id).into()),
                    ("GroupName", (&g.group_name).into()),
                ])
            })),
        ),
        "blockDeviceMapping" => (
            "BlockDeviceMappings",
            match shapes::instance(i) {
                Value::Struct(mut m) => m.remove("BlockDeviceMappings").unwrap_or(Value::Null),
                _ => Value::Null,
            },
        ),
        "productCodes" => ("ProductCodes", Value::list(Vec::<Value>::new())),
        other => {
            return Err(ApiError::invalid(format!(
                "Value ({other}) for parameter attribute is invalid. Unknown attribute."
            )))
        }
    };
    Ok(Value::obj([("InstanceId", id.into()), member]))
}

/// ModifyInstanceAttribute: one attribute per call, by its own parameter or by
/// `Attribute` and `Value`.
pub async fn modify_attribute(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let id = input.str("InstanceId");
    let inner_bool = |name: &str| input.get(name).and_then(|v| v.bool("Value"));
    let inner_str = |name: &str| {
        input
            .get(name)
            .and_then(|v| v.opt_str("Value").map(str::to_string))
    };
    let mut change = InstanceAttributes {
        disable_api_termination: inner_bool("DisableApiTermination"),
        shutdown_behavior: inner_str("InstanceInitiatedShutdownBehavior"),
        groups: input.strs("Groups"),
        ena_support: inner_bool("EnaSupport"),
    };
    if let Some(attr) = input.opt_str("Attribute") {
        let value = input.str("Value");
        match attr {
            "disableApiTermination" => {
                change.disable_api_termination = Some(match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "Value ({value}) for disableApiTermination is not a boolean."
                        )))
                    }
                })
            }
            "instanceInitiatedShutdownBehavior" => {
                change.shutdown_behavior = Some(value.to_string())
            }
            "enaSupport" => {
                change.ena_support = Some(match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "Value ({value}) for enaSupport is not a boolean."
                        )))
                    }
                })
            }
            "disableApiStop" if value == "false" => {}
            other => {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedOperation,
                    format!("Modifying the attribute {other} is not supported by strato."),
                ))
            }
        }
    }
    if inner_bool("DisableApiStop") == Some(true) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "DisableApiStop (stop protection) is not supported by strato.",
        ));
    }
    for unsupported in [
        "InstanceType",
        "UserData",
        "Kernel",
        "Ramdisk",
        "SourceDestCheck",
        "EbsOptimized",
        "SriovNetSupport",
        "BlockDeviceMappings",
    ] {
        if input.get(unsupported).is_some() {
            return Err(ApiError::new(
                ErrorCode::UnsupportedOperation,
                format!("Modifying {unsupported} is not supported by strato."),
            ));
        }
    }
    ctx.cloud
        .modify_instance_attribute_routed(ctx.account(), id, &change, Origin::Caller)
        .await?;
    Ok(Value::obj([]))
}

/// ModifyInstanceMetadataOptions.
pub async fn modify_metadata_options(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let c = MetadataChange::parse(
        input.str("HttpTokens"),
        i32::try_from(input.int("HttpPutResponseHopLimit").unwrap_or(0)).unwrap_or(-1),
        input.str("HttpEndpoint"),
        input.str("InstanceMetadataTags"),
    )?
    .with_protocol_ipv6(input.str("HttpProtocolIpv6"))?;
    let o = ctx
        .cloud
        .modify_metadata_options_routed(ctx.account(), input.str("InstanceId"), c, Origin::Caller)
        .await?;
    Ok(Value::obj([
        ("InstanceId", input.str("InstanceId").into()),
        (
            "InstanceMetadataOptions",
            shapes::metadata_options(&crate::api::convert::metadata_options(&o)),
        ),
    ]))
}

/// DescribeInstanceCreditSpecifications: strato's instance types are not burstable, so
/// every instance is `standard` (what EC2 answers for non-burstable types too).
pub fn describe_credit_specifications(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let p = ctx.cloud.describe_instances(
        ctx.account(),
        &DescribeInstances {
            instance_ids: input.strs("InstanceIds"),
            filters: filters(input),
            page: Default::default(),
        },
    )?;
    let (items, next) = page(p.items, input)?;
    Ok(Value::obj([
        (
            "InstanceCreditSpecifications",
            Value::list(items.into_iter().map(|v| {
                Value::obj([
                    ("InstanceId", v.instance.id.into()),
                    ("CpuCredits", "standard".into()),
                ])
            })),
        ),
        ("NextToken", next),
    ]))
}
