//! The receive path: frames from a tap into a pair's RX queue.
//!
//! Without mergeable buffers every frame goes into one chain (the tap reads straight into
//! its buffers, plus a host spill buffer that catches the tail of a frame too big for
//! them). With mergeable buffers (`VIRTIO_NET_F_MRG_RXBUF`) a frame may span several
//! chains: the device keeps the chains it took from the ring mapped in an [`IovQueue`],
//! reads each frame into as many of them as it needs, and tells the guest how many in
//! `num_buffers`. It reads the tap only once the chains it holds take a largest frame (or
//! the guest has handed over its whole ring), so a large frame is not dropped for want
//! of buffers the guest was about to add. A largest frame is 64 KiB when the guest takes
//! segmentation offload, a 9216-byte jumbo frame otherwise.
//!
//! Both ways read heads and write used entries through an [`RxRing`] mapped once per
//! batch; the used index is published every [`PUBLISH_BATCH`] entries at a frame
//! boundary and when the batch ends, and the interrupt is decided once, after that.

use std::collections::VecDeque;
use std::io;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::backend::FrameIo;
use super::bufs::{read_at, write_at};
use super::header::{rx_header, Offloads, RawHeader, VNET_HDR_LEN};
use super::queues::{QueuePair, Scratch};
use super::ring::{RxRing, PUBLISH_BATCH};
use super::{ChainError, Env, ETH_HLEN, MAX_FRAME_LEN};
use crate::log::warn_limited;
use crate::virtio::chain::DescTable;
use crate::virtio::common::more_published;
use crate::virtio::iovec::{IoVecs, IovQueue};

/// The largest MTU a guest without segmentation offload is expected to use.
const MAX_JUMBO_MTU: usize = 9216;
const VLAN_HLEN: usize = 4;

/// RX chains held for mergeable buffers, oldest first, with their mapped buffers.
pub(super) struct RxBuffers {
    iovs: IovQueue,
    chains: VecDeque<HeldChain>,
    /// Descriptors the held chains take.
    descs: usize,
}

struct HeldChain {
    head: u16,
    /// Bytes its buffers hold.
    len: usize,
    /// Descriptors it is made of.
    descs: usize,
}

impl RxBuffers {
    /// None held yet.
    pub fn new(mem: &GuestMemoryMmap) -> Self {
        Self {
            iovs: IovQueue::new(mem),
            chains: VecDeque::new(),
            descs: 0,
        }
    }

    /// Bytes held.
    fn len(&self) -> usize {
        self.iovs.len()
    }
}

/// What the receive path needs besides the pair and the tap.
pub(super) struct Rx<'a> {
    pub offloads: Offloads,
    pub mergeable: bool,
    /// Catches the tail of a frame that overflows the guest's buffers.
    pub overflow: &'a mut [u8],
}

/// Moves frames from `tap` into `pair`'s RX queue until either runs out. Returns true if
/// the pair stopped (or started) watching its taps.
pub(super) fn process<T: FrameIo>(
    env: &Env<'_>,
    rx: Rx<'_>,
    pair: &mut QueuePair,
    tap: &mut T,
) -> bool {
    let was_watching = pair.watch_taps;
    let mut ring = RxRing::new(env.mem, &pair.rx);
    if rx.mergeable {
        receive_merged(env, rx, pair, &mut ring, tap);
    } else {
        receive_single(env, rx, pair, &mut ring, tap);
    }
    ring.publish(&pair.rx);
    if ring.needs_interrupt(&pair.rx, &mut pair.rx_signalled) {
        if let Err(e) = env.interrupt.signal_used_queue() {
            warn_limited!("virtio-net {}: used-ring interrupt: {}", env.id, e);
        }
    }
    was_watching != pair.watch_taps
}

/// The next available head, reading the driver's available index again when the heads
/// known are used up.
fn next_head(env: &Env<'_>, ring: &mut RxRing<'_>, q: &mut Queue) -> Option<u16> {
    if let Some(head) = ring.pop_head(q) {
        return Some(head);
    }
    match ring.refresh(q) {
        Ok(0) => None,
        Ok(_) => ring.pop_head(q),
        Err(e) => {
            warn_limited!("virtio-net {}: reading the RX ring: {}", env.id, e);
            None
        }
    }
}

/// Writes a used entry for `head`, published with the batch.
fn give_back(env: &Env<'_>, ring: &mut RxRing<'_>, q: &mut Queue, head: u16, len: u32) {
    if !ring.add_used(q, head, len) {
        warn_limited!(
            "virtio-net {}: cannot return RX descriptor {}",
            env.id,
            head
        );
    }
}

/// Publishes the used entries of the frames delivered so far once there are enough of
/// them: a guest polling the ring sees frames before the batch ends, and never part of
/// a frame (its `num_buffers` entries appear together).
fn publish_some(ring: &mut RxRing<'_>, q: &Queue) {
    if ring.unpublished(q) >= PUBLISH_BATCH {
        ring.publish(q);
    }
}

/// Whether the guest added buffers since the device last looked, asking for a kick when
/// it next does (EVENT_IDX: the driver kicks only when told where to).
fn more_buffers(env: &Env<'_>, q: &mut Queue) -> bool {
    more_published(q, env.mem)
}

/// One chain per frame.
fn receive_single<T: FrameIo>(
    env: &Env<'_>,
    rx: Rx<'_>,
    pair: &mut QueuePair,
    ring: &mut RxRing<'_>,
    tap: &mut T,
) {
    let Env {
        mem, metrics, id, ..
    } = *env;
    let table = DescTable::new(mem, &pair.rx);
    loop {
        publish_some(ring, &pair.rx);
        let Some(head) = next_head(env, ring, &mut pair.rx) else {
            if more_buffers(env, &mut pair.rx) {
                continue;
            }
            // Out of buffers: stop watching the taps until the guest adds some.
            pair.watch_taps = false;
            break;
        };
        let Scratch { descs, bufs, .. } = &mut pair.scratch;
        let walked = table.collect_into(head, descs).map_err(ChainError::from);
        if let Err(why) = walked.and_then(|()| rx_buffers(descs, bufs)) {
            metrics.invalid_chains.inc();
            warn_limited!("virtio-net {}: invalid RX chain {}: {}", id, head, why);
            give_back(env, ring, &mut pair.rx, head, 0);
            continue;
        }
        let capacity = bufs.iter().map(|&(_, len)| len as usize).sum::<usize>();
        let mut iovs = match IoVecs::new(mem, bufs.iter().copied()) {
            Ok(iovs) => iovs,
            Err(e) => {
                metrics.invalid_chains.inc();
                warn_limited!("virtio-net {}: RX chain {} outside memory: {}", id, head, e);
                give_back(env, ring, &mut pair.rx, head, 0);
                continue;
            }
        };
        // Room for the tail of a frame too big for the buffers, so its length shows.
        if capacity < MAX_FRAME_LEN {
            iovs.push_host_buffer(&mut *rx.overflow);
        }
        let read = tap.read_frame(&iovs);
        drop(iovs);
        match read {
            Ok(n) if n > capacity => {
                // Does not fit: drop the frame, keep the buffers for the next one.
                metrics.rx_dropped.inc();
                warn_limited!(
                    "virtio-net {}: dropped a {}-byte frame (buffers: {})",
                    id,
                    n,
                    capacity
                );
                RxRing::unpop(&mut pair.rx);
            }
            Ok(n) if n >= VNET_HDR_LEN + ETH_HLEN => {
                if finish_header(env, HeaderAt::Chain(&pair.scratch.bufs), 1, rx.offloads) {
                    metrics.rx_packets.inc();
                    metrics.rx_bytes.add((n - VNET_HDR_LEN) as u64);
                    // n <= capacity, the sum of u32 lengths of at most QUEUE_SIZE buffers.
                    let len = u32::try_from(n).unwrap_or(0);
                    give_back(env, ring, &mut pair.rx, head, len);
                } else {
                    RxRing::unpop(&mut pair.rx);
                }
            }
            Ok(n) => {
                metrics.rx_dropped.inc();
                warn_limited!("virtio-net {}: dropped a runt frame of {} bytes", id, n);
                RxRing::unpop(&mut pair.rx);
                if n == 0 {
                    break;
                }
            }
            Err(e) => {
                RxRing::unpop(&mut pair.rx);
                if !read_error(env, e, pair) {
                    break;
                }
            }
        }
    }
}

/// Frames over as many chains as they need.
fn receive_merged<T: FrameIo>(
    env: &Env<'_>,
    rx: Rx<'_>,
    pair: &mut QueuePair,
    ring: &mut RxRing<'_>,
    tap: &mut T,
) {
    let Env { metrics, id, .. } = *env;
    loop {
        publish_some(ring, &pair.rx);
        let room = largest_frame(rx.offloads);
        take_chains(env, pair, ring, room);
        let held = &mut pair.rx_bufs;
        let whole_ring = held.descs >= usize::from(pair.rx.size());
        if held.chains.is_empty() || (held.len() < room && !whole_ring) {
            if more_buffers(env, &mut pair.rx) {
                continue;
            }
            pair.watch_taps = false;
            break;
        }
        let capacity = held.len();
        let spill = if capacity < MAX_FRAME_LEN {
            &mut *rx.overflow
        } else {
            &mut []
        };
        let read = held.iovs.with_spill(spill, |iovs| tap.read_frame(iovs));
        match read {
            Ok(n) if n > capacity => {
                metrics.rx_dropped.inc();
                warn_limited!(
                    "virtio-net {}: dropped a {}-byte frame (buffers: {})",
                    id,
                    n,
                    capacity
                );
            }
            Ok(n) if n >= VNET_HDR_LEN + ETH_HLEN => {
                deliver_merged(env, rx.offloads, pair, ring, n);
            }
            Ok(n) => {
                metrics.rx_dropped.inc();
                warn_limited!("virtio-net {}: dropped a runt frame of {} bytes", id, n);
                if n == 0 {
                    break;
                }
            }
            Err(e) => {
                if !read_error(env, e, pair) {
                    break;
                }
            }
        }
    }
}

/// The longest frame (vnet header included) the tap may hand over.
fn largest_frame(offloads: Offloads) -> usize {
    if offloads.gso() {
        MAX_FRAME_LEN
    } else {
        VNET_HDR_LEN + ETH_HLEN + VLAN_HLEN + MAX_JUMBO_MTU
    }
}

/// Takes chains from the ring until those held take `room` bytes. Broken chains are
/// returned (empty) as they are found.
fn take_chains(env: &Env<'_>, pair: &mut QueuePair, ring: &mut RxRing<'_>, room: usize) {
    let Env {
        mem, metrics, id, ..
    } = *env;
    let QueuePair {
        rx,
        rx_bufs: held,
        scratch: Scratch { descs, bufs, .. },
        ..
    } = pair;
    if held.len() >= room {
        return;
    }
    let table = DescTable::new(mem, rx);
    while held.len() < room {
        let Some(head) = next_head(env, ring, rx) else {
            break;
        };
        let walked = table.collect_into(head, descs).map_err(ChainError::from);
        if let Err(why) = walked.and_then(|()| rx_buffers(descs, bufs)) {
            metrics.invalid_chains.inc();
            warn_limited!("virtio-net {}: invalid RX chain {}: {}", id, head, why);
            give_back(env, ring, rx, head, 0);
            continue;
        }
        let len = bufs.iter().map(|&(_, len)| len as usize).sum::<usize>();
        match held.iovs.push_chain(bufs) {
            Ok(true) => {
                held.descs += descs.len();
                held.chains.push_back(HeldChain {
                    head,
                    len,
                    descs: descs.len(),
                });
            }
            Ok(false) => {
                // As many buffers as one read takes: leave this chain for later.
                RxRing::unpop(rx);
                break;
            }
            Err(e) => {
                metrics.invalid_chains.inc();
                warn_limited!("virtio-net {}: RX chain {} outside memory: {}", id, head, e);
                give_back(env, ring, rx, head, 0);
            }
        }
    }
}

/// Hands a frame of `n` bytes (header included), read into the held chains, to the
/// guest: one used entry per chain it filled (published with the batch).
fn deliver_merged(
    env: &Env<'_>,
    offloads: Offloads,
    pair: &mut QueuePair,
    ring: &mut RxRing<'_>,
    n: usize,
) {
    let metrics = env.metrics;
    let held = &mut pair.rx_bufs;
    let mut count = 0usize;
    let mut left = n;
    for chain in &held.chains {
        count += 1;
        left = left.saturating_sub(chain.len);
        if left == 0 {
            break;
        }
    }
    // n <= the bytes held, in at most a queue's worth of chains.
    let num_buffers = u16::try_from(count).unwrap_or(u16::MAX);
    if !finish_header(env, HeaderAt::Held(&held.iovs), num_buffers, offloads) {
        return;
    }
    metrics.rx_packets.inc();
    metrics.rx_bytes.add((n - VNET_HDR_LEN) as u64);
    let mut left = n;
    let mut bytes = 0usize;
    for _ in 0..count {
        let Some(chain) = held.chains.pop_front() else {
            break;
        };
        let take = left.min(chain.len);
        left -= take;
        bytes += chain.len;
        held.descs -= chain.descs;
        // take <= n <= MAX_FRAME_LEN.
        give_back(env, ring, &mut pair.rx, chain.head, take as u32);
    }
    held.iovs.pop_front(bytes);
}

/// Where a received frame's header lies.
enum HeaderAt<'a> {
    /// In the buffers of its chain.
    Chain(&'a [(GuestAddress, u32)]),
    /// At the front of the held mergeable buffers.
    Held(&'a IovQueue),
}

/// Replaces the header the tap wrote with the one the guest may see. False (the frame
/// is dropped) if the tap handed over work the guest did not negotiate.
fn finish_header(env: &Env<'_>, at: HeaderAt<'_>, num_buffers: u16, off: Offloads) -> bool {
    let mut raw: RawHeader = [0; VNET_HDR_LEN];
    let read = match at {
        HeaderAt::Chain(bufs) => read_at(env.mem, bufs, 0, &mut raw),
        HeaderAt::Held(q) => q.read_front(&mut raw),
    };
    let checked = if read {
        rx_header(&raw, num_buffers, off).map_err(ChainError::Header)
    } else {
        Err(ChainError::Memory)
    };
    match checked {
        Ok(h) => {
            match at {
                HeaderAt::Chain(bufs) => write_at(env.mem, bufs, 0, &h),
                HeaderAt::Held(q) => {
                    q.write_front(&h);
                }
            }
            true
        }
        Err(why) => {
            env.metrics.rx_bad_headers.inc();
            env.metrics.rx_dropped.inc();
            warn_limited!("virtio-net {}: dropped an RX frame: {}", env.id, why);
            false
        }
    }
}

/// Handles a failed tap read; true to go on reading.
fn read_error(env: &Env<'_>, e: io::Error, pair: &mut QueuePair) -> bool {
    match e.kind() {
        io::ErrorKind::WouldBlock => false,
        io::ErrorKind::Interrupted => true,
        _ => {
            // A tap in error stays readable: stop watching it (or the loop spins) until
            // the guest next kicks a queue.
            env.metrics.tap_read_errors.inc();
            warn_limited!("virtio-net {}: reading the tap: {}", env.id, e);
            pair.watch_taps = false;
            false
        }
    }
}

/// The writable buffers of an RX chain, into `bufs`.
fn rx_buffers(descs: &[Descriptor], bufs: &mut Vec<(GuestAddress, u32)>) -> Result<(), ChainError> {
    bufs.clear();
    if descs.iter().any(|d| !d.is_write_only()) {
        return Err(ChainError::Direction);
    }
    bufs.extend(descs.iter().map(|d| (d.addr(), d.len())));
    let capacity = bufs.iter().map(|&(_, len)| u64::from(len)).sum::<u64>();
    if capacity < (VNET_HDR_LEN + ETH_HLEN) as u64 {
        return Err(ChainError::TooShort(capacity as usize));
    }
    Ok(())
}
