//! Fast paths for small guest memory accesses.
//!
//! vm-memory's `Bytes` methods on `GuestMemoryMmap` walk a general slice iterator on
//! every call; a buffer that lies in one region (nearly all of them) needs one region
//! lookup. These helpers take that path and fall back to the general one otherwise.

use vm_memory::{
    Bytes, GuestAddress, GuestMemory, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    Permissions,
};

/// Whether `[addr, addr + len)` lies in guest memory.
pub fn in_guest_memory(mem: &GuestMemoryMmap, addr: GuestAddress, len: usize) -> bool {
    let Some(end) = addr.0.checked_add(len as u64) else {
        return false;
    };
    match mem.find_region(addr) {
        Some(r) if end - r.start_addr().0 <= r.len() => true,
        Some(_) => GuestMemory::check_range(mem, addr, len, Permissions::ReadWrite),
        None => len == 0,
    }
}

/// Reads `buf.len()` bytes at `addr`; false if they are not all in guest memory.
pub fn read_bytes(mem: &GuestMemoryMmap, addr: GuestAddress, buf: &mut [u8]) -> bool {
    match mem.get_slice(addr, buf.len()) {
        Ok(slice) => slice.copy_to(buf) == buf.len(),
        Err(_) => mem.read_slice(buf, addr).is_ok(),
    }
}

/// Writes `bytes` at `addr`; false if they do not all fit in guest memory.
pub fn write_bytes(mem: &GuestMemoryMmap, addr: GuestAddress, bytes: &[u8]) -> bool {
    match mem.get_slice(addr, bytes.len()) {
        Ok(slice) => {
            slice.copy_from(bytes);
            true
        }
        Err(_) => mem.write_slice(bytes, addr).is_ok(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn checks_ranges_within_and_across_regions() {
        let m = GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 0x1000),
            (GuestAddress(0x1000), 0x1000),
            (GuestAddress(0x4000), 0x1000),
        ])
        .unwrap();
        assert!(in_guest_memory(&m, GuestAddress(0x100), 0x100));
        assert!(in_guest_memory(&m, GuestAddress(0xf00), 0x200));
        assert!(!in_guest_memory(&m, GuestAddress(0x1f00), 0x200));
        assert!(!in_guest_memory(&m, GuestAddress(0x3000), 1));
        assert!(in_guest_memory(&m, GuestAddress(0x3000), 0));
        assert!(!in_guest_memory(&m, GuestAddress(u64::MAX), 2));
        assert!(write_bytes(&m, GuestAddress(0xffe), &[1, 2, 3, 4]));
        let mut b = [0u8; 4];
        assert!(read_bytes(&m, GuestAddress(0xffe), &mut b));
        assert_eq!(b, [1, 2, 3, 4]);
        assert!(!write_bytes(&m, GuestAddress(0x4ffe), &[1, 2, 3, 4]));
        assert!(!read_bytes(&m, GuestAddress(0x2000), &mut b));
    }
}
