//! RunInstances, DescribeInstances, DescribeInstanceStatus, GetConsoleOutput, the instance
//! attributes (Terraform's aws_instance reads four of them) and metadata options, and
//! DescribeInstanceCreditSpecifications (strato's types have no CPU credits).

use base64::Engine;

use super::super::value::{nonempty, Value};
use super::super::Ctx;
use super::network_interfaces::ipv6_addresses;
use super::remote;
use super::{filters, page, page_request, state, tag_list, tags_for};
use crate::cloud::compute::describe::{DescribeInstanceStatus, DescribeInstances, InstanceView};
use crate::cloud::compute::instances::InstanceAttributes;
use crate::cloud::compute::launch::{Override, RunRequest, TemplateRef};
use crate::cloud::compute::metadata::MetadataChange;
use crate::cloud::network::network_interfaces::EniView;
use crate::cluster::route::{in_request_order, Origin};
use crate::db::images::Mapping;
use crate::db::instances::{HttpTokens, MetadataOptions, Toggle};
use crate::error::{ApiError, ApiResult, ErrorCode};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn metadata_options(o: &MetadataOptions) -> Value {
    let toggle = |t: Toggle| match t {
        Toggle::Enabled => "enabled",
        Toggle::Disabled => "disabled",
    };
    Value::obj([
        ("State", "applied".into()),
        (
            "HttpTokens",
            match o.http_tokens {
                HttpTokens::Optional => "optional",
                HttpTokens::Required => "required",
            }
            .into(),
        ),
        (
            "HttpPutResponseHopLimit",
            i64::from(o.http_put_response_hop_limit).into(),
        ),
        ("HttpEndpoint", toggle(o.http_endpoint).into()),
        (
            "InstanceMetadataTags",
            toggle(o.instance_metadata_tags).into(),
        ),
        ("HttpProtocolIpv6", toggle(o.http_protocol_ipv6).into()),
    ])
}

fn eni(v: &EniView, groups: &[(String, String)]) -> Value {
    let e = &v.eni;
    let mut ips = vec![Value::obj([
        ("PrivateIpAddress", (&e.private_ip).into()),
        ("PrivateDnsName", v.private_dns_name(&e.private_ip).into()),
        ("Primary", true.into()),
    ])];
    ips.extend(v.secondary.iter().map(|ip| {
        Value::obj([
            ("PrivateIpAddress", ip.into()),
            ("PrivateDnsName", v.private_dns_name(ip).into()),
            ("Primary", false.into()),
        ])
    }));
    let attachment = match &e.attachment_id {
        Some(att) => Value::obj([
            ("AttachmentId", att.into()),
            ("DeviceIndex", e.device_index.into()),
            ("Status", "attached".into()),
            ("AttachTime", Value::Time(e.attach_time.unwrap_or(0))),
            ("DeleteOnTermination", e.delete_on_termination.into()),
            ("NetworkCardIndex", 0i64.into()),
        ]),
        None => Value::Null,
    };
    Value::obj([
        ("NetworkInterfaceId", (&e.id).into()),
        ("SubnetId", (&e.subnet_id).into()),
        ("VpcId", (&v.subnet.vpc_id).into()),
        ("Description", (&e.description).into()),
        ("OwnerId", (&e.owner).into()),
        ("Status", v.status().into()),
        ("MacAddress", (&e.mac).into()),
        ("PrivateIpAddress", (&e.private_ip).into()),
        ("PrivateDnsName", v.private_dns_name(&e.private_ip).into()),
        ("PrivateIpAddresses", Value::List(ips)),
        ("Ipv6Addresses", ipv6_addresses(&v.ipv6)),
        ("SourceDestCheck", e.source_dest_check.into()),
        ("InterfaceType", "interface".into()),
        ("Attachment", attachment),
        (
            "Groups",
            Value::list(v.groups.iter().map(|g| {
                group(
                    g,
                    groups.iter().find(|(id, _)| id == g).map(|x| x.1.as_str()),
                )
            })),
        ),
    ])
}

fn group(id: &str, name: Option<&str>) -> Value {
    Value::obj([
        ("GroupId", id.into()),
        ("GroupName", name.map(Value::from).into()),
    ])
}

/// The state reason as `Code: Message`, EC2's pair.
fn state_reason(reason: &str) -> Value {
    if reason.is_empty() {
        return Value::Null;
    }
    let (code, message) = reason.split_once(": ").unwrap_or((reason, reason));
    Value::obj([("Code", code.into()), ("Message", message.into())])
}

/// An instance as DescribeInstances and RunInstances show it.
pub fn instance(v: InstanceView) -> Value {
    let groups = v.security_groups.clone();
    let i = v.instance;
    let primary = v.network_interfaces.first().map(|e| &e.eni);
    let private_ip = primary.map(|e| e.private_ip.clone()).unwrap_or_default();
    let placement_group = &v.placement_group_name;
    Value::obj([
        ("InstanceId", (&i.id).into()),
        ("ImageId", (&i.image_id).into()),
        ("InstanceType", (&i.instance_type).into()),
        ("State", state(i.state)),
        ("StateReason", state_reason(&i.state_reason)),
        ("StateTransitionReason", (&i.state_reason).into()),
        ("LaunchTime", Value::Time(i.launch_time)),
        ("AmiLaunchIndex", i.launch_index.into()),
        (
            "Placement",
            Value::obj([
                ("AvailabilityZone", (&i.az).into()),
                ("GroupName", (&v.placement_group_name).into()),
                ("GroupId", nonempty(&i.placement_group)),
                (
                    "PartitionNumber",
                    if placement_group.is_empty() {
                        Value::Null
                    } else {
                        i.partition_number.into()
                    },
                ),
                ("Tenancy", "default".into()),
                ("HostId", nonempty(&v.host_id)),
            ]),
        ),
        ("PrivateIpAddress", nonempty(&private_ip)),
        (
            "PrivateDnsName",
            v.network_interfaces
                .first()
                .map(|e| e.private_dns_name(&private_ip))
                .unwrap_or_default()
                .into(),
        ),
        ("PublicIpAddress", v.public_ip.clone().into()),
        ("PublicDnsName", "".into()),
        ("SubnetId", nonempty(&i.subnet_id)),
        ("VpcId", nonempty(&v.vpc_id)),
        (
            "SecurityGroups",
            Value::list(groups.iter().map(|(id, name)| group(id, Some(name)))),
        ),
        ("KeyName", nonempty(&i.key_name)),
        ("RootDeviceName", (&i.root_device_name).into()),
        ("RootDeviceType", "ebs".into()),
        (
            "BlockDeviceMappings",
            Value::list(v.volumes.iter().map(|vol| {
                Value::obj([
                    ("DeviceName", vol.device.clone().into()),
                    (
                        "Ebs",
                        Value::obj([
                            ("VolumeId", (&vol.id).into()),
                            ("DeleteOnTermination", vol.delete_on_termination.into()),
                            (
                                "Status",
                                vol.attach_state
                                    .map(|a| a.name())
                                    .unwrap_or("attached")
                                    .into(),
                            ),
                            ("AttachTime", Value::Time(i.launch_time)),
                        ]),
                    ),
                ])
            })),
        ),
        ("Architecture", "x86_64".into()),
        ("Hypervisor", "xen".into()),
        ("VirtualizationType", "hvm".into()),
        ("EbsOptimized", false.into()),
        ("EnaSupport", i.ena_support.into()),
        (
            "SourceDestCheck",
            primary.map(|e| e.source_dest_check).into(),
        ),
        ("Monitoring", Value::obj([("State", "disabled".into())])),
        ("ClientToken", nonempty(&i.client_token)),
        ("Tags", tag_list(&i.tags)),
        ("MetadataOptions", metadata_options(&i.metadata_options)),
        (
            "NetworkInterfaces",
            Value::list(v.network_interfaces.iter().map(|e| eni(e, &groups))),
        ),
        (
            "CpuOptions",
            Value::obj([
                ("CoreCount", i64::from(i.vcpus).into()),
                ("ThreadsPerCore", 1i64.into()),
            ]),
        ),
        (
            "IamInstanceProfile",
            match &v.iam_instance_profile {
                Some((arn, id)) => {
                    Value::obj([("Arn", arn.as_str().into()), ("Id", id.as_str().into())])
                }
                None => Value::Null,
            },
        ),
        ("PlatformDetails", "Linux/UNIX".into()),
        ("UsageOperation", "RunInstances".into()),
        ("BootMode", "legacy-bios".into()),
    ])
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
    // In a region of hosts the Query API places on this host (it does not forward yet).
    let (reservation, instances) = ctx.cloud.run_on_this_host(ctx.account(), req).await?;
    let instances = instances
        .into_iter()
        .map(|i| ctx.cloud.instance_view(i).map(instance))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Value::obj([
        ("ReservationId", reservation.into()),
        ("OwnerId", ctx.account().into()),
        ("Groups", Value::list(Vec::<Value>::new())),
        ("Instances", Value::List(instances)),
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
        (key.0, key.1, key.2, remote::instance(i))
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

fn summary(c: Option<&crate::prober::Check>) -> Value {
    match c {
        Some(c) => Value::obj([
            ("Status", c.status.name().into()),
            (
                "Details",
                Value::list([Value::obj([
                    ("Name", "reachability".into()),
                    ("Status", c.status.detail().into()),
                    ("ImpairedSince", c.impaired_since.map(Value::Time).into()),
                ])]),
            ),
        ]),
        None => Value::obj([("Status", "not-applicable".into())]),
    }
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
    let mut items: Vec<(String, Value)> = p
        .local
        .into_iter()
        .map(|s| {
            let v = Value::obj([
                ("InstanceId", (&s.instance.id).into()),
                ("AvailabilityZone", (&s.instance.az).into()),
                ("AvailabilityZoneId", zone_of(&s.instance.az).into()),
                ("InstanceState", state(s.instance.state)),
                (
                    "SystemStatus",
                    summary(s.checks.as_ref().map(|c| &c.system)),
                ),
                (
                    "InstanceStatus",
                    summary(s.checks.as_ref().map(|c| &c.instance)),
                ),
                ("Events", Value::list(Vec::<Value>::new())),
            ]);
            (s.instance.id, v)
        })
        .collect();
    items.extend(p.remote.into_iter().map(|s| {
        let zone_id = zone_of(&s.availability_zone);
        (s.instance_id.clone(), remote::status(s, zone_id))
    }));
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

/// DescribeInstanceAttribute.
pub fn describe_attribute(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let attr = input.str("Attribute");
    let id = input.str("InstanceId");
    let v = ctx
        .cloud
        .instance_view(ctx.cloud.owned_instance(ctx.account(), id)?)?;
    let i = &v.instance;
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
            attr_value(&i.shutdown_behavior),
        ),
        "rootDeviceName" => ("RootDeviceName", attr_value(&i.root_device_name)),
        "sourceDestCheck" => (
            "SourceDestCheck",
            attr_bool(
                v.network_interfaces
                    .first()
                    .is_none_or(|e| e.eni.source_dest_check),
            ),
        ),
        "ebsOptimized" => ("EbsOptimized", attr_bool(false)),
        "enaSupport" => ("EnaSupport", attr_bool(i.ena_support)),
        "kernel" => ("KernelId", attr_value("")),
        "ramdisk" => ("RamdiskId", attr_value("")),
        "groupSet" => (
            "Groups",
            Value::list(v.security_groups.iter().map(|(g, n)| group(g, Some(n)))),
        ),
        "blockDeviceMapping" => (
            "BlockDeviceMappings",
            match instance(v.clone()) {
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
        ("InstanceMetadataOptions", metadata_options(&o)),
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
