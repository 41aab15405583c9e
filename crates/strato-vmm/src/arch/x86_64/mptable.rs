//! Intel MultiProcessor Specification 1.4 tables: how a guest that does not read ACPI finds its
//! vCPUs, the IOAPIC and the routing of the ISA IRQs.
//!
//! The MP floating pointer structure sits at [`MPTABLE_START`] (the last KiB of base memory,
//! one of the places a guest scans for it; the boot contract reserves 0x9fc00..0x100000 in the
//! e820 map) and points at the MP configuration table right after it.

use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryError};

use crate::irqchip::InterruptPlatform;

/// Guest physical address of the MP floating pointer structure.
pub const MPTABLE_START: u64 = 0x9fc00;

/// End (exclusive) of the area the tables may use: the start of the legacy VGA hole.
pub const MPTABLE_END: u64 = 0xa0000;

/// Highest IOAPIC input pin the table routes: both irqchips' IOAPICs have 24 (0 to 23).
pub const IRQ_MAX: u8 = 23;

/// Most vCPUs an MP table can describe: APIC IDs are 8 bits, 0xff means "all", and the IOAPIC
/// takes the ID after the last vCPU.
pub const MAX_CPUS: u8 = 254;

const SPEC_REV: u8 = 4;
const APIC_VERSION: u8 = 0x14;
const OEM_ID: [u8; 8] = *b"STRATO  ";
const PRODUCT_ID: [u8; 12] = *b"strato-vmm  ";
const BUS_TYPE_ISA: [u8; 6] = *b"ISA   ";

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;

const CPU_ENABLED: u8 = 1;
const CPU_BOOTPROCESSOR: u8 = 2;
/// Family 6, model 0, stepping 0.
const CPU_SIGNATURE: u32 = 0x600;
/// CPUID.1:EDX FPU (bit 0) and APIC (bit 9).
const CPU_FEATURES: u32 = 0x201;
const IOAPIC_ENABLED: u8 = 1;

const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
/// Polarity and trigger mode both "conforms to the bus".
const IRQ_FLAGS_CONFORMING: u16 = 0;
/// Destination local APIC ID meaning every local APIC.
const ALL_LOCAL_APICS: u8 = 0xff;

/// Why the MP tables could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MptableError {
    /// The vCPU count is 0 or above [`MAX_CPUS`].
    #[error("invalid vCPU count {0} for the MP table: must be 1 to {MAX_CPUS}")]
    CpuCount(u8),
    /// The tables for this many vCPUs do not fit between [`MPTABLE_START`] and
    /// [`MPTABLE_END`].
    #[error("MP table for {cpus} vCPUs needs {size} bytes, more than the {available} reserved")]
    TooLarge {
        /// vCPUs asked for.
        cpus: u8,
        /// Bytes the tables need.
        size: usize,
        /// Bytes available.
        available: usize,
    },
    /// Guest memory does not cover the tables' addresses.
    #[error("guest memory does not cover the MP table at {start:#x}..{end:#x}")]
    NotInMemory {
        /// First byte of the tables.
        start: u64,
        /// End (exclusive) of the tables.
        end: u64,
    },
    /// Writing guest memory failed.
    #[error("cannot write the MP table: {0}")]
    Write(#[from] GuestMemoryError),
}

/// MP floating pointer structure (16 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
struct MpfIntel {
    signature: [u8; 4],
    physptr: u32,
    length: u8,
    specification: u8,
    checksum: u8,
    feature1: u8,
    feature2: u8,
    feature3: [u8; 3],
}

/// MP configuration table header (44 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
struct MpcTable {
    signature: [u8; 4],
    length: u16,
    spec: u8,
    checksum: u8,
    oem: [u8; 8],
    productid: [u8; 12],
    oemptr: u32,
    oemsize: u16,
    oemcount: u16,
    lapic: u32,
    ext_length: u16,
    ext_checksum: u8,
    reserved: u8,
}

/// Processor entry (20 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
struct MpcCpu {
    entry_type: u8,
    apicid: u8,
    apicver: u8,
    cpuflag: u8,
    cpufeature: u32,
    featureflag: u32,
    reserved: [u32; 2],
}

/// Bus entry (8 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
struct MpcBus {
    entry_type: u8,
    busid: u8,
    bustype: [u8; 6],
}

/// I/O APIC entry (8 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
struct MpcIoapic {
    entry_type: u8,
    apicid: u8,
    apicver: u8,
    flags: u8,
    apicaddr: u32,
}

/// I/O interrupt assignment entry (8 bytes); the local interrupt entry has the same layout with
/// a local APIC ID and LINT pin as destination.
#[repr(C, packed)]
#[derive(Clone, Copy, Default)]
struct MpcIntsrc {
    entry_type: u8,
    irqtype: u8,
    irqflag: u16,
    srcbus: u8,
    srcbusirq: u8,
    dstapic: u8,
    dstirq: u8,
}

// SAFETY: plain-old-data: integers and byte arrays only, `repr(C, packed)` so there is no
// padding, and every bit pattern is a valid value.
unsafe impl ByteValued for MpfIntel {}
// SAFETY: as for `MpfIntel`.
unsafe impl ByteValued for MpcTable {}
// SAFETY: as for `MpfIntel`.
unsafe impl ByteValued for MpcCpu {}
// SAFETY: as for `MpfIntel`.
unsafe impl ByteValued for MpcBus {}
// SAFETY: as for `MpfIntel`.
unsafe impl ByteValued for MpcIoapic {}
// SAFETY: as for `MpfIntel`.
unsafe impl ByteValued for MpcIntsrc {}

const _: () = {
    assert!(std::mem::size_of::<MpfIntel>() == 16);
    assert!(std::mem::size_of::<MpcTable>() == 44);
    assert!(std::mem::size_of::<MpcCpu>() == 20);
    assert!(std::mem::size_of::<MpcBus>() == 8);
    assert!(std::mem::size_of::<MpcIoapic>() == 8);
    assert!(std::mem::size_of::<MpcIntsrc>() == 8);
};

/// The value that makes the byte sum of `bytes` plus itself 0 mod 256.
fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, b| sum.wrapping_add(*b))
        .wrapping_neg()
}

/// Bytes the floating pointer and configuration table take for `num_cpus` vCPUs.
pub fn mptable_size(num_cpus: u8) -> usize {
    std::mem::size_of::<MpfIntel>() + std::mem::size_of::<MpcTable>() + entries_size(num_cpus)
}

fn entries_size(num_cpus: u8) -> usize {
    usize::from(num_cpus) * std::mem::size_of::<MpcCpu>()
        + std::mem::size_of::<MpcBus>()
        + std::mem::size_of::<MpcIoapic>()
        + (usize::from(IRQ_MAX) + 1 + 2) * std::mem::size_of::<MpcIntsrc>()
}

/// Writes the MP floating pointer structure and the MP configuration table for `num_cpus`
/// vCPUs (APIC IDs 0 to `num_cpus - 1`, vCPU 0 the bootstrap processor) at [`MPTABLE_START`]:
/// one ISA bus, the IOAPIC `platform` describes with ISA IRQs 0 to 23 routed to its pins 0
/// to 23, ExtINT on LINT0 and NMI on LINT1 of every local APIC.
pub fn setup_mptable<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    num_cpus: u8,
    platform: &InterruptPlatform,
) -> Result<(), MptableError> {
    if num_cpus == 0 || num_cpus > MAX_CPUS {
        return Err(MptableError::CpuCount(num_cpus));
    }
    let size = mptable_size(num_cpus);
    let available = (MPTABLE_END - MPTABLE_START) as usize;
    if size > available {
        return Err(MptableError::TooLarge {
            cpus: num_cpus,
            size,
            available,
        });
    }
    let start = GuestAddress(MPTABLE_START);
    if !GuestMemoryBackend::check_range(mem, start, size) {
        return Err(MptableError::NotInMemory {
            start: MPTABLE_START,
            end: MPTABLE_START + size as u64,
        });
    }

    let ioapic_id = platform.ioapic_id;
    let mut entries: Vec<u8> = Vec::with_capacity(entries_size(num_cpus));
    for cpu in 0..num_cpus {
        let entry = MpcCpu {
            entry_type: ENTRY_PROCESSOR,
            apicid: cpu,
            apicver: APIC_VERSION,
            cpuflag: CPU_ENABLED | if cpu == 0 { CPU_BOOTPROCESSOR } else { 0 },
            cpufeature: CPU_SIGNATURE,
            featureflag: CPU_FEATURES,
            reserved: [0; 2],
        };
        entries.extend_from_slice(entry.as_slice());
    }
    let bus = MpcBus {
        entry_type: ENTRY_BUS,
        busid: 0,
        bustype: BUS_TYPE_ISA,
    };
    entries.extend_from_slice(bus.as_slice());
    let ioapic = MpcIoapic {
        entry_type: ENTRY_IOAPIC,
        apicid: ioapic_id,
        apicver: platform.ioapic_version,
        flags: IOAPIC_ENABLED,
        apicaddr: platform.ioapic_address,
    };
    entries.extend_from_slice(ioapic.as_slice());
    for irq in 0..=IRQ_MAX {
        let entry = MpcIntsrc {
            entry_type: ENTRY_IO_INTERRUPT,
            irqtype: INT_TYPE_INT,
            irqflag: IRQ_FLAGS_CONFORMING,
            srcbus: 0,
            srcbusirq: irq,
            dstapic: ioapic_id,
            dstirq: irq,
        };
        entries.extend_from_slice(entry.as_slice());
    }
    for (irqtype, lint) in [(INT_TYPE_EXTINT, 0), (INT_TYPE_NMI, 1)] {
        let entry = MpcIntsrc {
            entry_type: ENTRY_LOCAL_INTERRUPT,
            irqtype,
            irqflag: IRQ_FLAGS_CONFORMING,
            srcbus: 0,
            srcbusirq: 0,
            dstapic: ALL_LOCAL_APICS,
            dstirq: lint,
        };
        entries.extend_from_slice(entry.as_slice());
    }
    // Processors, bus, IOAPIC, 24 I/O interrupts and 2 local interrupts: at most 281 entries.
    let entry_count = usize::from(num_cpus) + 2 + usize::from(IRQ_MAX) + 1 + 2;

    let table_len = std::mem::size_of::<MpcTable>() + entries.len();
    let mut table = MpcTable {
        signature: *b"PCMP",
        // Both fit: `size` is at most 1 KiB here.
        length: table_len as u16,
        spec: SPEC_REV,
        checksum: 0,
        oem: OEM_ID,
        productid: PRODUCT_ID,
        oemptr: 0,
        oemsize: 0,
        oemcount: entry_count as u16,
        lapic: platform.lapic_address,
        ext_length: 0,
        ext_checksum: 0,
        reserved: 0,
    };
    table.checksum = checksum(table.as_slice()).wrapping_add(checksum(&entries));

    let table_addr = MPTABLE_START + std::mem::size_of::<MpfIntel>() as u64;
    let mut mpf = MpfIntel {
        signature: *b"_MP_",
        // Below 1 MiB.
        physptr: table_addr as u32,
        length: 1,
        specification: SPEC_REV,
        checksum: 0,
        feature1: 0,
        feature2: 0,
        feature3: [0; 3],
    };
    mpf.checksum = checksum(mpf.as_slice());

    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(mpf.as_slice());
    bytes.extend_from_slice(table.as_slice());
    bytes.extend_from_slice(&entries);
    mem.write_slice(&bytes, start)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    /// A platform like the split irqchip's for `cpus` vCPUs.
    fn platform(cpus: u8) -> InterruptPlatform {
        InterruptPlatform {
            pic: false,
            pit: false,
            ioapic_id: cpus + 1,
            ioapic_address: 0xfec0_0000,
            ioapic_version: 0x20,
            ioapic_pins: 24,
            gsi_base: 0,
            lapic_address: 0xfee0_0000,
            overrides: Vec::new(),
        }
    }

    fn memory(size: usize) -> GuestMemoryMmap {
        match GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), size)]) {
            Ok(mem) => mem,
            Err(e) => panic!("guest memory: {e}"),
        }
    }

    fn read(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        if let Err(e) = mem.read_slice(&mut buf, GuestAddress(addr)) {
            panic!("read {addr:#x}: {e}");
        }
        buf
    }

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
    }

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }

    /// What a guest learns from the tables, parsed from memory by offsets from the
    /// specification, without the structs above.
    struct Parsed {
        cpus: Vec<(u8, u8)>,
        ioapics: Vec<(u8, u32, u8)>,
        io_irqs: Vec<(u8, u8, u8)>,
        lints: Vec<(u8, u8, u8)>,
        buses: usize,
        lapic: u32,
    }

    fn parse(mem: &GuestMemoryMmap) -> Parsed {
        // Scan all of the 1 MiB for the floating pointer on 16-byte boundaries, as a guest does
        // with its search areas.
        let low = read(mem, 0, 1 << 20);
        let found: Vec<usize> = (0..low.len() - 16)
            .step_by(16)
            .filter(|&off| &low[off..off + 4] == b"_MP_")
            .collect();
        assert_eq!(found, vec![MPTABLE_START as usize]);
        let mpf = &low[found[0]..found[0] + 16];
        assert_eq!(mpf[8], 1, "length in 16-byte units");
        assert_eq!(mpf[9], 4, "spec revision");
        assert_eq!(sum(mpf), 0, "floating pointer checksum");
        assert_eq!(mpf[11], 0, "feature byte 1: a config table is present");

        let base = u32_at(mpf, 4) as usize;
        assert_eq!(&low[base..base + 4], b"PCMP");
        let len = usize::from(u16_at(&low, base + 4));
        assert!(base + len <= MPTABLE_END as usize);
        let table = &low[base..base + len];
        assert_eq!(table[6], 4, "spec revision");
        assert_eq!(sum(table), 0, "config table checksum");
        assert_eq!(&table[8..16], b"STRATO  ");
        let count = usize::from(u16_at(table, 34));
        let lapic = u32_at(table, 36);

        let mut parsed = Parsed {
            cpus: vec![],
            ioapics: vec![],
            io_irqs: vec![],
            lints: vec![],
            buses: 0,
            lapic,
        };
        let mut off = 44;
        for _ in 0..count {
            let e = &table[off..];
            match e[0] {
                0 => {
                    assert_eq!(e[2], 0x14, "local APIC version");
                    assert_eq!(u32_at(e, 4), 0x600);
                    assert_eq!(u32_at(e, 8), 0x201);
                    parsed.cpus.push((e[1], e[3]));
                    off += 20;
                }
                1 => {
                    assert_eq!(&e[2..8], b"ISA   ");
                    parsed.buses += 1;
                    off += 8;
                }
                2 => {
                    assert_eq!(e[3] & 1, 1, "IOAPIC enabled");
                    parsed.ioapics.push((e[1], u32_at(e, 4), e[2]));
                    off += 8;
                }
                3 => {
                    assert_eq!(
                        (e[1], u16_at(e, 2), e[4]),
                        (0, 0, 0),
                        "INT, conforming, bus 0"
                    );
                    parsed.io_irqs.push((e[5], e[6], e[7]));
                    off += 8;
                }
                4 => {
                    parsed.lints.push((e[1], e[6], e[7]));
                    off += 8;
                }
                other => panic!("unknown entry type {other} at {off}"),
            }
        }
        assert_eq!(off, len, "entry count and table length agree");
        parsed
    }

    #[test]
    fn tables_parse_back() {
        for (cpus, version) in [(1u8, 0x20), (2, 0x11), (8, 0x20)] {
            let mem = memory(1 << 20);
            let p = InterruptPlatform {
                ioapic_version: version,
                ..platform(cpus)
            };
            setup_mptable(&mem, cpus, &p).expect("mptable");
            let parsed = parse(&mem);

            assert_eq!(parsed.lapic, 0xfee0_0000);
            assert_eq!(parsed.cpus.len(), usize::from(cpus));
            for (i, (apic_id, flags)) in parsed.cpus.iter().enumerate() {
                assert_eq!(usize::from(*apic_id), i);
                assert_eq!(flags & 1, 1, "cpu {i} enabled");
                assert_eq!(flags & 2 != 0, i == 0, "only cpu 0 is the BSP");
            }
            assert_eq!(parsed.buses, 1);
            assert_eq!(parsed.ioapics, vec![(cpus + 1, 0xfec0_0000, version)]);
            let expected: Vec<_> = (0..=23).map(|irq| (irq, cpus + 1, irq)).collect();
            assert_eq!(parsed.io_irqs, expected);
            assert_eq!(parsed.lints, vec![(3, 0xff, 0), (1, 0xff, 1)]);
        }
    }

    #[test]
    fn largest_table_that_fits() {
        let fits = (0..=MAX_CPUS)
            .rev()
            .find(|&n| mptable_size(n) <= 0x400)
            .unwrap_or(0);
        assert!(fits >= 8);
        let mem = memory(1 << 20);
        setup_mptable(&mem, fits, &platform(1)).expect("largest mptable");
        assert_eq!(parse(&mem).cpus.len(), usize::from(fits));
        match setup_mptable(&mem, fits + 1, &platform(1)) {
            Err(MptableError::TooLarge {
                size,
                available: 0x400,
                ..
            }) => assert!(size > 0x400),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_bad_cpu_counts() {
        let mem = memory(1 << 20);
        assert!(matches!(
            setup_mptable(&mem, 0, &platform(1)),
            Err(MptableError::CpuCount(0))
        ));
        assert!(matches!(
            setup_mptable(&mem, 255, &platform(1)),
            Err(MptableError::CpuCount(255))
        ));
        assert!(matches!(
            setup_mptable(&mem, 254, &platform(1)),
            Err(MptableError::TooLarge { .. })
        ));
    }

    #[test]
    fn refuses_memory_that_does_not_cover_it() {
        let mem = memory(0x9f000);
        let err = setup_mptable(&mem, 1, &platform(1)).expect_err("memory too small");
        assert!(
            matches!(err, MptableError::NotInMemory { start: 0x9fc00, .. }),
            "{err}"
        );
        // Ends inside the table.
        let mem = memory(0x9fc40);
        assert!(matches!(
            setup_mptable(&mem, 1, &platform(1)),
            Err(MptableError::NotInMemory { .. })
        ));
        let mem = memory(0xa0000);
        assert!(setup_mptable(&mem, 8, &platform(1)).is_ok());
    }
}
