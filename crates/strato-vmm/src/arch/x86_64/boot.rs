//! Kernel and initrd loading, and the boot information a kernel reads at entry: the Linux
//! zero page (`boot_params`) or the PVH `hvm_start_info`, each with the memory map.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_params, setup_header};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_start_info};
use linux_loader::loader::{self, BzImage, Cmdline, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{
    Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
};

use super::layout::*;
use super::regs::EntryMode;

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const E820_ACPI: u32 = 3;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x100_0000;
const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Offset of the 64-bit entry point from a bzImage's protected-mode code.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;

/// Errors loading a kernel or writing boot information.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The kernel or initrd file could not be opened or read.
    #[error("cannot read {what} {path}")]
    Open {
        /// "kernel" or "initrd".
        what: &'static str,
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel image is neither a loadable ELF nor a bzImage.
    #[error("cannot load kernel {path}")]
    Load {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: loader::Error,
    },
    /// The initrd does not fit in guest memory below the kernel's limit.
    #[error("initrd of {0} bytes does not fit in guest memory")]
    InitrdTooBig(u64),
    /// The initrd could not be copied into guest memory.
    #[error("copying the initrd into guest memory")]
    InitrdCopy(#[source] vm_memory::GuestMemoryError),
    /// The command line could not be written.
    #[error("writing the kernel command line")]
    Cmdline(#[source] loader::Error),
    /// The command line is not valid text for the kernel.
    #[error("kernel command line")]
    CmdlineText(#[source] linux_loader::cmdline::Error),
    /// The zero page or PVH start info could not be written.
    #[error("writing boot parameters")]
    BootParams(#[source] linux_loader::configurator::Error),
}

/// Where a loaded kernel starts and how.
#[derive(Debug, Clone, Copy)]
pub struct LoadedKernel {
    /// Entry point (guest physical).
    pub entry: u64,
    /// Entry protocol.
    pub mode: EntryMode,
    /// bzImage setup header, copied into the zero page.
    pub setup_header: Option<setup_header>,
    /// First byte after the kernel image.
    pub end: u64,
}

/// An initrd placed in guest memory.
#[derive(Debug, Clone, Copy)]
pub struct Initrd {
    /// Guest physical address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}

fn open(what: &'static str, path: &Path) -> Result<File, BootError> {
    File::open(path).map_err(|source| BootError::Open {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// Loads an ELF vmlinux (PVH preferred when its note is present) or a bzImage.
pub fn load_kernel(mem: &GuestMemoryMmap, path: &Path) -> Result<LoadedKernel, BootError> {
    load_kernel_file(mem, &mut open("kernel", path)?, path)
}

/// Loads a kernel from a file that is already open (a jailed monitor opens it before it
/// enters the jail); `path` names it in errors.
pub fn load_kernel_file(
    mem: &GuestMemoryMmap,
    file: &mut File,
    path: &Path,
) -> Result<LoadedKernel, BootError> {
    let mut magic = [0u8; 4];
    let read_err = |source| BootError::Open {
        what: "kernel",
        path: path.display().to_string(),
        source,
    };
    file.read_exact(&mut magic).map_err(read_err)?;
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    let load_err = |source| BootError::Load {
        path: path.display().to_string(),
        source,
    };
    if magic == *b"\x7fELF" {
        let r = Elf::load(mem, None, file, Some(GuestAddress(HIMEM_START))).map_err(load_err)?;
        let (entry, mode) = match r.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(addr) => (addr.raw_value(), EntryMode::Pvh),
            _ => (r.kernel_load.raw_value(), EntryMode::Linux64),
        };
        Ok(LoadedKernel {
            entry,
            mode,
            setup_header: None,
            end: r.kernel_end,
        })
    } else {
        let r =
            BzImage::load(mem, None, file, Some(GuestAddress(HIMEM_START))).map_err(load_err)?;
        Ok(LoadedKernel {
            entry: r.kernel_load.raw_value() + BZIMAGE_64BIT_ENTRY_OFFSET,
            mode: EntryMode::Linux64,
            setup_header: r.setup_header,
            end: r.kernel_end,
        })
    }
}

/// Copies an initrd to the top of low memory (below the MMIO hole), page aligned.
pub fn load_initrd(
    mem: &GuestMemoryMmap,
    path: &Path,
    kernel_end: u64,
) -> Result<Initrd, BootError> {
    load_initrd_file(mem, &mut open("initrd", path)?, path, kernel_end)
}

/// Copies an initrd from a file that is already open, as [`load_initrd`].
pub fn load_initrd_file(
    mem: &GuestMemoryMmap,
    file: &mut File,
    path: &Path,
    kernel_end: u64,
) -> Result<Initrd, BootError> {
    let size = file
        .metadata()
        .map_err(|source| BootError::Open {
            what: "initrd",
            path: path.display().to_string(),
            source,
        })?
        .len();
    let low_end = mem
        .last_addr()
        .raw_value()
        .min(MMIO_GAP_START - 1)
        .saturating_add(1);
    let addr = low_end
        .checked_sub(size)
        .map(|a| a & !0xfff)
        .filter(|a| *a >= kernel_end)
        .ok_or(BootError::InitrdTooBig(size))?;
    mem.read_exact_volatile_from(GuestAddress(addr), file, size as usize)
        .map_err(BootError::InitrdCopy)?;
    Ok(Initrd { addr, size })
}

/// The guest's memory map: (start, size, type). Below 1 MiB: RAM, then the MP table and
/// the legacy holes reserved, the ACPI tables as ACPI data, the SMBIOS area reserved.
pub fn e820_map(mem: &GuestMemoryMmap) -> Vec<(u64, u64, u32)> {
    let mut map = vec![
        (0, MPTABLE_START, E820_RAM),
        (MPTABLE_START, ACPI_START - MPTABLE_START, E820_RESERVED),
        (ACPI_START, ACPI_END - ACPI_START, E820_ACPI),
        (SMBIOS_START, HIMEM_START - SMBIOS_START, E820_RESERVED),
    ];
    for region in mem.iter() {
        let start = region.start_addr().raw_value().max(HIMEM_START);
        let end = region.start_addr().raw_value() + region.len();
        if end > start {
            map.push((start, end - start, E820_RAM));
        }
    }
    map
}

/// Writes the command line and the boot information for `kernel`'s entry protocol, with the
/// ACPI RSDP's address `rsdp`.
pub fn write_boot_info(
    mem: &GuestMemoryMmap,
    kernel: &LoadedKernel,
    cmdline: &Cmdline,
    initrd: Option<Initrd>,
    rsdp: u64,
) -> Result<(), BootError> {
    loader::load_cmdline(mem, GuestAddress(CMDLINE_ADDR), cmdline).map_err(BootError::Cmdline)?;
    let cmdline_len = cmdline
        .as_cstring()
        .map(|c| c.as_bytes().len())
        .map_err(BootError::CmdlineText)?;
    let e820 = e820_map(mem);
    match kernel.mode {
        EntryMode::Pvh => {
            let memmap: Vec<hvm_memmap_table_entry> = e820
                .iter()
                .map(|&(addr, size, type_)| hvm_memmap_table_entry {
                    addr,
                    size,
                    type_,
                    reserved: 0,
                })
                .collect();
            let mut info = hvm_start_info {
                magic: XEN_HVM_START_MAGIC_VALUE,
                version: 1,
                cmdline_paddr: CMDLINE_ADDR,
                rsdp_paddr: rsdp,
                memmap_paddr: PVH_MEMMAP_ADDR,
                memmap_entries: memmap.len() as u32,
                ..Default::default()
            };
            let mut params = BootParams::new(&info, GuestAddress(PVH_INFO_ADDR));
            if let Some(rd) = initrd {
                let module = linux_loader::loader::elf::start_info::hvm_modlist_entry {
                    paddr: rd.addr,
                    size: rd.size,
                    ..Default::default()
                };
                // The module list sits right after the memory map.
                let modlist = PVH_MEMMAP_ADDR + (memmap.len() * 24) as u64;
                info.nr_modules = 1;
                info.modlist_paddr = modlist;
                params = BootParams::new(&info, GuestAddress(PVH_INFO_ADDR));
                params.set_modules(&[module], GuestAddress(modlist));
            }
            params.set_sections(&memmap, GuestAddress(PVH_MEMMAP_ADDR));
            PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
                .map_err(BootError::BootParams)
        }
        EntryMode::Linux64 => {
            let mut bp = boot_params::default();
            if let Some(hdr) = kernel.setup_header {
                bp.hdr = hdr;
            }
            bp.hdr.type_of_loader = KERNEL_LOADER_OTHER;
            bp.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
            bp.hdr.header = KERNEL_HDR_MAGIC;
            bp.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
            bp.hdr.cmdline_size = cmdline_len as u32;
            bp.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
            bp.acpi_rsdp_addr = rsdp;
            if let Some(rd) = initrd {
                bp.hdr.ramdisk_image = rd.addr as u32;
                bp.hdr.ramdisk_size = rd.size as u32;
            }
            for (i, &(addr, size, type_)) in e820.iter().take(bp.e820_table.len()).enumerate() {
                bp.e820_table[i].addr = addr;
                bp.e820_table[i].size = size;
                bp.e820_table[i].r#type = type_;
                bp.e820_entries = (i + 1) as u8;
            }
            let params = BootParams::new(&bp, GuestAddress(ZERO_PAGE_ADDR));
            LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
                .map_err(BootError::BootParams)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(mib: u64) -> GuestMemoryMmap {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), (mib << 20) as usize)]).unwrap()
    }

    #[test]
    fn e820_reserves_low_area_and_covers_ram() {
        let m = mem(64);
        let map = e820_map(&m);
        assert_eq!(map[0], (0, MPTABLE_START, E820_RAM));
        assert_eq!(map[1].2, E820_RESERVED);
        assert_eq!(map[2], (ACPI_START, ACPI_END - ACPI_START, E820_ACPI));
        assert_eq!(
            map[3],
            (SMBIOS_START, HIMEM_START - SMBIOS_START, E820_RESERVED)
        );
        assert_eq!(map[4], (HIMEM_START, (64 << 20) - HIMEM_START, E820_RAM));
        // Contiguous, in order, below 1 MiB.
        for w in map.windows(2).take(3) {
            assert_eq!(w[0].0 + w[0].1, w[1].0);
        }
    }

    #[test]
    fn zero_page_points_at_cmdline() {
        let m = mem(16);
        let mut cmdline = Cmdline::new(CMDLINE_MAX_SIZE).unwrap();
        cmdline.insert_str("console=ttyS0").unwrap();
        let k = LoadedKernel {
            entry: HIMEM_START,
            mode: EntryMode::Linux64,
            setup_header: None,
            end: HIMEM_START + 4096,
        };
        write_boot_info(&m, &k, &cmdline, None, ACPI_START).unwrap();
        let bp: boot_params = m.read_obj(GuestAddress(ZERO_PAGE_ADDR)).unwrap();
        assert_eq!({ bp.hdr.cmd_line_ptr }, CMDLINE_ADDR as u32);
        assert_eq!({ bp.hdr.boot_flag }, KERNEL_BOOT_FLAG_MAGIC);
        assert_eq!({ bp.acpi_rsdp_addr }, ACPI_START);
        assert_eq!(bp.e820_entries, 5);
        let mut text = [0u8; 13];
        m.read_slice(&mut text, GuestAddress(CMDLINE_ADDR)).unwrap();
        assert_eq!(&text, b"console=ttyS0");
    }

    #[test]
    fn pvh_start_info_has_magic_and_memmap() {
        let m = mem(16);
        let cmdline = Cmdline::new(CMDLINE_MAX_SIZE).unwrap();
        let k = LoadedKernel {
            entry: HIMEM_START,
            mode: EntryMode::Pvh,
            setup_header: None,
            end: HIMEM_START,
        };
        write_boot_info(&m, &k, &cmdline, None, ACPI_START).unwrap();
        let info: hvm_start_info = m.read_obj(GuestAddress(PVH_INFO_ADDR)).unwrap();
        assert_eq!(info.magic, XEN_HVM_START_MAGIC_VALUE);
        assert_eq!(info.rsdp_paddr, ACPI_START);
        assert_eq!(info.memmap_entries, 5);
        let first: hvm_memmap_table_entry = m.read_obj(GuestAddress(PVH_MEMMAP_ADDR)).unwrap();
        assert_eq!(first.size, MPTABLE_START);
    }

    #[test]
    fn initrd_goes_to_top_of_low_memory() {
        let m = mem(32);
        let path = std::env::temp_dir().join(format!("strato-initrd-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let rd = load_initrd(&m, &path, HIMEM_START).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(rd.addr % 4096, 0);
        assert!(rd.addr + rd.size <= 32 << 20);
        let b: u8 = m.read_obj(GuestAddress(rd.addr + 9_999)).unwrap();
        assert_eq!(b, 7);
    }

    #[test]
    fn garbage_kernel_is_refused() {
        let m = mem(16);
        let path = std::env::temp_dir().join(format!("strato-badkernel-{}", std::process::id()));
        std::fs::write(&path, b"not a kernel at all, just text").unwrap();
        let err = load_kernel(&m, &path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, BootError::Load { .. }));
    }
}
