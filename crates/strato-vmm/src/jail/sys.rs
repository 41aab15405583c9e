//! The system calls behind the jail's steps, each wrapped to return `io::Result`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::Identity;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_long(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Points standard input at `/dev/null`: a terminal left there would let a jailed monitor
/// type into the caller's shell (TIOCSTI) if seccomp ever let the ioctl through.
pub fn stdin_to_dev_null() -> io::Result<()> {
    // SAFETY: open takes a NUL-terminated path; the result is checked.
    let fd = cvt(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: dup2 onto descriptor 0, then close the temporary one, which we own.
    let r = unsafe { libc::dup2(fd, 0) };
    // SAFETY: as above.
    unsafe { libc::close(fd) };
    cvt(r).map(drop)
}

/// Closes every descriptor from 3 up except those in `keep`.
pub fn close_all_but(keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .filter(|&fd| fd > 2)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for fd in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if fd > first {
            let last = if fd == u32::MAX { u32::MAX } else { fd - 1 };
            // SAFETY: close_range takes a range of descriptor numbers and flags; the ones
            // in the range are owned by nothing the monitor still uses.
            cvt_long(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) })?;
        }
        first = fd.saturating_add(1);
    }
    Ok(())
}

/// Drops every supplementary group (root only).
pub fn drop_supplementary_groups() -> io::Result<()> {
    // SAFETY: an empty list with a null pointer is allowed.
    cvt(unsafe { libc::setgroups(0, std::ptr::null()) }).map(drop)
}

/// `unshare(flags)`.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes flags only.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// `/proc`, opened before the process may leave the host's mount namespace (see
/// [`set_mount_ns`]), so that the keeper can still write its child's uid and gid maps.
pub fn open_proc() -> io::Result<OwnedFd> {
    // SAFETY: open takes a NUL-terminated path; the result is checked and owned below.
    let fd = cvt(unsafe {
        libc::open(
            c"/proc".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a new descriptor, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn write_proc(proc: &OwnedFd, pid: &str, file: &str, text: &str) -> io::Result<()> {
    let what = |e: io::Error| io::Error::new(e.kind(), format!("/proc/{pid}/{file}: {e}"));
    let rel =
        std::ffi::CString::new(format!("{pid}/{file}")).map_err(|e| what(io::Error::other(e)))?;
    // SAFETY: openat resolves a NUL-terminated relative path under a directory we hold.
    let fd = unsafe {
        libc::openat(
            proc.as_raw_fd(),
            rel.as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    };
    let fd = cvt(fd).map_err(what)?;
    // SAFETY: a new descriptor, owned from here on.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    std::io::Write::write_all(&mut &file, text.as_bytes()).map_err(what)
}

/// Maps `id` to itself in the user namespace of process `pid` (or `self`); supplementary
/// groups cannot be changed in it afterwards.
pub fn map_ids(proc: &OwnedFd, pid: &str, id: Identity) -> io::Result<()> {
    write_proc(proc, pid, "setgroups", "deny")?;
    write_proc(proc, pid, "gid_map", &format!("{0} {0} 1\n", id.gid))?;
    write_proc(proc, pid, "uid_map", &format!("{0} {0} 1\n", id.uid))
}

/// Moves into the mount namespace `fd` refers to (root and working directory become its
/// root).
pub fn set_mount_ns(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns takes a descriptor and a namespace type.
    cvt(unsafe { libc::setns(fd, libc::CLONE_NEWNS) }).map(drop)
}

/// Moves into the network namespace `fd` refers to.
pub fn set_net_ns(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns takes a descriptor and a namespace type.
    cvt(unsafe { libc::setns(fd, libc::CLONE_NEWNET) }).map(drop)
}

/// A connected pair of sequenced-packet sockets: the keeper's end and the child's.
pub fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills in two descriptors, which the OwnedFds below then own.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: both were just created and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one byte.
pub fn send_byte(sock: &OwnedFd, b: u8) -> io::Result<()> {
    // SAFETY: sends one byte from a local.
    cvt_long(unsafe { libc::send(sock.as_raw_fd(), (&b as *const u8).cast(), 1, 0) } as _).map(drop)
}

/// Receives one byte; `None` when the peer closed its end.
pub fn recv_byte(sock: &OwnedFd) -> io::Result<Option<u8>> {
    let mut b = 0u8;
    loop {
        // SAFETY: receives at most one byte into a local.
        let n = unsafe { libc::recv(sock.as_raw_fd(), (&mut b as *mut u8).cast(), 1, 0) };
        match n {
            1 => return Ok(Some(b)),
            0 => return Ok(None),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Whether the peer has closed its end (without waiting).
pub fn peer_closed(sock: &OwnedFd) -> io::Result<bool> {
    let mut b = 0u8;
    // SAFETY: receives at most one byte into a local, without blocking.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            (&mut b as *mut u8).cast(),
            1,
            libc::MSG_DONTWAIT,
        )
    };
    if n == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        _ if n > 0 => Ok(false),
        io::ErrorKind::WouldBlock => Ok(false),
        _ => Err(e),
    }
}

/// Kills and reaps a child.
pub fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: `pid` is our own child; kill and waitpid take integers.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// Sets the UTS namespace's host name, so that the host's does not show through `uname`.
pub fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

// The new mount API (Linux 5.2); libc has the system call numbers but not every constant.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
const MOUNT_ATTR_NOEXEC: libc::c_uint = 0x8;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn fs_set(fs: &OwnedFd, key: &CStr, value: &CStr) -> io::Result<()> {
    // SAFETY: fsconfig reads two NUL-terminated strings on a context descriptor we own.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// Makes a fresh, empty, read-only tmpfs the root: it is attached over `/`, the process
/// moves into it, `pivot_root(".", ".")` stacks the old root on it, and the old root is
/// detached with every mount below it.
pub fn pivot_to_empty_root() -> io::Result<()> {
    // SAFETY: fsopen takes a NUL-terminated file system name and flags.
    let fs =
        cvt_long(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fsopen returned a new descriptor, owned from here on.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    fs_set(&fs, c"mode", c"0555")?;
    fs_set(&fs, c"size", c"4k")?;
    fs_set(&fs, c"nr_inodes", c"16")?;
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    // SAFETY: fsmount takes a context descriptor and flags.
    let mnt = cvt_long(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs)
    })?;
    // SAFETY: fsmount returned a new descriptor, owned from here on.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as RawFd) };
    // SAFETY: move_mount attaches the detached mount `mnt` over "/"; the strings are
    // NUL-terminated.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c"/".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    // SAFETY: fchdir to the root of the mount we hold.
    cvt(unsafe { libc::fchdir(mnt.as_raw_fd()) })?;
    // SAFETY: pivot_root takes two NUL-terminated paths.
    cvt_long(unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) })?;
    // SAFETY: detaches the old root, now stacked on ".".
    cvt(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })?;
    // SAFETY: chdir takes a NUL-terminated path.
    cvt(unsafe { libc::chdir(c"/".as_ptr()) }).map(drop)
}

/// Sets a resource limit's soft and hard values to `value`, or to the hard limit if that
/// is lower (only privilege could raise it).
pub fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills in `cur`.
    cvt(unsafe { libc::getrlimit(resource, &mut cur) })?;
    let v = value.min(cur.rlim_max);
    let new = libc::rlimit {
        rlim_cur: v,
        rlim_max: v,
    };
    // SAFETY: setrlimit reads `new`.
    cvt(unsafe { libc::setrlimit(resource, &new) }).map(drop)
}

/// Empties the capability bounding set, one capability at a time until the kernel knows no
/// more, and the ambient set.
pub fn drop_bounding_set() -> io::Result<()> {
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_DROP takes a capability number.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(e);
        }
    }
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no further arguments.
    cvt(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    })
    .map(drop)
}

/// Sets real, effective and saved gid and uid.
pub fn set_ids(id: Identity) -> io::Result<()> {
    // SAFETY: setresgid and setresuid take integers.
    cvt(unsafe { libc::setresgid(id.gid, id.gid, id.gid) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::setresuid(id.uid, id.uid, id.uid) }).map(drop)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empties the effective, permitted and inheritable sets. A uid change inside a user
/// namespace does not clear them on its own.
pub fn drop_capabilities() -> io::Result<()> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads a version 3 header and two data words, which these are.
    cvt_long(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) }).map(drop)
}

/// Sets no_new_privs: nothing this process or its children exec gains privileges.
pub fn no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes an integer flag.
    cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn close_all_but_keeps_what_it_is_told() {
        // In a child, so that the test process keeps its own descriptors.
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let a = std::fs::File::open("/dev/null").unwrap();
            let b = std::fs::File::open("/dev/null").unwrap();
            let c = std::fs::File::open("/dev/null").unwrap();
            let open = |fd: RawFd| {
                // SAFETY: F_GETFD only reads flags.
                unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
            };
            let ok = close_all_but(&[b.as_raw_fd()]).is_ok()
                && !open(a.as_raw_fd())
                && open(b.as_raw_fd())
                && !open(c.as_raw_fd())
                && open(2);
            std::mem::forget((a, c));
            // SAFETY: ends the child without running the test harness's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
