//! Per-vCPU CPUID normalization: what KVM supports, with the topology, APIC IDs and
//! hypervisor bits rewritten for this VM's shape.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

/// CPUID.1:ECX hypervisor-present bit.
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.1:ECX TSC-deadline mode of the local APIC timer.
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
/// CPUID.1:EDX HTT (multi-threading / multi-core package).
const LEAF1_EDX_HTT: u32 = 1 << 28;
/// CPUID.B/1F level types.
const LEVEL_TYPE_SMT: u32 = 1;
const LEVEL_TYPE_CORE: u32 = 2;

fn ceil_log2(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

fn normalize_entry(e: &mut kvm_cpuid_entry2, cpu: u8, cpus: u8) {
    let (cpu, cpus) = (u32::from(cpu), u32::from(cpus));
    match e.function {
        0x1 => {
            // APIC ID, logical processor count, CLFLUSH line size 8 quadwords.
            e.ebx = (cpu << 24) | (cpus << 16) | (8 << 8) | (e.ebx & 0xff);
            e.ecx |= LEAF1_ECX_HYPERVISOR;
            if cpus > 1 {
                e.edx |= LEAF1_EDX_HTT;
            } else {
                e.edx &= !LEAF1_EDX_HTT;
            }
        }
        0x4 => {
            // Deterministic cache parameters: one core per vCPU, one thread per core;
            // the last-level cache is shared by the whole package.
            let level = (e.eax >> 5) & 0x7;
            let sharing = if level >= 3 { cpus - 1 } else { 0 };
            e.eax = (e.eax & 0x3fff) | (sharing << 14) | ((cpus - 1) << 26);
        }
        0x6 => {
            // No power-management features for a guest that cannot use them.
            e.ecx &= !(1 << 3); // EPB
        }
        0xa => {
            // No virtual PMU: perf in the guest would otherwise probe host counters.
            e.eax = 0;
            e.ebx = 0;
            e.ecx = 0;
            e.edx = 0;
        }
        0xb | 0x1f => {
            // Extended topology: every vCPU a core of one package.
            let (shift, count, kind) = match e.index {
                0 => (0, 1, LEVEL_TYPE_SMT),
                1 => (ceil_log2(cpus), cpus, LEVEL_TYPE_CORE),
                _ => (0, 0, 0),
            };
            e.eax = shift;
            e.ebx = count;
            e.ecx = (kind << 8) | (e.index & 0xff);
            e.edx = cpu;
        }
        0x8000_0008 => {
            // AMD: number of cores in the package minus one.
            e.ecx = (e.ecx & !0xff) | (cpus - 1);
        }
        _ => {}
    }
}

/// Rewrites `cpuid` (from `KVM_GET_SUPPORTED_CPUID`) for vCPU `cpu` of `cpus`.
pub fn normalize(cpuid: &mut CpuId, cpu: u8, cpus: u8) {
    for e in cpuid.as_mut_slice() {
        normalize_entry(e, cpu, cpus);
    }
}

/// Advertises the local APIC timer's TSC-deadline mode, which KVM emulates when it reports
/// `KVM_CAP_TSC_DEADLINE_TIMER` but leaves out of `KVM_GET_SUPPORTED_CPUID`. With it (and ARAT,
/// which KVM does report) Linux needs no PIT to calibrate or drive its timer, which a split
/// irqchip does not have.
pub fn set_tsc_deadline(cpuid: &mut CpuId) {
    for e in cpuid.as_mut_slice() {
        if e.function == 0x1 {
            e.ecx |= LEAF1_ECX_TSC_DEADLINE;
        }
    }
}

/// Looks up one entry.
pub fn find(cpuid: &CpuId, function: u32, index: u32) -> Option<&kvm_cpuid_entry2> {
    cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == function && e.index == index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CpuId {
        let entries = [
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0xff,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                index: 0,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xb,
                index: 1,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xa,
                eax: 7,
                ..Default::default()
            },
        ];
        CpuId::from_entries(&entries).unwrap()
    }

    #[test]
    fn apic_ids_and_topology() {
        let mut c = sample();
        normalize(&mut c, 3, 4);
        let l1 = find(&c, 1, 0).unwrap();
        assert_eq!(l1.ebx >> 24, 3);
        assert_eq!((l1.ebx >> 16) & 0xff, 4);
        assert_ne!(l1.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_ne!(l1.edx & LEAF1_EDX_HTT, 0);
        let core = find(&c, 0xb, 1).unwrap();
        assert_eq!((core.eax, core.ebx, core.edx), (2, 4, 3));
        assert_eq!(find(&c, 0xa, 0).unwrap().eax, 0);
    }

    #[test]
    fn single_cpu_has_no_htt() {
        let mut c = sample();
        normalize(&mut c, 0, 1);
        let l1 = find(&c, 1, 0).unwrap();
        assert_eq!(l1.edx & LEAF1_EDX_HTT, 0);
        assert_eq!(find(&c, 0xb, 1).unwrap().eax, 0);
    }

    #[test]
    fn tsc_deadline_bit() {
        let mut c = sample();
        set_tsc_deadline(&mut c);
        assert_ne!(find(&c, 1, 0).unwrap().ecx & (1 << 24), 0);
        assert_eq!(find(&c, 0xb, 0).unwrap().ecx & (1 << 24), 0);
    }

    #[test]
    fn log2() {
        assert_eq!([1, 2, 3, 4, 5, 8].map(ceil_log2), [0, 1, 2, 2, 3, 3]);
    }
}
