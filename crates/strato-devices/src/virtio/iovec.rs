//! Scatter-gather lists over guest memory, for zero-copy `preadv`/`pwritev`/`readv`/`writev`.
//!
//! An [`IoVecs`] is built from guest buffers (address, length) that were checked to lie
//! in guest memory; it borrows that memory, so the host pointers it holds stay valid for
//! as long as it lives. The kernel copies straight between the file (or tap) and the
//! guest's pages. (vm-memory's `xen` feature, where a mapping could be temporary, is not
//! enabled: guest memory stays mapped as long as the `GuestMemoryMmap` lives.)

use std::io;
use std::marker::PhantomData;
use std::os::unix::io::RawFd;

use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryError, GuestMemoryMmap, GuestMemoryRegion,
    MemoryRegionAddress, VolatileSlice,
};

/// Most iovecs one system call takes (`IOV_MAX` on Linux).
const IOV_MAX: usize = 1024;

/// A list of host buffers backed by guest memory.
pub struct IoVecs<'m> {
    iovs: IovList<'m>,
    total: usize,
    _mem: PhantomData<&'m mut [u8]>,
}

impl<'m> IoVecs<'m> {
    /// Maps guest buffers to host iovecs. Fails if any byte of any buffer is outside
    /// guest memory. Zero-length buffers are skipped.
    pub fn new(
        mem: &'m GuestMemoryMmap,
        bufs: impl IntoIterator<Item = (GuestAddress, u32)>,
    ) -> Result<Self, GuestMemoryError> {
        let mut v = Self {
            iovs: IovList::new(),
            total: 0,
            _mem: PhantomData,
        };
        v.push_guest(mem, bufs)?;
        Ok(v)
    }

    /// A host buffer followed by guest buffers (mapped as [`IoVecs::new`] maps them): a
    /// header the device built, in front of the guest's data.
    pub fn with_host_prefix(
        prefix: &'m mut [u8],
        mem: &'m GuestMemoryMmap,
        bufs: impl IntoIterator<Item = (GuestAddress, u32)>,
    ) -> Result<Self, GuestMemoryError> {
        let mut v = Self {
            iovs: IovList::new(),
            total: 0,
            _mem: PhantomData,
        };
        v.push_host_buffer(prefix);
        v.push_guest(mem, bufs)?;
        Ok(v)
    }

    fn push_guest(
        &mut self,
        mem: &'m GuestMemoryMmap,
        bufs: impl IntoIterator<Item = (GuestAddress, u32)>,
    ) -> Result<(), GuestMemoryError> {
        for (addr, len) in bufs {
            let len = len as usize;
            if len == 0 {
                continue;
            }
            // Reject ranges that wrap the address space before asking for slices.
            addr.0
                .checked_add(len as u64)
                .ok_or(GuestMemoryError::InvalidGuestAddress(addr))?;
            // Common case: the buffer lies in one region.
            if let Ok(slice) = mem.get_slice(addr, len) {
                self.iovs.push(libc::iovec {
                    iov_base: slice.ptr_guard_mut().as_ptr().cast(),
                    iov_len: slice.len(),
                });
                self.total = self.total.saturating_add(len);
                continue;
            }
            let mut covered = 0usize;
            for slice in GuestMemoryBackend::get_slices(mem, addr, len) {
                let slice = slice?;
                covered += slice.len();
                self.iovs.push(libc::iovec {
                    iov_base: slice.ptr_guard_mut().as_ptr().cast(),
                    iov_len: slice.len(),
                });
            }
            if covered != len {
                return Err(GuestMemoryError::InvalidGuestAddress(addr));
            }
            self.total = self.total.saturating_add(len);
        }
        Ok(())
    }

    /// Appends a host buffer after the guest buffers: a frame read that overflows the
    /// guest's buffers lands there, so the caller learns the frame's full length.
    pub fn push_host_buffer(&mut self, buf: &'m mut [u8]) {
        if buf.is_empty() {
            return;
        }
        self.total = self.total.saturating_add(buf.len());
        self.iovs.push(libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        });
    }

    /// Total bytes covered.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether no byte is covered.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Fills the buffers from `fd` at `offset`, retrying short reads. A read that hits
    /// end of file before the buffers are full fails with `UnexpectedEof`.
    pub fn pread_exact(&self, fd: RawFd, offset: u64) -> io::Result<()> {
        self.transfer_exact(offset, |iovs, off| match iovs {
            // SAFETY: the iovec points into guest memory that `self` borrows (mapped for
            // its whole lifetime) and covers only bytes checked to be in it; the kernel
            // writes at most `iov_len` bytes there.
            [one] => unsafe { libc::pread(fd, one.iov_base, one.iov_len, off) },
            // SAFETY: as above, for every iovec.
            _ => unsafe { libc::preadv(fd, iovs.as_ptr(), iov_count(iovs), off) },
        })
    }

    /// Writes the buffers to `fd` at `offset`, retrying short writes.
    pub fn pwrite_all(&self, fd: RawFd, offset: u64) -> io::Result<()> {
        self.transfer_exact(offset, |iovs, off| match iovs {
            // SAFETY: as in `pread_exact`; the kernel only reads the buffer.
            [one] => unsafe { libc::pwrite(fd, one.iov_base, one.iov_len, off) },
            // SAFETY: as in `pread_exact`; the kernel only reads the buffers.
            _ => unsafe { libc::pwritev(fd, iovs.as_ptr(), iov_count(iovs), off) },
        })
    }

    /// One `readv` into the buffers (one frame from a tap or packet socket); a plain
    /// `read` when there is one buffer.
    pub fn readv(&self, fd: RawFd) -> io::Result<usize> {
        let n = match self.first_batch() {
            // SAFETY: as in `pread_exact`.
            [one] => unsafe { libc::read(fd, one.iov_base, one.iov_len) },
            // SAFETY: as in `pread_exact`.
            iovs => unsafe { libc::readv(fd, iovs.as_ptr(), iov_count(iovs)) },
        };
        ret_len(n)
    }

    /// One `writev` of the buffers (one frame to a tap or packet socket); a plain
    /// `write` when there is one buffer.
    pub fn writev(&self, fd: RawFd) -> io::Result<usize> {
        let n = match self.first_batch() {
            // SAFETY: as in `pwrite_all`; the kernel only reads the buffer.
            [one] => unsafe { libc::write(fd, one.iov_base, one.iov_len) },
            // SAFETY: as in `pwrite_all`; the kernel only reads the buffers.
            iovs => unsafe { libc::writev(fd, iovs.as_ptr(), iov_count(iovs)) },
        };
        ret_len(n)
    }

    /// Copies `src` into the buffers in order, as far as both go; returns the bytes copied.
    /// For frame channels that are not descriptors (the fuzz harness's in-memory tap).
    #[cfg(any(test, feature = "fuzzgen"))]
    pub fn copy_from_host(&self, src: &[u8]) -> usize {
        let mut done = 0usize;
        for iov in self.iovs.as_slice() {
            let n = iov.iov_len.min(src.len() - done);
            if n == 0 {
                break;
            }
            // SAFETY: the iovec covers `iov_len` writable bytes that `self` borrows (guest
            // memory checked when mapped, or a host buffer); `n <= iov_len` and `src` holds
            // `n` bytes from `done`; a host slice never overlaps guest memory.
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr().add(done), iov.iov_base.cast(), n);
            }
            done += n;
        }
        done
    }

    /// Copies the buffers' bytes in order into `dst`, as far as both go; returns the bytes
    /// copied.
    #[cfg(any(test, feature = "fuzzgen"))]
    pub fn copy_to_host(&self, dst: &mut [u8]) -> usize {
        let mut done = 0usize;
        for iov in self.iovs.as_slice() {
            let n = iov.iov_len.min(dst.len() - done);
            if n == 0 {
                break;
            }
            // SAFETY: as in `copy_from_host`, reading the iovec's bytes into `dst`.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    iov.iov_base.cast::<u8>(),
                    dst.as_mut_ptr().add(done),
                    n,
                );
            }
            done += n;
        }
        done
    }

    /// A list of one host buffer.
    pub fn host(buf: &'m mut [u8]) -> Self {
        let mut v = Self {
            iovs: IovList::new(),
            total: 0,
            _mem: PhantomData,
        };
        v.push_host_buffer(buf);
        v
    }

    /// The iovecs, for system calls this module does not wrap (`recvmsg`, `sendmsg`).
    /// Every entry points into guest memory borrowed by `self`.
    pub fn as_slice(&self) -> &[libc::iovec] {
        self.first_batch()
    }

    fn first_batch(&self) -> &[libc::iovec] {
        let all = self.iovs.as_slice();
        all.get(..IOV_MAX).unwrap_or(all)
    }

    /// Runs `op` (a positioned vectored read or write) until every byte moved.
    fn transfer_exact(
        &self,
        offset: u64,
        mut op: impl FnMut(&[libc::iovec], libc::off_t) -> isize,
    ) -> io::Result<()> {
        let to_off = |o: u64| {
            libc::off_t::try_from(o).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
        };
        // Common case: one call moves everything, no copy of the list needed.
        if self.iovs.len() <= IOV_MAX {
            match ret_len(op(self.iovs.as_slice(), to_off(offset)?)) {
                Ok(n) if n == self.total => return Ok(()),
                Ok(0) if self.total > 0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => return self.transfer_rest(n, offset, op),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.transfer_rest(0, offset, op)
    }

    /// Finishes a transfer of which `done` bytes already moved.
    fn transfer_rest(
        &self,
        done: usize,
        offset: u64,
        mut op: impl FnMut(&[libc::iovec], libc::off_t) -> isize,
    ) -> io::Result<()> {
        let mut iovs = self.iovs.as_slice().to_vec();
        let mut start = 0usize;
        let mut offset = offset;
        let mut n = done;
        loop {
            offset = offset.saturating_add(n as u64);
            // Skip the iovecs done and shorten the one cut in the middle.
            let mut left = n;
            while left > 0 {
                let Some(iov) = iovs.get_mut(start) else {
                    break;
                };
                if left >= iov.iov_len {
                    left -= iov.iov_len;
                    start += 1;
                } else {
                    // SAFETY: `left < iov_len`, so the new base stays inside the buffer.
                    iov.iov_base = unsafe { iov.iov_base.cast::<u8>().add(left) }.cast();
                    iov.iov_len -= left;
                    left = 0;
                }
            }
            while iovs.get(start).is_some_and(|iov| iov.iov_len == 0) {
                start += 1;
            }
            if start >= iovs.len() {
                return Ok(());
            }
            let batch = &iovs[start..iovs.len().min(start + IOV_MAX)];
            let off = libc::off_t::try_from(offset)
                .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
            n = match ret_len(op(batch, off)) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => return Err(e),
            };
        }
    }
}

/// Guest buffers mapped once and consumed from the front: for a device that holds many
/// available chains across requests (virtio-net's mergeable receive buffers), so each
/// chain is looked up in guest memory once, not once per frame.
///
/// It keeps its own handle on guest memory, so the mappings its host pointers refer to
/// live as long as it does.
pub struct IovQueue {
    _mem: GuestMemoryMmap,
    iovs: Vec<libc::iovec>,
    start: usize,
    total: usize,
    /// The guest memory region the last buffer was found in: a driver's buffers nearly
    /// always lie in one, so [`IovQueue::push_chain`] maps them without a search.
    region: Option<Region>,
}

/// A guest memory region: guest start, length, host address.
#[derive(Clone, Copy)]
struct Region {
    start: u64,
    len: u64,
    host: *mut u8,
}

impl Region {
    /// Whether `[addr, end)` lies in the region.
    fn holds(&self, addr: u64, end: u64) -> bool {
        addr >= self.start && self.start.checked_add(self.len).is_some_and(|e| end <= e)
    }
}

// SAFETY: the raw pointers point into guest memory that `_mem` keeps mapped; moving the
// queue to another thread moves that handle with it.
unsafe impl Send for IovQueue {}

impl IovQueue {
    /// An empty queue over `mem`.
    pub fn new(mem: &GuestMemoryMmap) -> Self {
        Self {
            _mem: mem.clone(),
            iovs: Vec::new(),
            start: 0,
            total: 0,
            region: None,
        }
    }

    /// Appends guest buffers (checked and mapped as [`IoVecs::new`] does); a buffer that
    /// starts where the last one ends extends it, so adjacent guest buffers cost the
    /// kernel one iovec. Nothing is added on error, or when the queue would hold more
    /// than one system call takes (`Ok(false)`).
    pub fn push(
        &mut self,
        bufs: impl IntoIterator<Item = (GuestAddress, u32)>,
    ) -> Result<bool, GuestMemoryError> {
        let mapped = IoVecs::new(&self._mem, bufs)?;
        let new = mapped.iovs.as_slice();
        // One slot stays free for the spill buffer of `with_spill`.
        if self.iovs.len() - self.start + new.len() >= IOV_MAX {
            return Ok(false);
        }
        for iov in new {
            append(&mut self.iovs, self.start, *iov);
        }
        self.total = self.total.saturating_add(mapped.total);
        Ok(true)
    }

    /// As [`IovQueue::push`], for one chain's buffers: each is looked up first in the
    /// region the previous one was in (the same checks: the whole buffer in one region,
    /// no wrap), and only a buffer outside it, or across regions, takes the general path.
    pub fn push_chain(&mut self, bufs: &[(GuestAddress, u32)]) -> Result<bool, GuestMemoryError> {
        let nonempty = bufs.iter().filter(|&&(_, len)| len > 0).count();
        if self.iovs.len() - self.start + nonempty >= IOV_MAX {
            return Ok(false);
        }
        let mark = (self.iovs.len(), self.iovs.last().map(|l| l.iov_len));
        let mut added = 0usize;
        for &(addr, len) in bufs {
            if len == 0 {
                continue;
            }
            let Some(host) = self.host_addr(addr, len as usize) else {
                // Undo what this chain added; the general path maps it or says why not.
                self.iovs.truncate(mark.0);
                if let (Some(len), Some(last)) = (mark.1, self.iovs.last_mut()) {
                    last.iov_len = len;
                }
                return self.push(bufs.iter().copied());
            };
            let iov = libc::iovec {
                iov_base: host.cast(),
                iov_len: len as usize,
            };
            append(&mut self.iovs, self.start, iov);
            added += len as usize;
        }
        self.total = self.total.saturating_add(added);
        Ok(true)
    }

    /// The host address of guest buffer `[addr, addr + len)` if it lies in one region.
    fn host_addr(&mut self, addr: GuestAddress, len: usize) -> Option<*mut u8> {
        let end = addr.0.checked_add(len as u64)?;
        let region = match self.region {
            Some(r) if r.holds(addr.0, end) => r,
            _ => {
                let r = self._mem.find_region(addr)?;
                let found = Region {
                    start: r.start_addr().0,
                    len: r.len(),
                    host: r.get_host_address(MemoryRegionAddress(0)).ok()?,
                };
                self.region = Some(found);
                if !found.holds(addr.0, end) {
                    return None;
                }
                found
            }
        };
        // SAFETY: `[addr, end)` lies in the region (checked above), so the offset keeps
        // the pointer inside the region's mapping, which `_mem` keeps alive.
        Some(unsafe { region.host.add((addr.0 - region.start) as usize) })
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Runs `f` with the queued buffers followed by the host buffer `spill` (if not
    /// empty), as one list.
    pub fn with_spill<R>(&mut self, spill: &mut [u8], f: impl FnOnce(&IoVecs<'_>) -> R) -> R {
        if spill.is_empty() {
            let list = IoVecs {
                iovs: IovList::Borrowed(self.iovs.get(self.start..).unwrap_or_default()),
                total: self.total,
                _mem: PhantomData,
            };
            return f(&list);
        }
        self.iovs.push(libc::iovec {
            iov_base: spill.as_mut_ptr().cast(),
            iov_len: spill.len(),
        });
        let r = {
            let list = IoVecs {
                iovs: IovList::Borrowed(self.iovs.get(self.start..).unwrap_or_default()),
                total: self.total.saturating_add(spill.len()),
                _mem: PhantomData,
            };
            f(&list)
        };
        self.iovs.pop();
        r
    }

    /// Copies the first `buf.len()` queued bytes into `buf`; false if fewer are queued.
    pub fn read_front(&self, buf: &mut [u8]) -> bool {
        self.walk_front(buf.len(), |slice, at| {
            slice.copy_to(&mut buf[at..at + slice.len()]);
        })
    }

    /// Copies `bytes` over the first queued bytes; false (nothing written) if fewer are
    /// queued.
    pub fn write_front(&self, bytes: &[u8]) -> bool {
        self.walk_front(bytes.len(), |slice, at| {
            slice.copy_from(&bytes[at..at + slice.len()]);
        })
    }

    /// Calls `f` with the first `len` queued bytes, one guest slice (and its offset in
    /// those bytes) at a time.
    fn walk_front(&self, len: usize, mut f: impl FnMut(VolatileSlice<'_>, usize)) -> bool {
        if self.total < len {
            return false;
        }
        let mut done = 0;
        for iov in self.iovs.get(self.start..).unwrap_or_default() {
            if done == len {
                break;
            }
            let n = iov.iov_len.min(len - done);
            // SAFETY: the iovec covers `iov_len` bytes of guest memory that `_mem` keeps
            // mapped, checked when it was pushed; `n <= iov_len`.
            let slice = unsafe { VolatileSlice::new(iov.iov_base.cast(), n) };
            f(slice, done);
            done += n;
        }
        done == len
    }

    /// Drops the first `bytes` queued bytes.
    pub fn pop_front(&mut self, bytes: usize) {
        let mut left = bytes.min(self.total);
        self.total -= left;
        while left > 0 {
            let Some(iov) = self.iovs.get_mut(self.start) else {
                break;
            };
            if iov.iov_len <= left {
                left -= iov.iov_len;
                self.start += 1;
            } else {
                // SAFETY: `left < iov_len`, so the new base stays inside the buffer.
                iov.iov_base = unsafe { iov.iov_base.cast::<u8>().add(left) }.cast();
                iov.iov_len -= left;
                left = 0;
            }
        }
        // Move the rest to the front now and then, not on every frame.
        if self.start == self.iovs.len() {
            self.iovs.clear();
            self.start = 0;
        } else if self.start >= IOV_MAX {
            self.iovs.drain(..self.start);
            self.start = 0;
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.iovs.clear();
        self.start = 0;
        self.total = 0;
    }
}

/// Appends an iovec to the queued ones (from `start` on), extending the last one when it starts where that one ends.
fn append(iovs: &mut Vec<libc::iovec>, start: usize, iov: libc::iovec) {
    match iovs.get_mut(start..).and_then(|q| q.last_mut()) {
        Some(last)
            if last.iov_base.cast::<u8>().wrapping_add(last.iov_len)
                == iov.iov_base.cast::<u8>() =>
        {
            last.iov_len += iov.iov_len;
        }
        _ => iovs.push(iov),
    }
}

/// Requests usually have one or two buffers: those stay inline, without allocating.
const INLINE_IOVS: usize = 4;

enum IovList<'m> {
    Inline([libc::iovec; INLINE_IOVS], usize),
    Heap(Vec<libc::iovec>),
    /// A list an [`IovQueue`] keeps (never pushed to).
    Borrowed(&'m [libc::iovec]),
}

impl IovList<'_> {
    fn new() -> Self {
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Self::Inline([empty; INLINE_IOVS], 0)
    }

    fn push(&mut self, iov: libc::iovec) {
        match self {
            Self::Inline(slots, n) => match slots.get_mut(*n) {
                Some(slot) => {
                    *slot = iov;
                    *n += 1;
                }
                None => {
                    let mut v = slots.to_vec();
                    v.push(iov);
                    *self = Self::Heap(v);
                }
            },
            Self::Heap(v) => v.push(iov),
            Self::Borrowed(b) => {
                let mut v = b.to_vec();
                v.push(iov);
                *self = Self::Heap(v);
            }
        }
    }

    fn as_slice(&self) -> &[libc::iovec] {
        match self {
            Self::Inline(slots, n) => slots.get(..*n).unwrap_or(slots),
            Self::Heap(v) => v,
            Self::Borrowed(b) => b,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }
}

fn iov_count(iovs: &[libc::iovec]) -> libc::c_int {
    // At most IOV_MAX entries are ever passed.
    iovs.len().min(IOV_MAX) as libc::c_int
}

fn ret_len(n: isize) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    use vm_memory::{Bytes, GuestMemoryMmap};

    fn mem() -> GuestMemoryMmap {
        // Two regions with a hole between them.
        GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 0x10000),
            (GuestAddress(0x10000), 0x10000),
        ])
        .unwrap()
    }

    #[test]
    fn rejects_outside_and_wrapping_buffers() {
        let m = mem();
        assert!(IoVecs::new(&m, [(GuestAddress(0x1f000), 0x2000)]).is_err());
        assert!(IoVecs::new(&m, [(GuestAddress(u64::MAX - 1), 16)]).is_err());
        assert!(IoVecs::new(&m, [(GuestAddress(0x30000), 1)]).is_err());
        let v = IoVecs::new(&m, [(GuestAddress(0x30000), 0), (GuestAddress(0x100), 8)]).unwrap();
        assert_eq!(v.len(), 8);
    }

    #[test]
    fn spans_regions_and_moves_bytes() {
        let m = mem();
        let mut f = vmm_sys_util::tempfile::TempFile::new().unwrap().into_file();
        let data: Vec<u8> = (0..0x3000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        // 0x2000 bytes across the region boundary, then 0x1000 elsewhere.
        let v = IoVecs::new(
            &m,
            [
                (GuestAddress(0xf000), 0x2000),
                (GuestAddress(0x100), 0x1000),
            ],
        )
        .unwrap();
        v.pread_exact(f.as_raw_fd(), 0).unwrap();
        let mut got = vec![0u8; 0x2000];
        m.read_slice(&mut got, GuestAddress(0xf000)).unwrap();
        assert_eq!(&got[..], &data[..0x2000]);
        // Write back one sector further on and compare.
        v.pwrite_all(f.as_raw_fd(), 0x3000).unwrap();
        let again = IoVecs::new(&m, [(GuestAddress(0x8000), 0x3000)]).unwrap();
        again.pread_exact(f.as_raw_fd(), 0x3000).unwrap();
        let mut back = vec![0u8; 0x3000];
        m.read_slice(&mut back, GuestAddress(0x8000)).unwrap();
        assert_eq!(back, data);
        // Reading past the end of file is an error.
        assert!(v.pread_exact(f.as_raw_fd(), 0x5000).is_err());
    }

    #[test]
    fn many_buffers_spill_to_the_heap_and_past_iov_max() {
        let m = mem();
        let f = vmm_sys_util::tempfile::TempFile::new().unwrap().into_file();
        let data: Vec<u8> = (0..0x3000u32).map(|i| (i % 241) as u8).collect();
        f.write_all_at(&data, 0).unwrap();
        // Six 16-byte buffers, then 2000 one-byte buffers (two system calls' worth).
        let six = IoVecs::new(&m, (0..6u64).map(|i| (GuestAddress(0x100 + 0x40 * i), 16))).unwrap();
        assert_eq!(six.len(), 96);
        six.pread_exact(f.as_raw_fd(), 0).unwrap();
        let mut got = [0u8; 16];
        m.read_slice(&mut got, GuestAddress(0x100 + 0x40 * 5))
            .unwrap();
        assert_eq!(&got[..], &data[80..96]);
        let many =
            IoVecs::new(&m, (0..2000u64).map(|i| (GuestAddress(0x8000 + 2 * i), 1))).unwrap();
        assert_eq!(many.as_slice().len(), IOV_MAX);
        many.pread_exact(f.as_raw_fd(), 0x100).unwrap();
        let mut b = [0u8; 1];
        m.read_slice(&mut b, GuestAddress(0x8000 + 2 * 1999))
            .unwrap();
        assert_eq!(b[0], data[0x100 + 1999]);
        many.pwrite_all(f.as_raw_fd(), 0x2000).unwrap();
        let mut back = vec![0u8; 2000];
        f.read_exact_at(&mut back, 0x2000).unwrap();
        assert_eq!(&back[..], &data[0x100..0x100 + 2000]);
    }

    #[test]
    fn host_prefix_comes_first() {
        let m = mem();
        m.write_slice(b"world", GuestAddress(0x200)).unwrap();
        let f = vmm_sys_util::tempfile::TempFile::new().unwrap().into_file();
        let mut hello = *b"hello ";
        let v = IoVecs::with_host_prefix(&mut hello, &m, [(GuestAddress(0x200), 5)]).unwrap();
        assert_eq!(v.len(), 11);
        v.pwrite_all(f.as_raw_fd(), 0).unwrap();
        let mut back = [0u8; 11];
        f.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back, b"hello world");
        assert!(IoVecs::with_host_prefix(&mut hello, &m, [(GuestAddress(0x30000), 1)]).is_err());
    }

    #[test]
    fn iov_queue_push_chain_checks_as_push_does() {
        let m = mem();
        let f = vmm_sys_util::tempfile::TempFile::new().unwrap().into_file();
        let data: Vec<u8> = (0..96u8).collect();
        f.write_all_at(&data, 0).unwrap();
        let mut q = IovQueue::new(&m);
        // In the first region, then the second (the cached region changes), then across
        // the boundary (the general path).
        assert!(q.push_chain(&[(GuestAddress(0x100), 16)]).unwrap());
        assert!(q.push_chain(&[(GuestAddress(0x10100), 16)]).unwrap());
        assert!(q
            .push_chain(&[(GuestAddress(0x2000), 0), (GuestAddress(0xfff8), 16)])
            .unwrap());
        assert_eq!(q.len(), 48);
        q.with_spill(&mut [], |v| v.pread_exact(f.as_raw_fd(), 0))
            .unwrap();
        let mut got = [0u8; 16];
        m.read_slice(&mut got, GuestAddress(0x10100)).unwrap();
        assert_eq!(&got[..], &data[16..32]);
        m.read_slice(&mut got, GuestAddress(0xfff8)).unwrap();
        assert_eq!(&got[..], &data[32..48]);
        // A chain whose second buffer is outside memory or wraps adds nothing, not even
        // its first buffer (which would have extended the last iovec).
        let before = q.iovs.clone();
        for bad in [(GuestAddress(0x30000), 1), (GuestAddress(u64::MAX - 1), 16)] {
            assert!(q.push_chain(&[(GuestAddress(0x10108), 8), bad]).is_err());
            assert_eq!(q.len(), 48);
            assert_eq!(q.iovs.len(), before.len());
            assert_eq!(
                q.iovs.last().map(|l| l.iov_len),
                before.last().map(|l| l.iov_len)
            );
        }
        // Adjacent buffers merge, as with `push`.
        q.clear();
        assert!(q.push_chain(&[(GuestAddress(0x2000), 8)]).unwrap());
        assert!(q
            .push_chain(&[(GuestAddress(0x2008), 8), (GuestAddress(0x2010), 8)])
            .unwrap());
        assert_eq!(q.iovs.len() - q.start, 1);
        assert_eq!(q.len(), 24);
        // And what one system call could not take is refused.
        let many: Vec<_> = (0..IOV_MAX as u64)
            .map(|i| (GuestAddress(0x8000 + 2 * i), 1))
            .collect();
        assert!(!q.push_chain(&many).unwrap());
        assert_eq!(q.len(), 24);
    }

    #[test]
    fn iov_queue_maps_once_and_consumes_from_the_front() {
        let m = mem();
        let f = vmm_sys_util::tempfile::TempFile::new().unwrap().into_file();
        let data: Vec<u8> = (0..128u8).collect();
        f.write_all_at(&data, 0).unwrap();
        let mut q = IovQueue::new(&m);
        assert!(q.is_empty());
        // Two buffers in different places, one across the region boundary.
        assert!(q.push([(GuestAddress(0xfff8), 16)]).unwrap());
        assert!(q.push([(GuestAddress(0x100), 16)]).unwrap());
        assert!(q.push([(GuestAddress(0x30000), 16)]).is_err());
        assert_eq!(q.len(), 32);
        let mut spill = [0u8; 64];
        let n = q.with_spill(&mut spill, |v| {
            assert_eq!(v.len(), 96);
            v.pread_exact(f.as_raw_fd(), 0).map(|()| v.len())
        });
        assert_eq!(n.unwrap(), 96);
        let mut got = [0u8; 16];
        m.read_slice(&mut got, GuestAddress(0x100)).unwrap();
        assert_eq!(&got[..], &data[16..32]);
        assert_eq!(&spill[..], &data[32..96]);
        let mut front = [0u8; 20];
        assert!(q.read_front(&mut front));
        assert_eq!(&front[..16], &data[..16]);
        assert_eq!(&front[16..], &data[16..20]);
        assert!(q.write_front(&[0xaa; 18]));
        assert_eq!(
            m.read_obj::<[u8; 2]>(GuestAddress(0x100)).unwrap(),
            [0xaa; 2]
        );
        assert!(!q.read_front(&mut [0u8; 33]));
        // Part of the second buffer goes too.
        q.pop_front(20);
        assert_eq!(q.len(), 12);
        q.with_spill(&mut [], |v| v.pread_exact(f.as_raw_fd(), 48))
            .unwrap();
        let mut rest = [0u8; 12];
        m.read_slice(&mut rest, GuestAddress(0x104)).unwrap();
        assert_eq!(&rest[..], &data[48..60]);
        q.pop_front(12);
        assert!(q.is_empty());
        // Adjacent buffers merge into one iovec: one read fills both.
        assert!(q.push([(GuestAddress(0x2000), 8)]).unwrap());
        assert!(q
            .push([(GuestAddress(0x2008), 8), (GuestAddress(0x2010), 8)])
            .unwrap());
        assert_eq!(q.iovs.len() - q.start, 1);
        q.with_spill(&mut [], |v| v.pread_exact(f.as_raw_fd(), 0))
            .unwrap();
        assert_eq!(
            m.read_obj::<[u8; 24]>(GuestAddress(0x2000)).unwrap()[..],
            data[..24]
        );
        q.pop_front(10);
        assert_eq!(q.len(), 14);
        assert!(q.read_front(&mut rest));
        assert_eq!(&rest[..], &data[10..22]);
        q.pop_front(100);
        assert!(q.is_empty());
        // The queue refuses what one system call could not take.
        let many = (0..IOV_MAX as u64).map(|i| (GuestAddress(0x8000 + 2 * i), 1));
        assert!(!q.push(many).unwrap());
        assert!(q.is_empty());
        q.push([(GuestAddress(0x100), 1)]).unwrap();
        q.clear();
        assert!(q.is_empty());
    }
}
