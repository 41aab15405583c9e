//! Instances and their status checks in the Query API's shapes, rendered from the gRPC
//! messages: the region's other hosts answer in that form (cluster::route) and this host's
//! records are turned into it (api::compute), so one renderer serves both and an instance
//! looks the same whichever host a caller asks.

use strato_proto::v1 as pb;

use super::super::value::{nonempty, Value};

fn state(s: Option<&pb::InstanceState>) -> Value {
    match s {
        Some(s) => Value::obj([
            ("Code", i64::from(s.code).into()),
            ("Name", s.name.as_str().into()),
        ]),
        None => Value::Null,
    }
}

fn tags(t: &[pb::Tag]) -> Value {
    Value::list(
        t.iter()
            .map(|t| Value::obj([("Key", (&t.key).into()), ("Value", (&t.value).into())])),
    )
}

fn group(g: &pb::GroupIdentifier) -> Value {
    Value::obj([
        ("GroupId", (&g.group_id).into()),
        ("GroupName", (&g.group_name).into()),
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

/// An interface as an instance's `NetworkInterfaces` shows it (DescribeNetworkInterfaces
/// adds to this shape).
pub(super) fn eni(e: &pb::NetworkInterface, groups: &[pb::GroupIdentifier]) -> Value {
    let attachment = match &e.attachment {
        Some(a) => Value::obj([
            ("AttachmentId", (&a.attachment_id).into()),
            ("DeviceIndex", a.device_index.into()),
            ("Status", (&a.status).into()),
            ("AttachTime", Value::Time(a.attach_time_unix)),
            ("DeleteOnTermination", a.delete_on_termination.into()),
            ("NetworkCardIndex", 0i64.into()),
        ]),
        None => Value::Null,
    };
    Value::obj([
        ("NetworkInterfaceId", (&e.network_interface_id).into()),
        ("SubnetId", (&e.subnet_id).into()),
        ("VpcId", (&e.vpc_id).into()),
        ("Description", (&e.description).into()),
        ("OwnerId", (&e.owner_id).into()),
        ("Status", (&e.status).into()),
        ("MacAddress", (&e.mac_address).into()),
        ("PrivateIpAddress", (&e.private_ip_address).into()),
        ("PrivateDnsName", (&e.private_dns_name).into()),
        (
            "PrivateIpAddresses",
            Value::list(e.private_ip_addresses.iter().map(|ip| {
                Value::obj([
                    ("PrivateIpAddress", (&ip.private_ip_address).into()),
                    ("PrivateDnsName", (&ip.private_dns_name).into()),
                    ("Primary", ip.primary.into()),
                ])
            })),
        ),
        (
            "Ipv6Addresses",
            Value::list(e.ipv6_addresses.iter().map(|a| {
                Value::obj([
                    ("Ipv6Address", (&a.ipv6_address).into()),
                    ("IsPrimaryIpv6", a.is_primary_ipv6.into()),
                ])
            })),
        ),
        ("SourceDestCheck", e.source_dest_check.into()),
        ("InterfaceType", (&e.interface_type).into()),
        ("Attachment", attachment),
        (
            "Groups",
            Value::list(e.group_ids.iter().map(|id| {
                let name = groups
                    .iter()
                    .find(|g| &g.group_id == id)
                    .map(|g| Value::from(&g.group_name));
                Value::obj([("GroupId", id.into()), ("GroupName", name.into())])
            })),
        ),
    ])
}

/// InstanceMetadataOptions as DescribeInstances and ModifyInstanceMetadataOptions show them.
pub fn metadata_options(md: &pb::InstanceMetadataOptions) -> Value {
    Value::obj([
        ("State", "applied".into()),
        ("HttpTokens", (&md.http_tokens).into()),
        (
            "HttpPutResponseHopLimit",
            i64::from(md.http_put_response_hop_limit).into(),
        ),
        ("HttpEndpoint", (&md.http_endpoint).into()),
        ("InstanceMetadataTags", (&md.instance_metadata_tags).into()),
        ("HttpProtocolIpv6", (&md.http_protocol_ipv6).into()),
    ])
}

/// An instance as DescribeInstances and RunInstances show it.
pub fn instance(i: pb::Instance) -> Value {
    let placement = i.placement.clone().unwrap_or_default();
    let primary = i.network_interfaces.first();
    let md = i.metadata_options.clone().unwrap_or_default();
    Value::obj([
        ("InstanceId", (&i.instance_id).into()),
        ("ImageId", (&i.image_id).into()),
        ("InstanceType", (&i.instance_type).into()),
        ("State", state(i.state.as_ref())),
        ("StateReason", state_reason(&i.state_reason)),
        ("StateTransitionReason", (&i.state_reason).into()),
        ("LaunchTime", Value::Time(i.launch_time_unix)),
        ("AmiLaunchIndex", i.ami_launch_index.into()),
        (
            "Placement",
            Value::obj([
                ("AvailabilityZone", (&placement.availability_zone).into()),
                ("GroupName", (&placement.group_name).into()),
                ("GroupId", nonempty(&placement.group_id)),
                (
                    "PartitionNumber",
                    if placement.group_name.is_empty() {
                        Value::Null
                    } else {
                        placement.partition_number.into()
                    },
                ),
                ("Tenancy", "default".into()),
                ("HostId", nonempty(&placement.host_id)),
            ]),
        ),
        ("PrivateIpAddress", nonempty(&i.private_ip_address)),
        (
            "PrivateDnsName",
            primary
                .map(|e| e.private_dns_name.clone())
                .unwrap_or_default()
                .into(),
        ),
        ("PublicIpAddress", nonempty(&i.public_ip_address)),
        ("PublicDnsName", "".into()),
        ("SubnetId", nonempty(&i.subnet_id)),
        ("VpcId", nonempty(&i.vpc_id)),
        (
            "SecurityGroups",
            Value::list(i.security_groups.iter().map(group)),
        ),
        ("KeyName", nonempty(&i.key_name)),
        ("RootDeviceName", (&i.root_device_name).into()),
        ("RootDeviceType", "ebs".into()),
        (
            "BlockDeviceMappings",
            Value::list(i.block_device_mappings.iter().map(|b| {
                Value::obj([
                    ("DeviceName", nonempty(&b.device_name)),
                    (
                        "Ebs",
                        Value::obj([
                            ("VolumeId", (&b.volume_id).into()),
                            ("DeleteOnTermination", b.delete_on_termination.into()),
                            (
                                "Status",
                                if b.status.is_empty() {
                                    "attached"
                                } else {
                                    b.status.as_str()
                                }
                                .into(),
                            ),
                            ("AttachTime", Value::Time(i.launch_time_unix)),
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
        ("Tags", tags(&i.tags)),
        ("MetadataOptions", metadata_options(&md)),
        (
            "NetworkInterfaces",
            Value::list(
                i.network_interfaces
                    .iter()
                    .map(|e| eni(e, &i.security_groups)),
            ),
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
            if i.iam_instance_profile_arn.is_empty() {
                Value::Null
            } else {
                Value::obj([
                    ("Arn", (&i.iam_instance_profile_arn).into()),
                    ("Id", (&i.iam_instance_profile_association_id).into()),
                ])
            },
        ),
        ("PlatformDetails", "Linux/UNIX".into()),
        ("UsageOperation", "RunInstances".into()),
        ("BootMode", "legacy-bios".into()),
    ])
}

fn summary(s: Option<&pb::StatusSummary>) -> Value {
    match s {
        Some(s) if s.status != "not-applicable" => Value::obj([
            ("Status", (&s.status).into()),
            (
                "Details",
                Value::list(s.details.iter().map(|d| {
                    Value::obj([
                        ("Name", (&d.name).into()),
                        ("Status", (&d.status).into()),
                        (
                            "ImpairedSince",
                            (d.impaired_since_unix != 0)
                                .then_some(Value::Time(d.impaired_since_unix))
                                .into(),
                        ),
                    ])
                })),
            ),
        ]),
        _ => Value::obj([("Status", "not-applicable".into())]),
    }
}

/// An instance's status checks as DescribeInstanceStatus shows them (`zone_id`: the zone's
/// ID).
pub fn status(s: pb::InstanceStatus, zone_id: Option<String>) -> Value {
    Value::obj([
        ("InstanceId", (&s.instance_id).into()),
        ("AvailabilityZone", (&s.availability_zone).into()),
        ("AvailabilityZoneId", zone_id.into()),
        ("InstanceState", state(s.instance_state.as_ref())),
        ("SystemStatus", summary(s.system_status.as_ref())),
        ("InstanceStatus", summary(s.instance_status.as_ref())),
        ("Events", Value::list(Vec::<Value>::new())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_shows_its_host_state_token_and_metadata_options() {
        let v = instance(pb::Instance {
            instance_id: "i-0000000000000000a".into(),
            state: Some(pb::InstanceState {
                code: 80,
                name: "stopped".into(),
            }),
            placement: Some(pb::Placement {
                availability_zone: "home-1a".into(),
                host_id: "h2".into(),
                ..Default::default()
            }),
            state_reason: "Client.UserInitiatedShutdown: User initiated shutdown".into(),
            client_token: "tok-1".into(),
            metadata_options: Some(pb::InstanceMetadataOptions {
                http_tokens: "required".into(),
                http_put_response_hop_limit: 2,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(v.str("ClientToken"), "tok-1");
        let md = v.get("MetadataOptions").unwrap();
        assert_eq!(md.str("HttpTokens"), "required");
        assert_eq!(md.int("HttpPutResponseHopLimit"), Some(2));
        assert_eq!(v.str("InstanceId"), "i-0000000000000000a");
        let st = v.get("State").unwrap();
        assert_eq!(st.int("Code"), Some(80));
        assert_eq!(st.str("Name"), "stopped");
        assert_eq!(v.get("Placement").unwrap().str("HostId"), "h2");
        assert_eq!(
            v.get("StateReason").unwrap().str("Code"),
            "Client.UserInitiatedShutdown"
        );
    }

    #[test]
    fn a_down_hosts_status_keeps_its_impairment() {
        let v = status(
            pb::InstanceStatus {
                instance_id: "i-1".into(),
                system_status: Some(pb::StatusSummary {
                    status: "impaired".into(),
                    details: vec![pb::StatusDetail {
                        name: "reachability".into(),
                        status: "failed".into(),
                        impaired_since_unix: 0,
                    }],
                }),
                ..Default::default()
            },
            None,
        );
        assert_eq!(v.get("SystemStatus").unwrap().str("Status"), "impaired");
        assert_eq!(
            v.get("InstanceStatus").unwrap().str("Status"),
            "not-applicable"
        );
    }
}
