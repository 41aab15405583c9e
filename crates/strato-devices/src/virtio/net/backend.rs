//! What virtio-net moves frames through: a tap in production, a packet socket in tests.

use std::io;
use std::os::unix::io::AsRawFd;

use crate::virtio::iovec::IoVecs;

/// A packet-preserving frame channel: every read returns one frame, every write sends
/// one. Frames carry the 12-byte `virtio_net_hdr_v1` in front. The descriptor must be
/// non-blocking; it is watched for readability.
pub trait FrameIo: AsRawFd + Send {
    /// Reads one frame into `bufs` and returns its length; `WouldBlock` when no frame
    /// is waiting. A frame longer than `bufs` is truncated (the caller detects it by
    /// leaving spare room at the end of `bufs`).
    fn read_frame(&mut self, bufs: &IoVecs<'_>) -> io::Result<usize>;
    /// Writes one frame made of all of `bufs`.
    fn write_frame(&mut self, bufs: &IoVecs<'_>) -> io::Result<usize>;
    /// Sets which offloads frames read from the channel may carry (`TUNSETOFFLOAD`
    /// flags, [`super::header::tun`]): partial checksums and segmentation the reader
    /// then finishes. Fails if the channel cannot hand over one of them.
    fn set_offloads(&mut self, flags: u32) -> io::Result<()>;
}
