//! Byte-offset access to a chain's buffers (the vnet header may be split across them).

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::virtio::guest::{read_bytes, write_bytes};

/// A chain's buffers: guest address and length of each descriptor.
pub(super) type Buffers = [(GuestAddress, u32)];

/// Writes `bytes` at byte `offset` of the buffers, as far as they go.
pub(super) fn write_at(mem: &GuestMemoryMmap, bufs: &Buffers, offset: usize, bytes: &[u8]) {
    let mut skip = offset;
    let mut rest = bytes;
    for &(addr, len) in bufs {
        let len = len as usize;
        if skip >= len {
            skip -= len;
            continue;
        }
        let n = rest.len().min(len - skip);
        let (now, later) = rest.split_at(n);
        let Some(at) = addr.0.checked_add(skip as u64) else {
            return;
        };
        if !write_bytes(mem, GuestAddress(at), now) {
            return;
        }
        rest = later;
        skip = 0;
        if rest.is_empty() {
            return;
        }
    }
}

/// Reads `buf.len()` bytes from byte `offset` of the buffers; false if they are not all
/// there.
pub(super) fn read_at(
    mem: &GuestMemoryMmap,
    bufs: &Buffers,
    offset: usize,
    buf: &mut [u8],
) -> bool {
    let mut skip = offset;
    let mut done = 0;
    for &(addr, len) in bufs {
        let len = len as usize;
        if skip >= len {
            skip -= len;
            continue;
        }
        let Some(dst) = buf.get_mut(done..) else {
            return true;
        };
        let n = dst.len().min(len - skip);
        let Some(at) = addr.0.checked_add(skip as u64) else {
            return false;
        };
        if !read_bytes(mem, GuestAddress(at), &mut dst[..n]) {
            return false;
        }
        done += n;
        skip = 0;
        if done == buf.len() {
            return true;
        }
    }
    done == buf.len()
}

/// The buffers less their first `n` bytes.
pub(super) fn skip(bufs: &Buffers, n: usize) -> impl Iterator<Item = (GuestAddress, u32)> + '_ {
    let mut left = n as u64;
    bufs.iter().filter_map(move |&(addr, len)| {
        let cut = left.min(u64::from(len));
        left -= cut;
        // cut <= len; a range that wraps is refused when it is mapped.
        let rest = len - cut as u32;
        (rest > 0).then(|| (GuestAddress(addr.0.wrapping_add(cut)), rest))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::virtio::test_utils::mem;
    use vm_memory::Bytes;

    #[test]
    fn reads_and_writes_across_buffers() {
        let m = mem(0x10_0000);
        let bufs = [
            (GuestAddress(0x1000), 3),
            (GuestAddress(0x2000), 0),
            (GuestAddress(0x3000), 10),
        ];
        write_at(&m, &bufs, 1, &[1, 2, 3, 4]);
        assert_eq!(
            m.read_obj::<[u8; 3]>(GuestAddress(0x1000)).unwrap(),
            [0, 1, 2]
        );
        assert_eq!(m.read_obj::<[u8; 2]>(GuestAddress(0x3000)).unwrap(), [3, 4]);
        let mut b = [0u8; 4];
        assert!(read_at(&m, &bufs, 1, &mut b));
        assert_eq!(b, [1, 2, 3, 4]);
        // Past the end: short.
        let mut b = [0u8; 4];
        assert!(!read_at(&m, &bufs, 11, &mut b));
        // Outside memory.
        assert!(!read_at(&m, &[(GuestAddress(0x2000_0000), 16)], 0, &mut b));
        // Writes stop where the buffers end.
        write_at(&m, &bufs, 12, &[9, 9, 9]);
        assert_eq!(m.read_obj::<u8>(GuestAddress(0x3000 + 9)).unwrap(), 9);
        assert_eq!(m.read_obj::<u8>(GuestAddress(0x3000 + 10)).unwrap(), 0);
        let rest: Vec<_> = skip(&bufs, 4).collect();
        assert_eq!(rest, vec![(GuestAddress(0x3001), 9)]);
        assert_eq!(skip(&bufs, 13).count(), 0);
    }
}
