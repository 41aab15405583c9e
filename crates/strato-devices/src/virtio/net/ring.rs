//! The RX queue's split rings, looked up in guest memory once per batch of frames.
//!
//! `virtio_queue::Queue` finds the guest memory region of every available entry it
//! reads and of every used entry it writes, and stores the used index after each entry
//! (`add_used`). A 64 KiB frame in 4 KiB mergeable buffers is 17 chains, so 17 avail
//! reads, 17 used entries and 17 index stores, each through a region lookup: measured
//! with `perf` on the `net_throughput` example, this was a quarter of the device's
//! time beside the tap read itself. [`RxRing`] maps the available and used rings once
//! when a batch starts, reads heads and writes used entries through those mappings, and
//! publishes the used index once per frame group ([`PUBLISH_BATCH`] entries) and at the
//! end of the batch, before the interrupt decision.
//!
//! The queue keeps its indices (`next_avail`, `next_used`): the ring reads and updates
//! them, so the queue's own methods (`enable_notification`, `go_to_previous_position`)
//! still see where the device is. Because the used index is published here and not by
//! `add_used`, the queue's EVENT_IDX bookkeeping (`needs_notification`, which counts
//! `add_used` calls) does not apply: [`RxRing::needs_interrupt`] makes the same
//! decision from the used index at the previous decision, which the pair keeps.

use std::num::Wrapping;
use std::sync::atomic::{fence, Ordering};

use virtio_queue::{Queue, QueueT};
use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileMemory, VolatileSlice,
};

/// Used entries written before the used index is published mid-batch. A guest polling
/// the ring (NAPI on another vCPU) sees frames at least this often; vhost-net batches 64
/// too.
pub(super) const PUBLISH_BATCH: u16 = 64;

/// `flags` and `idx` in front of both rings.
const RING_HEADER: usize = 4;
const AVAIL_ENTRY: usize = 2;
const USED_ENTRY: usize = 8;
/// The trailing `used_event` / `avail_event` field.
const EVENT_FIELD: usize = 2;

/// Why the available ring yields nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum RingError {
    /// The available or used ring is not (wholly) in guest memory, or misaligned.
    #[error("the rings are not in guest memory")]
    Unmapped,
    /// The driver's available index is more than a ring ahead of the device.
    #[error("available index {avail} is more than {size} ahead of {next}")]
    AvailIndex {
        /// The driver's index.
        avail: u16,
        /// Where the device is.
        next: u16,
        /// The queue size.
        size: u16,
    },
}

/// One batch's view of an RX queue's available and used rings.
pub(super) struct RxRing<'m> {
    avail: Option<VolatileSlice<'m>>,
    used: Option<VolatileSlice<'m>>,
    size: u16,
    /// The driver's available index as last read.
    avail_idx: Wrapping<u16>,
    /// The used index the guest last saw (the queue's `next_used` once published).
    published: Wrapping<u16>,
}

impl<'m> RxRing<'m> {
    /// Maps `q`'s rings. A ring outside guest memory maps as nothing: heads then read as
    /// none and used entries go nowhere (as the queue's own accessors would fail), and
    /// the guest sees a dead queue, not a device error.
    pub fn new(mem: &'m GuestMemoryMmap, q: &Queue) -> Self {
        let size = q.size();
        let n = usize::from(size);
        let map = |addr: u64, len: usize| mem.get_slice(GuestAddress(addr), len).ok();
        let avail = map(q.avail_ring(), RING_HEADER + AVAIL_ENTRY * n + EVENT_FIELD);
        let used = map(q.used_ring(), RING_HEADER + USED_ENTRY * n + EVENT_FIELD);
        let next = Wrapping(q.next_avail());
        Self {
            avail,
            used,
            size,
            avail_idx: next,
            published: Wrapping(q.next_used()),
        }
    }

    /// Reads the driver's available index (acquire: the entries before it are then
    /// visible) and returns how many chains are available. Fails, taking nothing, if the
    /// index is more than a ring ahead (the driver's error: `Queue::iter` refuses it too).
    pub fn refresh(&mut self, q: &Queue) -> Result<u16, RingError> {
        let avail = self.avail.as_ref().ok_or(RingError::Unmapped)?;
        let idx: u16 = avail
            .load(2, Ordering::Acquire)
            .map_err(|_| RingError::Unmapped)?;
        let idx = Wrapping(u16::from_le(idx));
        let next = Wrapping(q.next_avail());
        let pending = (idx - next).0;
        if pending > self.size {
            return Err(RingError::AvailIndex {
                avail: idx.0,
                next: next.0,
                size: self.size,
            });
        }
        self.avail_idx = idx;
        Ok(pending)
    }

    /// Takes the next available head (as of the last [`RxRing::refresh`]), moving the
    /// queue's `next_avail` past it. The head is the guest's word: it is checked when its
    /// chain is walked.
    pub fn pop_head(&mut self, q: &mut Queue) -> Option<u16> {
        let next = Wrapping(q.next_avail());
        if next == self.avail_idx || self.size == 0 {
            return None;
        }
        let slot = usize::from(next.0 % self.size);
        // Relaxed: `refresh`'s acquire load of the index ordered this read after it.
        let head: u16 = self
            .avail
            .as_ref()?
            .load(RING_HEADER + AVAIL_ENTRY * slot, Ordering::Relaxed)
            .ok()?;
        q.set_next_avail((next + Wrapping(1)).0);
        Some(u16::from_le(head))
    }

    /// Gives the last popped head back (it is read again next time).
    pub fn unpop(q: &mut Queue) {
        q.set_next_avail(q.next_avail().wrapping_sub(1));
    }

    /// Writes a used entry (not yet published). False, writing nothing, for a head past
    /// the ring (the guest's bad head, already refused) or an unmapped ring.
    pub fn add_used(&mut self, q: &mut Queue, head: u16, len: u32) -> bool {
        if head >= self.size {
            return false;
        }
        let Some(used) = &self.used else {
            return false;
        };
        let next = q.next_used();
        let slot = usize::from(next % self.size);
        let elem = u64::from(head) | u64::from(len) << 32;
        // One 8-byte volatile store (`write_obj` goes through a memcpy call); the entry
        // is only 4-aligned, which the unaligned store allows.
        match used.get_ref::<u64>(RING_HEADER + USED_ENTRY * slot) {
            Ok(r) => r.store(elem.to_le()),
            Err(_) => return false,
        }
        q.set_next_used(next.wrapping_add(1));
        true
    }

    /// Used entries written but not published.
    pub fn unpublished(&self, q: &Queue) -> u16 {
        (Wrapping(q.next_used()) - self.published).0
    }

    /// Publishes the used entries written so far (release: the guest sees the entries and
    /// the buffers' bytes before the index).
    pub fn publish(&mut self, q: &Queue) {
        let next = Wrapping(q.next_used());
        if next == self.published {
            return;
        }
        if let Some(used) = &self.used {
            // The used ring is 4-aligned (the queue refuses other addresses), so `idx`
            // is an aligned u16 and the store cannot fail; if it did the guest would
            // simply not see the entries.
            let _ = used.store(next.0.to_le(), 2, Ordering::Release);
        }
        self.published = next;
    }

    /// Whether the guest wants an interrupt for the entries published since the last
    /// decision, which was made at used index `*last` (updated here). Without EVENT_IDX,
    /// always (as `Queue::needs_notification`: the `NO_INTERRUPT` flag is not honoured).
    /// With it, when the driver's `used_event` lies in `[last, now)`, virtio 1.2 2.7.10.
    pub fn needs_interrupt(&self, q: &Queue, last: &mut u16) -> bool {
        let now = self.published;
        let old = Wrapping(*last);
        *last = now.0;
        if now == old {
            return false;
        }
        if !q.event_idx_enabled() {
            return true;
        }
        // The index store must be visible before `used_event` is read, or a driver that
        // just moved `used_event` (and then checks the used index) and this device could
        // each miss the other's update.
        fence(Ordering::SeqCst);
        let at = RING_HEADER + AVAIL_ENTRY * usize::from(self.size);
        let used_event = match self
            .avail
            .as_ref()
            .map(|a| a.load::<u16>(at, Ordering::Relaxed))
        {
            Some(Ok(e)) => Wrapping(u16::from_le(e)),
            // Unreadable: interrupt rather than risk a guest waiting forever.
            _ => return true,
        };
        now - used_event - Wrapping(1) < now - old
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::virtio::test_utils::{mem, TestQueue, W};

    #[test]
    fn pops_heads_and_publishes_used_entries_once() {
        let m = mem(0x10_0000);
        let mut t = TestQueue::new(&m, 0x1000, 8);
        for i in 0..3u64 {
            t.add(&[(0x20000 + 0x1000 * i, 0x100, W)]);
        }
        let mut q = t.queue();
        let mut ring = RxRing::new(&m, &q);
        assert_eq!(ring.refresh(&q), Ok(3));
        let a = ring.pop_head(&mut q).unwrap();
        let b = ring.pop_head(&mut q).unwrap();
        assert_eq!((a, b), (0, 1));
        RxRing::unpop(&mut q);
        assert_eq!(ring.pop_head(&mut q), Some(1));
        assert_eq!(ring.pop_head(&mut q), Some(2));
        assert_eq!(ring.pop_head(&mut q), None);
        assert!(ring.add_used(&mut q, 0, 10));
        assert!(ring.add_used(&mut q, 1, 20));
        // A head past the ring is refused, and nothing moves.
        assert!(!ring.add_used(&mut q, 8, 0));
        assert_eq!(ring.unpublished(&q), 2);
        // The entries are written, the index is not, until published.
        assert_eq!(t.used_idx(), 0);
        assert_eq!(t.used(1), (1, 20));
        ring.publish(&q);
        assert_eq!(t.used_idx(), 2);
        assert_eq!(ring.unpublished(&q), 0);
        assert_eq!(q.next_used(), 2);
    }

    #[test]
    fn interrupt_decisions_wrap_with_the_used_index() {
        let m = mem(0x10_0000);
        let mut t = TestQueue::new(&m, 0x1000, 8);
        let mut q = t.queue();
        q.set_event_idx(true);
        q.set_next_used(65534);
        let mut last = 65534;
        let mut ring = RxRing::new(&m, &q);
        // The driver wants an interrupt after entry 65535; the batch runs past the wrap.
        t.set_used_event(65535);
        for head in 0..3 {
            assert!(ring.add_used(&mut q, head, 1));
        }
        ring.publish(&q);
        assert_eq!(t.used_idx(), 1);
        assert!(ring.needs_interrupt(&q, &mut last));
        assert_eq!(last, 1);
        // Nothing new: no interrupt. New entries, but used_event behind them: none either.
        assert!(!ring.needs_interrupt(&q, &mut last));
        assert!(ring.add_used(&mut q, 3, 1));
        ring.publish(&q);
        assert!(!ring.needs_interrupt(&q, &mut last));
        // used_event at the entry just used.
        t.set_used_event(2);
        assert!(ring.add_used(&mut q, 4, 1));
        ring.publish(&q);
        assert!(ring.needs_interrupt(&q, &mut last));
        // Without EVENT_IDX, any new entry interrupts.
        q.set_event_idx(false);
        assert!(ring.add_used(&mut q, 5, 1));
        ring.publish(&q);
        assert!(ring.needs_interrupt(&q, &mut last));
        assert!(!ring.needs_interrupt(&q, &mut last));
    }

    #[test]
    fn refuses_an_available_index_more_than_a_ring_ahead() {
        let m = mem(0x10_0000);
        let mut t = TestQueue::new(&m, 0x1000, 8);
        let q = t.queue();
        t.set_avail_idx(9);
        let mut ring = RxRing::new(&m, &q);
        assert!(matches!(
            ring.refresh(&q),
            Err(RingError::AvailIndex { avail: 9, .. })
        ));
    }

    #[test]
    fn rings_outside_memory_yield_nothing() {
        let m = mem(0x10_0000);
        let t = TestQueue::new(&m, 0x1000, 8);
        let mut q = t.queue();
        q.try_set_used_ring_address(GuestAddress(0x20_0000))
            .unwrap();
        q.try_set_avail_ring_address(GuestAddress(0x20_0000))
            .unwrap();
        let mut ring = RxRing::new(&m, &q);
        assert_eq!(ring.refresh(&q), Err(RingError::Unmapped));
        assert_eq!(ring.pop_head(&mut q), None);
        assert!(!ring.add_used(&mut q, 0, 1));
        ring.publish(&q);
        let mut last = 0;
        assert!(!ring.needs_interrupt(&q, &mut last));
    }
}
