//! ACPI tables for a hardware-reduced platform (ACPI 6.5, as Cloud Hypervisor and Firecracker
//! give their guests), built with rust-vmm's `acpi_tables`:
//!
//! - RSDP at [`ACPI_START`] (0xe0000: in the range a guest without boot information scans),
//!   pointing at the XSDT; the boot information carries its address too.
//! - XSDT listing the FADT and the MADT.
//! - FADT: `HW_REDUCED_ACPI`, a control-method power button, the sleep control and sleep status
//!   registers and the reset register (the power-management device, `strato_devices::acpi::pm`),
//!   and the PC boot flags: an i8042 is present, no VGA, no MSI, no CMOS RTC.
//! - MADT from the irqchip's [`InterruptPlatform`]: one local APIC per vCPU, the IOAPIC, its
//!   interrupt source overrides, and NMI on the
//!   local APICs' LINT pin.
//! - DSDT: `\_S5` (the sleep type of power-off), and under `\_SB` the power button (PNP0C0C), the
//!   generic event device (ACPI0013) whose `_EVT` reads its event register and notifies the power
//!   button, COM1 (PNP0501), the keyboard controller (PNP0303), and every virtio-mmio device
//!   (LNRO0005) with its window and GSI. The virtio devices stay on the kernel command line as
//!   well (the boot contract, and guests without ACPI): Linux binds the ACPI description first,
//!   which is also the one that maps GSIs above 15.
//!
//! The whole range is one ACPI (type 3) entry in the e820 map.

use acpi_tables::aml::{self, FieldAccessType, FieldEntry, FieldLockRule, FieldUpdateRule};
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::{Aml, AmlSink};
use strato_devices::acpi::ged::{GED_PORT_LEN, GED_POWER_BUTTON};
use strato_devices::acpi::pm::{
    RESET_OFFSET, RESET_VALUE, S5_SLEEP_TYPE, SLEEP_CONTROL_OFFSET, SLEEP_STATUS_OFFSET,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryError};
use zerocopy::{Immutable, IntoBytes};

use super::layout::{ACPI_END, ACPI_START, I8042_IRQ, I8042_PORT, SERIAL_IRQ, SERIAL_PORT};
use crate::irqchip::InterruptPlatform;

/// OEM ID in every table header.
pub const OEM_ID: [u8; 6] = *b"STRATO";
/// OEM table ID in every table header.
pub const OEM_TABLE_ID: [u8; 8] = *b"STRATOVM";
const OEM_REVISION: u32 = 1;
/// The FADT's hypervisor vendor identity.
const HYPERVISOR_VENDOR: [u8; 8] = *b"STRATOVM";
/// DSDT revision 2: integers are 64 bits wide.
const DSDT_REVISION: u8 = 2;
/// Tables start on 16-byte boundaries.
const TABLE_ALIGN: u64 = 16;

// IA-PC boot architecture flags (FADT offset 109).
const IAPC_LEGACY_DEVICES: u16 = 1 << 0;
const IAPC_8042: u16 = 1 << 1;
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
const IAPC_MSI_NOT_SUPPORTED: u16 = 1 << 3;
const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

/// MADT structure type: interrupt source override.
const MADT_INTERRUPT_SOURCE_OVERRIDE: u8 = 2;
/// MADT structure type: local APIC NMI.
const MADT_LOCAL_APIC_NMI: u8 = 4;
/// The local APIC pin wired to NMI (LINT1, as the vCPUs' LVT set-up leaves it).
const NMI_LINT: u8 = 1;
/// Processor UID meaning every processor.
const ALL_PROCESSORS: u8 = 0xff;

/// ACPI's notification value for a pressed button.
const NOTIFY_BUTTON_PRESSED: u8 = 0x80;

/// One virtio-mmio device, as the DSDT describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    /// Base of its register window.
    pub base: u64,
    /// Size of the window.
    pub size: u64,
    /// Its GSI.
    pub gsi: u32,
}

/// Everything the tables describe.
#[derive(Debug, Clone)]
pub struct Platform<'a> {
    /// vCPUs; vCPU `n` has local APIC ID `n`.
    pub cpus: u8,
    /// The interrupt controllers, as the irqchip describes them.
    pub irqchips: &'a InterruptPlatform,
    /// Virtio devices in guest order.
    pub virtio: &'a [VirtioMmioDevice],
    /// First port of the power-management registers (sleep control, status, reset).
    pub pm_port: u16,
    /// Port of the generic event device's event register.
    pub ged_port: u16,
    /// The generic event device's GSI.
    pub ged_gsi: u32,
}

/// Why the tables could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    /// The tables do not fit their range.
    #[error("ACPI tables need {size} bytes, more than the {available} reserved")]
    TooLarge {
        /// Bytes the tables need.
        size: usize,
        /// Bytes available.
        available: usize,
    },
    /// A virtio window or the IOAPIC address is beyond 4 GiB, which the tables cannot say.
    #[error("device window {0:#x} is above 4 GiB")]
    Address(u64),
    /// Writing guest memory failed.
    #[error("cannot write the ACPI tables")]
    Write(#[from] GuestMemoryError),
}

/// The tables laid out for guest address `base`, RSDP first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// Guest physical address of the first byte (the RSDP).
    pub base: u64,
    /// The bytes to copy there.
    pub bytes: Vec<u8>,
}

/// Local APIC NMI structure (MADT type 4).
#[repr(C, packed)]
#[derive(Clone, Copy, IntoBytes, Immutable)]
struct LocalApicNmi {
    r#type: u8,
    length: u8,
    processor_uid: u8,
    /// MPS INTI flags: polarity and trigger mode "conforms to the bus".
    flags: [u8; 2],
    lint: u8,
}

impl Aml for LocalApicNmi {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

/// MADT interrupt source override (type 2): an ISA IRQ arriving on another GSI, or with
/// another polarity or trigger than ISA's.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct SourceOverride {
    r#type: u8,
    length: u8,
    bus: u8,
    source: u8,
    gsi: [u8; 4],
    flags: [u8; 2],
}

impl Aml for SourceOverride {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.as_bytes());
    }
}

fn bytes_of(aml: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    aml.to_aml_bytes(&mut v);
    v
}

fn io_register(port: u64) -> GAS {
    GAS::new(AddressSpace::SystemIo, 8, 0, AccessSize::ByteAccess, port)
}

fn u32_addr(addr: u64) -> Result<u32, AcpiError> {
    u32::try_from(addr).map_err(|_| AcpiError::Address(addr))
}

/// The DSDT's AML (without the table header).
fn dsdt_body(p: &Platform) -> Result<Vec<u8>, AcpiError> {
    let mut body = Vec::new();
    // \_S5: SLP_TYP for the sleep control register (one value; no PM1b block to differ).
    let s5 = aml::Package::new(vec![&S5_SLEEP_TYPE, &0u8]);
    aml::Name::new("_S5_".into(), &s5).to_aml_bytes(&mut body);

    let mut sb = Vec::new();
    sb.extend(bytes_of(&aml::Device::new(
        "PWRB".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0C0C")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
        ],
    )));

    let ged_irq = aml::Interrupt::new(true, true, false, false, p.ged_gsi);
    let ged_crs = aml::ResourceTemplate::new(vec![&ged_irq]);
    let ged_port = u32::from(p.ged_port);
    let ged_len = GED_PORT_LEN as u32;
    let ged_region = aml::OpRegion::new(
        "GDST".into(),
        aml::OpRegionSpace::SystemIO,
        &ged_port,
        &ged_len,
    );
    let ged_field = aml::Field::new(
        "GDST".into(),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::WriteAsZeroes,
        vec![FieldEntry::Named(*b"GDAT", 32)],
    );
    let events = aml::Local(0);
    let gdat = aml::Path::new("GDAT");
    let read_events = aml::Store::new(&events, &gdat);
    let power_bit = aml::And::new(&aml::ZERO, &events, &GED_POWER_BUTTON);
    let pwrb_path = aml::Path::new("\\_SB_.PWRB");
    let notify = aml::Notify::new(&pwrb_path, &NOTIFY_BUTTON_PRESSED);
    let on_power = aml::If::new(&power_bit, vec![&notify]);
    // _EVT(GSI): reading the register takes the pending events.
    let evt = aml::Method::new("_EVT".into(), 1, true, vec![&read_events, &on_power]);
    sb.extend(bytes_of(&aml::Device::new(
        "GED0".into(),
        vec![
            &aml::Name::new("_HID".into(), &"ACPI0013"),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &ged_crs),
            &ged_region,
            &ged_field,
            &evt,
        ],
    )));

    let com1_port = SERIAL_PORT as u16;
    let com1_io = aml::IO::new(com1_port, com1_port, 1, 8);
    let com1_irq = aml::Interrupt::new(true, true, false, false, SERIAL_IRQ);
    let com1_crs = aml::ResourceTemplate::new(vec![&com1_io, &com1_irq]);
    sb.extend(bytes_of(&aml::Device::new(
        "COM1".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &com1_crs),
        ],
    )));

    let kbd_data = I8042_PORT as u16;
    let kbd_io_data = aml::IO::new(kbd_data, kbd_data, 1, 1);
    let kbd_io_cmd = aml::IO::new(kbd_data + 4, kbd_data + 4, 1, 1);
    let kbd_irq = aml::Interrupt::new(true, true, false, false, I8042_IRQ);
    let kbd_crs = aml::ResourceTemplate::new(vec![&kbd_io_data, &kbd_io_cmd, &kbd_irq]);
    sb.extend(bytes_of(&aml::Device::new(
        "PS2K".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0303")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &kbd_crs),
        ],
    )));
    // The virtio devices in guest order: the order a guest names them (vda first).
    for (i, d) in p.virtio.iter().enumerate() {
        let base = u32_addr(d.base)?;
        let size = u32_addr(d.size)?;
        let uid = i as u32;
        let window = aml::Memory32Fixed::new(true, base, size);
        let irq = aml::Interrupt::new(true, true, false, false, d.gsi);
        let crs = aml::ResourceTemplate::new(vec![&window, &irq]);
        let name = format!("V{i:03}");
        sb.extend(bytes_of(&aml::Device::new(
            name.as_str().into(),
            vec![
                &aml::Name::new("_HID".into(), &"LNRO0005"),
                &aml::Name::new("_UID".into(), &uid),
                &aml::Name::new("_CCA".into(), &aml::ONE),
                &aml::Name::new("_CRS".into(), &crs),
            ],
        )));
    }
    body.extend(aml::Scope::raw("\\_SB_".into(), sb));
    Ok(body)
}

fn dsdt(p: &Platform) -> Result<Vec<u8>, AcpiError> {
    let mut sdt = Sdt::new(
        *b"DSDT",
        36,
        DSDT_REVISION,
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
    );
    sdt.append_slice(&dsdt_body(p)?);
    Ok(sdt.as_slice().to_vec())
}

fn fadt(p: &Platform, dsdt_addr: u64) -> Vec<u8> {
    let mut f = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        // Power button as a control-method device (the DSDT's), no sleep button.
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .flag(Flags::ResetRegSup);
    f.iapc_boot_arch = (IAPC_LEGACY_DEVICES
        | IAPC_8042
        | IAPC_VGA_NOT_PRESENT
        | IAPC_MSI_NOT_SUPPORTED
        | IAPC_CMOS_RTC_NOT_PRESENT)
        .into();
    let pm = u64::from(p.pm_port);
    f.sleep_control_reg = io_register(pm + SLEEP_CONTROL_OFFSET);
    f.sleep_status_reg = io_register(pm + SLEEP_STATUS_OFFSET);
    f.reset_reg = io_register(pm + RESET_OFFSET);
    f.reset_value = RESET_VALUE;
    f.hypervisor_vendor_identity = u64::from_le_bytes(HYPERVISOR_VENDOR).into();
    bytes_of(&f.finalize())
}

fn madt(cpus: u8, ic: &InterruptPlatform) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(ic.lapic_address),
    );
    for cpu in 0..cpus {
        madt.add_structure(ProcessorLocalApic::new(cpu, cpu, EnabledStatus::Enabled));
    }
    madt.add_structure(IoApic::new(ic.ioapic_id, ic.ioapic_address, ic.gsi_base));
    for o in &ic.overrides {
        // MPS INTI flags: polarity in bits 0-1 (1 high, 3 low), trigger in bits 2-3 (1 edge,
        // 3 level).
        let polarity: u16 = if o.active_low { 3 } else { 1 };
        let trigger: u16 = if o.level { 3 } else { 1 };
        madt.add_structure(SourceOverride {
            r#type: MADT_INTERRUPT_SOURCE_OVERRIDE,
            length: std::mem::size_of::<SourceOverride>() as u8,
            bus: 0,
            source: o.isa_irq,
            gsi: o.gsi.to_le_bytes(),
            flags: (polarity | (trigger << 2)).to_le_bytes(),
        });
    }
    madt.add_structure(LocalApicNmi {
        r#type: MADT_LOCAL_APIC_NMI,
        length: std::mem::size_of::<LocalApicNmi>() as u8,
        processor_uid: ALL_PROCESSORS,
        flags: [0, 0],
        lint: NMI_LINT,
    });
    bytes_of(&madt)
}

fn align(n: u64) -> u64 {
    n.div_ceil(TABLE_ALIGN) * TABLE_ALIGN
}

/// Builds every table for guest address `base`.
pub fn build(p: &Platform, base: u64) -> Result<Tables, AcpiError> {
    u32_addr(u64::from(p.irqchips.ioapic_address))?;
    let mut image: Vec<u8> = Vec::new();
    let place = |table: &[u8], image: &mut Vec<u8>| -> u64 {
        let offset = align(image.len() as u64);
        image.resize(offset as usize, 0);
        image.extend_from_slice(table);
        base + offset
    };
    // The RSDP's room first; it is written last, once the XSDT's address is known.
    let rsdp_len = Rsdp::len();
    image.resize(rsdp_len, 0);
    let dsdt_addr = place(&dsdt(p)?, &mut image);
    let fadt_addr = place(&fadt(p, dsdt_addr), &mut image);
    let madt_addr = place(&madt(p.cpus, p.irqchips), &mut image);
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let xsdt_addr = place(&bytes_of(&xsdt), &mut image);
    let rsdp = bytes_of(&Rsdp::new(OEM_ID, xsdt_addr));
    image[..rsdp_len].copy_from_slice(&rsdp);
    Ok(Tables { base, bytes: image })
}

/// Writes the tables at [`ACPI_START`]; returns the RSDP's address.
pub fn write_tables<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    p: &Platform,
) -> Result<u64, AcpiError> {
    let tables = build(p, ACPI_START)?;
    let available = (ACPI_END - ACPI_START) as usize;
    if tables.bytes.len() > available {
        return Err(AcpiError::TooLarge {
            size: tables.bytes.len(),
            available,
        });
    }
    mem.write_slice(&tables.bytes, GuestAddress(tables.base))?;
    Ok(tables.base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::layout::{ACPI_PM_PORT, GED_IRQ, GED_PORT};
    use vm_memory::GuestMemoryMmap;

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }
    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, x| s.wrapping_add(*x))
    }
    fn contains(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).filter(|w| *w == needle).count()
    }

    /// The in-kernel irqchip's description for `cpus` vCPUs (what the KVM tests boot on).
    fn platform(cpus: u8) -> InterruptPlatform {
        InterruptPlatform {
            pic: true,
            pit: true,
            ioapic_id: cpus + 1,
            ioapic_address: 0xfec0_0000,
            ioapic_version: 0x11,
            ioapic_pins: 24,
            gsi_base: 0,
            lapic_address: 0xfee0_0000,
            overrides: Vec::new(),
        }
    }

    fn virtio(n: usize) -> Vec<VirtioMmioDevice> {
        (0..n)
            .map(|i| VirtioMmioDevice {
                base: 0xd000_0000 + i as u64 * 0x1000,
                size: 0x1000,
                gsi: 5 + i as u32,
            })
            .collect()
    }

    /// A guest's view: reads tables from memory through the pointers, as an OS does.
    struct Guest {
        mem: GuestMemoryMmap,
    }

    impl Guest {
        fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
            let mut b = vec![0u8; len];
            self.mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
            b
        }

        /// A table at `addr`: checks its length and checksum, returns its bytes.
        fn table(&self, addr: u64, signature: &[u8; 4]) -> Vec<u8> {
            let header = self.bytes(addr, 36);
            assert_eq!(&header[..4], signature, "at {addr:#x}");
            let len = u32_at(&header, 4) as usize;
            assert!(len >= 36, "{signature:?} length {len}");
            let t = self.bytes(addr, len);
            assert_eq!(sum(&t), 0, "{signature:?} checksum");
            assert_eq!(&t[10..16], &OEM_ID);
            t
        }
    }

    fn boot(cpus: u8, devices: usize) -> (Guest, u64) {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
        let ic = platform(cpus);
        let v = virtio(devices);
        let p = Platform {
            cpus,
            irqchips: &ic,
            virtio: &v,
            pm_port: ACPI_PM_PORT as u16,
            ged_port: GED_PORT as u16,
            ged_gsi: GED_IRQ,
        };
        let rsdp = write_tables(&mem, &p).unwrap();
        (Guest { mem }, rsdp)
    }

    /// Follows RSDP → XSDT → {FACP, APIC} and FACP → DSDT, checking every checksum and
    /// length on the way.
    fn walk(g: &Guest, rsdp_addr: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        assert_eq!(rsdp_addr % 16, 0);
        let rsdp = g.bytes(rsdp_addr, 36);
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[..20]), 0, "RSDP checksum");
        assert_eq!(rsdp[15], 2, "ACPI 2.0+ RSDP");
        assert_eq!(u32_at(&rsdp, 20), 36, "RSDP length");
        assert_eq!(sum(&rsdp), 0, "RSDP extended checksum");
        let xsdt = g.table(u64_at(&rsdp, 24), b"XSDT");
        assert_eq!((xsdt.len() - 36) % 8, 0);
        let entries: Vec<u64> = (36..xsdt.len())
            .step_by(8)
            .map(|o| u64_at(&xsdt, o))
            .collect();
        assert_eq!(entries.len(), 2);
        let fadt = g.table(entries[0], b"FACP");
        let madt = g.table(entries[1], b"APIC");
        assert_eq!(fadt.len(), 276, "FADT of ACPI 6.5");
        let dsdt_addr = u64_at(&fadt, 140);
        assert_eq!(u32_at(&fadt, 40), 0, "only X_DSDT is set");
        let dsdt = g.table(dsdt_addr, b"DSDT");
        for addr in [u64_at(&rsdp, 24), entries[0], entries[1], dsdt_addr] {
            assert!((ACPI_START..ACPI_END).contains(&addr), "{addr:#x}");
        }
        (fadt, madt, dsdt)
    }

    #[test]
    fn tables_chain_with_valid_checksums_and_lengths() {
        for (cpus, devices) in [(1, 0), (2, 3), (8, 17)] {
            let (g, rsdp) = boot(cpus, devices);
            assert_eq!(rsdp, ACPI_START);
            walk(&g, rsdp);
        }
    }

    #[test]
    fn fadt_is_hardware_reduced_with_sleep_and_reset_registers() {
        let (g, rsdp) = boot(1, 1);
        let (fadt, _, _) = walk(&g, rsdp);
        assert_eq!(fadt[8], 6, "FADT major version");
        assert_eq!(fadt[131], 5, "FADT minor version");
        let flags = u32_at(&fadt, 112);
        assert_ne!(flags & (1 << 20), 0, "HW_REDUCED_ACPI");
        assert_ne!(
            flags & (1 << 4),
            0,
            "PWR_BUTTON: control-method power button"
        );
        assert_ne!(flags & (1 << 10), 0, "RESET_REG_SUP");
        let iapc = u16_at(&fadt, 109);
        assert_eq!(
            iapc & 0x2f,
            0x2f,
            "legacy devices, 8042, no VGA, no MSI, no RTC"
        );
        // Generic address structures: space 1 (I/O), 8 bits, byte access, the port.
        let gas = |off: usize| {
            (
                fadt[off],
                fadt[off + 1],
                fadt[off + 3],
                u64_at(&fadt, off + 4),
            )
        };
        assert_eq!(gas(116), (1, 8, 1, ACPI_PM_PORT + 2), "reset register");
        assert_eq!(fadt[128], RESET_VALUE);
        assert_eq!(gas(244), (1, 8, 1, ACPI_PM_PORT), "sleep control");
        assert_eq!(gas(256), (1, 8, 1, ACPI_PM_PORT + 1), "sleep status");
        assert_eq!(&fadt[268..276], b"STRATOVM");
    }

    #[test]
    fn madt_lists_every_vcpu_the_ioapic_and_nmi() {
        let (g, rsdp) = boot(4, 0);
        let (_, madt, _) = walk(&g, rsdp);
        assert_eq!(u32_at(&madt, 36), 0xfee0_0000);
        let mut lapics = Vec::new();
        let mut ioapics = Vec::new();
        let mut nmis = Vec::new();
        let mut off = 44;
        while off < madt.len() {
            let (t, len) = (madt[off], madt[off + 1] as usize);
            assert!(len >= 2 && off + len <= madt.len(), "structure at {off}");
            match t {
                0 => {
                    assert_eq!(len, 8);
                    lapics.push((madt[off + 2], madt[off + 3], u32_at(&madt, off + 4)));
                }
                1 => {
                    assert_eq!(len, 12);
                    ioapics.push((
                        madt[off + 2],
                        u32_at(&madt, off + 4),
                        u32_at(&madt, off + 8),
                    ));
                }
                4 => {
                    assert_eq!(len, 6);
                    nmis.push((madt[off + 2], madt[off + 5]));
                }
                other => panic!("unexpected MADT structure {other}"),
            }
            off += len;
        }
        assert_eq!(off, madt.len());
        assert_eq!(lapics, (0..4).map(|i| (i, i, 1)).collect::<Vec<_>>());
        assert_eq!(ioapics, vec![(5, 0xfec0_0000, 0)]);
        assert_eq!(nmis, vec![(0xff, 1)]);
    }

    /// ACPICA's own tools (Debian's acpica-tools, which scripts/test.sh installs) read the
    /// DSDT as a guest's interpreter would: it must disassemble without a warning and
    /// compile back.
    #[test]
    fn acpica_disassembles_the_dsdt_and_compiles_it_back() {
        let (g, rsdp) = boot(2, 3);
        let (_, _, dsdt) = walk(&g, rsdp);
        let dir = tempfile::tempdir().unwrap();
        let aml = dir.path().join("dsdt.aml");
        std::fs::write(&aml, &dsdt).unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("iasl")
                .current_dir(dir.path())
                .args(args)
                .output()
                .expect(
                    "iasl (Debian's acpica-tools) is not installed; scripts/test.sh installs it",
                );
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "iasl {args:?}:\n{text}");
            text
        };
        run(&["-d", "dsdt.aml"]);
        let dsl = std::fs::read_to_string(dir.path().join("dsdt.dsl")).unwrap();
        for needle in [
            "Name (_S5, Package (0x02)",
            "Device (PWRB)",
            "\"ACPI0013\"",
            "OperationRegion (GDST, SystemIO, 0x0610, 0x04)",
            "Method (_EVT, 1, Serialized)",
            "EisaId (\"PNP0501\")",
            "EisaId (\"PNP0303\")",
            "Device (V002)",
        ] {
            assert!(dsl.contains(needle), "{needle} missing from:\n{dsl}");
        }
        let compiled = run(&["-p", "again", "dsdt.dsl"]);
        assert!(
            compiled.contains("0 Errors, 0 Warnings"),
            "recompiling the DSDT:\n{compiled}"
        );
    }

    #[test]
    fn dsdt_describes_s5_the_power_button_the_ged_and_each_virtio_device() {
        let (g, rsdp) = boot(1, 3);
        let (_, _, dsdt) = walk(&g, rsdp);
        assert_eq!(dsdt[8], DSDT_REVISION);
        let aml = &dsdt[36..];
        // Name(_S5_, Package(2) {5, 0}).
        assert_eq!(
            contains(
                aml,
                &[0x08, b'_', b'S', b'5', b'_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00]
            ),
            1
        );
        assert_eq!(contains(aml, b"ACPI0013\0"), 1);
        assert_eq!(contains(aml, b"LNRO0005\0"), 3);
        // EISA IDs: PNP0C0C, PNP0501, PNP0303 as DWordConst.
        for id in [0x0c0c_d041u32, 0x0105_d041, 0x0303_d041] {
            let mut want = vec![0x0c];
            want.extend_from_slice(&id.to_le_bytes());
            assert_eq!(contains(aml, &want), 1, "{id:#x}");
        }
        // The GED: an edge, active-high interrupt on GSI 3 and a SystemIO region at 0x610.
        assert_eq!(contains(aml, &[0x89, 6, 0, 0x03, 1, 3, 0, 0, 0]), 1);
        assert_eq!(
            contains(
                aml,
                &[0x5b, 0x80, b'G', b'D', b'S', b'T', 0x01, 0x0b, 0x10, 0x06, 0x0a, 0x04]
            ),
            1
        );
        // Each virtio device's window and GSI.
        for i in 0..3u32 {
            let mut window = vec![0x86, 9, 0, 1];
            window.extend_from_slice(&(0xd000_0000 + i * 0x1000).to_le_bytes());
            window.extend_from_slice(&0x1000u32.to_le_bytes());
            assert_eq!(contains(aml, &window), 1, "window {i}");
            assert_eq!(
                contains(aml, &[0x89, 6, 0, 0x03, 1, 5 + i as u8, 0, 0, 0]),
                1
            );
        }
    }

    #[test]
    fn the_largest_vm_fits_and_a_window_above_4_gib_is_refused() {
        let ic = platform(8);
        let v = virtio(17);
        let p = Platform {
            cpus: 8,
            irqchips: &ic,
            virtio: &v,
            pm_port: 0x600,
            ged_port: 0x610,
            ged_gsi: 3,
        };
        let t = build(&p, ACPI_START).unwrap();
        assert!(t.bytes.len() < (ACPI_END - ACPI_START) as usize / 4);
        let high = [VirtioMmioDevice {
            base: 0x1_0000_0000,
            size: 0x1000,
            gsi: 5,
        }];
        let p = Platform { virtio: &high, ..p };
        assert!(matches!(build(&p, ACPI_START), Err(AcpiError::Address(_))));
    }
}
