//! Guest memory: anonymous private mappings, split around the 32-bit MMIO hole.

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::layout::{MMIO_GAP_END, MMIO_GAP_START};

/// Errors creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// mmap failed.
    #[error("cannot map {0} MiB of guest memory")]
    Mmap(u32, #[source] vm_memory::mmap::FromRangesError),
}

/// The RAM ranges for `mib` MiB of guest memory.
pub fn ram_ranges(mib: u32) -> Vec<(GuestAddress, usize)> {
    let size = u64::from(mib) << 20;
    if size <= MMIO_GAP_START {
        vec![(GuestAddress(0), size as usize)]
    } else {
        vec![
            (GuestAddress(0), MMIO_GAP_START as usize),
            (GuestAddress(MMIO_GAP_END), (size - MMIO_GAP_START) as usize),
        ]
    }
}

/// Maps guest memory.
pub fn create(mib: u32) -> Result<GuestMemoryMmap, MemoryError> {
    GuestMemoryMmap::from_ranges(&ram_ranges(mib)).map_err(|e| MemoryError::Mmap(mib, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_around_the_hole() {
        assert_eq!(ram_ranges(128), vec![(GuestAddress(0), 128 << 20)]);
        let r = ram_ranges(4096);
        assert_eq!(r[0], (GuestAddress(0), MMIO_GAP_START as usize));
        assert_eq!(r[1].0, GuestAddress(MMIO_GAP_END));
        assert_eq!(r[1].1 as u64 + MMIO_GAP_START, 4096 << 20);
    }
}
