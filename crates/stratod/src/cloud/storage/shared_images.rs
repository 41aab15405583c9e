//! AMIs as a region-scoped kind (`cluster::mirror`): etcd holds one record per AMI (the
//! image row, its block device mapping with the snapshot IDs, its launch permissions, tags
//! and state) and every host mirrors it into its database, so that DescribeImages on any
//! host lists the region's AMIs under the same IDs. The files behind an AMI (kernel, initrd,
//! snapshots) stay on the hosts that hold them: a host that launches an AMI it lacks pulls
//! them first (`pull`).

use serde::{Deserialize, Serialize};

use crate::cloud::Cloud;
use crate::cluster::mirror::SharedKind;
use crate::cluster::shared::Shared;
use crate::db::images::{Image, Mapping};
use crate::db::instances::Tag;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::states::ImageState;

/// The region's record of one AMI. File paths are not in it: each host keeps an AMI's
/// kernel and initrd in its own image folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `ami-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Name, unique per owner in the region.
    pub name: String,
    /// Description.
    pub description: String,
    /// `pending`, `available` or `failed`, as the host that made it has it.
    pub state: String,
    /// Why it failed.
    pub state_reason: String,
    /// `x86_64`.
    pub architecture: String,
    /// Whether it has an initrd.
    pub initrd: bool,
    /// Kernel command line.
    pub boot_args: String,
    /// Root device name.
    pub root_device_name: String,
    /// Block device mapping, with the snapshot IDs every host names.
    pub mappings: Vec<Mapping>,
    /// Unix seconds.
    pub created: i64,
    /// Tags.
    pub tags: Vec<Tag>,
    /// EnaSupport.
    pub ena_support: bool,
    /// Accounts (and `all`) that may launch it besides its owner.
    pub launch_permissions: Vec<String>,
}

impl ImageRecord {
    /// The record of an image row and its permissions.
    pub fn of(i: &Image, launch_permissions: Vec<String>) -> ImageRecord {
        ImageRecord {
            id: i.id.clone(),
            owner: i.owner.clone(),
            name: i.name.clone(),
            description: i.description.clone(),
            state: i.state.to_string(),
            state_reason: i.state_reason.clone(),
            architecture: i.architecture.clone(),
            initrd: i.initrd.is_some(),
            boot_args: i.boot_args.clone(),
            root_device_name: i.root_device_name.clone(),
            mappings: i.mappings.clone(),
            created: i.created,
            tags: i.tags.clone(),
            ena_support: i.ena_support,
            launch_permissions,
        }
    }

    /// The image row on a host whose image folder is `dir`.
    pub fn image(&self, dir: &std::path::Path) -> ApiResult<Image> {
        let state: ImageState = self.state.parse().map_err(|_| {
            ApiError::internal(format!(
                "the region's record of {} has an unknown state",
                self.id
            ))
        })?;
        Ok(Image {
            id: self.id.clone(),
            owner: self.owner.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            state,
            state_reason: self.state_reason.clone(),
            progress: if state == ImageState::Available {
                100
            } else {
                0
            },
            architecture: self.architecture.clone(),
            kernel: dir.join("kernel").display().to_string(),
            initrd: self
                .initrd
                .then(|| dir.join("initrd").display().to_string()),
            boot_args: self.boot_args.clone(),
            root_device_name: self.root_device_name.clone(),
            mappings: self.mappings.clone(),
            created: self.created,
            tags: self.tags.clone(),
            ena_support: self.ena_support,
        })
    }
}

/// AMIs.
pub struct Images;

impl SharedKind for Images {
    fn name(&self) -> &'static str {
        "image"
    }
    fn id_prefix(&self) -> &'static str {
        "ami-"
    }
    fn ids(&self, cloud: &Cloud) -> ApiResult<Vec<String>> {
        Ok(cloud.db.image_ids()?)
    }
    fn export(&self, cloud: &Cloud, id: &str) -> ApiResult<Option<Shared>> {
        let Some(i) = cloud.db.image(id)? else {
            return Ok(None);
        };
        let r = ImageRecord::of(&i, cloud.db.launch_permissions(id)?);
        let body = serde_json::to_value(&r)
            .map_err(|e| ApiError::internal(format!("cannot encode a record: {e}")))?;
        Ok(Some(Shared {
            account: i.owner,
            name: i.name,
            body,
        }))
    }
    fn import(&self, cloud: &Cloud, id: &str, s: &Shared) -> ApiResult<()> {
        let r: ImageRecord = serde_json::from_value(s.body.clone())
            .map_err(|e| ApiError::internal(format!("the region's record does not decode: {e}")))?;
        if r.id != id {
            return Err(ApiError::internal(format!(
                "the region's record of {id} names {}",
                r.id
            )));
        }
        let mut image = r.image(&cloud.image_dir(id))?;
        // The host that makes the image reports its progress here; the record has the state
        // only, so a row still filling keeps its own progress.
        if let Some(here) = cloud.db.image(id)? {
            if here.state == image.state && image.state == ImageState::Pending {
                image.progress = here.progress;
            }
        }
        if !cloud.db.upsert_image(&image)? {
            return Err(self.duplicate(&image.name));
        }
        Ok(cloud.db.set_launch_permissions(id, &r.launch_permissions)?)
    }
    fn remove(&self, cloud: &Cloud, id: &str) -> ApiResult<()> {
        cloud.drop_image_here(id)
    }
    fn duplicate(&self, name: &str) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidAmiNameDuplicate,
            format!("AMI name {name} is already in use by another AMI in the region."),
        )
    }
}

impl Cloud {
    /// The AMI a launch names: this host's row, brought up to date from the region's record
    /// first when this host lacks it or it is not available here (a launch forwarded right
    /// after the AMI was registered or became available on another host, before this host's
    /// mirror caught up).
    pub async fn launch_image(&self, id: &str) -> ApiResult<Option<Image>> {
        let here = self.db.image(id)?;
        let Some(region) = &self.cluster else {
            return Ok(here);
        };
        // The host that makes an image has its state first-hand.
        if here
            .as_ref()
            .is_some_and(|i| i.state == ImageState::Available || self.makes_image_here(i))
        {
            return Ok(here);
        }
        match region.shared_one(Images.name(), id).await {
            Ok(Some((s, rev))) => {
                Images.import(self, id, &s)?;
                self.note_mirrored(Images.name(), id, rev)?;
            }
            Ok(None) => {}
            // Without etcd this host answers with what it has.
            Err(e) => tracing::debug!(image = id, error = %e, "cannot read the region's AMI"),
        }
        Ok(self.db.image(id)?)
    }

    /// Publishes the final state of an image this host made (registered, created or copied),
    /// retrying while etcd cannot be reached; a change another host made meanwhile (tags,
    /// permissions) is kept, the state set again over it.
    pub async fn publish_image_state(&self, id: &str) {
        if self.cluster.is_none() {
            return;
        }
        for attempt in 0..12u32 {
            let Ok(Some(i)) = self.db.image(id) else {
                return;
            };
            let r = self
                .share_change(&Images, id, || {
                    Ok(self
                        .db
                        .set_image_state(id, i.state, &i.state_reason, i.progress)?)
                })
                .await;
            match r {
                Ok(()) => {
                    // A host that made an AMI holds its files: launches elsewhere may pull
                    // them from here at once (the reconciler would put the key within
                    // seconds).
                    if let Some(region) = &self.cluster {
                        if i.state == ImageState::Available
                            && self.has_image_files(&i).unwrap_or(false)
                        {
                            let _ = region.put_owner(id, &i.owner).await;
                        }
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(image = id, error = %e.message, "cannot publish the image's state; will retry");
                    tokio::time::sleep(std::time::Duration::from_secs(1 << attempt.min(4))).await;
                }
            }
        }
    }

    /// Whether this host made the image (registered, created or is copying it), rather
    /// than mirroring another host's: the maker has its kernel from the start, or a copy job.
    pub fn makes_image_here(&self, i: &Image) -> bool {
        std::path::Path::new(&i.kernel).exists() || self.image_dir(&i.id).join("copy.json").exists()
    }

    /// Removes an AMI from this host: its row, its folder, and the snapshots this host
    /// pulled for it (replicas; its own snapshots stay, as DeregisterImage leaves them).
    pub fn drop_image_here(&self, id: &str) -> ApiResult<()> {
        let Some(image) = self.db.image(id)? else {
            return Ok(());
        };
        self.db.delete_image(id)?;
        let _ = std::fs::remove_dir_all(self.image_dir(id));
        self.drop_replicas(&image)
    }

    /// Removes a snapshot row (and its files) that a refused RegisterImage, CreateImage or
    /// CopyImage made.
    pub(crate) fn forget_made_snapshot(&self, id: &str) {
        let _ = self.db.delete_snapshot_row(id);
        let path = self.snapshot_path(id);
        let _ = crate::cloud::remove_file(&path.with_extension("part"));
        let _ = crate::cloud::remove_file(&path.with_extension("part.json"));
        // A copy still running (RegisterImage's) may write it after this: the storage
        // sweep removes files without a row.
        let _ = crate::cloud::remove_file(&path);
    }

    /// Removes the replica snapshots (rows and files) of an image's mapping.
    pub(crate) fn drop_replicas(&self, image: &Image) -> ApiResult<()> {
        for m in image.mappings.iter().filter(|m| !m.snapshot_id.is_empty()) {
            if self.db.is_replica(&m.snapshot_id)? {
                self.db.delete_snapshot_row(&m.snapshot_id)?;
                let path = self.snapshot_path(&m.snapshot_id);
                let _ = crate::cloud::remove_file(&path);
                let _ = crate::cloud::remove_file(&path.with_extension("part"));
                let _ = crate::cloud::remove_file(&path.with_extension("part.json"));
            }
        }
        Ok(())
    }

    /// The `(AMI ID, account)` of every available AMI whose files this host holds (the
    /// region's index of holders follows them).
    pub fn held_images(&self) -> ApiResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        for i in self.db.images()? {
            if i.state == ImageState::Available && self.has_image_files(&i)? {
                out.push((i.id, i.owner));
            }
        }
        Ok(out)
    }

    /// Whether this host has every file of an image: its kernel and initrd, and each
    /// snapshot of its mapping, completed.
    pub fn has_image_files(&self, i: &Image) -> ApiResult<bool> {
        if !std::path::Path::new(&i.kernel).exists() {
            return Ok(false);
        }
        if let Some(initrd) = &i.initrd {
            if !std::path::Path::new(initrd).exists() {
                return Ok(false);
            }
        }
        for m in i.mappings.iter().filter(|m| !m.snapshot_id.is_empty()) {
            let done = self
                .db
                .snapshot(&m.snapshot_id)?
                .is_some_and(|s| s.state == crate::states::SnapshotState::Completed);
            if !done || !self.snapshot_path(&m.snapshot_id).exists() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::now_s;

    fn image(dir: &std::path::Path) -> Image {
        Image {
            id: "ami-0123456789abcdef0".into(),
            owner: "100000000001".into(),
            name: "probe".into(),
            description: "d".into(),
            state: ImageState::Available,
            state_reason: String::new(),
            progress: 100,
            architecture: "x86_64".into(),
            kernel: dir.join("kernel").display().to_string(),
            initrd: None,
            boot_args: "console=ttyS0".into(),
            root_device_name: "/dev/vda".into(),
            mappings: vec![Mapping {
                device_name: "/dev/vda".into(),
                snapshot_id: "snap-0123456789abcdef0".into(),
                volume_size: 1,
                volume_type: "gp3".into(),
                delete_on_termination: true,
                ..Default::default()
            }],
            created: now_s(),
            tags: vec![Tag {
                key: "k".into(),
                value: "v".into(),
            }],
            ena_support: true,
        }
    }

    #[test]
    fn a_record_round_trips_into_another_hosts_folder() {
        let here = std::path::Path::new("/a/images/ami-0123456789abcdef0");
        let there = std::path::Path::new("/b/images/ami-0123456789abcdef0");
        let i = image(here);
        let r = ImageRecord::of(&i, vec!["100000000002".into()]);
        let json = serde_json::to_value(&r).unwrap();
        assert!(!json.to_string().contains("/a/"), "no host paths: {json}");
        let back: ImageRecord = serde_json::from_value(json).unwrap();
        let j = back.image(there).unwrap();
        assert_eq!(j.kernel, "/b/images/ami-0123456789abcdef0/kernel");
        assert_eq!(j.mappings, i.mappings);
        assert_eq!((j.state, j.progress, &j.tags), (i.state, 100, &i.tags));
        let mut bad = back;
        bad.state = "gone".into();
        assert!(bad.image(there).is_err());
    }

    #[test]
    fn import_and_remove_follow_the_record_and_drop_replicas() {
        let (_d, cloud) = crate::cloud::test_cloud();
        let i = image(&cloud.image_dir("ami-0123456789abcdef0"));
        let s = Shared {
            account: i.owner.clone(),
            name: i.name.clone(),
            body: serde_json::to_value(ImageRecord::of(&i, vec!["all".into()])).unwrap(),
        };
        Images.import(&cloud, &i.id, &s).unwrap();
        assert_eq!(cloud.db.image(&i.id).unwrap().unwrap().tags, i.tags);
        assert_eq!(cloud.db.launch_permissions(&i.id).unwrap(), ["all"]);
        // Not pulled yet: no files here.
        assert!(!cloud.has_image_files(&i).unwrap());
        assert!(cloud.held_images().unwrap().is_empty());
        // A pulled replica is out of the host's own listing, and goes with the image.
        let snap = crate::db::volumes::Snapshot {
            id: "snap-0123456789abcdef0".into(),
            owner: i.owner.clone(),
            volume_id: "vol-ffffffff".into(),
            size_gib: 1,
            state: crate::states::SnapshotState::Completed,
            progress: 100,
            description: String::new(),
            created: now_s(),
            tags: Vec::new(),
        };
        cloud.db.insert_replica_snapshot(&snap).unwrap();
        assert!(cloud.db.is_replica(&snap.id).unwrap());
        assert!(cloud.db.snapshots().unwrap().is_empty());
        assert_eq!(cloud.db.all_snapshot_ids().unwrap(), [snap.id.as_str()]);
        assert!(cloud.owned_snapshot(&i.owner, &snap.id).is_err());
        // Another image of the same name and owner is refused here.
        let mut other = i.clone();
        other.id = "ami-0123456789abcdef1".into();
        let s2 = Shared {
            body: serde_json::to_value(ImageRecord::of(&other, vec![])).unwrap(),
            ..s.clone()
        };
        let err = Images.import(&cloud, &other.id, &s2).unwrap_err();
        assert_eq!(err.code, "InvalidAMIName.Duplicate");
        Images.remove(&cloud, &i.id).unwrap();
        assert!(cloud.db.image(&i.id).unwrap().is_none());
        assert!(cloud.db.snapshot(&snap.id).unwrap().is_none());
    }
}
