//! AMIs: registration from an image bundle or files, visibility and launch permissions,
//! deregistration, and CreateImage from an instance (its volumes snapshotted into the new
//! AMI's block device mapping).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::cloud::Cloud;
use crate::db::images::{Image, Mapping, PUBLIC};
use crate::db::now_s;
use crate::db::volumes::Snapshot;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};
use crate::lifecycle::State;
use crate::states::{ImageState, SnapshotState};
use crate::storage::{self, GIB};

/// What RegisterImage asks for.
#[derive(Debug, Clone, Default)]
pub struct RegisterRequest {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Bundle folder (with manifest.json), or empty.
    pub bundle: Option<PathBuf>,
    /// Kernel file, without a bundle.
    pub kernel: Option<PathBuf>,
    /// Root volume file, without a bundle.
    pub root_volume: Option<PathBuf>,
    /// Kernel command line (overrides the bundle's).
    pub boot_args: String,
    /// Root device name (default `/dev/vda`).
    pub root_device_name: String,
    /// Extra mapping entries (blank volumes, instance store).
    pub mappings: Vec<Mapping>,
    /// EnaSupport (`--ena-support`); unset, the bundle's manifest decides (true unless it
    /// says otherwise: strato's bundles are its Amazon-provided images, and those are ENA
    /// enabled in EC2), and an image of explicit files has none, as EC2's RegisterImage
    /// without the flag.
    pub ena_support: Option<bool>,
}

/// A bundle's `manifest.json` (docs/images.md).
#[derive(Debug, Deserialize)]
struct Manifest {
    kernel: String,
    #[serde(default)]
    initrd: Option<String>,
    #[serde(default)]
    boot_args: String,
    #[serde(default)]
    root_device_name: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    block_device_mappings: Vec<ManifestMapping>,
    #[serde(default = "yes")]
    ena_support: bool,
}

#[derive(Debug, Deserialize)]
struct ManifestMapping {
    device_name: String,
    volume: String,
    #[serde(default)]
    size_gib: Option<i64>,
    #[serde(default = "yes")]
    delete_on_termination: bool,
}

fn yes() -> bool {
    true
}

/// A volume file to copy into a snapshot of the new image.
struct Source {
    file: PathBuf,
    mapping: Mapping,
}

/// Checks an AMI name as EC2 does: 3 to 128 characters from a limited set.
pub fn check_name(name: &str) -> ApiResult<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c));
    if !(3..=128).contains(&name.len()) || !ok_chars {
        return Err(ApiError::invalid(format!(
            "AMI names must be 3 to 128 characters from letters, digits and ( ) [ ] space . / - ' @ _; got '{}'.",
            name.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// Links `src` to `dst` (same file system: no copy), else copies it.
pub fn link_or_copy(src: &Path, dst: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(dst);
    std::fs::hard_link(src, dst).or_else(|_| std::fs::copy(src, dst).map(|_| ()))
}

fn gib_of(path: &Path) -> std::io::Result<i64> {
    let len = std::fs::metadata(path)?.len();
    Ok(len.div_ceil(GIB).max(1) as i64)
}

/// CreateImage with a reboot: the image's progress once the guest is down, ...
const HALTED_AT: i32 = 10;
/// ... once its volumes are copied, ...
const COPIED_AT: i32 = 90;
/// ... and while it boots again (available, 100 %, once it runs).
const BOOT_AGAIN_AT: i32 = 95;

impl Cloud {
    /// Whether `account` may call RegisterImage: only the host's admin.
    pub fn may_register_images(&self, account: &str) -> ApiResult<()> {
        if account != self.cfg.admin_account {
            return Err(ApiError::new(
                ErrorCode::UnauthorizedOperation,
                "Only the host's admin account may register images from host files.",
            ));
        }
        Ok(())
    }

    /// RegisterImage. Host paths can only be named by the host's admin (the Unix socket),
    /// since the daemon reads them with its own rights.
    pub fn register_image(
        self: &Arc<Self>,
        account: &str,
        req: RegisterRequest,
    ) -> ApiResult<Image> {
        self.may_register_images(account)?;
        check_name(&req.name)?;
        let bad = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
            ApiError::invalid(format!("Cannot read {what} {}: {e}", p.display()))
        };
        let (kernel, initrd, mut boot_args, root, arch, mut sources, default_ena) =
            match &req.bundle {
                Some(dir) => {
                    let mpath = dir.join("manifest.json");
                    let text =
                        std::fs::read_to_string(&mpath).map_err(|e| bad("manifest", &mpath, &e))?;
                    let m: Manifest =
                        serde_json::from_str(&text).map_err(|e| bad("manifest", &mpath, &e))?;
                    let mut sources = Vec::new();
                    for mm in &m.block_device_mappings {
                        crate::cloud::compute::launch::check_device(&mm.device_name)?;
                        let file = dir.join(&mm.volume);
                        let gib = gib_of(&file).map_err(|e| bad("volume", &file, &e))?;
                        sources.push(Source {
                            mapping: Mapping {
                                device_name: mm.device_name.clone(),
                                volume_size: mm.size_gib.unwrap_or(gib).max(gib),
                                volume_type: "gp3".into(),
                                delete_on_termination: mm.delete_on_termination,
                                ..Default::default()
                            },
                            file,
                        });
                    }
                    (
                        dir.join(&m.kernel),
                        m.initrd.map(|i| dir.join(i)),
                        m.boot_args,
                        m.root_device_name.unwrap_or_else(|| "/dev/vda".into()),
                        m.architecture.unwrap_or_else(|| "x86_64".into()),
                        sources,
                        m.ena_support,
                    )
                }
                None => {
                    let kernel = req
                        .kernel
                        .clone()
                        .ok_or_else(|| ApiError::missing("KernelPath or BundlePath"))?;
                    let root = if req.root_device_name.is_empty() {
                        "/dev/vda".to_string()
                    } else {
                        req.root_device_name.clone()
                    };
                    let mut sources = Vec::new();
                    if let Some(file) = &req.root_volume {
                        let gib = gib_of(file).map_err(|e| bad("volume", file, &e))?;
                        sources.push(Source {
                            file: file.clone(),
                            mapping: Mapping {
                                device_name: root.clone(),
                                volume_size: gib,
                                volume_type: "gp3".into(),
                                delete_on_termination: true,
                                ..Default::default()
                            },
                        });
                    }
                    (
                        kernel,
                        None,
                        String::new(),
                        root,
                        "x86_64".to_string(),
                        sources,
                        false,
                    )
                }
            };
        if !req.boot_args.is_empty() {
            boot_args = req.boot_args.clone();
        }
        let root = if req.root_device_name.is_empty() {
            root
        } else {
            req.root_device_name.clone()
        };
        crate::cloud::compute::launch::check_device(&root)?;
        std::fs::metadata(&kernel).map_err(|e| bad("kernel", &kernel, &e))?;
        if let Some(i) = &initrd {
            std::fs::metadata(i).map_err(|e| bad("initrd", i, &e))?;
        }
        let mut mappings: Vec<Mapping> = Vec::new();
        for m in &req.mappings {
            let idx = Some(crate::cloud::compute::launch::check_device(&m.device_name)?);
            if !m.snapshot_id.is_empty() {
                return Err(ApiError::invalid(
                    "Mappings of a registered image cannot name snapshots.",
                ));
            }
            if m.virtual_name.is_empty() {
                crate::cloud::compute::launch::check_size(m.volume_size)?;
                if !m.volume_type.is_empty() {
                    super::volumes::check_volume_type(&m.volume_type)?;
                }
            }
            let index = |d: &str| crate::cloud::compute::launch::device_index(d);
            if sources.iter().any(|s| index(&s.mapping.device_name) == idx)
                || mappings.iter().any(|o| index(&o.device_name) == idx)
            {
                return Err(ApiError::new(
                    ErrorCode::InvalidBlockDeviceMapping,
                    format!("The device {} is mapped twice.", m.device_name),
                ));
            }
            let mut m = m.clone();
            if m.volume_type.is_empty() && m.virtual_name.is_empty() {
                m.volume_type = "gp3".into();
            }
            mappings.push(m);
        }

        let id = ids::new_id(Kind::Image);
        let dir = self.image_dir(&id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::cloud::host_io("Cannot create the image folder", e))?;
        let copy_files = || -> std::io::Result<(PathBuf, Option<PathBuf>)> {
            let k = dir.join("kernel");
            std::fs::copy(&kernel, &k)?;
            let i = match &initrd {
                Some(src) => {
                    let d = dir.join("initrd");
                    std::fs::copy(src, &d)?;
                    Some(d)
                }
                None => None,
            };
            Ok((k, i))
        };
        let (kpath, ipath) = match copy_files() {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(crate::cloud::host_io("Cannot copy the kernel", e));
            }
        };
        for s in &mut sources {
            s.mapping.snapshot_id = ids::new_id(Kind::Snapshot);
        }
        mappings.extend(sources.iter().map(|s| s.mapping.clone()));
        mappings.sort_by_key(|m| crate::cloud::compute::launch::device_index(&m.device_name));
        let image = Image {
            id: id.clone(),
            owner: account.to_string(),
            name: req.name.clone(),
            description: req.description.clone(),
            state: if sources.is_empty() {
                ImageState::Available
            } else {
                ImageState::Pending
            },
            state_reason: String::new(),
            progress: if sources.is_empty() { 100 } else { 0 },
            architecture: arch,
            kernel: kpath.display().to_string(),
            initrd: ipath.map(|p| p.display().to_string()),
            boot_args,
            root_device_name: root,
            mappings,
            created: now_s(),
            tags: Vec::new(),
            ena_support: req.ena_support.unwrap_or(default_ena),
        };
        if !self.db.insert_image(&image)? {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ApiError::new(
                ErrorCode::InvalidAmiNameDuplicate,
                format!("AMI name {} is already in use by another AMI.", req.name),
            ));
        }
        let jobs: Vec<(PathBuf, Snapshot)> = sources
            .into_iter()
            .map(|s| {
                (
                    s.file.clone(),
                    Snapshot {
                        id: s.mapping.snapshot_id.clone(),
                        owner: account.to_string(),
                        volume_id: "vol-ffffffff".into(),
                        size_gib: s.mapping.volume_size,
                        state: SnapshotState::Pending,
                        progress: 0,
                        description: format!("Registered for {id} from {}", s.file.display()),
                        created: now_s(),
                        tags: Vec::new(),
                    },
                )
            })
            .collect();
        for (_, snap) in &jobs {
            self.db.insert_snapshot(snap)?;
        }
        if !jobs.is_empty() {
            let cloud = Arc::clone(self);
            let image_id = id.clone();
            tokio::spawn(async move { cloud.fill_image(&image_id, jobs, None, (0, 99)).await });
        }
        Ok(image)
    }

    /// Copies the files behind a pending image's snapshots, reporting progress on the image
    /// and the snapshots; then marks it available (or failed). With `restart`, the instance
    /// whose volumes were copied is booted again afterwards (CreateImage with a reboot).
    /// The image's progress runs over the range `copy_from..copy_to` during the copy, then to
    /// [`BOOT_AGAIN_AT`] while the instance boots again, so that a waiting client sees the
    /// whole operation move, not a copy that jumps to 99 % and then stalls.
    async fn fill_image(
        self: Arc<Self>,
        image_id: &str,
        jobs: Vec<(PathBuf, Snapshot)>,
        restart: Option<String>,
        (copy_from, copy_to): (i32, i32),
    ) {
        let total: i64 = jobs
            .iter()
            .map(|(f, _)| std::fs::metadata(f).map(|m| m.len() as i64).unwrap_or(0))
            .sum::<i64>()
            .max(1);
        let mut done: i64 = 0;
        let mut failure = None;
        for (file, snap) in &jobs {
            let size = std::fs::metadata(file).map(|m| m.len() as i64).unwrap_or(0);
            let db_cloud = Arc::clone(&self);
            let (src, dst) = (file.clone(), self.snapshot_path(&snap.id));
            let (sid, iid) = (snap.id.clone(), image_id.to_string());
            let base = done;
            let res = tokio::task::spawn_blocking(move || {
                let mut last = -1;
                storage::clone_file(&src, &dst, 0, |pct| {
                    let copied = ((base + size * pct as i64 / 100) * 100 / total) as i32;
                    let overall = copy_from + copied * (copy_to - copy_from) / 100;
                    if pct as i32 != last {
                        last = pct as i32;
                        let _ = db_cloud.db.set_snapshot_state(
                            &sid,
                            SnapshotState::Pending,
                            pct as i32,
                        );
                        let _ = db_cloud.db.set_image_state(
                            &iid,
                            ImageState::Pending,
                            "",
                            overall.min(99),
                        );
                    }
                })
            })
            .await;
            done += size;
            match res {
                Ok(Ok(_)) => {
                    self.metrics
                        .copied_bytes_total
                        .fetch_add(size as u64, std::sync::atomic::Ordering::Relaxed);
                    let _ = self
                        .db
                        .set_snapshot_state(&snap.id, SnapshotState::Completed, 100);
                }
                Ok(Err(e)) => {
                    failure = Some(format!("copying {}: {e}", file.display()));
                    let _ = self
                        .db
                        .set_snapshot_state(&snap.id, SnapshotState::Error, 0);
                }
                Err(e) => failure = Some(e.to_string()),
            }
        }
        if let Some(id) = restart {
            if let Ok(Some(inst)) = self.db.instance(&id) {
                if inst.state == State::Running {
                    if failure.is_none() {
                        let _ = self.db.set_image_state(
                            image_id,
                            ImageState::Pending,
                            "",
                            BOOT_AGAIN_AT,
                        );
                    }
                    if let Err(e) = self.spawn_vmm(&inst).await {
                        tracing::warn!(instance = %id, error = %e, "cannot boot again after create-image");
                    }
                }
            }
        }
        let r = match failure {
            None => self
                .db
                .set_image_state(image_id, ImageState::Available, "", 100),
            Some(f) => {
                tracing::warn!(image = image_id, reason = %f, "image failed");
                self.db.set_image_state(
                    image_id,
                    ImageState::Failed,
                    &format!("Server.InternalError: {f}"),
                    0,
                )
            }
        };
        if let Err(e) = r {
            tracing::error!(image = image_id, error = %e, "cannot record image state");
        }
        self.publish_image_state(image_id).await;
    }

    /// The images an account can see: its own, public ones, and those shared with it.
    pub fn visible_images(&self, account: &str) -> ApiResult<Vec<(Image, Vec<String>)>> {
        let mut out = Vec::new();
        for i in self.db.images()? {
            let perms = self.db.launch_permissions(&i.id)?;
            if i.owner == account || perms.iter().any(|g| g == account || g == PUBLIC) {
                out.push((i, perms));
            }
        }
        Ok(out)
    }

    /// An image the account can see.
    pub fn visible_image(&self, account: &str, id: &str) -> ApiResult<(Image, Vec<String>)> {
        ids::check(Kind::Image, id)?;
        self.visible_images(account)?
            .into_iter()
            .find(|(i, _)| i.id == id)
            .ok_or_else(|| Kind::Image.not_found(id))
    }

    /// An image the account owns (for changes).
    pub(crate) fn owned_image(&self, account: &str, id: &str) -> ApiResult<Image> {
        let (i, _) = self.visible_image(account, id)?;
        if i.owner != account {
            return Err(ApiError::new(
                ErrorCode::AuthFailure,
                format!("Not authorized for image:{id}"),
            ));
        }
        Ok(i)
    }

    /// DeregisterImage: the AMI goes; its snapshots stay, as in EC2.
    pub fn deregister_image(&self, account: &str, id: &str) -> ApiResult<()> {
        let image = self.owned_image(account, id)?;
        if image.state == ImageState::Pending {
            return Err(ApiError::new(
                ErrorCode::IncorrectState,
                format!("Image {id} is still pending."),
            ));
        }
        self.db.delete_image(id)?;
        let _ = std::fs::remove_dir_all(self.image_dir(id));
        self.drop_replicas(&image)
    }

    /// ModifyImageAttribute for launch permissions.
    pub fn modify_launch_permissions(
        &self,
        account: &str,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> ApiResult<()> {
        self.owned_image(account, id)?;
        for g in add.iter().chain(remove) {
            let ok = g == PUBLIC || (g.len() == 12 && g.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                return Err(ApiError::new(
                    ErrorCode::InvalidAmiAttributeItemValue,
                    format!(
                        "Invalid attribute item value \"{}\" for userId item type.",
                        g.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        if add.is_empty() && remove.is_empty() {
            return Err(ApiError::missing("LaunchPermission"));
        }
        self.db.modify_launch_permissions(id, add, remove)?;
        Ok(())
    }

    /// DescribeImageAttribute launchPermission (owner only).
    pub fn launch_permissions(&self, account: &str, id: &str) -> ApiResult<Vec<String>> {
        self.owned_image(account, id)?;
        Ok(self.db.launch_permissions(id)?)
    }

    /// DescribeImageAttribute: the launch permissions (the only attribute there is; an
    /// empty name means it too).
    pub fn describe_image_attribute(
        &self,
        account: &str,
        id: &str,
        attribute: &str,
    ) -> ApiResult<Vec<String>> {
        if !attribute.is_empty() && attribute != "launchPermission" {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "Attribute {} is not supported; use launchPermission.",
                    attribute.chars().take(64).collect::<String>()
                ),
            ));
        }
        self.launch_permissions(account, id)
    }

    /// CreateImage: snapshots every volume of the instance into a new pending AMI; a running
    /// instance is shut down first and booted again afterwards unless `no_reboot`.
    pub fn create_image(
        self: &Arc<Self>,
        account: &str,
        instance_id: &str,
        name: &str,
        description: &str,
        no_reboot: bool,
    ) -> ApiResult<Image> {
        let inst = self.owned_instance(account, instance_id)?;
        if !matches!(inst.state, State::Running | State::Stopped) {
            return Err(ApiError::incorrect_state(
                instance_id,
                inst.state.name(),
                "imaged",
            ));
        }
        check_name(name)?;
        let volumes = self.db.instance_volumes(instance_id)?;
        self.ensure_space(
            self.copy_need(volumes.iter().map(|v| self.volume_path(&v.id))),
            ErrorCode::InsufficientVolumeCapacity,
            "the image's snapshots",
        )?;
        let id = ids::new_id(Kind::Image);
        let dir = self.image_dir(&id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::cloud::host_io("Cannot create the image folder", e))?;
        let kernel = dir.join("kernel");
        let link =
            link_or_copy(Path::new(&inst.kernel), &kernel).and_then(|_| match &inst.initrd {
                Some(i) => link_or_copy(Path::new(i), &dir.join("initrd")),
                None => Ok(()),
            });
        if let Err(e) = link {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(crate::cloud::host_io("Cannot copy the kernel", e));
        }
        let mut jobs = Vec::new();
        let mut mappings = Vec::new();
        for v in &volumes {
            let snap = Snapshot {
                id: ids::new_id(Kind::Snapshot),
                owner: account.to_string(),
                volume_id: v.id.clone(),
                size_gib: v.size_gib,
                state: SnapshotState::Pending,
                progress: 0,
                description: format!("Created by CreateImage({instance_id}) for {id}"),
                created: now_s(),
                tags: Vec::new(),
            };
            mappings.push(Mapping {
                device_name: v.device.clone().unwrap_or_default(),
                snapshot_id: snap.id.clone(),
                volume_size: v.size_gib,
                volume_type: v.volume_type.clone(),
                delete_on_termination: v.delete_on_termination,
                ..Default::default()
            });
            jobs.push((self.volume_path(&v.id), snap));
        }
        for s in &inst.instance_store {
            mappings.push(Mapping {
                device_name: s.device.clone(),
                virtual_name: s.virtual_name.clone(),
                ..Default::default()
            });
        }
        mappings.sort_by_key(|m| crate::cloud::compute::launch::device_index(&m.device_name));
        let image = Image {
            id: id.clone(),
            owner: account.to_string(),
            name: name.to_string(),
            description: description.to_string(),
            state: ImageState::Pending,
            state_reason: String::new(),
            progress: 0,
            architecture: "x86_64".into(),
            kernel: kernel.display().to_string(),
            initrd: inst
                .initrd
                .as_ref()
                .map(|_| dir.join("initrd").display().to_string()),
            boot_args: inst.boot_args.clone(),
            root_device_name: inst.root_device_name.clone(),
            mappings,
            created: now_s(),
            tags: Vec::new(),
            // As EC2's CreateImage: the image keeps the instance's attribute.
            ena_support: inst.ena_support,
        };
        if !self.db.insert_image(&image)? {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ApiError::new(
                ErrorCode::InvalidAmiNameDuplicate,
                format!("AMI name {name} is already in use by another AMI."),
            ));
        }
        for (_, s) in &jobs {
            self.db.insert_snapshot(s)?;
        }
        let cloud = Arc::clone(self);
        let reboot = inst.state == State::Running && !no_reboot;
        let iid = instance_id.to_string();
        tokio::spawn(async move {
            let lock = cloud.lock(&iid);
            let _g = lock.lock().await;
            if reboot {
                cloud.halt_vm(&iid, false).await;
                cloud.status_forget(&iid);
            }
            // Without a reboot the VM is paused while its disks are copied, so that the
            // image is crash-consistent across all of them.
            let pause = if reboot {
                None
            } else {
                match cloud.pause_for_copy(&iid).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(image = %image.id, error = %e.message, "CreateImage failed");
                        for (_, s) in &jobs {
                            let _ = cloud.db.set_snapshot_state(&s.id, SnapshotState::Error, 0);
                        }
                        let _ =
                            cloud
                                .db
                                .set_image_state(&image.id, ImageState::Failed, &e.message, 0);
                        cloud.publish_image_state(&image.id).await;
                        return;
                    }
                }
            };
            let restart = reboot.then(|| iid.clone());
            let image_id = image.id.clone();
            // The guest is down (or paused): the copy starts.
            let copy = if reboot {
                (HALTED_AT, COPIED_AT)
            } else {
                (0, 99)
            };
            let _ = cloud
                .db
                .set_image_state(&image_id, ImageState::Pending, "", copy.0);
            Arc::clone(&cloud)
                .fill_image(&image_id, jobs, restart, copy)
                .await;
            if let Some(p) = pause {
                p.resume(&cloud).await;
            }
        });
        self.db
            .image(&id)?
            .ok_or_else(|| ApiError::internal("image vanished"))
    }
}
