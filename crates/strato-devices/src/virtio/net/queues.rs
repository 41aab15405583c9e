//! The queues of an active virtio-net device: its queue pairs and control queue, placed
//! by index as virtio 1.2 section 5.1.2 lays them out.

use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MQ, VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::header::Offloads;
use super::rx::RxBuffers;
use crate::virtio::common::QueueSet;
use crate::virtio::{ActivateError, ActiveQueue};

/// One receive and one transmit queue.
pub(super) struct QueuePair {
    pub rx: Queue,
    pub rx_evt: EventFd,
    pub tx: Queue,
    pub tx_evt: EventFd,
    /// Whether the taps feeding this RX queue are watched (it may have buffers).
    pub watch_taps: bool,
    /// With mergeable buffers: RX chains taken from the ring, mapped, not yet used.
    pub rx_bufs: RxBuffers,
    /// Reused for every chain walked, so frames cost no allocation.
    pub scratch: Scratch,
    /// The RX used index at the last interrupt decision (EVENT_IDX asks about the entries
    /// since then).
    pub rx_signalled: u16,
}

/// A chain's descriptors and buffers, kept between chains for their allocations.
#[derive(Default)]
pub(super) struct Scratch {
    pub descs: Vec<Descriptor>,
    pub bufs: Vec<(GuestAddress, u32)>,
    /// A small TX frame, copied out whole.
    pub frame: Vec<u8>,
}

/// The queues of an active device and what was negotiated for them.
pub(super) struct NetQueues {
    /// The pairs the driver set up, receiveq1/transmitq1 first.
    pub pairs: Vec<QueuePair>,
    /// Pairs in use: 1 until the driver sets more through the control queue.
    pub active_pairs: usize,
    /// The control queue, when the driver negotiated one.
    pub ctrl: Option<ActiveQueue>,
    /// Whether the driver negotiated multiqueue.
    pub mq: bool,
    /// Whether RX frames may span several chains (`num_buffers`).
    pub mergeable: bool,
    /// What the host may hand the guest in RX headers.
    pub rx_offloads: Offloads,
    /// What the guest may ask of the host in TX headers.
    pub tx_offloads: Offloads,
}

impl NetQueues {
    /// Places the queues the driver made ready. `max_pairs` is how many pairs the device
    /// offers. receiveq1 and transmitq1 are required; further pairs count only as far as
    /// both halves of each are ready, in order.
    pub fn build(
        queues: Vec<ActiveQueue>,
        acked: u64,
        mem: &GuestMemoryMmap,
        max_pairs: usize,
    ) -> Result<Self, ActivateError> {
        let has = |bit: u32| acked & (1 << bit) != 0;
        let has_ctrl = has(VIRTIO_NET_F_CTRL_VQ);
        let mq = has_ctrl && has(VIRTIO_NET_F_MQ);
        let pairs_offered = if mq { max_pairs } else { 1 };
        let ctrl_index = 2 * pairs_offered;
        let got = queues.len();
        let mut halves: Vec<(Option<ActiveQueue>, Option<ActiveQueue>)> =
            (0..pairs_offered).map(|_| (None, None)).collect();
        let mut ctrl = None;
        for q in queues {
            let index = q.index;
            if index == ctrl_index && has_ctrl {
                ctrl = Some(q);
                continue;
            }
            let Some(slot) = halves.get_mut(index / 2) else {
                return Err(ActivateError::InvalidQueue(index));
            };
            if index % 2 == 0 {
                slot.0 = Some(q);
            } else {
                slot.1 = Some(q);
            }
        }
        let mut pairs = Vec::new();
        for half in halves {
            let (Some(rx), Some(tx)) = half else { break };
            let rx_signalled = rx.queue.next_used();
            pairs.push(QueuePair {
                rx_signalled,
                rx: rx.queue,
                rx_evt: rx.evt,
                tx: tx.queue,
                tx_evt: tx.evt,
                watch_taps: true,
                rx_bufs: RxBuffers::new(mem),
                scratch: Scratch::default(),
            });
        }
        if pairs.is_empty() {
            return Err(ActivateError::QueueCount { expected: 2, got });
        }
        Ok(Self {
            pairs,
            active_pairs: 1,
            ctrl,
            mq,
            mergeable: has(VIRTIO_NET_F_MRG_RXBUF),
            rx_offloads: Offloads::rx(acked),
            tx_offloads: Offloads::tx(acked),
        })
    }

    /// The pair whose RX queue frames from tap `tap` go to: taps beyond the pairs in use
    /// share them, so a frame the kernel queued on any tap queue reaches the guest.
    pub fn pair_of_tap(&self, tap: usize) -> usize {
        tap % self.active_pairs.max(1)
    }
}

impl QueueSet for NetQueues {
    fn into_events(self) -> Vec<EventFd> {
        let mut evts = Vec::new();
        for p in self.pairs {
            evts.push(p.rx_evt);
            evts.push(p.tx_evt);
        }
        evts.extend(self.ctrl.map(|c| c.evt));
        evts
    }
}
