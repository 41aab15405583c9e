//! Device models for strato-vmm.
//!
//! Everything here is device logic over guest memory (`vm-memory`) and virtqueues
//! (`virtio-queue`): no KVM, no async runtime. The monitor wires devices to KVM
//! (ioeventfd, irqfd, MMIO and port I/O exits) and to its epoll loop through the
//! small traits in [`bus`], [`irq`] and [`event`], so every device is testable without
//! a guest.

pub mod bus;
pub mod event;
pub mod irq;
pub mod legacy;
pub(crate) mod log;
pub mod metrics;
pub mod virtio;
