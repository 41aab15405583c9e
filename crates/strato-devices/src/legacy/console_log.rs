//! The console log file with a size cap: the serial console's output is appended to it
//! until it would pass the cap, then the oldest output is dropped so that the newest half
//! of the cap stays (one copy inside the file per half-cap of output, not one per write).
//!
//! The file is written through `pwrite` at the length this type tracks, never through the
//! file offset, and `O_APPEND` is cleared: on Linux `pwrite` on an `O_APPEND` descriptor
//! appends wherever it was asked to write, which would break the compaction. A log that
//! is not a regular file (a FIFO, a terminal) has no size to cap and is written as a stream.
//! Output already in the file when it is adopted counts towards the cap, so a console log
//! kept across restarts of a VM stays bounded too.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// The cap when the configuration names none: 1 MiB.
pub const DEFAULT_CONSOLE_LOG_LIMIT: u64 = 1 << 20;
/// The smallest cap accepted; smaller ones are raised to it.
pub const MIN_CONSOLE_LOG_LIMIT: u64 = 4096;
/// Bytes moved per `pread`/`pwrite` pair when dropping old output.
const COPY_CHUNK: usize = 64 << 10;

/// A console log file capped at `limit` bytes.
#[derive(Debug)]
pub struct ConsoleLog {
    file: File,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A regular file: `len` bytes of it are the log. Old output can only be kept on
    /// compaction if the descriptor is `readable`; a write-only one starts over.
    Capped {
        limit: u64,
        len: u64,
        readable: bool,
    },
    /// Anything else: written as a stream.
    Stream,
}

impl ConsoleLog {
    /// Adopts `file` as the console log, capped at `limit` bytes (at least
    /// [`MIN_CONSOLE_LOG_LIMIT`]). Output already in a regular file is kept up to the cap.
    pub fn new(file: File, limit: u64) -> io::Result<Self> {
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Ok(Self {
                file,
                kind: Kind::Stream,
            });
        }
        let readable = clear_append(&file)?;
        let mut log = Self {
            file,
            kind: Kind::Capped {
                limit: limit.max(MIN_CONSOLE_LOG_LIMIT),
                len: meta.len(),
                readable,
            },
        };
        log.append(&[])?;
        Ok(log)
    }

    /// The cap, for a regular file.
    pub fn limit(&self) -> Option<u64> {
        match self.kind {
            Kind::Capped { limit, .. } => Some(limit),
            Kind::Stream => None,
        }
    }

    /// Bytes in the log now, for a regular file.
    pub fn len(&self) -> Option<u64> {
        match self.kind {
            Kind::Capped { len, .. } => Some(len),
            Kind::Stream => None,
        }
    }

    /// Whether the log holds no output (a stream counts as empty).
    pub fn is_empty(&self) -> bool {
        self.len().unwrap_or(0) == 0
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let Kind::Capped {
            limit,
            len,
            readable,
        } = self.kind
        else {
            return self.file.write_all(data);
        };
        let n = data.len() as u64;
        let new_len = if len + n <= limit {
            self.file.write_all_at(data, len)?;
            len + n
        } else {
            // Keep the newest half of the cap, counting the new data.
            let keep = limit / 2;
            if n >= keep {
                let tail = data.get(data.len() - keep as usize..).unwrap_or(data);
                self.file.write_all_at(tail, 0)?;
                keep
            } else {
                let old = if readable { (keep - n).min(len) } else { 0 };
                self.move_down(len - old, old)?;
                self.file.write_all_at(data, old)?;
                old + n
            }
        };
        if new_len < len {
            self.file.set_len(new_len)?;
        }
        self.kind = Kind::Capped {
            limit,
            len: new_len,
            readable,
        };
        Ok(())
    }

    /// Copies `count` bytes at `from` to the start of the file, front to back (the ranges
    /// may overlap; the destination is always below the source).
    fn move_down(&self, from: u64, count: u64) -> io::Result<()> {
        let mut buf = vec![0u8; COPY_CHUNK.min(count as usize)];
        let mut done = 0u64;
        while done < count {
            let n = (count - done).min(buf.len() as u64) as usize;
            let chunk = buf.get_mut(..n).unwrap_or_default();
            self.file.read_exact_at(chunk, from + done)?;
            self.file.write_all_at(chunk, done)?;
            done += n as u64;
        }
        Ok(())
    }
}

impl AsRawFd for ConsoleLog {
    fn as_raw_fd(&self) -> std::os::unix::io::RawFd {
        self.file.as_raw_fd()
    }
}

impl Write for ConsoleLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Clears `O_APPEND`; returns whether the descriptor can be read.
fn clear_append(file: &File) -> io::Result<bool> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL take and return plain integers on a descriptor `file` owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_APPEND != 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_APPEND) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(flags & libc::O_ACCMODE != libc::O_WRONLY)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vmm_sys_util::tempfile::TempFile;

    fn log_with(existing: &[u8], limit: u64) -> (TempFile, ConsoleLog) {
        let t = TempFile::new().unwrap();
        std::fs::write(t.as_path(), existing).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(t.as_path())
            .unwrap();
        let log = ConsoleLog::new(f, limit).unwrap();
        (t, log)
    }

    fn numbered(from: usize, count: usize) -> Vec<u8> {
        (from..from + count).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn appends_below_the_cap() {
        let (t, mut log) = log_with(b"old\n", 8192);
        log.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read(t.as_path()).unwrap(), b"old\nnew\n");
        assert_eq!(log.len(), Some(8));
    }

    #[test]
    fn drops_the_oldest_output_and_keeps_the_newest() {
        let (t, mut log) = log_with(&[], 8192);
        let mut all = Vec::new();
        for i in 0..100 {
            let chunk = numbered(i * 300, 300);
            log.write_all(&chunk).unwrap();
            all.extend_from_slice(&chunk);
            let file = std::fs::read(t.as_path()).unwrap();
            assert!(file.len() as u64 <= 8192, "{} bytes", file.len());
            assert_eq!(file.len() as u64, log.len().unwrap());
            assert!(all.ends_with(&file), "the file is not the newest output");
        }
        assert!(std::fs::read(t.as_path()).unwrap().len() >= 4096);
    }

    #[test]
    fn one_write_larger_than_the_cap_keeps_its_tail() {
        let (t, mut log) = log_with(b"before", 8192);
        let big = numbered(0, 20_000);
        log.write_all(&big).unwrap();
        let file = std::fs::read(t.as_path()).unwrap();
        assert_eq!(file, &big[big.len() - 4096..]);
    }

    #[test]
    fn an_oversized_existing_log_is_cut_on_adoption() {
        let old = numbered(0, 50_000);
        let (t, log) = log_with(&old, 8192);
        let file = std::fs::read(t.as_path()).unwrap();
        assert_eq!(file, &old[old.len() - 4096..]);
        assert_eq!(log.len(), Some(4096));
    }

    #[test]
    fn a_write_only_log_starts_over_instead() {
        let t = TempFile::new().unwrap();
        std::fs::write(t.as_path(), vec![b'a'; 8000]).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(t.as_path())
            .unwrap();
        let mut log = ConsoleLog::new(f, 8192).unwrap();
        log.write_all(&[b'b'; 500]).unwrap();
        assert_eq!(std::fs::read(t.as_path()).unwrap(), vec![b'b'; 500]);
    }

    #[test]
    fn tiny_caps_are_raised_and_streams_are_not_capped() {
        let (_t, log) = log_with(&[], 10);
        assert_eq!(log.limit(), Some(MIN_CONSOLE_LOG_LIMIT));
        let mut fds = [0; 2];
        // SAFETY: pipe fills in two new descriptors, which the Files below then own.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created and nothing else owns them.
        let (r, w) = unsafe {
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
        };
        let mut log = ConsoleLog::new(w, 4096).unwrap();
        assert_eq!(log.limit(), None);
        log.write_all(b"stream").unwrap();
        drop(log);
        let mut got = String::new();
        std::io::Read::read_to_string(&mut { r }, &mut got).unwrap();
        assert_eq!(got, "stream");
    }
}
