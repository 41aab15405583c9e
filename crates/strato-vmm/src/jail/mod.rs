//! The jail: what a monitor does to itself once it holds every descriptor the VM needs and
//! before the guest runs, so that a guest that escapes device emulation finds nothing to
//! use. The threat model and how an operator checks a running VM are in docs/security.md.
//!
//! [`enter`] takes these steps, in this order (each one needs the rights the later ones
//! take away):
//!
//! 1. **Descriptors and environment.** Standard input becomes `/dev/null`; every inherited
//!    descriptor is closed except standard output and error and those the VM uses (the
//!    configuration names them, or the monitor opened them from paths just before); the
//!    environment is cleared. Root also drops its supplementary groups.
//! 2. **Namespaces.** The process unshares a PID namespace and forks: the child is PID 1 of
//!    it and runs the VM; the parent stays behind as the [keeper]. The child unshares a user,
//!    mount, IPC, UTS and network namespace; the keeper, still in the parent user namespace,
//!    maps only the jail's uid and gid into it. The VM needs no network of its own: its taps
//!    arrive as descriptors. Given a fresh network namespace made ahead for this VM
//!    ([`JailConfig::net_ns_fd`]; the daemon keeps a few ready), the keeper joins it before
//!    the fork and the child makes none: creating one is the costliest of the namespaces
//!    (about half a millisecond), and this takes it off the start. Mounts copied into a less privileged user namespace are slaves
//!    of the host's and locked to each other, so nothing done in the jail propagates back.
//! 3. **An empty root.** A fresh tmpfs (`fsopen`/`fsmount`: read-only, nosuid, nodev,
//!    noexec), attached over `/`, becomes the root through `pivot_root(".", ".")`, and the
//!    old root with every mount under it is detached. The new mount namespace is a copy of
//!    the keeper's: given an empty mount namespace ([`JailConfig::mount_ns_fd`], which
//!    [`serve_empty_mount_ns`] makes and the daemon keeps for all its VMs), the keeper
//!    enters it first, so that neither the copy nor the detach touches the host's mount
//!    table and the jail's cost does not grow with the host's mounts.
//! 4. **Limits and identity.** RLIMIT_NOFILE, RLIMIT_CORE 0 unless core dumps are asked for;
//!    the capability bounding and ambient sets are emptied; the jail's gid and uid are set;
//!    every capability is dropped; the process is not dumpable (unless core dumps are asked
//!    for); no_new_privs. The child then asks to be killed if the keeper dies.
//! 5. **Landlock.** A ruleset that handles every filesystem right the kernel's Landlock ABI
//!    knows (and TCP bind/connect, abstract Unix sockets and signals where the ABI scopes
//!    them) with no rule allowing anything. Descriptors opened before keep their rights.
//!
//! seccomp is the last layer and not part of this module: each thread installs its own
//! filter right before its real work (see [`crate::seccomp`]), the vCPUs' before the guest's
//! first instruction.

pub mod check;
mod keeper;
mod landlock;
mod sys;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::config::JailConfig;

pub use landlock::abi as landlock_abi;

/// `strato-vmm --serve-empty-mount-ns`: makes a mount namespace (in a user namespace of its
/// own) holding only an empty, read-only tmpfs root, prints `ready` on standard output, and
/// keeps it alive until standard input closes. Whoever started it opens
/// `/proc/PID/ns/mnt` meanwhile and passes that descriptor as [`JailConfig::mount_ns_fd`];
/// the namespace lives on as long as a descriptor of it is open.
pub fn serve_empty_mount_ns() -> Result<(), JailError> {
    sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)
        .map_err(step("creating the user and mount namespaces"))?;
    sys::pivot_to_empty_root().map_err(step("pivoting into an empty root"))?;
    println!("ready");
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest)
        .map_err(step("waiting for standard input to close"))?;
    Ok(())
}

/// The uid and gid root's jails use when the configuration names none (`nobody`).
pub const DEFAULT_ID: u32 = 65534;

/// Why the jail could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// A step failed.
    #[error("{step}")]
    Step {
        /// The step.
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An unprivileged caller asked for another user.
    #[error("an unprivileged caller (uid {own_uid}, gid {own_gid}) can only jail as itself")]
    NotPrivileged {
        /// The caller's uid.
        own_uid: u32,
        /// The caller's gid.
        own_gid: u32,
    },
    /// The jailed child ended before it was ready.
    #[error("the jailed monitor ended while it was being set up")]
    ChildGone,
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> JailError {
    move |source| JailError::Step { step, source }
}

/// The user and group a jail runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// uid, the same inside the jail's user namespace and on the host.
    pub uid: u32,
    /// gid, likewise.
    pub gid: u32,
}

impl Identity {
    /// The identity `config` asks for, given who is calling: root may name any (default
    /// [`DEFAULT_ID`]), anyone else only themselves.
    pub fn resolve(config: &JailConfig) -> Result<Self, JailError> {
        // SAFETY: these calls only read the caller's credentials.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if euid == 0 {
            return Ok(Identity {
                uid: config.uid.unwrap_or(DEFAULT_ID),
                gid: config.gid.unwrap_or(DEFAULT_ID),
            });
        }
        let me = Identity {
            uid: euid,
            gid: egid,
        };
        if config.uid.is_some_and(|u| u != euid) || config.gid.is_some_and(|g| g != egid) {
            return Err(JailError::NotPrivileged {
                own_uid: euid,
                own_gid: egid,
            });
        }
        Ok(me)
    }
}

/// What the keeper needs to know about the VM's end.
#[derive(Debug, Clone, Copy)]
pub struct KeeperSetup {
    /// The exit status record, written by the keeper when the VM died of a signal and so
    /// wrote none itself.
    pub exit_record: Option<RawFd>,
}

/// Enters the jail described by `config`, keeping the descriptors in `keep` (and standard
/// output and error) open. Returns in the jailed child, PID 1 of its PID namespace, which
/// goes on to build and run the VM. The calling process becomes the keeper: it never
/// returns from here, and exits with the VM's exit status.
///
/// Must be called while the process has one thread: it forks.
pub fn enter(config: &JailConfig, keep: &[RawFd], keeper: KeeperSetup) -> Result<(), JailError> {
    let started = std::time::Instant::now();
    let id = Identity::resolve(config)?;
    // SAFETY: geteuid only reads the caller's credentials.
    let root = unsafe { libc::geteuid() } == 0;

    // 1. Descriptors and environment.
    sys::stdin_to_dev_null().map_err(step("replacing standard input with /dev/null"))?;
    let mut kept: Vec<RawFd> = keep.to_vec();
    kept.extend(keeper.exit_record);
    kept.extend(config.mount_ns_fd);
    kept.extend(config.net_ns_fd);
    sys::close_all_but(&kept).map_err(step("closing inherited descriptors"))?;
    let proc = sys::open_proc().map_err(step("opening /proc"))?;
    let vars: Vec<_> = std::env::vars_os().map(|(k, _)| k).collect();
    for k in vars {
        std::env::remove_var(k);
    }
    if root {
        sys::drop_supplementary_groups().map_err(step("dropping supplementary groups"))?;
    }

    // 2. Namespaces. An unprivileged caller needs a user namespace of its own to make a
    // PID namespace; root makes the PID namespace directly and keeps the keeper on the host.
    if root {
        // The child's mount namespace is copied from this process's: from the empty one
        // given, rather than from the host's whole mount table, when there is one.
        if let Some(fd) = config.mount_ns_fd {
            sys::set_mount_ns(fd).map_err(step("entering the empty mount namespace"))?;
            // SAFETY: the descriptor was inherited for this alone and is not used again.
            unsafe { libc::close(fd) };
        }
        // A network namespace made ahead is joined here, while the process may still:
        // the child's own user namespace will have no rights over it.
        if let Some(fd) = config.net_ns_fd {
            sys::set_net_ns(fd).map_err(step("joining the network namespace made for it"))?;
            // SAFETY: the descriptor was inherited for this alone and is not used again.
            unsafe { libc::close(fd) };
        }
        sys::unshare(libc::CLONE_NEWPID).map_err(step("creating the PID namespace"))?;
    } else {
        if config.mount_ns_fd.is_some() {
            return Err(step("entering the empty mount namespace")(
                io::Error::from_raw_os_error(libc::EPERM),
            ));
        }
        if config.net_ns_fd.is_some() {
            return Err(step("joining the network namespace made for it")(
                io::Error::from_raw_os_error(libc::EPERM),
            ));
        }
        sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID)
            .map_err(step("creating the user and PID namespaces"))?;
        sys::map_ids(&proc, "self", id).map_err(step("mapping the caller's uid and gid"))?;
    }
    let (keeper_end, child_end) = sys::socket_pair().map_err(step("creating a socket pair"))?;
    // SAFETY: the process has one thread (see the function's contract), so the child
    // starts in a consistent state; it only makes system calls before returning.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(step("forking the jailed monitor")(
            io::Error::last_os_error(),
        ));
    }
    if pid > 0 {
        drop(child_end);
        if let Err(e) = map_child(&proc, pid, id, &keeper_end) {
            sys::kill_and_reap(pid);
            return Err(e);
        }
        drop(proc);
        keeper::run(pid, id, config, keeper, keeper_end);
    }
    drop(keeper_end);
    drop(proc);
    let forked = started.elapsed();
    let r = enter_child(config, id, child_end, started);
    tracing::debug!(
        forked_us = forked.as_micros() as u64,
        total_us = started.elapsed().as_micros() as u64,
        "jail entered"
    );
    r
}

/// The keeper's half of the handshake: waits for the child's new user namespace, writes its
/// uid and gid maps, and tells it to go on.
fn map_child(
    proc: &OwnedFd,
    pid: libc::pid_t,
    id: Identity,
    sock: &OwnedFd,
) -> Result<(), JailError> {
    if sys::recv_byte(sock).map_err(step("waiting for the jailed monitor"))? != Some(b'u') {
        return Err(JailError::ChildGone);
    }
    sys::map_ids(proc, &pid.to_string(), id).map_err(step("mapping the jail's uid and gid"))?;
    sys::send_byte(sock, b'm').map_err(step("waking the jailed monitor"))
}

fn enter_child(
    config: &JailConfig,
    id: Identity,
    sock: OwnedFd,
    started: std::time::Instant,
) -> Result<(), JailError> {
    let us = || started.elapsed().as_micros() as u64;
    // The network namespace was joined before the fork when one was made ahead.
    let net = if config.net_ns_fd.is_some() {
        0
    } else {
        libc::CLONE_NEWNET
    };
    sys::unshare(
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | net,
    )
    .map_err(step(
        "creating the user, mount, IPC, UTS and network namespaces",
    ))?;
    sys::send_byte(&sock, b'u').map_err(step("signalling the keeper"))?;
    if sys::recv_byte(&sock).map_err(step("waiting for the uid and gid maps"))? != Some(b'm') {
        return Err(JailError::ChildGone);
    }
    sys::set_hostname("strato-vm").map_err(step("setting the jail's host name"))?;

    tracing::debug!(at_us = us(), "ids mapped");
    // 3. An empty root.
    sys::pivot_to_empty_root().map_err(step("pivoting into an empty root"))?;
    tracing::debug!(at_us = us(), "root pivoted");

    // 4. Limits and identity.
    drop_privileges(config, id)?;
    // SAFETY: PR_SET_PDEATHSIG takes a signal number. It is set after the uid change,
    // which would clear it.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } < 0 {
        return Err(step("asking to die with the keeper")(
            io::Error::last_os_error(),
        ));
    }
    // The keeper may have died before the request above: its end of the socket is then
    // closed.
    if sys::peer_closed(&sock).map_err(step("checking on the keeper"))? {
        return Err(JailError::ChildGone);
    }
    drop(sock);

    // 5. Landlock (best effort: a kernel without it still gets every other layer).
    match landlock::restrict_all(true) {
        Ok(Some(abi)) => tracing::debug!(abi, "landlock applied"),
        Ok(None) => tracing::warn!("landlock is not available on this kernel: jail without it"),
        Err(e) => return Err(step("applying landlock")(e)),
    }
    Ok(())
}

/// Step 4 for either process of the jail: limits, groups, user, capabilities, dumpable,
/// no_new_privs.
fn drop_privileges(config: &JailConfig, id: Identity) -> Result<(), JailError> {
    sys::set_rlimit(libc::RLIMIT_NOFILE, config.max_open_files)
        .map_err(step("limiting open files"))?;
    if !config.core_dumps {
        sys::set_rlimit(libc::RLIMIT_CORE, 0).map_err(step("turning core dumps off"))?;
    }
    sys::drop_bounding_set().map_err(step("emptying the capability bounding set"))?;
    sys::set_ids(id).map_err(step("changing to the jail's uid and gid"))?;
    sys::drop_capabilities().map_err(step("dropping capabilities"))?;
    // SAFETY: PR_SET_DUMPABLE takes an integer flag. A uid change already made the process
    // non-dumpable; a core dump needs it dumpable again.
    if config.core_dumps && unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) } < 0 {
        return Err(step("allowing core dumps")(io::Error::last_os_error()));
    }
    sys::no_new_privs().map_err(step("setting no_new_privs"))
}

/// Takes ownership of an inherited descriptor the configuration names, after checking that
/// it is open; it is made close-on-exec.
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFD sets the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open, and the configuration (checked to name each
    // descriptor once) hands it to the monitor alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The raw number of anything holding a descriptor, for [`enter`]'s keep list.
pub fn raw(fd: &impl AsRawFd) -> RawFd {
    fd.as_raw_fd()
}
