//! What a monitor gets as descriptors instead of paths: the daemon opens `/dev/kvm`, each
//! tap, each volume file (read-only ones read-only), the console file, the listening control
//! socket and the exit record, and the configuration names the descriptors. A jailed
//! monitor opens no path once it is jailed; the kernel and initrd it reads by path before,
//! as the daemon's own files.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use strato_vmm_api::config::{JailConfig, VmConfig};

use crate::supervisor::{open_drive, Handoff};

/// A file or device could not be opened for a monitor.
#[derive(Debug, thiserror::Error)]
#[error("cannot open {what} for the monitor")]
pub struct HandoffError {
    /// What, e.g. `volume /var/lib/strato/volumes/vol-….img`.
    pub what: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

fn err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HandoffError {
    let what = what.into();
    move |source| HandoffError { what, source }
}

fn path_of(what: &str, p: &Path) -> String {
    format!("{what} {}", p.display())
}

/// Turns every path of `config` a monitor would open (but the kernel's and initrd's) into a
/// descriptor, and sets its jail. Returns the configuration to write and the descriptors to
/// hand over with it.
pub fn hand_over(
    mut config: VmConfig,
    jail: Option<JailConfig>,
) -> Result<(VmConfig, Handoff), HandoffError> {
    let mut fds = Handoff::default();
    let kvm = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/kvm")
        .map_err(err("/dev/kvm"))?;
    config.kvm_fd = Some(fds.pass(kvm));
    for d in &mut config.disks {
        if let Some(p) = d.path.take() {
            let f = open_drive(&p, d.readonly).map_err(err(path_of("drive", &p)))?;
            d.fd = Some(fds.pass(f));
        }
    }
    for n in &mut config.nets {
        if let Some(name) = n.tap.take() {
            // One descriptor per queue pair; an older single-queue tap gives one, and the
            // device then has one queue pair (still with the enhanced features).
            let queues =
                strato_net::link::open_tap_queues(&name, n.queue_pairs()).map_err(|e| {
                    HandoffError {
                        what: format!("tap {name}"),
                        source: std::io::Error::other(e.to_string()),
                    }
                })?;
            let mut queue_fds: Vec<i32> = queues.into_iter().map(|f| fds.pass(f)).collect();
            n.fd = Some(queue_fds.remove(0));
            n.queue_pairs = Some((1 + queue_fds.len()) as u16);
            n.queue_fds = queue_fds;
        }
    }
    if let Some(p) = config.console.take() {
        // Readable too: the monitor keeps the newest output when it reaches the cap.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&p)
            .map_err(err(path_of("console file", &p)))?;
        config.console_fd = Some(fds.pass(f));
    }
    if let Some(p) = config.api_socket.take() {
        let _ = std::fs::remove_file(&p);
        let l = UnixListener::bind(&p).map_err(err(path_of("control socket", &p)))?;
        config.api_socket_fd = Some(fds.pass(l));
    }
    if let Some(p) = config.exit_status_file.take() {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .map_err(err(path_of("exit record", &p)))?;
        config.exit_status_fd = Some(fds.pass(f));
    }
    config.jail = jail;
    Ok((config, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_vmm_api::config::DiskConfig;

    #[test]
    fn every_path_but_the_kernel_becomes_a_descriptor() {
        if !Path::new("/dev/kvm").exists() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("strato-handoff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ro = dir.join("ro.img");
        let rw = dir.join("rw.img");
        std::fs::write(&ro, [0u8; 512]).unwrap();
        std::fs::write(&rw, [0u8; 512]).unwrap();
        let mut config = VmConfig::new("/boot/vmlinux");
        config.disks = vec![
            DiskConfig {
                id: Some("a".into()),
                path: Some(ro.clone()),
                fd: None,
                readonly: true,
            },
            DiskConfig {
                id: Some("b".into()),
                path: Some(rw.clone()),
                fd: None,
                readonly: false,
            },
            DiskConfig {
                id: Some("slot".into()),
                path: None,
                fd: None,
                readonly: false,
            },
        ];
        config.console = Some(dir.join("console.log"));
        config.api_socket = Some(dir.join("api.sock"));
        config.exit_status_file = Some(dir.join("exit.json"));
        let jail = JailConfig {
            uid: Some(200_001),
            gid: Some(200_001),
            ..JailConfig::default()
        };
        let (c, fds) = hand_over(config, Some(jail.clone())).unwrap();
        assert_eq!(c.kernel, Path::new("/boot/vmlinux"));
        assert!(c.console.is_none() && c.api_socket.is_none() && c.exit_status_file.is_none());
        assert!(c.disks.iter().all(|d| d.path.is_none()));
        assert_eq!(c.disks[2].fd, None);
        assert_eq!(c.jail, Some(jail));
        assert_eq!(c.named_fds().len(), 6);
        c.validate().unwrap();
        let mode = |fd: i32| {
            // SAFETY: F_GETFL only reads the flags of a descriptor `fds` holds open.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            flags & libc::O_ACCMODE
        };
        assert_eq!(mode(c.disks[0].fd.unwrap()), libc::O_RDONLY);
        assert_eq!(mode(c.disks[1].fd.unwrap()), libc::O_RDWR);
        drop(fds);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
