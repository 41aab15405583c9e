//! A Linux tap interface set up for virtio-net.
//!
//! The tap carries a 12-byte `virtio_net_hdr_v1` in front of every frame
//! (`IFF_VNET_HDR`, `TUNSETVNETHDRSZ`). It is non-blocking, without packet information
//! (`IFF_NO_PI`), and starts without offloads: the device turns on what the guest
//! negotiated (`TUNSETOFFLOAD`). A multiqueue tap (`IFF_MULTI_QUEUE`) is one descriptor
//! per queue, each a [`Tap`] here.

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
        Self::open_with(name, TAP_FLAGS)
    }

    /// Opens `queues` queues of the multiqueue tap `name` (creating it if needed; a `%d`
    /// pattern lets the kernel pick, and every queue then joins the interface the first
    /// one created).
    pub fn open_multiqueue(name: &str, queues: usize) -> Result<Vec<Self>, TapError> {
        let flags = TAP_FLAGS | libc::IFF_MULTI_QUEUE;
        let mut taps: Vec<Self> = Vec::with_capacity(queues);
        for _ in 0..queues {
            let name = taps.first().map_or(name, |t| t.name.as_str()).to_owned();
            taps.push(Self::open_with(&name, flags)?);
        }
        Ok(taps)
    }

    fn open_with(name: &str, flags: libc::c_int) -> Result<Self, TapError> {
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
        // The flags fit a c_short (0x5102 at most).
        req.flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is (with
        // its full 40-byte size).
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
        check(ret, "TUNSETIFF")?;
        Self::configure(file)
    }

    /// Adopts a tap descriptor opened by someone else (the daemon hands them over). It
    /// must have been set up with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR` (and may be one
    /// queue of an `IFF_MULTI_QUEUE` tap).
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
        set_offload(fd, 0).map_err(|source| TapError::Ioctl {
            op: "TUNSETOFFLOAD",
            source,
        })?;
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

fn set_offload(fd: RawFd, flags: u32) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value and touches no memory of ours.
    let ret = unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, libc::c_ulong::from(flags)) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
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

    fn set_offloads(&mut self, flags: u32) -> io::Result<()> {
        set_offload(self.file.as_raw_fd(), flags)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::virtio::test_utils::in_own_netns;

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

    /// Needs CAP_SYS_ADMIN and CAP_NET_ADMIN; skipped where they are missing. The tap
    /// lives in a network namespace of the test's own.
    #[test]
    fn opens_a_tap_when_permitted() {
        in_own_netns(|| {
            let tap = match Tap::open("stratot%d") {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("skipping: {e}");
                    return;
                }
            };
            assert!(tap.name().starts_with("stratot"));
            // Adopting a second descriptor for the same interface works too.
            let dup = tap.file.try_clone().unwrap();
            let again = Tap::from_fd(dup.into()).unwrap();
            assert_eq!(again.name(), tap.name());
        });
    }

    /// As above.
    #[test]
    fn opens_multiqueue_taps_and_sets_offloads_when_permitted() {
        use super::super::header::tun::*;
        in_own_netns(|| {
            let mut taps = match Tap::open_multiqueue("stratom%d", 3) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("skipping: {e}");
                    return;
                }
            };
            assert_eq!(taps.len(), 3);
            assert!(taps.iter().all(|t| t.name() == taps[0].name()));
            let all = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
            taps[1].set_offloads(all).unwrap();
            taps[0].set_offloads(0).unwrap();
            // A flag the kernel does not know is refused.
            assert!(taps[0].set_offloads(1 << 30).is_err());
            // A plain open of the same name is refused: it is a multiqueue tap.
            assert!(Tap::open(taps[0].name()).is_err());
        });
    }
}
