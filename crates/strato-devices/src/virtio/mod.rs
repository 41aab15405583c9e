//! Virtio devices and the virtio-mmio transport.
//!
//! A device is pure queue logic: it is handed guest memory, its queues and its
//! interrupt when the driver sets DRIVER_OK ([`VirtioDevice::activate`]), does its work
//! when the loop reports a queue or backend event ([`crate::event::EventHandler`]), and
//! drops it all again on reset.

use std::sync::Arc;

use vm_memory::GuestMemoryMmap;

use crate::event::EventHandler;
use crate::irq::VirtioInterrupt;
use crate::metrics::Metrics;
pub use common::ActiveQueue;

pub mod block;
pub(crate) mod chain;
pub mod common;
pub(crate) mod guest;
pub mod iovec;
pub mod mmio;
pub mod net;
pub mod rng;
#[cfg(test)]
pub(crate) mod test_utils;

/// Virtio device IDs (virtio 1.2, section 5).
pub mod device_type {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Entropy source.
    pub const RNG: u32 = 4;
}

/// Feature bit: the device complies with virtio 1.0+ (mandatory for virtio-mmio v2).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// Why a device could not be activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The driver configured the wrong number of queues.
    #[error("expected {expected} queues, driver set up {got}")]
    QueueCount {
        /// Queues the device needs.
        expected: usize,
        /// Queues the driver made ready.
        got: usize,
    },
    /// A queue's rings do not fit guest memory or its size is invalid.
    #[error("queue {0} is not valid")]
    InvalidQueue(usize),
    /// The backend could not be prepared.
    #[error("backend: {0}")]
    Backend(#[source] std::io::Error),
}

/// What a device is handed when the driver sets DRIVER_OK.
pub struct ActivateContext {
    /// Guest memory.
    pub mem: GuestMemoryMmap,
    /// The queues the driver made ready (in index order), with the ioeventfd the guest
    /// kicks each with.
    pub queues: Vec<ActiveQueue>,
    /// The features the driver acknowledged (a subset of the device's).
    pub acked_features: u64,
    /// The device's interrupt.
    pub interrupt: Arc<VirtioInterrupt>,
}

/// A virtio device behind a transport.
pub trait VirtioDevice: EventHandler + Metrics + Send {
    /// Virtio device ID ([`device_type`]).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Features the device offers, `VIRTIO_F_VERSION_1` included.
    fn avail_features(&self) -> u64;
    /// Reads the device-specific configuration space. Out-of-range reads give zeros.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes the configuration space. Out-of-range or read-only writes are ignored.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Starts the device with the driver's queues.
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError>;
    /// Stops the device and drops its queues (driver wrote 0 to Status).
    fn reset(&mut self);
    /// Whether the device is active.
    fn is_active(&self) -> bool;
    /// The configuration generation: a device bumps it whenever its configuration space
    /// changes on its own (a hot-attached disk, a link going down), so the driver can
    /// tell a torn multi-field read. The transport shows it in ConfigGeneration.
    fn config_generation(&self) -> u32 {
        0
    }
}
