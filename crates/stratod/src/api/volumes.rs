//! The Volumes service. In a region of hosts, calls about another host's volume or snapshot
//! go to that host (`cluster::volumes`), and a DescribeVolumes or DescribeSnapshots without
//! IDs covers every available host.

use strato_proto::v1 as pb;
use strato_proto::v1::volumes_server::Volumes;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::cloud::paging::PageRequest;
use crate::cloud::storage::describe::{DescribeSnapshots, DescribeVolumes};
use crate::cluster::route::{in_request_order, Origin};
use crate::cluster::volumes::Answer;
use crate::db::volumes::{Snapshot, Volume};

pub(crate) fn volume(v: &Volume) -> pb::Volume {
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

/// An attachment as this host or the volume's host answered it.
fn attachment_answer(a: Answer<Volume, pb::VolumeAttachment>) -> pb::VolumeAttachment {
    match a {
        Answer::Here(v) => attachment(&v).unwrap_or_default(),
        Answer::There(a) => a,
    }
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
        let origin = self.origin(&req);
        self.handle_async("CreateVolume", req, |account, r| async move {
            self.cloud
                .create_volume_routed(&account, &r, origin)
                .await
                .map(|a| match a {
                    Answer::Here(v) => volume(&v),
                    Answer::There(v) => v,
                })
        })
        .await
    }

    async fn attach_volume(
        &self,
        req: Request<pb::AttachVolumeRequest>,
    ) -> Result<Response<pb::VolumeAttachment>, Status> {
        let origin = self.origin(&req);
        self.handle_async("AttachVolume", req, |account, r| async move {
            self.cloud
                .attach_volume_routed(&account, &r.volume_id, &r.instance_id, &r.device, origin)
                .await
                .map(attachment_answer)
        })
        .await
    }

    async fn detach_volume(
        &self,
        req: Request<pb::DetachVolumeRequest>,
    ) -> Result<Response<pb::VolumeAttachment>, Status> {
        let origin = self.origin(&req);
        self.handle_async("DetachVolume", req, |account, r| async move {
            self.cloud
                .detach_volume_routed(&account, &r.volume_id, &r.instance_id, r.force, origin)
                .await
                .map(attachment_answer)
        })
        .await
    }

    async fn delete_volume(
        &self,
        req: Request<pb::DeleteVolumeRequest>,
    ) -> Result<Response<pb::DeleteVolumeResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("DeleteVolume", req, |account, r| async move {
            self.cloud
                .delete_volume_routed(&account, &r.volume_id, r.region_move, origin)
                .await
                .map(|_| pb::DeleteVolumeResponse {})
        })
        .await
    }

    async fn describe_volumes(
        &self,
        req: Request<pb::DescribeVolumesRequest>,
    ) -> Result<Response<pb::DescribeVolumesResponse>, Status> {
        // Another host asks for its own part only (this_host_only): it routed the call.
        let origin = match (self.origin(&req), req.get_ref().this_host_only) {
            (_, true) => Origin::RegionHost,
            (o, false) => o,
        };
        self.handle_async("DescribeVolumes", req, |account, r| async move {
            let ids = r.volume_ids.clone();
            let d = self
                .cloud
                .describe_volumes_routed(
                    &account,
                    &DescribeVolumes {
                        volume_ids: r.volume_ids,
                        filters: convert::filters(&r.filters),
                        page: PageRequest {
                            max_results: r.max_results,
                            next_token: r.next_token,
                        },
                    },
                    origin,
                )
                .await?;
            let mut volumes: Vec<pb::Volume> = d.local.iter().map(volume).collect();
            volumes.extend(d.remote);
            Ok(pb::DescribeVolumesResponse {
                next_token: d.next_token,
                volumes: in_request_order(&ids, volumes, |v| v.volume_id.as_str()),
            })
        })
        .await
    }

    async fn create_snapshot(
        &self,
        req: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::Snapshot>, Status> {
        let origin = self.origin(&req);
        self.handle_async("CreateSnapshot", req, |account, r| async move {
            self.cloud
                .create_snapshot_routed(
                    &account,
                    &r.volume_id,
                    &r.description,
                    convert::tags_in(&r.tags),
                    origin,
                )
                .await
                .map(|a| match a {
                    Answer::Here(s) => snapshot(&s),
                    Answer::There(s) => s,
                })
        })
        .await
    }

    async fn describe_snapshots(
        &self,
        req: Request<pb::DescribeSnapshotsRequest>,
    ) -> Result<Response<pb::DescribeSnapshotsResponse>, Status> {
        let origin = match (self.origin(&req), req.get_ref().this_host_only) {
            (_, true) => Origin::RegionHost,
            (o, false) => o,
        };
        self.handle_async("DescribeSnapshots", req, |account, r| async move {
            let ids = r.snapshot_ids.clone();
            let d = self
                .cloud
                .describe_snapshots_routed(
                    &account,
                    &DescribeSnapshots {
                        snapshot_ids: r.snapshot_ids,
                        owner_ids: r.owner_ids,
                        filters: convert::filters(&r.filters),
                        page: PageRequest {
                            max_results: r.max_results,
                            next_token: r.next_token,
                        },
                    },
                    origin,
                )
                .await?;
            let mut snapshots: Vec<pb::Snapshot> = d.local.iter().map(snapshot).collect();
            snapshots.extend(d.remote);
            Ok(pb::DescribeSnapshotsResponse {
                next_token: d.next_token,
                snapshots: in_request_order(&ids, snapshots, |s| s.snapshot_id.as_str()),
            })
        })
        .await
    }

    async fn delete_snapshot(
        &self,
        req: Request<pb::DeleteSnapshotRequest>,
    ) -> Result<Response<pb::DeleteSnapshotResponse>, Status> {
        let origin = self.origin(&req);
        self.handle_async("DeleteSnapshot", req, |account, r| async move {
            self.cloud
                .delete_snapshot_routed(&account, &r.snapshot_id, origin)
                .await
                .map(|_| pb::DeleteSnapshotResponse {})
        })
        .await
    }
}
