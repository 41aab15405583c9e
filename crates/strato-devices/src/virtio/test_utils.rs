//! A minimal driver side for device tests: writes descriptor chains into guest memory
//! and reads back the used ring.
//!
//! (virtio-queue 0.18's `MockSplitQueue::create` places the used ring over the second
//! half of the available ring, which breaks as soon as more than half the ring has been
//! offered, so the rings are laid out here by hand.)

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{ActivateContext, ActiveQueue};
use crate::irq::{CountingTrigger, VirtioInterrupt};

/// Device-writable descriptor flag.
pub const W: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
/// Next-descriptor flag.
pub const N: u16 = VRING_DESC_F_NEXT as u16;

/// Guest memory of `size` bytes at 0.
pub fn mem(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).unwrap()
}

/// The driver's view of one split queue.
pub struct TestQueue<'a> {
    mem: &'a GuestMemoryMmap,
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl<'a> TestQueue<'a> {
    /// A queue of `size` entries with its rings from `base` on (descriptor table, then
    /// the available ring, then the used ring, each 4 KiB aligned).
    pub fn new(mem: &'a GuestMemoryMmap, base: u64, size: u16) -> Self {
        let align = |x: u64| (x + 0xfff) & !0xfff;
        let desc = base;
        let avail = align(desc + 16 * u64::from(size));
        let used = align(avail + 6 + 2 * u64::from(size));
        // Zero the rings' headers.
        mem.write_obj(0u32, GuestAddress(avail)).unwrap();
        mem.write_obj(0u32, GuestAddress(used)).unwrap();
        Self {
            mem,
            size,
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
        }
    }

    /// Addresses of the descriptor table, available ring and used ring.
    pub fn addrs(&self) -> (u64, u64, u64) {
        (self.desc, self.avail, self.used)
    }

    /// The device's queue, as the transport would hand it over.
    pub fn queue(&self) -> Queue {
        let mut q = Queue::new(self.size).unwrap();
        q.try_set_size(self.size).unwrap();
        q.try_set_desc_table_address(GuestAddress(self.desc))
            .unwrap();
        q.try_set_avail_ring_address(GuestAddress(self.avail))
            .unwrap();
        q.try_set_used_ring_address(GuestAddress(self.used))
            .unwrap();
        q.set_ready(true);
        q
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
            let index = u64::from((head + i as u16) % self.size);
            self.mem
                .write_obj(*d, GuestAddress(self.desc + 16 * index))
                .unwrap();
        }
        self.offer(head);
    }

    /// Puts `head` in the available ring.
    pub fn offer(&mut self, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        self.mem
            .write_obj(head, GuestAddress(self.avail + 4 + 2 * slot))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.set_avail_idx(self.avail_idx);
    }

    /// Sets the available index directly (hostile drivers).
    pub fn set_avail_idx(&mut self, idx: u16) {
        self.mem
            .write_obj(idx, GuestAddress(self.avail + 2))
            .unwrap();
    }

    /// EVENT_IDX: asks for an interrupt once the device has used entry `idx`.
    pub fn set_used_event(&mut self, idx: u16) {
        let at = self.avail + 4 + 2 * u64::from(self.size);
        self.mem.write_obj(idx, GuestAddress(at)).unwrap();
    }

    /// EVENT_IDX: the available index past which the device wants a kick.
    pub fn avail_event(&self) -> u16 {
        let at = self.used + 4 + 8 * u64::from(self.size);
        self.mem.read_obj(GuestAddress(at)).unwrap()
    }

    /// Entries the device has returned.
    pub fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }

    /// The `i`-th used entry: (head, length).
    pub fn used(&self, i: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(i % self.size);
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        (id, len)
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
    for (index, queue) in queues.into_iter().enumerate() {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        pairs.push(ActiveQueue {
            index,
            queue,
            evt: evt.try_clone().unwrap(),
        });
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

#[test]
fn many_requests_wrap_the_rings() {
    // 600 chains through a 256-entry queue: the rings wrap and stay apart.
    let m = mem(0x10_0000);
    let mut tq = TestQueue::new(&m, 0x1000, 256);
    let mut q = tq.queue();
    for i in 0..600u32 {
        let head = tq.add(&[(0x80000, 16, 0)]);
        let chain = q.pop_descriptor_chain(&m).unwrap();
        assert_eq!(chain.head_index(), head);
        q.add_used(&m, head, i).unwrap();
        assert_eq!(tq.used(i as u16), (u32::from(head), i));
    }
    assert_eq!(tq.used_idx(), 600);
}

/// Runs `f` on a thread of its own in a new, empty network namespace (it needs
/// CAP_SYS_ADMIN; `None` where that is refused), so taps a test creates never touch the
/// host's network and vanish with the thread.
pub fn in_own_netns<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    std::thread::spawn(move || {
        // SAFETY: unshare only changes this thread's namespaces.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            eprintln!(
                "skipping: unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(f())
    })
    .join()
    .unwrap()
}
