//! Landlock through its three system calls: a ruleset that handles every access right the
//! running kernel's ABI knows, with no rule granting any, so that the process may open no
//! file, make no TCP connection and (where the ABI scopes them) reach no abstract Unix
//! socket and signal no process outside its domain. Descriptors opened before keep their
//! rights, which is what the monitor lives on.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;

/// Filesystem rights by the ABI that introduced them: 13 in ABI 1, REFER in 2, TRUNCATE in
/// 3, IOCTL_DEV in 5.
fn fs_rights(abi: u32) -> u64 {
    let mut rights = (1u64 << 13) - 1;
    if abi >= 2 {
        rights |= 1 << 13;
    }
    if abi >= 3 {
        rights |= 1 << 14;
    }
    if abi >= 5 {
        rights |= 1 << 15;
    }
    rights
}

/// TCP bind and connect, from ABI 4.
const NET_RIGHTS: u64 = 0b11;
/// Abstract Unix sockets and signals, from ABI 6.
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// The kernel's Landlock ABI version, or `None` when Landlock is missing or disabled.
pub fn abi() -> Option<u32> {
    // SAFETY: with a null attribute and the version flag, the call only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(v).ok().filter(|v| *v > 0)
}

/// Restricts the calling thread (and what it creates afterwards) to no filesystem or TCP
/// access; with `scope_signals`, also to no signal or abstract Unix socket outside its own
/// domain. Needs no_new_privs. Returns the ABI applied, or `None` when Landlock is missing.
pub fn restrict_all(scope_signals: bool) -> io::Result<Option<u32>> {
    let Some(abi) = abi() else {
        return Ok(None);
    };
    let mut attr = RulesetAttr {
        handled_access_fs: fs_rights(abi),
        handled_access_net: 0,
        scoped: 0,
    };
    // The kernel takes the struct as long as its ABI knows it.
    let mut size = std::mem::size_of::<u64>();
    if abi >= 4 {
        attr.handled_access_net = NET_RIGHTS;
        size = 2 * std::mem::size_of::<u64>();
    }
    if abi >= 6 {
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | if scope_signals { SCOPE_SIGNAL } else { 0 };
        size = std::mem::size_of::<RulesetAttr>();
    }
    // SAFETY: the kernel reads `size` bytes of `attr`, all initialised.
    let fd = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, &attr, size, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor, owned from here on.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: restrict_self takes the ruleset descriptor and flags.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(abi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_grow_with_the_abi() {
        assert_eq!(fs_rights(1).count_ones(), 13);
        assert_eq!(fs_rights(3).count_ones(), 15);
        assert_eq!(fs_rights(4), fs_rights(3));
        assert_eq!(fs_rights(7).count_ones(), 16);
    }
}
