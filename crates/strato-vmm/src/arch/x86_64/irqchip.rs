//! What the guest is told about its interrupt controllers: one description, from which the
//! MADT is written (and which the MP table matches), so that another interrupt-controller
//! mode (a userspace IOAPIC, more IOAPICs) changes one place.

use super::mptable::{APIC_DEFAULT_PHYS_BASE, IO_APIC_DEFAULT_PHYS_BASE, IRQ_MAX};

/// One IOAPIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApicInfo {
    /// Its APIC ID.
    pub id: u8,
    /// Guest physical address of its registers.
    pub address: u32,
    /// The GSI of its pin 0.
    pub gsi_base: u32,
    /// How many input pins it has.
    pub pins: u8,
}

/// The local APICs and IOAPICs of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptControllers {
    /// vCPUs; vCPU `n` has local APIC ID `n`.
    pub cpus: u8,
    /// Guest physical address of every local APIC.
    pub local_apic_address: u32,
    /// Each local APIC's LINT pin wired to NMI.
    pub nmi_lint: u8,
    /// The IOAPICs, in GSI order.
    pub ioapics: Vec<IoApicInfo>,
}

impl InterruptControllers {
    /// KVM's in-kernel irqchip (KVM_CREATE_IRQCHIP): local APICs at the default address, one
    /// 24-pin IOAPIC at 0xfec00000 taking the ID after the last vCPU (as the MP table says),
    /// and LINT1 as NMI.
    pub fn in_kernel(cpus: u8) -> Self {
        Self {
            cpus,
            local_apic_address: APIC_DEFAULT_PHYS_BASE,
            nmi_lint: 1,
            ioapics: vec![IoApicInfo {
                id: cpus.saturating_add(1),
                address: IO_APIC_DEFAULT_PHYS_BASE,
                gsi_base: 0,
                pins: IRQ_MAX + 1,
            }],
        }
    }

    /// One past the highest GSI an IOAPIC serves.
    pub fn gsi_end(&self) -> u32 {
        self.ioapics
            .iter()
            .map(|io| io.gsi_base + u32::from(io.pins))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_kernel_matches_the_mp_table() {
        let ic = InterruptControllers::in_kernel(3);
        assert_eq!(ic.ioapics.len(), 1);
        assert_eq!(ic.ioapics[0].id, 4);
        assert_eq!(ic.ioapics[0].address, 0xfec0_0000);
        assert_eq!(ic.gsi_end(), 24);
        assert_eq!(ic.local_apic_address, 0xfee0_0000);
    }
}
