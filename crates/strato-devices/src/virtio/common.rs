//! What every virtio device shares, as Cloud Hypervisor's `VirtioCommon` does: the
//! activation state (an enum: inactive, or active with guest memory, interrupt, acked
//! features and the device's queues), activation and reset, the queue eventfds kept
//! open after a reset, the "event sources changed" flag, and config-space reads.
//!
//! A device keeps a [`VirtioCommon`] and decides only the shape of its queues (`Q`):
//! one request queue, or virtio-net's queue pairs and control queue.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::{ActivateContext, ActivateError};
use crate::irq::VirtioInterrupt;

/// A queue the driver made ready, with the ioeventfd the guest kicks it with.
pub struct ActiveQueue {
    /// The queue's index in the device's queue list.
    pub index: usize,
    /// The queue.
    pub queue: Queue,
    /// Readable when the guest kicks the queue.
    pub evt: EventFd,
}

/// An active device's resources.
pub struct Activated<Q> {
    /// Guest memory.
    pub mem: GuestMemoryMmap,
    /// The device's interrupt.
    pub interrupt: Arc<VirtioInterrupt>,
    /// The features the driver acknowledged.
    pub acked_features: u64,
    /// The queues, in the device's own shape.
    pub queues: Q,
}

impl<Q> Activated<Q> {
    /// Whether the driver acknowledged feature `bit`.
    pub fn has_feature(&self, bit: u32) -> bool {
        bit < 64 && self.acked_features & (1 << bit) != 0
    }
}

/// A device's activation state.
pub enum DeviceState<Q> {
    /// Before DRIVER_OK, or after a reset.
    Inactive,
    /// Between DRIVER_OK and the next reset.
    Active(Activated<Q>),
}

/// A device's queues, as it keeps them while active.
pub trait QueueSet {
    /// Gives up the queues' eventfds (on reset; they stay open until the next activation
    /// so that the event loop can still deregister them).
    fn into_events(self) -> Vec<EventFd>;
}

impl<const N: usize> QueueSet for [ActiveQueue; N] {
    fn into_events(self) -> Vec<EventFd> {
        self.into_iter().map(|q| q.evt).collect()
    }
}

/// The activation state and event glue every virtio device shares.
pub struct VirtioCommon<Q> {
    state: DeviceState<Q>,
    /// Queue eventfds of the last activation, kept open after a reset so the event loop
    /// can still deregister them; dropped on the next activation.
    retired: Vec<EventFd>,
    sources_changed: bool,
}

impl<Q: QueueSet> Default for VirtioCommon<Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Q: QueueSet> VirtioCommon<Q> {
    /// An inactive device.
    pub fn new() -> Self {
        Self {
            state: DeviceState::Inactive,
            retired: Vec::new(),
            sources_changed: false,
        }
    }

    /// Activates the device: turns on EVENT_IDX on every queue if the driver acked it,
    /// lets `build` shape the queues (given them, the acked features and guest memory; it
    /// refuses a wrong set), and marks the event sources changed. On error the device
    /// stays as it was.
    pub fn activate(
        &mut self,
        ctx: ActivateContext,
        build: impl FnOnce(Vec<ActiveQueue>, u64, &GuestMemoryMmap) -> Result<Q, ActivateError>,
    ) -> Result<(), ActivateError> {
        let ActivateContext {
            mem,
            mut queues,
            acked_features,
            interrupt,
        } = ctx;
        let event_idx = acked_features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        for q in &mut queues {
            q.queue.set_event_idx(event_idx);
        }
        let queues = build(queues, acked_features, &mem)?;
        self.retired.clear();
        self.state = DeviceState::Active(Activated {
            mem,
            interrupt,
            acked_features,
            queues,
        });
        self.sources_changed = true;
        Ok(())
    }

    /// Resets the device; its queue eventfds are retired. Returns whether it was active,
    /// so the device can undo what it set up for the driver.
    pub fn reset(&mut self) -> bool {
        match std::mem::replace(&mut self.state, DeviceState::Inactive) {
            DeviceState::Active(a) => {
                self.retired.extend(a.queues.into_events());
                self.sources_changed = true;
                true
            }
            DeviceState::Inactive => false,
        }
    }

    /// Whether the device is active.
    pub fn is_active(&self) -> bool {
        matches!(self.state, DeviceState::Active(_))
    }

    /// The active resources, if the device is active.
    pub fn active(&self) -> Option<&Activated<Q>> {
        match &self.state {
            DeviceState::Active(a) => Some(a),
            DeviceState::Inactive => None,
        }
    }

    /// The active resources, if the device is active.
    pub fn active_mut(&mut self) -> Option<&mut Activated<Q>> {
        match &mut self.state {
            DeviceState::Active(a) => Some(a),
            DeviceState::Inactive => None,
        }
    }

    /// Records that the device's event sources changed (the loop re-reads them).
    pub fn set_sources_changed(&mut self) {
        self.sources_changed = true;
    }

    /// True once after the event sources changed; reading clears it.
    pub fn take_sources_changed(&mut self) -> bool {
        std::mem::take(&mut self.sources_changed)
    }

    /// How many retired eventfds are kept open.
    #[cfg(test)]
    pub fn retired(&self) -> usize {
        self.retired.len()
    }
}

/// Takes exactly `N` queues, indices `0..N`, as a single-queue-set device needs them.
pub fn fixed_queues<const N: usize>(
    queues: Vec<ActiveQueue>,
) -> Result<[ActiveQueue; N], ActivateError> {
    let got = queues.len();
    let queues: [ActiveQueue; N] = queues
        .try_into()
        .map_err(|_| ActivateError::QueueCount { expected: N, got })?;
    if let Some(q) = queues.iter().enumerate().find(|(i, q)| q.index != *i) {
        return Err(ActivateError::InvalidQueue(q.1.index));
    }
    Ok(queues)
}

/// Raises the used-ring interrupt for `queue` unless the driver suppressed it
/// (EVENT_IDX); an unreadable suppression field counts as "wants it".
pub fn signal_used(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    interrupt: &VirtioInterrupt,
) -> io::Result<()> {
    if queue.needs_notification(mem).unwrap_or(true) {
        interrupt.signal_used_queue()
    } else {
        Ok(())
    }
}

/// With EVENT_IDX, asks the driver for a kick at the next chain it publishes and says
/// whether it published more meanwhile (look at the ring again). An available index more
/// than a ring ahead of the device's is the driver's error, and the ring yields nothing: it
/// counts as "nothing more", or a device that loops on this would spin forever (found by the
/// virtio_net_tx and virtio_net_rx fuzz targets).
pub fn more_published(queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
    if !queue.event_idx_enabled() || !queue.enable_notification(mem).unwrap_or(false) {
        return false;
    }
    queue
        .avail_idx(mem, Ordering::Acquire)
        .is_ok_and(|idx| idx.0.wrapping_sub(queue.next_avail()) <= queue.size())
}

/// Copies `config[offset..]` into `data` as far as both go; the rest of `data` reads
/// zero (out-of-range reads give zeros).
pub fn read_config(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if let Some(src) = config.get(start..) {
        let n = src.len().min(data.len());
        if let (Some(dst), Some(src)) = (data.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::virtio::test_utils::{activation, mem, TestQueue};
    use crate::virtio::VIRTIO_F_VERSION_1;

    #[test]
    fn activation_builds_queues_and_reset_retires_them() {
        let m = mem(0x10_0000);
        let q = TestQueue::new(&m, 0x1000, 16);
        let mut c: VirtioCommon<[ActiveQueue; 1]> = VirtioCommon::new();
        assert!(!c.is_active());
        assert!(!c.take_sources_changed());
        // A refused queue set leaves the device inactive and the flag clear.
        let (ctx, _h) = activation(&m, vec![q.queue(), q.queue()], VIRTIO_F_VERSION_1);
        assert!(matches!(
            c.activate(ctx, |qs, _, _| fixed_queues::<1>(qs)),
            Err(ActivateError::QueueCount {
                expected: 1,
                got: 2
            })
        ));
        assert!(!c.is_active());
        assert!(!c.take_sources_changed());
        let features = VIRTIO_F_VERSION_1 | 1 << VIRTIO_RING_F_EVENT_IDX;
        let (ctx, _h) = activation(&m, vec![q.queue()], features);
        c.activate(ctx, |qs, _, _| fixed_queues::<1>(qs)).unwrap();
        assert!(c.take_sources_changed());
        assert!(!c.take_sources_changed());
        let a = c.active().unwrap();
        assert!(a.has_feature(VIRTIO_RING_F_EVENT_IDX));
        assert!(!a.has_feature(64));
        assert!(a.queues[0].queue.event_idx_enabled());
        assert!(c.reset());
        assert!(c.active().is_none());
        assert!(c.take_sources_changed());
        assert_eq!(c.retired(), 1);
        assert!(!c.reset());
        assert!(!c.take_sources_changed());
        let (ctx, _h) = activation(&m, vec![q.queue()], VIRTIO_F_VERSION_1);
        c.activate(ctx, |qs, _, _| fixed_queues::<1>(qs)).unwrap();
        assert_eq!(c.retired(), 0);
        assert!(!c.active().unwrap().queues[0].queue.event_idx_enabled());
    }

    #[test]
    fn fixed_queues_want_every_index_in_order() {
        let m = mem(0x10_0000);
        let q = TestQueue::new(&m, 0x1000, 16);
        let (ctx, _h) = activation(&m, vec![q.queue(), q.queue()], VIRTIO_F_VERSION_1);
        let mut queues = ctx.queues;
        queues[1].index = 3;
        assert!(matches!(
            fixed_queues::<2>(queues),
            Err(ActivateError::InvalidQueue(3))
        ));
    }

    #[test]
    fn config_reads_stop_at_the_end() {
        let config = [1u8, 2, 3, 4];
        let mut b = [0xffu8; 3];
        read_config(&config, 2, &mut b);
        assert_eq!(b, [3, 4, 0]);
        read_config(&config, 4, &mut b);
        assert_eq!(b, [0; 3]);
        read_config(&config, u64::MAX, &mut b);
        assert_eq!(b, [0; 3]);
    }
}
