//! virtio-net TX and RX: frames with valid-by-construction virtio-net headers (none,
//! partial checksums, segmentation as negotiated), rarely hostile ones, moved through an
//! in-memory tap, with plain and enhanced devices and random feature sets.
//!
//! Beyond the ring checks: every header that reaches the tap asks only for offloads the
//! driver negotiated, points its checksum inside the frame and carries no `num_buffers`;
//! the frame behind it is the one the guest wrote; every frame the guest receives in one
//! buffer is one the tap delivered.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use strato_fuzzgen::{alloc, Source};
use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_ECN,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MRG_RXBUF,
    VIRTIO_NET_HDR_F_DATA_VALID, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::ring::{activation, memory, queue_size, write_lossy, Activation, Arena, Desc, Ring};
use crate::event::EventHandler;
use crate::virtio::iovec::IoVecs;
use crate::virtio::net::header::{VnetHeader, VNET_HDR_LEN};
use crate::virtio::net::{
    rx_token, tap_token, tx_token, FrameIo, Net, NetConfig, CTRL_TOKEN, MAX_FRAME_LEN,
};
use crate::virtio::{VirtioDevice, VIRTIO_F_VERSION_1};

/// The most one case may hold beyond its start: the device's 64 KiB spill buffer, the
/// frames queued on and sent through the tap (at most a few 64 KiB ones), the harness's
/// own copies.
pub const MEMORY_BOUND: usize = 8 << 20;

const ETH_HLEN: usize = 14;
const NEEDS_CSUM: u8 = VIRTIO_NET_HDR_F_NEEDS_CSUM as u8;
const DATA_VALID: u8 = VIRTIO_NET_HDR_F_DATA_VALID as u8;
const GSO_TCPV4: u8 = VIRTIO_NET_HDR_GSO_TCPV4 as u8;
const GSO_TCPV6: u8 = VIRTIO_NET_HDR_GSO_TCPV6 as u8;
const GSO_ECN: u8 = VIRTIO_NET_HDR_GSO_ECN as u8;

/// A tap in memory: frames queued for the guest, frames the guest sent.
pub struct MemTap {
    evt: EventFd,
    /// Frames (vnet header included) the next reads return.
    pub incoming: VecDeque<Vec<u8>>,
    /// Frames (vnet header included) the device wrote.
    pub sent: Vec<Vec<u8>>,
    /// The last `TUNSETOFFLOAD` flags.
    pub offloads: u32,
    /// Refuse any offload (a tap without vnet offload support).
    pub refuse_offloads: bool,
    /// Reads fail with EIO.
    pub read_error: bool,
    /// Writes fail with this error.
    pub write_error: Option<io::ErrorKind>,
}

impl MemTap {
    /// An empty tap.
    pub fn new() -> Self {
        Self {
            evt: EventFd::new(EFD_NONBLOCK).unwrap_or_else(|e| panic!("eventfd: {e}")),
            incoming: VecDeque::new(),
            sent: Vec::new(),
            offloads: 0,
            refuse_offloads: false,
            read_error: false,
            write_error: None,
        }
    }
}

impl Default for MemTap {
    fn default() -> Self {
        Self::new()
    }
}

impl AsRawFd for MemTap {
    fn as_raw_fd(&self) -> RawFd {
        self.evt.as_raw_fd()
    }
}

impl FrameIo for MemTap {
    fn read_frame(&mut self, bufs: &IoVecs<'_>) -> io::Result<usize> {
        if self.read_error {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let frame = self.incoming.pop_front().ok_or(io::ErrorKind::WouldBlock)?;
        // As a tap: what does not fit the buffers is cut off.
        Ok(bufs.copy_from_host(&frame))
    }

    fn write_frame(&mut self, bufs: &IoVecs<'_>) -> io::Result<usize> {
        if let Some(kind) = self.write_error {
            return Err(kind.into());
        }
        let mut frame = vec![0u8; bufs.len()];
        let n = bufs.copy_to_host(&mut frame);
        frame.truncate(n);
        self.sent.push(frame);
        Ok(n)
    }

    fn set_offloads(&mut self, flags: u32) -> io::Result<()> {
        if self.refuse_offloads && flags != 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        self.offloads = flags;
        Ok(())
    }
}

struct Rig {
    mem: GuestMemoryMmap,
    net: Net<MemTap>,
    rings: Vec<Ring>,
    act: Activation,
    acked: u64,
    arena: Arena,
}

/// Builds and activates a device with a random configuration; `None` when the driver's
/// choices make activation fail (a legitimate outcome).
fn rig(src: &mut Source<'_>) -> Option<Rig> {
    let mem = memory();
    let enhanced = src.bool();
    let taps = if enhanced && src.rarely() { 2 } else { 1 };
    let mut tap_list = Vec::new();
    for _ in 0..taps {
        let mut t = MemTap::new();
        t.refuse_offloads = src.rarely();
        tap_list.push(t);
    }
    let mac = if src.rarely() {
        None
    } else {
        Some([2, 0, 0, 0, 0, 1])
    };
    let mut net = Net::new(NetConfig {
        id: "eni-fuzz".into(),
        taps: tap_list,
        mac,
        enhanced,
    })
    .unwrap_or_else(|e| panic!("net device: {e}"));
    let acked = (net.avail_features() & src.u64()) | VIRTIO_F_VERSION_1;
    let sizes = net.queue_max_sizes().to_vec();
    let mut rings = Vec::new();
    let mut queues = Vec::new();
    for (i, &max) in sizes.iter().enumerate() {
        let ring = Ring::new(&mem, i as u64, queue_size(src, max));
        queues.push(ring.queue(max));
        rings.push(ring);
    }
    let (ctx, act) = activation(&mem, queues, acked);
    net.activate(ctx).ok()?;
    Some(Rig {
        mem,
        net,
        rings,
        act,
        acked,
        arena: Arena::default(),
    })
}

/// A frame of `len` bytes after a vnet header `hdr`, filled from the source.
fn frame(src: &mut Source<'_>, hdr: [u8; VNET_HDR_LEN], len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(VNET_HDR_LEN + len);
    f.extend_from_slice(&hdr);
    f.resize(VNET_HDR_LEN + len, 0);
    let n = len.min(64);
    src.fill(&mut f[VNET_HDR_LEN..VNET_HDR_LEN + n]);
    f
}

/// A TX header for a frame of `len` bytes: mostly one the negotiated offloads allow.
fn tx_header(src: &mut Source<'_>, len: usize) -> [u8; VNET_HDR_LEN] {
    if src.rarely() {
        let mut raw = [0u8; VNET_HDR_LEN];
        src.fill(&mut raw);
        return raw;
    }
    let mut h = VnetHeader::default();
    match src.below(4) {
        0 | 1 => {}
        2 => {
            h.flags = NEEDS_CSUM;
            h.csum_start = src.below(len as u64) as u16;
            h.csum_offset = *src.pick(&[6u16, 16]).unwrap_or(&16);
        }
        _ => {
            h.flags = NEEDS_CSUM;
            h.csum_start = 34;
            h.csum_offset = 16;
            h.gso_type = *src
                .pick(&[GSO_TCPV4, GSO_TCPV6, GSO_TCPV4 | GSO_ECN])
                .unwrap_or(&GSO_TCPV4);
            h.gso_size = src.range(1, 1460) as u16;
            h.hdr_len = src.below(len as u64 + 1) as u16;
        }
    }
    if src.rarely() {
        h.num_buffers = src.u16();
    }
    h.to_bytes()
}

/// Places `bytes` in guest memory over 1 to 3 descriptors (split anywhere, even inside the
/// vnet header), readable by the device unless rarely not.
fn place(rig: &mut Rig, src: &mut Source<'_>, bytes: &[u8], write: bool) -> Vec<Desc> {
    let parts = 1 + src.below(3) as usize;
    let mut descs = Vec::new();
    let mut rest = bytes;
    for k in 0..parts {
        let take = if k + 1 == parts {
            rest.len()
        } else {
            src.below(rest.len() as u64 + 1) as usize
        };
        let (now, later) = rest.split_at(take);
        rest = later;
        let len = now.len() as u32;
        let at = rig.arena.take_hostile(src, len);
        write_lossy(&rig.mem, at, now);
        descs.push(Desc {
            addr: at,
            len,
            write: write ^ src.rarely(),
        });
    }
    descs
}

/// Runs one TX case.
pub fn run_tx(data: &[u8]) {
    alloc::bounded("virtio-net TX", MEMORY_BOUND, || {
        tx_case(&mut Source::new(data))
    });
}

fn tx_case(src: &mut Source<'_>) {
    let Some(mut rig) = rig(src) else {
        return;
    };
    let tx = 1;
    let rounds = 1 + src.below(3);
    for _ in 0..rounds {
        if src.rarely() {
            rig.net.taps_mut()[0].write_error = Some(
                *src.pick(&[io::ErrorKind::WouldBlock, io::ErrorKind::Other])
                    .unwrap_or(&io::ErrorKind::Other),
            );
        }
        let mut expected = Vec::new();
        let mut clean = true;
        let frames = 1 + src.below(8);
        for _ in 0..frames {
            let len = if src.rarely() {
                src.below(MAX_FRAME_LEN as u64 + 64) as usize
            } else {
                src.range_usize(ETH_HLEN, 1514)
            };
            let hdr = tx_header(src, len);
            let f = frame(src, hdr, len);
            let descs = place(&mut rig, src, &f, false);
            match rig.rings[tx].offer(&rig.mem, src, &descs) {
                Some((_, broken)) => {
                    clean &= !broken;
                    expected.push(f);
                }
                None => break,
            }
        }
        if src.rarely() {
            let size = rig.rings[tx].size();
            rig.rings[tx].offer_stray(&rig.mem, src.u16() % size);
            clean = false;
        }
        rig.rings[tx].maybe_break(&rig.mem, src);
        let _ = rig.act.evts[tx].write(1);
        rig.net.handle_event(tx_token(0));
        let used = rig.rings[tx].check_used(&rig.mem);
        assert!(
            used.iter().all(|&(_, len)| len == 0),
            "TX used length is not 0: {used:?}"
        );
        rig.rings[tx].assert_drained();
        let sent = std::mem::take(&mut rig.net.taps_mut()[0].sent);
        check_sent(&sent, rig.acked);
        if clean && !rig.rings[tx].is_broken() {
            // Sent frames are the guest's, in order, with only refused ones left out.
            let mut want = expected.iter();
            for s in &sent {
                let found = want.any(|e| e[VNET_HDR_LEN..] == s[VNET_HDR_LEN..]);
                assert!(
                    found,
                    "the tap got a {}-byte frame the guest never sent",
                    s.len()
                );
            }
        }
        if rig.rings[tx].is_broken() {
            break;
        }
        rig.net.taps_mut()[0].write_error = None;
    }
    rig.net.reset();
}

/// What may reach the tap: headers asking only for what was negotiated.
fn check_sent(sent: &[Vec<u8>], acked: u64) {
    let has = |bit: u32| acked & (1 << bit) != 0;
    let csum = has(VIRTIO_NET_F_CSUM);
    let tso4 = csum && has(VIRTIO_NET_F_HOST_TSO4);
    let tso6 = csum && has(VIRTIO_NET_F_HOST_TSO6);
    let ecn = (tso4 || tso6) && has(VIRTIO_NET_F_HOST_ECN);
    for f in sent {
        assert!(
            f.len() >= VNET_HDR_LEN + ETH_HLEN && f.len() <= MAX_FRAME_LEN,
            "a {}-byte frame reached the tap",
            f.len()
        );
        let mut raw = [0u8; VNET_HDR_LEN];
        raw.copy_from_slice(&f[..VNET_HDR_LEN]);
        let h = VnetHeader::from_bytes(&raw);
        let len = f.len() - VNET_HDR_LEN;
        assert_eq!(h.num_buffers, 0, "num_buffers reached the tap: {h:?}");
        assert_eq!(h.flags & !NEEDS_CSUM, 0, "flags reached the tap: {h:?}");
        if h.flags & NEEDS_CSUM != 0 {
            assert!(csum, "a partial checksum without CSUM: {h:?}");
            let end = usize::from(h.csum_start) + usize::from(h.csum_offset) + 2;
            assert!(end <= len, "checksum outside a {len}-byte frame: {h:?}");
        } else {
            assert_eq!(
                (h.csum_start, h.csum_offset),
                (0, 0),
                "stale checksum fields: {h:?}"
            );
        }
        if h.gso_type == 0 {
            assert_eq!(
                (h.gso_size, h.hdr_len),
                (0, 0),
                "stale segmentation fields: {h:?}"
            );
        } else {
            let ok = match h.gso_type & !GSO_ECN {
                GSO_TCPV4 => tso4,
                GSO_TCPV6 => tso6,
                _ => false,
            };
            assert!(
                ok && (h.gso_type & GSO_ECN == 0 || ecn),
                "segmentation not negotiated: {h:?}"
            );
            assert!(
                h.flags & NEEDS_CSUM != 0 && h.gso_size > 0,
                "inconsistent segmentation: {h:?}"
            );
            assert!(
                usize::from(h.hdr_len) <= len,
                "headers past the frame: {h:?}"
            );
        }
    }
}

/// Runs one RX case.
pub fn run_rx(data: &[u8]) {
    alloc::bounded("virtio-net RX", MEMORY_BOUND, || {
        rx_case(&mut Source::new(data))
    });
}

/// An RX header as a tap writes it, for the offloads it was told to hand over.
fn rx_header(src: &mut Source<'_>, len: usize) -> [u8; VNET_HDR_LEN] {
    if src.rarely() {
        let mut raw = [0u8; VNET_HDR_LEN];
        src.fill(&mut raw);
        return raw;
    }
    let mut h = VnetHeader::default();
    match src.below(4) {
        0 | 1 => {}
        2 => h.flags = DATA_VALID,
        _ => {
            h.flags = NEEDS_CSUM;
            h.csum_start = 34.min(len as u16);
            h.csum_offset = 16;
            if src.bool() && len > 1514 {
                h.gso_type = GSO_TCPV4;
                h.gso_size = 1448;
                h.hdr_len = 54;
            }
        }
    }
    h.to_bytes()
}

fn rx_case(src: &mut Source<'_>) {
    let Some(mut rig) = rig(src) else {
        return;
    };
    let mergeable = rig.acked & (1 << VIRTIO_NET_F_MRG_RXBUF) != 0;
    let (rx, pairs) = (0, rig.net.taps().len());
    let rounds = 1 + src.below(4);
    // Frames the tap holds or delivered, oldest first, not yet matched to a used buffer.
    let mut queued: VecDeque<Vec<u8>> = VecDeque::new();
    // Heads of broken chains the device may still walk. Such a chain can run on into
    // descriptors the ring later gives to another chain (RX chains outlive a round), so
    // while one is out the device may rightly write one frame over another's buffers.
    let mut broken_out: BTreeSet<u16> = BTreeSet::new();
    for _ in 0..rounds {
        let frames = src.below(6);
        for _ in 0..frames {
            let len = match src.below(8) {
                0 => src.below(ETH_HLEN as u64 + 1) as usize,
                1 => src.range_usize(1515, MAX_FRAME_LEN - VNET_HDR_LEN + 64),
                _ => src.range_usize(ETH_HLEN + 46, 1514),
            };
            let hdr = rx_header(src, len);
            let f = frame(src, hdr, len);
            queued.push_back(f.clone());
            let tap = src.below(pairs as u64) as usize;
            rig.net.taps_mut()[tap].incoming.push_back(f);
        }
        let chains = src.below(8);
        for _ in 0..chains {
            let len = *src
                .pick(&[1526u32, 4096, 65562, 256, 2048])
                .unwrap_or(&1526);
            let len = if src.rarely() {
                src.below(1 << 17) as u32
            } else {
                len
            };
            let parts = 1 + src.below(3) as u32;
            let mut descs = Vec::new();
            for p in 0..parts {
                let l = if p + 1 == parts {
                    len - len / parts * p
                } else {
                    len / parts
                };
                let at = rig.arena.take_hostile(src, l);
                descs.push(Desc {
                    addr: at,
                    len: l,
                    write: !src.rarely(),
                });
            }
            match rig.rings[rx].offer(&rig.mem, src, &descs) {
                Some((head, true)) => {
                    broken_out.insert(head);
                }
                Some((_, false)) => {}
                None => break,
            }
        }
        rig.rings[rx].maybe_break(&rig.mem, src);
        if src.rarely() {
            rig.net.taps_mut()[0].read_error = src.bool();
        }
        for _ in 0..1 + src.below(3) {
            match src.below(4) {
                0 => {
                    let _ = rig.act.evts[rx].write(1);
                    rig.net.handle_event(rx_token(0));
                }
                1 if rig.rings.len() > 4 => {
                    ctrl_command(&mut rig, src);
                }
                _ => rig
                    .net
                    .handle_event(tap_token(src.below(pairs as u64) as usize)),
            }
        }
        let used = rig.rings[rx].check_used(&rig.mem);
        // Clean: no broken chain was out during the round (those returned now included).
        let clean = broken_out.is_empty();
        for (head, _) in &used {
            broken_out.remove(head);
        }
        if !mergeable && clean && !rig.rings[rx].is_broken() && pairs == 1 {
            // One buffer per frame: each one the guest got is the next the tap delivered.
            // (Frames that did not fit were dropped: skipped over.)
            for &(head, len) in &used {
                if len == 0 {
                    continue;
                }
                let got = chain_bytes(&rig.mem, &rig.rings[rx], head, len as usize);
                let found = std::iter::from_fn(|| queued.pop_front())
                    .any(|f| f.len() == got.len() && f[VNET_HDR_LEN..] == got[VNET_HDR_LEN..]);
                assert!(
                    found,
                    "the guest got a {len}-byte frame the tap never delivered"
                );
            }
        } else {
            // Unchecked rounds leave no trail to match later frames against.
            queued.clear();
            for t in rig.net.taps_mut() {
                t.incoming.clear();
            }
        }
        if rig.rings[rx].is_broken() {
            break;
        }
    }
    rig.net.reset();
}

/// The first `len` bytes the chain at `head` holds, read back from guest memory.
fn chain_bytes(mem: &GuestMemoryMmap, ring: &Ring, head: u16, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    for (addr, l) in ring.chain_buffers(mem, head) {
        let n = (l as usize).min(len - out.len());
        let mut b = vec![0u8; n];
        if mem.read_slice(&mut b, GuestAddress(addr)).is_err() {
            break;
        }
        out.extend_from_slice(&b);
        if out.len() == len {
            break;
        }
    }
    out
}

/// A control queue command: mostly setting the number of queue pairs in use.
fn ctrl_command(rig: &mut Rig, src: &mut Source<'_>) {
    let ctrl = rig.rings.len() - 1;
    let (class, cmd) = if src.rarely() {
        (src.u8(), src.u8())
    } else {
        (
            VIRTIO_NET_CTRL_MQ as u8,
            VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET as u8,
        )
    };
    let pairs = if src.rarely() {
        src.u16()
    } else {
        src.range(1, 2) as u16
    };
    let mut cmd_bytes = vec![class, cmd];
    cmd_bytes.extend_from_slice(&pairs.to_le_bytes());
    let at = rig.arena.take_hostile(src, cmd_bytes.len() as u32);
    write_lossy(&rig.mem, at, &cmd_bytes);
    let ack = rig.arena.take_hostile(src, 1);
    let descs = [
        Desc {
            addr: at,
            len: cmd_bytes.len() as u32,
            write: src.rarely(),
        },
        Desc {
            addr: ack,
            len: 1,
            write: !src.rarely(),
        },
    ];
    if rig.rings[ctrl].offer(&rig.mem, src, &descs).is_some() {
        let _ = rig.act.evts[ctrl].write(1);
        rig.net.handle_event(CTRL_TOKEN);
        rig.rings[ctrl].check_used(&rig.mem);
        rig.rings[ctrl].assert_drained();
    }
}
