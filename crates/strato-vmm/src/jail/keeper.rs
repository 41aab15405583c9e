//! The keeper: the process that entered the jail stays outside the jail's PID namespace,
//! as the parent of the jailed monitor (PID 1 inside it), so that whoever started the
//! monitor keeps a child to wait for and signal. It holds nothing of the VM's: it drops to
//! the jail's uid, loses every capability, is landlocked and runs under the seccomp filter
//! for "other" threads, which lets it wait for its child, signal only that child and write
//! only the exit record. It forwards SIGTERM, SIGINT and SIGHUP to the monitor, records a
//! death by a signal other than SIGKILL (a seccomp kill shows as SIGSYS) in the exit record
//! as "failed" when the monitor wrote none, and exits with the monitor's status (128 + the
//! signal after a signal).

use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use super::{Identity, KeeperSetup};
use crate::config::JailConfig;
use crate::seccomp::{self, ThreadKind};
use strato_vmm_api::exit::{ExitRecord, ExitStatus};

/// Signals forwarded to the monitor.
const FORWARDED: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Runs the keeper for child `pid` until it ends, then exits the process.
pub fn run(
    pid: libc::pid_t,
    id: Identity,
    config: &JailConfig,
    setup: KeeperSetup,
    sock: OwnedFd,
) -> ! {
    let status = match confine(pid, id, config, &setup, &sock) {
        Ok(()) => wait(pid),
        Err(e) => {
            eprintln!("strato-vmm: jail keeper: {e}");
            super::sys::kill_and_reap(pid);
            std::process::exit(1);
        }
    };
    // The socket stays open until here: the child checks it to learn whether the keeper
    // is still alive.
    drop(sock);
    if libc::WIFEXITED(status) {
        std::process::exit(libc::WEXITSTATUS(status));
    }
    let sig = libc::WTERMSIG(status);
    if let Some(fd) = setup.exit_record {
        record_signal(fd, sig);
    }
    std::process::exit(128 + sig);
}

fn confine(
    pid: libc::pid_t,
    id: Identity,
    config: &JailConfig,
    setup: &KeeperSetup,
    sock: &OwnedFd,
) -> Result<(), super::JailError> {
    use std::os::fd::AsRawFd;
    let mut keep = vec![sock.as_raw_fd()];
    keep.extend(setup.exit_record);
    super::sys::close_all_but(&keep).map_err(super::step("closing the VM's descriptors"))?;
    let limits = JailConfig {
        max_open_files: 16,
        core_dumps: false,
        ..config.clone()
    };
    super::drop_privileges(&limits, id)?;
    // The keeper signals its child, which is in another Landlock domain: no signal scope.
    super::landlock::restrict_all(false).map_err(super::step("applying landlock"))?;
    block_signals().map_err(super::step("blocking signals"))?;
    let filter = seccomp::keeper_filter(pid, setup.exit_record)
        .map_err(|e| super::step("building the keeper's seccomp filter")(e.into()))?;
    seccomp::apply(&filter).map_err(|e| super::step("installing seccomp")(e.into()))?;
    seccomp::test_hook(ThreadKind::Other);
    Ok(())
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn block_signals() -> std::io::Result<()> {
    let set = signal_set();
    // SAFETY: blocks the signals in `set` for this (only) thread.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(std::io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Waits for the child, forwarding signals; returns its wait status.
fn wait(pid: libc::pid_t) -> libc::c_int {
    let set = signal_set();
    loop {
        let mut status = 0;
        // SAFETY: waits without blocking for our own child. It may have ended before
        // SIGCHLD was blocked, so look before waiting for a signal.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid
            || (r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
        {
            return status;
        }
        // SAFETY: waits for one of the blocked signals in `set`.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if FORWARDED.contains(&sig) {
            // SAFETY: signals our own child.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// Writes a "failed" record naming the signal, unless the monitor wrote a record itself or
/// the signal was SIGKILL (sent from outside, by the supervisor or the OOM killer, which
/// know why).
fn record_signal(fd: RawFd, sig: libc::c_int) {
    if sig == libc::SIGKILL {
        return;
    }
    // SAFETY: lseek only moves the offset of a descriptor we hold.
    let len = unsafe { libc::lseek(fd, 0, libc::SEEK_END) };
    if len != 0 {
        return;
    }
    let what = match sig {
        libc::SIGSYS => " (SIGSYS: a system call outside its seccomp allow-list)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGBUS => " (SIGBUS)",
        _ => "",
    };
    let record = ExitRecord::new(
        ExitStatus::Failed,
        format!("the monitor was killed by signal {sig}{what}"),
    );
    let Ok(body) = serde_json::to_vec(&record) else {
        return;
    };
    // SAFETY: the descriptor stays open for the life of the process; ManuallyDrop keeps
    // this File from closing it.
    let file = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
    });
    let _ = file.write_all_at(&body, 0);
}
