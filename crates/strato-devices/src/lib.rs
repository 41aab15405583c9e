//! Device models for strato-vmm.
//!
//! Everything here is device logic over guest memory (`vm-memory`) and virtqueues
//! (`virtio-queue`): no KVM, no async runtime. The monitor wires devices to KVM
//! (ioeventfd, irqfd, MMIO and port I/O exits) and to its epoll loop through the
//! small traits in [`bus`], [`irq`] and [`event`], so every device is testable without
//! a guest.
//!
//! # Wiring (what the monitor does)
//!
//! - **virtio devices**: build the device ([`virtio::block::Block`],
//!   [`virtio::net::Net`], [`virtio::rng::Rng`]) in an `Arc<Mutex<_>>`, keep a handle of
//!   the concrete type for hot attach and metrics, and wrap it in a
//!   [`virtio::mmio::MmioTransport`] with guest memory and the device's irqfd. Insert the
//!   transport on the MMIO bus at its base (window [`virtio::mmio::MMIO_WINDOW_SIZE`]),
//!   and register each of [`virtio::mmio::MmioTransport::queue_events`] as a KVM ioeventfd
//!   at `base + QUEUE_NOTIFY_OFFSET`, 4 bytes, datamatch = queue index.
//! - **event loop**: for each device, register [`event::EventHandler::event_sources`]
//!   (level-triggered, readable) with the token in the epoll data; on readiness call
//!   `handle_event(token)`. After an MMIO access or an event, if `sources_changed()`
//!   is true, remove the device's old descriptors and register the new list.
//! - **legacy devices**: [`legacy::Serial`] on the PIO bus at 0x3f8 (8 ports, IRQ 4),
//!   [`legacy::I8042`] at 0x60 (5 ports, IRQ 1). The i8042's reset EventFd (given at
//!   construction) goes into the event loop: readable means the guest asked to reboot.
//! - **split irqchip**: an [`ioapic::Ioapic`] on the MMIO bus at
//!   [`ioapic::IOAPIC_DEFAULT_BASE`], with a backend that programs KVM's GSI routing table from
//!   its routes and sends its messages with `KVM_SIGNAL_MSI`; end-of-interrupt exits go to
//!   [`ioapic::Ioapic::end_of_interrupt`]. Legacy devices raise their line through an
//!   [`ioapic::IoapicPin`], virtio devices keep their irqfd (routed by KVM).
//! - **ACPI**: [`acpi::AcpiPm`] on the PIO bus where the FADT's sleep control, sleep status
//!   and reset registers point (its power-off and reset EventFds go into the event loop), and
//!   [`acpi::Ged`] where the DSDT's generic event device has its event register, raising the
//!   GSI its `_CRS` names.
//! - **metrics**: every device and the transport implement [`metrics::Metrics`].

pub mod acpi;
pub mod bus;
pub mod event;
#[cfg(any(test, feature = "fuzzgen"))]
pub mod fuzzgen;
pub mod ioapic;
pub mod irq;
pub mod legacy;
mod log;
pub mod metrics;
pub mod virtio;

// The property tests (`fuzzgen`) bound what each case holds: count allocations.
#[cfg(test)]
#[global_allocator]
static METER: strato_fuzzgen::alloc::Meter = strato_fuzzgen::alloc::Meter;
