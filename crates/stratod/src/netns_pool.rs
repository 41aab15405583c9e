//! Fresh network namespaces made ahead for jailed monitors.
//!
//! Creating a network namespace is the costliest part of a jail's start (about half a
//! millisecond here, while the user, mount, IPC and UTS namespaces together take less): the
//! kernel runs every registered per-namespace initialiser (loopback, sysctls, netfilter). A
//! thread of the daemon makes a few ahead, so that a launch passes one to its monitor
//! (`--jail` `net_ns_fd`) and the jail joins it instead of making one, as Firecracker's jailer
//! joins the namespace its orchestrator made. Each namespace goes to one monitor only and
//! holds nothing but a loopback that is down, so it is as much the VM's own as one the jail
//! makes; it is owned by the host's user namespace, so the jailed monitor has no rights in it
//! at all. When the pool is empty (a burst of launches) a launch gets none and its jail makes
//! its own: slower, not weaker.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Mutex;

/// How many namespaces wait ready: a launch burst beyond this falls back to the jail's own.
pub const READY: usize = 8;

/// A source of fresh network namespaces.
#[derive(Debug)]
pub struct NetNsPool {
    ready: Mutex<Receiver<OwnedFd>>,
}

impl NetNsPool {
    /// Starts the thread that keeps [`READY`] namespaces made. `None` when the thread
    /// cannot start.
    pub fn start() -> Option<NetNsPool> {
        Self::with_maker(READY, make)
    }

    /// A pool of `depth` namespaces from `maker`, which runs on a thread of its own (a
    /// network namespace is a per-thread attribute: the maker's thread alone moves).
    fn with_maker<F>(depth: usize, maker: F) -> Option<NetNsPool>
    where
        F: FnMut() -> std::io::Result<OwnedFd> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(depth);
        std::thread::Builder::new()
            .name("netns-pool".into())
            .spawn(move || fill(tx, maker))
            .map_err(|e| tracing::warn!(error = %e, "no thread to make network namespaces ahead"))
            .ok()?;
        Some(NetNsPool {
            ready: Mutex::new(rx),
        })
    }

    /// A fresh namespace if one is ready (never blocks).
    pub fn take(&self) -> Option<OwnedFd> {
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_recv()
            .ok()
    }
}

/// The maker's loop: one namespace at a time, blocking while the pool is full; it stops for
/// good at the first failure (logged once) or when the pool is dropped.
fn fill<F>(tx: SyncSender<OwnedFd>, mut maker: F)
where
    F: FnMut() -> std::io::Result<OwnedFd>,
{
    loop {
        match maker() {
            Ok(fd) => {
                if tx.send(fd).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot make network namespaces ahead: each jail makes its own");
                return;
            }
        }
    }
}

/// Moves this thread into a new network namespace and returns a descriptor of it. The thread
/// never uses the network, so it can stay in the last one it made.
fn make() -> std::io::Result<OwnedFd> {
    // SAFETY: unshare takes a flag set; CLONE_NEWNET moves only the calling thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a NUL-terminated path and flags; the result is checked before use.
    let fd = unsafe {
        libc::open(
            c"/proc/thread-self/ns/net".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    use super::*;

    fn inode(fd: &OwnedFd) -> String {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn take_within(pool: &NetNsPool, d: Duration) -> Option<OwnedFd> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(fd) = pool.take() {
                return Some(fd);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn each_namespace_is_fresh_and_not_this_threads() {
        // SAFETY: geteuid only reads the caller's credentials.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: making network namespaces needs root");
            return;
        }
        let pool = NetNsPool::start().unwrap();
        let mine = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let a = take_within(&pool, Duration::from_secs(5)).unwrap();
        let b = take_within(&pool, Duration::from_secs(5)).unwrap();
        assert!(inode(&a).starts_with("net:["), "{}", inode(&a));
        assert_ne!(inode(&a), inode(&b));
        assert_ne!(inode(&a), mine.to_string_lossy());
        // The namespaces were made on the pool's thread: this thread did not move.
        assert_eq!(
            std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
            mine
        );
    }

    #[test]
    fn the_pool_holds_at_most_its_depth_and_refills() {
        let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = made.clone();
        let pool = NetNsPool::with_maker(2, move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::fs::File::open("/dev/null").map(OwnedFd::from)
        })
        .unwrap();
        let settled = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while made.load(std::sync::atomic::Ordering::SeqCst) < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(50));
            made.load(std::sync::atomic::Ordering::SeqCst)
        };
        // Two wait in the channel and the maker blocks holding a third.
        assert_eq!(settled(3), 3);
        assert!(pool.take().is_some());
        assert_eq!(settled(4), 4);
    }

    #[test]
    fn a_failing_maker_leaves_launches_to_make_their_own() {
        let pool = NetNsPool::with_maker(2, || Err(std::io::Error::from_raw_os_error(libc::EPERM)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(pool.take().is_none());
    }
}
