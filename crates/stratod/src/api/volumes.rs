//! The Volumes service.

use strato_proto::v1 as pb;
use strato_proto::v1::volumes_server::Volumes;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::cloud::paging::PageRequest;
use crate::cloud::storage::describe::{DescribeSnapshots, DescribeVolumes};
use crate::db::volumes::{Snapshot, Volume};

fn volume(v: &Volume) -> pb::Volume {
    pb::Volume {
        volume_id: v.id.clone(),
        size: v.size_gib,
        volume_type: v.volume_type.clone(),
        availability_zone: v.az.clone(),
        snapshot_id: v.snapshot_id.clone(),
        state: v.state.to_string(),
        create_time_unix: v.created,
        attachments: attachment(v).into_iter().collect(),
        tags: convert::tags(&v.tags),
    }
}

fn attachment(v: &Volume) -> Option<pb::VolumeAttachment> {
    Some(pb::VolumeAttachment {
        volume_id: v.id.clone(),
        instance_id: v.instance_id.clone()?,
        device: v.device.clone().unwrap_or_default(),
        state: v
            .attach_state
            .map(|a| a.name())
            .unwrap_or_default()
            .to_string(),
        delete_on_termination: v.delete_on_termination,
    })
}

fn snapshot(s: &Snapshot) -> pb::Snapshot {
    pb::Snapshot {
        snapshot_id: s.id.clone(),
        volume_id: s.volume_id.clone(),
        volume_size: s.size_gib,
        state: s.state.to_string(),
        progress: format!("{}%", s.progress),
        start_time_unix: s.created,
        description: s.description.clone(),
        owner_id: s.owner.clone(),
        tags: convert::tags(&s.tags),
    }
}

#[tonic::async_trait]
impl Volumes for Api {
    async fn create_volume(
        &self,
        req: Request<pb::CreateVolumeRequest>,
    ) -> Result<Response<pb::Volume>, Status> {
        self.handle("CreateVolume", req, |account, r| {
            self.cloud
                .create_volume(
                    account,
                    r.size,
                    &r.volume_type,
                    &r.availability_zone,
                    &r.snapshot_id,
                    convert::tags_in(&r.tags),
                )
                .map(|v| volume(&v))
        })
    }

    async fn attach_volume(
        &self,
        req: Request<pb::AttachVolumeRequest>,
    ) -> Result<Response<pb::VolumeAttachment>, Status> {
        self.handle_async("AttachVolume", req, |account, r| async move {
            self.cloud
                .attach_volume(&account, &r.volume_id, &r.instance_id, &r.device)
                .await
                .map(|v| attachment(&v).unwrap_or_default())
        })
        .await
    }

    async fn detach_volume(
        &self,
        req: Request<pb::DetachVolumeRequest>,
    ) -> Result<Response<pb::VolumeAttachment>, Status> {
        self.handle_async("DetachVolume", req, |account, r| async move {
            self.cloud
                .detach_volume(&account, &r.volume_id, &r.instance_id, r.force)
                .await
                .map(|v| attachment(&v).unwrap_or_default())
        })
        .await
    }

    async fn delete_volume(
        &self,
        req: Request<pb::DeleteVolumeRequest>,
    ) -> Result<Response<pb::DeleteVolumeResponse>, Status> {
        self.handle("DeleteVolume", req, |account, r| {
            self.cloud
                .delete_volume(account, &r.volume_id)
                .map(|_| pb::DeleteVolumeResponse {})
        })
    }

    async fn describe_volumes(
        &self,
        req: Request<pb::DescribeVolumesRequest>,
    ) -> Result<Response<pb::DescribeVolumesResponse>, Status> {
        self.handle("DescribeVolumes", req, |account, r| {
            self.cloud
                .describe_volumes(
                    account,
                    &DescribeVolumes {
                        volume_ids: r.volume_ids,
                        filters: convert::filters(&r.filters),
                        page: PageRequest {
                            max_results: r.max_results,
                            next_token: r.next_token,
                        },
                    },
                )
                .map(|p| pb::DescribeVolumesResponse {
                    next_token: p.next_token,
                    volumes: p.items.iter().map(volume).collect(),
                })
        })
    }

    async fn create_snapshot(
        &self,
        req: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::Snapshot>, Status> {
        self.handle("CreateSnapshot", req, |account, r| {
            self.cloud
                .create_snapshot(
                    account,
                    &r.volume_id,
                    &r.description,
                    convert::tags_in(&r.tags),
                )
                .map(|s| snapshot(&s))
        })
    }

    async fn describe_snapshots(
        &self,
        req: Request<pb::DescribeSnapshotsRequest>,
    ) -> Result<Response<pb::DescribeSnapshotsResponse>, Status> {
        self.handle("DescribeSnapshots", req, |account, r| {
            self.cloud
                .describe_snapshots(
                    account,
                    &DescribeSnapshots {
                        snapshot_ids: r.snapshot_ids,
                        owner_ids: r.owner_ids,
                        filters: convert::filters(&r.filters),
                        page: PageRequest {
                            max_results: r.max_results,
                            next_token: r.next_token,
                        },
                    },
                )
                .map(|p| pb::DescribeSnapshotsResponse {
                    next_token: p.next_token,
                    snapshots: p.items.iter().map(snapshot).collect(),
                })
        })
    }

    async fn delete_snapshot(
        &self,
        req: Request<pb::DeleteSnapshotRequest>,
    ) -> Result<Response<pb::DeleteSnapshotResponse>, Status> {
        self.handle("DeleteSnapshot", req, |account, r| {
            self.cloud
                .delete_snapshot(account, &r.snapshot_id)
                .map(|_| pb::DeleteSnapshotResponse {})
        })
    }
}
