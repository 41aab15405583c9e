//! Persistent tap creation through `/dev/net/tun`.
//!
//! A tap made persistent outlives the descriptor that created it, so the daemon can
//! create it, put it on the bridge, and let the monitor open it by name later. The flags
//! must match what the monitor asks for when it opens the tap: `IFF_TAP | IFF_NO_PI |
//! IFF_VNET_HDR`, and `IFF_MULTI_QUEUE`: the kernel refuses to attach a queue whose
//! multiqueue flag differs from the tap's, so every tap strato creates is multiqueue (a
//! plain device uses one queue of it, an enhanced one a queue per vCPU) and a tap created
//! before that (single-queue) is still opened, with one queue.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// The tap flags strato uses everywhere (the monitor opens taps with the same).
pub(crate) const TAP_FLAGS: libc::c_int = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;

/// The flags of the taps strato creates: [`TAP_FLAGS`] and multiqueue.
pub(crate) const MQ_TAP_FLAGS: libc::c_int = TAP_FLAGS | libc::IFF_MULTI_QUEUE;

/// `struct ifreq` as TUNSETIFF uses it: the name and the flags of the union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens `/dev/net/tun` and attaches the descriptor to tap `name` (creating it if absent)
/// as one queue: multiqueue, or single-queue where the tap is an older single-queue one.
/// `name` must already be validated.
pub(crate) fn open_tap(name: &str) -> io::Result<File> {
    match open_tap_with(name, MQ_TAP_FLAGS) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open_tap_with(name, TAP_FLAGS),
        other => other,
    }
}

/// Opens up to `queues` queues of tap `name` (at least one): all of them on a multiqueue
/// tap, one on a single-queue tap (which cannot take more).
pub(crate) fn open_tap_queues(name: &str, queues: usize) -> io::Result<Vec<File>> {
    let first = match open_tap_with(name, MQ_TAP_FLAGS) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            return Ok(vec![open_tap_with(name, TAP_FLAGS)?]);
        }
        other => other?,
    };
    let mut files = vec![first];
    while files.len() < queues {
        files.push(open_tap_with(name, MQ_TAP_FLAGS)?);
    }
    Ok(files)
}

pub(crate) fn open_tap_with(name: &str, flags: libc::c_int) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        // The flags fit a c_short (0x5102 at most).
        flags: flags as libc::c_short,
        _pad: [0; 22],
    };
    // Validated names are at most 15 bytes; the zip keeps the terminating NUL.
    for (dst, src) in req.name[..libc::IFNAMSIZ - 1].iter_mut().zip(name.bytes()) {
        *dst = src;
    }
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` has its full 40 bytes.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Creates multiqueue tap `name` and makes it persistent; the descriptor is closed on return.
pub(crate) fn create_persistent_tap(name: &str) -> io::Result<()> {
    let file = open_tap_with(name, MQ_TAP_FLAGS)?;
    // SAFETY: TUNSETPERSIST takes its argument by value and touches no memory.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
