//! Walking descriptor chains that the guest wrote.

use std::ops::Deref;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, Queue, QueueT};
use vm_memory::{
    Bytes, GuestAddress, GuestMemory, GuestMemoryBackend, GuestMemoryMmap, VolatileMemory,
    VolatileSlice,
};

/// A chain that loops, points outside its descriptor table, cannot be read or is longer than
/// 2^32 bytes in all (which drivers must not offer: VIRTIO 1.2, 2.7.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("descriptor chain is broken")]
pub struct BrokenChain;

/// Collects a chain's descriptors (at most the queue size of them, the iterator's
/// bound), or fails if the chain is broken.
pub fn collect<M>(chain: DescriptorChain<M>) -> Result<Vec<Descriptor>, BrokenChain>
where
    M: Deref,
    M::Target: GuestMemory,
{
    let mut descs = Vec::new();
    let mut last_has_next = false;
    for desc in chain {
        last_has_next = desc.has_next();
        descs.push(desc);
    }
    // The iterator stops early, with the last descriptor still pointing on, on a loop,
    // a next index past the table, an unreadable descriptor or past 2^32 bytes.
    if descs.is_empty() || last_has_next {
        return Err(BrokenChain);
    }
    Ok(descs)
}

/// Reads descriptor chains straight from a queue's descriptor table: one region lookup
/// per batch instead of one per descriptor. Indirect descriptors are refused as broken
/// (the devices do not offer VIRTIO_RING_F_INDIRECT_DESC).
pub struct DescTable<'m> {
    mem: &'m GuestMemoryMmap,
    addr: GuestAddress,
    size: u16,
    slice: Option<VolatileSlice<'m>>,
}

impl<'m> DescTable<'m> {
    /// The descriptor table of `queue`.
    pub fn new(mem: &'m GuestMemoryMmap, queue: &Queue) -> Self {
        let addr = GuestAddress(queue.desc_table());
        let size = queue.size();
        let slice = mem.get_slice(addr, DESC_SIZE * usize::from(size)).ok();
        Self {
            mem,
            addr,
            size,
            slice,
        }
    }

    fn read(&self, index: u16) -> Option<Descriptor> {
        let offset = DESC_SIZE * usize::from(index);
        match &self.slice {
            // One 16-byte volatile load (`read_obj` goes through a memcpy call).
            Some(table) => table.get_ref::<Descriptor>(offset).ok().map(|d| d.load()),
            None => {
                let at = self.addr.0.checked_add(offset as u64)?;
                self.mem.read_obj(GuestAddress(at)).ok()
            }
        }
    }

    /// The descriptors of the chain starting at `head` (at most the queue size of them).
    pub fn collect(&self, head: u16) -> Result<Vec<Descriptor>, BrokenChain> {
        let mut descs = Vec::new();
        self.collect_into(head, &mut descs)?;
        Ok(descs)
    }

    /// As [`DescTable::collect`], into `descs` (cleared first), so a caller that walks
    /// many chains reuses one allocation.
    pub fn collect_into(&self, head: u16, descs: &mut Vec<Descriptor>) -> Result<(), BrokenChain> {
        descs.clear();
        let mut index = head;
        let mut bytes = 0u32;
        for _ in 0..self.size {
            if index >= self.size {
                return Err(BrokenChain);
            }
            let desc = self.read(index).ok_or(BrokenChain)?;
            if desc.refers_to_indirect_table() {
                return Err(BrokenChain);
            }
            // As rust-vmm's iterator: a chain past 2^32 bytes is the driver's error.
            bytes = bytes.checked_add(desc.len()).ok_or(BrokenChain)?;
            descs.push(desc);
            if !desc.has_next() {
                return Ok(());
            }
            index = desc.next();
        }
        // Still pointing on after `size` descriptors: a loop.
        Err(BrokenChain)
    }
}

const DESC_SIZE: usize = 16;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::virtio::test_utils::{mem, TestQueue, N, W};
    use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_INDIRECT;
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::QueueOwnedT;

    fn raw(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
        RawDescriptor::from(Descriptor::new(addr, len, flags, next))
    }

    #[test]
    fn walks_chains_like_the_queue_iterator() {
        let m = mem(0x10_0000);
        let mut tq = TestQueue::new(&m, 0x1000, 16);
        tq.add(&[(0x8000, 16, 0), (0x9000, 512, W), (0xa000, 1, W)]);
        tq.add(&[(0x8000, 16, 0)]);
        let mut q = tq.queue();
        let table = DescTable::new(&m, &q);
        let chains: Vec<_> = q.iter(&m).unwrap().collect();
        for chain in chains {
            let head = chain.head_index();
            let ours: Vec<_> = table
                .collect(head)
                .unwrap()
                .iter()
                .map(|d| (d.addr(), d.len()))
                .collect();
            let theirs: Vec<_> = collect(chain)
                .unwrap()
                .iter()
                .map(|d| (d.addr(), d.len()))
                .collect();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn refuses_loops_bad_indices_and_indirect_tables() {
        let m = mem(0x10_0000);
        let mut tq = TestQueue::new(&m, 0x1000, 16);
        tq.add_raw_at(0, &[raw(0x8000, 16, N, 1), raw(0x9000, 16, N, 0)]);
        tq.add_raw_at(2, &[raw(0x8000, 16, N, 16)]);
        tq.add_raw_at(3, &[raw(0x8000, 64, VRING_DESC_F_INDIRECT as u16, 0)]);
        let q = tq.queue();
        let table = DescTable::new(&m, &q);
        assert!(table.collect(0).is_err());
        assert!(table.collect(2).is_err());
        assert!(table.collect(3).is_err());
        assert!(table.collect(16).is_err());
        assert!(table.collect(u16::MAX).is_err());
        // A table outside guest memory reads nothing.
        let mut far = Queue::new(16).unwrap();
        far.try_set_desc_table_address(GuestAddress(0x1000_0000))
            .unwrap();
        assert!(DescTable::new(&m, &far).collect(0).is_err());
    }

    #[test]
    fn refuses_chains_past_four_gib_as_the_queue_iterator_does() {
        // Found by the `virtqueue` fuzz target: rust-vmm's iterator stopped this chain (its
        // lengths add up past u32::MAX) while the table walk took it whole.
        let m = mem(0x10_0000);
        let mut tq = TestQueue::new(&m, 0x1000, 16);
        tq.add_raw_at(
            0,
            &[
                raw(0x8000, 3565, N | W, 1),
                raw(0x9000, u32::MAX - 255, W, 0),
            ],
        );
        tq.add_raw_at(2, &[raw(0x8000, u32::MAX, W, 0)]);
        tq.add_raw_at(3, &[raw(0x8000, 1, N, 4), raw(0x9000, u32::MAX - 1, W, 0)]);
        let mut q = tq.queue();
        let table = DescTable::new(&m, &q);
        let chains: Vec<_> = q.iter(&m).unwrap().collect();
        let mut heads = Vec::new();
        for chain in chains {
            let head = chain.head_index();
            heads.push(head);
            assert_eq!(
                table.collect(head).is_ok(),
                collect(chain).is_ok(),
                "head {head}"
            );
        }
        assert_eq!(heads, [0, 2, 3]);
        assert!(table.collect(0).is_err());
        assert_eq!(table.collect(2).unwrap().len(), 1);
        assert_eq!(table.collect(3).unwrap().len(), 2);
    }
}
