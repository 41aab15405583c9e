//! Throughput of the virtio-blk device against plain `pread` on the same file.
//!
//! Usage: `cargo run --release -p strato-devices --example blk_throughput [SIZE_MIB [seq|rand]]`
//!
//! Creates a file (256 MiB by default) in the temp directory, warms the page cache,
//! then measures sequential 1 MiB reads and random 4 KiB reads, first with `pread`
//! into a host buffer, then through the device: a simulated driver puts
//! `VIRTIO_BLK_T_IN` chains in a 256-entry queue in guest memory, kicks, and the
//! device serves them into guest memory. The offsets are the
//! same for both. Prints MiB/s and the device/raw ratio.
//!
//! The simulated driver does as little as it can (descriptor chains are written once,
//! each request only updates its header's sector and the available ring), so the
//! device's own cost dominates. Each 1 MiB request carries its data in one
//! descriptor; a Linux guest splits it into up to `seg_max` (254) segments, which
//! costs the device a longer iovec list, not extra copies.

use std::error::Error;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strato_devices::event::EventHandler;
use strato_devices::irq::{CountingTrigger, VirtioInterrupt};
use strato_devices::virtio::block::{Block, BlockConfig, QUEUE_SIZE, QUEUE_TOKEN};
use strato_devices::virtio::{ActivateContext, ActiveQueue, VirtioDevice, VIRTIO_F_VERSION_1};
use virtio_bindings::bindings::virtio_blk::{VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

type Res<T> = Result<T, Box<dyn Error>>;

const MIB: u64 = 1 << 20;
/// Where the queue's rings live in guest memory.
const RING_BASE: u64 = 0x1000;
/// Request headers, 16 bytes apart.
const HEADERS: u64 = 0x10_0000;
/// Status bytes.
const STATUSES: u64 = 0x20_0000;
/// Data buffers.
const DATA: u64 = 0x100_0000;
/// Chains use three descriptors: at most this many requests per kick.
const MAX_BATCH: usize = (QUEUE_SIZE / 3) as usize;
/// Rough time each workload (raw and device together) runs for.
const TARGET: Duration = Duration::from_millis(3000);

/// The driver half of a block queue: descriptor table at `RING_BASE`, available ring
/// 4 KiB later, used ring 4 KiB after that. Like a guest, it writes memory directly
/// (through slices mapped once) rather than looking addresses up on every access.
struct Driver<'a> {
    desc: VolatileSlice<'a>,
    avail_ring: VolatileSlice<'a>,
    used_ring: VolatileSlice<'a>,
    headers: VolatileSlice<'a>,
    statuses: VolatileSlice<'a>,
    avail: u16,
    used_seen: u16,
}

const DESC_TABLE: u64 = RING_BASE;
const AVAIL_RING: u64 = RING_BASE + 0x1000;
const USED_RING: u64 = RING_BASE + 0x2000;

impl<'a> Driver<'a> {
    fn new(mem: &'a GuestMemoryMmap) -> Res<Self> {
        let size = usize::from(QUEUE_SIZE);
        Ok(Self {
            desc: mem.get_slice(GuestAddress(DESC_TABLE), 16 * size)?,
            avail_ring: mem.get_slice(GuestAddress(AVAIL_RING), 6 + 2 * size)?,
            used_ring: mem.get_slice(GuestAddress(USED_RING), 6 + 8 * size)?,
            headers: mem.get_slice(GuestAddress(HEADERS), 16 * MAX_BATCH)?,
            statuses: mem.get_slice(GuestAddress(STATUSES), MAX_BATCH)?,
            avail: 0,
            used_seen: 0,
        })
    }

    /// Writes the descriptor chains of every batch slot once: slot `i` is a header,
    /// `len` bytes of data and a status byte. All slots read into the same data buffer,
    /// as the raw reads reuse one host buffer.
    fn prepare(&mut self, len: u32) -> Res<()> {
        let next = VRING_DESC_F_NEXT as u16;
        let write = VRING_DESC_F_WRITE as u16;
        for i in 0..MAX_BATCH {
            let head = (i * 3) as u16;
            let hdr = HEADERS + i as u64 * 16;
            self.headers.write_obj(VIRTIO_BLK_T_IN, i * 16)?;
            let descs = [
                Descriptor::new(hdr, 16, next, head + 1),
                Descriptor::new(DATA, len, next | write, head + 2),
                Descriptor::new(STATUSES + i as u64, 1, write, 0),
            ];
            for (k, d) in descs.into_iter().enumerate() {
                self.desc.write_obj(d, 16 * (usize::from(head) + k))?;
            }
        }
        Ok(())
    }

    /// Queues the request in batch slot `i`: a read at `offset`.
    fn push(&mut self, i: usize, offset: u64) -> Res<()> {
        let head = (i * 3) as u16;
        self.headers.write_obj(offset >> 9, i * 16 + 8)?;
        let slot = usize::from(self.avail % QUEUE_SIZE);
        self.avail_ring.write_obj(head, 4 + 2 * slot)?;
        self.avail = self.avail.wrapping_add(1);
        Ok(())
    }

    /// Publishes the queued requests.
    fn publish(&self) -> Res<()> {
        self.avail_ring.store(self.avail, 2, Ordering::Release)?;
        Ok(())
    }

    /// Checks that `n` requests came back, each with `len` bytes and status OK.
    fn reap(&mut self, n: usize, len: u32) -> Res<()> {
        let used: u16 = self.used_ring.load(2, Ordering::Acquire)?;
        let got = used.wrapping_sub(self.used_seen) as usize;
        if got != n {
            return Err(format!("expected {n} used entries, got {got}").into());
        }
        for k in 0..n as u16 {
            let slot = usize::from(self.used_seen.wrapping_add(k) % QUEUE_SIZE);
            let used_len: u32 = self.used_ring.read_obj(8 + 8 * slot)?;
            if used_len != len + 1 {
                return Err(format!("request {k} returned {used_len} bytes").into());
            }
        }
        self.used_seen = used;
        // The status byte of the last request.
        let status: u8 = self.statuses.read_obj(n - 1)?;
        if u32::from(status) != VIRTIO_BLK_S_OK {
            return Err(format!("request failed with status {status}").into());
        }
        Ok(())
    }
}

/// The device with its queue, activated over `mem`.
fn device<'a>(mem: &'a GuestMemoryMmap, path: &Path) -> Res<(Block, EventFd, Driver<'a>)> {
    let mut blk = Block::new(BlockConfig {
        id: "bench".into(),
        path: Some(path.to_path_buf()),
        read_only: true,
    })?;
    let mut queue = Queue::new(QUEUE_SIZE)?;
    queue.try_set_desc_table_address(GuestAddress(DESC_TABLE))?;
    queue.try_set_avail_ring_address(GuestAddress(AVAIL_RING))?;
    queue.try_set_used_ring_address(GuestAddress(USED_RING))?;
    queue.set_ready(true);
    let kick = EventFd::new(EFD_NONBLOCK)?;
    let interrupt = Arc::new(VirtioInterrupt::new(Arc::new(CountingTrigger::default())));
    blk.activate(ActivateContext {
        mem: mem.clone(),
        queues: vec![ActiveQueue {
            index: 0,
            queue,
            evt: kick.try_clone()?,
        }],
        acked_features: VIRTIO_F_VERSION_1,
        interrupt,
    })?;
    Ok((blk, kick, Driver::new(mem)?))
}

/// Runs `offsets` through the device in batches of `batch` requests of `len` bytes.
fn run_device(
    blk: &mut Block,
    kick: &EventFd,
    drv: &mut Driver<'_>,
    offsets: &[u64],
    len: u32,
    batch: usize,
) -> Res<()> {
    drv.prepare(len)?;
    for chunk in offsets.chunks(batch) {
        for (i, &off) in chunk.iter().enumerate() {
            drv.push(i, off)?;
        }
        drv.publish()?;
        kick.write(1)?;
        blk.handle_event(QUEUE_TOKEN);
        drv.reap(chunk.len(), len)?;
    }
    Ok(())
}

fn run_raw(file: &File, buf: &mut [u8], offsets: &[u64]) -> Res<()> {
    for &off in offsets {
        file.read_exact_at(buf, off)?;
    }
    Ok(())
}

/// Runs `offsets` through `raw` and `dev` in alternation (so both see the same machine
/// load) until the run is long enough to time; returns (raw, device) MiB/s.
fn compare(
    offsets: &[u64],
    len: u32,
    mut raw: impl FnMut(&[u64]) -> Res<()>,
    mut dev: impl FnMut(&[u64]) -> Res<()>,
) -> Res<(f64, f64)> {
    raw(offsets)?;
    dev(offsets)?;
    let (mut t_raw, mut t_dev, mut bytes) = (Duration::ZERO, Duration::ZERO, 0u64);
    let start = Instant::now();
    while start.elapsed() < TARGET {
        let t = Instant::now();
        raw(offsets)?;
        t_raw += t.elapsed();
        let t = Instant::now();
        dev(offsets)?;
        t_dev += t.elapsed();
        bytes += offsets.len() as u64 * u64::from(len);
    }
    let mib = bytes as f64 / MIB as f64;
    Ok((mib / t_raw.as_secs_f64(), mib / t_dev.as_secs_f64()))
}

/// A small deterministic generator for the random offsets.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn main() -> Res<()> {
    let size_mib: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(256);
    let size = size_mib * MIB;
    let path = std::env::temp_dir().join(format!("strato-blk-bench-{}.img", std::process::id()));
    {
        let mut f = File::create(&path)?;
        let chunk: Vec<u8> = (0..MIB).map(|i| (i * 7 % 251) as u8).collect();
        for _ in 0..size_mib {
            f.write_all(&chunk)?;
        }
    }
    let result = bench(&path, size);
    std::fs::remove_file(&path)?;
    result
}

fn bench(path: &Path, size: u64) -> Res<()> {
    let file = File::open(path)?;
    // Warm the page cache.
    let mut big = vec![0u8; MIB as usize];
    let seq: Vec<u64> = (0..size / MIB).map(|i| i * MIB).collect();
    run_raw(&file, &mut big, &seq)?;

    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u64> = (0..65536)
        .map(|_| xorshift(&mut state) % (size / 4096) * 4096)
        .collect();

    // Guest memory: rings, headers and statuses below 16 MiB, then data buffers.
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), (DATA + 16 * MIB) as usize * 2)])?;
    let (mut blk, kick, mut drv) = device(&mem, path)?;

    // Sanity: the device returns the file's bytes.
    run_device(&mut blk, &kick, &mut drv, &[5 * 4096], 4096, 1)?;
    let mut want = vec![0u8; 4096];
    file.read_exact_at(&mut want, 5 * 4096)?;
    let mut got = vec![0u8; 4096];
    mem.read_slice(&mut got, GuestAddress(DATA))?;
    if got != want {
        return Err("device returned the wrong data".into());
    }

    // An optional second argument picks one workload ("seq" or "rand"), for profiling.
    let only = std::env::args().nth(2).unwrap_or_default();
    let mut rows = Vec::new();
    if only != "rand" {
        let (raw, dev) = compare(
            &seq,
            MIB as u32,
            |o| run_raw(&file, &mut big, o),
            |o| run_device(&mut blk, &kick, &mut drv, o, MIB as u32, 16),
        )?;
        rows.push(("seq-1m", raw, dev));
    }
    if only != "seq" {
        let mut small = vec![0u8; 4096];
        let (raw, dev) = compare(
            &random,
            4096,
            |o| run_raw(&file, &mut small, o),
            |o| run_device(&mut blk, &kick, &mut drv, o, 4096, MAX_BATCH),
        )?;
        rows.push(("rand-4k", raw, dev));
    }

    println!("file {} MiB, page cache warm", size / MIB);
    for (name, raw, dev) in rows {
        println!(
            "{name:8} raw {raw:8.1} MiB/s device {dev:8.1} MiB/s ratio {:.2}",
            dev / raw
        );
    }
    Ok(())
}
