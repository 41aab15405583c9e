//! Walking descriptor chains that the guest wrote.

use std::ops::Deref;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::DescriptorChain;
use vm_memory::GuestMemory;

/// A chain that loops, points outside its descriptor table or cannot be read.
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
    // a next index past the table or an unreadable descriptor.
    if descs.is_empty() || last_has_next {
        return Err(BrokenChain);
    }
    Ok(descs)
}
