//! `strato-vmm --check-jail`: which of the jail's layers this host supports, each tried for
//! real in a throw-away child process, and then the whole jail as a VM would enter it.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::landlock;
use crate::config::JailConfig;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Short name, e.g. `landlock`.
    pub name: &'static str,
    /// Whether the host supports it.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// Whether a jail needs it (Landlock is applied when present, and missing it only
    /// weakens the jail).
    pub required: bool,
}

/// Runs `f` in a forked child and returns what it reported: `Ok(detail)` or `Err(why)`.
/// `f` gets the descriptor its report goes to. Only for a process with one thread.
fn in_child(f: impl FnOnce(RawFd) -> Result<String, String>) -> Result<String, String> {
    let mut fds = [0; 2];
    // SAFETY: pipe fills in two descriptors, owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors are new and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the caller has one thread, so the child starts consistent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(r);
        let (code, text) = match f(w.as_raw_fd()) {
            Ok(t) => (0, t),
            Err(t) => (1, t),
        };
        let mut w = std::fs::File::from(w);
        let _ = w.write_all(text.as_bytes());
        // SAFETY: ends the child without running the parent's exit handlers twice.
        unsafe { libc::_exit(code) };
    }
    drop(w);
    let mut text = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut text);
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(text)
    } else if text.is_empty() {
        Err(format!("the test process ended with status {status:#x}"))
    } else {
        Err(text)
    }
}

fn unshare(flags: libc::c_int) -> Result<(), String> {
    super::sys::unshare(flags).map_err(|e| e.to_string())
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Tries every layer; the last line is the whole jail.
pub fn check() -> Vec<Layer> {
    let mut out = Vec::new();
    let mut push = |name, required, r: Result<String, String>| {
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        out.push(Layer {
            name,
            ok,
            detail,
            required,
        });
    };
    let userns = in_child(|_| unshare(libc::CLONE_NEWUSER).map(|_| String::new())).map(|_| {
        format!(
            "max {} per user; unprivileged creation: {}",
            read_trim("/proc/sys/user/max_user_namespaces"),
            match read_trim("/proc/sys/kernel/unprivileged_userns_clone").as_str() {
                "0" => "disabled",
                _ => "allowed",
            }
        )
    });
    push("user-namespaces", true, userns);
    let ns = in_child(|_| {
        unshare(libc::CLONE_NEWUSER)?;
        unshare(
            libc::CLONE_NEWNS
                | libc::CLONE_NEWPID
                | libc::CLONE_NEWIPC
                | libc::CLONE_NEWUTS
                | libc::CLONE_NEWNET,
        )?;
        Ok("mount, PID, IPC, UTS, network".into())
    });
    push("namespaces", true, ns);
    let root = in_child(|_| {
        unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)?;
        super::sys::pivot_to_empty_root().map_err(|e| e.to_string())?;
        Ok("fresh tmpfs, pivot_root, old root detached".into())
    });
    push("empty-root", true, root);
    push(
        "landlock",
        false,
        match landlock::abi() {
            Some(abi) => Ok(format!("ABI {abi}")),
            None => Err("not available (the jail is applied without it)".into()),
        },
    );
    let seccomp = in_child(|_| {
        let f = crate::seccomp::vcpu_filter().map_err(|e| e.to_string())?;
        crate::seccomp::apply(&f).map_err(|e| e.to_string())?;
        Ok("filter mode, kill-process".into())
    });
    push("seccomp", true, seccomp);
    let jail = in_child(|report| {
        let config = JailConfig::default();
        let id = super::Identity::resolve(&config).map_err(|e| e.to_string())?;
        // Returns in the jailed child; the keeper exits with the child's status.
        super::enter(&config, &[report], super::KeeperSetup { exit_record: None })
            .map_err(|e| crate::error_chain(&e))?;
        let f = crate::seccomp::event_loop_filter().map_err(|e| e.to_string())?;
        crate::seccomp::apply(&f).map_err(|e| e.to_string())?;
        Ok(format!(
            "a test jail was entered as uid {} gid {}, seccomp on",
            id.uid, id.gid
        ))
    });
    push("jail", true, jail);
    out
}

/// Prints the report; the exit status is 0 when every required layer works.
pub fn report() -> i32 {
    let layers = check();
    for l in &layers {
        println!(
            "{:16} {:4} {}",
            l.name,
            if l.ok { "yes" } else { "no" },
            l.detail.lines().next().unwrap_or("")
        );
    }
    if layers.iter().all(|l| l.ok || !l.required) {
        0
    } else {
        1
    }
}
