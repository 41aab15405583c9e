//! RunInstances: the launch template's parameters filled in, validation against the AMI,
//! the instance type, the key pair, the placement group and the caller's rights; the records
//! of the new instances, their volumes and ENIs; then a boot task per instance
//! (`super::boot`).

use std::sync::Arc;

use crate::catalog;
use crate::cloud::placement::scheduler::{self, Slot};
use crate::cloud::Cloud;
use crate::db::images::Mapping;
use crate::db::instances::{Instance, InstanceStore, Tag};
use crate::db::usage::Period;
use crate::db::volumes::Volume;
use crate::db::{now_ms, now_s};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};
use crate::lifecycle::State;
use crate::states::{AttachState, ImageState, SnapshotState, VolumeState};

pub use super::boot::chain;

/// The AZ of a launch, for its subnet: the one asked for; else, naming no subnet, a
/// cluster group's (where its instances are: the next goes there); else none (the first).
fn launch_zone(
    req: &RunRequest,
    group: Option<&crate::db::placement::PlacementGroup>,
    members: &[scheduler::Member],
) -> String {
    if !req.availability_zone.is_empty() || !req.subnet_id.is_empty() {
        return req.availability_zone.clone();
    }
    group
        .and_then(|g| scheduler::cluster_zone(&crate::cloud::placement::groups::view(g), members))
        .unwrap_or_default()
        .to_string()
}

/// Largest user data, raw.
pub const MAX_USER_DATA: usize = 16 * 1024;
/// Most instances one call may launch.
pub const MAX_COUNT: i32 = 100;
/// Largest volume, in GiB (EC2's gp3 limit).
pub const MAX_VOLUME_GIB: i64 = 16384;
/// Drive slots left empty for volumes attached while the instance runs.
pub const HOT_SLOTS: usize = 4;
/// Most disks and network interfaces a monitor takes.
pub(crate) const MAX_DEVICES: usize = 16;

/// What RunInstances asks for, in the daemon's terms.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// AMI.
    pub image_id: String,
    /// Instance type.
    pub instance_type: String,
    /// Least number to launch.
    pub min_count: i32,
    /// Most.
    pub max_count: i32,
    /// Subnet (empty: the AZ's default).
    pub subnet_id: String,
    /// Security groups by ID.
    pub security_group_ids: Vec<String>,
    /// Security groups by name (in the launch subnet's VPC).
    pub security_group_names: Vec<String>,
    /// Raw user data.
    pub user_data: Vec<u8>,
    /// Block device mapping overrides.
    pub mappings: Vec<Override>,
    /// Key pair name.
    pub key_name: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Placement group.
    pub group_name: String,
    /// Partition of a partition group (0: the scheduler's choice).
    pub partition_number: i32,
    /// `stop` or `terminate`.
    pub shutdown_behavior: String,
    /// Termination protection, if given.
    pub disable_api_termination: Option<bool>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Tags for the volumes the launch creates (`TagSpecifications` of type `volume`).
    pub volume_tags: Vec<Tag>,
    /// Idempotency token.
    pub client_token: String,
    /// The launch template whose version fills what this request leaves empty.
    pub launch_template: Option<TemplateRef>,
    /// Metadata service settings over EC2's defaults.
    pub metadata: super::metadata::MetadataChange,
    /// AssociatePublicIpAddress, if given; else the subnet's MapPublicIpOnLaunch decides.
    pub associate_public_ip: Option<bool>,
    /// Ipv6AddressCount of the primary interface, if given; else the subnet's
    /// AssignIpv6AddressOnCreation decides (one address or none).
    pub ipv6_count: Option<i32>,
    /// Ipv6Addresses of the primary interface (one instance only).
    pub ipv6_addresses: Vec<String>,
    /// DryRun: every check, then `DryRunOperation` instead of the launch.
    pub dry_run: bool,
    /// IamInstanceProfile: a profile of the account, by name or ARN (empty: none).
    pub iam_instance_profile: String,
    /// What the region's placement chose for this host (config `cluster`): set only for a
    /// launch another host (or this one) placed and reserved in etcd.
    pub pinned: Option<Pinned>,
}

/// A launch placed by the region: the instances' IDs, under which their capacity is
/// reserved, and their racks and partitions (empty outside placement groups).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pinned {
    /// Instance IDs, one per instance.
    pub ids: Vec<String>,
    /// Racks and partitions, one per instance (or none).
    pub slots: Vec<Slot>,
}

/// A launch template named by a RunInstances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateRef {
    /// `lt-…` (or empty).
    pub id: String,
    /// Its name (or empty).
    pub name: String,
    /// `$Default` (or empty), `$Latest`, or a number.
    pub version: String,
}

/// One launch-time block device mapping entry.
#[derive(Debug, Clone, Default)]
pub struct Override {
    /// The entry (its `delete_on_termination` is ignored).
    pub mapping: Mapping,
    /// DeleteOnTermination if the caller gave it; else the AMI's, or EC2's default.
    pub delete_on_termination: Option<bool>,
}

/// The index of a device name: `/dev/vdb`, `/dev/sdb` and `/dev/xvdb` are all 1.
pub fn device_index(name: &str) -> Option<usize> {
    let letter = ["/dev/vd", "/dev/sd", "/dev/xvd"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    match letter.as_bytes() {
        [c @ b'a'..=b'z'] => Some((c - b'a') as usize),
        _ => None,
    }
}

/// Checks a device name.
pub fn check_device(name: &str) -> ApiResult<usize> {
    device_index(name).ok_or_else(|| {
        ApiError::invalid(format!(
            "Invalid device name {}: use /dev/vd[a-z], /dev/sd[a-z] or /dev/xvd[a-z].",
            name.chars().take(64).collect::<String>()
        ))
    })
}

/// Checks a volume size in GiB.
pub fn check_size(size: i64) -> ApiResult<()> {
    if !(1..=MAX_VOLUME_GIB).contains(&size) {
        return Err(ApiError::invalid(format!(
            "Volume size {size} GiB is out of range: use 1 to {MAX_VOLUME_GIB}."
        )));
    }
    Ok(())
}

/// Merges the AMI's mapping with a launch's overrides: entries match by device index;
/// `NoDevice` drops one; a size or type given replaces the AMI's.
pub fn merge_mappings(
    ami: &[Mapping],
    root_device: &str,
    overrides: &[Override],
) -> ApiResult<Vec<Mapping>> {
    let mut seen = std::collections::HashSet::new();
    for o in overrides.iter().map(|o| &o.mapping) {
        if !seen.insert(check_device(&o.device_name)?) {
            return Err(ApiError::new(
                ErrorCode::InvalidBlockDeviceMapping,
                format!("The device {} is mapped twice.", o.device_name),
            ));
        }
    }
    let mut out: Vec<Mapping> = Vec::new();
    for m in ami {
        let idx = device_index(&m.device_name);
        match overrides
            .iter()
            .find(|o| device_index(&o.mapping.device_name) == idx)
        {
            Some(o) if o.mapping.no_device => {}
            Some(ov) => {
                let o = &ov.mapping;
                let mut merged = m.clone();
                if o.volume_size != 0 {
                    merged.volume_size = o.volume_size;
                }
                if !o.volume_type.is_empty() {
                    merged.volume_type = o.volume_type.clone();
                }
                if !o.snapshot_id.is_empty() {
                    merged.snapshot_id = o.snapshot_id.clone();
                }
                if !o.virtual_name.is_empty() {
                    merged = o.clone();
                }
                if let Some(d) = ov.delete_on_termination {
                    merged.delete_on_termination = d;
                }
                out.push(merged);
            }
            None => out.push(m.clone()),
        }
    }
    let root = device_index(root_device);
    for ov in overrides {
        let o = &ov.mapping;
        let idx = device_index(&o.device_name);
        if !o.no_device && !ami.iter().any(|m| device_index(&m.device_name) == idx) {
            let mut m = o.clone();
            // EC2's defaults: the root volume goes with the instance, others stay.
            m.delete_on_termination = ov.delete_on_termination.unwrap_or(idx == root);
            out.push(m);
        }
    }
    out.sort_by_key(|m| device_index(&m.device_name));
    Ok(out)
}

impl Cloud {
    /// Whether `account` may launch the image.
    pub fn may_launch(&self, account: &str, image: &crate::db::images::Image) -> ApiResult<bool> {
        if image.owner == account {
            return Ok(true);
        }
        let perms = self.db.launch_permissions(&image.id)?;
        Ok(perms
            .iter()
            .any(|g| g == account || g == crate::db::images::PUBLIC))
    }

    /// RunInstances. Every check happens before anything is recorded, so a refused launch
    /// leaves nothing behind.
    pub async fn run_instances(
        self: &Arc<Self>,
        account: &str,
        req: RunRequest,
    ) -> ApiResult<(String, Vec<Instance>)> {
        if !req.client_token.is_empty() && !req.dry_run {
            let earlier = self.db.instances_by_token(account, &req.client_token)?;
            if let Some(first) = earlier.first() {
                return Ok((first.reservation_id.clone(), earlier));
            }
        }
        crate::cloud::tags::check(&req.tags)?;
        crate::cloud::tags::check(&req.volume_tags)?;
        let req = match &req.launch_template {
            Some(t) => {
                let t = t.clone();
                self.apply_launch_template(account, &t, req)?
            }
            None => req,
        };
        if req.image_id.is_empty() {
            return Err(ApiError::missing("ImageId"));
        }
        ids::check(Kind::Image, &req.image_id)?;
        let (min, max) = match (req.min_count, req.max_count) {
            (0, 0) => (1, 1),
            (0, m) => (1, m),
            (m, 0) => (m, m),
            (a, b) => (a, b),
        };
        if min < 1 || max < min || max > MAX_COUNT {
            return Err(ApiError::invalid(format!(
                "MinCount {} and MaxCount {} must satisfy 1 <= MinCount <= MaxCount <= {MAX_COUNT}.",
                req.min_count, req.max_count
            )));
        }
        if req.user_data.len() > MAX_USER_DATA {
            return Err(ApiError::invalid(format!(
                "User data is limited to {MAX_USER_DATA} bytes; got {}.",
                req.user_data.len()
            )));
        }
        let shutdown_behavior = match req.shutdown_behavior.as_str() {
            "" | "stop" => "stop",
            "terminate" => "terminate",
            other => {
                return Err(ApiError::invalid(format!(
                "Invalid value '{}' for InstanceInitiatedShutdownBehavior: use stop or terminate.",
                other.chars().take(64).collect::<String>()
            )))
            }
        };
        let itype = catalog::lookup(if req.instance_type.is_empty() {
            "t3.micro"
        } else {
            &req.instance_type
        })?;
        let image = self
            .launch_image(&req.image_id)
            .await?
            .ok_or_else(|| Kind::Image.not_found(&req.image_id))?;
        // Another account's private image does not exist for the caller: EC2 answers
        // NotFound, so that the answer does not tell that the ID is taken.
        if !self.may_launch(account, &image)? {
            return Err(Kind::Image.not_found(&req.image_id));
        }
        if image.state != ImageState::Available {
            return Err(ApiError::new(
                ErrorCode::InvalidAmiIdUnavailable,
                format!("Image {} is {}, not available.", image.id, image.state),
            ));
        }
        // Each instance's volumes are clones of the AMI's snapshots (full copies where the
        // file system cannot share extents) beside its config drive and console log.
        let per_instance = self.copy_need(
            image
                .mappings
                .iter()
                .filter(|m| !m.snapshot_id.is_empty())
                .map(|m| self.snapshot_path(&m.snapshot_id)),
        );
        self.ensure_space(
            per_instance.saturating_mul(u64::try_from(min).unwrap_or(1)),
            ErrorCode::InsufficientInstanceCapacity,
            "the instances' volumes",
        )?;
        let public_key = if req.key_name.is_empty() {
            String::new()
        } else {
            self.launch_key(account, &req.key_name)?
        };
        let profile = if req.iam_instance_profile.is_empty() {
            None
        } else {
            Some(self.launch_profile(account, &req.iam_instance_profile)?)
        };
        ids::check_all(Kind::SecurityGroup, &req.security_group_ids)?;
        let group = if req.group_name.is_empty() {
            if req.partition_number != 0 {
                return Err(ApiError::invalid(
                    "Placement.PartitionNumber needs Placement.GroupName.",
                ));
            }
            None
        } else {
            Some(self.placement_group_named(account, &req.group_name)?)
        };
        // A region subnet's addresses are claimed in etcd before the lock (nothing under it
        // awaits): each instance takes one of these. Without a subnet named, the launch's
        // subnet is its AZ's default one, the AZ found as under the lock (which checks it).
        let members = match &group {
            Some(g) => self.group_members(&g.id, None)?,
            None => Vec::new(),
        };
        let claim_subnet = match req.subnet_id.is_empty() {
            false => req.subnet_id.clone(),
            // Its refusal is the launch's (under the lock it would be the same).
            true => {
                self.launch_subnet(account, "", &launch_zone(&req, group.as_ref(), &members))?
                    .id
            }
        };
        let mut claimed = match req.dry_run {
            true => None,
            false => Box::pin(self.claim_ips(account, &claim_subnet, max as usize))
                .await?
                .map(std::collections::VecDeque::from),
        };
        // From here to the last insert, placement decisions must not interleave with another
        // launch's or start's; nothing below awaits.
        let placement_guard = group.as_ref().map(|_| self.placement_lock());
        let members = match &group {
            Some(g) => self.group_members(&g.id, None)?,
            None => Vec::new(),
        };
        let subnet = self.launch_subnet(
            account,
            &req.subnet_id,
            &launch_zone(&req, group.as_ref(), &members),
        )?;
        if claimed.is_some() && subnet.id != claim_subnet {
            // Another launch into the cluster group moved it meanwhile (the claims lapse).
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "The placement group's zone changed during the launch; try again.",
            ));
        }
        let groups = self.launch_groups(
            account,
            &subnet.vpc_id,
            &req.security_group_ids,
            &req.security_group_names,
        )?;
        let mappings = merge_mappings(&image.mappings, &image.root_device_name, &req.mappings)?;
        let (volumes, stores) = self.plan_volumes(account, &image, &mappings, &itype)?;
        if volumes.len() + stores.len() + 2 + HOT_SLOTS > MAX_DEVICES {
            return Err(ApiError::new(
                ErrorCode::InvalidBlockDeviceMapping,
                format!("At most {} volumes at launch.", MAX_DEVICES - 2 - HOT_SLOTS),
            ));
        }
        let free = {
            let used = self.db.used_ips(&subnet.id)?;
            let (_, prefix) = crate::cloud::network::plumbing::parse_cidr(&subnet.cidr)
                .unwrap_or((std::net::Ipv4Addr::UNSPECIFIED, 32));
            let size = 1i64 << (32 - prefix as u32);
            (size - 5 - used.len() as i64).max(0)
        };
        if free < min as i64 {
            return Err(ApiError::new(
                ErrorCode::InsufficientFreeAddressesInSubnet,
                format!(
                    "The subnet {} has {free} free addresses; {min} asked for.",
                    subnet.id
                ),
            ));
        }
        let mut count = (max as i64).min(free) as i32;
        if let Some(c) = &claimed {
            if (c.len() as i64) < i64::from(min) {
                return Err(ApiError::new(
                    ErrorCode::InsufficientFreeAddressesInSubnet,
                    format!(
                        "The subnet {} has {} free addresses in the region; {min} asked for.",
                        subnet.id,
                        c.len()
                    ),
                ));
            }
            count = count.min(c.len() as i32);
        }
        let public = self.launch_maps_public_ip(&subnet, req.associate_public_ip)?;
        let ipv6 = self.ipv6_ask(&subnet, &req.ipv6_addresses, req.ipv6_count)?;
        if !ipv6.named.is_empty() && max > 1 {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterCombination,
                "Ipv6Addresses name addresses of one instance: launch one (MaxCount 1) or give Ipv6AddressCount.",
            ));
        }
        if public {
            count = self.public_ip_capacity(min, count)?;
        }
        if let Some(p) = &req.pinned {
            ids::check_all(Kind::Instance, &p.ids)?;
            if p.ids.len() < min as usize {
                return Err(ApiError::invalid(
                    "The region placed fewer instances than MinCount asks for.",
                ));
            }
            count = count.min(p.ids.len() as i32);
        }
        let slots: Vec<Slot> = match (&group, &req.pinned) {
            (_, Some(p)) if !p.slots.is_empty() => p.slots.clone(),
            (_, Some(_)) => Vec::new(),
            // In a region a group's racks are the region's: its placement checks a dry run
            // (`cluster::run`), not this host's racks alone.
            (Some(_), None) if req.dry_run && self.cluster.is_some() => Vec::new(),
            (Some(g), None) => {
                let slots = scheduler::place(
                    &crate::cloud::placement::groups::view(g),
                    &self.cfg.racks,
                    &members,
                    &subnet.az,
                    req.partition_number,
                    min as usize,
                    count as usize,
                )?;
                count = slots.len() as i32;
                slots
            }
            (None, None) => Vec::new(),
        };

        if req.dry_run {
            return Err(ApiError::new(
                ErrorCode::DryRunOperation,
                "Request would have succeeded, but DryRun flag is set.",
            ));
        }
        let reservation = ids::new_id(Kind::Reservation);
        let now = now_s();
        let mut launched = Vec::new();
        // The volumes made, for the region's index (after the lock, not under it).
        let mut made: Vec<(String, String)> = Vec::new();
        for index in 0..count {
            let id = req
                .pinned
                .as_ref()
                .and_then(|p| p.ids.get(index as usize).cloned())
                .unwrap_or_else(|| ids::new_id(Kind::Instance));
            // The instance keeps its own link to the kernel, so that deregistering the AMI
            // does not strand it. A region's AMI whose files this host lacks is linked once
            // its boot pulled them.
            let dir = self.instance_dir(&id);
            let pulled_later =
                self.cluster.is_some() && !std::path::Path::new(&image.kernel).exists();
            let linked = std::fs::create_dir_all(&dir)
                .and_then(|_| {
                    if pulled_later {
                        Ok(())
                    } else {
                        crate::cloud::storage::images::link_or_copy(
                            std::path::Path::new(&image.kernel),
                            &dir.join("kernel"),
                        )
                    }
                })
                .and_then(|_| match &image.initrd {
                    Some(_) if pulled_later => Ok(()),
                    Some(i) => crate::cloud::storage::images::link_or_copy(
                        std::path::Path::new(i),
                        &dir.join("initrd"),
                    ),
                    None => Ok(()),
                });
            if let Err(e) = linked {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(crate::cloud::host_io(
                    "Cannot prepare the instance folder",
                    e,
                ));
            }
            let ip = claimed.as_mut().and_then(|c| c.pop_front());
            let eni = self.allocate_eni(account, &subnet, &id, ip)?;
            if let Err(e) = self.give_ipv6(&eni.id, &subnet, &ipv6) {
                self.db.delete_eni(&eni.id)?;
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
            self.db.set_eni_groups(&eni.id, &groups)?;
            if public {
                self.db.set_eni_map_public_ip(&eni.id, true)?;
            }
            let inst = Instance {
                id: id.clone(),
                owner: account.to_string(),
                reservation_id: reservation.clone(),
                launch_index: index,
                image_id: image.id.clone(),
                instance_type: itype.name.clone(),
                vcpus: itype.vcpus,
                memory_mib: itype.memory_mib,
                state: State::Pending,
                state_reason: String::new(),
                launch_time: now,
                az: subnet.az.clone(),
                subnet_id: subnet.id.clone(),
                security_groups: groups.clone(),
                key_name: req.key_name.clone(),
                user_data: req.user_data.clone(),
                shutdown_behavior: shutdown_behavior.to_string(),
                disable_api_termination: req.disable_api_termination.unwrap_or(false),
                root_device_name: image.root_device_name.clone(),
                kernel: dir.join("kernel").display().to_string(),
                initrd: image
                    .initrd
                    .as_ref()
                    .map(|_| dir.join("initrd").display().to_string()),
                boot_args: image.boot_args.clone(),
                tags: req.tags.clone(),
                instance_store: stores.clone(),
                vmm_pid: None,
                vmm_start: None,
                terminated_at: None,
                client_token: req.client_token.clone(),
                placement_group: group.as_ref().map(|g| g.id.clone()).unwrap_or_default(),
                partition_number: slots.get(index as usize).map_or(0, |s| s.partition),
                rack: slots
                    .get(index as usize)
                    .map(|s| s.rack.clone())
                    .unwrap_or_default(),
                public_key: public_key.clone(),
                metadata_options: req.metadata.apply(Default::default()),
                ena_support: image.ena_support,
            };
            self.db.insert_instance(&inst)?;
            if let Some(p) = &profile {
                self.associate_profile(&inst.id, p)?;
            }
            for m in &volumes {
                let vol = Volume {
                    id: ids::new_id(Kind::Volume),
                    owner: account.to_string(),
                    size_gib: m.volume_size,
                    volume_type: m.volume_type.clone(),
                    az: subnet.az.clone(),
                    snapshot_id: m.snapshot_id.clone(),
                    state: VolumeState::Creating,
                    created: now,
                    instance_id: Some(id.clone()),
                    device: Some(m.device_name.clone()),
                    attach_state: Some(AttachState::Attaching),
                    delete_on_termination: m.delete_on_termination,
                    slot: None,
                    tags: req.volume_tags.clone(),
                };
                self.db.insert_volume(&vol)?;
                self.meter_volume(&vol)?;
                made.push((vol.id.clone(), vol.owner.clone()));
            }
            crate::metrics::inc(&self.metrics.instances_launched_total);
            launched.push(inst);
        }
        drop(placement_guard);
        for inst in &launched {
            tracing::info!(
                instance = %inst.id,
                image = %inst.image_id,
                instance_type = %inst.instance_type,
                account = %inst.owner,
                "launch"
            );
            let cloud = Arc::clone(self);
            let id = inst.id.clone();
            tokio::spawn(async move { cloud.boot(&id, true).await });
        }
        if let Some(left) = claimed {
            Box::pin(self.release_ips(&subnet.id, &Vec::from(left))).await;
        }
        Box::pin(self.index_volumes(&made)).await;
        Box::pin(self.index_uses()).await;
        Ok((reservation, launched))
    }

    /// Splits a merged mapping into EBS volumes to create (checked) and instance-store
    /// volumes.
    fn plan_volumes(
        &self,
        account: &str,
        image: &crate::db::images::Image,
        mappings: &[Mapping],
        itype: &catalog::InstanceType,
    ) -> ApiResult<(Vec<Mapping>, Vec<InstanceStore>)> {
        let mut volumes = Vec::new();
        let mut stores = Vec::new();
        for m in mappings {
            if !m.virtual_name.is_empty() {
                let n: Option<u32> = m
                    .virtual_name
                    .strip_prefix("ephemeral")
                    .and_then(|n| n.parse().ok());
                if n.is_none() || itype.instance_store_gib == 0 {
                    return Err(ApiError::new(
                        ErrorCode::InvalidBlockDeviceMapping,
                        format!(
                            "{} has no instance store {}.",
                            itype.name,
                            m.virtual_name.chars().take(32).collect::<String>()
                        ),
                    ));
                }
                stores.push(InstanceStore {
                    device: m.device_name.clone(),
                    virtual_name: m.virtual_name.clone(),
                    gib: itype.instance_store_gib,
                });
                continue;
            }
            let mut m = m.clone();
            if !m.snapshot_id.is_empty() {
                ids::check(Kind::Snapshot, &m.snapshot_id)?;
                // A snapshot of the AMI is usable by whoever may launch the AMI.
                let of_ami = image
                    .mappings
                    .iter()
                    .find(|a| a.snapshot_id == m.snapshot_id);
                let snap = match (self.db.snapshot(&m.snapshot_id)?, of_ami) {
                    (Some(s), _) => s,
                    // A region's AMI whose files this host lacks: its boot pulls them
                    // (`storage::pull`), and the AMI's mapping has the snapshot's size.
                    (None, Some(a)) if self.cluster.is_some() => {
                        if m.volume_size == 0 {
                            m.volume_size = a.volume_size;
                        }
                        check_size(m.volume_size)?;
                        if m.volume_type.is_empty() {
                            m.volume_type = "gp3".into();
                        }
                        crate::cloud::storage::volumes::check_volume_type(&m.volume_type)?;
                        volumes.push(m);
                        continue;
                    }
                    (None, _) => return Err(Kind::Snapshot.not_found(&m.snapshot_id)),
                };
                let via_ami = of_ami.is_some();
                if snap.owner != account && !via_ami {
                    return Err(Kind::Snapshot.not_found(&m.snapshot_id));
                }
                if snap.state != SnapshotState::Completed {
                    return Err(ApiError::new(
                        ErrorCode::IncorrectState,
                        format!("Snapshot {} is {}.", snap.id, snap.state),
                    ));
                }
                if m.volume_size == 0 {
                    m.volume_size = snap.size_gib;
                }
                if m.volume_size < snap.size_gib {
                    return Err(ApiError::new(
                        ErrorCode::InvalidBlockDeviceMapping,
                        format!(
                            "Volume of size {}GB is smaller than snapshot '{}', expect size >= {}GB",
                            m.volume_size, snap.id, snap.size_gib
                        ),
                    ));
                }
            }
            check_size(m.volume_size)?;
            if m.volume_type.is_empty() {
                m.volume_type = "gp3".into();
            }
            crate::cloud::storage::volumes::check_volume_type(&m.volume_type)?;
            volumes.push(m);
        }
        Ok((volumes, stores))
    }

    /// Opens the metering period of a volume.
    pub fn meter_volume(&self, v: &Volume) -> ApiResult<()> {
        self.db.open_period(&Period {
            owner: v.owner.clone(),
            resource_id: v.id.clone(),
            resource_type: "volume".into(),
            kind: v.volume_type.clone(),
            gib: v.size_gib,
            start_ms: now_ms(),
            end_ms: None,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(dev: &str, size: i64) -> Mapping {
        Mapping {
            device_name: dev.into(),
            volume_size: size,
            delete_on_termination: true,
            ..Default::default()
        }
    }

    fn o(dev: &str, size: i64, dot: Option<bool>) -> Override {
        Override {
            mapping: m(dev, size),
            delete_on_termination: dot,
        }
    }

    #[test]
    fn device_names() {
        assert_eq!(device_index("/dev/vda"), Some(0));
        assert_eq!(device_index("/dev/sdf"), Some(5));
        assert_eq!(device_index("/dev/xvdz"), Some(25));
        for bad in ["", "/dev/vd", "/dev/vdaa", "/dev/hda", "vda", "/dev/vdA"] {
            assert!(device_index(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn mapping_overrides() {
        let ami = [m("/dev/vda", 1), m("/dev/vdb", 2)];
        let mut none = o("/dev/sdb", 0, None);
        none.mapping.no_device = true;
        let bigger = o("/dev/vda", 8, Some(false));
        let got = merge_mappings(
            &ami,
            "/dev/vda",
            &[
                none,
                bigger,
                o("/dev/vdc", 3, None),
                o("/dev/vdd", 1, Some(true)),
            ],
        )
        .unwrap();
        let got: Vec<(String, i64, bool)> = got
            .into_iter()
            .map(|m| (m.device_name, m.volume_size, m.delete_on_termination))
            .collect();
        assert_eq!(
            got,
            [
                ("/dev/vda".to_string(), 8, false),
                ("/dev/vdc".to_string(), 3, false),
                ("/dev/vdd".to_string(), 1, true)
            ]
        );
        // The AMI's setting is inherited when the launch does not say.
        let kept = merge_mappings(&ami, "/dev/vda", &[o("/dev/vda", 4, None)]).unwrap();
        assert!(kept[0].delete_on_termination);
        let dup = merge_mappings(
            &ami,
            "/dev/vda",
            &[o("/dev/vdc", 1, None), o("/dev/sdc", 1, None)],
        )
        .unwrap_err();
        assert_eq!(dup.code, "InvalidBlockDeviceMapping");
        assert!(merge_mappings(&ami, "/dev/vda", &[o("/dev/hda", 1, None)]).is_err());
    }

    #[test]
    fn sizes() {
        assert!(check_size(1).is_ok());
        for bad in [0, -1, MAX_VOLUME_GIB + 1, i64::MAX] {
            assert_eq!(check_size(bad).unwrap_err().code, "InvalidParameterValue");
        }
    }
}
