//! One daemon per data directory, and telling scripts when it is ready.
//!
//! The daemon holds an exclusive `flock` on `<data-dir>/stratod.lock` for as long as it
//! runs; the file holds its PID. A second daemon on the same directory is refused with the
//! first one's PID, before it touches the database, the sockets or any VM. The lock goes
//! with the process however it ends (the kernel drops it), so a crash leaves nothing stale
//! to clean up; the descriptor is close-on-exec, so monitors never inherit it.
//!
//! Readiness: once every listener is bound the daemon prints `stratod: ready (pid N)` on
//! stderr and, under systemd (`NOTIFY_SOCKET`), sends `READY=1`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "stratod.lock";

/// Why the data directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another daemon holds it.
    #[error("{dir} is in use by another stratod{}; stop it first", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held {
        /// The data directory.
        dir: String,
        /// The holder's PID, as it wrote it.
        pid: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock {0}")]
    Io(String, #[source] std::io::Error),
}

/// The held lock; dropping it (or the process ending) releases the directory.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the data directory `dir` (created if missing) for this process.
pub fn lock(dir: &Path) -> Result<DirLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let io = |e| LockError::Io(path.display().to_string(), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    // std opens with O_CLOEXEC: the monitors the daemon spawns do not inherit the lock.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor this function owns; the result is checked.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                dir: dir.display().to_string(),
                pid: text.trim().parse().ok(),
            });
        }
        return Err(io(e));
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(DirLock { _file: file, path })
}

/// Says the daemon is ready: a line on stderr, and `READY=1` to systemd when it started us
/// with `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
pub fn notify_ready() {
    let pid = std::process::id();
    eprintln!("stratod: ready (pid {pid})");
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = sd_notify(&target, &format!("READY=1\nMAINPID={pid}\n")) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

fn sd_notify(target: &std::ffi::OsStr, msg: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let sock = UnixDatagram::unbound()?;
    let bytes = target.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(Path::new(target))?,
    };
    sock.send_to_addr(msg.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_first_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        let text = std::fs::read_to_string(first.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file: a second open in this process conflicts
        // exactly as another process's would.
        let err = lock(dir.path()).unwrap_err();
        assert!(
            matches!(&err, LockError::Held { pid: Some(p), .. } if *p == std::process::id()),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains(&format!("pid {}", std::process::id())));
        drop(first);
        let again = lock(dir.path()).unwrap();
        drop(again);
    }

    #[test]
    fn readiness_reaches_a_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sd_notify(path.as_os_str(), "READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        assert!(sd_notify(dir.path().join("absent").as_os_str(), "READY=1\n").is_err());
    }
}
