//! SMBIOS 3.0 tables (DMTF DSP0134): the machine's identity as firmware reports it, which
//! guests read through `/sys/class/dmi/id` (cloud-init's ds-identify finds the EC2 datasource
//! by a system UUID and serial number that start with `ec2`).
//!
//! The 64-bit entry point (`_SM3_`) sits at [`SMBIOS_START`] (0xf0000, where a guest without
//! EFI scans for it on 16-byte boundaries), the structure table right after it:
//!
//! | type | what | values |
//! |---|---|---|
//! | 0 | BIOS information | vendor `strato`, the monitor's version, "virtual machine" |
//! | 1 | system information | manufacturer `strato`, product name, serial number, UUID |
//! | 3 | chassis | manufacturer `strato`, type "other", asset tag |
//! | 4 | processor | one package holding every vCPU as a core |
//! | 127 | end of table | |

use strato_vmm_api::config::{parse_uuid, SmbiosConfig};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryError};

use super::layout::{SMBIOS_END, SMBIOS_START};

/// System and chassis manufacturer, and BIOS vendor.
pub const MANUFACTURER: &str = "strato";
/// Product name when none is configured.
pub const DEFAULT_PRODUCT: &str = "strato-vmm";
/// BIOS release date (mm/dd/yyyy): that of this table layout, not of a build.
const BIOS_RELEASE_DATE: &str = "12/01/2026";
/// Where the structure table starts, after the 24-byte entry point.
const TABLE_OFFSET: u64 = 0x20;

const TYPE_BIOS: u8 = 0;
const TYPE_SYSTEM: u8 = 1;
const TYPE_CHASSIS: u8 = 3;
const TYPE_PROCESSOR: u8 = 4;
const TYPE_END: u8 = 127;

/// BIOS characteristics: "BIOS characteristics are not supported".
const BIOS_CHARACTERISTICS_UNSUPPORTED: u64 = 1 << 3;
/// BIOS characteristics extension byte 2: "SMBIOS table describes a virtual machine".
const BIOS_EXT2_VIRTUAL_MACHINE: u8 = 1 << 4;
/// System wake-up type: power switch.
const WAKEUP_POWER_SWITCH: u8 = 6;
/// Chassis type: other.
const CHASSIS_OTHER: u8 = 1;
/// Chassis states: safe.
const STATE_SAFE: u8 = 3;
/// Chassis security: none.
const SECURITY_NONE: u8 = 3;
/// Processor type: central processor.
const PROCESSOR_CENTRAL: u8 = 3;
/// Processor family: other.
const FAMILY_OTHER: u8 = 1;
/// Processor status: socket populated, CPU enabled.
const PROCESSOR_ENABLED: u8 = 0x41;
/// Processor upgrade: other.
const UPGRADE_OTHER: u8 = 1;
/// Processor characteristics: 64-bit capable.
const PROCESSOR_64BIT: u16 = 1 << 2;
/// No cache information structure.
const NO_HANDLE: u16 = 0xffff;

/// What the tables say about the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmbiosInfo {
    /// System product name ([`DEFAULT_PRODUCT`] when `None`).
    pub product: Option<String>,
    /// System serial number.
    pub serial: Option<String>,
    /// System UUID, bytes in the order its text form reads (RFC 4122).
    pub uuid: Option<[u8; 16]>,
    /// Chassis asset tag.
    pub asset_tag: Option<String>,
    /// vCPUs.
    pub cpus: u8,
}

impl SmbiosInfo {
    /// The tables' contents for a VM of `cpus` vCPUs with the identity in `config`.
    pub fn from_config(config: &SmbiosConfig, cpus: u8) -> Result<Self, SmbiosError> {
        let uuid = match &config.uuid {
            Some(text) => Some(parse_uuid(text).map_err(|_| SmbiosError::BadUuid(text.clone()))?),
            None => None,
        };
        Ok(Self {
            product: config.product.clone(),
            serial: config.serial.clone(),
            uuid,
            asset_tag: config.asset_tag.clone(),
            cpus,
        })
    }
}

/// Why the tables could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SmbiosError {
    /// The UUID does not parse.
    #[error("SMBIOS UUID {0:?} does not parse")]
    BadUuid(String),
    /// A string is empty, has a NUL byte or is longer than SMBIOS allows here.
    #[error("SMBIOS string {0:?} must be 1 to 64 bytes without NUL")]
    BadString(String),
    /// The tables do not fit their range.
    #[error("SMBIOS tables need {size} bytes, more than the {available} reserved")]
    TooLarge {
        /// Bytes needed.
        size: usize,
        /// Bytes available.
        available: usize,
    },
    /// Writing guest memory failed.
    #[error("cannot write the SMBIOS tables")]
    Write(#[from] GuestMemoryError),
}

/// Longest string accepted.
pub const MAX_STRING_LEN: usize = 64;

/// The UUID as SMBIOS 2.6+ stores it: the first three fields little-endian.
fn uuid_wire(uuid: [u8; 16]) -> [u8; 16] {
    let mut w = uuid;
    w[0..4].reverse();
    w[4..6].reverse();
    w[6..8].reverse();
    w
}

/// One structure being built: formatted area and its string set.
struct Structure {
    formatted: Vec<u8>,
    strings: Vec<String>,
}

impl Structure {
    fn new(kind: u8, length: u8, handle: u16) -> Self {
        let mut formatted = Vec::with_capacity(usize::from(length));
        formatted.push(kind);
        formatted.push(length);
        formatted.extend_from_slice(&handle.to_le_bytes());
        Self {
            formatted,
            strings: Vec::new(),
        }
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.formatted.push(v);
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.formatted.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.formatted.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.formatted.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.formatted.extend_from_slice(v);
        self
    }

    /// A string field: its number in the string set, or 0 for none.
    fn string(&mut self, s: Option<&str>) -> Result<&mut Self, SmbiosError> {
        let index = match s {
            None => 0,
            Some(s) => {
                if s.is_empty() || s.len() > MAX_STRING_LEN || s.contains('\0') {
                    return Err(SmbiosError::BadString(s.to_string()));
                }
                self.strings.push(s.to_string());
                self.strings.len() as u8
            }
        };
        Ok(self.u8(index))
    }

    fn finish(self, out: &mut Vec<u8>) {
        debug_assert_eq!(self.formatted.len(), usize::from(self.formatted[1]));
        out.extend_from_slice(&self.formatted);
        if self.strings.is_empty() {
            out.push(0);
        }
        for s in &self.strings {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        out.push(0);
    }
}

/// The structure table for `info`.
pub fn structure_table(info: &SmbiosInfo) -> Result<Vec<u8>, SmbiosError> {
    let mut out = Vec::new();
    let version = env!("CARGO_PKG_VERSION");

    let mut bios = Structure::new(TYPE_BIOS, 0x18, 0x0000);
    bios.string(Some(MANUFACTURER))?
        .string(Some(version))?
        // Starting segment: none (no BIOS image is loaded).
        .u16(0)
        .string(Some(BIOS_RELEASE_DATE))?
        // ROM size: 64 KiB.
        .u8(0)
        .u64(BIOS_CHARACTERISTICS_UNSUPPORTED)
        .u8(0)
        .u8(BIOS_EXT2_VIRTUAL_MACHINE)
        // System BIOS major and minor release, embedded controller: none.
        .u8(0)
        .u8(1)
        .u8(0xff)
        .u8(0xff);
    bios.finish(&mut out);

    let mut system = Structure::new(TYPE_SYSTEM, 0x1b, 0x0100);
    system
        .string(Some(MANUFACTURER))?
        .string(Some(info.product.as_deref().unwrap_or(DEFAULT_PRODUCT)))?
        .string(None)?
        .string(info.serial.as_deref())?
        .raw(&uuid_wire(info.uuid.unwrap_or([0; 16])))
        .u8(WAKEUP_POWER_SWITCH)
        .string(None)?
        .string(None)?;
    system.finish(&mut out);

    let mut chassis = Structure::new(TYPE_CHASSIS, 0x16, 0x0300);
    chassis
        .string(Some(MANUFACTURER))?
        .u8(CHASSIS_OTHER)
        .string(None)?
        .string(None)?
        .string(info.asset_tag.as_deref())?
        .u8(STATE_SAFE)
        .u8(STATE_SAFE)
        .u8(STATE_SAFE)
        .u8(SECURITY_NONE)
        // OEM-defined, height, power cords, contained elements (none, 0 bytes each).
        .u32(0)
        .u8(0)
        .u8(0)
        .u8(0)
        .u8(0)
        .string(None)?;
    chassis.finish(&mut out);

    let cpus = info.cpus.max(1);
    let mut cpu = Structure::new(TYPE_PROCESSOR, 0x30, 0x0400);
    cpu.string(Some("CPU 0"))?
        .u8(PROCESSOR_CENTRAL)
        .u8(FAMILY_OTHER)
        .string(Some(MANUFACTURER))?
        // Processor ID (CPUID leaf 1): left to CPUID itself.
        .u64(0)
        .string(None)?
        // Voltage, external clock, max and current speed: unknown.
        .u8(0)
        .u16(0)
        .u16(0)
        .u16(0)
        .u8(PROCESSOR_ENABLED)
        .u8(UPGRADE_OTHER)
        .u16(NO_HANDLE)
        .u16(NO_HANDLE)
        .u16(NO_HANDLE)
        .string(None)?
        .string(None)?
        .string(None)?
        // Cores, enabled cores, threads: every vCPU is a core of this package.
        .u8(cpus)
        .u8(cpus)
        .u8(cpus)
        .u16(PROCESSOR_64BIT)
        .u16(u16::from(FAMILY_OTHER))
        .u16(u16::from(cpus))
        .u16(u16::from(cpus))
        .u16(u16::from(cpus));
    cpu.finish(&mut out);

    Structure::new(TYPE_END, 4, 0x7f00).finish(&mut out);
    Ok(out)
}

/// The 24-byte SMBIOS 3.0 entry point for a table of `len` bytes at `table_addr`.
fn entry_point(table_addr: u64, len: u32) -> [u8; 24] {
    let mut e = [0u8; 24];
    e[0..5].copy_from_slice(b"_SM3_");
    e[6] = 24;
    // SMBIOS 3.0.0, entry point revision 1.
    e[7] = 3;
    e[8] = 0;
    e[9] = 0;
    e[10] = 1;
    e[12..16].copy_from_slice(&len.to_le_bytes());
    e[16..24].copy_from_slice(&table_addr.to_le_bytes());
    let sum = e.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    e[5] = sum.wrapping_neg();
    e
}

/// Writes the entry point at [`SMBIOS_START`] and the structure table after it.
pub fn write_tables<M: GuestMemoryBackend + ?Sized>(
    mem: &M,
    info: &SmbiosInfo,
) -> Result<(), SmbiosError> {
    let table = structure_table(info)?;
    let table_addr = SMBIOS_START + TABLE_OFFSET;
    let available = (SMBIOS_END - table_addr) as usize;
    if table.len() > available {
        return Err(SmbiosError::TooLarge {
            size: table.len(),
            available,
        });
    }
    mem.write_slice(
        &entry_point(table_addr, table.len() as u32),
        GuestAddress(SMBIOS_START),
    )?;
    mem.write_slice(&table, GuestAddress(table_addr))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    /// One structure as a guest parses it.
    #[derive(Debug)]
    struct Parsed {
        kind: u8,
        formatted: Vec<u8>,
        strings: Vec<String>,
    }

    impl Parsed {
        fn string(&self, offset: usize) -> Option<&str> {
            match self.formatted[offset] {
                0 => None,
                n => Some(self.strings[usize::from(n) - 1].as_str()),
            }
        }
    }

    /// Scans 0xf0000..0x100000 for the entry point as Linux does, checks it, and walks the
    /// table to the end-of-table structure.
    fn scan(mem: &GuestMemoryMmap) -> Vec<Parsed> {
        let mut area = vec![0u8; 0x10000];
        mem.read_slice(&mut area, GuestAddress(0xf0000)).unwrap();
        let at = (0..area.len())
            .step_by(16)
            .find(|&o| &area[o..o + 5] == b"_SM3_")
            .expect("an _SM3_ entry point on a 16-byte boundary");
        let e = &area[at..at + 24];
        assert_eq!(e[6], 24, "entry point length");
        assert_eq!(e.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0, "checksum");
        assert_eq!((e[7], e[8], e[10]), (3, 0, 1));
        let len = u32::from_le_bytes(e[12..16].try_into().unwrap()) as usize;
        let addr = u64::from_le_bytes(e[16..24].try_into().unwrap());
        assert!(addr >= SMBIOS_START && addr + len as u64 <= SMBIOS_END);
        let mut t = vec![0u8; len];
        mem.read_slice(&mut t, GuestAddress(addr)).unwrap();
        let mut out = Vec::new();
        let mut off = 0;
        loop {
            let (kind, flen) = (t[off], usize::from(t[off + 1]));
            assert!(
                flen >= 4 && off + flen + 2 <= len,
                "structure {kind} at {off}"
            );
            let formatted = t[off..off + flen].to_vec();
            let mut p = off + flen;
            let mut strings = Vec::new();
            if t[p] == 0 {
                p += 1;
            } else {
                while t[p] != 0 {
                    let end = p + t[p..].iter().position(|b| *b == 0).unwrap();
                    strings.push(String::from_utf8(t[p..end].to_vec()).unwrap());
                    p = end + 1;
                }
            }
            assert_eq!(t[p], 0, "double NUL after structure {kind}");
            off = p + 1;
            out.push(Parsed {
                kind,
                formatted,
                strings,
            });
            if kind == TYPE_END {
                break;
            }
        }
        assert_eq!(off, len, "the table ends with its end-of-table structure");
        out
    }

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap()
    }

    const UUID: [u8; 16] = [
        0xec, 0x2a, 0x1b, 0x2c, 0x3d, 0x4e, 0x45, 0x6f, 0x87, 0x90, 0x01, 0x23, 0x45, 0x67, 0x89,
        0xab,
    ];

    #[test]
    fn identity_reaches_the_system_and_chassis_structures() {
        let m = mem();
        let info = SmbiosInfo {
            product: Some("t3.micro".into()),
            serial: Some("ec2a1b2c-3d4e-456f-8790-0123456789ab".into()),
            uuid: Some(UUID),
            asset_tag: Some("i-0123456789abcdef0".into()),
            cpus: 2,
        };
        write_tables(&m, &info).unwrap();
        let s = scan(&m);
        let kinds: Vec<u8> = s.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec![0, 1, 3, 4, 127]);
        let handles: Vec<u16> = s
            .iter()
            .map(|p| u16::from_le_bytes([p.formatted[2], p.formatted[3]]))
            .collect();
        let mut unique = handles.clone();
        unique.dedup();
        assert_eq!(unique, handles, "distinct handles");

        let bios = &s[0];
        assert_eq!(bios.formatted.len(), 0x18);
        assert_eq!(bios.string(4), Some("strato"));
        assert_eq!(bios.string(5), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(bios.string(8), Some(BIOS_RELEASE_DATE));
        assert_eq!(
            bios.formatted[0x13] & BIOS_EXT2_VIRTUAL_MACHINE,
            BIOS_EXT2_VIRTUAL_MACHINE
        );

        let sys = &s[1];
        assert_eq!(sys.formatted.len(), 0x1b);
        assert_eq!(sys.string(4), Some("strato"));
        assert_eq!(sys.string(5), Some("t3.micro"));
        assert_eq!(sys.string(7), info.serial.as_deref());
        // Linux prints SMBIOS 2.6+ UUIDs with the first three fields little-endian (%pUl).
        let w = &sys.formatted[8..24];
        let text = format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
            w[3],
            w[2],
            w[1],
            w[0],
            w[5],
            w[4],
            w[7],
            w[6],
            w[8],
            w[9],
            w[10..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        assert_eq!(Some(text.as_str()), info.serial.as_deref());

        let chassis = &s[2];
        assert_eq!(chassis.formatted.len(), 0x16);
        assert_eq!(chassis.formatted[5], CHASSIS_OTHER);
        assert_eq!(chassis.string(8), Some("i-0123456789abcdef0"));

        let cpu = &s[3];
        assert_eq!(cpu.formatted.len(), 0x30);
        assert_eq!((cpu.formatted[0x23], cpu.formatted[0x25]), (2, 2));
        assert_eq!(cpu.string(4), Some("CPU 0"));
        assert_eq!(s[4].formatted.len(), 4);
    }

    #[test]
    fn defaults_without_an_identity() {
        let m = mem();
        write_tables(
            &m,
            &SmbiosInfo {
                cpus: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let s = scan(&m);
        assert_eq!(s[1].string(5), Some(DEFAULT_PRODUCT));
        assert_eq!(s[1].string(7), None);
        assert_eq!(&s[1].formatted[8..24], &[0u8; 16], "no UUID");
        assert_eq!(s[2].string(8), None);
    }

    #[test]
    fn bad_strings_are_refused() {
        for bad in ["", "a\0b", &"x".repeat(MAX_STRING_LEN + 1)] {
            let info = SmbiosInfo {
                product: Some(bad.to_string()),
                cpus: 1,
                ..Default::default()
            };
            assert!(matches!(
                structure_table(&info),
                Err(SmbiosError::BadString(_))
            ));
        }
    }
}
