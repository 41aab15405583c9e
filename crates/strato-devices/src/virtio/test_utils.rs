//! A minimal driver side for device tests: writes descriptor chains into guest memory
//! and reads back the used ring.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::ActivateContext;
use crate::irq::{CountingTrigger, VirtioInterrupt};

/// Device-writable descriptor flag.
pub const W: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
/// Next-descriptor flag.
pub const N: u16 = VRING_DESC_F_NEXT as u16;

/// Guest memory of `size` bytes at 0.
pub fn mem(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).unwrap()
}

/// The driver's view of one queue.
pub struct TestQueue<'a> {
    vq: MockSplitQueue<'a, GuestMemoryMmap>,
    size: u16,
    next_desc: u16,
    avail_idx: u16,
}

impl<'a> TestQueue<'a> {
    /// A queue of `size` entries with its rings at `base`.
    pub fn new(mem: &'a GuestMemoryMmap, base: u64, size: u16) -> Self {
        Self {
            vq: MockSplitQueue::create(mem, GuestAddress(base), size),
            size,
            next_desc: 0,
            avail_idx: 0,
        }
    }

    /// The device's queue, as the transport would hand it over.
    pub fn queue(&self) -> Queue {
        self.vq.create_queue().unwrap()
    }

    /// Adds a chain of (addr, len, flags); NEXT links are filled in. Returns the head.
    pub fn add(&mut self, descs: &[(u64, u32, u16)]) -> u16 {
        let head = self.next_desc;
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let idx = (head + i as u16) % self.size;
                let next = (idx + 1) % self.size;
                let flags = if i + 1 == descs.len() {
                    flags & !N
                } else {
                    flags | N
                };
                RawDescriptor::from(Descriptor::new(addr, len, flags, next))
            })
            .collect();
        self.add_raw_at(head, &raw);
        self.next_desc = (head + descs.len() as u16) % self.size;
        head
    }

    /// Writes raw descriptors at `head..` as they are, and offers `head`.
    pub fn add_raw_at(&mut self, head: u16, raw: &[RawDescriptor]) {
        for (i, d) in raw.iter().enumerate() {
            self.vq
                .desc_table()
                .store((head + i as u16) % self.size, *d)
                .unwrap();
        }
        self.offer(head);
    }

    /// Puts `head` in the available ring.
    pub fn offer(&mut self, head: u16) {
        let slot = usize::from(self.avail_idx % self.size);
        self.vq.avail().ring().ref_at(slot).unwrap().store(head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.vq.avail().idx().store(self.avail_idx);
    }

    /// Sets the available index directly (hostile drivers).
    pub fn set_avail_idx(&mut self, idx: u16) {
        self.vq.avail().idx().store(idx);
    }

    /// Entries the device has returned.
    pub fn used_idx(&self) -> u16 {
        self.vq.used().idx().load()
    }

    /// The `i`-th used entry: (head, length).
    pub fn used(&self, i: u16) -> (u32, u32) {
        let e = self
            .vq
            .used()
            .ring()
            .ref_at(usize::from(i % self.size))
            .unwrap()
            .load();
        (e.id(), e.len())
    }
}

/// What a test keeps after handing an activation context to a device.
pub struct Handles {
    /// The queue EventFds (the transport's side).
    pub evts: Vec<EventFd>,
    /// Counts interrupts.
    pub irq: Arc<CountingTrigger>,
    /// The interrupt status register.
    pub interrupt: Arc<VirtioInterrupt>,
}

/// Builds an activation context for `queues`.
pub fn activation(
    mem: &GuestMemoryMmap,
    queues: Vec<Queue>,
    features: u64,
) -> (ActivateContext, Handles) {
    let irq = Arc::new(CountingTrigger::default());
    let interrupt = Arc::new(VirtioInterrupt::new(irq.clone()));
    let mut evts = Vec::new();
    let mut pairs = Vec::new();
    for q in queues {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        pairs.push((q, evt.try_clone().unwrap()));
        evts.push(evt);
    }
    let ctx = ActivateContext {
        mem: mem.clone(),
        queues: pairs,
        acked_features: features,
        interrupt: interrupt.clone(),
    };
    (
        ctx,
        Handles {
            evts,
            irq,
            interrupt,
        },
    )
}

/// Looks up a counter by name.
pub fn counter(m: &dyn crate::metrics::Metrics, name: &str) -> u64 {
    m.counters()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .unwrap()
}
