//! The virtio-mmio transport, version 2 ("modern", virtio 1.2 section 4.2.2).
//!
//! [`MmioTransport`] is the register file the guest sees in a device's 4 KiB MMIO
//! window: it negotiates features, collects the driver's queue set-up, follows the
//! device status state machine, and hands the queues to the device on DRIVER_OK.
//!
//! Queue notifications normally never reach it: the monitor registers each of
//! [`MmioTransport::queue_events`] as a KVM ioeventfd on `base + 0x050` with the queue
//! index as datamatch, and the device's event handler reads them. A QueueNotify write
//! that does reach the transport (no ioeventfd) is forwarded to the same EventFd.

use std::io;
use std::sync::{Arc, Mutex};

use virtio_bindings::bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{ActivateContext, ActivateError, ActiveQueue, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::bus::{lock, BusDevice};
use crate::irq::{IrqTrigger, VirtioInterrupt};
use crate::log::warn_limited;
use crate::metrics::{Counter, Metrics};

/// "virt", little-endian.
pub const MMIO_MAGIC_VALUE: u32 = 0x7472_6976;
/// The register layout version this transport implements.
pub const MMIO_VERSION: u32 = 2;
/// Vendor ID shown to the guest ("STRA" would not fit a PCI-style ID; any value works).
pub const MMIO_VENDOR_ID: u32 = 0x5354_5241;
/// Offset of QueueNotify: where the monitor registers the queue ioeventfds.
pub const QUEUE_NOTIFY_OFFSET: u64 = 0x050;
/// Offset where the device-specific configuration space starts.
pub const CONFIG_SPACE_OFFSET: u64 = 0x100;
/// Size of a device's MMIO window.
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;

mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
}

const ACKNOWLEDGE: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE;
const DRIVER: u32 = VIRTIO_CONFIG_S_DRIVER;
const FEATURES_OK: u32 = VIRTIO_CONFIG_S_FEATURES_OK;
const DRIVER_OK: u32 = VIRTIO_CONFIG_S_DRIVER_OK;
const NEEDS_RESET: u32 = VIRTIO_CONFIG_S_NEEDS_RESET;
const FAILED: u32 = VIRTIO_CONFIG_S_FAILED;

/// Errors from building a transport.
#[derive(Debug, thiserror::Error)]
pub enum MmioError {
    /// The device reports no queues.
    #[error("device has no queues")]
    NoQueues,
    /// A queue's maximum size is not a power of two in 1..=32768.
    #[error("invalid maximum size {size} for queue {index}")]
    QueueSize {
        /// The queue.
        index: usize,
        /// Its maximum size.
        size: u16,
    },
    /// A queue EventFd could not be created.
    #[error("creating queue eventfd: {0}")]
    EventFd(#[source] io::Error),
}

/// Transport counters.
#[derive(Debug, Default)]
struct TransportMetrics {
    activations: Counter,
    activate_failures: Counter,
    resets: Counter,
    features_refused: Counter,
    bad_accesses: Counter,
}

/// One queue's live state: its size, whether the driver made it ready, and its rings'
/// indexes in guest memory (`None` until ready, or where the rings are outside RAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueIndexes {
    /// Queue size (descriptors).
    pub size: u16,
    /// Whether the driver set QueueReady.
    pub ready: bool,
    /// The available ring's index (the driver's side).
    pub avail: Option<u16>,
    /// The used ring's index (the device's side).
    pub used: Option<u16>,
}

/// One virtio device behind a virtio-mmio v2 register window.
pub struct MmioTransport {
    device: Arc<Mutex<dyn VirtioDevice>>,
    mem: GuestMemoryMmap,
    interrupt: Arc<VirtioInterrupt>,
    queues: Vec<Queue>,
    queue_evts: Vec<EventFd>,
    status: u32,
    acked_features: u64,
    acked_unknown_features: bool,
    device_features_sel: u32,
    driver_features_sel: u32,
    queue_sel: u32,
    metrics: TransportMetrics,
}

impl MmioTransport {
    /// Builds the transport for `device`, with one queue and one (non-blocking) queue
    /// EventFd per entry of the device's `queue_max_sizes`, and its interrupt raising `irq`.
    pub fn new(
        mem: GuestMemoryMmap,
        device: Arc<Mutex<dyn VirtioDevice>>,
        irq: Arc<dyn IrqTrigger>,
    ) -> Result<Self, MmioError> {
        let sizes = lock(&device).queue_max_sizes().to_vec();
        if sizes.is_empty() {
            return Err(MmioError::NoQueues);
        }
        let mut queues = Vec::with_capacity(sizes.len());
        let mut queue_evts = Vec::with_capacity(sizes.len());
        for (index, &size) in sizes.iter().enumerate() {
            queues.push(Queue::new(size).map_err(|_| MmioError::QueueSize { index, size })?);
            queue_evts.push(EventFd::new(EFD_NONBLOCK).map_err(MmioError::EventFd)?);
        }
        Ok(Self {
            device,
            mem,
            interrupt: Arc::new(VirtioInterrupt::new(irq)),
            queues,
            queue_evts,
            status: 0,
            acked_features: 0,
            acked_unknown_features: false,
            device_features_sel: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            metrics: TransportMetrics::default(),
        })
    }

    /// The queue EventFds, in queue order. Register each as a KVM ioeventfd on
    /// `base + QUEUE_NOTIFY_OFFSET` (4 bytes) with datamatch = its index.
    pub fn queue_events(&self) -> &[EventFd] {
        &self.queue_evts
    }

    /// The device's interrupt (its InterruptStatus register and line).
    pub fn interrupt(&self) -> &Arc<VirtioInterrupt> {
        &self.interrupt
    }

    /// The device behind the transport.
    pub fn device(&self) -> &Arc<Mutex<dyn VirtioDevice>> {
        &self.device
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The features the driver acknowledged.
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// Each queue's size and, once the driver made it ready, the indexes in guest memory:
    /// `avail` (how far the driver has offered buffers) and `used` (how far the device has
    /// returned them). Read without stopping anything; a torn value is one update old.
    pub fn queue_indexes(&self) -> Vec<QueueIndexes> {
        self.queues
            .iter()
            .map(|q| {
                let ready = q.ready();
                let read =
                    |f: &dyn Fn() -> Result<std::num::Wrapping<u16>, virtio_queue::Error>| {
                        if ready {
                            f().ok().map(|w| w.0)
                        } else {
                            None
                        }
                    };
                QueueIndexes {
                    size: q.size(),
                    ready,
                    avail: read(&|| q.avail_idx(&self.mem, std::sync::atomic::Ordering::Acquire)),
                    used: read(&|| q.used_idx(&self.mem, std::sync::atomic::Ordering::Acquire)),
                }
            })
            .collect()
    }

    fn selected_queue(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    fn read_reg(&self, offset: u64) -> u32 {
        match offset {
            reg::MAGIC_VALUE => MMIO_MAGIC_VALUE,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => lock(&self.device).device_type(),
            reg::VENDOR_ID => MMIO_VENDOR_ID,
            reg::DEVICE_FEATURES => {
                let features = lock(&self.device).avail_features();
                match self.device_features_sel {
                    0 => features as u32,
                    1 => (features >> 32) as u32,
                    _ => 0,
                }
            }
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status,
            reg::CONFIG_GENERATION => lock(&self.device).config_generation(),
            _ => {
                self.metrics.bad_accesses.inc();
                warn_limited!("virtio-mmio: read of unknown register {:#x}", offset);
                0
            }
        }
    }

    fn write_reg(&mut self, offset: u64, value: u32) {
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM
            | reg::QUEUE_READY
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH => self.write_queue_reg(offset, value),
            reg::QUEUE_NOTIFY => self.notify(value),
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => self.write_status(value),
            _ => {
                self.metrics.bad_accesses.inc();
                warn_limited!("virtio-mmio: write of unknown register {:#x}", offset);
            }
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        // Features may change only between DRIVER and FEATURES_OK.
        if self.status & (DRIVER | FEATURES_OK | FAILED) != DRIVER {
            warn_limited!(
                "virtio-mmio: driver features written in status {:#x}",
                self.status
            );
            return;
        }
        let value = u64::from(value);
        match self.driver_features_sel {
            0 => self.acked_features = (self.acked_features & !0xffff_ffff) | value,
            1 => self.acked_features = (self.acked_features & 0xffff_ffff) | (value << 32),
            // No feature is defined above bit 63: acking one is acking something the
            // device does not offer, and FEATURES_OK will be refused.
            _ if value != 0 => self.acked_unknown_features = true,
            _ => {}
        }
    }

    fn avail_features(&self) -> u64 {
        lock(&self.device).avail_features()
    }

    fn write_queue_reg(&mut self, offset: u64, value: u32) {
        // Queues are set up after FEATURES_OK and before DRIVER_OK.
        if self.status & (FEATURES_OK | DRIVER_OK | FAILED) != FEATURES_OK {
            warn_limited!(
                "virtio-mmio: queue register written in status {:#x}",
                self.status
            );
            return;
        }
        let sel = self.queue_sel;
        let Some(q) = self.queues.get_mut(sel as usize) else {
            warn_limited!(
                "virtio-mmio: queue register written for missing queue {}",
                sel
            );
            return;
        };
        if offset == reg::QUEUE_READY {
            q.set_ready(value == 1);
            return;
        }
        if q.ready() {
            warn_limited!("virtio-mmio: queue {} reconfigured while ready", sel);
            return;
        }
        let lo = |old: u64| GuestAddress((old & !0xffff_ffff) | u64::from(value));
        let hi = |old: u64| GuestAddress((old & 0xffff_ffff) | (u64::from(value) << 32));
        let result = match offset {
            reg::QUEUE_NUM => match u16::try_from(value) {
                Ok(size) => q.try_set_size(size),
                Err(_) => Err(virtio_queue::Error::InvalidSize),
            },
            reg::QUEUE_DESC_LOW => q.try_set_desc_table_address(lo(q.desc_table())),
            reg::QUEUE_DESC_HIGH => q.try_set_desc_table_address(hi(q.desc_table())),
            reg::QUEUE_DRIVER_LOW => q.try_set_avail_ring_address(lo(q.avail_ring())),
            reg::QUEUE_DRIVER_HIGH => q.try_set_avail_ring_address(hi(q.avail_ring())),
            reg::QUEUE_DEVICE_LOW => q.try_set_used_ring_address(lo(q.used_ring())),
            reg::QUEUE_DEVICE_HIGH => q.try_set_used_ring_address(hi(q.used_ring())),
            _ => Ok(()),
        };
        if let Err(e) = result {
            warn_limited!(
                "virtio-mmio: queue {} register {:#x} = {:#x}: {}",
                sel,
                offset,
                value,
                e
            );
        }
    }

    fn notify(&self, value: u32) {
        match self.queue_evts.get(value as usize) {
            Some(evt) => {
                if let Err(e) = evt.write(1) {
                    warn_limited!("virtio-mmio: signalling queue {}: {}", value, e);
                }
            }
            None => warn_limited!("virtio-mmio: notify for missing queue {}", value),
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        // DEVICE_NEEDS_RESET belongs to the device; the driver writes back what it read.
        let requested = value & 0xff & !NEEDS_RESET;
        let current = self.status & !NEEDS_RESET;
        if current & !requested != 0 {
            warn_limited!(
                "virtio-mmio: driver cleared status bits ({:#x} -> {:#x})",
                current,
                value
            );
            return;
        }
        let new = requested & !current;
        if new & FAILED != 0 {
            self.status |= FAILED;
            return;
        }
        for bit in [ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK] {
            if new & bit != 0 && !self.advance(bit) {
                return;
            }
        }
        let unknown = new & !(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        if unknown != 0 {
            warn_limited!("virtio-mmio: driver set unknown status bits {:#x}", unknown);
        }
    }

    /// Takes one step of the status state machine; false when the step is refused.
    fn advance(&mut self, bit: u32) -> bool {
        let expected_before = match bit {
            ACKNOWLEDGE => 0,
            DRIVER => ACKNOWLEDGE,
            FEATURES_OK => ACKNOWLEDGE | DRIVER,
            _ => ACKNOWLEDGE | DRIVER | FEATURES_OK,
        };
        // FAILED and DEVICE_NEEDS_RESET both block progress until a reset.
        if self.status != expected_before {
            warn_limited!(
                "virtio-mmio: status bit {:#x} refused in status {:#x}",
                bit,
                self.status
            );
            return false;
        }
        match bit {
            FEATURES_OK => {
                let avail = self.avail_features();
                let acked = self.acked_features;
                if acked & !avail != 0
                    || acked & VIRTIO_F_VERSION_1 == 0
                    || self.acked_unknown_features
                {
                    self.metrics.features_refused.inc();
                    warn_limited!(
                        "virtio-mmio: refusing features {:#x} (offered {:#x})",
                        acked,
                        avail
                    );
                    return false;
                }
                self.status |= FEATURES_OK;
            }
            DRIVER_OK => {
                self.status |= DRIVER_OK;
                if let Err(e) = self.activate() {
                    self.metrics.activate_failures.inc();
                    warn_limited!("virtio-mmio: activating device failed: {}", e);
                    self.status |= NEEDS_RESET;
                    if let Err(e) = self.interrupt.signal_config_change() {
                        warn_limited!("virtio-mmio: raising config interrupt: {}", e);
                    }
                    return false;
                }
                self.metrics.activations.inc();
            }
            _ => self.status |= bit,
        }
        true
    }

    fn activate(&mut self) -> Result<(), ActivateError> {
        let mut queues = Vec::new();
        for (index, (q, evt)) in self.queues.iter().zip(&self.queue_evts).enumerate() {
            if !q.ready() {
                continue;
            }
            if !q.is_valid(&self.mem) {
                return Err(ActivateError::InvalidQueue(index));
            }
            let copy =
                Queue::try_from(q.state()).map_err(|_| ActivateError::InvalidQueue(index))?;
            queues.push(ActiveQueue {
                index,
                queue: copy,
                evt: evt.try_clone().map_err(ActivateError::Backend)?,
            });
        }
        lock(&self.device).activate(ActivateContext {
            mem: self.mem.clone(),
            queues,
            acked_features: self.acked_features,
            interrupt: self.interrupt.clone(),
        })
    }

    fn reset(&mut self) {
        lock(&self.device).reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.interrupt.clear();
        self.status = 0;
        self.acked_features = 0;
        self.acked_unknown_features = false;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        self.metrics.resets.inc();
    }

    fn bad_access(&self, what: &str, offset: u64, len: usize) {
        self.metrics.bad_accesses.inc();
        warn_limited!(
            "virtio-mmio: ignoring {} of {} bytes at {:#x}",
            what,
            len,
            offset
        );
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_SPACE_OFFSET {
            data.fill(0);
            lock(&self.device).read_config(offset - CONFIG_SPACE_OFFSET, data);
            return;
        }
        let len = data.len();
        let value = if len == 4 && offset & 3 == 0 {
            self.read_reg(offset)
        } else {
            self.bad_access("read", offset, len);
            0
        };
        if let Ok(word) = <&mut [u8; 4]>::try_from(&mut *data) {
            *word = value.to_le_bytes();
        } else {
            data.fill(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_SPACE_OFFSET {
            lock(&self.device).write_config(offset - CONFIG_SPACE_OFFSET, data);
            return;
        }
        match <[u8; 4]>::try_from(data) {
            Ok(word) if offset & 3 == 0 => self.write_reg(offset, u32::from_le_bytes(word)),
            _ => self.bad_access("write", offset, data.len()),
        }
    }
}

impl Metrics for MmioTransport {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let m = &self.metrics;
        vec![
            ("activations", m.activations.get()),
            ("activate_failures", m.activate_failures.get()),
            ("resets", m.resets.get()),
            ("features_refused", m.features_refused.get()),
            ("bad_accesses", m.bad_accesses.get()),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::{EventHandler, EventSource};
    use crate::irq::CountingTrigger;

    /// A device with two queues and an 8-byte config, recording what it is told.
    #[derive(Default)]
    struct Fake {
        config: [u8; 8],
        activations: Vec<(usize, u64)>,
        resets: usize,
        active: bool,
        fail_activate: bool,
        generation: u32,
    }

    impl EventHandler for Fake {
        fn event_sources(&self) -> Vec<EventSource> {
            Vec::new()
        }
        fn handle_event(&mut self, _token: u32) {}
    }

    impl Metrics for Fake {
        fn counters(&self) -> Vec<(&'static str, u64)> {
            Vec::new()
        }
    }

    impl VirtioDevice for Fake {
        fn device_type(&self) -> u32 {
            42
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16, 8]
        }
        fn avail_features(&self) -> u64 {
            VIRTIO_F_VERSION_1 | 0b101
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = self.config.get(offset as usize + i).copied().unwrap_or(0);
            }
        }
        fn write_config(&mut self, offset: u64, data: &[u8]) {
            for (i, b) in data.iter().enumerate() {
                if let Some(slot) = self.config.get_mut(offset as usize + i) {
                    *slot = *b;
                }
            }
        }
        fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
            if self.fail_activate {
                return Err(ActivateError::QueueCount {
                    expected: 2,
                    got: ctx.queues.len(),
                });
            }
            self.activations
                .push((ctx.queues.len(), ctx.acked_features));
            self.active = true;
            Ok(())
        }
        fn reset(&mut self) {
            self.resets += 1;
            self.active = false;
        }
        fn is_active(&self) -> bool {
            self.active
        }
        fn config_generation(&self) -> u32 {
            self.generation
        }
    }

    struct Rig {
        t: MmioTransport,
        dev: Arc<Mutex<Fake>>,
        irq: Arc<CountingTrigger>,
    }

    fn rig() -> Rig {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let dev = Arc::new(Mutex::new(Fake::default()));
        let irq = Arc::new(CountingTrigger::default());
        let t = MmioTransport::new(mem, dev.clone(), irq.clone()).unwrap();
        Rig { t, dev, irq }
    }

    fn r(t: &mut MmioTransport, off: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn w(t: &mut MmioTransport, off: u64, v: u32) {
        t.write(off, &v.to_le_bytes());
    }

    fn negotiate(t: &mut MmioTransport, features: u64) -> u32 {
        w(t, reg::STATUS, ACKNOWLEDGE);
        w(t, reg::STATUS, ACKNOWLEDGE | DRIVER);
        w(t, reg::DRIVER_FEATURES_SEL, 0);
        w(t, reg::DRIVER_FEATURES, features as u32);
        w(t, reg::DRIVER_FEATURES_SEL, 1);
        w(t, reg::DRIVER_FEATURES, (features >> 32) as u32);
        w(t, reg::STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        r(t, reg::STATUS)
    }

    fn setup_queue(t: &mut MmioTransport, index: u32, size: u32, base: u64) {
        w(t, reg::QUEUE_SEL, index);
        assert_eq!(r(t, reg::QUEUE_READY), 0);
        w(t, reg::QUEUE_NUM, size);
        w(t, reg::QUEUE_DESC_LOW, base as u32);
        w(t, reg::QUEUE_DESC_HIGH, (base >> 32) as u32);
        w(t, reg::QUEUE_DRIVER_LOW, (base + 0x1000) as u32);
        w(t, reg::QUEUE_DRIVER_HIGH, (base >> 32) as u32);
        w(t, reg::QUEUE_DEVICE_LOW, (base + 0x2000) as u32);
        w(t, reg::QUEUE_DEVICE_HIGH, (base >> 32) as u32);
        w(t, reg::QUEUE_READY, 1);
    }

    #[test]
    fn identity_registers() {
        let mut g = rig();
        assert_eq!(r(&mut g.t, reg::MAGIC_VALUE), MMIO_MAGIC_VALUE);
        assert_eq!(r(&mut g.t, reg::VERSION), 2);
        assert_eq!(r(&mut g.t, reg::DEVICE_ID), 42);
        assert_eq!(r(&mut g.t, reg::VENDOR_ID), MMIO_VENDOR_ID);
        w(&mut g.t, reg::DEVICE_FEATURES_SEL, 0);
        assert_eq!(r(&mut g.t, reg::DEVICE_FEATURES), 0b101);
        w(&mut g.t, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(r(&mut g.t, reg::DEVICE_FEATURES), 1);
        w(&mut g.t, reg::DEVICE_FEATURES_SEL, 7);
        assert_eq!(r(&mut g.t, reg::DEVICE_FEATURES), 0);
    }

    #[test]
    fn full_handshake_activates_with_ready_queues() {
        let mut g = rig();
        let status = negotiate(&mut g.t, VIRTIO_F_VERSION_1 | 0b100);
        assert_eq!(status, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        w(&mut g.t, reg::QUEUE_SEL, 0);
        assert_eq!(r(&mut g.t, reg::QUEUE_NUM_MAX), 16);
        w(&mut g.t, reg::QUEUE_SEL, 1);
        assert_eq!(r(&mut g.t, reg::QUEUE_NUM_MAX), 8);
        w(&mut g.t, reg::QUEUE_SEL, 2);
        assert_eq!(r(&mut g.t, reg::QUEUE_NUM_MAX), 0);
        setup_queue(&mut g.t, 0, 16, 0x10000);
        setup_queue(&mut g.t, 1, 8, 0x20000);
        w(&mut g.t, reg::QUEUE_SEL, 1);
        assert_eq!(r(&mut g.t, reg::QUEUE_READY), 1);
        w(&mut g.t, reg::STATUS, status | DRIVER_OK);
        assert_eq!(r(&mut g.t, reg::STATUS), status | DRIVER_OK);
        let dev = g.dev.lock().unwrap();
        assert_eq!(dev.activations, vec![(2, VIRTIO_F_VERSION_1 | 0b100)]);
        assert_eq!(g.t.queue_events().len(), 2);
    }

    #[test]
    fn queue_indexes_are_read_from_the_rings_once_ready() {
        use vm_memory::Bytes;
        let mut g = rig();
        negotiate(&mut g.t, VIRTIO_F_VERSION_1);
        let before = g.t.queue_indexes();
        assert_eq!(before.len(), 2);
        assert!(!before[0].ready && before[0].avail.is_none() && before[0].used.is_none());
        setup_queue(&mut g.t, 0, 16, 0x10000);
        // The driver has offered 7 buffers; the device has used 5 (each ring's idx is the
        // u16 after its flags).
        g.t.mem.write_obj(7u16, GuestAddress(0x11002)).unwrap();
        g.t.mem.write_obj(5u16, GuestAddress(0x12002)).unwrap();
        let q = g.t.queue_indexes();
        assert_eq!(
            q[0],
            QueueIndexes {
                size: 16,
                ready: true,
                avail: Some(7),
                used: Some(5)
            }
        );
        assert!(!q[1].ready && q[1].avail.is_none());
    }

    #[test]
    fn status_written_in_one_go_is_accepted_in_order() {
        let mut g = rig();
        w(&mut g.t, reg::STATUS, ACKNOWLEDGE | DRIVER);
        assert_eq!(r(&mut g.t, reg::STATUS), ACKNOWLEDGE | DRIVER);
        // Skipping a step is refused.
        let mut g = rig();
        w(&mut g.t, reg::STATUS, DRIVER);
        assert_eq!(r(&mut g.t, reg::STATUS), 0);
        w(&mut g.t, reg::STATUS, ACKNOWLEDGE);
        w(&mut g.t, reg::STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK);
        assert_eq!(r(&mut g.t, reg::STATUS), ACKNOWLEDGE | DRIVER);
        assert!(g.dev.lock().unwrap().activations.is_empty());
        // Clearing a bit without a reset is ignored.
        w(&mut g.t, reg::STATUS, ACKNOWLEDGE);
        assert_eq!(r(&mut g.t, reg::STATUS), ACKNOWLEDGE | DRIVER);
    }

    #[test]
    fn features_ok_refused_for_unoffered_or_missing_version_1() {
        let mut g = rig();
        assert_eq!(
            negotiate(&mut g.t, VIRTIO_F_VERSION_1 | 0b10),
            ACKNOWLEDGE | DRIVER
        );
        let mut g = rig();
        assert_eq!(negotiate(&mut g.t, 0b1), ACKNOWLEDGE | DRIVER);
        // DRIVER_OK cannot follow a refused FEATURES_OK.
        w(&mut g.t, reg::STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK);
        assert!(g.dev.lock().unwrap().activations.is_empty());
        assert_eq!(g.t.counters()[3], ("features_refused", 1));
        // Features written after FEATURES_OK are ignored.
        let mut g = rig();
        negotiate(&mut g.t, VIRTIO_F_VERSION_1);
        w(&mut g.t, reg::DRIVER_FEATURES_SEL, 0);
        w(&mut g.t, reg::DRIVER_FEATURES, 0xff);
        assert_eq!(g.t.acked_features(), VIRTIO_F_VERSION_1);
    }

    #[test]
    fn queue_registers_only_between_features_ok_and_driver_ok() {
        let mut g = rig();
        // Before FEATURES_OK: ignored.
        w(&mut g.t, reg::QUEUE_SEL, 0);
        w(&mut g.t, reg::QUEUE_READY, 1);
        assert_eq!(r(&mut g.t, reg::QUEUE_READY), 0);
        negotiate(&mut g.t, VIRTIO_F_VERSION_1);
        // Invalid sizes and misaligned rings are refused, valid ones kept.
        w(&mut g.t, reg::QUEUE_NUM, 12);
        w(&mut g.t, reg::QUEUE_NUM, 32);
        w(&mut g.t, reg::QUEUE_NUM, 0x1_0000);
        assert_eq!(g.t.queues[0].size(), 16);
        w(&mut g.t, reg::QUEUE_NUM, 4);
        assert_eq!(g.t.queues[0].size(), 4);
        w(&mut g.t, reg::QUEUE_DESC_LOW, 0x1008);
        assert_eq!(g.t.queues[0].desc_table(), 0);
        w(&mut g.t, reg::QUEUE_DESC_LOW, 0x1010);
        w(&mut g.t, reg::QUEUE_DESC_HIGH, 0x1);
        assert_eq!(g.t.queues[0].desc_table(), 0x1_0000_1010);
        w(&mut g.t, reg::QUEUE_READY, 1);
        // Ready queues keep their configuration.
        w(&mut g.t, reg::QUEUE_NUM, 8);
        assert_eq!(g.t.queues[0].size(), 4);
        // Writes for a queue that does not exist are ignored.
        w(&mut g.t, reg::QUEUE_SEL, 9);
        w(&mut g.t, reg::QUEUE_READY, 1);
        assert_eq!(r(&mut g.t, reg::QUEUE_READY), 0);
    }

    #[test]
    fn queue_outside_memory_fails_activation_with_needs_reset() {
        let mut g = rig();
        let status = negotiate(&mut g.t, VIRTIO_F_VERSION_1);
        setup_queue(&mut g.t, 0, 16, 0x1_0000_0000);
        w(&mut g.t, reg::STATUS, status | DRIVER_OK);
        assert_eq!(r(&mut g.t, reg::STATUS), status | DRIVER_OK | NEEDS_RESET);
        assert_eq!(
            r(&mut g.t, reg::INTERRUPT_STATUS),
            crate::irq::VIRTIO_INT_CONFIG
        );
        assert_eq!(g.irq.count(), 1);
        assert!(g.dev.lock().unwrap().activations.is_empty());
        // The driver writes back what it read: NEEDS_RESET stays, nothing else moves.
        w(&mut g.t, reg::STATUS, status | DRIVER_OK | NEEDS_RESET);
        assert_eq!(r(&mut g.t, reg::STATUS), status | DRIVER_OK | NEEDS_RESET);
        w(&mut g.t, reg::STATUS, 0);
        assert_eq!(r(&mut g.t, reg::STATUS), 0);
    }

    #[test]
    fn device_activation_error_sets_needs_reset() {
        let mut g = rig();
        g.dev.lock().unwrap().fail_activate = true;
        let status = negotiate(&mut g.t, VIRTIO_F_VERSION_1);
        setup_queue(&mut g.t, 0, 16, 0x10000);
        w(&mut g.t, reg::STATUS, status | DRIVER_OK);
        assert_ne!(r(&mut g.t, reg::STATUS) & NEEDS_RESET, 0);
        assert_eq!(g.t.counters()[1], ("activate_failures", 1));
    }

    #[test]
    fn failed_blocks_progress_until_reset() {
        let mut g = rig();
        w(&mut g.t, reg::STATUS, ACKNOWLEDGE);
        w(&mut g.t, reg::STATUS, ACKNOWLEDGE | FAILED);
        assert_eq!(r(&mut g.t, reg::STATUS), ACKNOWLEDGE | FAILED);
        w(&mut g.t, reg::STATUS, ACKNOWLEDGE | DRIVER | FAILED);
        assert_eq!(r(&mut g.t, reg::STATUS), ACKNOWLEDGE | FAILED);
        w(&mut g.t, reg::STATUS, 0);
        assert_eq!(r(&mut g.t, reg::STATUS), 0);
    }

    #[test]
    fn reset_returns_everything_to_defaults() {
        let mut g = rig();
        let status = negotiate(&mut g.t, VIRTIO_F_VERSION_1);
        setup_queue(&mut g.t, 0, 8, 0x10000);
        w(&mut g.t, reg::STATUS, status | DRIVER_OK);
        g.t.interrupt().signal_used_queue().unwrap();
        assert_eq!(r(&mut g.t, reg::INTERRUPT_STATUS), 1);
        w(&mut g.t, reg::STATUS, 0);
        assert_eq!(r(&mut g.t, reg::STATUS), 0);
        assert_eq!(r(&mut g.t, reg::INTERRUPT_STATUS), 0);
        assert_eq!(g.t.acked_features(), 0);
        assert_eq!(g.dev.lock().unwrap().resets, 1);
        assert!(!g.dev.lock().unwrap().active);
        w(&mut g.t, reg::QUEUE_SEL, 0);
        assert_eq!(r(&mut g.t, reg::QUEUE_READY), 0);
        assert_eq!(g.t.queues[0].size(), 16);
        assert_eq!(g.t.queues[0].desc_table(), 0);
        // And the device can be brought up again.
        let status = negotiate(&mut g.t, VIRTIO_F_VERSION_1);
        setup_queue(&mut g.t, 0, 16, 0x10000);
        w(&mut g.t, reg::STATUS, status | DRIVER_OK);
        assert_eq!(g.dev.lock().unwrap().activations.len(), 2);
    }

    #[test]
    fn interrupt_ack_clears_bits() {
        let mut g = rig();
        g.t.interrupt().signal_used_queue().unwrap();
        g.t.interrupt().signal_config_change().unwrap();
        assert_eq!(r(&mut g.t, reg::INTERRUPT_STATUS), 3);
        w(&mut g.t, reg::INTERRUPT_ACK, 1);
        assert_eq!(r(&mut g.t, reg::INTERRUPT_STATUS), 2);
        assert_eq!(g.irq.count(), 2);
    }

    #[test]
    fn direct_notify_signals_the_queue_eventfd() {
        let mut g = rig();
        w(&mut g.t, reg::QUEUE_NOTIFY, 1);
        assert_eq!(g.t.queue_events()[1].read().unwrap(), 1);
        assert!(g.t.queue_events()[0].read().is_err());
        // A missing queue is ignored.
        w(&mut g.t, reg::QUEUE_NOTIFY, 77);
    }

    #[test]
    fn config_space_and_generation_go_to_the_device() {
        let mut g = rig();
        g.t.write(0x102, &[0xaa, 0xbb]);
        let mut b = [0u8; 4];
        g.t.read(0x100, &mut b);
        assert_eq!(b, [0, 0, 0xaa, 0xbb]);
        // Beyond the device's config: zeros.
        let mut b = [0xffu8; 8];
        g.t.read(0x106, &mut b);
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 0]);
        g.dev.lock().unwrap().generation = 7;
        assert_eq!(r(&mut g.t, reg::CONFIG_GENERATION), 7);
    }

    #[test]
    fn odd_sizes_and_offsets_are_ignored() {
        let mut g = rig();
        let mut b = [0xffu8; 4];
        g.t.read(0x002, &mut b);
        assert_eq!(b, [0; 4]);
        let mut b = [0xffu8; 2];
        g.t.read(0x000, &mut b);
        assert_eq!(b, [0; 2]);
        let mut b = [0xffu8; 8];
        g.t.read(0x000, &mut b);
        assert_eq!(b, [0; 8]);
        let mut b = [0xffu8; 0];
        g.t.read(0x000, &mut b);
        // Unknown registers read zero; writes anywhere do nothing harmful.
        assert_eq!(r(&mut g.t, 0x0ac), 0);
        assert_eq!(r(&mut g.t, 0x0f8), 0);
        g.t.write(0x070, &[1, 0]);
        g.t.write(0x071, &[1, 0, 0, 0]);
        g.t.write(0x070, &[]);
        assert_eq!(r(&mut g.t, reg::STATUS), 0);
        w(&mut g.t, 0x0ac, 1);
        w(&mut g.t, u64::MAX - 3, 1);
        let mut b = [0u8; 4];
        g.t.read(u64::MAX - 3, &mut b);
        assert!(g.t.counters()[4].1 >= 6);
    }
}
