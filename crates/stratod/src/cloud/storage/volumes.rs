//! EBS-style volumes and snapshots: sparse files under the data directory; attach and
//! detach on running instances through the monitor's empty drive slots, on stopped ones in
//! the records alone; snapshots as reflinks or sparse copies with progress.

use std::sync::Arc;
use std::time::Duration;

use crate::cloud::compute::launch::{check_device, check_size, device_index, HOT_SLOTS};
use crate::cloud::Cloud;
use crate::db::instances::Tag;
use crate::db::volumes::{Snapshot, Volume};
use crate::db::{now_ms, now_s};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};
use crate::lifecycle::State;
use crate::states::{AttachState, ImageState, SnapshotState, VolumeState};
use crate::storage::{self, GIB};
use crate::supervisor::{Monitor, VmmPaths};
use strato_vmm_api::names;

/// Volume type labels EC2 knows.
pub const VOLUME_TYPES: &[&str] = &["standard", "gp2", "gp3", "io1", "io2", "st1", "sc1"];

/// Checks a volume type label (CreateVolume, and the mappings of RunInstances and
/// RegisterImage).
pub fn check_volume_type(vtype: &str) -> ApiResult<()> {
    if !VOLUME_TYPES.contains(&vtype) {
        return Err(ApiError::invalid(format!(
            "Invalid value '{}' for volumeType: use one of {}.",
            vtype.chars().take(32).collect::<String>(),
            VOLUME_TYPES.join(", ")
        )));
    }
    Ok(())
}

impl Cloud {
    /// A volume the account owns.
    pub fn owned_volume(&self, account: &str, id: &str) -> ApiResult<Volume> {
        ids::check(Kind::Volume, id)?;
        match self.db.volume(id)? {
            Some(v) if v.owner == account => Ok(v),
            _ => Err(Kind::Volume.not_found(id)),
        }
    }

    /// The `(volume ID, account)` of every volume this host holds (the region's volume index
    /// follows them).
    pub fn held_volumes(&self) -> ApiResult<Vec<(String, String)>> {
        Ok(self
            .db
            .volumes(None)?
            .into_iter()
            .map(|v| (v.id, v.owner))
            .collect())
    }

    /// The `(snapshot ID, account)` of every snapshot this host holds (the region's index
    /// follows them).
    pub fn held_snapshots(&self) -> ApiResult<Vec<(String, String)>> {
        Ok(self
            .db
            .snapshots()?
            .into_iter()
            .map(|s| (s.id, s.owner))
            .collect())
    }

    /// A snapshot the account owns.
    pub fn owned_snapshot(&self, account: &str, id: &str) -> ApiResult<Snapshot> {
        ids::check(Kind::Snapshot, id)?;
        match self.db.snapshot(id)? {
            // A replica of another host's snapshot is that host's to change.
            Some(s) if s.owner == account && !self.db.is_replica(id)? => Ok(s),
            _ => Err(Kind::Snapshot.not_found(id)),
        }
    }

    /// CreateVolume: blank, or cloned from a snapshot (then `creating` until the copy ends).
    pub fn create_volume(
        self: &Arc<Self>,
        account: &str,
        size: i64,
        volume_type: &str,
        az: &str,
        snapshot_id: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<Volume> {
        let id = ids::new_id(Kind::Volume);
        self.create_volume_as(
            account,
            size,
            volume_type,
            az,
            snapshot_id,
            tags,
            (id, now_s()),
        )
    }

    /// A blank volume another host of the region hands over (`cluster::volumes`), under its
    /// ID and creation time: blank here too, since it was never written there.
    /// `moved` gives the account, size, type, AZ, tags, ID and creation time.
    pub fn adopt_blank_volume(self: &Arc<Self>, moved: Volume) -> ApiResult<Volume> {
        ids::check(Kind::Volume, &moved.id)?;
        if self.db.volume(&moved.id)?.is_some() {
            return Err(ApiError::new(
                ErrorCode::IncorrectState,
                format!("Volume {} is on this host already.", moved.id),
            ));
        }
        self.create_volume_as(
            &moved.owner,
            moved.size_gib,
            &moved.volume_type,
            &moved.az,
            "",
            moved.tags,
            (moved.id, moved.created),
        )
    }

    /// Whether volume `id`'s file holds no data: sparse with no block allocated, as
    /// CreateVolume made it and no guest ever wrote it (a filesystem without sparse files
    /// always says no).
    pub fn volume_never_written(&self, id: &str) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(self.volume_path(id)).is_ok_and(|m| m.blocks() == 0)
    }

    /// The local half of a blank volume's move to another host (which made its copy):
    /// deletes it here if it is still available, detached, without snapshots and never
    /// written; else refuses, and the move is undone.
    pub fn release_moved_volume(&self, account: &str, id: &str) -> ApiResult<()> {
        let v = self.owned_volume(account, id)?;
        let written = !self.volume_never_written(id);
        if written || !self.db.delete_free_volume(&v.id)? {
            return Err(ApiError::new(
                ErrorCode::InvalidVolumeZoneMismatch,
                format!(
                    "Volume {id} holds data (or is in use) on its host: only a blank volume \
                     never attached moves to another host's instance."
                ),
            ));
        }
        self.db.close_period(id, now_ms())?;
        if let Err(e) = crate::cloud::remove_file(&self.volume_path(id)) {
            tracing::warn!(volume = id, error = %e, "cannot delete a moved volume's file (the next start-up sweeps it)");
        }
        Ok(())
    }

    // The arguments of CreateVolume, and the ID and creation time it gives.
    #[allow(clippy::too_many_arguments)]
    fn create_volume_as(
        self: &Arc<Self>,
        account: &str,
        size: i64,
        volume_type: &str,
        az: &str,
        snapshot_id: &str,
        tags: Vec<Tag>,
        (id, created): (String, i64),
    ) -> ApiResult<Volume> {
        crate::cloud::tags::check(&tags)?;
        let vtype = if volume_type.is_empty() {
            "gp3"
        } else {
            volume_type
        };
        check_volume_type(vtype)?;
        if az.is_empty() {
            return Err(ApiError::missing("AvailabilityZone"));
        }
        if !self.cfg.availability_zones.iter().any(|a| a == az) {
            return Err(ApiError::new(
                ErrorCode::InvalidAvailabilityZone,
                format!(
                    "The zone '{}' does not exist.",
                    az.chars().take(64).collect::<String>()
                ),
            ));
        }
        let snap = if snapshot_id.is_empty() {
            None
        } else {
            let s = self.owned_snapshot(account, snapshot_id)?;
            if s.state != SnapshotState::Completed {
                return Err(ApiError::new(
                    ErrorCode::IncorrectState,
                    format!("Snapshot {} is {}.", s.id, s.state),
                ));
            }
            Some(s)
        };
        let size = match (&snap, size) {
            (Some(s), 0) => s.size_gib,
            (Some(s), n) if n < s.size_gib => {
                return Err(ApiError::invalid(format!(
                    "Volume of {n}GiB is smaller than snapshot '{}' ({}GiB).",
                    s.id, s.size_gib
                )))
            }
            (_, n) => n,
        };
        check_size(size)?;
        let need = match &snap {
            Some(s) => self.copy_need([self.snapshot_path(&s.id)]),
            None => 0,
        };
        self.ensure_space(need, ErrorCode::InsufficientVolumeCapacity, "the volume")?;
        let v = Volume {
            id,
            owner: account.to_string(),
            size_gib: size,
            volume_type: vtype.to_string(),
            az: az.to_string(),
            snapshot_id: snapshot_id.to_string(),
            state: if snap.is_some() {
                VolumeState::Creating
            } else {
                VolumeState::Available
            },
            created,
            instance_id: None,
            device: None,
            attach_state: None,
            delete_on_termination: false,
            slot: None,
            tags,
        };
        let path = self.volume_path(&v.id);
        if snap.is_none() {
            storage::create_sparse(&path, size as u64 * GIB)
                .map_err(|e| crate::cloud::host_io("Cannot create the volume file", e))?;
        }
        if let Err(e) = self.db.insert_volume(&v) {
            // No record, no file: a volume the caller was refused must not linger.
            let _ = crate::cloud::remove_file(&path);
            return Err(e.into());
        }
        self.meter_volume(&v)?;
        if snap.is_some() {
            self.fill_volume(&v);
        }
        Ok(v)
    }

    /// Clones a `creating` volume's snapshot into its file, then marks it available.
    fn fill_volume(self: &Arc<Self>, v: &Volume) {
        let cloud = Arc::clone(self);
        let id = v.id.clone();
        let src = self.snapshot_path(&v.snapshot_id);
        let path = self.volume_path(&v.id);
        let size = v.size_gib as u64 * GIB;
        tokio::spawn(async move {
            let r =
                tokio::task::spawn_blocking(move || storage::clone_file(&src, &path, size, |_| {}))
                    .await;
            let state = match r {
                Ok(Ok(_)) => VolumeState::Available,
                _ => VolumeState::Error,
            };
            let _ = cloud.db.set_volume_state(&id, state);
        });
    }

    /// After a restart: copies that were cut short. A volume still `creating` from a
    /// snapshot is cloned again (the snapshot is still there); a snapshot still `pending` is
    /// marked `error` (the volume may have changed since it was taken, so a late copy would
    /// not be the point in time that was asked for), and so is a pending image other than a
    /// CopyImage, which resumes on its own. Runs before the copies resume.
    pub fn restore_storage(self: &Arc<Self>) {
        for v in self.db.volumes(None).unwrap_or_default() {
            if v.state == VolumeState::Creating
                && v.instance_id.is_none()
                && !v.snapshot_id.is_empty()
            {
                tracing::info!(volume = %v.id, "cloning again after a restart");
                self.fill_volume(&v);
            }
        }
        // Registrations and CreateImage copies are not resumed (their sources may have
        // changed); CopyImage jobs are (they carry a copy.json and verify checksums).
        for image in self.db.images().unwrap_or_default() {
            // A pending image another host of the region is making is not this host's.
            if image.state == ImageState::Pending
                && !self.image_dir(&image.id).join("copy.json").exists()
                && std::path::Path::new(&image.kernel).exists()
            {
                tracing::warn!(image = %image.id, "image creation cut short by a restart");
                let reason =
                    "Server.InternalError: the daemon restarted while the image was being created";
                let _ = self
                    .db
                    .set_image_state(&image.id, ImageState::Failed, reason, 0);
                for m in &image.mappings {
                    if let Ok(Some(s)) = self.db.snapshot(&m.snapshot_id) {
                        if s.state == SnapshotState::Pending {
                            let _ = crate::cloud::remove_file(
                                &self.snapshot_path(&s.id).with_extension("part"),
                            );
                            let _ = self.db.set_snapshot_state(&s.id, SnapshotState::Error, 0);
                        }
                    }
                }
            }
        }
        for s in self.db.snapshots().unwrap_or_default() {
            let in_image = self.db.snapshot_in_image(&s.id).ok().flatten();
            if s.state == SnapshotState::Pending && in_image.is_none() {
                tracing::warn!(snapshot = %s.id, "snapshot cut short by a restart");
                let _ =
                    crate::cloud::remove_file(&self.snapshot_path(&s.id).with_extension("part"));
                let _ = self.db.set_snapshot_state(&s.id, SnapshotState::Error, 0);
            }
        }
    }

    /// AttachVolume: hot on a running instance (into a free drive slot), in the records on a
    /// stopped one (the drive appears at the next start).
    pub async fn attach_volume(
        &self,
        account: &str,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> ApiResult<Volume> {
        let v = self.owned_volume(account, volume_id)?;
        let inst = self.owned_instance(account, instance_id)?;
        if device.is_empty() {
            return Err(ApiError::missing("Device"));
        }
        let idx = check_device(device)?;
        if v.state != VolumeState::Available {
            return Err(ApiError::new(
                ErrorCode::VolumeInUse,
                format!("{volume_id} is already attached to an instance"),
            ));
        }
        if v.az != inst.az {
            return Err(ApiError::new(
                ErrorCode::InvalidVolumeZoneMismatch,
                format!(
                    "Volume {volume_id} is in {}, instance {instance_id} in {}.",
                    v.az, inst.az
                ),
            ));
        }
        if !matches!(inst.state, State::Running | State::Stopped) {
            return Err(ApiError::incorrect_state(
                instance_id,
                inst.state.name(),
                "attached to",
            ));
        }
        // Everything that concurrent attachments to this instance could race on (its state,
        // its attachments, the drive slots) is read under its lock.
        let lock = self.lock(instance_id);
        let _g = lock.lock().await;
        let inst = self.owned_instance(account, instance_id)?;
        if !matches!(inst.state, State::Running | State::Stopped) {
            return Err(ApiError::incorrect_state(
                instance_id,
                inst.state.name(),
                "attached to",
            ));
        }
        let attached = self.db.instance_volumes(instance_id)?;
        if attached
            .iter()
            .any(|a| a.device.as_deref().and_then(device_index) == Some(idx))
            || inst
                .instance_store
                .iter()
                .any(|s| device_index(&s.device) == Some(idx))
        {
            return Err(ApiError::invalid(format!(
                "Attachment point {device} is already in use"
            )));
        }
        let running = inst.state == State::Running && self.vm(instance_id).is_some();
        if !self.db.attach_volume(
            volume_id,
            instance_id,
            device,
            if running {
                AttachState::Attaching
            } else {
                AttachState::Attached
            },
            false,
        )? {
            return Err(ApiError::new(
                ErrorCode::VolumeInUse,
                format!("{volume_id} is already attached to an instance"),
            ));
        }
        if running {
            let used: Vec<String> = attached.iter().filter_map(|a| a.slot.clone()).collect();
            let Some(slot) = names::free_hot_slot(HOT_SLOTS, &used) else {
                self.db.detach_volume(volume_id)?;
                return Err(ApiError::new(
                    ErrorCode::AttachmentLimitExceeded,
                    format!("Instance {instance_id} has no free drive slot ({HOT_SLOTS} volumes attached while running)."),
                ));
            };
            // The slot is recorded before the monitor fills it: after a crash in between,
            // the start-up knows which slot to empty (a file in an unrecorded slot would
            // stay open in the guest after the volume was released).
            self.db.set_volume_slot(volume_id, Some(&slot))?;
            let paths = VmmPaths::in_dir(&self.instance_dir(instance_id));
            let monitor = Monitor::new(&paths, Duration::from_secs(5));
            if let Err(e) = monitor
                .attach_drive(&slot, &self.volume_path(volume_id), false)
                .await
            {
                self.db.detach_volume(volume_id)?;
                return Err(ApiError::internal(format!(
                    "The monitor refused the attachment: {}",
                    crate::cloud::compute::launch::chain(&e)
                )));
            }
            self.db.set_attach_state(volume_id, AttachState::Attached)?;
        }
        Ok(self.db.volume(volume_id)?.unwrap_or(v))
    }

    /// DetachVolume. The root volume of a running instance cannot be detached.
    pub async fn detach_volume(
        &self,
        account: &str,
        volume_id: &str,
        instance_id: &str,
        force: bool,
    ) -> ApiResult<Volume> {
        let v = self.owned_volume(account, volume_id)?;
        let Some(owner_instance) = v.instance_id.clone() else {
            return Err(ApiError::new(
                ErrorCode::IncorrectState,
                format!("Volume '{volume_id}' is in the 'available' state."),
            ));
        };
        if !instance_id.is_empty() && instance_id != owner_instance {
            ids::check(Kind::Instance, instance_id)?;
            return Err(ApiError::new(
                ErrorCode::InvalidAttachmentNotFound,
                format!("The volume {volume_id} is not attached to {instance_id}."),
            ));
        }
        let lock = self.lock(&owner_instance);
        let _g = lock.lock().await;
        let inst = self.owned_instance(account, &owner_instance)?;
        let running = inst.state == State::Running && self.vm(&owner_instance).is_some();
        if !matches!(inst.state, State::Running | State::Stopped) {
            return Err(ApiError::incorrect_state(
                &owner_instance,
                inst.state.name(),
                "detached from",
            ));
        }
        if running
            && v.device.as_deref().and_then(device_index) == device_index(&inst.root_device_name)
        {
            return Err(ApiError::new(
                ErrorCode::OperationNotPermitted,
                format!("Cannot detach the root volume {volume_id} of running instance {owner_instance}."),
            ));
        }
        let mut previous = v.clone();
        if running {
            if let Some(slot) = &v.slot {
                self.db
                    .set_attach_state(volume_id, AttachState::Detaching)?;
                let paths = VmmPaths::in_dir(&self.instance_dir(&owner_instance));
                let monitor = Monitor::new(&paths, Duration::from_secs(5));
                if let Err(e) = monitor.detach_drive(slot).await {
                    // A monitor that is still alive may still have the file open: releasing
                    // the volume then would let a second writer in. Force only helps when
                    // the monitor is gone.
                    let gone = self
                        .vm(&owner_instance)
                        .is_none_or(|vm| !crate::supervisor::alive(vm.process));
                    if !(force && gone) {
                        self.db.set_attach_state(volume_id, AttachState::Attached)?;
                        return Err(ApiError::internal(format!(
                            "The monitor refused the detachment{}: {}",
                            if force {
                                " and still runs, so the volume stays attached until it detaches or the instance stops"
                            } else {
                                ""
                            },
                            crate::cloud::compute::launch::chain(&e)
                        )));
                    }
                }
            }
        }
        self.db.detach_volume(volume_id)?;
        previous.attach_state = Some(AttachState::Detaching);
        Ok(previous)
    }

    /// DeleteVolume: refused while attached.
    pub fn delete_volume(&self, account: &str, id: &str) -> ApiResult<()> {
        let v = self.owned_volume(account, id)?;
        if v.instance_id.is_some() || v.state == VolumeState::InUse {
            return Err(ApiError::new(
                ErrorCode::VolumeInUse,
                format!(
                    "Volume {id} is currently attached to {}",
                    v.instance_id.unwrap_or_default()
                ),
            ));
        }
        if v.state == VolumeState::Creating {
            return Err(ApiError::new(
                ErrorCode::IncorrectState,
                format!("Volume {id} is still being created."),
            ));
        }
        // The record goes first: a crash between the two leaves a file without a record,
        // which the next start-up sweeps, never a record whose file is gone.
        self.db.close_period(id, now_ms())?;
        self.db.delete_volume_row(id)?;
        if let Err(e) = crate::cloud::remove_file(&self.volume_path(id)) {
            tracing::warn!(volume = id, error = %e, "cannot delete the volume file (the next start-up sweeps it)");
        }
        Ok(())
    }

    /// CreateSnapshot: a point-in-time copy (crash-consistent for an attached volume).
    pub fn create_snapshot(
        self: &Arc<Self>,
        account: &str,
        volume_id: &str,
        description: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<Snapshot> {
        crate::cloud::tags::check(&tags)?;
        let v = self.owned_volume(account, volume_id)?;
        if matches!(v.state, VolumeState::Creating | VolumeState::Error) {
            return Err(ApiError::new(
                ErrorCode::IncorrectState,
                format!("Volume {volume_id} is {}.", v.state),
            ));
        }
        self.ensure_space(
            self.copy_need([self.volume_path(volume_id)]),
            ErrorCode::InsufficientVolumeCapacity,
            "the snapshot",
        )?;
        let s = Snapshot {
            id: ids::new_id(Kind::Snapshot),
            owner: account.to_string(),
            volume_id: volume_id.to_string(),
            size_gib: v.size_gib,
            state: SnapshotState::Pending,
            progress: 0,
            description: description.chars().take(255).collect(),
            created: now_s(),
            tags,
        };
        self.db.insert_snapshot(&s)?;
        let cloud = Arc::clone(self);
        let (src, dst, id) = (
            self.volume_path(volume_id),
            self.snapshot_path(&s.id),
            s.id.clone(),
        );
        let attached_to = v.instance_id.clone();
        tokio::spawn(async move {
            // An attached volume of a running VM is copied while the VM is paused, under the
            // instance's lock (no stop, detach or other copy meanwhile).
            let lock = attached_to.as_ref().map(|i| cloud.lock(i));
            let _g = match &lock {
                Some(l) => Some(l.lock().await),
                None => None,
            };
            let pause = match &attached_to {
                Some(i) => cloud.pause_for_copy(i).await,
                None => Ok(None),
            };
            let pause = match pause {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(snapshot = %id, error = %e.message, "snapshot failed");
                    let _ = cloud.db.set_snapshot_state(&id, SnapshotState::Error, 0);
                    return;
                }
            };
            let c2 = Arc::clone(&cloud);
            let id2 = id.clone();
            let r = tokio::task::spawn_blocking(move || {
                storage::clone_file(&src, &dst, 0, |pct| {
                    let _ = c2
                        .db
                        .set_snapshot_state(&id2, SnapshotState::Pending, pct as i32);
                })
            })
            .await;
            if let Some(p) = pause {
                p.resume(&cloud).await;
            }
            let (state, pct) = match r {
                Ok(Ok(_)) => (SnapshotState::Completed, 100),
                _ => (SnapshotState::Error, 0),
            };
            let _ = cloud.db.set_snapshot_state(&id, state, pct);
        });
        Ok(s)
    }

    /// DeleteSnapshot: refused while an AMI uses it.
    pub fn delete_snapshot(&self, account: &str, id: &str) -> ApiResult<()> {
        let s = self.owned_snapshot(account, id)?;
        if let Some(image) = self.db.snapshot_in_image(id)? {
            return Err(ApiError::new(
                ErrorCode::InvalidSnapshotInUse,
                format!("The snapshot {id} is currently in use by {image}"),
            ));
        }
        if s.state == SnapshotState::Pending {
            return Err(ApiError::new(
                ErrorCode::IncorrectState,
                format!("Snapshot {id} is still pending."),
            ));
        }
        // Record first, as for volumes.
        self.db.delete_snapshot_row(id)?;
        if let Err(e) = crate::cloud::remove_file(&self.snapshot_path(id)) {
            tracing::warn!(snapshot = id, error = %e, "cannot delete the snapshot file (the next start-up sweeps it)");
        }
        Ok(())
    }
}
