//! The VM's interrupt controllers, in one of the two modes of the config's `irqchip` field.
//!
//! - **split** (`KVM_CAP_SPLIT_IRQCHIP`): the local APICs stay in KVM; the IOAPIC is
//!   [`strato_devices::ioapic::Ioapic`] on the MMIO bus at 0xfec00000; there is no 8259 PIC and
//!   no PIT. Each IOAPIC pin `n` is GSI `n` in KVM's routing table, as an MSI built from its
//!   redirection entry, so a virtio device's irqfd on GSI `n` is delivered by KVM straight to
//!   the local APICs. The UART and the i8042 raise their pins through the userspace IOAPIC
//!   ([`strato_devices::ioapic::IoapicPin`]), which sends with `KVM_SIGNAL_MSI`. KVM reports
//!   the end of a level-triggered interrupt with `KVM_EXIT_IOAPIC_EOI`, which the vCPU hands
//!   to the IOAPIC. Linux runs on this as it does on Cloud Hypervisor: it finds no PIC, and
//!   times with the local APIC (TSC deadline mode, see `cpuid::set_tsc_deadline`).
//!   Destroying such a VM takes a fraction of a millisecond.
//! - **kernel**: KVM's PIC pair, IOAPIC and local APICs (`KVM_CREATE_IRQCHIP`) and its PIT
//!   (`KVM_CREATE_PIT2`), for guests that need an 8259 or a PIT. Destroying them costs tens of
//!   milliseconds on a nested host (docs/performance.md).
//!
//! Devices raise a GSI the same way in both modes: a KVM irqfd on the GSI
//! ([`crate::devices::irqfd`]); only the routing behind it differs. [`Irqchip::platform`] says
//! what the guest's tables (MP table, ACPI MADT) must describe in each mode.

use std::io;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_enable_cap, kvm_irq_routing_entry, kvm_irq_routing_entry__bindgen_ty_1,
    kvm_irq_routing_msi, kvm_msi, kvm_pit_config, KvmIrqRouting, KVM_CAP_SPLIT_IRQCHIP,
    KVM_IRQ_ROUTING_MSI, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::VmFd;
use strato_devices::bus::{lock, SharedDevice};
use strato_devices::ioapic::{
    Ioapic, IoapicBackend, IoapicPin, MsiMessage, IOAPIC_DEFAULT_BASE, IOAPIC_PINS, IOAPIC_VERSION,
    IOAPIC_WINDOW_SIZE,
};
use strato_devices::metrics::Metrics;

use crate::arch::x86_64::layout;
pub use crate::config::IrqchipMode;

/// Errors creating the interrupt controllers.
#[derive(Debug, thiserror::Error)]
pub enum IrqchipError {
    /// KVM refused an ioctl.
    #[error("KVM: {0}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// The split irqchip's IOAPIC ID does not fit its 4-bit register.
    #[error("IOAPIC ID {0} does not fit in 4 bits")]
    IoapicId(u8),
}

/// Guest physical address of the local APICs.
pub const LAPIC_ADDRESS: u32 = 0xfee0_0000;

/// Version register of KVM's in-kernel IOAPIC (an 82093AA, without the EOI register).
const KVM_IOAPIC_VERSION: u8 = 0x11;

/// An ISA IRQ that reaches the IOAPIC on another GSI than its own number, or with another
/// polarity or trigger than ISA's (active high, edge): an ACPI MADT interrupt source override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOverride {
    /// ISA IRQ.
    pub isa_irq: u8,
    /// GSI it arrives on.
    pub gsi: u32,
    /// Active low.
    pub active_low: bool,
    /// Level-triggered.
    pub level: bool,
}

/// What the guest's firmware tables must say about its interrupt controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptPlatform {
    /// A pair of 8259 PICs answers at ports 0x20 and 0xa0 (MADT flag `PCAT_COMPAT`).
    pub pic: bool,
    /// An 8254 PIT at port 0x40 raises ISA IRQ 0.
    pub pit: bool,
    /// The IOAPIC's APIC ID.
    pub ioapic_id: u8,
    /// The IOAPIC's guest physical address.
    pub ioapic_address: u32,
    /// Its version register.
    pub ioapic_version: u8,
    /// Its input pins: GSIs `gsi_base` to `gsi_base + ioapic_pins - 1`.
    pub ioapic_pins: u8,
    /// The GSI of its first pin.
    pub gsi_base: u32,
    /// The local APICs' address.
    pub lapic_address: u32,
    /// ISA IRQs that are not identity-mapped to GSIs. Empty in both modes: ISA IRQ `n` is
    /// GSI `n`, active high, edge-triggered (KVM's in-kernel PIT raises GSI 0, which its default
    /// routing sends to IOAPIC pin 0).
    pub overrides: Vec<SourceOverride>,
}

/// Sends the userspace IOAPIC's messages through KVM.
struct KvmBackend {
    vm: Arc<VmFd>,
}

fn route_entry(gsi: u32, msg: MsiMessage) -> kvm_irq_routing_entry {
    kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_MSI,
        flags: 0,
        pad: 0,
        u: kvm_irq_routing_entry__bindgen_ty_1 {
            msi: kvm_irq_routing_msi {
                address_lo: msg.address as u32,
                address_hi: (msg.address >> 32) as u32,
                data: msg.data,
                ..Default::default()
            },
        },
    }
}

/// KVM's routing table for `routes`: one MSI entry per routed pin, GSI = pin.
fn routing_table(routes: &[Option<MsiMessage>; IOAPIC_PINS]) -> io::Result<KvmIrqRouting> {
    let entries: Vec<kvm_irq_routing_entry> = routes
        .iter()
        .enumerate()
        .filter_map(|(gsi, r)| r.map(|msg| route_entry(gsi as u32, msg)))
        .collect();
    KvmIrqRouting::from_entries(&entries)
        .map_err(|e| io::Error::other(format!("routing table: {e:?}")))
}

impl IoapicBackend for KvmBackend {
    fn deliver(&self, msg: MsiMessage) -> io::Result<()> {
        let msi = kvm_msi {
            address_lo: msg.address as u32,
            address_hi: (msg.address >> 32) as u32,
            data: msg.data,
            ..Default::default()
        };
        self.vm
            .signal_msi(msi)
            .map(|_| ())
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))
    }

    fn routes_changed(&self, routes: &[Option<MsiMessage>; IOAPIC_PINS]) -> io::Result<()> {
        self.vm
            .set_gsi_routing(&routing_table(routes)?)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))
    }
}

/// The VM's interrupt controllers.
pub enum Irqchip {
    /// KVM's PIC, IOAPIC, local APICs and PIT.
    Kernel {
        /// The ID the MP table gives the in-kernel IOAPIC.
        ioapic_id: u8,
    },
    /// Local APICs in KVM, this IOAPIC in the monitor.
    Split {
        /// The IOAPIC, shared by its MMIO window, the legacy devices' lines and the vCPUs'
        /// end-of-interrupt exits.
        ioapic: Arc<Mutex<Ioapic>>,
    },
}

impl Irqchip {
    /// Creates the controllers of `mode` for a VM whose IOAPIC has APIC ID `ioapic_id`.
    /// Must run before the first vCPU is created.
    pub fn create(vm: &Arc<VmFd>, mode: IrqchipMode, ioapic_id: u8) -> Result<Self, IrqchipError> {
        vm.set_tss_address(layout::KVM_TSS_ADDR as usize)
            .map_err(|e| IrqchipError::Kvm("KVM_SET_TSS_ADDR", e))?;
        match mode {
            IrqchipMode::Kernel => {
                vm.create_irq_chip()
                    .map_err(|e| IrqchipError::Kvm("KVM_CREATE_IRQCHIP", e))?;
                let pit = kvm_pit_config {
                    flags: KVM_PIT_SPEAKER_DUMMY,
                    ..Default::default()
                };
                vm.create_pit2(pit)
                    .map_err(|e| IrqchipError::Kvm("KVM_CREATE_PIT2", e))?;
                Ok(Irqchip::Kernel { ioapic_id })
            }
            IrqchipMode::Split => {
                if ioapic_id > 0x0f {
                    return Err(IrqchipError::IoapicId(ioapic_id));
                }
                let mut cap = kvm_enable_cap {
                    cap: KVM_CAP_SPLIT_IRQCHIP,
                    ..Default::default()
                };
                // GSIs below this many are the IOAPIC's: KVM scans their routes for the
                // level-triggered vectors whose EOI it must report.
                cap.args[0] = IOAPIC_PINS as u64;
                vm.enable_cap(&cap)
                    .map_err(|e| IrqchipError::Kvm("KVM_CAP_SPLIT_IRQCHIP", e))?;
                let backend = Arc::new(KvmBackend { vm: vm.clone() });
                let ioapic = Ioapic::new(ioapic_id, backend);
                Ok(Irqchip::Split {
                    ioapic: Arc::new(Mutex::new(ioapic)),
                })
            }
        }
    }

    /// The mode.
    pub fn mode(&self) -> IrqchipMode {
        match self {
            Irqchip::Kernel { .. } => IrqchipMode::Kernel,
            Irqchip::Split { .. } => IrqchipMode::Split,
        }
    }

    /// What the MP table and the ACPI MADT must say about these controllers.
    pub fn platform(&self) -> InterruptPlatform {
        let (pic, ioapic_id, ioapic_version) = match self {
            Irqchip::Kernel { ioapic_id } => (true, *ioapic_id, KVM_IOAPIC_VERSION),
            Irqchip::Split { ioapic } => (false, lock(ioapic).id(), IOAPIC_VERSION),
        };
        InterruptPlatform {
            pic,
            pit: pic,
            ioapic_id,
            ioapic_address: IOAPIC_DEFAULT_BASE as u32,
            ioapic_version,
            ioapic_pins: IOAPIC_PINS as u8,
            gsi_base: 0,
            lapic_address: LAPIC_ADDRESS,
            overrides: Vec::new(),
        }
    }

    /// In split mode, the userspace IOAPIC's pin for GSI `gsi`: how a legacy device (the UART,
    /// the i8042) raises its line there. `None` in kernel mode, where it uses an irqfd.
    pub fn ioapic_pin(&self, gsi: u32) -> Option<IoapicPin> {
        match self {
            Irqchip::Kernel { .. } => None,
            Irqchip::Split { ioapic } => Some(IoapicPin::new(ioapic.clone(), gsi as usize)),
        }
    }

    /// The IOAPIC's MMIO window (device, base, length), in split mode.
    pub fn mmio_window(&self) -> Option<(SharedDevice, u64, u64)> {
        match self {
            Irqchip::Kernel { .. } => None,
            Irqchip::Split { ioapic } => Some((
                ioapic.clone() as SharedDevice,
                IOAPIC_DEFAULT_BASE,
                IOAPIC_WINDOW_SIZE,
            )),
        }
    }

    /// Where the vCPUs send `KVM_EXIT_IOAPIC_EOI`, in split mode.
    pub fn eoi_target(&self) -> Option<Arc<Mutex<Ioapic>>> {
        match self {
            Irqchip::Kernel { .. } => None,
            Irqchip::Split { ioapic } => Some(ioapic.clone()),
        }
    }

    /// The userspace IOAPIC's counters, in split mode.
    pub fn counters(&self) -> Option<Vec<(&'static str, u64)>> {
        match self {
            Irqchip::Kernel { .. } => None,
            Irqchip::Split { ioapic } => Some(lock(ioapic).counters()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table_has_one_msi_entry_per_routed_pin() {
        let mut routes = [None; IOAPIC_PINS];
        routes[4] = Some(MsiMessage {
            address: 0xfee0_1000,
            data: 0x34,
        });
        routes[23] = Some(MsiMessage {
            address: 0x1_fee0_0000,
            data: 0xc041,
        });
        let table = routing_table(&routes).expect("table");
        let entries = table.as_slice();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].gsi, entries[0].type_), (4, KVM_IRQ_ROUTING_MSI));
        // SAFETY: the entries were built as MSI entries.
        let (m0, m1) = unsafe { (entries[0].u.msi, entries[1].u.msi) };
        assert_eq!(
            (m0.address_lo, m0.address_hi, m0.data),
            (0xfee0_1000, 0, 0x34)
        );
        assert_eq!(entries[1].gsi, 23);
        assert_eq!(
            (m1.address_lo, m1.address_hi, m1.data),
            (0xfee0_0000, 1, 0xc041)
        );
        assert!(routing_table(&[None; IOAPIC_PINS])
            .expect("empty table")
            .as_slice()
            .is_empty());
    }
}
