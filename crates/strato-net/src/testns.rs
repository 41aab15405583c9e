//! Test support: run a closure in a fresh network namespace.
//!
//! The closure runs on a new thread that calls `unshare(CLONE_NEWNET)`, so every bridge,
//! tap, veth and address a test creates lives in a namespace that disappears when the
//! thread ends, and no test traffic can reach the host's networks.
//!
//! These tests need root, `/dev/net/tun` and (for the firewall) `nft`. Where one is
//! missing they fail and say what is missing, rather than pass without having run:
//! `scripts/test.sh` runs as root and installs nftables; elsewhere skip them by name
//! (`cargo test -p strato-net -- --skip link:: --skip nft:: ...`).

use std::path::Path;
use std::process::Command;
use std::thread;

/// Runs `f` on a thread in a new network namespace. Panics, saying why, where that is
/// impossible: not root, or no `/dev/net/tun`.
pub(crate) fn in_netns<F: FnOnce() + Send + 'static>(f: F) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "network namespace tests need root (uid {euid}); run them as root or skip them by name"
    );
    assert!(
        Path::new("/dev/net/tun").exists(),
        "network namespace tests need /dev/net/tun, which is missing"
    );
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
}

/// Panics unless the `nft` program runs (nftables tests cannot pass without it).
pub(crate) fn require_nft() {
    let ok = Command::new(crate::nft::nft_program())
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "nftables tests need the nft program (Debian: apt-get install nftables)"
    );
}
