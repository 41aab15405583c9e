//! vCPUs: configuration (CPUID, MSRs, LAPIC, boot registers) and the thread that runs
//! each one, dispatching its exits to the port-I/O and MMIO buses.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;

use kvm_bindings::{kvm_run, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, Kvm, VcpuExit, VcpuFd, VmFd};
use strato_devices::bus::{lock, Bus};
use strato_devices::ioapic::Ioapic;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use crate::arch::x86_64::{cpuid, layout, msr, regs};
use crate::config::CpuTemplate;
use crate::emulation;
use crate::seccomp::{self, ThreadKind};
use crate::state::{ExitReason, VmControl, VmState};

/// Errors creating or configuring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM refused an ioctl.
    #[error("vCPU {index}: {what}")]
    Kvm {
        /// vCPU index.
        index: u8,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// MSR setup failed.
    #[error("vCPU {0}: MSRs")]
    Msr(u8, #[source] msr::MsrError),
    /// Register setup failed.
    #[error("vCPU {0}: registers")]
    Regs(u8, #[source] regs::RegsError),
    /// The kick signal handler could not be installed.
    #[error("installing the vCPU kick signal handler")]
    Signal(#[source] vmm_sys_util::errno::Error),
    /// The thread could not be spawned.
    #[error("spawning vCPU thread {0}")]
    Spawn(u8, #[source] std::io::Error),
}

/// Exit counters of one vCPU, readable from the API while it runs.
#[derive(Debug, Default)]
pub struct VcpuStats {
    /// KVM_RUN returns of any kind (progress indicator).
    pub runs: AtomicU64,
    /// Port reads.
    pub io_in: AtomicU64,
    /// Port writes.
    pub io_out: AtomicU64,
    /// MMIO reads.
    pub mmio_read: AtomicU64,
    /// MMIO writes.
    pub mmio_write: AtomicU64,
    /// Accesses to ports or MMIO no device claims.
    pub unhandled_io: AtomicU64,
    /// HLT exits (only without an in-kernel LAPIC).
    pub hlt: AtomicU64,
    /// Returns caused by a kick or signal.
    pub interrupted: AtomicU64,
    /// End-of-interrupt exits for the userspace IOAPIC (split irqchip).
    pub ioapic_eoi: AtomicU64,
    /// Emulation failures finished by the `emulated-kvm` template.
    pub emulation_fixups: AtomicU64,
    /// Exits of other kinds.
    pub other: AtomicU64,
    /// CLOCK_MONOTONIC (ns) when this vCPU first entered KVM_RUN; 0 before that.
    pub first_run_ns: AtomicU64,
}

/// CLOCK_MONOTONIC in nanoseconds (the clock other processes can compare with).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

impl VcpuStats {
    /// `(name, value)` pairs for the API.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("runs", g(&self.runs)),
            ("io_in", g(&self.io_in)),
            ("io_out", g(&self.io_out)),
            ("mmio_read", g(&self.mmio_read)),
            ("mmio_write", g(&self.mmio_write)),
            ("unhandled_io", g(&self.unhandled_io)),
            ("hlt", g(&self.hlt)),
            ("interrupted", g(&self.interrupted)),
            ("ioapic_eoi", g(&self.ioapic_eoi)),
            ("emulation_fixups", g(&self.emulation_fixups)),
            ("other", g(&self.other)),
        ]
    }
}

/// The signal used to kick a vCPU out of KVM_RUN.
fn kick_signal() -> i32 {
    SIGRTMIN()
}

thread_local! {
    /// This thread's kvm_run, so the kick handler can set `immediate_exit`.
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn handle_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    KVM_RUN.with(|r| {
        let ptr = r.get();
        if !ptr.is_null() {
            // SAFETY: the pointer is this thread's own kvm_run mapping, set by the vCPU
            // thread before it runs and valid for the thread's life; a single byte store
            // is async-signal-safe. Setting it makes the next (or current) KVM_RUN return
            // EINTR, closing the race between checking the VM state and entering the guest.
            unsafe { (*ptr).immediate_exit = 1 };
        }
    });
}

/// Installs the kick handler (once per process).
pub fn install_kick_handler() -> Result<(), VcpuError> {
    register_signal_handler(kick_signal(), handle_kick).map_err(VcpuError::Signal)
}

/// The CPUID KVM supports on this host (plus the TSC-deadline timer when KVM emulates it),
/// before per-vCPU normalization.
pub fn supported_cpuid(kvm: &Kvm) -> Result<CpuId, VcpuError> {
    let mut c = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|source| VcpuError::Kvm {
            index: 0,
            what: "KVM_GET_SUPPORTED_CPUID",
            source,
        })?;
    if kvm.check_extension(Cap::TscDeadlineTimer) {
        cpuid::set_tsc_deadline(&mut c);
    }
    Ok(c)
}

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

fn set_apic_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// LINT0 as ExtINT (the PIC) and LINT1 as NMI, as a PC's BIOS leaves them.
fn setup_lint(vcpu: &VcpuFd, index: u8) -> Result<(), VcpuError> {
    let kvm = |what, source| VcpuError::Kvm {
        index,
        what,
        source,
    };
    let mut lapic = vcpu.get_lapic().map_err(|e| kvm("KVM_GET_LAPIC", e))?;
    for (off, mode) in [(APIC_LVT0, APIC_MODE_EXTINT), (APIC_LVT1, APIC_MODE_NMI)] {
        let bytes: Vec<u8> = lapic.regs[off..off + 4].iter().map(|b| *b as u8).collect();
        let reg = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let new = set_apic_delivery_mode(reg, mode).to_le_bytes();
        for (i, b) in new.iter().enumerate() {
            lapic.regs[off + i] = *b as _;
        }
    }
    vcpu.set_lapic(&lapic).map_err(|e| kvm("KVM_SET_LAPIC", e))
}

/// Creates and configures vCPU `index` of `count`; the boot CPU also gets its entry registers.
pub fn create(
    vm: &VmFd,
    base_cpuid: &CpuId,
    index: u8,
    count: u8,
    template: CpuTemplate,
    boot: Option<(regs::EntryMode, u64)>,
) -> Result<VcpuFd, VcpuError> {
    let kvm = |what, source| VcpuError::Kvm {
        index,
        what,
        source,
    };
    let fd = vm
        .create_vcpu(u64::from(index))
        .map_err(|e| kvm("KVM_CREATE_VCPU", e))?;
    let mut c = base_cpuid.clone();
    cpuid::normalize(&mut c, index, count);
    emulation::apply_template(&mut c, template);
    fd.set_cpuid2(&c).map_err(|e| kvm("KVM_SET_CPUID2", e))?;
    msr::setup_msrs(&fd).map_err(|e| VcpuError::Msr(index, e))?;
    setup_lint(&fd, index)?;
    if let Some((mode, entry)) = boot {
        regs::setup_boot_cpu(&fd, mode, entry).map_err(|e| VcpuError::Regs(index, e))?;
    }
    Ok(fd)
}

/// What a vCPU thread needs besides its fd.
pub struct VcpuContext {
    /// Port-I/O devices.
    pub pio: Bus,
    /// MMIO devices.
    pub mmio: Bus,
    /// Guest memory (for the emulation fix-ups).
    pub mem: GuestMemoryMmap,
    /// The VM's state.
    pub control: Arc<VmControl>,
    /// Written when this vCPU ends the VM, to wake the event loop.
    pub exit_evt: EventFd,
    /// Written after a guest write to a virtio Status register, so the event loop
    /// picks up activated or reset devices.
    pub rescan_evt: EventFd,
    /// CPU template in force.
    pub template: CpuTemplate,
    /// The split irqchip's IOAPIC, which hears of every end of a level-triggered interrupt
    /// (`None` with the in-kernel irqchip).
    pub ioapic: Option<Arc<Mutex<Ioapic>>>,
    /// Counters.
    pub stats: Arc<VcpuStats>,
    /// In a jailed monitor: the filter this thread installs before it runs the guest.
    pub sandbox: Option<Arc<VcpuSandbox>>,
}

/// What a jailed monitor's vCPU threads do before the guest's first instruction: install
/// their seccomp filter, then wait until every vCPU and the event loop have theirs.
pub struct VcpuSandbox {
    /// The vCPU allow-list.
    pub filter: seccompiler::BpfProgram,
    /// Passed by every vCPU thread and the event loop once their filters are in.
    pub start: Barrier,
}

enum Step {
    Continue,
    Exit(ExitReason),
}

fn is_virtio_status_write(addr: u64) -> bool {
    (layout::VIRTIO_MMIO_BASE..layout::MMIO_GAP_END).contains(&addr)
        && (addr - layout::VIRTIO_MMIO_BASE) % layout::VIRTIO_MMIO_SIZE == 0x70
}

const KVM_INTERNAL_ERROR_EMULATION: u32 = 1;
const KVM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const KVM_SYSTEM_EVENT_RESET: u32 = 2;

fn run_once(fd: &mut VcpuFd, ctx: &VcpuContext, index: u8) -> Step {
    let s = &ctx.stats;
    let inc = |c: &AtomicU64| {
        c.fetch_add(1, Ordering::Relaxed);
    };
    inc(&s.runs);
    let exit = match fd.run() {
        Ok(exit) => exit,
        Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
            fd.set_kvm_immediate_exit(0);
            inc(&s.interrupted);
            return Step::Continue;
        }
        Err(e) => return Step::Exit(ExitReason::Error(format!("vCPU {index}: KVM_RUN: {e}"))),
    };
    match exit {
        VcpuExit::IoIn(port, data) => {
            inc(&s.io_in);
            if !ctx.pio.read(u64::from(port), data) {
                inc(&s.unhandled_io);
                data.fill(0xff);
            }
        }
        VcpuExit::IoOut(port, data) => {
            inc(&s.io_out);
            if !ctx.pio.write(u64::from(port), data) {
                inc(&s.unhandled_io);
            }
        }
        VcpuExit::MmioRead(addr, data) => {
            inc(&s.mmio_read);
            if !ctx.mmio.read(addr, data) {
                inc(&s.unhandled_io);
                data.fill(0xff);
            }
        }
        VcpuExit::MmioWrite(addr, data) => {
            inc(&s.mmio_write);
            if !ctx.mmio.write(addr, data) {
                inc(&s.unhandled_io);
            } else if is_virtio_status_write(addr) {
                let _ = ctx.rescan_evt.write(1);
            }
        }
        VcpuExit::Hlt => inc(&s.hlt),
        VcpuExit::IoapicEoi(vector) => {
            inc(&s.ioapic_eoi);
            if let Some(ioapic) = &ctx.ioapic {
                lock(ioapic).end_of_interrupt(vector);
            }
        }
        VcpuExit::Shutdown => {
            return Step::Exit(ExitReason::GuestCrash(format!(
                "vCPU {index}: triple fault"
            )))
        }
        VcpuExit::SystemEvent(kind, _) => match kind {
            KVM_SYSTEM_EVENT_SHUTDOWN => return Step::Exit(ExitReason::GuestPowerOff),
            KVM_SYSTEM_EVENT_RESET => return Step::Exit(ExitReason::GuestReset),
            other => {
                return Step::Exit(ExitReason::GuestCrash(format!(
                    "vCPU {index}: system event {other}"
                )))
            }
        },
        VcpuExit::InternalError => {
            // SAFETY: KVM reported KVM_EXIT_INTERNAL_ERROR, so the `internal` member of the
            // exit union is the one it filled in.
            let suberror = unsafe { fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
            if suberror != KVM_INTERNAL_ERROR_EMULATION {
                return Step::Exit(ExitReason::GuestCrash(format!(
                    "vCPU {index}: KVM internal error, suberror {suberror}"
                )));
            }
            match emulation::handle_emulation_failure(fd, &ctx.mem, ctx.template) {
                Ok(fixup) => {
                    inc(&s.emulation_fixups);
                    tracing::debug!(vcpu = index, ?fixup, "emulation failure handled");
                }
                Err(e) => return Step::Exit(ExitReason::GuestCrash(format!("vCPU {index}: {e}"))),
            }
        }
        VcpuExit::FailEntry(reason, cpu) => {
            return Step::Exit(ExitReason::Error(format!(
                "vCPU {index}: entry failed, hardware reason {reason:#x} on host cpu {cpu}"
            )))
        }
        _ => inc(&s.other),
    }
    Step::Continue
}

/// Runs a vCPU until the VM exits.
fn vcpu_loop(mut fd: VcpuFd, ctx: VcpuContext, index: u8) {
    if let Some(sandbox) = &ctx.sandbox {
        let installed = seccomp::apply(&sandbox.filter);
        if installed.is_ok() {
            seccomp::test_hook(ThreadKind::Vcpu);
        }
        sandbox.start.wait();
        if let Err(e) = installed {
            ctx.control
                .exit(ExitReason::Error(format!("vCPU {index}: seccomp: {e}")));
            let _ = ctx.exit_evt.write(1);
            return;
        }
    }
    let run_ptr: *mut kvm_run = fd.get_kvm_run();
    KVM_RUN.with(|r| r.set(run_ptr));
    ctx.stats
        .first_run_ns
        .store(monotonic_ns(), Ordering::Relaxed);
    loop {
        match ctx.control.state() {
            VmState::Running => {}
            VmState::Paused => {
                if ctx.control.park() == VmState::Exited {
                    break;
                }
                continue;
            }
            VmState::Created | VmState::Exited => break,
        }
        if let Step::Exit(reason) = run_once(&mut fd, &ctx, index) {
            tracing::info!(vcpu = index, ?reason, "vCPU ends the VM");
            ctx.control.exit(reason);
            let _ = ctx.exit_evt.write(1);
            break;
        }
    }
    KVM_RUN.with(|r| r.set(std::ptr::null_mut()));
}

/// A running vCPU thread.
pub struct VcpuHandle {
    thread: JoinHandle<()>,
    /// Its counters.
    pub stats: Arc<VcpuStats>,
    /// KVM's own statistics of it, where the kernel has them.
    pub kvm_stats: Option<crate::kvm_stats::VcpuKvmStats>,
}

impl VcpuHandle {
    /// Kicks the vCPU out of KVM_RUN so it re-reads the VM state.
    pub fn kick(&self) {
        use std::os::unix::thread::JoinHandleExt;
        // SAFETY: the pthread id belongs to a thread we spawned and have not joined, and
        // the kick signal has a handler installed, so it cannot terminate the process.
        unsafe { libc::pthread_kill(self.thread.as_pthread_t(), kick_signal()) };
    }

    /// Waits for the thread to finish.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Starts vCPU `index` on its own thread.
pub fn spawn(fd: VcpuFd, ctx: VcpuContext, index: u8) -> Result<VcpuHandle, VcpuError> {
    let stats = ctx.stats.clone();
    let kvm_stats = match crate::kvm_stats::VcpuKvmStats::open(&fd) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::info!(vcpu = index, error = %e, "no KVM statistics for this vCPU");
            None
        }
    };
    let thread = std::thread::Builder::new()
        .name(format!("vcpu{index}"))
        .spawn(move || vcpu_loop(fd, ctx, index))
        .map_err(|e| VcpuError::Spawn(index, e))?;
    Ok(VcpuHandle {
        thread,
        stats,
        kvm_stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_modes() {
        assert_eq!(
            set_apic_delivery_mode(0x0001_0000, APIC_MODE_EXTINT),
            0x0001_0700
        );
        assert_eq!(set_apic_delivery_mode(0x700, APIC_MODE_NMI), 0x400);
    }

    #[test]
    fn status_register_detection() {
        assert!(is_virtio_status_write(layout::VIRTIO_MMIO_BASE + 0x70));
        assert!(is_virtio_status_write(layout::VIRTIO_MMIO_BASE + 0x3070));
        assert!(!is_virtio_status_write(layout::VIRTIO_MMIO_BASE + 0x64));
        assert!(!is_virtio_status_write(0x70));
    }
}
