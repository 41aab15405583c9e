//! The guest physical address map (docs/boot-contract.md is the user-facing copy).

/// GDT.
pub const GDT_ADDR: u64 = 0x500;
/// PVH `hvm_start_info`.
pub const PVH_INFO_ADDR: u64 = 0x6000;
/// PVH memory map, right after the start info.
pub const PVH_MEMMAP_ADDR: u64 = 0x6040;
/// Linux `boot_params` (zero page).
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Initial stack pointer for the 64-bit entry.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// PML4 of the boot identity map.
pub const PML4_ADDR: u64 = 0x9000;
/// PDPT of the boot identity map.
pub const PDPT_ADDR: u64 = 0xa000;
/// PD of the boot identity map (first GiB, 2 MiB pages).
pub const PD_ADDR: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_ADDR: u64 = 0x20000;
/// Longest command line we pass.
pub const CMDLINE_MAX_SIZE: usize = 4096;
/// Start of the MP tables; from here to 1 MiB is reserved in the e820 map.
pub const MPTABLE_START: u64 = 0x9fc00;
/// ACPI tables, RSDP first (16-byte aligned in the BIOS area a guest may scan); this range is
/// an ACPI (type 3) entry in the e820 map.
pub const ACPI_START: u64 = 0xe_0000;
/// End (exclusive) of the ACPI tables' range.
pub const ACPI_END: u64 = 0xf_0000;
/// SMBIOS 3.0 entry point (found by a scan of 0xf0000..0x100000), the structure table after it.
pub const SMBIOS_START: u64 = 0xf_0000;
/// End (exclusive) of the SMBIOS range.
pub const SMBIOS_END: u64 = 0x10_0000;
/// Where the kernel is loaded (high memory start).
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO hole; RAM stops here and resumes at 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// End of the 32-bit MMIO hole.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// First virtio-mmio window.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_0000;
/// Size of each virtio-mmio window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// GSI of the first virtio-mmio device.
pub const VIRTIO_IRQ_BASE: u32 = 5;
/// Highest usable GSI on the in-kernel IOAPIC.
pub const MAX_IRQ: u32 = 23;
/// KVM's TSS (three pages just below the IOAPIC's neighbourhood, inside the MMIO hole).
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// COM1.
pub const SERIAL_PORT: u64 = 0x3f8;
/// COM1's IRQ.
pub const SERIAL_IRQ: u32 = 4;
/// i8042 data port; the window covers 0x60..=0x64.
pub const I8042_PORT: u64 = 0x60;
/// i8042 IRQ (keyboard).
pub const I8042_IRQ: u32 = 1;
/// ACPI sleep control (0x600), sleep status (0x601) and reset (0x602) registers.
pub const ACPI_PM_PORT: u64 = 0x600;
/// The ACPI generic event device's 32-bit event register (0x610..0x614).
pub const GED_PORT: u64 = 0x610;
/// The generic event device's GSI: an ISA line no device uses (COM2's), below 16 so that the
/// 8259 sees it too.
pub const GED_IRQ: u32 = 3;
