//! The cloud: the daemon's state and everything that changes it. Requests arrive from the
//! gRPC layer (`crate::api`) already tied to an account; work that takes time (booting,
//! stopping, copying volumes) runs in tasks that hold the instance's operation lock, while
//! the request itself records the state change and answers at once, as EC2 does.
//!
//! One sub-folder per group of the API's services, each with the rules and describe logic
//! of its resources: `compute`, `storage` (images, volumes, snapshots), `network` and
//! `placement` (placement groups, regions and zones), `identity` (the Query API's access
//! keys). What every group uses sits here:
//! the `Cloud` itself, describe `filters` and `tags`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::config::Config;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::supervisor::Process;

pub mod compute;
pub mod filters;
pub mod identity;
pub mod network;
pub mod paging;
pub mod placement;
pub mod shared;
pub mod storage;
pub mod tags;
pub mod usage;

/// A monitor the daemon watches.
#[derive(Debug, Clone, Copy)]
pub struct Vm {
    /// Its process.
    pub process: Process,
    /// Set while the daemon itself brings it down (stop, reboot, terminate, create-image),
    /// so that its exit is not taken for the guest powering off.
    pub expected_exit: bool,
    /// When the daemon started (or adopted) it.
    pub since: std::time::Instant,
}

/// The daemon's state.
pub struct Cloud {
    /// Settings.
    pub cfg: Config,
    /// The state store: private to the domain, which every front end and guest-facing
    /// service reaches through methods and narrow traits.
    db: Db,
    /// The CPU template every monitor gets.
    pub cpu_template: strato_vmm_api::config::CpuTemplate,
    /// Whether monitors are jailed: `None` when the configuration turned the jail off,
    /// `Some(Err)` with `strato-vmm --check-jail`'s report when this host cannot jail them
    /// (launches are then refused).
    pub jail_support: Option<Result<(), String>>,
    /// An empty mount namespace each jail's own is copied from (none: from the host's).
    pub jail_mount_ns: Option<std::os::fd::OwnedFd>,
    /// Fresh network namespaces made ahead, one per jail (none: each jail makes its own).
    pub jail_net_ns: Option<crate::netns_pool::NetNsPool>,
    /// Running monitors by instance ID.
    vms: Mutex<HashMap<String, Vm>>,
    /// One operation lock per instance: a boot, stop, reboot or image capture at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Status check results by instance ID (the prober's board).
    status: Mutex<HashMap<String, crate::prober::Record>>,
    /// Each instance's latest boot, step by step.
    pub timelines: compute::timeline::Timelines,
    /// Held while placement decisions are made and recorded (launches, starts and moves of
    /// instances in placement groups, group deletion), so that two requests cannot both
    /// take the last rack of a spread group.
    placement: Mutex<()>,
    /// Daemon work counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Poked when VPCs come or go, so that per-bridge services (the metadata service)
    /// follow at once.
    pub network_changed: Arc<tokio::sync::Notify>,
    /// Monitors that came up (or were adopted), for the status prober's first checks.
    pub boots: crate::prober::BootEvents,
    /// The security group firewall's apply lock.
    pub firewall: network::firewall::Firewall,
    /// The VXLAN overlay joining VPC bridges across hosts (its peers change at runtime).
    pub overlay: network::overlay::Overlay,
    /// What the mirror's imports of VPCs, subnets and groups left for the host to do.
    pub mirror_net: network::region::MirrorNet,
    /// Whether this host's default VPC is its region's (`network::region_default`).
    pub default_join: network::region_default::DefaultVpcJoin,
    /// The DHCP servers, one per VPC bridge.
    pub dhcp: crate::dhcp::Servers,
    /// The IPv6 router services (advertisements, DHCPv6), one set per VPC bridge.
    pub dhcp6: crate::dhcp6::Servers,
    /// Serializes NAT table applies (`addresses`).
    nat: network::applies::Applies,
    /// How CopyImage reaches other regions' daemons.
    regions: Box<dyn storage::source::RegionLink>,
    /// This host's membership of a region of hosts (config `cluster`).
    pub cluster: Option<Arc<crate::cluster::Region>>,
    /// This cloud, for tasks started from calls that only borrow it.
    me: Weak<Cloud>,
}

impl Cloud {
    /// Opens the data directory and database, and picks the CPU template; `regions` is how
    /// CopyImage reaches other regions.
    pub fn open(
        cfg: Config,
        regions: Box<dyn storage::source::RegionLink>,
    ) -> Result<Arc<Cloud>, StartError> {
        for sub in ["", "images", "volumes", "snapshots", "instances"] {
            let d = cfg.data_dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| StartError::Dir(d.display().to_string(), e))?;
        }
        let db = Db::open(&cfg.data_dir.join("strato.db"))?;
        let cpu_template = match &cfg.cpu_template {
            Some(t) => {
                tracing::info!(template = t.name(), "CPU template from the configuration");
                *t
            }
            None => {
                let (t, why) = crate::supervisor::detect_cpu_template(&cfg.vmm_binary)
                    .map_err(StartError::Detect)?;
                tracing::info!(template = t.name(), reason = %why, "CPU template detected");
                t
            }
        };
        let jail_support = if cfg.jail {
            let r = crate::supervisor::check_jail(&cfg.vmm_binary);
            match &r {
                Ok(report) => {
                    tracing::info!(layers = %report.replace('\n', "; "), "monitors are jailed")
                }
                Err(report) => tracing::error!(
                    report = %report.replace('\n', "; "),
                    "this host cannot jail monitors: launches are refused (\"jail\": false or --no-jail runs them unjailed)"
                ),
            }
            Some(r.map(drop))
        } else {
            tracing::warn!(
                "monitors run WITHOUT the jail (\"jail\": false or --no-jail): a guest that escapes its monitor owns this host; for development only"
            );
            None
        };
        let jail_mount_ns = match &jail_support {
            Some(Ok(())) => match crate::supervisor::empty_mount_ns(&cfg.vmm_binary) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), "no empty mount namespace for jails: each copies the host's mount table");
                    None
                }
            },
            _ => None,
        };
        let jail_net_ns = match &jail_support {
            Some(Ok(())) => crate::netns_pool::NetNsPool::start(),
            _ => None,
        };
        let overlay = network::overlay::Overlay::new(cfg.overlay.clone());
        let cluster = cfg.cluster.clone().map(|c| {
            // The other hosts' APIs are verified against the region's CA (`tls.ca_file`, or
            // this host's own CA when the hosts share it).
            let roots = crate::tls::peer_roots(&cfg).unwrap_or_else(|e| {
                tracing::warn!(error = %crate::error::chain(&e), "no CA for the region's hosts");
                Vec::new()
            });
            Arc::new(crate::cluster::Region::new(c, cfg.region.clone(), roots))
        });
        Ok(Arc::new_cyclic(|me| Cloud {
            overlay,
            mirror_net: Default::default(),
            default_join: Default::default(),
            cluster,
            jail_mount_ns,
            jail_net_ns,
            jail_support,
            nat: network::applies::Applies::default(),
            regions,
            me: me.clone(),
            cfg,
            db,
            cpu_template,
            vms: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            status: Mutex::new(HashMap::new()),
            timelines: Default::default(),
            placement: Mutex::new(()),
            metrics: Arc::default(),
            network_changed: Arc::default(),
            boots: Default::default(),
            firewall: network::firewall::Firewall::default(),
            dhcp: crate::dhcp::Servers::default(),
            dhcp6: crate::dhcp6::Servers::default(),
        }))
    }

    /// The folder of an instance.
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join("instances").join(id)
    }

    /// The file of a volume.
    pub fn volume_path(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join("volumes").join(format!("{id}.img"))
    }

    /// The file of a snapshot.
    pub fn snapshot_path(&self, id: &str) -> PathBuf {
        self.cfg
            .data_dir
            .join("snapshots")
            .join(format!("{id}.img"))
    }

    /// The folder of an image (its kernel and initrd).
    pub fn image_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join("images").join(id)
    }

    /// The operation lock of an instance.
    pub fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    /// The placement lock (see the field).
    pub fn placement_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.placement.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The monitor of an instance, if one is being watched.
    pub fn vm(&self, id: &str) -> Option<Vm> {
        self.vms_map().get(id).copied()
    }

    /// Starts watching a monitor.
    pub fn set_vm(&self, id: &str, process: Process) {
        self.vms_map().insert(
            id.to_string(),
            Vm {
                process,
                expected_exit: false,
                since: std::time::Instant::now(),
            },
        );
    }

    /// Marks a monitor's coming exit as the daemon's doing.
    pub fn expect_exit(&self, id: &str) {
        if let Some(v) = self.vms_map().get_mut(id) {
            v.expected_exit = true;
        }
    }

    /// Stops watching a monitor.
    pub fn forget_vm(&self, id: &str) -> Option<Vm> {
        self.vms_map().remove(id)
    }

    fn vms_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vm>> {
        self.vms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account an API token names; `AuthFailure` for a token the config does not know.
    pub fn account_for_token(&self, token: &str) -> ApiResult<String> {
        self.cfg
            .tokens
            .get(token)
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::AuthFailure, "The API token is not valid."))
    }

    /// The host's admin account, which callers on the Unix socket speak for.
    pub fn admin_account(&self) -> &str {
        &self.cfg.admin_account
    }

    /// Checks that `account` owns the instance and returns it.
    pub fn owned_instance(
        &self,
        account: &str,
        id: &str,
    ) -> ApiResult<crate::db::instances::Instance> {
        crate::ids::check(crate::ids::Kind::Instance, id)?;
        match self.db.instance(id)? {
            Some(i) if i.owner == account => Ok(i),
            _ => Err(crate::ids::Kind::Instance.not_found(id)),
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A data folder could not be made.
    #[error("cannot create {0}")]
    Dir(String, #[source] std::io::Error),
    /// The database could not be opened.
    #[error("cannot open the state store")]
    Db(#[from] crate::db::DbError),
    /// The CPU template could not be detected.
    #[error("cannot detect the CPU template")]
    Detect(#[source] crate::supervisor::SupervisorError),
    /// Host networking could not be set up.
    #[error("cannot set up host networking: {0}")]
    Net(String),
}

/// Removes a file, treating "already gone" as done.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// An I/O failure of the host, as an API error.
pub fn host_io(what: &str, e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "{what}");
    if e.raw_os_error() == Some(libc::ENOSPC) {
        return ApiError::internal(format!(
            "{what}: the disk of the host's data directory is full ({e})"
        ));
    }
    ApiError::internal(format!("{what}: {e}"))
}

/// A cloud over a fresh data directory, for unit tests (no monitor is ever started).
#[cfg(test)]
pub(crate) fn test_cloud() -> (tempfile::TempDir, Arc<Cloud>) {
    test_cloud_with(|_| {})
}

/// [`test_cloud`] with its configuration changed by `f` first.
#[cfg(test)]
pub(crate) fn test_cloud_with(f: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Arc<Cloud>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = Config::build(
        None,
        Some(dir.path().to_path_buf()),
        &[],
        Some("host".into()),
    )
    .expect("config");
    f(&mut cfg);
    let cloud =
        Cloud::open(cfg, Box::new(crate::cloud::storage::source::NoRegions)).expect("cloud");
    // Unit tests run in the host's namespace: never touch its firewall.
    cloud.firewall.disable();
    (dir, cloud)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_an_internal_error_that_says_so() {
        let e = host_io(
            "cannot write the volume",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(e.code, ErrorCode::InternalError);
        assert!(
            e.message
                .contains("the disk of the host's data directory is full"),
            "{}",
            e.message
        );
        let other = host_io(
            "cannot write the volume",
            std::io::Error::from_raw_os_error(libc::EIO),
        );
        assert_eq!(other.code, ErrorCode::InternalError);
        assert!(!other.message.contains("full"), "{}", other.message);
    }
}
