//! Initial register state for the two 64-bit-capable entries: PVH (32-bit protected mode)
//! and the Linux 64-bit boot protocol (long mode with an identity map).

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::*;

/// Errors setting up registers.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// Writing the GDT or page tables into guest memory failed.
    #[error("writing boot tables into guest memory")]
    GuestMemory(#[source] vm_memory::GuestMemoryError),
    /// A KVM register ioctl failed.
    #[error("setting vCPU registers")]
    Kvm(#[source] kvm_ioctls::Error),
}

/// How the vCPU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// 64-bit Linux boot protocol: long mode, RSI = zero page.
    Linux64,
    /// PVH: 32-bit protected mode, paging off, EBX = start info.
    Pvh,
}

const X86_CR0_PE: u64 = 0x1;
const X86_CR0_ET: u64 = 0x10;
const X86_CR0_PG: u64 = 0x8000_0000;
const X86_CR4_PAE: u64 = 0x20;
const EFER_LME: u64 = 0x100;
const EFER_LMA: u64 = 0x400;

/// GDT entry: (flags, base, limit) packed as the CPU wants them.
fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((u64::from(base) & 0xff00_0000) << 32)
        | ((u64::from(base) & 0x00ff_ffff) << 16)
        | (u64::from(limit) & 0x0000_ffff)
        | ((u64::from(limit) & 0x000f_0000) << 32)
        | ((u64::from(flags) & 0x0000_f0ff) << 40)
}

/// Decodes a GDT entry into the segment KVM wants.
fn segment(entry: u64, index: u16) -> kvm_segment {
    let flag = |shift: u32, mask: u64| ((entry >> shift) & mask) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0x00ff_ffff) | (((entry >> 56) & 0xff) << 24),
        limit: {
            let raw = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
            // With granularity set the limit counts 4 KiB pages.
            if flag(55, 1) == 1 {
                (raw << 12) | 0xfff
            } else {
                raw
            }
        },
        selector: index * 8,
        type_: flag(40, 0xf),
        present: flag(47, 1),
        dpl: flag(45, 3),
        db: flag(54, 1),
        s: flag(44, 1),
        l: flag(53, 1),
        g: flag(55, 1),
        avl: flag(52, 1),
        padding: 0,
        unusable: u8::from(flag(47, 1) == 0),
    }
}

/// The boot GDT: null, 32-bit code, 64-bit code, data, TSS.
fn gdt() -> [u64; 5] {
    [
        gdt_entry(0, 0, 0),
        gdt_entry(0xc09b, 0, 0xfffff), // 0x08: 32-bit code (PVH)
        gdt_entry(0xa09b, 0, 0xfffff), // 0x10: 64-bit code
        gdt_entry(0xc093, 0, 0xfffff), // 0x18: data
        gdt_entry(0x808b, 0, 0xfffff), // 0x20: TSS
    ]
}

/// Writes the identity map of the first GiB (2 MiB pages) the 64-bit entry runs on.
fn write_page_tables(mem: &GuestMemoryMmap) -> Result<(), RegsError> {
    mem.write_obj(PDPT_ADDR | 0x03, GuestAddress(PML4_ADDR))
        .map_err(RegsError::GuestMemory)?;
    mem.write_obj(PD_ADDR | 0x03, GuestAddress(PDPT_ADDR))
        .map_err(RegsError::GuestMemory)?;
    let mut pd = [0u8; 4096];
    for (i, chunk) in pd.chunks_exact_mut(8).enumerate() {
        // Present, writable, 2 MiB page.
        let entry = ((i as u64) << 21) | 0x83;
        chunk.copy_from_slice(&entry.to_le_bytes());
    }
    mem.write_slice(&pd, GuestAddress(PD_ADDR))
        .map_err(RegsError::GuestMemory)
}

/// Writes the boot tables into guest memory (once per VM, before any vCPU starts).
pub fn write_boot_tables(mem: &GuestMemoryMmap) -> Result<(), RegsError> {
    for (i, entry) in gdt().iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_ADDR + 8 * i as u64))
            .map_err(RegsError::GuestMemory)?;
    }
    write_page_tables(mem)
}

/// The special registers for `mode`, on top of what KVM reports.
pub fn boot_sregs(mut sregs: kvm_sregs, mode: EntryMode) -> kvm_sregs {
    let table = gdt();
    let (code, data, tss) = match mode {
        EntryMode::Pvh => (
            segment(table[1], 1),
            segment(table[3], 3),
            segment(table[4], 4),
        ),
        EntryMode::Linux64 => (
            segment(table[2], 2),
            segment(table[3], 3),
            segment(table[4], 4),
        ),
    };
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (table.len() * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    match mode {
        EntryMode::Pvh => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
        EntryMode::Linux64 => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
            sregs.cr3 = PML4_ADDR;
            sregs.cr4 = X86_CR4_PAE;
            sregs.efer = EFER_LME | EFER_LMA;
        }
    }
    sregs
}

/// General registers for the boot CPU.
pub fn boot_regs(mode: EntryMode, entry: u64) -> kvm_regs {
    let mut regs = kvm_regs {
        rflags: 0x2,
        rip: entry,
        ..Default::default()
    };
    match mode {
        EntryMode::Pvh => regs.rbx = PVH_INFO_ADDR,
        EntryMode::Linux64 => {
            regs.rsp = BOOT_STACK_POINTER;
            regs.rbp = BOOT_STACK_POINTER;
            regs.rsi = ZERO_PAGE_ADDR;
        }
    }
    regs
}

/// Programs the boot CPU's registers.
pub fn setup_boot_cpu(vcpu: &VcpuFd, mode: EntryMode, entry: u64) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(RegsError::Kvm)?;
    let sregs = vcpu.get_sregs().map_err(RegsError::Kvm)?;
    vcpu.set_sregs(&boot_sregs(sregs, mode))
        .map_err(RegsError::Kvm)?;
    vcpu.set_regs(&boot_regs(mode, entry))
        .map_err(RegsError::Kvm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_segments_decode() {
        let table = gdt();
        let cs64 = segment(table[2], 2);
        assert_eq!((cs64.l, cs64.db, cs64.present, cs64.type_), (1, 0, 1, 0xb));
        assert_eq!(cs64.selector, 0x10);
        assert_eq!(cs64.limit, 0xffff_ffff);
        let cs32 = segment(table[1], 1);
        assert_eq!((cs32.l, cs32.db), (0, 1));
        let null = segment(table[0], 0);
        assert_eq!(null.unusable, 1);
    }

    #[test]
    fn long_mode_sregs() {
        let s = boot_sregs(kvm_sregs::default(), EntryMode::Linux64);
        assert_eq!(s.cr3, PML4_ADDR);
        assert_ne!(s.cr0 & X86_CR0_PG, 0);
        assert_ne!(s.efer & EFER_LMA, 0);
        let p = boot_sregs(kvm_sregs::default(), EntryMode::Pvh);
        assert_eq!(p.cr0 & X86_CR0_PG, 0);
        assert_eq!(p.cs.selector, 0x08);
    }

    #[test]
    fn identity_map_covers_first_gib() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_boot_tables(&mem).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_ADDR)).unwrap();
        assert_eq!(pml4 & !0xfff, PDPT_ADDR);
        let last: u64 = mem.read_obj(GuestAddress(PD_ADDR + 511 * 8)).unwrap();
        assert_eq!(last, (511 << 21) | 0x83);
    }
}
