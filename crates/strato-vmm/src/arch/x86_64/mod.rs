//! x86-64 specifics: the address map, boot tables and registers, CPUID, MSRs, MP table, ACPI
//! tables and SMBIOS.

pub mod acpi;
pub mod boot;
pub mod cpuid;
pub mod layout;
pub mod mptable;
pub mod msr;
pub mod regs;
pub mod smbios;
