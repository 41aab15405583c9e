//! virtio-net over a Linux tap.
//!
//! Queues come in pairs, receive then transmit (receiveq1 = 0, transmitq1 = 1, ...), with
//! the control queue after the last pair when there is one. Guest buffers hold a 12-byte
//! `virtio_net_hdr_v1` followed by the Ethernet frame; the tap uses the same header, so
//! frames move between guest memory and the tap with `readv`/`writev` and no copy of the
//! frame. The guest's TX header never reaches the tap as written: the device copies it
//! out once, checks it against the negotiated offloads and writes its own ([`header`]).
//!
//! Two kinds of device:
//! - **plain** (the default): one queue pair, no offloads, one chain per received frame.
//! - **enhanced** (EC2's `EnaSupport`): checksum and TCP segmentation offloads both ways
//!   (the tap is told which ones the guest accepts, `TUNSETOFFLOAD`), mergeable receive
//!   buffers ([`rx`]), EVENT_IDX notification suppression, and with a multiqueue tap one
//!   queue pair per tap queue, the guest choosing how many it uses through the control
//!   queue ([`ctrl`]). Tap queue `k` delivers into pair `k mod pairs-in-use`, pair `p`
//!   transmits on tap queue `p`.
//!
//! A tap is watched only while the RX queue it feeds may have buffers: when that runs
//! dry the device stops listening (level-triggered readiness would spin) and waits for
//! the guest to kick the RX queue. A tap read error parks it the same way until the
//! guest kicks either queue of the pair.

use std::os::unix::io::AsRawFd;

use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN,
    VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_ECN,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MQ,
    VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::chain::BrokenChain;
use super::common::{read_config, signal_used, Activated, VirtioCommon};
use super::{device_type, ActivateContext, ActivateError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::event::{EventHandler, EventSource};
use crate::irq::VirtioInterrupt;
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

pub mod backend;
mod bufs;
mod ctrl;
pub mod header;
mod queues;
mod ring;
mod rx;
pub mod tap;
mod tx;

pub use backend::FrameIo;
pub use header::VNET_HDR_LEN;
pub use tap::{Tap, TapError};

use header::{tun, HeaderError, Offloads};
use queues::NetQueues;

/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// Most queue pairs (one per vCPU).
pub const MAX_QUEUE_PAIRS: usize = 8;
/// Event token of the RX queue of pair 0 (queue 0); pair `p`'s is [`rx_token`]`(p)`.
pub const RX_TOKEN: u32 = 0;
/// Event token of the TX queue of pair 0 (queue 1); pair `p`'s is [`tx_token`]`(p)`.
pub const TX_TOKEN: u32 = 1;
/// Event token of the (first) tap; tap queue `k`'s is [`tap_token`]`(k)`.
pub const TAP_TOKEN: u32 = 2;
/// Event token of the control queue.
pub const CTRL_TOKEN: u32 = 3 * MAX_QUEUE_PAIRS as u32;
/// Longest frame moved, header included: 64 KiB of payload plus Ethernet and VLAN
/// headers plus the vnet header.
pub const MAX_FRAME_LEN: usize = 65562;
const ETH_HLEN: usize = 14;
/// MAC, status, max_virtqueue_pairs.
const CONFIG_LEN: usize = 10;

/// Event token of pair `pair`'s RX queue.
pub fn rx_token(pair: usize) -> u32 {
    3 * pair as u32
}

/// Event token of pair `pair`'s TX queue.
pub fn tx_token(pair: usize) -> u32 {
    3 * pair as u32 + 1
}

/// Event token of tap queue `tap`.
pub fn tap_token(tap: usize) -> u32 {
    3 * tap as u32 + 2
}

/// How to build a [`Net`].
pub struct NetConfig<T = Tap> {
    /// The interface ID (logs and metrics).
    pub id: String,
    /// The frame backends, normally taps: one, or the queues of a multiqueue tap (one
    /// queue pair each; more than one needs `enhanced`).
    pub taps: Vec<T>,
    /// The guest's MAC address; `None` lets the driver pick one.
    pub mac: Option<[u8; 6]>,
    /// Enhanced networking: offloads, mergeable receive buffers, EVENT_IDX and
    /// multiqueue. Without it, the plain device.
    pub enhanced: bool,
}

/// Errors from building a network device.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A multicast (or broadcast) MAC address.
    #[error("mac address {0:02x?} is not unicast")]
    MulticastMac([u8; 6]),
    /// No frame backend.
    #[error("no tap given")]
    NoTap,
    /// More tap queues than queue pairs a device may have.
    #[error("{0} tap queues, at most {MAX_QUEUE_PAIRS}")]
    TooManyQueues(usize),
    /// Several tap queues for a plain device, which has one queue pair.
    #[error("{0} tap queues need enhanced networking")]
    MultiqueuePlain(usize),
    /// The tap's offloads could not be turned off.
    #[error("clearing the tap's offloads: {0}")]
    Offloads(#[source] std::io::Error),
}

#[derive(Debug, Default)]
struct NetMetrics {
    rx_packets: Counter,
    rx_bytes: Counter,
    tx_packets: Counter,
    tx_bytes: Counter,
    rx_dropped: Counter,
    tx_dropped: Counter,
    rx_bad_headers: Counter,
    tx_bad_headers: Counter,
    invalid_chains: Counter,
    tap_read_errors: Counter,
    tap_write_errors: Counter,
    rx_queue_events: Counter,
    tx_queue_events: Counter,
    tap_events: Counter,
    ctrl_commands: Counter,
    ctrl_errors: Counter,
}

/// What the queue paths share: guest memory, the interrupt, counters, the name.
struct Env<'a> {
    mem: &'a GuestMemoryMmap,
    interrupt: &'a VirtioInterrupt,
    metrics: &'a NetMetrics,
    id: &'a str,
}

impl Env<'_> {
    /// Raises the used-ring interrupt for `q` unless the guest suppressed it.
    fn notify(&self, q: &mut Queue) {
        if let Err(e) = signal_used(q, self.mem, self.interrupt) {
            warn_limited!("virtio-net {}: used-ring interrupt: {}", self.id, e);
        }
    }
}

/// A virtio-net device.
pub struct Net<T: FrameIo = Tap> {
    id: String,
    taps: Vec<T>,
    mac: Option<[u8; 6]>,
    features: u64,
    queue_sizes: Vec<u16>,
    common: VirtioCommon<NetQueues>,
    /// Catches the tail of a frame that overflows the guest's RX buffers.
    overflow: Vec<u8>,
    metrics: NetMetrics,
}

/// The `TUNSETOFFLOAD` flags an enhanced device wants the tap to support.
const TAP_OFFLOADS: u32 = tun::TUN_F_CSUM | tun::TUN_F_TSO4 | tun::TUN_F_TSO6 | tun::TUN_F_TSO_ECN;

impl<T: FrameIo> Net<T> {
    /// Builds the device. An enhanced device offers the guest receive offloads only if
    /// the tap takes them.
    pub fn new(config: NetConfig<T>) -> Result<Self, NetError> {
        let NetConfig {
            id,
            mut taps,
            mac,
            enhanced,
        } = config;
        if let Some(mac) = mac {
            if mac[0] & 1 != 0 {
                return Err(NetError::MulticastMac(mac));
            }
        }
        let queues = taps.len();
        if queues == 0 {
            return Err(NetError::NoTap);
        }
        if queues > MAX_QUEUE_PAIRS {
            return Err(NetError::TooManyQueues(queues));
        }
        if queues > 1 && !enhanced {
            return Err(NetError::MultiqueuePlain(queues));
        }
        let mut features = VIRTIO_F_VERSION_1 | 1 << VIRTIO_NET_F_STATUS;
        if mac.is_some() {
            features |= 1 << VIRTIO_NET_F_MAC;
        }
        if enhanced {
            features |= 1 << VIRTIO_NET_F_CSUM
                | 1 << VIRTIO_NET_F_HOST_TSO4
                | 1 << VIRTIO_NET_F_HOST_TSO6
                | 1 << VIRTIO_NET_F_HOST_ECN
                | 1 << VIRTIO_NET_F_MRG_RXBUF
                | 1 << VIRTIO_RING_F_EVENT_IDX;
            let probe = taps
                .iter_mut()
                .try_for_each(|t| t.set_offloads(TAP_OFFLOADS));
            match probe {
                Ok(()) => {
                    features |= 1 << VIRTIO_NET_F_GUEST_CSUM
                        | 1 << VIRTIO_NET_F_GUEST_TSO4
                        | 1 << VIRTIO_NET_F_GUEST_TSO6
                        | 1 << VIRTIO_NET_F_GUEST_ECN;
                }
                Err(e) => tracing::warn!(
                    "virtio-net {}: the tap takes no receive offloads ({}); not offering them",
                    id,
                    e
                ),
            }
            for t in &mut taps {
                t.set_offloads(0).map_err(NetError::Offloads)?;
            }
            if queues > 1 {
                features |= 1 << VIRTIO_NET_F_CTRL_VQ | 1 << VIRTIO_NET_F_MQ;
            }
        }
        let mut queue_sizes = vec![QUEUE_SIZE; 2 * queues];
        if features & 1 << VIRTIO_NET_F_CTRL_VQ != 0 {
            queue_sizes.push(QUEUE_SIZE);
        }
        Ok(Self {
            id,
            taps,
            mac,
            features,
            queue_sizes,
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

    /// The frame backends, one per queue pair.
    pub fn taps(&self) -> &[T] {
        &self.taps
    }

    /// The frame backends, to script them (the fuzz harness's in-memory taps).
    #[cfg(any(test, feature = "fuzzgen"))]
    pub fn taps_mut(&mut self) -> &mut [T] {
        &mut self.taps
    }

    /// Queue pairs in use (0 while inactive).
    pub fn active_pairs(&self) -> usize {
        self.common.active().map_or(0, |a| a.queues.active_pairs)
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut c = [0u8; CONFIG_LEN];
        if let Some(mac) = self.mac {
            c[..6].copy_from_slice(&mac);
        }
        c[6..8].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        if self.features & 1 << VIRTIO_NET_F_MQ != 0 {
            // At most MAX_QUEUE_PAIRS.
            c[8..10].copy_from_slice(&(self.taps.len() as u16).to_le_bytes());
        }
        c
    }

    /// Moves frames from tap queue `tap` into the RX queue it feeds.
    fn process_rx(&mut self, tap: usize) {
        let Self {
            common,
            taps,
            overflow,
            metrics,
            id,
            ..
        } = self;
        let Some(Activated {
            mem,
            interrupt,
            queues,
            ..
        }) = common.active_mut()
        else {
            return;
        };
        let pair = queues.pair_of_tap(tap);
        let (offloads, mergeable) = (queues.rx_offloads, queues.mergeable);
        let (Some(p), Some(t)) = (queues.pairs.get_mut(pair), taps.get_mut(tap)) else {
            return;
        };
        let env = Env {
            mem,
            interrupt,
            metrics,
            id,
        };
        let rx = rx::Rx {
            offloads,
            mergeable,
            overflow,
        };
        if rx::process(&env, rx, p, t) {
            common.set_sources_changed();
        }
    }

    /// Moves frames into pair `pair`'s RX queue from every tap queue that feeds it.
    fn process_rx_pair(&mut self, pair: usize) {
        let Some(a) = self.common.active() else {
            return;
        };
        let feeding: Vec<usize> = (0..self.taps.len())
            .filter(|&k| a.queues.pair_of_tap(k) == pair)
            .collect();
        for k in feeding {
            self.process_rx(k);
        }
    }

    /// Sends every frame the guest queued on pair `pair`.
    fn process_tx(&mut self, pair: usize) {
        let Self {
            common,
            taps,
            metrics,
            id,
            ..
        } = self;
        let Some(Activated {
            mem,
            interrupt,
            queues,
            ..
        }) = common.active_mut()
        else {
            return;
        };
        let offloads = queues.tx_offloads;
        let (Some(p), Some(t)) = (queues.pairs.get_mut(pair), taps.get_mut(pair)) else {
            return;
        };
        let env = Env {
            mem,
            interrupt,
            metrics,
            id,
        };
        tx::process(&env, offloads, p, t);
    }

    fn process_ctrl(&mut self) {
        let Self {
            common,
            metrics,
            id,
            ..
        } = self;
        let Some(Activated {
            mem,
            interrupt,
            queues,
            ..
        }) = common.active_mut()
        else {
            return;
        };
        let env = Env {
            mem,
            interrupt,
            metrics,
            id,
        };
        let before = queues.active_pairs;
        if ctrl::process(&env, queues) {
            // Taps now feed other pairs: watch them all again, the loop re-registers.
            for p in &mut queues.pairs {
                p.watch_taps = true;
            }
            tracing::debug!(
                "virtio-net {}: {} queue pairs in use (was {})",
                id,
                queues.active_pairs,
                before
            );
            common.set_sources_changed();
        }
    }

    /// A kick on a pair's queue: its taps are worth watching again.
    fn rewatch(&mut self, pair: usize) {
        let Some(a) = self.common.active_mut() else {
            return;
        };
        if let Some(p) = a.queues.pairs.get_mut(pair) {
            if !p.watch_taps {
                p.watch_taps = true;
                self.common.set_sources_changed();
            }
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

impl<T: FrameIo> EventHandler for Net<T> {
    fn event_sources(&self) -> Vec<EventSource> {
        let Some(Activated { queues, .. }) = self.common.active() else {
            return Vec::new();
        };
        let mut sources = Vec::new();
        for (p, pair) in queues.pairs.iter().enumerate() {
            sources.push(EventSource {
                fd: pair.rx_evt.as_raw_fd(),
                token: rx_token(p),
            });
            sources.push(EventSource {
                fd: pair.tx_evt.as_raw_fd(),
                token: tx_token(p),
            });
        }
        for (k, tap) in self.taps.iter().enumerate() {
            let watched = queues
                .pairs
                .get(queues.pair_of_tap(k))
                .is_some_and(|p| p.watch_taps);
            if watched {
                sources.push(EventSource {
                    fd: tap.as_raw_fd(),
                    token: tap_token(k),
                });
            }
        }
        if let Some(c) = &queues.ctrl {
            sources.push(EventSource {
                fd: c.evt.as_raw_fd(),
                token: CTRL_TOKEN,
            });
        }
        sources
    }

    fn handle_event(&mut self, token: u32) {
        let Some(Activated { queues, .. }) = self.common.active() else {
            return;
        };
        if token == CTRL_TOKEN {
            if let Some(c) = &queues.ctrl {
                let _ = c.evt.read();
                self.process_ctrl();
                return;
            }
        }
        let index = (token / 3) as usize;
        match token % 3 {
            0 if index < queues.pairs.len() => {
                let _ = queues.pairs[index].rx_evt.read();
                self.metrics.rx_queue_events.inc();
                self.rewatch(index);
                self.process_rx_pair(index);
            }
            1 if index < queues.pairs.len() => {
                let _ = queues.pairs[index].tx_evt.read();
                self.metrics.tx_queue_events.inc();
                // A sign of life: look at the taps again if an error had parked them.
                self.rewatch(index);
                self.process_tx(index);
            }
            2 if index < self.taps.len() => {
                self.metrics.tap_events.inc();
                self.process_rx(index);
            }
            _ => warn_limited!("virtio-net {}: unknown event token {}", self.id, token),
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
            ("rx_bad_headers", m.rx_bad_headers.get()),
            ("tx_bad_headers", m.tx_bad_headers.get()),
            ("invalid_chains", m.invalid_chains.get()),
            ("tap_read_errors", m.tap_read_errors.get()),
            ("tap_write_errors", m.tap_write_errors.get()),
            ("rx_queue_events", m.rx_queue_events.get()),
            ("tx_queue_events", m.tx_queue_events.get()),
            ("tap_events", m.tap_events.get()),
            ("ctrl_commands", m.ctrl_commands.get()),
            ("ctrl_errors", m.ctrl_errors.get()),
        ]
    }
}

impl<T: FrameIo> VirtioDevice for Net<T> {
    fn device_type(&self) -> u32 {
        device_type::NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn avail_features(&self) -> u64 {
        self.features
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
        let max_pairs = self.taps.len();
        self.common.activate(ctx, |queues, acked, mem| {
            NetQueues::build(queues, acked, mem, max_pairs)
        })?;
        // Let the tap hand over what the guest agreed to finish.
        let flags = self
            .common
            .active()
            .map_or(0, |a| a.queues.rx_offloads.tun_flags());
        if flags != 0 {
            if let Err(e) = self.taps.iter_mut().try_for_each(|t| t.set_offloads(flags)) {
                self.reset();
                return Err(ActivateError::Backend(e));
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        let offloaded = self
            .common
            .active()
            .is_some_and(|a| a.queues.rx_offloads != Offloads::default());
        self.common.reset();
        if offloaded {
            for t in &mut self.taps {
                if let Err(e) = t.set_offloads(0) {
                    warn_limited!("virtio-net {}: clearing tap offloads: {}", self.id, e);
                }
            }
        }
    }

    fn is_active(&self) -> bool {
        self.common.is_active()
    }
}

#[cfg(test)]
mod tests;
