//! The file behind a virtio-blk device: a raw image (regular file or block device).
//!
//! Reads and writes go straight between the file and guest memory with
//! `preadv`/`pwritev` (no intermediate copy); flush is `fdatasync`; discard punches
//! holes; write-zeroes zeroes ranges in place, falling back to writing zeros.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::request::SECTOR_SHIFT;
use crate::virtio::iovec::IoVecs;

/// Errors opening a disk image.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The file could not be opened.
    #[error("opening {path}: {source}")]
    Open {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A descriptor's access mode does not match the drive's.
    #[error("{path}: a {} drive needs a descriptor opened {}", if *read_only { "read-only" } else { "writable" }, if *read_only { "read-only" } else { "for reading and writing" })]
    AccessMode {
        /// The image.
        path: PathBuf,
        /// Whether the drive is read-only.
        read_only: bool,
    },
    /// The file's size could not be read.
    #[error("sizing {path}: {source}")]
    Size {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// An open disk image.
#[derive(Debug)]
pub struct DiskFile {
    file: File,
    path: PathBuf,
    read_only: bool,
    size: u64,
}

impl AsRawFd for DiskFile {
    fn as_raw_fd(&self) -> std::os::unix::io::RawFd {
        self.file.as_raw_fd()
    }
}

/// Bytes written per call when zeroing by hand.
const ZERO_CHUNK: usize = 1 << 20;

impl DiskFile {
    /// Opens the image at `path`, read-only or read-write.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, BackendError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| BackendError::Open {
                path: path.to_owned(),
                source,
            })?;
        Self::from_file(file, path.to_owned(), read_only)
    }

    /// Adopts an image someone else opened (a jailed monitor gets descriptors, not paths);
    /// `name` stands for it in messages. The descriptor's access mode must match: a
    /// read-only drive needs a read-only descriptor, so that a bug in the device can never
    /// write it, and a writable drive a writable one.
    pub fn from_file(mut file: File, name: PathBuf, read_only: bool) -> Result<Self, BackendError> {
        // SAFETY: F_GETFL takes no argument and returns the descriptor's flags.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(BackendError::Open {
                path: name,
                source: io::Error::last_os_error(),
            });
        }
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let readable = flags & libc::O_ACCMODE != libc::O_WRONLY;
        if !readable || writable == read_only {
            return Err(BackendError::AccessMode {
                path: name,
                read_only,
            });
        }
        // Seeking to the end sizes block devices as well as regular files.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|source| BackendError::Size {
                path: name.clone(),
                source,
            })?;
        Ok(Self {
            file,
            path: name,
            read_only,
            size,
        })
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the image was opened read-only.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Size in 512-byte sectors (a trailing partial sector is not exposed).
    pub fn capacity(&self) -> u64 {
        self.size >> SECTOR_SHIFT
    }

    /// Reads `bufs.len()` bytes at `offset` into guest memory.
    pub fn read(&self, bufs: &IoVecs<'_>, offset: u64) -> io::Result<()> {
        bufs.pread_exact(self.file.as_raw_fd(), offset)
    }

    /// Writes guest memory to the image at `offset`.
    pub fn write(&self, bufs: &IoVecs<'_>, offset: u64) -> io::Result<()> {
        self.writable()?;
        bufs.pwrite_all(self.file.as_raw_fd(), offset)
    }

    /// Makes earlier writes durable.
    pub fn flush(&self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data()
    }

    /// Deallocates a range. Discard is a hint: a file system that cannot punch holes
    /// leaves the data in place and the request still succeeds.
    pub fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.writable()?;
        match self.fallocate(
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
            other => other,
        }
    }

    /// Zeroes a range: by deallocating it when `unmap` allows, in place otherwise, and
    /// by writing zeros when the file system supports neither.
    pub fn write_zeroes(&self, offset: u64, len: u64, unmap: bool) -> io::Result<()> {
        self.writable()?;
        let mode = if unmap {
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
        } else {
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE
        };
        match self.fallocate(mode, offset, len) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                self.write_zeros_by_hand(offset, len)
            }
            other => other,
        }
    }

    fn write_zeros_by_hand(&self, offset: u64, len: u64) -> io::Result<()> {
        let zeros = vec![0u8; ZERO_CHUNK.min(usize::try_from(len).unwrap_or(ZERO_CHUNK))];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(zeros.len() as u64) as usize;
            let at = offset
                .checked_add(done)
                .ok_or(io::ErrorKind::InvalidInput)?;
            self.file
                .write_all_at(zeros.get(..n).unwrap_or(&zeros), at)?;
            done += n as u64;
        }
        Ok(())
    }

    fn fallocate(&self, mode: libc::c_int, offset: u64, len: u64) -> io::Result<()> {
        let off = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let len = libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: fallocate only takes integers; the descriptor is owned by `self.file`.
        let ret = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off, len) };
        if ret == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn writable(&self) -> io::Result<()> {
        if self.read_only {
            Err(io::Error::from_raw_os_error(libc::EROFS))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
    use vmm_sys_util::tempfile::TempFile;

    fn image(len: usize) -> TempFile {
        let t = TempFile::new().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8 + 1).collect();
        t.as_file().write_all(&data).unwrap();
        t
    }

    #[test]
    fn sizes_and_moves_data() {
        let t = image(4096 + 100);
        let d = DiskFile::open(t.as_path(), false).unwrap();
        assert_eq!(d.capacity(), 8);
        assert_eq!(d.path(), t.as_path());
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        m.write_slice(&[7u8; 512], GuestAddress(0x1000)).unwrap();
        let v = IoVecs::new(&m, [(GuestAddress(0x1000), 512)]).unwrap();
        d.write(&v, 1024).unwrap();
        d.flush().unwrap();
        let v = IoVecs::new(&m, [(GuestAddress(0x2000), 1536)]).unwrap();
        d.read(&v, 512).unwrap();
        let mut got = [0u8; 1536];
        m.read_slice(&mut got, GuestAddress(0x2000)).unwrap();
        assert_eq!(&got[512..1024], &[7u8; 512][..]);
        assert_eq!(got[0], (512 % 253) as u8 + 1);
    }

    #[test]
    fn read_only_refuses_writes() {
        let t = image(4096);
        let d = DiskFile::open(t.as_path(), true).unwrap();
        assert!(d.read_only());
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let v = IoVecs::new(&m, [(GuestAddress(0x1000), 512)]).unwrap();
        assert!(d.write(&v, 0).is_err());
        assert!(d.discard(0, 512).is_err());
        assert!(d.write_zeroes(0, 512, false).is_err());
        d.flush().unwrap();
    }

    #[test]
    fn discard_and_write_zeroes_read_back_zeros() {
        let t = image(1 << 16);
        let d = DiskFile::open(t.as_path(), false).unwrap();
        d.write_zeroes(4096, 4096, false).unwrap();
        d.write_zeroes(16384, 4096, true).unwrap();
        d.write_zeros_by_hand(32768, 1000).unwrap();
        let mut buf = vec![0xffu8; 4096];
        for at in [4096u64, 16384] {
            t.as_file().read_exact_at(&mut buf, at).unwrap();
            assert!(buf.iter().all(|&b| b == 0));
        }
        let mut buf = vec![0xffu8; 1001];
        t.as_file().read_exact_at(&mut buf, 32768).unwrap();
        assert!(buf[..1000].iter().all(|&b| b == 0));
        assert_ne!(buf[1000], 0);
        d.discard(0, 4096).unwrap();
        assert_eq!(d.capacity(), 128);
    }

    #[test]
    fn adopted_descriptors_must_match_the_access_mode() {
        let t = image(4096);
        let ro = File::open(t.as_path()).unwrap();
        let d = DiskFile::from_file(ro, "fd 9".into(), true).unwrap();
        assert_eq!(d.capacity(), 8);
        assert_eq!(d.path(), Path::new("fd 9"));
        let ro = File::open(t.as_path()).unwrap();
        let e = DiskFile::from_file(ro, "fd 9".into(), false).unwrap_err();
        assert!(e.to_string().contains("writable drive"), "{e}");
        let rw = OpenOptions::new()
            .read(true)
            .write(true)
            .open(t.as_path())
            .unwrap();
        let e = DiskFile::from_file(rw, "fd 9".into(), true).unwrap_err();
        assert!(e.to_string().contains("read-only drive"), "{e}");
        let wo = OpenOptions::new().write(true).open(t.as_path()).unwrap();
        assert!(DiskFile::from_file(wo, "fd 9".into(), false).is_err());
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = DiskFile::open(Path::new("/nonexistent/strato-disk.img"), true).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("opening /nonexistent/strato-disk.img"));
    }
}
