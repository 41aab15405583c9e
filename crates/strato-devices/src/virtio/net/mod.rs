//! virtio-net over a Linux tap.
//!
//! Queue 0 receives (RX), queue 1 transmits (TX). Guest buffers hold a 12-byte
//! `virtio_net_hdr_v1` followed by the Ethernet frame; the tap uses the same header,
//! so frames move between guest memory and the tap with `readv`/`writev` and no copy of
//! the frame. The guest's TX header never reaches the tap as written: the device copies
//! it out once, checks it against the negotiated offloads and writes its own ([`header`]).
//! No offloads are offered, so the header is always "no checksum, no GSO".
//!
//! The tap is watched only while the RX queue may have buffers: when it runs dry the
//! device stops listening to the tap (level-triggered readiness would spin) and waits
//! for the guest to kick the RX queue. A tap read error parks it the same way until the
//! guest kicks either queue.

use std::io;
use std::os::unix::io::AsRawFd;
use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::chain::{BrokenChain, DescTable};
use super::common::{fixed_queues, read_config, signal_used, Activated, QueueSet, VirtioCommon};
use super::guest::{read_bytes, write_bytes};
use super::iovec::IoVecs;
use super::{device_type, ActivateContext, ActivateError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::event::{EventHandler, EventSource};
use crate::irq::VirtioInterrupt;
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

pub mod backend;
pub mod header;
pub mod tap;

pub use backend::FrameIo;
pub use header::VNET_HDR_LEN;
use header::{tx_header, HeaderError, Offloads, RawHeader};
pub use tap::{Tap, TapError};

/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// Event token of the RX queue (queue 0).
pub const RX_TOKEN: u32 = 0;
/// Event token of the TX queue (queue 1).
pub const TX_TOKEN: u32 = 1;
/// Event token of the tap.
pub const TAP_TOKEN: u32 = 2;
/// Longest frame moved, header included: 64 KiB of payload plus Ethernet and VLAN
/// headers plus the vnet header.
pub const MAX_FRAME_LEN: usize = 65562;
const ETH_HLEN: usize = 14;
/// Offset of `num_buffers` in the vnet header.
const NUM_BUFFERS_OFFSET: usize = 10;
const CONFIG_LEN: usize = 8;

/// How to build a [`Net`].
pub struct NetConfig<T = Tap> {
    /// The interface ID (logs and metrics).
    pub id: String,
    /// The frame backend, normally a tap.
    pub tap: T,
    /// The guest's MAC address; `None` lets the driver pick one.
    pub mac: Option<[u8; 6]>,
}

/// Errors from building a network device.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A multicast (or broadcast) MAC address.
    #[error("mac address {0:02x?} is not unicast")]
    MulticastMac([u8; 6]),
}

#[derive(Debug, Default)]
struct NetMetrics {
    rx_packets: Counter,
    rx_bytes: Counter,
    tx_packets: Counter,
    tx_bytes: Counter,
    rx_dropped: Counter,
    tx_dropped: Counter,
    tx_bad_headers: Counter,
    invalid_chains: Counter,
    tap_read_errors: Counter,
    tap_write_errors: Counter,
    rx_queue_events: Counter,
    tx_queue_events: Counter,
    tap_events: Counter,
}

/// The queues of an active device.
struct NetQueues {
    rx: Queue,
    rx_evt: EventFd,
    tx: Queue,
    tx_evt: EventFd,
    /// Whether the tap is among the event sources (RX buffers may be available).
    watch_tap: bool,
    /// What the guest may ask of the host in its TX headers.
    tx_offloads: Offloads,
}

impl QueueSet for NetQueues {
    fn into_events(self) -> Vec<EventFd> {
        vec![self.rx_evt, self.tx_evt]
    }
}

/// A virtio-net device.
pub struct Net<T: FrameIo = Tap> {
    id: String,
    tap: T,
    mac: Option<[u8; 6]>,
    common: VirtioCommon<NetQueues>,
    /// Catches the tail of a frame that overflows the guest's RX buffers.
    overflow: Vec<u8>,
    metrics: NetMetrics,
}

impl<T: FrameIo> Net<T> {
    /// Builds the device.
    pub fn new(config: NetConfig<T>) -> Result<Self, NetError> {
        if let Some(mac) = config.mac {
            if mac[0] & 1 != 0 {
                return Err(NetError::MulticastMac(mac));
            }
        }
        Ok(Self {
            id: config.id,
            tap: config.tap,
            mac: config.mac,
            common: VirtioCommon::new(),
            overflow: vec![0; MAX_FRAME_LEN],
            metrics: NetMetrics::default(),
        })
    }

    /// The interface ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The MAC address offered to the guest.
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.mac
    }

    /// The frame backend.
    pub fn tap(&self) -> &T {
        &self.tap
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut c = [0u8; CONFIG_LEN];
        if let Some(mac) = self.mac {
            c[..6].copy_from_slice(&mac);
        }
        c[6..8].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        c
    }

    /// Moves frames from the tap into RX buffers until either runs out.
    fn process_rx(&mut self) {
        let Self {
            common,
            tap,
            overflow,
            metrics,
            id,
            ..
        } = self;
        let Some(active) = common.active_mut() else {
            return;
        };
        let Activated {
            mem,
            interrupt,
            queues: a,
            ..
        } = active;
        let mut used = false;
        let mut sources_changed = false;
        let table = DescTable::new(mem, &a.rx);
        loop {
            let Some(chain) = a.rx.pop_descriptor_chain(&*mem) else {
                // Out of buffers: stop watching the tap until the guest adds some.
                if a.watch_tap {
                    a.watch_tap = false;
                    sources_changed = true;
                }
                break;
            };
            let head = chain.head_index();
            let bufs = match rx_buffers(table.collect(head)) {
                Ok(bufs) => bufs,
                Err(why) => {
                    metrics.invalid_chains.inc();
                    warn_limited!("virtio-net {}: invalid RX chain {}: {}", id, head, why);
                    used |= return_used(&mut a.rx, mem, head, 0, id);
                    continue;
                }
            };
            let capacity = bufs.iter().map(|&(_, len)| len as usize).sum::<usize>();
            let mut iovs = match IoVecs::new(mem, bufs.iter().copied()) {
                Ok(iovs) => iovs,
                Err(e) => {
                    metrics.invalid_chains.inc();
                    warn_limited!("virtio-net {}: RX chain {} outside memory: {}", id, head, e);
                    used |= return_used(&mut a.rx, mem, head, 0, id);
                    continue;
                }
            };
            iovs.push_host_buffer(overflow.as_mut_slice());
            match tap.read_frame(&iovs) {
                Ok(n) if n > capacity => {
                    // Does not fit: drop the frame, keep the buffers for the next one.
                    metrics.rx_dropped.inc();
                    warn_limited!(
                        "virtio-net {}: dropped a {}-byte frame (buffers: {})",
                        id,
                        n,
                        capacity
                    );
                    a.rx.go_to_previous_position();
                }
                Ok(n) if n >= VNET_HDR_LEN + ETH_HLEN => {
                    // One buffer per frame: num_buffers is 1 without MRG_RXBUF.
                    write_at(mem, &bufs, NUM_BUFFERS_OFFSET, &1u16.to_le_bytes());
                    metrics.rx_packets.inc();
                    metrics.rx_bytes.add((n - VNET_HDR_LEN) as u64);
                    // n <= capacity, the sum of u32 lengths of at most QUEUE_SIZE buffers.
                    used |= return_used(&mut a.rx, mem, head, u32::try_from(n).unwrap_or(0), id);
                }
                Ok(n) => {
                    metrics.rx_dropped.inc();
                    warn_limited!("virtio-net {}: dropped a runt frame of {} bytes", id, n);
                    a.rx.go_to_previous_position();
                    if n == 0 {
                        break;
                    }
                }
                Err(e) => {
                    a.rx.go_to_previous_position();
                    match e.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted => continue,
                        _ => {
                            // A tap in error stays readable: stop watching it (or the
                            // loop spins) until the guest next kicks a queue.
                            metrics.tap_read_errors.inc();
                            warn_limited!("virtio-net {}: reading the tap: {}", id, e);
                            if a.watch_tap {
                                a.watch_tap = false;
                                sources_changed = true;
                            }
                            break;
                        }
                    }
                }
            }
        }
        if used {
            notify(&mut a.rx, mem, interrupt, id);
        }
        if sources_changed {
            common.set_sources_changed();
        }
    }

    /// Sends every frame the guest queued for transmission.
    fn process_tx(&mut self) {
        let Self {
            common,
            tap,
            metrics,
            id,
            ..
        } = self;
        let Some(Activated {
            mem,
            interrupt,
            queues: a,
            ..
        }) = common.active_mut()
        else {
            return;
        };
        let mem = &*mem;
        let mut used = false;
        let table = DescTable::new(mem, &a.tx);
        while let Some(chain) = a.tx.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut hdr = [0u8; VNET_HDR_LEN];
            match tx_frame(mem, table.collect(head), &mut hdr, a.tx_offloads) {
                Ok(iovs) => match tap.write_frame(&iovs) {
                    Ok(_) => {
                        metrics.tx_packets.inc();
                        metrics.tx_bytes.add((iovs.len() - VNET_HDR_LEN) as u64);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // The tap's queue is full: drop, as a congested link would.
                        metrics.tx_dropped.inc();
                    }
                    Err(e) => {
                        metrics.tap_write_errors.inc();
                        metrics.tx_dropped.inc();
                        warn_limited!("virtio-net {}: writing the tap: {}", id, e);
                    }
                },
                Err(ChainError::Header(why)) => {
                    metrics.tx_bad_headers.inc();
                    metrics.tx_dropped.inc();
                    warn_limited!("virtio-net {}: TX chain {}: {}", id, head, why);
                }
                Err(why) => {
                    metrics.invalid_chains.inc();
                    metrics.tx_dropped.inc();
                    warn_limited!("virtio-net {}: invalid TX chain {}: {}", id, head, why);
                }
            }
            used |= return_used(&mut a.tx, mem, head, 0, id);
        }
        if used {
            notify(&mut a.tx, mem, interrupt, id);
        }
    }
}

/// Why a chain was refused.
#[derive(Debug, thiserror::Error)]
enum ChainError {
    #[error(transparent)]
    Broken(#[from] BrokenChain),
    #[error("buffer has the wrong direction")]
    Direction,
    #[error("{0} bytes is too short for a frame")]
    TooShort(usize),
    #[error("{0} bytes is too long for a frame")]
    TooLong(usize),
    #[error("buffer outside guest memory")]
    Memory,
    #[error("virtio-net header: {0}")]
    Header(#[from] HeaderError),
}

/// The writable buffers of an RX chain.
fn rx_buffers(
    descs: Result<Vec<Descriptor>, BrokenChain>,
) -> Result<Vec<(GuestAddress, u32)>, ChainError> {
    let descs = descs?;
    if descs.iter().any(|d| !d.is_write_only()) {
        return Err(ChainError::Direction);
    }
    let bufs: Vec<_> = descs.iter().map(|d| (d.addr(), d.len())).collect();
    let capacity = bufs.iter().map(|&(_, len)| u64::from(len)).sum::<u64>();
    if capacity < (VNET_HDR_LEN + ETH_HLEN) as u64 {
        return Err(ChainError::TooShort(capacity as usize));
    }
    Ok(bufs)
}

/// Maps a TX chain for the tap: the header the device built from the guest's (copied
/// out of guest memory once, checked against the TX offloads) into `hdr`, then the
/// guest's frame after its header.
fn tx_frame<'a>(
    mem: &'a GuestMemoryMmap,
    descs: Result<Vec<Descriptor>, BrokenChain>,
    hdr: &'a mut RawHeader,
    offloads: Offloads,
) -> Result<IoVecs<'a>, ChainError> {
    let descs = descs?;
    if descs.iter().any(|d| d.is_write_only()) {
        return Err(ChainError::Direction);
    }
    let total = descs.iter().map(|d| u64::from(d.len())).sum::<u64>();
    if total > MAX_FRAME_LEN as u64 {
        return Err(ChainError::TooLong(
            usize::try_from(total).unwrap_or(usize::MAX),
        ));
    }
    if total < (VNET_HDR_LEN + ETH_HLEN) as u64 {
        return Err(ChainError::TooShort(total as usize));
    }
    let bufs: Vec<_> = descs.iter().map(|d| (d.addr(), d.len())).collect();
    let mut guest_hdr = [0u8; VNET_HDR_LEN];
    if !read_at(mem, &bufs, 0, &mut guest_hdr) {
        return Err(ChainError::Memory);
    }
    // total <= MAX_FRAME_LEN.
    *hdr = tx_header(&guest_hdr, total as usize - VNET_HDR_LEN, offloads)?;
    IoVecs::with_host_prefix(hdr, mem, skip(&bufs, VNET_HDR_LEN)).map_err(|_| ChainError::Memory)
}

/// The buffers less their first `n` bytes.
fn skip(bufs: &[(GuestAddress, u32)], n: usize) -> impl Iterator<Item = (GuestAddress, u32)> + '_ {
    let mut left = n as u64;
    bufs.iter().filter_map(move |&(addr, len)| {
        let cut = left.min(u64::from(len));
        left -= cut;
        // cut <= len; a range that wraps is refused when it is mapped.
        let rest = len - cut as u32;
        (rest > 0).then(|| (GuestAddress(addr.0.wrapping_add(cut)), rest))
    })
}

/// Reads `buf.len()` bytes from byte `offset` of the chain's buffers; false if they are
/// not all there.
fn read_at(
    mem: &GuestMemoryMmap,
    bufs: &[(GuestAddress, u32)],
    offset: usize,
    buf: &mut [u8],
) -> bool {
    let mut skip = offset;
    let mut done = 0;
    for &(addr, len) in bufs {
        let len = len as usize;
        if skip >= len {
            skip -= len;
            continue;
        }
        let Some(dst) = buf.get_mut(done..) else {
            return true;
        };
        let n = dst.len().min(len - skip);
        let Some(at) = addr.0.checked_add(skip as u64) else {
            return false;
        };
        if !read_bytes(mem, GuestAddress(at), &mut dst[..n]) {
            return false;
        }
        done += n;
        skip = 0;
        if done == buf.len() {
            return true;
        }
    }
    done == buf.len()
}

/// Writes `bytes` at byte `offset` of the chain's buffers.
fn write_at(mem: &GuestMemoryMmap, bufs: &[(GuestAddress, u32)], offset: usize, bytes: &[u8]) {
    let mut skip = offset;
    let mut rest = bytes;
    for &(addr, len) in bufs {
        let len = len as usize;
        if skip >= len {
            skip -= len;
            continue;
        }
        let n = rest.len().min(len - skip);
        let (now, later) = rest.split_at(n);
        let Some(at) = addr.0.checked_add(skip as u64) else {
            return;
        };
        if !write_bytes(mem, GuestAddress(at), now) {
            return;
        }
        rest = later;
        skip = 0;
        if rest.is_empty() {
            return;
        }
    }
}

/// Adds a used entry; true if it was added.
fn return_used(q: &mut Queue, mem: &GuestMemoryMmap, head: u16, len: u32, id: &str) -> bool {
    match q.add_used(mem, head, len) {
        Ok(()) => true,
        Err(e) => {
            warn_limited!("virtio-net {}: returning descriptor {}: {}", id, head, e);
            false
        }
    }
}

fn notify(q: &mut Queue, mem: &GuestMemoryMmap, interrupt: &VirtioInterrupt, id: &str) {
    if let Err(e) = signal_used(q, mem, interrupt) {
        warn_limited!("virtio-net {}: used-ring interrupt: {}", id, e);
    }
}

impl<T: FrameIo> EventHandler for Net<T> {
    fn event_sources(&self) -> Vec<EventSource> {
        let Some(Activated { queues: a, .. }) = self.common.active() else {
            return Vec::new();
        };
        let mut sources = vec![
            EventSource {
                fd: a.rx_evt.as_raw_fd(),
                token: RX_TOKEN,
            },
            EventSource {
                fd: a.tx_evt.as_raw_fd(),
                token: TX_TOKEN,
            },
        ];
        if a.watch_tap {
            sources.push(EventSource {
                fd: self.tap.as_raw_fd(),
                token: TAP_TOKEN,
            });
        }
        sources
    }

    fn handle_event(&mut self, token: u32) {
        let Some(Activated { queues: a, .. }) = self.common.active_mut() else {
            return;
        };
        match token {
            RX_TOKEN => {
                let _ = a.rx_evt.read();
                self.metrics.rx_queue_events.inc();
                if !a.watch_tap {
                    a.watch_tap = true;
                    self.common.set_sources_changed();
                }
                self.process_rx();
            }
            TX_TOKEN => {
                let _ = a.tx_evt.read();
                self.metrics.tx_queue_events.inc();
                // A sign of life: look at the tap again if an error had parked it.
                if !a.watch_tap {
                    a.watch_tap = true;
                    self.common.set_sources_changed();
                }
                self.process_tx();
            }
            TAP_TOKEN => {
                self.metrics.tap_events.inc();
                self.process_rx();
            }
            other => warn_limited!("virtio-net {}: unknown event token {}", self.id, other),
        }
    }

    fn sources_changed(&mut self) -> bool {
        self.common.take_sources_changed()
    }
}

impl<T: FrameIo> Metrics for Net<T> {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("rx_packets", m.rx_packets.get()),
            ("rx_bytes", m.rx_bytes.get()),
            ("tx_packets", m.tx_packets.get()),
            ("tx_bytes", m.tx_bytes.get()),
            ("rx_dropped", m.rx_dropped.get()),
            ("tx_dropped", m.tx_dropped.get()),
            ("tx_bad_headers", m.tx_bad_headers.get()),
            ("invalid_chains", m.invalid_chains.get()),
            ("tap_read_errors", m.tap_read_errors.get()),
            ("tap_write_errors", m.tap_write_errors.get()),
            ("rx_queue_events", m.rx_queue_events.get()),
            ("tx_queue_events", m.tx_queue_events.get()),
            ("tap_events", m.tap_events.get()),
        ]
    }
}

impl<T: FrameIo> VirtioDevice for Net<T> {
    fn device_type(&self) -> u32 {
        device_type::NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn avail_features(&self) -> u64 {
        let mut f = VIRTIO_F_VERSION_1 | 1 << VIRTIO_NET_F_STATUS;
        if self.mac.is_some() {
            f |= 1 << VIRTIO_NET_F_MAC;
        }
        f
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config(&self.config_bytes(), offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // The MAC is writable only with VIRTIO_NET_F_CTRL_MAC_ADDR (legacy), not offered.
        warn_limited!(
            "virtio-net {}: config write of {} bytes at {:#x}",
            self.id,
            data.len(),
            offset
        );
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        self.common.activate(ctx, |queues, acked| {
            let [rx, tx] = fixed_queues(queues)?;
            Ok(NetQueues {
                rx: rx.queue,
                rx_evt: rx.evt,
                tx: tx.queue,
                tx_evt: tx.evt,
                watch_tap: true,
                tx_offloads: Offloads::tx(acked),
            })
        })
    }

    fn reset(&mut self) {
        self.common.reset();
    }

    fn is_active(&self) -> bool {
        self.common.is_active()
    }
}

#[cfg(test)]
mod tests;
