//! Everything a VM needs from the host, opened from paths or adopted from inherited
//! descriptors before the jail: once jailed, the monitor can open no path, so this is the
//! whole list of what it will ever touch outside its memory (besides drives hot-attached
//! later, which arrive as descriptors over the control socket).

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use kvm_ioctls::Kvm;
use strato_devices::legacy::ConsoleLog;
use strato_devices::virtio::block::backend::DiskFile;
use strato_devices::virtio::net::tap::Tap;

use crate::config::VmConfig;
use crate::jail::adopt_fd;

/// A resource could not be opened or adopted.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// A file or descriptor could not be used.
    #[error("{what}")]
    Io {
        /// Which resource, e.g. `disk disk0 (descriptor 7)`.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// KVM refused.
    #[error("{what}")]
    Kvm {
        /// What was tried.
        what: String,
        /// Why.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// A descriptor is not what its field says.
    #[error("{what}: {reason}")]
    Wrong {
        /// Which resource.
        what: String,
        /// What it is instead.
        reason: &'static str,
    },
    /// A drive's image.
    #[error("disk {id}")]
    Disk {
        /// Drive ID.
        id: String,
        /// Why.
        #[source]
        source: strato_devices::virtio::block::backend::BackendError,
    },
    /// A tap.
    #[error("net {id}")]
    Tap {
        /// Interface ID.
        id: String,
        /// Why.
        #[source]
        source: strato_devices::virtio::net::tap::TapError,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ResourceError {
    let what = what.into();
    move |source| ResourceError::Io { what, source }
}

/// The control socket: listening, and the path it was bound to if the monitor bound it.
pub struct ApiSocket {
    /// The listener (nonblocking).
    pub listener: UnixListener,
    /// The socket file, removed at exit by an unjailed monitor that created it.
    pub path: Option<PathBuf>,
}

/// What a VM holds open.
pub struct Resources {
    /// `/dev/kvm`.
    pub kvm: Kvm,
    /// The kernel image.
    pub kernel: File,
    /// The initrd.
    pub initrd: Option<File>,
    /// Each configured drive's image, in configuration order (`None`: an empty slot).
    pub disks: Vec<Option<DiskFile>>,
    /// Each configured interface's tap queues (one per queue pair), in configuration order.
    pub taps: Vec<Vec<Tap>>,
    /// The console log.
    pub console: Option<ConsoleLog>,
    /// The control socket.
    pub api: Option<ApiSocket>,
    /// The exit status record.
    pub exit_status: Option<File>,
}

/// The path behind an inherited descriptor, for messages (`descriptor N` if unknown).
fn describe(fd: RawFd) -> PathBuf {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .unwrap_or_else(|_| PathBuf::from(format!("descriptor {fd}")))
}

fn adopt_file(fd: RawFd, what: &str) -> Result<File, ResourceError> {
    adopt_fd(fd)
        .map(File::from)
        .map_err(io_err(format!("{what} (descriptor {fd})")))
}

fn open_path(path: &Path, what: &str, opts: &OpenOptions) -> Result<File, ResourceError> {
    opts.open(path)
        .map_err(io_err(format!("{what} {}", path.display())))
}

fn listener_from_fd(fd: RawFd) -> Result<UnixListener, ResourceError> {
    let what = format!("api_socket_fd (descriptor {fd})");
    let owned = adopt_fd(fd).map_err(io_err(what.clone()))?;
    let int_opt = |opt| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes one int into `v`.
        let r = unsafe {
            libc::getsockopt(
                owned.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    if int_opt(libc::SO_DOMAIN) != Some(libc::AF_UNIX) {
        return Err(ResourceError::Wrong {
            what,
            reason: "not a Unix socket",
        });
    }
    if int_opt(libc::SO_ACCEPTCONN) != Some(1) {
        return Err(ResourceError::Wrong {
            what,
            reason: "not a listening socket",
        });
    }
    Ok(UnixListener::from(owned))
}

impl Resources {
    /// Opens or adopts everything `config` names. Paths are opened with the caller's
    /// rights; descriptors are checked to be open and of the right kind.
    pub fn open(config: &VmConfig) -> Result<Self, ResourceError> {
        let kvm = match config.kvm_fd {
            Some(fd) => {
                let owned = adopt_fd(fd).map_err(io_err(format!("kvm_fd (descriptor {fd})")))?;
                // SAFETY: the descriptor is open and owned by us from here on.
                let kvm = unsafe { <Kvm as std::os::fd::FromRawFd>::from_raw_fd(owned_raw(owned)) };
                if kvm.get_api_version() != 12 {
                    return Err(ResourceError::Wrong {
                        what: format!("kvm_fd (descriptor {fd})"),
                        reason: "not /dev/kvm",
                    });
                }
                kvm
            }
            None => Kvm::new().map_err(|source| ResourceError::Kvm {
                what: "opening /dev/kvm".into(),
                source,
            })?,
        };
        let read = OpenOptions::new().read(true).clone();
        let kernel = open_path(&config.kernel, "kernel", &read)?;
        let initrd = match &config.initrd {
            Some(p) => Some(open_path(p, "initrd", &read)?),
            None => None,
        };
        let mut disks = Vec::with_capacity(config.disks.len());
        for (i, d) in config.disks.iter().enumerate() {
            let id = d.id_or_default(i);
            let disk = match (&d.path, d.fd) {
                (Some(path), _) => Some(DiskFile::open(path, d.readonly)),
                (None, Some(fd)) => {
                    let name = describe(fd);
                    let file = adopt_file(fd, &format!("disk {id}"))?;
                    Some(DiskFile::from_file(file, name, d.readonly))
                }
                (None, None) => None,
            };
            disks.push(
                disk.transpose()
                    .map_err(|source| ResourceError::Disk { id, source })?,
            );
        }
        let mut taps = Vec::with_capacity(config.nets.len());
        for (i, n) in config.nets.iter().enumerate() {
            let id = n.id_or_default(i);
            let queues = match (&n.tap, n.fd) {
                (Some(name), _) if n.queue_pairs() > 1 => {
                    Tap::open_multiqueue(name, n.queue_pairs())
                }
                (Some(name), _) => Tap::open(name).map(|t| vec![t]),
                (None, Some(fd)) => {
                    let mut queues = Vec::with_capacity(1 + n.queue_fds.len());
                    for fd in std::iter::once(fd).chain(n.queue_fds.iter().copied()) {
                        let owned =
                            adopt_fd(fd).map_err(io_err(format!("net {id} (descriptor {fd})")))?;
                        match Tap::from_fd(owned) {
                            Ok(t) => queues.push(t),
                            Err(source) => return Err(ResourceError::Tap { id, source }),
                        }
                    }
                    Ok(queues)
                }
                (None, None) => {
                    return Err(ResourceError::Wrong {
                        what: format!("net {id}"),
                        reason: "no tap given",
                    })
                }
            };
            taps.push(queues.map_err(|source| ResourceError::Tap { id, source })?);
        }
        let console_file = match (&config.console, config.console_fd) {
            (Some(path), _) => Some(open_path(
                path,
                "console file",
                OpenOptions::new().read(true).write(true).create(true),
            )?),
            (None, Some(fd)) => Some(adopt_file(fd, "console_fd")?),
            (None, None) => None,
        };
        let console = match console_file {
            Some(f) => Some(
                ConsoleLog::new(f, config.console_max_bytes)
                    .map_err(io_err("setting up the console file"))?,
            ),
            None => None,
        };
        let api = match (&config.api_socket, config.api_socket_fd) {
            (Some(path), _) => {
                let _ = std::fs::remove_file(path);
                let listener = UnixListener::bind(path)
                    .map_err(io_err(format!("API socket {}", path.display())))?;
                Some(ApiSocket {
                    listener,
                    path: Some(path.clone()),
                })
            }
            (None, Some(fd)) => Some(ApiSocket {
                listener: listener_from_fd(fd)?,
                path: None,
            }),
            (None, None) => None,
        };
        if let Some(a) = &api {
            a.listener
                .set_nonblocking(true)
                .map_err(io_err("making the API socket nonblocking"))?;
        }
        let exit_status = match (&config.exit_status_file, config.exit_status_fd) {
            (Some(path), _) => Some(open_path(
                path,
                "exit status file",
                OpenOptions::new().write(true).create(true).truncate(true),
            )?),
            (None, Some(fd)) => Some(adopt_file(fd, "exit_status_fd")?),
            (None, None) => None,
        };
        Ok(Resources {
            kvm,
            kernel,
            initrd,
            disks,
            taps,
            console,
            api,
            exit_status,
        })
    }

    /// Every descriptor held, for the jail's list of those to keep (the exit status record
    /// is kept apart: the keeper holds it too).
    pub fn raw_fds(&self) -> Vec<RawFd> {
        let mut fds = vec![self.kvm.as_raw_fd(), self.kernel.as_raw_fd()];
        fds.extend(self.initrd.as_ref().map(|f| f.as_raw_fd()));
        fds.extend(self.disks.iter().flatten().map(|d| d.as_raw_fd()));
        fds.extend(self.taps.iter().flatten().map(|t| t.as_raw_fd()));
        fds.extend(self.console.as_ref().map(|c| c.as_raw_fd()));
        fds.extend(self.api.as_ref().map(|a| a.listener.as_raw_fd()));
        fds
    }
}

fn owned_raw(fd: std::os::fd::OwnedFd) -> RawFd {
    std::os::fd::IntoRawFd::into_raw_fd(fd)
}
