//! Booting an instance: its volumes cloned from snapshots, its tap, its config drive (user
//! data, meta-data with the placement, the public key), then its monitor. Runs in a task
//! holding the instance's operation lock, for launches and starts alike.

use std::sync::Arc;
use std::time::Duration;

use std::path::PathBuf;

use strato_vmm_api::config::{DiskConfig, JailConfig, NetConfig, SmbiosConfig, VmConfig};
use strato_vmm_api::names;

use super::launch::{device_index, HOT_SLOTS};
use crate::cloud::Cloud;
use crate::db::instances::Instance;
use crate::db::usage::Period;
use crate::db::{now_ms, now_s};
use crate::error::{ApiError, ApiResult};
use crate::ids::Kind;
use crate::lifecycle::{Event, State};
use crate::states::{AttachState, VolumeState};
use crate::storage::{self, GIB};
use crate::supervisor::{self, VmmPaths};

/// Queue pairs of each interface: with EnaSupport one per vCPU (as ENA gives), up to the
/// device's limit; one for the plain device.
fn queue_pairs(inst: &Instance) -> u16 {
    if !inst.ena_support {
        return 1;
    }
    let max = strato_vmm_api::config::MAX_QUEUE_PAIRS as u16;
    u16::from(inst.vcpus).clamp(1, max)
}

impl Cloud {
    /// Boots a pending instance: volumes, tap, config drive, monitor. A first launch that
    /// fails ends terminated, a start that fails ends stopped, both with the reason.
    pub async fn boot(self: Arc<Self>, id: &str, first: bool) {
        self.timelines.begin(id);
        let lock = self.lock(id);
        let _guard = lock.lock().await;
        let result = self.boot_locked(id).await;
        match result {
            Ok(()) => {
                match self.advance_from(id, State::Pending, Event::Booted, "") {
                    Ok(Some(_)) => {
                        if let Ok(Some(i)) = self.db.instance(id) {
                            let _ = self.db.open_period(&Period {
                                owner: i.owner,
                                resource_id: i.id,
                                resource_type: "instance".into(),
                                kind: i.instance_type,
                                gib: 0,
                                start_ms: now_ms(),
                                end_ms: None,
                            });
                        }
                    }
                    // Terminated while booting: the terminate task, queued on the lock,
                    // brings the monitor down.
                    Ok(None) => {}
                    Err(e) => tracing::error!(instance = id, error = %e, "cannot record running"),
                }
            }
            Err(e) => {
                tracing::warn!(instance = id, error = %e, "boot failed");
                let reason = format!("Server.InternalError: {}", e.message);
                if first {
                    if let Ok(Some(_)) =
                        self.advance_from(id, State::Pending, Event::LaunchFailed, &reason)
                    {
                        self.release_locked(id, &reason, false).await;
                    }
                } else {
                    self.release_public_ips(id, false);
                    let _ = self.advance_from(id, State::Pending, Event::BootFailed, &reason);
                }
            }
        }
    }

    async fn boot_locked(self: &Arc<Self>, id: &str) -> ApiResult<()> {
        let inst = self
            .db
            .instance(id)?
            .ok_or_else(|| Kind::Instance.not_found(id))?;
        if inst.state != State::Pending {
            return Ok(());
        }
        let dir = self.instance_dir(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::cloud::host_io("Cannot create the instance folder", e))?;
        self.pull_launch_files(&inst).await?;
        self.materialize_volumes(id).await?;
        self.timelines.mark(id, "volumes");
        for s in &inst.instance_store {
            let path = dir.join(format!("{}.img", s.virtual_name));
            if !path.exists() {
                storage::create_sparse(&path, s.gib as u64 * GIB)
                    .map_err(|e| crate::cloud::host_io("Cannot create the instance store", e))?;
            }
        }
        // The interface's rules are in place before its tap is.
        self.apply_firewall().await?;
        for eni in self.db.instance_enis(id)? {
            self.plug(&eni).await?;
        }
        self.timelines.mark(id, "tap");
        self.assign_public_ips(id).await?;
        self.write_config_drive(&inst)?;
        self.db.set_launch_time(id, now_s())?;
        self.spawn_vmm(&inst).await
    }

    /// A region's AMI whose files this host lacks: they are pulled from a host that holds
    /// them before the volumes are cloned (the instance stays pending meanwhile), then the
    /// instance's kernel and initrd are linked.
    async fn pull_launch_files(&self, inst: &Instance) -> ApiResult<()> {
        let kernel = std::path::Path::new(&inst.kernel);
        let lacking = self.db.instance_volumes(&inst.id)?.iter().any(|v| {
            v.state == VolumeState::Creating
                && !v.snapshot_id.is_empty()
                && !self.snapshot_path(&v.snapshot_id).exists()
        });
        if self.cluster.is_none() || (kernel.exists() && !lacking) {
            return Ok(());
        }
        self.ensure_image_files(&inst.image_id).await?;
        let image = self
            .db
            .image(&inst.image_id)?
            .ok_or_else(|| Kind::Image.not_found(&inst.image_id))?;
        let link = |src: &str, dst: &std::path::Path| {
            if dst.exists() {
                return Ok(());
            }
            crate::cloud::storage::images::link_or_copy(std::path::Path::new(src), dst)
                .map_err(|e| crate::cloud::host_io("Cannot prepare the instance folder", e))
        };
        link(&image.kernel, kernel)?;
        if let (Some(src), Some(dst)) = (&image.initrd, &inst.initrd) {
            link(src, std::path::Path::new(dst))?;
        }
        Ok(())
    }

    /// Creates the files of an instance's volumes that do not exist yet.
    async fn materialize_volumes(&self, id: &str) -> ApiResult<()> {
        for v in self.db.instance_volumes(id)? {
            if v.state != VolumeState::Creating {
                continue;
            }
            let path = self.volume_path(&v.id);
            let size = v.size_gib as u64 * GIB;
            if v.snapshot_id.is_empty() {
                storage::create_sparse(&path, size)
                    .map_err(|e| crate::cloud::host_io("Cannot create a volume", e))?;
            } else {
                let src = self.snapshot_path(&v.snapshot_id);
                let dst = path.clone();
                tokio::task::spawn_blocking(move || storage::clone_file(&src, &dst, size, |_| {}))
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?
                    .map_err(|e| crate::cloud::host_io("Cannot clone a snapshot", e))?;
            }
            self.db.set_volume_state(&v.id, VolumeState::InUse)?;
            self.db.set_attach_state(&v.id, AttachState::Attached)?;
        }
        Ok(())
    }

    /// Writes the config drive: user data and the meta-data the images read.
    fn write_config_drive(&self, inst: &Instance) -> ApiResult<()> {
        let dir = self.instance_dir(&inst.id);
        let ip = self
            .db
            .instance_enis(&inst.id)?
            .first()
            .map(|e| e.private_ip.clone())
            .unwrap_or_default();
        let group = match inst.placement_group.as_str() {
            "" => None,
            id => self.db.placement_group(id)?.map(|g| g.name),
        };
        let meta = meta_data(inst, &ip, group.as_deref());
        let mut members: Vec<(&str, &[u8])> = vec![("meta-data", meta.as_bytes())];
        if !inst.user_data.is_empty() {
            members.push(("user-data", &inst.user_data));
        }
        let keys = public_keys(inst);
        if let Some(k) = &keys {
            members.push(("public-keys", k.as_bytes()));
        }
        storage::write_config_drive(&dir.join("config-drive.img"), &members)
            .map_err(|e| crate::cloud::host_io("Cannot write the config drive", e))
    }

    /// The monitor configuration of an instance: its volumes in device order, its instance
    /// store, the config drive, empty slots for hot attach, its ENIs. Also returns each
    /// volume's drive ID.
    pub fn vm_config(&self, inst: &Instance) -> ApiResult<(VmConfig, Vec<(String, String)>)> {
        let dir = self.instance_dir(&inst.id);
        let paths = VmmPaths::in_dir(&dir);
        let mut slots = Vec::new();
        let disk = |id: String, path: Option<PathBuf>, readonly: bool| DiskConfig {
            id: Some(id),
            path,
            fd: None,
            readonly,
        };
        let mut devices: Vec<(usize, DiskConfig)> = Vec::new();
        for v in self.db.instance_volumes(&inst.id)? {
            let drive = names::volume_drive(&v.id);
            devices.push((
                v.device
                    .as_deref()
                    .and_then(device_index)
                    .unwrap_or(usize::MAX),
                disk(drive.clone(), Some(self.volume_path(&v.id)), false),
            ));
            slots.push((v.id.clone(), drive));
        }
        for s in &inst.instance_store {
            devices.push((
                device_index(&s.device).unwrap_or(usize::MAX),
                disk(
                    s.virtual_name.clone(),
                    Some(dir.join(format!("{}.img", s.virtual_name))),
                    false,
                ),
            ));
        }
        devices.sort_by_key(|d| d.0);
        let mut disks: Vec<DiskConfig> = devices.into_iter().map(|d| d.1).collect();
        disks.push(disk(
            names::CONFIG_DRIVE.to_string(),
            Some(dir.join("config-drive.img")),
            true,
        ));
        disks.extend((0..HOT_SLOTS).map(|k| disk(names::hot_slot(k), None, false)));
        let enis = self.db.instance_enis(&inst.id)?;
        let nets = enis
            .iter()
            .enumerate()
            .map(|(k, e)| NetConfig {
                id: Some(names::net(k)),
                tap: Some(e.tap.clone()),
                fd: None,
                mac: Some(e.mac.clone()),
                enhanced: inst.ena_support,
                queue_pairs: Some(queue_pairs(inst)),
                queue_fds: Vec::new(),
            })
            .collect();
        let mut cmdline = inst.boot_args.clone();
        if let Some(e) = enis.first() {
            if let Some(subnet) = self.db.subnet(&e.subnet_id)? {
                if let Some((gw, prefix)) = crate::cloud::network::plumbing::gateway(&subnet) {
                    cmdline.push_str(&format!(
                        " ip={}::{}:{}:ip-{}:eth0:off",
                        e.private_ip,
                        gw,
                        crate::cloud::network::plumbing::netmask(prefix),
                        e.private_ip.replace('.', "-")
                    ));
                }
            }
        }
        let config = VmConfig {
            initrd: inst.initrd.as_ref().map(PathBuf::from),
            cmdline,
            cpus: inst.vcpus,
            memory_mib: inst.memory_mib,
            disks,
            nets,
            rng: true,
            console: Some(paths.console),
            api_socket: Some(paths.api),
            exit_status_file: Some(paths.exit_status),
            cpu_template: self.cpu_template,
            irqchip: self.cfg.irqchip,
            smbios: smbios(inst),
            ..VmConfig::new(&inst.kernel)
        };
        Ok((config, slots))
    }

    /// Starts the monitor of an instance and waits until it runs.
    pub async fn spawn_vmm(self: &Arc<Self>, inst: &Instance) -> ApiResult<()> {
        let (config, slots) = self.vm_config(inst)?;
        for (vol, drive) in &slots {
            self.db.set_volume_slot(vol, Some(drive))?;
        }
        let paths = VmmPaths::in_dir(&self.instance_dir(&inst.id));
        let jail = self.jail_for(&inst.id)?;
        let (mut config, mut fds) =
            crate::handoff::hand_over(config, jail).map_err(|e| ApiError::internal(chain(&e)))?;
        if let Some(j) = config.jail.as_mut() {
            j.mount_ns_fd = self.jail_mount_ns()?.map(|ns| fds.pass(ns));
            j.net_ns_fd = self
                .jail_net_ns
                .as_ref()
                .and_then(|pool| pool.take())
                .map(|ns| fds.pass(ns));
        }
        let process = supervisor::spawn(&self.cfg.vmm_binary, &paths, &config, fds)
            .map_err(|e| ApiError::internal(chain(&e)))?;
        crate::metrics::inc(&self.metrics.vmm_spawned_total);
        self.timelines.mark(&inst.id, "monitor_exec");
        self.set_vm(&inst.id, process);
        self.db
            .set_vmm(&inst.id, Some(process.pid), Some(process.start))?;
        if let Err(e) = supervisor::wait_up(process, &paths, Duration::from_secs(30)).await {
            self.forget_vm(&inst.id);
            self.db.set_vmm(&inst.id, None, None)?;
            return Err(ApiError::internal(chain(&e)));
        }
        self.watch(&inst.id, process);
        self.boots.booted(&inst.id, process);
        Ok(())
    }
}

impl Cloud {
    /// The jail of instance `id`'s monitor: its own uid and gid from the configured range,
    /// or none when the jail is off (warned about on every launch). Refuses when this host
    /// cannot jail monitors and the configuration did not turn the jail off.
    fn jail_for(&self, id: &str) -> ApiResult<Option<JailConfig>> {
        match &self.jail_support {
            None => {
                tracing::warn!(
                    instance = id,
                    "launching a monitor WITHOUT the jail (\"jail\": false or --no-jail)"
                );
                Ok(None)
            }
            Some(Err(report)) => Err(ApiError::internal(format!(
                "this host cannot jail monitors ({}); set \"jail\": false in the daemon's configuration to run them unjailed",
                report.replace('\n', "; ")
            ))),
            Some(Ok(())) => {
                let ids = self.cfg.jail_ids;
                let uid = self.db.jail_id(id, ids.first, ids.last)?.ok_or_else(|| {
                    ApiError::internal(format!(
                        "every jail uid of {}-{} is taken: widen jail_id_range",
                        ids.first, ids.last
                    ))
                })?;
                Ok(Some(JailConfig {
                    uid: Some(uid),
                    gid: Some(uid),
                    ..JailConfig::default()
                }))
            }
        }
    }

    /// A copy of the empty mount namespace jails start from, for one monitor.
    fn jail_mount_ns(&self) -> ApiResult<Option<std::os::fd::OwnedFd>> {
        match &self.jail_mount_ns {
            Some(fd) => fd
                .try_clone()
                .map(Some)
                .map_err(|e| crate::cloud::host_io("Cannot pass the jails' mount namespace", e)),
            None => Ok(None),
        }
    }
}

/// The config drive's `meta-data`: `key: value` lines the images read, with the placement
/// group and partition of an instance in one (EC2's `placement/group-name` and
/// `placement/partition-number`).
pub fn meta_data(inst: &Instance, ip: &str, group: Option<&str>) -> String {
    let mut meta = format!(
        "instance-id: {}\nlocal-hostname: ip-{}\navailability-zone: {}\n",
        inst.id,
        ip.replace('.', "-"),
        inst.az
    );
    if let Some(g) = group {
        meta.push_str(&format!("placement-group: {g}\n"));
        if inst.partition_number > 0 {
            meta.push_str(&format!("partition-number: {}\n", inst.partition_number));
        }
    }
    meta
}

/// The machine identity an instance's guest reads from SMBIOS (DMI), as EC2 guests see it:
/// product name the instance type, serial number and UUID the same `ec2`-prefixed UUID (what
/// cloud-init's ds-identify takes for EC2), the instance ID as chassis asset tag. The
/// manufacturer is the monitor's own, `strato`.
pub fn smbios(inst: &Instance) -> SmbiosConfig {
    let uuid = system_uuid(&inst.id);
    SmbiosConfig {
        product: Some(inst.instance_type.clone()),
        serial: Some(uuid.clone()),
        uuid: Some(uuid),
        asset_tag: Some(inst.id.clone()),
    }
}

/// The system UUID of an instance: derived from its ID alone (SHA-256), so that it stays the
/// same across reboots, stops and starts, with `ec2` as its first three hex digits.
pub fn system_uuid(instance_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("strato system uuid {instance_id}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let hex = format!("ec2{}", &hex[3..]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The config drive's `public-keys` member: the instance's OpenSSH public key on one line.
pub fn public_keys(inst: &Instance) -> Option<String> {
    let key = inst.public_key.trim();
    (!key.is_empty()).then(|| format!("{key}\n"))
}

pub use crate::error::chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_data_names_the_placement_and_keys_go_in_their_own_member() {
        let mut i = crate::db::instances::tests::sample("i-0000000000000000a", "111111111111");
        let plain = meta_data(&i, "172.31.0.4", None);
        assert_eq!(
            plain,
            "instance-id: i-0000000000000000a\nlocal-hostname: ip-172-31-0-4\n\
             availability-zone: home-1a\n"
        );
        assert!(public_keys(&i).is_none());
        i.partition_number = 3;
        i.public_key = "ssh-ed25519 AAAAC3Nza k1".into();
        let m = meta_data(&i, "172.31.0.4", Some("hdfs"));
        assert!(
            m.ends_with("placement-group: hdfs\npartition-number: 3\n"),
            "{m}"
        );
        assert_eq!(public_keys(&i).unwrap(), "ssh-ed25519 AAAAC3Nza k1\n");
        i.partition_number = 0;
        assert!(meta_data(&i, "", Some("web")).ends_with("placement-group: web\n"));
    }

    #[test]
    fn smbios_identity_is_ec2s_and_follows_the_instance_id() {
        let mut i = crate::db::instances::tests::sample("i-0000000000000000a", "111111111111");
        i.instance_type = "t3.micro".into();
        let s = smbios(&i);
        let uuid = s.uuid.clone().unwrap();
        assert!(uuid.starts_with("ec2"), "{uuid}");
        assert_eq!(s.serial.as_deref(), Some(uuid.as_str()));
        assert_eq!(s.product.as_deref(), Some("t3.micro"));
        assert_eq!(s.asset_tag.as_deref(), Some("i-0000000000000000a"));
        // What the monitor accepts, the same every time, and another instance's differs.
        s.validate().unwrap();
        assert!(strato_vmm_api::config::parse_uuid(&uuid).is_ok());
        assert_eq!(system_uuid(&i.id), uuid);
        let other = system_uuid("i-0000000000000000b");
        assert_ne!(other, uuid);
        assert!(other.starts_with("ec2"));
        // Lower-case hex in 8-4-4-4-12 groups, as EC2 guests read it.
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(uuid
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}
