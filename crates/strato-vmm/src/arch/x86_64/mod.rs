//! x86-64 specifics: the address map, boot tables and registers, CPUID, MSRs, MP table.

pub mod boot;
pub mod cpuid;
pub mod layout;
pub mod mptable;
pub mod msr;
pub mod regs;
