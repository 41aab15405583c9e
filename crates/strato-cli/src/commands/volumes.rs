//! Volumes and snapshots.

use strato_proto::v1::{
    AttachVolumeRequest, CreateSnapshotRequest, CreateVolumeRequest, DeleteSnapshotRequest,
    DeleteVolumeRequest, DescribeSnapshotsRequest, DescribeVolumesRequest, DetachVolumeRequest,
};

use crate::args::volumes::{
    AttachVolume, CreateSnapshot, CreateVolume, DescribeSnapshots, DescribeVolumes, DetachVolume,
    SnapshotId, VolumeId,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::View;
use crate::parse::{flatten, tags_for};
use crate::wait;

/// `create-volume`
pub async fn create_volume(conn: &Conn, a: CreateVolume) -> Result<View, CliError> {
    let tags = tags_for("volume", flatten(a.tag_specifications), flatten(a.tags))
        .map_err(CliError::Usage)?;
    let request = CreateVolumeRequest {
        // 0 asks for the snapshot's size.
        size: a.size.unwrap_or_default(),
        volume_type: a.volume_type.unwrap_or_default(),
        availability_zone: a.availability_zone.unwrap_or_default(),
        snapshot_id: a.snapshot_id.unwrap_or_default(),
        tags,
        ..Default::default()
    };
    let volume = conn
        .volumes()
        .create_volume(request)
        .await
        .map_err(conn.error("CreateVolume"))?;
    Ok(View::Volume(volume.into_inner()))
}

/// `attach-volume`
pub async fn attach_volume(conn: &Conn, a: AttachVolume) -> Result<View, CliError> {
    let request = AttachVolumeRequest {
        volume_id: a.volume_id,
        instance_id: a.instance_id,
        device: a.device,
    };
    let attachment = conn
        .volumes()
        .attach_volume(request)
        .await
        .map_err(conn.error("AttachVolume"))?;
    Ok(View::Attachment(attachment.into_inner()))
}

/// `detach-volume`
pub async fn detach_volume(conn: &Conn, a: DetachVolume) -> Result<View, CliError> {
    let request = DetachVolumeRequest {
        volume_id: a.volume_id,
        instance_id: a.instance_id.unwrap_or_default(),
        force: a.force,
    };
    let attachment = conn
        .volumes()
        .detach_volume(request)
        .await
        .map_err(conn.error("DetachVolume"))?;
    Ok(View::Attachment(attachment.into_inner()))
}

/// `delete-volume`
pub async fn delete_volume(conn: &Conn, a: VolumeId) -> Result<View, CliError> {
    let request = DeleteVolumeRequest {
        volume_id: a.volume_id,
        ..Default::default()
    };
    conn.volumes()
        .delete_volume(request)
        .await
        .map_err(conn.error("DeleteVolume"))?;
    Ok(View::Empty)
}

/// `describe-volumes`
pub async fn describe_volumes(conn: &Conn, a: DescribeVolumes) -> Result<View, CliError> {
    let request = DescribeVolumesRequest {
        volume_ids: a.volume_ids,
        filters: flatten(a.filters),
        max_results: a.page_size.unwrap_or_default(),
        ..Default::default()
    };
    let client = conn.volumes();
    let err = conn.error("DescribeVolumes");
    let items = super::all_pages(|next_token| {
        let mut client = client.clone();
        let request = DescribeVolumesRequest {
            next_token,
            ..request.clone()
        };
        let err = &err;
        async move {
            let page = client
                .describe_volumes(request)
                .await
                .map_err(err)?
                .into_inner();
            Ok((page.volumes, page.next_token))
        }
    })
    .await?;
    Ok(View::Volumes(items))
}

/// `create-snapshot`
pub async fn create_snapshot(conn: &Conn, a: CreateSnapshot) -> Result<View, CliError> {
    let tags = tags_for("snapshot", flatten(a.tag_specifications), flatten(a.tags))
        .map_err(CliError::Usage)?;
    let request = CreateSnapshotRequest {
        volume_id: a.volume_id,
        description: a.description.unwrap_or_default(),
        tags,
    };
    let mut snapshot = conn
        .volumes()
        .create_snapshot(request)
        .await
        .map_err(conn.error("CreateSnapshot"))?
        .into_inner();
    if a.wait.wait {
        snapshot = wait::snapshot(conn, &snapshot.snapshot_id, a.wait).await?;
    }
    Ok(View::Snapshot(snapshot))
}

/// `describe-snapshots`
pub async fn describe_snapshots(conn: &Conn, a: DescribeSnapshots) -> Result<View, CliError> {
    let request = DescribeSnapshotsRequest {
        snapshot_ids: a.snapshot_ids,
        owner_ids: a.owner_ids,
        filters: flatten(a.filters),
        max_results: a.page_size.unwrap_or_default(),
        ..Default::default()
    };
    let client = conn.volumes();
    let err = conn.error("DescribeSnapshots");
    let items = super::all_pages(|next_token| {
        let mut client = client.clone();
        let request = DescribeSnapshotsRequest {
            next_token,
            ..request.clone()
        };
        let err = &err;
        async move {
            let page = client
                .describe_snapshots(request)
                .await
                .map_err(err)?
                .into_inner();
            Ok((page.snapshots, page.next_token))
        }
    })
    .await?;
    Ok(View::Snapshots(items))
}

/// `delete-snapshot`
pub async fn delete_snapshot(conn: &Conn, a: SnapshotId) -> Result<View, CliError> {
    let request = DeleteSnapshotRequest {
        snapshot_id: a.snapshot_id,
    };
    conn.volumes()
        .delete_snapshot(request)
        .await
        .map_err(conn.error("DeleteSnapshot"))?;
    Ok(View::Empty)
}
