//! A Linux tap interface set up for virtio-net.
//!
//! The tap carries a 12-byte `virtio_net_hdr_v1` in front of every frame
//! (`IFF_VNET_HDR`, `TUNSETVNETHDRSZ`), so guest frames pass through unchanged. It is
//! non-blocking, without packet information (`IFF_NO_PI`) and without offloads.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::backend::FrameIo;
use super::VNET_HDR_LEN;
use crate::virtio::iovec::IoVecs;

/// Errors opening or adopting a tap.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The interface name is empty, too long or contains a NUL.
    #[error("invalid tap name {0:?}")]
    Name(String),
    /// /dev/net/tun could not be opened.
    #[error("opening /dev/net/tun: {0}")]
    Open(#[source] io::Error),
    /// A tap ioctl or fcntl failed.
    #[error("{op} on tap: {source}")]
    Ioctl {
        /// Which call.
        op: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An inherited descriptor is not a tap with a vnet header and no packet info.
    #[error("descriptor is not a tap with IFF_VNET_HDR and IFF_NO_PI (flags {0:#x})")]
    Flags(i32),
}

/// `struct ifreq` as the tun ioctls use it: a name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl IfReq {
    fn new() -> Self {
        Self {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        }
    }

    fn name(&self) -> String {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        String::from_utf8_lossy(self.name.get(..end).unwrap_or_default()).into_owned()
    }
}

const TAP_FLAGS: libc::c_int = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;

/// An open tap interface.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Opens (or creates) the tap interface `name` (a `%d` pattern lets the kernel pick).
    pub fn open(name: &str) -> Result<Self, TapError> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(TapError::Name(name.to_owned()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        let mut req = IfReq::new();
        for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
            *dst = src;
        }
        // The flags fit a c_short (0x5002).
        req.flags = TAP_FLAGS as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is (with
        // its full 40-byte size).
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
        check(ret, "TUNSETIFF")?;
        Self::configure(file)
    }

    /// Adopts a tap descriptor opened by someone else (the daemon hands them over). It
    /// must have been set up with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, TapError> {
        Self::configure(File::from(fd))
    }

    /// Adopts a raw tap descriptor, as [`Tap::from_fd`].
    ///
    /// # Safety
    ///
    /// `fd` must be an open descriptor that nothing else owns or closes.
    pub unsafe fn from_raw_fd(fd: RawFd) -> Result<Self, TapError> {
        // SAFETY: the caller hands over ownership of an open descriptor.
        Self::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn configure(file: File) -> Result<Self, TapError> {
        let fd = file.as_raw_fd();
        let mut req = IfReq::new();
        // SAFETY: TUNGETIFF writes one `struct ifreq` into `req`.
        let ret = unsafe { libc::ioctl(fd, libc::TUNGETIFF, &mut req as *mut IfReq) };
        check(ret, "TUNGETIFF")?;
        let flags = libc::c_int::from(req.flags);
        if flags & TAP_FLAGS != TAP_FLAGS {
            return Err(TapError::Flags(flags));
        }
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer.
        let ret = unsafe { libc::ioctl(fd, libc::TUNSETVNETHDRSZ, &hdr_len as *const libc::c_int) };
        check(ret, "TUNSETVNETHDRSZ")?;
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        let ret = unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, 0 as libc::c_ulong) };
        check(ret, "TUNSETOFFLOAD")?;
        // SAFETY: F_GETFL on a descriptor we own.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        check(fl, "F_GETFL")?;
        // SAFETY: F_SETFL on a descriptor we own.
        let ret = unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) };
        check(ret, "F_SETFL")?;
        Ok(Self {
            file,
            name: req.name(),
        })
    }
}

fn check(ret: libc::c_int, op: &'static str) -> Result<(), TapError> {
    if ret < 0 {
        Err(TapError::Ioctl {
            op,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(())
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl FrameIo for Tap {
    fn read_frame(&mut self, bufs: &IoVecs<'_>) -> io::Result<usize> {
        bufs.readv(self.file.as_raw_fd())
    }

    fn write_frame(&mut self, bufs: &IoVecs<'_>) -> io::Result<usize> {
        bufs.writev(self.file.as_raw_fd())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_names() {
        assert!(matches!(Tap::open(""), Err(TapError::Name(_))));
        assert!(matches!(
            Tap::open("a-very-long-tap-name"),
            Err(TapError::Name(_))
        ));
        assert!(matches!(Tap::open("a\0b"), Err(TapError::Name(_))));
    }

    #[test]
    fn refuses_descriptors_that_are_not_taps() {
        let f = File::open("/dev/null").unwrap();
        assert!(matches!(
            Tap::from_fd(f.into()),
            Err(TapError::Ioctl {
                op: "TUNGETIFF",
                ..
            })
        ));
    }

    /// Needs root and `/dev/net/tun`: fails, saying so, where they are missing. The tap is
    /// made in a network namespace of the test's own, so nothing appears on the host.
    #[test]
    fn opens_a_tap_when_permitted() {
        std::thread::spawn(|| {
            // SAFETY: unshare only changes this thread's namespaces; the result is checked.
            let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                ret,
                0,
                "this test needs root (a network namespace of its own): {}",
                io::Error::last_os_error()
            );
            let tap = Tap::open("stratot%d").unwrap_or_else(|e| panic!("cannot open a tap: {e}"));
            assert!(tap.name().starts_with("stratot"));
            // Adopting a second descriptor for the same interface works too.
            let dup = tap.file.try_clone().unwrap();
            let again = Tap::from_fd(dup.into()).unwrap();
            assert_eq!(again.name(), tap.name());
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    }
}
