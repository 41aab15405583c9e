//! virtio-rng: an entropy source backed by the host's `getrandom`.
//!
//! One request queue; every chain is a list of device-writable buffers that the
//! device fills with random bytes, up to [`MAX_REQUEST_BYTES`] per chain.

use std::io;
use std::os::unix::io::AsRawFd;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestMemoryMmap};

use super::chain::{BrokenChain, DescTable};
use super::common::{fixed_queues, signal_used, ActiveQueue, VirtioCommon};
use super::{device_type, ActivateContext, ActivateError, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::event::{EventHandler, EventSource};
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

/// Size of the request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Event token of the request queue.
pub const QUEUE_TOKEN: u32 = 0;
/// Most bytes handed out per chain.
pub const MAX_REQUEST_BYTES: usize = 64 << 10;

#[derive(Debug, Default)]
struct RngMetrics {
    requests: Counter,
    bytes: Counter,
    invalid_chains: Counter,
    entropy_errors: Counter,
    queue_events: Counter,
}

/// A virtio entropy device.
pub struct Rng {
    id: String,
    common: VirtioCommon<[ActiveQueue; 1]>,
    buf: Vec<u8>,
    metrics: RngMetrics,
}

impl Rng {
    /// Builds the device; `id` names it in logs.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            common: VirtioCommon::new(),
            buf: vec![0; MAX_REQUEST_BYTES],
            metrics: RngMetrics::default(),
        }
    }

    fn process_queue(&mut self) {
        let Self {
            common,
            buf,
            metrics,
            id,
        } = self;
        let Some(active) = common.active_mut() else {
            return;
        };
        let mem = &active.mem;
        let [ActiveQueue { queue, .. }] = &mut active.queues;
        let mut used = false;
        let table = DescTable::new(mem, queue);
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let len = match fill_chain(mem, table.collect(head), buf) {
                Ok(n) => {
                    metrics.requests.inc();
                    metrics.bytes.add(u64::from(n));
                    n
                }
                Err(FillError::Invalid) => {
                    metrics.invalid_chains.inc();
                    warn_limited!("virtio-rng {}: invalid chain {}", id, head);
                    0
                }
                Err(FillError::Entropy(e)) => {
                    metrics.entropy_errors.inc();
                    warn_limited!("virtio-rng {}: getrandom: {}", id, e);
                    0
                }
            };
            if let Err(e) = queue.add_used(mem, head, len) {
                warn_limited!("virtio-rng {}: returning descriptor {}: {}", id, head, e);
            }
            used = true;
        }
        if used {
            if let Err(e) = signal_used(queue, mem, &active.interrupt) {
                warn_limited!("virtio-rng {}: used-ring interrupt: {}", id, e);
            }
        }
    }
}

enum FillError {
    Invalid,
    Entropy(io::Error),
}

/// Fills the chain's buffers; returns the bytes written.
fn fill_chain(
    mem: &GuestMemoryMmap,
    descs: Result<Vec<Descriptor>, BrokenChain>,
    buf: &mut [u8],
) -> Result<u32, FillError> {
    let descs = descs.map_err(|_| FillError::Invalid)?;
    if descs.iter().any(|d| !d.is_write_only()) {
        return Err(FillError::Invalid);
    }
    let mut written = 0usize;
    for d in descs {
        let room = MAX_REQUEST_BYTES - written;
        let n = (d.len() as usize).min(room);
        if n == 0 {
            continue;
        }
        let chunk = buf.get_mut(..n).ok_or(FillError::Invalid)?;
        getrandom(chunk).map_err(FillError::Entropy)?;
        mem.write_slice(chunk, d.addr())
            .map_err(|_| FillError::Invalid)?;
        written += n;
    }
    // At most MAX_REQUEST_BYTES.
    Ok(written as u32)
}

/// Fills `buf` from the host's entropy pool.
fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => done += n,
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

impl EventHandler for Rng {
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
            warn_limited!("virtio-rng {}: unknown event token {}", self.id, token);
            return;
        }
        let _ = active.queues[0].evt.read();
        self.metrics.queue_events.inc();
        self.process_queue();
    }

    fn sources_changed(&mut self) -> bool {
        self.common.take_sources_changed()
    }
}

impl Metrics for Rng {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("requests", m.requests.get()),
            ("bytes", m.bytes.get()),
            ("invalid_chains", m.invalid_chains.get()),
            ("entropy_errors", m.entropy_errors.get()),
            ("queue_events", m.queue_events.get()),
        ]
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        device_type::RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn avail_features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        warn_limited!(
            "virtio-rng {}: config write of {} bytes at {:#x}",
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::virtio::test_utils::{activation, counter, mem, Handles, TestQueue, W};
    use vm_memory::GuestAddress;

    fn rig(m: &GuestMemoryMmap) -> (Rng, TestQueue<'_>, Handles) {
        let mut dev = Rng::new("rng0");
        let q = TestQueue::new(m, 0x1000, QUEUE_SIZE);
        let (ctx, h) = activation(m, vec![q.queue()], VIRTIO_F_VERSION_1);
        dev.activate(ctx).unwrap();
        (dev, q, h)
    }

    #[test]
    fn fills_writable_buffers() {
        let m = mem(0x100_0000);
        let (mut dev, mut q, h) = rig(&m);
        q.add(&[(0x20000, 64, W), (0x30000, 64, W)]);
        h.evts[0].write(1).unwrap();
        dev.handle_event(QUEUE_TOKEN);
        assert_eq!(q.used(0), (0, 128));
        let mut a = [0u8; 64];
        m.read_slice(&mut a, GuestAddress(0x30000)).unwrap();
        assert_ne!(a, [0u8; 64]);
        assert_eq!(h.irq.count(), 1);
        assert_eq!(counter(&dev, "bytes"), 128);
    }

    #[test]
    fn caps_large_requests() {
        let m = mem(0x100_0000);
        let (mut dev, mut q, _h) = rig(&m);
        q.add(&[(0x100000, 0x20000, W), (0x200000, 0x100, W)]);
        dev.handle_event(QUEUE_TOKEN);
        assert_eq!(q.used(0).1 as usize, MAX_REQUEST_BYTES);
    }

    #[test]
    fn refuses_readable_and_outside_buffers() {
        let m = mem(0x100_0000);
        let (mut dev, mut q, _h) = rig(&m);
        q.add(&[(0x20000, 64, 0)]);
        q.add(&[(0x2000_0000, 64, W)]);
        q.add(&[(0x20000, 0, W)]);
        dev.handle_event(QUEUE_TOKEN);
        assert_eq!(q.used_idx(), 3);
        assert_eq!(q.used(0).1, 0);
        assert_eq!(q.used(1).1, 0);
        assert_eq!(q.used(2).1, 0);
        assert_eq!(counter(&dev, "invalid_chains"), 2);
    }

    #[test]
    fn inactive_device_ignores_events_and_config() {
        let mut dev = Rng::new("rng0");
        assert!(dev.event_sources().is_empty());
        dev.handle_event(QUEUE_TOKEN);
        let mut b = [0xffu8; 4];
        dev.read_config(0, &mut b);
        assert_eq!(b, [0; 4]);
        assert_eq!(dev.device_type(), device_type::RNG);
        let m = mem(0x10_0000);
        let (ctx, _h) = activation(&m, Vec::new(), VIRTIO_F_VERSION_1);
        assert!(dev.activate(ctx).is_err());
    }
}
