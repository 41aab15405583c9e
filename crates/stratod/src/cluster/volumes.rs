//! Calls about volumes and snapshots in a region of hosts, for both front ends: a volume
//! lives on the host that created it (its file is on that host's disk), a snapshot on the
//! host of its volume, the region's owner index (`owners`) says which, and a call about
//! another host's volume or snapshot is forwarded to that host over the hosts' TLS links, as
//! calls about instances are (`route`). A call another host forwarded acts here only.
//!
//! Routed: DescribeVolumes and DescribeSnapshots (with IDs: each host describes its own;
//! without: every available host's), AttachVolume, DetachVolume, DeleteVolume,
//! CreateSnapshot (the snapshot is taken, and stays, on the volume's host) and
//! DeleteSnapshot. CreateVolume creates on the host asked, or from a snapshot on the
//! snapshot's host (its file is there), and puts the volume in the index. A volume attaches
//! only to an instance on its own host: AttachVolume of a volume and an instance on two
//! hosts moves a blank volume to the instance's host first (`volume_moves`), and is refused
//! with `InvalidVolume.ZoneMismatch`, EC2's refusal of a pair that cannot be joined, for a
//! volume that holds data.

use std::sync::Arc;

use strato_proto::v1 as pb;

use super::forward::{pb_filters, Link, Volumes};
use super::route::{Described, Origin, Resource};
use crate::cloud::compute::launch::check_device;
use crate::cloud::filters::Filter;
use crate::cloud::paging::{paginate, PageRequest};
use crate::cloud::storage::describe::{DescribeSnapshots, DescribeVolumes};
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::db::volumes::{Snapshot, Volume};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// An answer from this host (its own record) or from the resource's host (its API form).
#[derive(Debug)]
pub enum Answer<L, R> {
    /// Answered here.
    Here(L),
    /// Answered by the resource's host.
    There(R),
}

/// Where one resource of a call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In this host's database.
    Here,
    /// On another host of the region.
    Host(String),
    /// Nowhere the caller may see (this host answers NotFound).
    Unknown,
}

/// Where an AttachVolume runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairing {
    /// On this host (which also answers for an unknown volume or instance).
    Here,
    /// On the volume's host, which has the instance or answers NotFound for it.
    There(String),
    /// Nowhere: the volume and the instance live on different hosts.
    Apart {
        /// The volume's host.
        volume: String,
        /// The instance's host.
        instance: String,
    },
}

/// Where an AttachVolume of a volume at `volume` to an instance at `instance` runs. The
/// volume decides: its file is on its host, so only that host can attach it.
pub fn pairing(this_host: &str, volume: &Place, instance: &Place) -> Pairing {
    match (volume, instance) {
        (Place::Unknown, _) | (Place::Here, Place::Here | Place::Unknown) => Pairing::Here,
        (Place::Here, Place::Host(b)) => Pairing::Apart {
            volume: this_host.to_string(),
            instance: b.clone(),
        },
        (Place::Host(a), Place::Unknown) => Pairing::There(a.clone()),
        (Place::Host(a), Place::Host(b)) if a == b => Pairing::There(a.clone()),
        (Place::Host(a), Place::Here) => Pairing::Apart {
            volume: a.clone(),
            instance: this_host.to_string(),
        },
        (Place::Host(a), Place::Host(b)) => Pairing::Apart {
            volume: a.clone(),
            instance: b.clone(),
        },
    }
}

/// One page of the region's volumes (or snapshots, or instances), `here` and `there` merged
/// in the order one host lists its own (creation time, then ID, as `key` and `pb_key` give
/// them), so that a page's offset means the same on every call.
pub(super) fn region_page<L, R>(
    here: Vec<L>,
    there: Vec<R>,
    page: &PageRequest,
    key: fn(&L) -> (i64, &str),
    pb_key: fn(&R) -> (i64, &str),
) -> ApiResult<Described<L, R>> {
    let mut all: Vec<Answer<L, R>> = here.into_iter().map(Answer::Here).collect();
    all.extend(there.into_iter().map(Answer::There));
    all.sort_by(|a, b| order(a, key, pb_key).cmp(&order(b, key, pb_key)));
    let page = paginate(all, page)?;
    let mut out = Described {
        local: Vec::new(),
        next_token: page.next_token,
        remote: Vec::new(),
    };
    for v in page.items {
        match v {
            Answer::Here(v) => out.local.push(v),
            Answer::There(v) => out.remote.push(v),
        }
    }
    Ok(out)
}

/// The listing order of one item of [`region_page`].
fn order<L, R>(
    x: &Answer<L, R>,
    key: fn(&L) -> (i64, &str),
    pb_key: fn(&R) -> (i64, &str),
) -> (i64, &str) {
    match x {
        Answer::Here(v) => key(v),
        Answer::There(v) => pb_key(v),
    }
}

fn volume_key(v: &Volume) -> (i64, &str) {
    (v.created, &v.id)
}

fn pb_volume_key(v: &pb::Volume) -> (i64, &str) {
    (v.create_time_unix, &v.volume_id)
}

fn snapshot_key(s: &Snapshot) -> (i64, &str) {
    (s.created, &s.id)
}

fn pb_snapshot_key(s: &pb::Snapshot) -> (i64, &str) {
    (s.start_time_unix, &s.snapshot_id)
}

/// The refusal of a volume and an instance on different hosts.
pub(super) fn apart(volume_id: &str, instance_id: &str, volume: &str, instance: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidVolumeZoneMismatch,
        format!(
            "Volume {volume_id} lives on host {volume} and instance {instance_id} on host \
             {instance}: a volume is a file on its host's disk and attaches only to an \
             instance on that host."
        ),
    )
}

impl Cloud {
    /// Where `account`'s `id` of `kind` is, for a call from `origin`.
    pub(super) async fn place(
        &self,
        kind: Resource,
        account: &str,
        id: &str,
        origin: Origin,
    ) -> Place {
        let route = self
            .route_of(kind, account, &[id.to_string()], origin)
            .await;
        match route.single_remote() {
            Some(host) => Place::Host(host.to_string()),
            None if self.holds(kind, account, id) => Place::Here,
            None => Place::Unknown,
        }
    }

    /// The other host that holds volume `id`, if one does (`None`: answer here).
    async fn volume_elsewhere(
        &self,
        account: &str,
        id: &str,
        origin: Origin,
    ) -> Option<(Link, String)> {
        self.elsewhere(Resource::Volume, account, id, origin).await
    }

    /// The other host that holds `id` of `kind`, if one does (`None`: answer here).
    pub(super) async fn elsewhere(
        &self,
        kind: Resource,
        account: &str,
        id: &str,
        origin: Origin,
    ) -> Option<(Link, String)> {
        match self.place(kind, account, id, origin).await {
            Place::Host(host) => Some((self.link()?, host)),
            Place::Here | Place::Unknown => None,
        }
    }

    /// Puts `(ID, account)` of volumes or snapshots this host just made in the region's
    /// index. Best effort: while etcd is away nothing waits on it, and the reconciler puts
    /// them when it is back.
    pub async fn index_volumes(&self, volumes: &[(String, String)]) {
        let Some(region) = &self.cluster else { return };
        if !region.etcd_reachable() {
            return;
        }
        for (id, account) in volumes {
            if let Err(e) = region.put_owner(id, account).await {
                tracing::debug!(resource = %id, error = %crate::error::chain(&e), "not indexed yet; the reconciler will");
                return;
            }
        }
    }

    /// Removes `id`, which this host no longer has, from the region's index (best effort:
    /// the reconciler removes what this misses).
    pub(super) async fn unindex(&self, id: &str) {
        if let Some(region) = self.cluster.as_ref().filter(|r| r.etcd_reachable()) {
            if let Err(e) = region.drop_owner(id).await {
                tracing::debug!(resource = id, error = %crate::error::chain(&e), "left in the index; the reconciler will remove it");
            }
        }
    }

    /// Removes a volume this host no longer has from the region's index, in the background
    /// (for paths that hold an instance's lock); the reconciler removes what this misses.
    pub fn unindex_volume_later(&self, id: &str) {
        let Some(region) = self.cluster.clone() else {
            return;
        };
        if !region.etcd_reachable() {
            return;
        }
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = region.drop_owner(&id).await {
                tracing::debug!(volume = %id, error = %crate::error::chain(&e), "volume left in the index; the reconciler will remove it");
            }
        });
    }

    /// CreateVolume: on this host, or from a snapshot on the snapshot's host; indexed in
    /// the region by the host that makes it.
    pub async fn create_volume_routed(
        self: &Arc<Self>,
        account: &str,
        req: &pb::CreateVolumeRequest,
        origin: Origin,
    ) -> ApiResult<Answer<Volume, pb::Volume>> {
        if !req.region_volume_id.is_empty() {
            if origin != Origin::RegionHost {
                return Err(super::forward::hosts_only("RegionVolumeId"));
            }
            let v = self.adopt_blank_volume(super::volume_moves::moved_volume(account, req))?;
            self.index_volumes(&[(v.id.clone(), v.owner.clone())]).await;
            return Ok(Answer::Here(v));
        }
        if !req.snapshot_id.is_empty() {
            let there = self
                .elsewhere(Resource::Snapshot, account, &req.snapshot_id, origin)
                .await;
            if let Some((link, host)) = there {
                return link
                    .create_volume(&host, account, req.clone())
                    .await
                    .map(Answer::There);
            }
        }
        let v = self.create_volume(
            account,
            req.size,
            &req.volume_type,
            &req.availability_zone,
            &req.snapshot_id,
            crate::api::convert::tags_in(&req.tags),
        )?;
        self.index_volumes(&[(v.id.clone(), v.owner.clone())]).await;
        Ok(Answer::Here(v))
    }

    /// DescribeVolumes across the region: with IDs each volume's host answers for it; one
    /// without IDs covers every available host, paged over the region's listing (the aws
    /// CLI asks DescribeVolumes in pages of 1000 even when not told to); one another host
    /// sent covers this host only.
    pub async fn describe_volumes_routed(
        &self,
        account: &str,
        req: &DescribeVolumes,
        origin: Origin,
    ) -> ApiResult<Described<Volume, pb::Volume>> {
        let paged = req.page.max_results != 0 || !req.page.next_token.is_empty();
        if self.cluster.is_none()
            || origin == Origin::RegionHost
            || paged && !req.volume_ids.is_empty()
        {
            let page = self.describe_volumes(account, req)?;
            return Ok(Described {
                local: page.items,
                next_token: page.next_token,
                remote: Vec::new(),
            });
        }
        if req.volume_ids.is_empty() {
            // A page this host would refuse is refused before the other hosts are asked.
            paginate(Vec::<()>::new(), &req.page)?;
            let mut all = req.clone();
            all.page = PageRequest::default();
            let here = self.describe_volumes(account, &all)?.items;
            let there = super::fanout::volumes_of_other_hosts(self, account, &req.filters).await;
            return region_page(here, there, &req.page, volume_key, pb_volume_key);
        }
        self.described_by_owner(
            Resource::Volume,
            account,
            &req.volume_ids,
            origin,
            |ids| {
                let mut mine = req.clone();
                mine.volume_ids = ids;
                self.describe_volumes(account, &mine)
            },
            |link, host, ids| async move {
                link.describe_volumes(&host, account, ids, &req.filters)
                    .await
            },
        )
        .await
    }

    /// AttachVolume, on the volume's host; a blank volume moves to the instance's host
    /// first, one with data is refused when the instance is on another.
    pub async fn attach_volume_routed(
        self: &Arc<Self>,
        account: &str,
        volume_id: &str,
        instance_id: &str,
        device: &str,
        origin: Origin,
    ) -> ApiResult<Answer<Volume, pb::VolumeAttachment>> {
        let (Some(region), Origin::Caller) = (&self.cluster, origin) else {
            return self
                .attach_volume(account, volume_id, instance_id, device)
                .await
                .map(Answer::Here);
        };
        let volume = self
            .place(Resource::Volume, account, volume_id, origin)
            .await;
        let instance = self
            .place(Resource::Instance, account, instance_id, origin)
            .await;
        match (pairing(region.host(), &volume, &instance), self.link()) {
            (Pairing::Apart { volume, instance }, Some(link)) => {
                // Both exist: a device the volume's host would refuse is refused as it
                // would be, before the pairing.
                if device.is_empty() {
                    return Err(ApiError::missing("Device"));
                }
                check_device(device)?;
                self.move_blank_volume(
                    &link,
                    account,
                    volume_id,
                    instance_id,
                    (&volume, &instance),
                )
                .await?;
                if instance == region.host() {
                    return self
                        .attach_volume(account, volume_id, instance_id, device)
                        .await
                        .map(Answer::Here);
                }
                link.attach_volume(&instance, account, volume_id, instance_id, device)
                    .await
                    .map(Answer::There)
            }
            (Pairing::There(host), Some(link)) => link
                .attach_volume(&host, account, volume_id, instance_id, device)
                .await
                .map(Answer::There),
            _ => self
                .attach_volume(account, volume_id, instance_id, device)
                .await
                .map(Answer::Here),
        }
    }

    /// DetachVolume, on the volume's host.
    pub async fn detach_volume_routed(
        &self,
        account: &str,
        volume_id: &str,
        instance_id: &str,
        force: bool,
        origin: Origin,
    ) -> ApiResult<Answer<Volume, pb::VolumeAttachment>> {
        match self.volume_elsewhere(account, volume_id, origin).await {
            Some((link, host)) => link
                .detach_volume(&host, account, volume_id, instance_id, force)
                .await
                .map(Answer::There),
            None => self
                .detach_volume(account, volume_id, instance_id, force)
                .await
                .map(Answer::Here),
        }
    }

    /// DeleteVolume, on the volume's host, which takes it out of the region's index.
    /// With `moved`, only a blank volume moving to another host (`volume_moves`).
    pub async fn delete_volume_routed(
        &self,
        account: &str,
        volume_id: &str,
        moved: bool,
        origin: Origin,
    ) -> ApiResult<()> {
        if moved {
            if origin != Origin::RegionHost {
                return Err(super::forward::hosts_only("RegionMove"));
            }
            self.release_moved_volume(account, volume_id)?;
            self.unindex(volume_id).await;
            return Ok(());
        }
        if let Some((link, host)) = self.volume_elsewhere(account, volume_id, origin).await {
            return link.delete_volume(&host, account, volume_id).await;
        }
        self.delete_volume(account, volume_id)?;
        self.unindex(volume_id).await;
        Ok(())
    }

    /// CreateSnapshot, on the volume's host (where the snapshot then stays).
    pub async fn create_snapshot_routed(
        self: &Arc<Self>,
        account: &str,
        volume_id: &str,
        description: &str,
        tags: Vec<Tag>,
        origin: Origin,
    ) -> ApiResult<Answer<Snapshot, pb::Snapshot>> {
        match self.volume_elsewhere(account, volume_id, origin).await {
            Some((link, host)) => link
                .create_snapshot(&host, account, volume_id, description, &tags)
                .await
                .map(Answer::There),
            None => {
                let s = self.create_snapshot(account, volume_id, description, tags)?;
                self.index_volumes(&[(s.id.clone(), s.owner.clone())]).await;
                Ok(Answer::Here(s))
            }
        }
    }

    /// DeleteSnapshot, on the snapshot's host, which takes it out of the region's index.
    pub async fn delete_snapshot_routed(
        &self,
        account: &str,
        snapshot_id: &str,
        origin: Origin,
    ) -> ApiResult<()> {
        let there = self
            .elsewhere(Resource::Snapshot, account, snapshot_id, origin)
            .await;
        if let Some((link, host)) = there {
            return link.delete_snapshot(&host, account, snapshot_id).await;
        }
        self.delete_snapshot(account, snapshot_id)?;
        self.unindex(snapshot_id).await;
        Ok(())
    }

    /// DescribeSnapshots across the region, as [`Cloud::describe_volumes_routed`].
    pub async fn describe_snapshots_routed(
        &self,
        account: &str,
        req: &DescribeSnapshots,
        origin: Origin,
    ) -> ApiResult<Described<Snapshot, pb::Snapshot>> {
        let paged = req.page.max_results != 0 || !req.page.next_token.is_empty();
        if self.cluster.is_none()
            || origin == Origin::RegionHost
            || paged && !req.snapshot_ids.is_empty()
        {
            let page = self.describe_snapshots(account, req)?;
            return Ok(Described {
                local: page.items,
                next_token: page.next_token,
                remote: Vec::new(),
            });
        }
        if req.snapshot_ids.is_empty() {
            paginate(Vec::<()>::new(), &req.page)?;
            let mut all = req.clone();
            all.page = PageRequest::default();
            let here = self.describe_snapshots(account, &all)?.items;
            let there = super::fanout::snapshots_of_other_hosts(
                self,
                account,
                &req.owner_ids,
                &req.filters,
            )
            .await;
            return region_page(here, there, &req.page, snapshot_key, pb_snapshot_key);
        }
        self.described_by_owner(
            Resource::Snapshot,
            account,
            &req.snapshot_ids,
            origin,
            |ids| {
                let mut mine = req.clone();
                mine.snapshot_ids = ids;
                self.describe_snapshots(account, &mine)
            },
            |link, host, ids| async move {
                link.describe_snapshots(&host, account, ids, &req.owner_ids, &req.filters)
                    .await
            },
        )
        .await
    }
}

impl Link {
    /// CreateVolume on `host` (from a snapshot there).
    pub async fn create_volume(
        &self,
        host: &str,
        account: &str,
        msg: pb::CreateVolumeRequest,
    ) -> ApiResult<pb::Volume> {
        self.on(host, account, msg, |mut c: Volumes, r| async move {
            c.create_volume(r).await
        })
        .await
    }

    /// DescribeSnapshots of `host`'s own snapshots (`ids` empty: all of them).
    pub async fn describe_snapshots(
        &self,
        host: &str,
        account: &str,
        ids: Vec<String>,
        owner_ids: &[String],
        filters: &[Filter],
    ) -> ApiResult<Vec<pb::Snapshot>> {
        let msg = pb::DescribeSnapshotsRequest {
            snapshot_ids: ids,
            owner_ids: owner_ids.to_vec(),
            filters: pb_filters(filters),
            this_host_only: true,
            ..Default::default()
        };
        self.on(host, account, msg, |mut c: Volumes, r| async move {
            c.describe_snapshots(r).await
        })
        .await
        .map(|r| r.snapshots)
    }

    /// DeleteSnapshot on `host`.
    pub async fn delete_snapshot(
        &self,
        host: &str,
        account: &str,
        snapshot_id: &str,
    ) -> ApiResult<()> {
        let msg = pb::DeleteSnapshotRequest {
            snapshot_id: snapshot_id.to_string(),
        };
        self.on(host, account, msg, |mut c: Volumes, r| async move {
            c.delete_snapshot(r).await
        })
        .await
        .map(|_| ())
    }

    /// DescribeVolumes of `host`'s own volumes (`ids` empty: all of them).
    pub async fn describe_volumes(
        &self,
        host: &str,
        account: &str,
        ids: Vec<String>,
        filters: &[Filter],
    ) -> ApiResult<Vec<pb::Volume>> {
        let msg = pb::DescribeVolumesRequest {
            volume_ids: ids,
            filters: pb_filters(filters),
            this_host_only: true,
            ..Default::default()
        };
        self.on(host, account, msg, |mut c: Volumes, r| async move {
            c.describe_volumes(r).await
        })
        .await
        .map(|r| r.volumes)
    }

    /// AttachVolume on `host`.
    pub async fn attach_volume(
        &self,
        host: &str,
        account: &str,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> ApiResult<pb::VolumeAttachment> {
        let msg = pb::AttachVolumeRequest {
            volume_id: volume_id.to_string(),
            instance_id: instance_id.to_string(),
            device: device.to_string(),
        };
        self.on(host, account, msg, |mut c: Volumes, r| async move {
            c.attach_volume(r).await
        })
        .await
    }

    /// DetachVolume on `host`.
    pub async fn detach_volume(
        &self,
        host: &str,
        account: &str,
        volume_id: &str,
        instance_id: &str,
        force: bool,
    ) -> ApiResult<pb::VolumeAttachment> {
        let msg = pb::DetachVolumeRequest {
            volume_id: volume_id.to_string(),
            instance_id: instance_id.to_string(),
            force,
        };
        self.on(host, account, msg, |mut c: Volumes, r| async move {
            c.detach_volume(r).await
        })
        .await
    }

    /// DeleteVolume on `host`.
    pub async fn delete_volume(&self, host: &str, account: &str, volume_id: &str) -> ApiResult<()> {
        let msg = pb::DeleteVolumeRequest {
            volume_id: volume_id.to_string(),
            region_move: false,
        };
        self.on(host, account, msg, |mut c: Volumes, r| async move {
            c.delete_volume(r).await
        })
        .await
        .map(|_| ())
    }

    /// CreateSnapshot on `host`.
    pub async fn create_snapshot(
        &self,
        host: &str,
        account: &str,
        volume_id: &str,
        description: &str,
        tags: &[Tag],
    ) -> ApiResult<pb::Snapshot> {
        let msg = pb::CreateSnapshotRequest {
            volume_id: volume_id.to_string(),
            description: description.to_string(),
            tags: crate::api::convert::tags(tags),
        };
        self.on(host, account, msg, |mut c: Volumes, r| async move {
            c.create_snapshot(r).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: &str) -> Place {
        Place::Host(h.to_string())
    }

    #[test]
    fn the_volume_decides_where_an_attachment_runs() {
        use Pairing::*;
        // Both here, or something unknown that this host refuses as NotFound.
        assert_eq!(pairing("h1", &Place::Here, &Place::Here), Here);
        assert_eq!(pairing("h1", &Place::Here, &Place::Unknown), Here);
        assert_eq!(pairing("h1", &Place::Unknown, &host("h2")), Here);
        // Both on h2: h2 attaches; an instance h2 may not know is h2's to refuse.
        assert_eq!(pairing("h1", &host("h2"), &host("h2")), There("h2".into()));
        assert_eq!(
            pairing("h1", &host("h2"), &Place::Unknown),
            There("h2".into())
        );
        // Two hosts: refused, naming both, whichever host is asked.
        let apart = |v: &str, i: &str| Apart {
            volume: v.into(),
            instance: i.into(),
        };
        assert_eq!(pairing("h1", &Place::Here, &host("h3")), apart("h1", "h3"));
        assert_eq!(pairing("h1", &host("h2"), &Place::Here), apart("h2", "h1"));
        assert_eq!(pairing("h1", &host("h2"), &host("h3")), apart("h2", "h3"));
    }

    fn here(id: &str, created: i64) -> Volume {
        Volume {
            id: id.into(),
            owner: "000000000000".into(),
            size_gib: 1,
            volume_type: "gp3".into(),
            az: "home-1a".into(),
            snapshot_id: String::new(),
            state: crate::states::VolumeState::Available,
            created,
            instance_id: None,
            device: None,
            attach_state: None,
            delete_on_termination: false,
            slot: None,
            tags: Vec::new(),
        }
    }

    fn there(id: &str, created: i64) -> pb::Volume {
        pb::Volume {
            volume_id: id.into(),
            create_time_unix: created,
            ..Default::default()
        }
    }

    #[test]
    fn the_regions_volumes_page_in_one_order() {
        // Creation time, then ID, whichever host holds each.
        let local = || vec![here("vol-a", 1), here("vol-d", 3), here("vol-g", 9)];
        let remote = || {
            vec![
                there("vol-c", 2),
                there("vol-b", 3),
                there("vol-f", 5),
                there("vol-e", 4),
            ]
        };
        let ask = |max: i32, token: &str| {
            let p = PageRequest {
                max_results: max,
                next_token: token.into(),
            };
            region_page(local(), remote(), &p, volume_key, pb_volume_key)
        };
        let ids = |d: &Described<Volume, pb::Volume>| {
            let mut v: Vec<String> = d.local.iter().map(|v| v.id.clone()).collect();
            v.extend(d.remote.iter().map(|v| v.volume_id.clone()));
            v.sort();
            v
        };
        let all = ask(0, "").unwrap();
        assert_eq!(ids(&all).len(), 7);
        assert!(all.next_token.is_empty());
        let first = ask(5, "").unwrap();
        assert_eq!(ids(&first), ["vol-a", "vol-b", "vol-c", "vol-d", "vol-e"]);
        assert_eq!(first.local.len(), 2, "this host's stay in their own form");
        let second = ask(5, &first.next_token).unwrap();
        assert_eq!(ids(&second), ["vol-f", "vol-g"]);
        assert!(second.next_token.is_empty());
        assert_eq!(
            ask(3, "").unwrap_err().code,
            ErrorCode::InvalidParameterValue
        );
    }

    #[test]
    fn the_refusal_names_both_hosts() {
        let e = apart("vol-1", "i-1", "h2", "h3");
        assert_eq!(e.code, ErrorCode::InvalidVolumeZoneMismatch);
        assert!(
            e.message.contains("vol-1 lives on host h2"),
            "{}",
            e.message
        );
        assert!(e.message.contains("i-1 on host h3"), "{}", e.message);
    }
}
