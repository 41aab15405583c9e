//! Volume files: blank sparse volumes, clones (a reflink where the file system shares
//! extents, else a sparse copy that skips holes, with progress), and the config drive (a GNU
//! tar whose first block is a volume label named `config-2`, the format the probe guest and
//! the strato images read; `docs/images.md`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Bytes in a GiB.
pub const GIB: u64 = 1 << 30;

/// Creates a blank sparse file of `size` bytes (replacing any file there).
pub fn create_sparse(path: &Path, size: u64) -> io::Result<()> {
    let f = File::create(path)?;
    f.set_len(size)?;
    f.sync_all()
}

/// How a clone was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneKind {
    /// The file system shares the extents (FICLONE): instant, no space used.
    Reflink,
    /// The data regions were copied, holes kept.
    SparseCopy,
}

/// Copies `src` to `dst` (written through a temporary name, so that `dst` is either absent
/// or whole), then grows it to `size` bytes if that is larger. `progress` is called with
/// 0-100 as the copy goes.
pub fn clone_file(
    src: &Path,
    dst: &Path,
    size: u64,
    mut progress: impl FnMut(u8),
) -> io::Result<CloneKind> {
    let tmp = dst.with_extension("part");
    let r = clone_through(src, dst, &tmp, size, &mut progress);
    if r.is_err() {
        // A half-written copy takes the space a full disk lacks and belongs to nothing.
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// [`clone_file`]'s work, through the temporary file `tmp`.
fn clone_through(
    src: &Path,
    dst: &Path,
    tmp: &Path,
    size: u64,
    progress: &mut impl FnMut(u8),
) -> io::Result<CloneKind> {
    let input = File::open(src)?;
    let len = input.metadata()?.len();
    let output = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    // SAFETY: FICLONE takes the source descriptor by value; both descriptors are open.
    let rc = unsafe { libc::ioctl(output.as_raw_fd(), libc::FICLONE, input.as_raw_fd()) };
    let kind = if rc == 0 {
        progress(100);
        CloneKind::Reflink
    } else {
        sparse_copy(&input, &output, len, progress)?;
        CloneKind::SparseCopy
    };
    if size > len {
        output.set_len(size)?;
    }
    output.sync_all()?;
    drop(output);
    std::fs::rename(tmp, dst)?;
    Ok(kind)
}

/// Bytes free for unprivileged use on the file system that holds `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value for it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `st` a statvfs the call fills in.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Bytes a file takes on disk (its allocated blocks, not its length: volumes are sparse).
pub fn allocated_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.blocks() * 512)
}

/// Copies the data regions of `input` (found with SEEK_DATA/SEEK_HOLE) into `output` at the
/// same offsets, leaving holes as holes.
fn sparse_copy(
    input: &File,
    output: &File,
    len: u64,
    progress: &mut impl FnMut(u8),
) -> io::Result<()> {
    output.set_len(len)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos: u64 = 0;
    let mut last_pct = 0u8;
    progress(0);
    let fd = input.as_raw_fd();
    while pos < len {
        // SAFETY: lseek on an open descriptor; no memory is passed.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let err = io::Error::last_os_error();
            // ENXIO: no data after pos, the rest is a hole.
            if err.raw_os_error() == Some(libc::ENXIO) {
                break;
            }
            return Err(err);
        }
        let data = data as u64;
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
        let hole = if hole < 0 {
            len
        } else {
            (hole as u64).min(len)
        };
        let mut off = data;
        let mut reader = input;
        let mut writer = output;
        reader.seek(SeekFrom::Start(off))?;
        writer.seek(SeekFrom::Start(off))?;
        while off < hole {
            let want = ((hole - off) as usize).min(buf.len());
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            // Blocks of zeroes inside a data region stay holes in the copy.
            if buf[..n].iter().all(|&b| b == 0) {
                writer.seek(SeekFrom::Current(n as i64))?;
            } else {
                writer.write_all(&buf[..n])?;
            }
            off += n as u64;
            let pct = ((off * 100) / len.max(1)) as u8;
            if pct != last_pct {
                last_pct = pct;
                progress(pct);
            }
        }
        pos = hole;
    }
    progress(100);
    Ok(())
}

/// Writes a config drive holding `members` (name, contents) to `path`.
pub fn write_config_drive(path: &Path, members: &[(&str, &[u8])]) -> io::Result<()> {
    let mut out = Vec::new();
    out.extend_from_slice(&tar_header("config-2", 0, b'V', 0));
    for (name, data) in members {
        out.extend_from_slice(&tar_header(name, data.len() as u64, b'0', 0o644));
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, &out)?;
    std::fs::rename(&tmp, path)
}

/// One 512-byte GNU tar header.
fn tar_header(name: &str, size: u64, kind: u8, mode: u32) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(99);
    h[..n].copy_from_slice(&name.as_bytes()[..n]);
    put_octal(&mut h[100..108], mode as u64);
    put_octal(&mut h[108..116], 0);
    put_octal(&mut h[116..124], 0);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], 0);
    h[156] = kind;
    // GNU magic and version: "ustar  \0".
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// Writes `v` as a zero-padded octal field ending in NUL.
fn put_octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    let bytes = s.as_bytes();
    let start = bytes.len().saturating_sub(width);
    field[..width].copy_from_slice(&bytes[start..]);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_clone_leaves_no_part_file() {
        let dir = tempfile::tempdir().unwrap();
        // A directory opens but cannot be read: the copy fails after the part file exists.
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let dst = dir.path().join("dst.img");
        assert!(clone_file(&src, &dst, 0, |_| {}).is_err());
        assert!(!dst.exists());
        assert!(!dst.with_extension("part").exists());
    }

    #[test]
    fn sparse_copy_keeps_data_and_holes_and_grows() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        let mut f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(b"hello").unwrap();
        f.seek(SeekFrom::Start(40 << 20)).unwrap();
        f.write_all(&[7u8; 9000]).unwrap();
        drop(f);
        let mut seen = Vec::new();
        let kind = clone_file(&src, &dst, 128 << 20, |p| seen.push(p)).unwrap();
        let out = std::fs::read(&dst).unwrap();
        assert_eq!(out.len(), 128 << 20);
        assert_eq!(&out[5 << 20..(5 << 20) + 5], b"hello");
        assert!(out[40 << 20..(40 << 20) + 9000].iter().all(|&b| b == 7));
        assert_eq!(seen.last(), Some(&100));
        if kind == CloneKind::SparseCopy {
            use std::os::unix::fs::MetadataExt;
            // Far fewer blocks than 64 MiB: the holes stayed holes.
            assert!(std::fs::metadata(&dst).unwrap().blocks() * 512 < 16 << 20);
        }
        assert!(!dir.path().join("dst.part").exists());
    }

    #[test]
    fn config_drive_is_a_gnu_tar_tar_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cd.tar");
        write_config_drive(
            &path,
            &[
                ("user-data", b"echo hi\n"),
                ("meta-data", b"instance-id: i-1\n"),
            ],
        )
        .unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(&data[..8], b"config-2");
        assert_eq!(data[156], b'V');
        let out = std::process::Command::new("tar")
            .args(["-tvf"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("config-2"), "{listing}");
        assert!(listing.contains("user-data"), "{listing}");
        let cat = std::process::Command::new("tar")
            .args(["-xOf"])
            .arg(&path)
            .arg("user-data")
            .output()
            .unwrap();
        assert_eq!(cat.stdout, b"echo hi\n");
    }
}
