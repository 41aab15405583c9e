//! DescribeImages, DescribeVolumes and DescribeSnapshots: which resources a call names, its
//! owner and user lists and its filters pick, and one page of them.

use crate::cloud::filters::{self, Filter};
use crate::cloud::paging::{self, Page, PageRequest};
use crate::cloud::Cloud;
use crate::db::images::{Image, PUBLIC};
use crate::db::volumes::{Snapshot, Volume};
use crate::error::ApiResult;
use crate::ids::{self, Kind};

/// Image filter names.
pub const IMAGE_FILTERS: &[&str] = &[
    "image-id",
    "name",
    "state",
    "owner-id",
    "is-public",
    "architecture",
    "root-device-name",
    "description",
    "ena-support",
    "tag-key",
];

/// Volume filter names.
pub const VOLUME_FILTERS: &[&str] = &[
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

/// Snapshot filter names.
pub const SNAPSHOT_FILTERS: &[&str] = &[
    "snapshot-id",
    "volume-id",
    "status",
    "owner-id",
    "description",
    "tag-key",
];

/// DescribeImages.
#[derive(Debug, Clone, Default)]
pub struct DescribeImages {
    /// The images named (each must be visible to the caller); empty for all visible.
    pub image_ids: Vec<String>,
    /// Owners (`self` for the caller); empty for any.
    pub owners: Vec<String>,
    /// Accounts that must be allowed to launch an image (`self` for the caller, `all` for
    /// public images); empty for any.
    pub executable_users: Vec<String>,
    /// Filters.
    pub filters: Vec<Filter>,
    /// Paging.
    pub page: PageRequest,
}

/// An image as a front end shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageView {
    /// The record.
    pub image: Image,
    /// Whether every account may launch it.
    pub public: bool,
}

/// DescribeVolumes.
#[derive(Debug, Clone, Default)]
pub struct DescribeVolumes {
    /// The volumes named (each must be the caller's); empty for all.
    pub volume_ids: Vec<String>,
    /// Filters.
    pub filters: Vec<Filter>,
    /// Paging.
    pub page: PageRequest,
}

/// DescribeSnapshots.
#[derive(Debug, Clone, Default)]
pub struct DescribeSnapshots {
    /// The snapshots named (each must be the caller's); empty for all.
    pub snapshot_ids: Vec<String>,
    /// Owners (`self` for the caller); empty for any.
    pub owner_ids: Vec<String>,
    /// Filters.
    pub filters: Vec<Filter>,
    /// Paging.
    pub page: PageRequest,
}

/// `self` as the caller's account.
fn me(account: &str, s: &str) -> String {
    if s == "self" {
        account.to_string()
    } else {
        s.to_string()
    }
}

impl Cloud {
    /// DescribeImages: the visible images the call picks, one page.
    pub fn describe_images(
        &self,
        account: &str,
        req: &DescribeImages,
    ) -> ApiResult<Page<ImageView>> {
        let f = &req.filters;
        filters::check_names(f, IMAGE_FILTERS)?;
        ids::check_all(Kind::Image, &req.image_ids)?;
        let visible = self.visible_images(account)?;
        for id in &req.image_ids {
            if !visible.iter().any(|(i, _)| &i.id == id) {
                return Err(Kind::Image.not_found(id));
            }
        }
        let owners: Vec<String> = req.owners.iter().map(|o| me(account, o)).collect();
        let users: Vec<String> = req
            .executable_users
            .iter()
            .map(|u| me(account, u))
            .collect();
        let mut out = Vec::new();
        for (i, perms) in visible {
            if !req.image_ids.is_empty() && !req.image_ids.contains(&i.id) {
                continue;
            }
            if !owners.is_empty() && !owners.contains(&i.owner) {
                continue;
            }
            if !users.is_empty()
                && !users
                    .iter()
                    .any(|u| (u == &i.owner && u != PUBLIC) || perms.contains(u))
            {
                continue;
            }
            let public = perms.iter().any(|g| g == PUBLIC);
            let public_text = public.to_string();
            let ok = filters::matches(f, |name| {
                let one = |s: &str| Some(vec![s.to_string()]);
                match name {
                    "image-id" => one(&i.id),
                    "name" => one(&i.name),
                    "state" => one(i.state.name()),
                    "owner-id" => one(&i.owner),
                    "is-public" => one(&public_text),
                    "architecture" => one(&i.architecture),
                    "root-device-name" => one(&i.root_device_name),
                    "description" => one(&i.description),
                    "ena-support" => one(if i.ena_support { "true" } else { "false" }),
                    n => filters::tag_values(&i.tags, n),
                }
            })?;
            if ok {
                out.push(ImageView { image: i, public });
            }
        }
        paging::check_ids_without_page_size("ImageIds", &req.image_ids, &req.page)?;
        paging::paginate(out, &req.page)
    }

    /// DescribeVolumes: the caller's volumes the call picks, one page.
    pub fn describe_volumes(
        &self,
        account: &str,
        req: &DescribeVolumes,
    ) -> ApiResult<Page<Volume>> {
        let f = &req.filters;
        filters::check_names(f, VOLUME_FILTERS)?;
        ids::check_all(Kind::Volume, &req.volume_ids)?;
        let all = self.db.volumes(Some(account))?;
        for id in &req.volume_ids {
            if !all.iter().any(|v| &v.id == id) {
                return Err(Kind::Volume.not_found(id));
            }
        }
        let mut out = Vec::new();
        for v in all {
            if !req.volume_ids.is_empty() && !req.volume_ids.contains(&v.id) {
                continue;
            }
            let ok = filters::matches(f, |name| {
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
                    "attachment.delete-on-termination" => one(&v.delete_on_termination.to_string()),
                    n => filters::tag_values(&v.tags, n),
                }
            })?;
            if ok {
                out.push(v);
            }
        }
        paging::check_ids_without_page_size("VolumeIds", &req.volume_ids, &req.page)?;
        paging::paginate(out, &req.page)
    }

    /// DescribeSnapshots: the caller's snapshots the call picks, one page.
    pub fn describe_snapshots(
        &self,
        account: &str,
        req: &DescribeSnapshots,
    ) -> ApiResult<Page<Snapshot>> {
        let f = &req.filters;
        filters::check_names(f, SNAPSHOT_FILTERS)?;
        ids::check_all(Kind::Snapshot, &req.snapshot_ids)?;
        let owners: Vec<String> = req.owner_ids.iter().map(|o| me(account, o)).collect();
        let all: Vec<Snapshot> = self
            .db
            .snapshots()?
            .into_iter()
            .filter(|s| s.owner == account)
            .collect();
        for id in &req.snapshot_ids {
            if !all.iter().any(|s| &s.id == id) {
                return Err(Kind::Snapshot.not_found(id));
            }
        }
        let mut out = Vec::new();
        for s in all {
            if (!req.snapshot_ids.is_empty() && !req.snapshot_ids.contains(&s.id))
                || (!owners.is_empty() && !owners.contains(&s.owner))
            {
                continue;
            }
            let ok = filters::matches(f, |name| {
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
                out.push(s);
            }
        }
        paging::check_ids_without_page_size("SnapshotIds", &req.snapshot_ids, &req.page)?;
        paging::paginate(out, &req.page)
    }
}
