//! The virtqueue descriptor walk: the devices' own table walker ([`DescTable`]) against
//! rust-vmm's chain iterator over the same table, which is built of valid chains, rarely
//! broken ones and rarely raw bytes.

use strato_fuzzgen::{alloc, Source};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT};
use virtio_queue::QueueOwnedT;
use vm_memory::GuestMemoryMmap;

use super::ring::{memory, queue_size, write, Arena, Desc, Ring, RINGS};
use crate::virtio::chain::{self, DescTable};

/// The most one case may hold beyond its start: the walks' descriptor lists.
pub const MEMORY_BOUND: usize = 1 << 20;

/// Runs one case.
pub fn run(data: &[u8]) {
    alloc::bounded("descriptor walk", MEMORY_BOUND, || {
        case(&mut Source::new(data))
    });
}

fn case(src: &mut Source<'_>) {
    let mem = memory();
    let size = queue_size(src, 256);
    let mut ring = Ring::new(&mem, 0, size);
    let mut arena = Arena::default();
    let chains = 1 + src.below(u64::from(size.min(16)));
    for _ in 0..chains {
        let max = if src.rarely() { 300 } else { 4 };
        let n = 1 + src.below(max) as usize;
        let descs: Vec<Desc> = (0..n)
            .map(|_| {
                let len = src.below(4096) as u32;
                Desc {
                    addr: arena.take_hostile(src, len),
                    len,
                    write: src.bool(),
                }
            })
            .collect();
        if ring.offer(&mem, src, &descs).is_none() {
            break;
        }
    }
    if src.rarely() {
        // Raw bytes over part of the table.
        let at = RINGS + 16 * src.below(u64::from(size));
        let n = 16 * src.below(8) as usize;
        let raw = src.bytes(n);
        let room = (16 * u64::from(size)).saturating_sub(at - RINGS) as usize;
        write(&mem, at, raw.get(..raw.len().min(room)).unwrap_or_default());
    }
    if src.rarely() {
        ring.offer_stray(&mem, src.u16());
    }
    let mut q = ring.queue(256);
    let table = DescTable::new(&mem, &q);
    // The table does not change while the rings are walked.
    let flags_next = table_desc(&mem, size);
    let mut seen = 0u32;
    let iter = match q.iter(&mem) {
        Ok(iter) => iter,
        Err(_) => return,
    };
    for c in iter {
        seen += 1;
        let head = c.head_index();
        let ours = table.collect(head);
        let has_indirect = walk_has_indirect(&flags_next, head, size);
        let theirs = chain::collect(c);
        if let Ok(d) = &ours {
            assert!(
                !d.is_empty() && d.len() <= usize::from(size),
                "a {}-descriptor chain",
                d.len()
            );
            let (last, rest) = d.split_last().unwrap_or_else(|| unreachable!());
            assert!(!last.has_next(), "the last descriptor points on");
            assert!(
                rest.iter().all(|x| x.has_next()),
                "a middle descriptor ends the chain"
            );
            assert!(d.iter().all(|x| !x.refers_to_indirect_table()));
        }
        if !has_indirect {
            let key = |v: &Vec<virtio_queue::desc::split::Descriptor>| {
                v.iter()
                    .map(|x| (x.addr().0, x.len(), x.flags()))
                    .collect::<Vec<_>>()
            };
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(key(a), key(b), "the walks disagree at head {head}"),
                (Err(_), Err(_)) => {}
                _ => panic!("one walk refused head {head}: ours {ours:?}, rust-vmm's {theirs:?}"),
            }
        }
    }
    assert!(
        seen <= u32::from(size),
        "{seen} chains from a {size}-entry ring"
    );
    // Heads past the table never walk.
    assert!(table.collect(size).is_err() && table.collect(u16::MAX).is_err());
}

/// The descriptor table as (flags, next) pairs.
fn table_desc(mem: &GuestMemoryMmap, size: u16) -> Vec<(u16, u16)> {
    use vm_memory::{Bytes, GuestAddress};
    (0..u64::from(size))
        .map(|i| {
            let at = RINGS + 16 * i;
            let flags: u16 = mem.read_obj(GuestAddress(at + 12)).unwrap_or(0);
            let next: u16 = mem.read_obj(GuestAddress(at + 14)).unwrap_or(0);
            (flags, next)
        })
        .collect()
}

/// Whether the walk from `head` meets an indirect descriptor (rust-vmm follows those; the
/// devices refuse them, not offering VIRTIO_RING_F_INDIRECT_DESC).
fn walk_has_indirect(table: &[(u16, u16)], head: u16, size: u16) -> bool {
    let mut index = head;
    for _ in 0..size {
        let Some(&(flags, next)) = table.get(usize::from(index)) else {
            return false;
        };
        if flags & VRING_DESC_F_INDIRECT as u16 != 0 {
            return true;
        }
        if flags & VRING_DESC_F_NEXT as u16 == 0 {
            return false;
        }
        index = next;
    }
    false
}
