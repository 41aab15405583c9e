//! Everything the monitor does because some hosts' KVM *emulates* guest kernel code
//! instead of running it on VT-x/AMD-V (the nested `kvm_pvm` setup measured in
//! shared/HOST-KVM.md). That emulator refuses a few instructions; under the
//! `emulated-kvm` CPU template the monitor
//! - hides the CPUID features whose instructions it refuses (XSAVE, POPCNT, CMPXCHG16B,
//!   SMEP/SMAP and
//!   what depends on them), and reports the vendor GenuineIntel so that Linux avoids the
//!   AMD-only FNCLEX path;
//! - hides the KVM paravirtual features that make Linux issue hypercalls (PV spinlock kicks,
//!   PV IPIs, PV sched yield): the emulator answers a VMCALL by rewriting it in guest memory,
//!   which faults once the kernel's text is read-only, so an SMP guest died at its first
//!   contended spinlock or IPI after boot;
//! - finishes the two refused instructions Linux cannot avoid: INT3 (injects #BP with RIP
//!   past it, as the CPU would) and FWAIT (a no-op here: no x87 exception can be pending
//!   because the guest's FPU is never used in kernel mode).
//!
//! Under the `host` template nothing here applies, and every emulation failure ends the
//! VM with the instruction bytes and RIP in the error.

use kvm_bindings::{kvm_vcpu_events, CpuId};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::config::CpuTemplate;

const LEAF1_ECX_FMA: u32 = 1 << 12;
/// CMPXCHG16B: Linux's SLUB allocator uses it when offered, and the emulator refuses it.
const LEAF1_ECX_CX16: u32 = 1 << 13;
const LEAF1_ECX_POPCNT: u32 = 1 << 23;
const LEAF1_ECX_XSAVE: u32 = 1 << 26;
const LEAF1_ECX_OSXSAVE: u32 = 1 << 27;
const LEAF1_ECX_AVX: u32 = 1 << 28;
const LEAF1_ECX_F16C: u32 = 1 << 29;
const LEAF7_EBX_AVX2: u32 = 1 << 5;
const LEAF7_EBX_SMEP: u32 = 1 << 7;
const LEAF7_EBX_SMAP: u32 = 1 << 20;
/// All AVX-512 foundation/extension bits in CPUID.7.0:EBX (they need XSAVE state).
const LEAF7_EBX_AVX512: u32 =
    (1 << 16) | (1 << 17) | (1 << 21) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 30) | (1 << 31);
/// CPUID.80000001:ECX ABM (LZCNT; POPCNT's AMD companion).
const EXT1_ECX_ABM: u32 = 1 << 5;

/// KVM's paravirtual feature leaf (`KVM_CPUID_FEATURES`).
const KVM_CPUID_FEATURES: u32 = 0x4000_0001;
/// The KVM features whose use is a hypercall: `KVM_FEATURE_PV_UNHALT` (spinlock kicks),
/// `KVM_FEATURE_PV_SEND_IPI` and `KVM_FEATURE_PV_SCHED_YIELD`.
const KVM_FEATURES_HYPERCALLS: u32 = (1 << 7) | (1 << 11) | (1 << 13);

/// "GenuineIntel" as CPUID.0 returns it in EBX, EDX, ECX.
const VENDOR_INTEL: [u32; 3] = [0x756e_6547, 0x4965_6e69, 0x6c65_746e];

/// x86 exception vector of #BP.
const BP_VECTOR: u8 = 3;

/// Applies a CPU template to a (normalized) CPUID.
pub fn apply_template(cpuid: &mut CpuId, template: CpuTemplate) {
    if template != CpuTemplate::EmulatedKvm {
        return;
    }
    for e in cpuid.as_mut_slice() {
        match (e.function, e.index) {
            (0, _) => {
                e.ebx = VENDOR_INTEL[0];
                e.edx = VENDOR_INTEL[1];
                e.ecx = VENDOR_INTEL[2];
            }
            (1, _) => {
                e.ecx &= !(LEAF1_ECX_XSAVE
                    | LEAF1_ECX_OSXSAVE
                    | LEAF1_ECX_POPCNT
                    | LEAF1_ECX_AVX
                    | LEAF1_ECX_F16C
                    | LEAF1_ECX_FMA
                    | LEAF1_ECX_CX16);
            }
            (7, 0) => {
                e.ebx &= !(LEAF7_EBX_SMEP | LEAF7_EBX_SMAP | LEAF7_EBX_AVX2 | LEAF7_EBX_AVX512);
            }
            (0xd, _) => {
                // No XSAVE state components without XSAVE.
                e.eax = 0;
                e.ebx = 0;
                e.ecx = 0;
                e.edx = 0;
            }
            (0x8000_0001, _) => e.ecx &= !EXT1_ECX_ABM,
            (KVM_CPUID_FEATURES, _) => e.eax &= !KVM_FEATURES_HYPERCALLS,
            _ => {}
        }
    }
}

/// Why the template is the right one for this host, for logs and `--detect-cpu-template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The template to use.
    pub template: CpuTemplate,
    /// One line of evidence.
    pub reason: String,
}

/// Chooses a template from what the host shows: a KVM that emulates guest kernel code
/// (the `kvm_pvm` module, or no VT-x/AMD-V flag in /proc/cpuinfo) needs `emulated-kvm`.
pub fn detect_template() -> Detection {
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        return Detection {
            template: CpuTemplate::EmulatedKvm,
            reason: "kvm_pvm module loaded: guest kernel code is emulated".into(),
        };
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if hw {
        Detection {
            template: CpuTemplate::Host,
            reason: "hardware virtualization (vmx/svm) present".into(),
        }
    } else {
        Detection {
            template: CpuTemplate::EmulatedKvm,
            reason: "no vmx/svm flag: KVM is not hardware-backed".into(),
        }
    }
}

/// What the monitor did about an emulation failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixup {
    /// INT3: #BP injected, RIP moved past it.
    Breakpoint,
    /// FWAIT stepped over.
    Fwait,
}

/// An emulation failure the monitor cannot finish.
#[derive(Debug, thiserror::Error)]
pub enum EmulationError {
    /// The instruction is not one the template handles.
    #[error("emulation failure at rip {rip:#x}, instruction bytes {bytes}")]
    Unhandled {
        /// Guest RIP.
        rip: u64,
        /// The bytes at RIP, hex.
        bytes: String,
    },
    /// Registers or memory could not be read to decide.
    #[error("emulation failure; reading vCPU state failed")]
    State(#[source] kvm_ioctls::Error),
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The instruction bytes at the vCPU's RIP (up to 15), through the guest's page tables.
fn instruction_at(vcpu: &VcpuFd, mem: &GuestMemoryMmap, rip: u64) -> Vec<u8> {
    let Ok(t) = vcpu.translate_gva(rip) else {
        return Vec::new();
    };
    if t.valid == 0 {
        return Vec::new();
    }
    let mut buf = [0u8; 15];
    // Read as much as is mapped; a short read near the end of RAM leaves zeros.
    for (i, b) in buf.iter_mut().enumerate() {
        match mem.read_obj::<u8>(GuestAddress(t.physical_address + i as u64)) {
            Ok(v) => *b = v,
            Err(_) => return buf[..i].to_vec(),
        }
    }
    buf.to_vec()
}

/// Handles a `KVM_EXIT_INTERNAL_ERROR` emulation failure under `template`.
pub fn handle_emulation_failure(
    vcpu: &VcpuFd,
    mem: &GuestMemoryMmap,
    template: CpuTemplate,
) -> Result<Fixup, EmulationError> {
    let mut regs = vcpu.get_regs().map_err(EmulationError::State)?;
    let bytes = instruction_at(vcpu, mem, regs.rip);
    let unhandled = || EmulationError::Unhandled {
        rip: regs.rip,
        bytes: hex(&bytes),
    };
    if template != CpuTemplate::EmulatedKvm {
        return Err(unhandled());
    }
    match bytes.first() {
        Some(0xcc) => {
            regs.rip += 1;
            vcpu.set_regs(&regs).map_err(EmulationError::State)?;
            let mut events = kvm_vcpu_events::default();
            events.exception.injected = 1;
            events.exception.nr = BP_VECTOR;
            vcpu.set_vcpu_events(&events)
                .map_err(EmulationError::State)?;
            Ok(Fixup::Breakpoint)
        }
        Some(0x9b) => {
            regs.rip += 1;
            vcpu.set_regs(&regs).map_err(EmulationError::State)?;
            Ok(Fixup::Fwait)
        }
        _ => Err(unhandled()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    fn cpuid() -> CpuId {
        let e = |function, index, eax, ebx, ecx, edx| kvm_cpuid_entry2 {
            function,
            index,
            eax,
            ebx,
            ecx,
            edx,
            ..Default::default()
        };
        CpuId::from_entries(&[
            e(0, 0, 0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65), // AuthenticAMD
            e(1, 0, 0, 0, u32::MAX, u32::MAX),
            e(7, 0, 0, u32::MAX, 0, 0),
            e(0xd, 0, 7, 0x240, 0x340, 0),
            e(KVM_CPUID_FEATURES, 0, 0xffff, 0, 0, 0),
        ])
        .unwrap()
    }

    #[test]
    fn emulated_kvm_masks_refused_features() {
        let mut c = cpuid();
        apply_template(&mut c, CpuTemplate::EmulatedKvm);
        let s = c.as_slice();
        assert_eq!([s[0].ebx, s[0].edx, s[0].ecx], VENDOR_INTEL);
        assert_eq!(
            s[1].ecx & (LEAF1_ECX_XSAVE | LEAF1_ECX_OSXSAVE | LEAF1_ECX_POPCNT),
            0
        );
        assert_eq!(s[2].ebx & (LEAF7_EBX_SMEP | LEAF7_EBX_SMAP), 0);
        assert_eq!(s[3].eax, 0);
        // No PV spinlock kicks, PV IPIs or PV sched yield; kvm-clock and the rest stay.
        assert_eq!(s[4].eax, 0xffff & !((1 << 7) | (1 << 11) | (1 << 13)));
        // Unrelated bits stay.
        assert_ne!(s[1].ecx & 1, 0);
    }

    #[test]
    fn host_template_changes_nothing() {
        let mut c = cpuid();
        apply_template(&mut c, CpuTemplate::Host);
        assert_eq!(c.as_slice(), cpuid().as_slice());
    }
}
