//! Test support: run a closure in a fresh network namespace.
//!
//! The closure runs on a new thread that calls `unshare(CLONE_NEWNET)`, so every bridge,
//! tap, veth and address a test creates lives in a namespace that disappears when the
//! thread ends, and no test traffic can reach the host's networks.

use std::path::Path;
use std::thread;

/// Runs `f` on a thread in a new network namespace and returns true; returns false (after
/// printing why) where that is impossible: not root, or no `/dev/net/tun`.
pub(crate) fn in_netns<F: FnOnce() + Send + 'static>(f: F) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: network namespace tests need root");
        return false;
    }
    if !Path::new("/dev/net/tun").exists() {
        eprintln!("skipping: /dev/net/tun is missing");
        return false;
    }
    let handle = thread::spawn(move || {
        // SAFETY: unshare only changes this thread's namespaces; the result is checked.
        let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            ret,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        f();
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
    true
}
