//! virtio-blk over a raw image file, with hot attach and detach.
//!
//! One request queue. On its ioeventfd the device drains every available chain,
//! parses it ([`request`]), runs it against the image ([`backend`]), writes the status
//! byte, and raises one used-ring interrupt per batch. An empty slot (no image) shows
//! capacity 0 and fails every request with IOERR until [`Block::attach`].

use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::chain::{BrokenChain, DescTable};
use super::common::{fixed_queues, read_config, signal_used, ActiveQueue, VirtioCommon};
use super::guest::write_bytes;
use super::iovec::IoVecs;
use super::{device_type, ActivateContext, ActivateError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::event::{EventHandler, EventSource};
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

pub mod backend;
pub mod request;

use backend::{BackendError, DiskFile};
use request::{ParseError, Request, RequestKind, Segment, MAX_SEGMENTS, MAX_SEGMENT_SECTORS};

/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Event token of the request queue.
pub const QUEUE_TOKEN: u32 = 0;
/// Length of the config space this device shows.
const CONFIG_LEN: usize = 60;
/// Discard granularity, in sectors (4 KiB).
const DISCARD_ALIGNMENT: u32 = 8;

/// How to build a [`Block`].
#[derive(Debug, Clone)]
pub struct BlockConfig {
    /// The drive ID, answered to GET_ID (first 20 bytes).
    pub id: String,
    /// The image; `None` for an empty hot-attach slot.
    pub path: Option<PathBuf>,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// Errors from building or changing a block device.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The image could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Detach of an empty slot.
    #[error("no disk is attached")]
    NotAttached,
    /// Attach to a slot that holds a disk (detach it first).
    #[error("slot is occupied: it holds {0}")]
    Occupied(PathBuf),
    /// The image could not be made durable.
    #[error("cannot flush {0}")]
    Flush(PathBuf, #[source] io::Error),
}

/// Block device counters.
#[derive(Debug, Default)]
struct BlockMetrics {
    read_ops: Counter,
    write_ops: Counter,
    read_bytes: Counter,
    write_bytes: Counter,
    flush_ops: Counter,
    discard_ops: Counter,
    write_zeroes_ops: Counter,
    get_id_ops: Counter,
    io_errors: Counter,
    unsupported: Counter,
    invalid_requests: Counter,
    queue_events: Counter,
    config_changes: Counter,
}

enum Slot {
    Empty,
    Attached(DiskFile),
}

/// A virtio-blk device.
pub struct Block {
    id: String,
    serial: [u8; VIRTIO_BLK_ID_BYTES as usize],
    slot: Slot,
    read_only: bool,
    generation: u32,
    common: VirtioCommon<[ActiveQueue; 1]>,
    metrics: BlockMetrics,
}

impl Block {
    /// Builds the device, opening the image if there is one.
    pub fn new(config: BlockConfig) -> Result<Self, BlockError> {
        let disk = match &config.path {
            Some(path) => Some(DiskFile::open(path, config.read_only)?),
            None => None,
        };
        Ok(Self::with_disk(config.id, disk, config.read_only))
    }

    fn empty(id: String, read_only: bool) -> Self {
        let mut serial = [0u8; VIRTIO_BLK_ID_BYTES as usize];
        for (dst, src) in serial.iter_mut().zip(id.bytes()) {
            *dst = src;
        }
        Self {
            id,
            serial,
            slot: Slot::Empty,
            read_only,
            generation: 0,
            common: VirtioCommon::new(),
            metrics: BlockMetrics::default(),
        }
    }

    /// The drive ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The attached image, if any.
    pub fn path(&self) -> Option<&Path> {
        match &self.slot {
            Slot::Attached(disk) => Some(disk.path()),
            Slot::Empty => None,
        }
    }

    /// Whether an image is attached.
    pub fn is_attached(&self) -> bool {
        matches!(self.slot, Slot::Attached(_))
    }

    /// Whether the guest may only read.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Capacity in 512-byte sectors (0 for an empty slot).
    pub fn capacity(&self) -> u64 {
        match &self.slot {
            Slot::Attached(disk) => disk.capacity(),
            Slot::Empty => 0,
        }
    }

    /// Builds the device around an image that is already open (or none).
    pub fn with_disk(id: String, disk: Option<DiskFile>, read_only: bool) -> Self {
        let mut block = Self::empty(id, read_only);
        if let Some(disk) = disk {
            block.slot = Slot::Attached(disk);
        }
        block
    }

    /// Attaches an image that is already open, as [`Block::attach`] (an occupied slot is
    /// refused the same way).
    pub fn attach_disk(&mut self, disk: DiskFile) -> Result<(), BlockError> {
        if let Slot::Attached(held) = &self.slot {
            return Err(BlockError::Occupied(held.path().to_owned()));
        }
        self.read_only = disk.read_only();
        self.slot = Slot::Attached(disk);
        self.config_changed();
        Ok(())
    }

    /// Attaches the image to an empty slot; a slot that holds a disk is refused (a
    /// silent replacement would pull a disk from under the guest and leave whoever asked
    /// for the first attach believing it is still there). The guest sees the new
    /// capacity through a configuration change interrupt when the device is active.
    ///
    /// The RO feature bit is negotiated once, when the driver starts: attaching a
    /// read-only image to a device the guest already sees as writable makes its writes
    /// fail with IOERR.
    pub fn attach(&mut self, path: &Path, read_only: bool) -> Result<(), BlockError> {
        if let Slot::Attached(disk) = &self.slot {
            return Err(BlockError::Occupied(disk.path().to_owned()));
        }
        let disk = DiskFile::open(path, read_only)?;
        self.slot = Slot::Attached(disk);
        self.read_only = read_only;
        self.config_changed();
        Ok(())
    }

    /// Detaches the image, leaving an empty slot.
    pub fn detach(&mut self) -> Result<(), BlockError> {
        if let Slot::Empty = self.slot {
            return Err(BlockError::NotAttached);
        }
        self.slot = Slot::Empty;
        self.config_changed();
        Ok(())
    }

    /// Serves every request the driver has published and makes the image durable: with
    /// the vCPUs parked nothing new can arrive, so afterwards the file holds every write
    /// the guest has issued and can be copied whole (a crash-consistent image). Requests
    /// whose queue notification the event loop has not handled yet are served here, not
    /// left behind. Returns how many requests were served.
    pub fn quiesce(&mut self) -> Result<u64, BlockError> {
        let served = self.process_queue();
        if let Slot::Attached(disk) = &self.slot {
            disk.flush()
                .map_err(|e| BlockError::Flush(disk.path().to_owned(), e))?;
        }
        Ok(served)
    }

    fn config_changed(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.metrics.config_changes.inc();
        if let Some(active) = self.common.active() {
            if let Err(e) = active.interrupt.signal_config_change() {
                warn_limited!("virtio-blk {}: config interrupt: {}", self.id, e);
            }
        }
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut c = [0u8; CONFIG_LEN];
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(dst) = c.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        };
        put(0, &self.capacity().to_le_bytes());
        // seg_max: the queue size less the header and status descriptors.
        put(12, &(u32::from(QUEUE_SIZE) - 2).to_le_bytes());
        put(20, &512u32.to_le_bytes());
        put(34, &1u16.to_le_bytes());
        put(36, &MAX_SEGMENT_SECTORS.to_le_bytes());
        put(40, &MAX_SEGMENTS.to_le_bytes());
        put(44, &DISCARD_ALIGNMENT.to_le_bytes());
        put(48, &MAX_SEGMENT_SECTORS.to_le_bytes());
        put(52, &MAX_SEGMENTS.to_le_bytes());
        put(56, &[1]);
        c
    }

    /// Serves the published chains; how many.
    fn process_queue(&mut self) -> u64 {
        let Self {
            common,
            slot,
            serial,
            metrics,
            id,
            ..
        } = self;
        let Some(active) = common.active_mut() else {
            return 0;
        };
        let mem = &active.mem;
        let [ActiveQueue {
            queue,
            evt: queue_evt,
            ..
        }] = &mut active.queues;
        let mut used = false;
        let mut served = 0;
        // Take every chain the driver has published (one read of the available index),
        // then serve them: at most a ring's worth per event.
        let heads: Vec<u16> = match queue.iter(mem) {
            Ok(iter) => iter.map(|chain| chain.head_index()).collect(),
            Err(e) => {
                warn_limited!("virtio-blk {}: reading the available ring: {}", id, e);
                Vec::new()
            }
        };
        let table = DescTable::new(mem, queue);
        for head in heads {
            let len = run_chain(slot, serial, metrics, mem, table.collect(head));
            if let Err(e) = queue.add_used(mem, head, len) {
                warn_limited!("virtio-blk {}: returning descriptor {}: {}", id, head, e);
            }
            used = true;
            served += 1;
        }
        // More published meanwhile: come back through the event loop, so one busy
        // queue cannot starve the other devices.
        let pending = queue
            .avail_idx(mem, Ordering::Acquire)
            .is_ok_and(|idx| idx.0 != queue.next_avail());
        if used && pending {
            if let Err(e) = queue_evt.write(1) {
                warn_limited!("virtio-blk {}: re-arming the queue: {}", id, e);
            }
        }
        if used {
            if let Err(e) = signal_used(queue, mem, &active.interrupt) {
                warn_limited!("virtio-blk {}: used-ring interrupt: {}", id, e);
            }
        }
        served
    }
}

/// Runs one chain; returns the used length (bytes written to guest buffers).
fn run_chain(
    slot: &Slot,
    serial: &[u8],
    metrics: &BlockMetrics,
    mem: &GuestMemoryMmap,
    descs: Result<Vec<Descriptor>, BrokenChain>,
) -> u32 {
    let capacity = match slot {
        Slot::Attached(disk) => disk.capacity(),
        Slot::Empty => 0,
    };
    let parsed = descs
        .map_err(|_| ParseError {
            status: None,
            error: request::RequestError::BrokenChain,
        })
        .and_then(|descs| request::parse_descriptors(descs, mem, capacity));
    let outcome = match parsed {
        Ok(req) => {
            let (code, written) = execute(slot, serial, metrics, mem, &req);
            Some((req.status, code, written))
        }
        Err(ParseError { status, error }) => {
            metrics.invalid_requests.inc();
            warn_limited!("virtio-blk: invalid request: {}", error);
            let code = match error {
                request::RequestError::SegmentFlags(_) => VIRTIO_BLK_S_UNSUPP,
                _ => VIRTIO_BLK_S_IOERR,
            };
            status.map(|at| (at, code, 0))
        }
    };
    let Some((at, code, written)) = outcome else {
        return 0;
    };
    // The status address was checked when the chain was parsed.
    if write_bytes(mem, at, &[code as u8]) {
        written.saturating_add(1)
    } else {
        0
    }
}

/// Runs a parsed request: (status, bytes written to guest buffers).
fn execute(
    slot: &Slot,
    serial: &[u8],
    metrics: &BlockMetrics,
    mem: &GuestMemoryMmap,
    req: &Request,
) -> (u32, u32) {
    let Slot::Attached(disk) = slot else {
        metrics.io_errors.inc();
        return (VIRTIO_BLK_S_IOERR, 0);
    };
    let io_result = |r: io::Result<()>, what: &str| match r {
        Ok(()) => true,
        Err(e) => {
            metrics.io_errors.inc();
            warn_limited!(
                "virtio-blk {}: {} failed: {}",
                disk.path().display(),
                what,
                e
            );
            false
        }
    };
    let ok = |done: bool, written: u32| {
        if done {
            (VIRTIO_BLK_S_OK, written)
        } else {
            (VIRTIO_BLK_S_IOERR, 0)
        }
    };
    match &req.kind {
        RequestKind::In => {
            let done = io_result(
                IoVecs::new(mem, req.buffers())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
                    .and_then(|bufs| disk.read(&bufs, req.offset())),
                "read",
            );
            if done {
                metrics.read_ops.inc();
                metrics.read_bytes.add(u64::from(req.data_len));
            }
            ok(done, req.data_len)
        }
        RequestKind::Out => {
            if disk.read_only() {
                metrics.io_errors.inc();
                warn_limited!(
                    "virtio-blk {}: write to a read-only disk",
                    disk.path().display()
                );
                return ok(false, 0);
            }
            let done = io_result(
                IoVecs::new(mem, req.buffers())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
                    .and_then(|bufs| disk.write(&bufs, req.offset())),
                "write",
            );
            if done {
                metrics.write_ops.inc();
                metrics.write_bytes.add(u64::from(req.data_len));
            }
            ok(done, 0)
        }
        RequestKind::Flush => {
            let done = io_result(disk.flush(), "flush");
            if done {
                metrics.flush_ops.inc();
            }
            ok(done, 0)
        }
        RequestKind::GetId => {
            metrics.get_id_ops.inc();
            ok(true, write_buffers(mem, req.buffers(), serial))
        }
        RequestKind::Discard(segments) => {
            let done = io_result(
                run_segments(segments, |o, l, _| disk.discard(o, l)),
                "discard",
            );
            if done {
                metrics.discard_ops.inc();
            }
            ok(done, 0)
        }
        RequestKind::WriteZeroes(segments) => {
            let done = io_result(
                run_segments(segments, |o, l, unmap| disk.write_zeroes(o, l, unmap)),
                "write zeroes",
            );
            if done {
                metrics.write_zeroes_ops.inc();
            }
            ok(done, 0)
        }
        RequestKind::Unsupported(t) => {
            metrics.unsupported.inc();
            warn_limited!(
                "virtio-blk {}: unsupported request type {}",
                disk.path().display(),
                t
            );
            (VIRTIO_BLK_S_UNSUPP, 0)
        }
    }
}

fn run_segments(
    segments: &[Segment],
    mut op: impl FnMut(u64, u64, bool) -> io::Result<()>,
) -> io::Result<()> {
    for s in segments {
        // Ranges were checked against the capacity (and for overflow) when parsed.
        op(
            s.sector << request::SECTOR_SHIFT,
            u64::from(s.num_sectors) << request::SECTOR_SHIFT,
            s.unmap,
        )?;
    }
    Ok(())
}

/// Copies `src` into the guest buffers, as far as they go; returns the bytes written.
fn write_buffers(
    mem: &GuestMemoryMmap,
    bufs: impl Iterator<Item = (GuestAddress, u32)>,
    src: &[u8],
) -> u32 {
    let mut done = 0usize;
    for (addr, len) in bufs {
        let Some(rest) = src.get(done..).filter(|r| !r.is_empty()) else {
            break;
        };
        let n = rest.len().min(len as usize);
        if n == 0 {
            continue;
        }
        if mem
            .write_slice(rest.get(..n).unwrap_or_default(), addr)
            .is_err()
        {
            break;
        }
        done += n;
    }
    // At most `src.len()` (20 bytes).
    done as u32
}

impl EventHandler for Block {
    fn event_sources(&self) -> Vec<EventSource> {
        match self.common.active() {
            Some(a) => vec![EventSource {
                fd: a.queues[0].evt.as_raw_fd(),
                token: QUEUE_TOKEN,
            }],
            None => Vec::new(),
        }
    }

    fn handle_event(&mut self, token: u32) {
        let Some(active) = self.common.active() else {
            return;
        };
        if token != QUEUE_TOKEN {
            warn_limited!("virtio-blk {}: unknown event token {}", self.id, token);
            return;
        }
        // Non-blocking: nothing to read is fine, the queue is processed anyway.
        let _ = active.queues[0].evt.read();
        self.metrics.queue_events.inc();
        self.process_queue();
    }

    fn sources_changed(&mut self) -> bool {
        self.common.take_sources_changed()
    }
}

impl Metrics for Block {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("read_ops", m.read_ops.get()),
            ("write_ops", m.write_ops.get()),
            ("read_bytes", m.read_bytes.get()),
            ("write_bytes", m.write_bytes.get()),
            ("flush_ops", m.flush_ops.get()),
            ("discard_ops", m.discard_ops.get()),
            ("write_zeroes_ops", m.write_zeroes_ops.get()),
            ("get_id_ops", m.get_id_ops.get()),
            ("io_errors", m.io_errors.get()),
            ("unsupported", m.unsupported.get()),
            ("invalid_requests", m.invalid_requests.get()),
            ("queue_events", m.queue_events.get()),
            ("config_changes", m.config_changes.get()),
        ]
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        device_type::BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn avail_features(&self) -> u64 {
        let mut f = VIRTIO_F_VERSION_1
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_BLK_SIZE
            | 1 << VIRTIO_BLK_F_FLUSH;
        if self.read_only {
            f |= 1 << VIRTIO_BLK_F_RO;
        } else {
            f |= 1 << VIRTIO_BLK_F_DISCARD | 1 << VIRTIO_BLK_F_WRITE_ZEROES;
        }
        f
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config(&self.config_bytes(), offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Nothing writable (no WCE).
        warn_limited!(
            "virtio-blk {}: config write of {} bytes at {:#x}",
            self.id,
            data.len(),
            offset
        );
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        self.common
            .activate(ctx, |queues, _, _| fixed_queues(queues))
    }

    fn reset(&mut self) {
        self.common.reset();
    }

    fn is_active(&self) -> bool {
        self.common.is_active()
    }

    fn config_generation(&self) -> u32 {
        self.generation
    }
}

#[cfg(test)]
mod tests;
