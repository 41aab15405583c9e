//! The AWS CLI's JSON shapes (PascalCase keys, RFC 3339 timestamps). As in AWS output,
//! absent values are left out rather than printed as `""` or `0`.

use serde_json::{json, Value};
use strato_proto::v1::{
    BlockDeviceMapping, Image, Instance, InstanceState, InstanceStateChange, InstanceStatus,
    LaunchPermission, Placement, Snapshot, StatusSummary, Tag, Volume, VolumeAttachment,
};

use super::{Transition, View};
use crate::time::format_rfc3339;

/// Builds the JSON document for `view`.
pub fn render(view: &View) -> Value {
    let mut value = match view {
        View::Empty => Value::Null,
        View::Reservation(r) => json!({
            "ReservationId": r.reservation_id,
            "OwnerId": text(&r.owner_id),
            "Instances": r.instances.iter().map(instance).collect::<Vec<_>>(),
        }),
        View::Instances(instances) => json!({ "Reservations": reservations(instances) }),
        View::StateChanges(transition, changes) => {
            let key = match transition {
                Transition::Stopping => "StoppingInstances",
                Transition::Starting => "StartingInstances",
                Transition::Terminating => "TerminatingInstances",
            };
            json!({ key: changes.iter().map(state_change).collect::<Vec<_>>() })
        }
        View::InstanceStatuses(statuses) => json!({
            "InstanceStatuses": statuses.iter().map(instance_status).collect::<Vec<_>>(),
        }),
        View::InstanceTypes(types) => json!({
            "InstanceTypes": types
                .iter()
                .map(|t| json!({
                    "InstanceType": t.instance_type,
                    "VCpuInfo": {"DefaultVCpus": t.vcpus},
                    "MemoryInfo": {"SizeInMiB": t.memory_mib},
                    "InstanceStorageSupported": t.instance_store_gib > 0,
                    "InstanceStorageInfo": (t.instance_store_gib > 0)
                        .then(|| json!({"TotalSizeInGB": t.instance_store_gib})),
                }))
                .collect::<Vec<_>>(),
        }),
        View::ConsoleOutput(c) => json!({
            "InstanceId": c.instance_id,
            "Timestamp": time(c.timestamp_unix),
            "Output": String::from_utf8_lossy(&c.output),
        }),
        View::ImageId(id) => json!({ "ImageId": id }),
        View::Images(images) => json!({ "Images": images.iter().map(image).collect::<Vec<_>>() }),
        View::LaunchPermissions(a) => json!({
            "ImageId": a.image_id,
            "LaunchPermissions": a.launch_permissions.iter().map(launch_permission)
                .collect::<Vec<_>>(),
        }),
        View::Volume(v) => volume(v),
        View::Volumes(volumes) => json!({
            "Volumes": volumes.iter().map(volume).collect::<Vec<_>>(),
        }),
        View::Attachment(a) => attachment(a),
        View::Snapshot(s) => snapshot(s),
        View::Snapshots(snapshots) => json!({
            "Snapshots": snapshots.iter().map(snapshot).collect::<Vec<_>>(),
        }),
        View::Control(v) => super::control::json(v),
        View::Network(v) => super::network::json(v),
        View::SecurityGroups(v) => super::security_groups::json(v),
        View::Usage(records) => json!({
            "Usage": records
                .iter()
                .map(|r| json!({
                    "ResourceId": r.resource_id,
                    "ResourceType": r.resource_type,
                    "Kind": text(&r.kind),
                    "Seconds": r.seconds,
                    "GiBSeconds": r.gib_seconds,
                }))
                .collect::<Vec<_>>(),
        }),
    };
    strip_nulls(&mut value);
    value
}

fn instance(i: &Instance) -> Value {
    let network_interface = if !i.network_interfaces.is_empty() {
        Some(Value::Array(
            i.network_interfaces
                .iter()
                .map(super::network::eni)
                .collect(),
        ))
    } else {
        (!i.mac_address.is_empty()).then(|| {
            json!([{
                "MacAddress": i.mac_address,
                "PrivateIpAddress": text(&i.private_ip_address),
                "SubnetId": text(&i.subnet_id),
                "VpcId": text(&i.vpc_id),
            }])
        })
    };
    json!({
        "InstanceId": i.instance_id,
        "ImageId": text(&i.image_id),
        "InstanceType": text(&i.instance_type),
        "State": state(i.state.as_ref()),
        "StateTransitionReason": text(&i.state_reason),
        "LaunchTime": time(i.launch_time_unix),
        "Placement": i.placement.as_ref().map(placement),
        "PrivateIpAddress": text(&i.private_ip_address),
        "PublicIpAddress": text(&i.public_ip_address),
        "SubnetId": text(&i.subnet_id),
        "VpcId": text(&i.vpc_id),
        "NetworkInterfaces": network_interface,
        "SecurityGroups": if i.security_groups.is_empty() {
            i.security_group_ids.iter().map(|id| json!({"GroupId": id})).collect::<Vec<_>>()
        } else {
            i.security_groups
                .iter()
                .map(|g| json!({"GroupId": g.group_id, "GroupName": text(&g.group_name)}))
                .collect::<Vec<_>>()
        },
        "KeyName": text(&i.key_name),
        "IamInstanceProfile": (!i.iam_instance_profile_arn.is_empty()).then(|| json!({
            "Arn": i.iam_instance_profile_arn,
            "Id": i.iam_instance_profile_association_id,
        })),
        "RootDeviceName": text(&i.root_device_name),
        "RootDeviceType": (!i.root_device_name.is_empty()).then_some("ebs"),
        "BlockDeviceMappings": i.block_device_mappings.iter().map(|b| json!({
            "DeviceName": b.device_name,
            "Ebs": {
                "VolumeId": text(&b.volume_id),
                "Status": text(&b.status),
                "DeleteOnTermination": b.delete_on_termination,
            },
        })).collect::<Vec<_>>(),
        "InstanceInitiatedShutdownBehavior": text(&i.instance_initiated_shutdown_behavior),
        "DisableApiTermination": i.disable_api_termination,
        "EnaSupport": i.ena_support,
        "CpuOptions": (i.vcpus > 0).then(|| json!({"CoreCount": i.vcpus, "ThreadsPerCore": 1})),
        "AmiLaunchIndex": i.ami_launch_index,
        "Tags": tags(&i.tags),
        "MetadataOptions": i.metadata_options.as_ref().map(super::control::metadata_options),
    })
}

fn placement(p: &Placement) -> Value {
    json!({
        "AvailabilityZone": text(&p.availability_zone),
        "GroupName": text(&p.group_name),
        "GroupId": text(&p.group_id),
        "PartitionNumber": (p.partition_number > 0).then_some(p.partition_number),
        // strato's own: the rack (fault domain) the scheduler chose.
        "Rack": text(&p.rack),
        "HostId": text(&p.host_id),
    })
}

fn state(s: Option<&InstanceState>) -> Value {
    s.map_or(Value::Null, |s| json!({"Code": s.code, "Name": s.name}))
}

fn state_change(c: &InstanceStateChange) -> Value {
    json!({
        "InstanceId": c.instance_id,
        "PreviousState": state(c.previous_state.as_ref()),
        "CurrentState": state(c.current_state.as_ref()),
    })
}

fn instance_status(s: &InstanceStatus) -> Value {
    json!({
        "InstanceId": s.instance_id,
        "AvailabilityZone": text(&s.availability_zone),
        "InstanceState": state(s.instance_state.as_ref()),
        "SystemStatus": s.system_status.as_ref().map(status_summary),
        "InstanceStatus": s.instance_status.as_ref().map(status_summary),
        "AttachedEbsStatus": s.attached_ebs_status.as_ref().map(status_summary),
    })
}

fn status_summary(s: &StatusSummary) -> Value {
    json!({
        "Status": s.status,
        "Details": s.details.iter().map(|d| json!({
            "Name": d.name,
            "Status": d.status,
            "ImpairedSince": time(d.impaired_since_unix),
        })).collect::<Vec<_>>(),
    })
}

fn image(i: &Image) -> Value {
    json!({
        "ImageId": i.image_id,
        "Name": text(&i.name),
        "Description": text(&i.description),
        "State": i.state,
        "OwnerId": text(&i.owner_id),
        "Public": i.public,
        "Architecture": text(&i.architecture),
        "RootDeviceName": text(&i.root_device_name),
        "RootDeviceType": text(&i.root_device_type),
        "BlockDeviceMappings": i.block_device_mappings.iter().map(block_device_mapping)
            .collect::<Vec<_>>(),
        "CreationDate": time(i.creation_time_unix),
        "EnaSupport": i.ena_support,
        "BootArgs": text(&i.boot_args),
        "Progress": (i.state == "pending").then_some(i.progress),
        "StateReason": (!i.state_reason.is_empty()).then(|| json!({"Message": i.state_reason})),
        "Tags": tags(&i.tags),
    })
}

pub(super) fn block_device_mapping(b: &BlockDeviceMapping) -> Value {
    json!({
        "DeviceName": b.device_name,
        "VirtualName": text(&b.virtual_name),
        // The AWS API marks a suppressed device with an empty string.
        "NoDevice": b.no_device.then_some(""),
        "Ebs": b.ebs.as_ref().map(|e| json!({
            "DeleteOnTermination": e.delete_on_termination,
            "SnapshotId": text(&e.snapshot_id),
            "VolumeSize": (e.volume_size > 0).then_some(e.volume_size),
            "VolumeType": text(&e.volume_type),
        })),
    })
}

fn launch_permission(p: &LaunchPermission) -> Value {
    json!({"UserId": text(&p.user_id), "Group": text(&p.group)})
}

fn volume(v: &Volume) -> Value {
    json!({
        "VolumeId": v.volume_id,
        "Size": v.size,
        "VolumeType": text(&v.volume_type),
        "AvailabilityZone": text(&v.availability_zone),
        "SnapshotId": text(&v.snapshot_id),
        "State": v.state,
        "CreateTime": time(v.create_time_unix),
        "Attachments": v.attachments.iter().map(attachment).collect::<Vec<_>>(),
        "Tags": tags(&v.tags),
    })
}

fn attachment(a: &VolumeAttachment) -> Value {
    json!({
        "VolumeId": a.volume_id,
        "InstanceId": text(&a.instance_id),
        "Device": text(&a.device),
        "State": a.state,
        "DeleteOnTermination": a.delete_on_termination,
    })
}

fn snapshot(s: &Snapshot) -> Value {
    json!({
        "SnapshotId": s.snapshot_id,
        "VolumeId": text(&s.volume_id),
        "VolumeSize": s.volume_size,
        "State": s.state,
        "Progress": text(&s.progress),
        "StartTime": time(s.start_time_unix),
        "Description": text(&s.description),
        "OwnerId": text(&s.owner_id),
        "Tags": tags(&s.tags),
    })
}

/// A string, or nothing when empty (proto3 cannot tell empty from absent).
pub(super) fn text(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_owned())
    }
}

/// An RFC 3339 timestamp, or nothing for 0 (unset).
pub(super) fn time(unix: i64) -> Value {
    if unix == 0 {
        Value::Null
    } else {
        Value::String(format_rfc3339(unix))
    }
}

/// AWS leaves `Tags` out entirely when there are none.
pub(super) fn tags(tags: &[Tag]) -> Value {
    if tags.is_empty() {
        return Value::Null;
    }
    tags.iter()
        .map(|t| json!({"Key": t.key, "Value": t.value}))
        .collect()
}

/// Drops object members that are null, at every depth.
pub(super) fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Groups instances by reservation, in the order the reservations first appear (as the AWS
/// CLI shows them); an instance without one stands alone.
fn reservations(instances: &[Instance]) -> Vec<Value> {
    let mut groups: Vec<(String, String, Vec<Value>)> = Vec::new();
    for i in instances {
        let key = &i.reservation_id;
        match groups.iter_mut().find(|g| !key.is_empty() && &g.0 == key) {
            Some(g) => g.2.push(instance(i)),
            None => groups.push((key.clone(), i.owner_id.clone(), vec![instance(i)])),
        }
    }
    groups
        .into_iter()
        .map(|(id, owner, list)| {
            json!({"ReservationId": text(&id), "OwnerId": text(&owner), "Instances": list})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_proto::v1::{
        EbsBlockDevice, GetConsoleOutputResponse, InstanceTypeInfo, RunInstancesResponse,
        StatusDetail,
    };

    fn running() -> InstanceState {
        InstanceState {
            code: 16,
            name: "running".into(),
        }
    }

    fn sample_instance() -> Instance {
        Instance {
            instance_id: "i-0123456789abcdef0".into(),
            image_id: "ami-0123456789abcdef0".into(),
            instance_type: "t3.micro".into(),
            state: Some(running()),
            launch_time_unix: 1_714_564_800,
            private_ip_address: "10.0.0.5".into(),
            owner_id: "123456789012".into(),
            tags: vec![Tag {
                key: "Name".into(),
                value: "web".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn run_instances_shape() {
        let value = render(&View::Reservation(RunInstancesResponse {
            reservation_id: "r-1".into(),
            owner_id: "123456789012".into(),
            instances: vec![sample_instance()],
        }));
        let instance = &value["Instances"][0];
        assert_eq!(value["ReservationId"], "r-1");
        assert_eq!(instance["State"], json!({"Code": 16, "Name": "running"}));
        assert_eq!(instance["PrivateIpAddress"], "10.0.0.5");
        assert_eq!(instance["LaunchTime"], "2024-05-01T12:00:00Z");
        assert_eq!(instance["Tags"], json!([{"Key": "Name", "Value": "web"}]));
        // Empty strings are left out, not printed as "".
        assert!(instance.get("PublicIpAddress").is_none());
        assert!(instance.get("KeyName").is_none());
    }

    #[test]
    fn describe_instances_groups_by_reservation() {
        let mut a = sample_instance();
        a.reservation_id = "r-1".into();
        let mut b = a.clone();
        b.instance_id = "i-0000000000000000b".into();
        let mut c = a.clone();
        c.reservation_id = "r-2".into();
        let value = render(&View::Instances(vec![a, c, b]));
        let reservations = value["Reservations"].as_array().unwrap();
        assert_eq!(reservations.len(), 2);
        assert_eq!(reservations[0]["ReservationId"], "r-1");
        assert_eq!(reservations[0]["Instances"].as_array().unwrap().len(), 2);
        assert_eq!(
            reservations[0]["Instances"][1]["InstanceId"],
            "i-0000000000000000b"
        );
        assert_eq!(reservations[0]["OwnerId"], "123456789012");
        assert_eq!(reservations[1]["ReservationId"], "r-2");
    }

    #[test]
    fn state_changes_are_keyed_by_transition() {
        let change = InstanceStateChange {
            instance_id: "i-1".into(),
            previous_state: Some(running()),
            current_state: Some(InstanceState {
                code: 64,
                name: "stopping".into(),
            }),
        };
        let value = render(&View::StateChanges(Transition::Stopping, vec![change]));
        assert_eq!(
            value,
            json!({"StoppingInstances": [{
                "InstanceId": "i-1",
                "PreviousState": {"Code": 16, "Name": "running"},
                "CurrentState": {"Code": 64, "Name": "stopping"},
            }]})
        );
    }

    #[test]
    fn instance_status_shape() {
        let summary = StatusSummary {
            status: "impaired".into(),
            details: vec![StatusDetail {
                name: "reachability".into(),
                status: "failed".into(),
                impaired_since_unix: 1_714_564_800,
            }],
        };
        let value = render(&View::InstanceStatuses(vec![InstanceStatus {
            instance_id: "i-1".into(),
            availability_zone: "strato-1a".into(),
            instance_state: Some(running()),
            system_status: Some(summary.clone()),
            instance_status: Some(summary),
            attached_ebs_status: None,
        }]));
        let status = &value["InstanceStatuses"][0];
        assert_eq!(status["AvailabilityZone"], "strato-1a");
        assert_eq!(
            status["SystemStatus"],
            json!({"Status": "impaired", "Details": [{"Name": "reachability",
                "Status": "failed", "ImpairedSince": "2024-05-01T12:00:00Z"}]})
        );
        assert!(status.get("AttachedEbsStatus").is_none());
    }

    #[test]
    fn instance_types_shape() {
        let value = render(&View::InstanceTypes(vec![InstanceTypeInfo {
            instance_type: "t3.micro".into(),
            vcpus: 2,
            memory_mib: 1024,
            instance_store_gib: 0,
        }]));
        assert_eq!(
            value,
            json!({"InstanceTypes": [{"InstanceType": "t3.micro",
                "VCpuInfo": {"DefaultVCpus": 2}, "MemoryInfo": {"SizeInMiB": 1024},
                "InstanceStorageSupported": false}]})
        );
    }

    #[test]
    fn image_block_device_mappings_keep_no_device() {
        let value = render(&View::Images(vec![Image {
            image_id: "ami-1".into(),
            state: "available".into(),
            block_device_mappings: vec![
                BlockDeviceMapping {
                    device_name: "/dev/vdb".into(),
                    no_device: true,
                    ..Default::default()
                },
                BlockDeviceMapping {
                    device_name: "/dev/vda".into(),
                    ebs: Some(EbsBlockDevice {
                        snapshot_id: "snap-1".into(),
                        volume_size: 8,
                        delete_on_termination: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }]));
        let bdms = &value["Images"][0]["BlockDeviceMappings"];
        assert_eq!(bdms[0], json!({"DeviceName": "/dev/vdb", "NoDevice": ""}));
        assert_eq!(
            bdms[1]["Ebs"],
            json!({"DeleteOnTermination": true, "SnapshotId": "snap-1", "VolumeSize": 8})
        );
        assert!(value["Images"][0].get("Progress").is_none());
    }

    #[test]
    fn volumes_always_list_attachments() {
        let value = render(&View::Volumes(vec![Volume {
            volume_id: "vol-1".into(),
            size: 8,
            state: "available".into(),
            ..Default::default()
        }]));
        assert_eq!(value["Volumes"][0]["Attachments"], json!([]));
        assert!(value["Volumes"][0].get("Tags").is_none());
    }

    #[test]
    fn console_output_is_text() {
        let value = render(&View::ConsoleOutput(GetConsoleOutputResponse {
            instance_id: "i-1".into(),
            timestamp_unix: 1_714_564_800,
            output: b"boot ok\n".to_vec(),
        }));
        assert_eq!(
            value,
            json!({"InstanceId": "i-1", "Timestamp": "2024-05-01T12:00:00Z",
                "Output": "boot ok\n"})
        );
    }
}
