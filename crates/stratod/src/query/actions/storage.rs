//! Volumes, snapshots and images. In a region of hosts, calls about another host's volume
//! are answered by that host (`cluster::volumes`) in its gRPC form, shown here in the Query
//! shapes as this host's own are.

use super::super::value::{nonempty, Value};
use super::super::Ctx;
use super::{filters, page_request, tag_list, tags_for};
use crate::cloud::storage::describe::{
    DescribeImages, DescribeSnapshots, DescribeVolumes, ImageView,
};
use crate::cloud::storage::images::RegisterRequest;
use crate::db::images::{Mapping, PUBLIC};
use crate::db::volumes::{Snapshot, Volume};
use crate::error::{ApiError, ApiResult, ErrorCode};
use strato_proto::v1 as pb;

use crate::cluster::route::{in_request_order, Origin};
use crate::cluster::volumes::Answer;

fn attachment(v: &Volume) -> Value {
    let Some(instance) = &v.instance_id else {
        return Value::Null;
    };
    Value::obj([
        ("VolumeId", (&v.id).into()),
        ("InstanceId", instance.into()),
        ("Device", v.device.clone().into()),
        (
            "State",
            v.attach_state
                .map(|a| a.name())
                .unwrap_or("attached")
                .into(),
        ),
        ("DeleteOnTermination", v.delete_on_termination.into()),
        ("AttachTime", Value::Time(v.created)),
    ])
}

fn volume(v: &Volume) -> Value {
    let a = attachment(v);
    Value::obj([
        ("VolumeId", (&v.id).into()),
        ("Size", v.size_gib.into()),
        ("VolumeType", (&v.volume_type).into()),
        ("AvailabilityZone", (&v.az).into()),
        ("SnapshotId", (&v.snapshot_id).into()),
        ("State", v.state.to_string().into()),
        ("CreateTime", Value::Time(v.created)),
        ("Encrypted", false.into()),
        ("MultiAttachEnabled", false.into()),
        (
            "Attachments",
            Value::List(if matches!(a, Value::Null) {
                vec![]
            } else {
                vec![a]
            }),
        ),
        ("Tags", tag_list(&v.tags)),
    ])
}

/// Another host's attachment as AttachVolume and DetachVolume show it (`attach_time`: when
/// known, as this host's show the volume's creation time).
fn remote_attachment(a: &pb::VolumeAttachment, attach_time: Option<i64>) -> Value {
    Value::obj([
        ("VolumeId", (&a.volume_id).into()),
        ("InstanceId", (&a.instance_id).into()),
        ("Device", (&a.device).into()),
        (
            "State",
            if a.state.is_empty() {
                "attached"
            } else {
                a.state.as_str()
            }
            .into(),
        ),
        ("DeleteOnTermination", a.delete_on_termination.into()),
        ("AttachTime", attach_time.map(Value::Time).into()),
    ])
}

/// Another host's volume as DescribeVolumes shows it.
fn remote_volume(v: &pb::Volume) -> Value {
    Value::obj([
        ("VolumeId", (&v.volume_id).into()),
        ("Size", v.size.into()),
        ("VolumeType", (&v.volume_type).into()),
        ("AvailabilityZone", (&v.availability_zone).into()),
        ("SnapshotId", (&v.snapshot_id).into()),
        ("State", (&v.state).into()),
        ("CreateTime", Value::Time(v.create_time_unix)),
        ("Encrypted", false.into()),
        ("MultiAttachEnabled", false.into()),
        (
            "Attachments",
            Value::list(
                v.attachments
                    .iter()
                    .map(|a| remote_attachment(a, Some(v.create_time_unix))),
            ),
        ),
        ("Tags", tag_list(&crate::api::convert::tags_in(&v.tags))),
    ])
}

/// Another host's snapshot as CreateSnapshot and DescribeSnapshots show it.
fn remote_snapshot(s: &pb::Snapshot) -> Value {
    Value::obj([
        ("SnapshotId", (&s.snapshot_id).into()),
        ("VolumeId", (&s.volume_id).into()),
        ("VolumeSize", s.volume_size.into()),
        ("State", (&s.state).into()),
        ("Progress", (&s.progress).into()),
        ("StartTime", Value::Time(s.start_time_unix)),
        ("Description", (&s.description).into()),
        ("OwnerId", (&s.owner_id).into()),
        ("Encrypted", false.into()),
        ("StorageTier", "standard".into()),
        ("Tags", tag_list(&crate::api::convert::tags_in(&s.tags))),
    ])
}

fn attachment_answer(a: Answer<Volume, pb::VolumeAttachment>) -> Value {
    match a {
        Answer::Here(v) => attachment(&v),
        Answer::There(a) => remote_attachment(&a, None),
    }
}

fn snapshot(s: &Snapshot) -> Value {
    Value::obj([
        ("SnapshotId", (&s.id).into()),
        ("VolumeId", (&s.volume_id).into()),
        ("VolumeSize", s.size_gib.into()),
        ("State", s.state.to_string().into()),
        ("Progress", format!("{}%", s.progress).into()),
        ("StartTime", Value::Time(s.created)),
        ("Description", (&s.description).into()),
        ("OwnerId", (&s.owner).into()),
        ("Encrypted", false.into()),
        ("StorageTier", "standard".into()),
        ("Tags", tag_list(&s.tags)),
    ])
}

fn mapping(m: &Mapping) -> Value {
    Value::obj([
        ("DeviceName", (&m.device_name).into()),
        ("VirtualName", nonempty(&m.virtual_name)),
        (
            "NoDevice",
            if m.no_device { "".into() } else { Value::Null },
        ),
        (
            "Ebs",
            if m.virtual_name.is_empty() && !m.no_device {
                Value::obj([
                    ("SnapshotId", nonempty(&m.snapshot_id)),
                    ("VolumeSize", m.volume_size.into()),
                    ("VolumeType", nonempty(&m.volume_type)),
                    ("DeleteOnTermination", m.delete_on_termination.into()),
                    ("Encrypted", false.into()),
                ])
            } else {
                Value::Null
            },
        ),
    ])
}

fn mapping_in(m: &Value) -> Mapping {
    let ebs = m.get("Ebs").cloned().unwrap_or_else(|| Value::obj([]));
    Mapping {
        device_name: m.str("DeviceName").to_string(),
        snapshot_id: ebs.str("SnapshotId").to_string(),
        volume_size: ebs.int("VolumeSize").unwrap_or(0),
        volume_type: ebs.str("VolumeType").to_string(),
        delete_on_termination: ebs.bool("DeleteOnTermination").unwrap_or(false),
        virtual_name: m.str("VirtualName").to_string(),
        no_device: m.get("NoDevice").is_some(),
    }
}

fn image(v: ImageView) -> Value {
    let i = v.image;
    let reason = if i.state_reason.is_empty() {
        Value::Null
    } else {
        let (code, message) = i
            .state_reason
            .split_once(": ")
            .unwrap_or((&i.state_reason, &i.state_reason));
        Value::obj([("Code", code.into()), ("Message", message.into())])
    };
    Value::obj([
        ("ImageId", (&i.id).into()),
        ("Name", (&i.name).into()),
        ("Description", nonempty(&i.description)),
        ("State", i.state.to_string().into()),
        ("StateReason", reason),
        ("OwnerId", (&i.owner).into()),
        ("Public", v.public.into()),
        ("Architecture", (&i.architecture).into()),
        ("RootDeviceName", (&i.root_device_name).into()),
        ("RootDeviceType", "ebs".into()),
        ("ImageType", "machine".into()),
        ("VirtualizationType", "hvm".into()),
        ("Hypervisor", "xen".into()),
        ("EnaSupport", i.ena_support.into()),
        ("PlatformDetails", "Linux/UNIX".into()),
        ("UsageOperation", "RunInstances".into()),
        (
            "CreationDate",
            super::super::value::iso8601(i.created).into(),
        ),
        (
            "BlockDeviceMappings",
            Value::list(i.mappings.iter().map(mapping)),
        ),
        ("Tags", tag_list(&i.tags)),
    ])
}

/// CreateVolume: on this host, or from a snapshot on the snapshot's host.
pub async fn create_volume(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let req = pb::CreateVolumeRequest {
        size: input.int("Size").unwrap_or(0),
        volume_type: input.str("VolumeType").to_string(),
        availability_zone: input.str("AvailabilityZone").to_string(),
        snapshot_id: input.str("SnapshotId").to_string(),
        tags: crate::api::convert::tags(&tags_for(input, "volume")),
        ..Default::default()
    };
    let v = ctx
        .cloud
        .create_volume_routed(ctx.account(), &req, Origin::Caller)
        .await?;
    Ok(match v {
        Answer::Here(v) => volume(&v),
        Answer::There(v) => remote_volume(&v),
    })
}

/// AttachVolume, on the volume's host.
pub async fn attach_volume(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let a = ctx
        .cloud
        .attach_volume_routed(
            ctx.account(),
            input.str("VolumeId"),
            input.str("InstanceId"),
            input.str("Device"),
            Origin::Caller,
        )
        .await?;
    Ok(attachment_answer(a))
}

/// DetachVolume, on the volume's host.
pub async fn detach_volume(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let a = ctx
        .cloud
        .detach_volume_routed(
            ctx.account(),
            input.str("VolumeId"),
            input.str("InstanceId"),
            input.bool("Force").unwrap_or(false),
            Origin::Caller,
        )
        .await?;
    Ok(attachment_answer(a))
}

/// DeleteVolume, on the volume's host.
pub async fn delete_volume(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .delete_volume_routed(ctx.account(), input.str("VolumeId"), false, Origin::Caller)
        .await?;
    Ok(Value::obj([]))
}

/// DescribeVolumes: volumes named by ID from their hosts; a plain one covers every
/// available host of a region.
pub async fn describe_volumes(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let ids = input.strs("VolumeIds");
    let p = ctx
        .cloud
        .describe_volumes_routed(
            ctx.account(),
            &DescribeVolumes {
                volume_ids: ids.clone(),
                filters: filters(input),
                page: page_request(input)?,
            },
            Origin::Caller,
        )
        .await?;
    let mut items: Vec<(String, Value)> =
        p.local.iter().map(|v| (v.id.clone(), volume(v))).collect();
    items.extend(
        p.remote
            .iter()
            .map(|v| (v.volume_id.clone(), remote_volume(v))),
    );
    let items = in_request_order(&ids, items, |(id, _)| id.as_str());
    Ok(Value::obj([
        ("Volumes", Value::list(items.into_iter().map(|(_, v)| v))),
        ("NextToken", nonempty(&p.next_token)),
    ]))
}

/// CreateSnapshot, on the volume's host.
pub async fn create_snapshot(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let s = ctx
        .cloud
        .create_snapshot_routed(
            ctx.account(),
            input.str("VolumeId"),
            input.str("Description"),
            tags_for(input, "snapshot"),
            Origin::Caller,
        )
        .await?;
    Ok(match s {
        Answer::Here(s) => snapshot(&s),
        Answer::There(s) => remote_snapshot(&s),
    })
}

/// DescribeSnapshots: snapshots named by ID from their hosts; one without IDs covers every
/// available host of a region.
pub async fn describe_snapshots(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let ids = input.strs("SnapshotIds");
    let p = ctx
        .cloud
        .describe_snapshots_routed(
            ctx.account(),
            &DescribeSnapshots {
                snapshot_ids: ids.clone(),
                owner_ids: input.strs("OwnerIds"),
                filters: filters(input),
                page: page_request(input)?,
            },
            Origin::Caller,
        )
        .await?;
    let mut items: Vec<(String, Value)> = p
        .local
        .iter()
        .map(|s| (s.id.clone(), snapshot(s)))
        .collect();
    items.extend(
        p.remote
            .iter()
            .map(|s| (s.snapshot_id.clone(), remote_snapshot(s))),
    );
    let items = in_request_order(&ids, items, |(id, _)| id.as_str());
    Ok(Value::obj([
        ("Snapshots", Value::list(items.into_iter().map(|(_, s)| s))),
        ("NextToken", nonempty(&p.next_token)),
    ]))
}

/// DeleteSnapshot, on the snapshot's host.
pub async fn delete_snapshot(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .delete_snapshot_routed(ctx.account(), input.str("SnapshotId"), Origin::Caller)
        .await?;
    Ok(Value::obj([]))
}

/// DescribeImages.
pub fn describe_images(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let p = ctx.cloud.describe_images(
        ctx.account(),
        &DescribeImages {
            image_ids: input.strs("ImageIds"),
            owners: input.strs("Owners"),
            executable_users: input.strs("ExecutableUsers"),
            filters: filters(input),
            page: page_request(input)?,
        },
    )?;
    Ok(Value::obj([
        ("Images", Value::list(p.items.into_iter().map(image))),
        ("NextToken", nonempty(&p.next_token)),
    ]))
}

/// RegisterImage: `ImageLocation` is a bundle folder on the daemon's host (the admin
/// account only, as with the CLI's `--bundle`).
pub async fn register_image(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let location = input.str("ImageLocation");
    let i = ctx
        .cloud
        .register_image_regional(
            ctx.account(),
            RegisterRequest {
                name: input.str("Name").to_string(),
                description: input.str("Description").to_string(),
                bundle: (!location.is_empty()).then(|| location.into()),
                kernel: None,
                root_volume: None,
                boot_args: String::new(),
                root_device_name: input.str("RootDeviceName").to_string(),
                mappings: input
                    .items("BlockDeviceMappings")
                    .iter()
                    .map(mapping_in)
                    .collect(),
                ena_support: input.bool("EnaSupport"),
            },
        )
        .await?;
    Ok(Value::obj([("ImageId", i.id.into())]))
}

/// DeregisterImage.
pub async fn deregister_image(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    ctx.cloud
        .deregister_image_regional(ctx.account(), input.str("ImageId"))
        .await?;
    Ok(Value::obj([("Return", true.into())]))
}

/// CreateImage.
pub async fn create_image(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let id = ctx
        .cloud
        .create_image_routed(
            ctx.account(),
            input.str("InstanceId"),
            input.str("Name"),
            input.str("Description"),
            input.bool("NoReboot").unwrap_or(false),
            Origin::Caller,
        )
        .await?;
    Ok(Value::obj([("ImageId", id.into())]))
}

fn grantees(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|p| match p.opt_str("Group") {
            Some(g) => g.to_string(),
            None => p.str("UserId").to_string(),
        })
        .collect()
}

/// ModifyImageAttribute (launch permissions), in either of EC2's forms:
/// `LaunchPermission.Add.N.UserId` or `Attribute=launchPermission&OperationType=add&UserId.N`.
pub async fn modify_image_attribute(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let (mut add, mut remove) = match input.get("LaunchPermission") {
        Some(lp) => (grantees(lp.items("Add")), grantees(lp.items("Remove"))),
        None => (Vec::new(), Vec::new()),
    };
    if let Some(attr) = input.opt_str("Attribute") {
        if attr != "launchPermission" {
            return Err(ApiError::new(
                ErrorCode::UnsupportedOperation,
                format!("Modifying the image attribute {attr} is not supported by strato."),
            ));
        }
        let mut who = input.strs("UserIds");
        who.extend(input.strs("UserGroups"));
        match input.str("OperationType") {
            "add" => add.extend(who),
            "remove" => remove.extend(who),
            other => {
                return Err(ApiError::invalid(format!(
                    "OperationType must be add or remove, not '{other}'."
                )))
            }
        }
    }
    ctx.cloud
        .modify_launch_permissions_regional(ctx.account(), input.str("ImageId"), &add, &remove)
        .await?;
    Ok(Value::obj([]))
}

/// DescribeImageAttribute (launchPermission).
pub fn describe_image_attribute(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    let id = input.str("ImageId");
    let perms = ctx
        .cloud
        .describe_image_attribute(ctx.account(), id, input.str("Attribute"))?;
    Ok(Value::obj([
        ("ImageId", id.into()),
        (
            "LaunchPermissions",
            Value::list(perms.into_iter().map(|g| {
                if g == PUBLIC {
                    Value::obj([("Group", g.into())])
                } else {
                    Value::obj([("UserId", g.into())])
                }
            })),
        ),
    ]))
}

/// CopyImage. The source region applies its own launch permissions to the caller's gRPC
/// token; a Query API caller has none, so only the admin account (which the source trusts
/// over a Unix socket) may copy through this front end.
pub async fn copy_image(ctx: &Ctx<'_>, input: &Value) -> ApiResult<Value> {
    if ctx.account() != ctx.cloud.cfg.admin_account {
        return Err(ApiError::new(
            ErrorCode::UnsupportedOperation,
            "CopyImage through the Query API is for the admin account; other accounts copy with the gRPC API and their token.",
        ));
    }
    let i = ctx
        .cloud
        .copy_image_regional(
            ctx.account(),
            None,
            input.str("SourceRegion"),
            input.str("SourceImageId"),
            input.str("Name"),
            input.str("Description"),
        )
        .await?;
    Ok(Value::obj([("ImageId", i.id.into())]))
}
