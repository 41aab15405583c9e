//! How a device tells the guest something happened.
//!
//! Devices are generic over [`IrqTrigger`]: the monitor hands them an irqfd
//! ([`EventFd`]), tests hand them a counter.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

/// Raises one edge of a guest interrupt line.
pub trait IrqTrigger: Send + Sync {
    /// Raises the interrupt.
    fn trigger(&self) -> io::Result<()>;
}

impl IrqTrigger for EventFd {
    fn trigger(&self) -> io::Result<()> {
        self.write(1)
    }
}

/// Interrupt status bit for "a used ring was updated" (virtio-mmio InterruptStatus).
pub const VIRTIO_INT_VRING: u32 = 0x1;
/// Interrupt status bit for "the configuration space changed".
pub const VIRTIO_INT_CONFIG: u32 = 0x2;

/// A virtio device's interrupt: the InterruptStatus register the transport shows the
/// guest, plus the line that is raised when a bit is set.
pub struct VirtioInterrupt {
    status: AtomicU32,
    trigger: Arc<dyn IrqTrigger>,
}

impl VirtioInterrupt {
    /// Wraps a trigger.
    pub fn new(trigger: Arc<dyn IrqTrigger>) -> Self {
        Self {
            status: AtomicU32::new(0),
            trigger,
        }
    }

    /// Sets `VIRTIO_INT_VRING` and raises the line.
    pub fn signal_used_queue(&self) -> io::Result<()> {
        self.signal(VIRTIO_INT_VRING)
    }

    /// Sets `VIRTIO_INT_CONFIG` and raises the line.
    pub fn signal_config_change(&self) -> io::Result<()> {
        self.signal(VIRTIO_INT_CONFIG)
    }

    fn signal(&self, bit: u32) -> io::Result<()> {
        self.status.fetch_or(bit, Ordering::SeqCst);
        self.trigger.trigger()
    }

    /// The InterruptStatus register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// InterruptACK: clears the acknowledged bits.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Clears everything (device reset).
    pub fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
    }
}

/// A trigger that counts, for tests and for devices without a line.
#[derive(Default)]
pub struct CountingTrigger {
    count: AtomicU32,
}

impl CountingTrigger {
    /// How many times the line was raised.
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }
}

impl IrqTrigger for CountingTrigger {
    fn trigger(&self) -> io::Result<()> {
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bits_set_and_ack() {
        let t = Arc::new(CountingTrigger::default());
        let irq = VirtioInterrupt::new(t.clone());
        irq.signal_used_queue().unwrap();
        irq.signal_config_change().unwrap();
        assert_eq!(irq.status(), VIRTIO_INT_VRING | VIRTIO_INT_CONFIG);
        assert_eq!(t.count(), 2);
        irq.ack(VIRTIO_INT_VRING);
        assert_eq!(irq.status(), VIRTIO_INT_CONFIG);
        irq.clear();
        assert_eq!(irq.status(), 0);
    }
}
