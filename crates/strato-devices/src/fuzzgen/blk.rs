//! virtio-blk requests: valid-by-construction request chains (header, data, status) of
//! every type against a small in-memory disk, rarely broken, over a few rounds on one ring.

use std::fs::File;
use std::os::fd::FromRawFd;

use strato_fuzzgen::{alloc, Source};
use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};
use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use vm_memory::GuestMemoryMmap;

use super::ring::{activation, memory, queue_size, write_lossy, Arena, Desc, Ring};
use crate::event::EventHandler;
use crate::virtio::block::backend::DiskFile;
use crate::virtio::block::{Block, QUEUE_SIZE, QUEUE_TOKEN};
use crate::virtio::{VirtioDevice, VIRTIO_F_VERSION_1};

/// The most one case may hold beyond its start: the device's per-batch lists, a zeroing
/// buffer of 1 MiB (write-zeroes on a file system without ZERO_RANGE), the harness's own.
pub const MEMORY_BOUND: usize = 4 << 20;

/// An in-memory disk of `sectors` sectors (memfd: no disk I/O).
fn disk(sectors: u64, read_only: bool) -> DiskFile {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; the result is checked.
    let fd = unsafe { libc::memfd_create(c"strato-fuzz-disk".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just created and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(sectors * 512)
        .unwrap_or_else(|e| panic!("sizing the disk: {e}"));
    // memfds are writable; a read-only drive gets a read-only descriptor, as the daemon's.
    let file = if read_only {
        File::open(format!("/proc/self/fd/{fd}")).unwrap_or_else(|e| panic!("reopening: {e}"))
    } else {
        file
    };
    DiskFile::from_file(file, "fuzz disk".into(), read_only).unwrap_or_else(|e| panic!("disk: {e}"))
}

/// Runs one case.
pub fn run(data: &[u8]) {
    alloc::bounded("virtio-blk", MEMORY_BOUND, || case(&mut Source::new(data)));
}

fn case(src: &mut Source<'_>) {
    let mem = memory();
    let read_only = src.rarely();
    let sectors = *src.pick(&[2048u64, 64, 8, 1, 0]).unwrap_or(&2048);
    let dev = if src.rarely() {
        None
    } else {
        Some(disk(sectors, read_only))
    };
    let capacity = if dev.is_some() { sectors } else { 0 };
    let mut block = Block::with_disk("vol-fuzz".into(), dev, read_only);
    let size = queue_size(src, QUEUE_SIZE);
    let mut ring = Ring::new(&mem, 0, size);
    let mut features = block.avail_features() | VIRTIO_F_VERSION_1;
    if src.bool() {
        features |= 1 << VIRTIO_RING_F_EVENT_IDX;
    }
    let (ctx, act) = activation(&mem, vec![ring.queue(QUEUE_SIZE)], features);
    if let Err(e) = block.activate(ctx) {
        panic!("activation: {e}");
    }
    let mut arena = Arena::default();
    let rounds = 1 + src.below(4);
    for _ in 0..rounds {
        let chains = 1 + src.below(u64::from(size.min(12)));
        for _ in 0..chains {
            let descs = request(&mem, src, &mut arena, capacity);
            if ring.offer(&mem, src, &descs).is_none() {
                break;
            }
        }
        if src.rarely() {
            ring.offer_stray(&mem, src.u16() % size.saturating_mul(2).max(1));
        }
        ring.maybe_break(&mem, src);
        if src.rarely() {
            // The monitor's pause path serves the ring without an event.
            let _ = block.quiesce();
        } else {
            let _ = act.evts[0].write(1);
            block.handle_event(QUEUE_TOKEN);
        }
        ring.check_used(&mem);
        ring.assert_drained();
        if ring.is_broken() {
            break;
        }
        if src.rarely() {
            if block.is_attached() {
                let _ = block.detach();
            } else {
                let _ = block.attach_disk(disk(8, false));
            }
        }
    }
    // Whatever the guest did, a reset leaves a device that a new driver can start.
    block.reset();
    assert!(!block.is_active());
}

/// One request chain: a 16-byte header, data buffers for its type, a status byte.
fn request(mem: &GuestMemoryMmap, src: &mut Source<'_>, arena: &mut Arena, cap: u64) -> Vec<Desc> {
    let types = [
        VIRTIO_BLK_T_IN,
        VIRTIO_BLK_T_OUT,
        VIRTIO_BLK_T_FLUSH,
        VIRTIO_BLK_T_GET_ID,
        VIRTIO_BLK_T_DISCARD,
        VIRTIO_BLK_T_WRITE_ZEROES,
    ];
    let kind = if src.rarely() {
        src.u32()
    } else {
        *src.pick(&types).unwrap_or(&VIRTIO_BLK_T_IN)
    };
    let sectors = 1 + src.below(16) as u32;
    let sector = if src.rarely() {
        src.u64()
    } else {
        src.below(cap.max(1) + 2)
    };
    let mut hdr = [0u8; 16];
    hdr[..4].copy_from_slice(&kind.to_le_bytes());
    hdr[8..].copy_from_slice(&sector.to_le_bytes());
    let hdr_len = if src.rarely() {
        src.below(32) as u32
    } else {
        16
    };
    let hdr_at = arena.take_hostile(src, hdr_len);
    write_lossy(mem, hdr_at, &hdr);
    let mut descs = vec![Desc {
        addr: hdr_at,
        len: hdr_len,
        write: src.rarely(),
    }];
    let device_writes = matches!(kind, VIRTIO_BLK_T_IN | VIRTIO_BLK_T_GET_ID);
    let segments = matches!(kind, VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES);
    let buffers = if kind == VIRTIO_BLK_T_FLUSH && !src.rarely() {
        0
    } else {
        1 + src.below(3)
    };
    if segments {
        let count = if src.rarely() {
            src.below(20)
        } else {
            1 + src.below(3)
        };
        let mut raw = Vec::new();
        for _ in 0..count {
            let start = if src.rarely() {
                src.u64()
            } else {
                src.below(cap.max(1))
            };
            let num = if src.rarely() {
                src.u32()
            } else {
                1 + src.below(8) as u32
            };
            let flags = if src.rarely() {
                src.u32()
            } else if kind == VIRTIO_BLK_T_WRITE_ZEROES && src.bool() {
                VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP
            } else {
                0
            };
            raw.extend_from_slice(&start.to_le_bytes());
            raw.extend_from_slice(&num.to_le_bytes());
            raw.extend_from_slice(&flags.to_le_bytes());
        }
        // The segment list, split over up to `buffers` descriptors.
        let mut rest = raw.as_slice();
        for k in 0..buffers {
            let take = if k + 1 == buffers {
                rest.len()
            } else {
                src.below(rest.len() as u64 + 1) as usize
            };
            let (now, later) = rest.split_at(take.min(rest.len()));
            rest = later;
            let len = if src.rarely() {
                src.below(64) as u32
            } else {
                now.len() as u32
            };
            let at = arena.take_hostile(src, len);
            write_lossy(mem, at, now);
            descs.push(Desc {
                addr: at,
                len,
                write: src.rarely(),
            });
        }
    } else {
        for _ in 0..buffers {
            let len = if src.rarely() {
                src.below(1 << 17) as u32
            } else if kind == VIRTIO_BLK_T_GET_ID {
                20
            } else {
                512 * (1 + src.below(u64::from(sectors)) as u32)
            };
            let at = arena.take_hostile(src, len);
            descs.push(Desc {
                addr: at,
                len,
                write: device_writes ^ src.rarely(),
            });
        }
    }
    let status_len = if src.rarely() { src.below(3) as u32 } else { 1 };
    let status = arena.take_hostile(src, status_len);
    descs.push(Desc {
        addr: status,
        len: status_len,
        write: !src.rarely(),
    });
    descs
}
