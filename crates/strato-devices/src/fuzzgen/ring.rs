//! The driver side of a split virtqueue, as a hostile guest drives it: chains written into
//! a fixed descriptor table and offered on the available ring, then the used ring checked.
//!
//! What it checks after the device ran ([`Ring::check_used`]): every used entry names a
//! descriptor the guest offered and has not had back yet (so each offered head returns
//! exactly once), and its length is at most what the guest offered the device to write in
//! that chain. [`Ring::assert_drained`] adds that nothing offered is still outstanding,
//! for devices that must answer every chain at once (virtio-blk, virtio-net TX).

use std::sync::Arc;

use strato_fuzzgen::Source;
use virtio_bindings::bindings::virtio_ring::{
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::irq::{CountingTrigger, VirtioInterrupt};
use crate::virtio::{ActivateContext, ActiveQueue};

/// Guest memory size: small, so that hostile addresses land outside it easily.
pub const MEM_SIZE: u64 = 1 << 20;
/// Where queue `i`'s descriptor table starts: `RINGS + i * RING_STRIDE` (then the available
/// ring 4 KiB on, the used ring 8 KiB on).
pub const RINGS: u64 = 0x1000;
/// Room for one queue's three rings (256 entries each at most).
pub const RING_STRIDE: u64 = 0x3000;
/// Where data buffers start: past the rings of up to five queues.
pub const DATA_START: u64 = 0x10000;

const NEXT: u16 = VRING_DESC_F_NEXT as u16;
const WRITE: u16 = VRING_DESC_F_WRITE as u16;
const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;

/// Guest memory for a case.
pub fn memory() -> GuestMemoryMmap {
    // A fixed, small range: mapping it cannot fail short of running out of memory.
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)])
        .unwrap_or_else(|e| panic!("guest memory: {e}"))
}

/// Hands out data buffers inside guest memory (past the rings), round robin.
pub struct Arena {
    next: u64,
}

impl Default for Arena {
    fn default() -> Self {
        Self { next: DATA_START }
    }
}

impl Arena {
    /// A buffer of `len` bytes in guest memory (16-byte aligned); buffers may be reused once
    /// the arena wraps. One longer than the data area starts at its start (and runs past
    /// the end of guest memory: the device must refuse it).
    pub fn take(&mut self, len: u32) -> u64 {
        let len = u64::from(len);
        if self.next + len > MEM_SIZE {
            self.next = DATA_START;
        }
        let at = self.next;
        self.next = (self.next + len + 15) & !15;
        at
    }

    /// As [`Arena::take`], but rarely an address outside guest memory, straddling its end
    /// or wrapping the address space. Never a buffer wholly inside guest memory: these
    /// addresses are handed out again and again, and two such buffers would alias.
    pub fn take_hostile(&mut self, src: &mut Source<'_>, len: u32) -> u64 {
        if !src.rarely() {
            return self.take(len);
        }
        match src.below(4) {
            // Past the end by at least one byte (a 0-byte buffer at the end holds nothing).
            0 => MEM_SIZE - u64::from(len.min(64)) / 2,
            1 => MEM_SIZE + src.below(1 << 20),
            2 => u64::MAX - src.below(0x1000),
            _ => src.u64() | 1 << 40,
        }
    }
}

/// One descriptor as a generator asks for it.
#[derive(Debug, Clone, Copy)]
pub struct Desc {
    /// Guest address.
    pub addr: u64,
    /// Length.
    pub len: u32,
    /// Device-writable.
    pub write: bool,
}

/// The driver's side of one queue.
pub struct Ring {
    base: u64,
    size: u16,
    avail_idx: u16,
    used_seen: u16,
    /// Per descriptor index: taken by a chain the device still holds.
    in_use: Vec<bool>,
    /// Per descriptor index: offers not yet returned, and the chain it heads.
    outstanding: Vec<u32>,
    chains: Vec<Vec<u16>>,
    /// Per descriptor index: the most the device may write in the chain it heads.
    writable: Vec<u64>,
    /// The available index was made bogus: the device may refuse the whole ring.
    broken: bool,
}

impl Ring {
    /// Queue `index` of `size` entries (a power of two, at most 256) at its fixed place;
    /// its rings are zeroed.
    pub fn new(mem: &GuestMemoryMmap, index: u64, size: u16) -> Self {
        let base = RINGS + index * RING_STRIDE;
        let zeros = vec![0u8; RING_STRIDE as usize];
        write(mem, base, &zeros);
        let n = usize::from(size);
        Self {
            base,
            size,
            avail_idx: 0,
            used_seen: 0,
            in_use: vec![false; n],
            outstanding: vec![0; n],
            chains: vec![Vec::new(); n],
            writable: vec![0; n],
            broken: false,
        }
    }

    fn desc_table(&self) -> u64 {
        self.base
    }
    fn avail(&self) -> u64 {
        self.base + 0x1000
    }
    fn used(&self) -> u64 {
        self.base + 0x2000
    }

    /// The queue as the transport hands it to the device: size, ring addresses, ready.
    pub fn queue(&self, max_size: u16) -> Queue {
        let mut q = Queue::new(max_size).unwrap_or_else(|e| panic!("queue: {e}"));
        let set = q
            .try_set_size(self.size)
            .and_then(|()| q.try_set_desc_table_address(GuestAddress(self.desc_table())))
            .and_then(|()| q.try_set_avail_ring_address(GuestAddress(self.avail())))
            .and_then(|()| q.try_set_used_ring_address(GuestAddress(self.used())));
        if let Err(e) = set {
            panic!("queue set-up: {e}");
        }
        q.set_ready(true);
        q
    }

    /// Queue size.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Descriptors free for new chains.
    pub fn free(&self) -> usize {
        self.in_use.iter().filter(|u| !**u).count()
    }

    /// Writes `descs` as one chain into free table entries and offers its head; rarely
    /// breaks it (a loop, a next index past the table, an indirect flag, a last descriptor
    /// that points on). Returns the head and whether the chain was broken, or `None` if the
    /// table has no room.
    pub fn offer(
        &mut self,
        mem: &GuestMemoryMmap,
        src: &mut Source<'_>,
        descs: &[Desc],
    ) -> Option<(u16, bool)> {
        if descs.is_empty() {
            return None;
        }
        let slots: Vec<u16> = (0..self.size)
            .filter(|&i| !self.in_use[usize::from(i)])
            .take(descs.len())
            .collect();
        if slots.len() < descs.len() {
            return None;
        }
        let mut broken = false;
        for (k, (d, &at)) in descs.iter().zip(&slots).enumerate() {
            let last = k + 1 == descs.len();
            let mut flags = if d.write { WRITE } else { 0 };
            let mut next = slots.get(k + 1).copied().unwrap_or(0);
            if !last {
                flags |= NEXT;
            }
            if src.rarely() {
                broken = true;
                match src.below(4) {
                    0 => {
                        flags |= NEXT;
                        next = at;
                    }
                    1 => {
                        flags |= NEXT;
                        next = src.u16();
                    }
                    2 => flags |= INDIRECT,
                    _ => flags ^= NEXT,
                }
            }
            self.write_desc(mem, at, d.addr, d.len, flags, next);
        }
        for &s in &slots {
            self.in_use[usize::from(s)] = true;
        }
        let head = slots[0];
        self.chains[usize::from(head)] = slots;
        self.push_avail(mem, head);
        Some((head, broken))
    }

    /// Offers a descriptor index that heads no chain of ours (hostile drivers): the device
    /// walks whatever the table holds there.
    pub fn offer_stray(&mut self, mem: &GuestMemoryMmap, index: u16) {
        self.push_avail(mem, index);
    }

    fn write_desc(
        &self,
        mem: &GuestMemoryMmap,
        at: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..].copy_from_slice(&next.to_le_bytes());
        write(mem, self.desc_table() + 16 * u64::from(at), &raw);
    }

    fn push_avail(&mut self, mem: &GuestMemoryMmap, index: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        write(mem, self.avail() + 4 + 2 * slot, &index.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        write(mem, self.avail() + 2, &self.avail_idx.to_le_bytes());
        // More offers outstanding than the ring has entries (stray offers of a held head):
        // the available index runs more than a ring ahead, and the device may refuse it all.
        if self.outstanding.iter().sum::<u32>() >= u32::from(self.size) {
            self.broken = true;
        }
        if index < self.size {
            let i = usize::from(index);
            self.outstanding[i] += 1;
            self.writable[i] = self.writable[i].max(self.walk_writable(mem, index));
        }
    }

    /// Rarely makes the ring hostile: an available index more than a ring ahead of what
    /// the device used (it may refuse the whole ring from then on), or a random
    /// used_event (EVENT_IDX). Returns whether the ring is now broken.
    pub fn maybe_break(&mut self, mem: &GuestMemoryMmap, src: &mut Source<'_>) -> bool {
        if src.rarely() {
            let at = self.avail() + 4 + 2 * u64::from(self.size);
            write(mem, at, &src.u16().to_le_bytes());
        }
        if src.rarely() && src.rarely() {
            let bogus = self
                .avail_idx
                .wrapping_add(self.size)
                .wrapping_add(1 + src.below(0x100) as u16);
            write(mem, self.avail() + 2, &bogus.to_le_bytes());
            self.broken = true;
        }
        self.broken
    }

    /// Whether the ring was made hostile.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The most the device may write in the chain at `head`: the write-only bytes of the
    /// descriptors reachable from it (at most a table's worth, as a device walks).
    fn walk_writable(&self, mem: &GuestMemoryMmap, head: u16) -> u64 {
        let mut total = 0u64;
        let mut index = head;
        for _ in 0..self.size {
            if index >= self.size {
                break;
            }
            let mut raw = [0u8; 16];
            if mem
                .read_slice(
                    &mut raw,
                    GuestAddress(self.desc_table() + 16 * u64::from(index)),
                )
                .is_err()
            {
                break;
            }
            let len = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
            let flags = u16::from_le_bytes([raw[12], raw[13]]);
            if flags & WRITE != 0 && flags & INDIRECT == 0 {
                total += u64::from(len);
            }
            if flags & NEXT == 0 {
                break;
            }
            index = u16::from_le_bytes([raw[14], raw[15]]);
        }
        total
    }

    /// The device-writable buffers (address, length) of the chain at `head`, in order.
    pub fn chain_buffers(&self, mem: &GuestMemoryMmap, head: u16) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        let mut index = head;
        for _ in 0..self.size {
            if index >= self.size {
                break;
            }
            let mut raw = [0u8; 16];
            let at = GuestAddress(self.desc_table() + 16 * u64::from(index));
            if mem.read_slice(&mut raw, at).is_err() {
                break;
            }
            let mut addr = [0u8; 8];
            addr.copy_from_slice(&raw[..8]);
            let len = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
            let flags = u16::from_le_bytes([raw[12], raw[13]]);
            if flags & WRITE != 0 {
                out.push((u64::from_le_bytes(addr), len));
            }
            if flags & NEXT == 0 {
                break;
            }
            index = u16::from_le_bytes([raw[14], raw[15]]);
        }
        out
    }

    /// Reads the used entries the device added since the last call and checks them:
    /// each names an outstanding offer and stays within what its chain let the device
    /// write. Returns the (head, length) pairs.
    pub fn check_used(&mut self, mem: &GuestMemoryMmap) -> Vec<(u16, u32)> {
        let used_idx: u16 = read(mem, self.used() + 2);
        let new = used_idx.wrapping_sub(self.used_seen);
        assert!(
            u32::from(new) <= self.outstanding.iter().sum::<u32>(),
            "the device returned {new} entries, more than the {} outstanding",
            self.outstanding.iter().sum::<u32>()
        );
        let mut got = Vec::new();
        for _ in 0..new {
            let at = self.used() + 4 + 8 * u64::from(self.used_seen % self.size);
            let id: u32 = read(mem, at);
            let len: u32 = read(mem, at + 4);
            self.used_seen = self.used_seen.wrapping_add(1);
            assert!(
                id < u32::from(self.size),
                "used entry names descriptor {id}, past a {}-entry table",
                self.size
            );
            let head = id as u16;
            let i = usize::from(head);
            assert!(
                self.outstanding[i] > 0,
                "descriptor {head} returned more often than it was offered"
            );
            // A walk now may reach more than at offer time if a broken chain links into
            // descriptors written since; either walk is a bound the guest offered.
            let bound = self.writable[i].max(self.walk_writable(mem, head));
            assert!(
                u64::from(len) <= bound,
                "used length {len} of descriptor {head} exceeds the {bound} writable bytes offered"
            );
            self.outstanding[i] -= 1;
            if self.outstanding[i] == 0 {
                self.writable[i] = 0;
                for s in std::mem::take(&mut self.chains[i]) {
                    self.in_use[usize::from(s)] = false;
                }
            }
            got.push((head, len));
        }
        got
    }

    /// Panics if an offer was not returned (unless the ring was made hostile).
    pub fn assert_drained(&self) {
        if self.broken {
            return;
        }
        if let Some(i) = self.outstanding.iter().position(|&n| n > 0) {
            panic!(
                "descriptor {i} was offered {} time(s) and never returned",
                self.outstanding[i]
            );
        }
    }
}

/// Writes bytes where a generator put a buffer that may lie outside guest memory (then
/// nothing, or only what fits, is written).
pub fn write_lossy(mem: &GuestMemoryMmap, at: u64, bytes: &[u8]) {
    let _ = mem.write_slice(bytes, GuestAddress(at));
}

/// Writes bytes the harness placed itself (inside guest memory by construction).
pub fn write(mem: &GuestMemoryMmap, at: u64, bytes: &[u8]) {
    if let Err(e) = mem.write_slice(bytes, GuestAddress(at)) {
        panic!("harness write at {at:#x}: {e}");
    }
}

fn read<T: vm_memory::ByteValued>(mem: &GuestMemoryMmap, at: u64) -> T {
    mem.read_obj(GuestAddress(at))
        .unwrap_or_else(|e| panic!("harness read at {at:#x}: {e}"))
}

/// What a case keeps after activating a device.
pub struct Activation {
    /// The queue EventFds (the transport's side).
    pub evts: Vec<EventFd>,
    /// Counts interrupts.
    pub irq: Arc<CountingTrigger>,
}

/// An activation context for `queues` with `features` acknowledged.
pub fn activation(
    mem: &GuestMemoryMmap,
    queues: Vec<Queue>,
    features: u64,
) -> (ActivateContext, Activation) {
    let irq = Arc::new(CountingTrigger::default());
    let interrupt = Arc::new(VirtioInterrupt::new(irq.clone()));
    let mut evts = Vec::new();
    let mut active = Vec::new();
    for (index, queue) in queues.into_iter().enumerate() {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap_or_else(|e| panic!("eventfd: {e}"));
        let dup = evt.try_clone().unwrap_or_else(|e| panic!("eventfd: {e}"));
        active.push(ActiveQueue {
            index,
            queue,
            evt: dup,
        });
        evts.push(evt);
    }
    let ctx = ActivateContext {
        mem: mem.clone(),
        queues: active,
        acked_features: features,
        interrupt,
    };
    (ctx, Activation { evts, irq })
}

/// A power-of-two queue size up to `max`, mostly the largest and rarely tiny.
pub fn queue_size(src: &mut Source<'_>, max: u16) -> u16 {
    if !src.rarely() {
        return max;
    }
    let shift = src.below(u64::from(max.trailing_zeros()) + 1) as u32;
    1 << shift
}
