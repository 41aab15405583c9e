//! The Volumes service.

use strato_proto::v1 as pb;
use strato_proto::v1::volumes_server::Volumes;
use tonic::{Request, Response, Status};

use super::convert;
use super::Api;
use crate::cloud::filters;
use crate::db::volumes::{Snapshot, Volume};
use crate::error::ApiResult;
use crate::ids::{self, Kind};

const VOLUME_FILTERS: &[&str] = &[
    "volume-id",
    "status",
    "size",
    "volume-type",
    "availability-zone",
    "snapshot-id",
    "attachment.instance-id",
    "attachment.device",
    "attachment.delete-on-termination",
    "tag-key",
];

const SNAPSHOT_FILTERS: &[&str] = &[
    "snapshot-id",
    "volume-id",
    "status",
    "owner-id",
    "description",
    "tag-key",
];

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
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .create_volume(
                &account,
                r.size,
                &r.volume_type,
                &r.availability_zone,
                &r.snapshot_id,
                convert::tags_in(&r.tags),
            )
            .map(|v| volume(&v));
        self.finish("CreateVolume", result)
    }

    async fn attach_volume(
        &self,
        req: Request<pb::AttachVolumeRequest>,
    ) -> Result<Response<pb::VolumeAttachment>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .attach_volume(&account, &r.volume_id, &r.instance_id, &r.device)
            .await
            .map(|v| attachment(&v).unwrap_or_default());
        self.finish("AttachVolume", result)
    }

    async fn detach_volume(
        &self,
        req: Request<pb::DetachVolumeRequest>,
    ) -> Result<Response<pb::VolumeAttachment>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .detach_volume(&account, &r.volume_id, &r.instance_id, r.force)
            .await
            .map(|v| attachment(&v).unwrap_or_default());
        self.finish("DetachVolume", result)
    }

    async fn delete_volume(
        &self,
        req: Request<pb::DeleteVolumeRequest>,
    ) -> Result<Response<pb::DeleteVolumeResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .delete_volume(&account, &r.volume_id)
            .map(|_| pb::DeleteVolumeResponse {});
        self.finish("DeleteVolume", result)
    }

    async fn describe_volumes(
        &self,
        req: Request<pb::DescribeVolumesRequest>,
    ) -> Result<Response<pb::DescribeVolumesResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result: ApiResult<_> = (|| {
            let f = convert::filters(&r.filters);
            filters::check_names(&f, VOLUME_FILTERS)?;
            ids::check_all(Kind::Volume, &r.volume_ids)?;
            let all = self.cloud.db.volumes(Some(&account))?;
            for id in &r.volume_ids {
                if !all.iter().any(|v| &v.id == id) {
                    return Err(Kind::Volume.not_found(id));
                }
            }
            let mut out = Vec::new();
            for v in all {
                if !r.volume_ids.is_empty() && !r.volume_ids.contains(&v.id) {
                    continue;
                }
                let ok = filters::matches(&f, |name| {
                    let one = |s: &str| Some(vec![s.to_string()]);
                    match name {
                        "volume-id" => one(&v.id),
                        "status" => one(v.state.name()),
                        "size" => one(&v.size_gib.to_string()),
                        "volume-type" => one(&v.volume_type),
                        "availability-zone" => one(&v.az),
                        "snapshot-id" => one(&v.snapshot_id),
                        "attachment.instance-id" => Some(v.instance_id.iter().cloned().collect()),
                        "attachment.device" => Some(v.device.iter().cloned().collect()),
                        "attachment.delete-on-termination" => {
                            one(&v.delete_on_termination.to_string())
                        }
                        n => filters::tag_values(&v.tags, n),
                    }
                })?;
                if ok {
                    out.push(volume(&v));
                }
            }
            if r.max_results != 0 && !r.volume_ids.is_empty() {
                return Err(super::ids_with_page_size("VolumeIds"));
            }
            let (volumes, next_token) = super::paginate(out, r.max_results, &r.next_token)?;
            Ok(pb::DescribeVolumesResponse {
                volumes,
                next_token,
            })
        })();
        self.finish("DescribeVolumes", result)
    }

    async fn create_snapshot(
        &self,
        req: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::Snapshot>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .create_snapshot(
                &account,
                &r.volume_id,
                &r.description,
                convert::tags_in(&r.tags),
            )
            .map(|s| snapshot(&s));
        self.finish("CreateSnapshot", result)
    }

    async fn describe_snapshots(
        &self,
        req: Request<pb::DescribeSnapshotsRequest>,
    ) -> Result<Response<pb::DescribeSnapshotsResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result: ApiResult<_> = (|| {
            let f = convert::filters(&r.filters);
            filters::check_names(&f, SNAPSHOT_FILTERS)?;
            ids::check_all(Kind::Snapshot, &r.snapshot_ids)?;
            let owners: Vec<String> = r
                .owner_ids
                .iter()
                .map(|o| {
                    if o == "self" {
                        account.clone()
                    } else {
                        o.clone()
                    }
                })
                .collect();
            let all: Vec<Snapshot> = self
                .cloud
                .db
                .snapshots()?
                .into_iter()
                .filter(|s| s.owner == account)
                .collect();
            for id in &r.snapshot_ids {
                if !all.iter().any(|s| &s.id == id) {
                    return Err(Kind::Snapshot.not_found(id));
                }
            }
            let mut out = Vec::new();
            for s in all {
                if (!r.snapshot_ids.is_empty() && !r.snapshot_ids.contains(&s.id))
                    || (!owners.is_empty() && !owners.contains(&s.owner))
                {
                    continue;
                }
                let ok = filters::matches(&f, |name| {
                    let one = |v: &str| Some(vec![v.to_string()]);
                    match name {
                        "snapshot-id" => one(&s.id),
                        "volume-id" => one(&s.volume_id),
                        "status" => one(s.state.name()),
                        "owner-id" => one(&s.owner),
                        "description" => one(&s.description),
                        n => filters::tag_values(&s.tags, n),
                    }
                })?;
                if ok {
                    out.push(snapshot(&s));
                }
            }
            if r.max_results != 0 && !r.snapshot_ids.is_empty() {
                return Err(super::ids_with_page_size("SnapshotIds"));
            }
            let (snapshots, next_token) = super::paginate(out, r.max_results, &r.next_token)?;
            Ok(pb::DescribeSnapshotsResponse {
                snapshots,
                next_token,
            })
        })();
        self.finish("DescribeSnapshots", result)
    }

    async fn delete_snapshot(
        &self,
        req: Request<pb::DeleteSnapshotRequest>,
    ) -> Result<Response<pb::DeleteSnapshotResponse>, Status> {
        let account = self.account(&req)?;
        let r = req.into_inner();
        let result = self
            .cloud
            .delete_snapshot(&account, &r.snapshot_id)
            .map(|_| pb::DeleteSnapshotResponse {});
        self.finish("DeleteSnapshot", result)
    }
}
