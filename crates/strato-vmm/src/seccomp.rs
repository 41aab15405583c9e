//! seccomp: one allow-list per kind of thread, compiled with `seccompiler`, with the
//! arguments of `ioctl`, `fcntl`, `mmap`, `mprotect`, `tgkill`, `setsockopt` (and the keeper's
//! `kill`, `wait4` and writes) narrowed to what that thread uses. Anything else kills the
//! whole process (SECCOMP_RET_KILL_PROCESS): a monitor that makes a system call it never
//! makes is no longer the monitor. The kernel logs each kill to the audit log (`dmesg`:
//! `type=1326 ... sig=31 ... syscall=N`).
//!
//! | thread | what it does | when it installs its filter |
//! |---|---|---|
//! | event loop (main thread) | devices' queues (disk I/O, tap frames, entropy), the control socket (with `SCM_RIGHTS`), vCPU kicks, the exit record | after spawning the vCPUs, before releasing them |
//! | vCPU | `KVM_RUN` and the exits it handles: port and MMIO accesses (console log, eventfds, device activation, the split irqchip's IOAPIC), the emulation fix-ups' register ioctls | first thing on its thread, then it waits for the event loop's |
//! | other (the jail's keeper) | waits for the monitor, forwards signals to it, writes its exit record | once it holds nothing but that record |
//!
//! No thread keeps `open`, `socket`, `execve`, `clone`, `mount`, `ptrace` or the like: by the
//! time a filter is in force, everything has been opened and every thread spawned.

use std::collections::BTreeMap;
use std::os::fd::RawFd;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// The kinds of threads, each with its own allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// The main thread's event loop.
    EventLoop,
    /// A vCPU thread.
    Vcpu,
    /// Anything else: the jail's keeper process.
    Other,
}

impl ThreadKind {
    /// Parses `event-loop`, `vcpu` or `other`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "event-loop" => Some(ThreadKind::EventLoop),
            "vcpu" => Some(ThreadKind::Vcpu),
            "other" => Some(ThreadKind::Other),
            _ => None,
        }
    }
}

/// A filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler refused a rule.
    #[error("building the filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    /// Compiling or installing it failed.
    #[error("installing the filter: {0}")]
    Install(#[from] seccompiler::Error),
}

impl From<SeccompError> for std::io::Error {
    fn from(e: SeccompError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

type Rules = BTreeMap<i64, Vec<SeccompRule>>;

fn arg(index: u8, len: Len, op: Op, value: u64) -> Result<SeccompCondition, SeccompError> {
    Ok(SeccompCondition::new(index, len, op, value)?)
}

fn allow(rules: &mut Rules, syscalls: &[libc::c_long]) {
    for &s in syscalls {
        rules.insert(s, Vec::new());
    }
}

/// Allows `syscall` when any one of `alternatives` holds (each a list of conditions that
/// must all hold).
fn allow_if(
    rules: &mut Rules,
    syscall: libc::c_long,
    alternatives: Vec<Vec<SeccompCondition>>,
) -> Result<(), SeccompError> {
    let mut list = Vec::new();
    for conds in alternatives {
        list.push(SeccompRule::new(conds)?);
    }
    rules.entry(syscall).or_default().extend(list);
    Ok(())
}

/// Allows `syscall` when 32-bit argument `index` is one of `values`.
fn allow_values(
    rules: &mut Rules,
    syscall: libc::c_long,
    index: u8,
    values: &[u64],
) -> Result<(), SeccompError> {
    let alts = values
        .iter()
        .map(|&v| Ok(vec![arg(index, Len::Dword, Op::Eq, v)?]))
        .collect::<Result<Vec<_>, SeccompError>>()?;
    allow_if(rules, syscall, alts)
}

// ioctl request numbers: _IOC(dir, type, nr, size).
const fn ioc(dir: u64, ty: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (ty << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
const KVMIO: u64 = 0xae;
const KVM_RUN: u64 = ioc(0, KVMIO, 0x80, 0);
const KVM_GET_REGS: u64 = ioc(IOC_READ, KVMIO, 0x81, size_of::<kvm_bindings::kvm_regs>());
const KVM_SET_REGS: u64 = ioc(IOC_WRITE, KVMIO, 0x82, size_of::<kvm_bindings::kvm_regs>());
const KVM_GET_SREGS: u64 = ioc(IOC_READ, KVMIO, 0x83, size_of::<kvm_bindings::kvm_sregs>());
const KVM_TRANSLATE: u64 = ioc(
    IOC_READ | IOC_WRITE,
    KVMIO,
    0x85,
    size_of::<kvm_bindings::kvm_translation>(),
);
const KVM_GET_VCPU_EVENTS: u64 = ioc(
    IOC_READ,
    KVMIO,
    0x9f,
    size_of::<kvm_bindings::kvm_vcpu_events>(),
);
const KVM_SET_VCPU_EVENTS: u64 = ioc(
    IOC_WRITE,
    KVMIO,
    0xa0,
    size_of::<kvm_bindings::kvm_vcpu_events>(),
);
/// The split irqchip's IOAPIC delivers its pins as MSIs and reroutes irqfds when the guest
/// reprograms it (from a vCPU's MMIO write, or the event loop raising a line).
const KVM_SIGNAL_MSI: u64 = ioc(IOC_WRITE, KVMIO, 0xa5, size_of::<kvm_bindings::kvm_msi>());
const KVM_SET_GSI_ROUTING: u64 = ioc(
    IOC_WRITE,
    KVMIO,
    0x6a,
    size_of::<kvm_bindings::kvm_irq_routing>(),
);
/// Offloads are negotiated when the guest activates a virtio-net device.
const TUNSETOFFLOAD: u64 = ioc(IOC_WRITE, b'T' as u64, 208, size_of::<libc::c_uint>());

use std::mem::size_of;

/// Memory management, futexes, signal returns, time, thread exit: what the C library and
/// Rust's runtime need on any thread. Mappings may never be executable.
fn runtime(rules: &mut Rules) -> Result<(), SeccompError> {
    allow(
        rules,
        &[
            libc::SYS_brk,
            libc::SYS_munmap,
            libc::SYS_mremap,
            libc::SYS_madvise,
            libc::SYS_futex,
            libc::SYS_sched_yield,
            libc::SYS_sched_getaffinity,
            libc::SYS_rt_sigreturn,
            libc::SYS_rt_sigprocmask,
            libc::SYS_sigaltstack,
            libc::SYS_exit,
            libc::SYS_exit_group,
            libc::SYS_gettid,
            libc::SYS_getpid,
            libc::SYS_clock_gettime,
            libc::SYS_clock_nanosleep,
            libc::SYS_nanosleep,
            libc::SYS_restart_syscall,
            libc::SYS_getrandom,
            libc::SYS_close,
        ],
    );
    let no_exec = || arg(2, Len::Dword, Op::MaskedEq(libc::PROT_EXEC as u64), 0);
    allow_if(rules, libc::SYS_mmap, vec![vec![no_exec()?]])?;
    allow_if(rules, libc::SYS_mprotect, vec![vec![no_exec()?]])?;
    Ok(())
}

/// Signals to threads of this process: the vCPU kick and abort's SIGABRT.
fn own_signals(rules: &mut Rules) -> Result<(), SeccompError> {
    // SAFETY: getpid only reads the process ID (1 inside the jail's PID namespace).
    let pid = unsafe { libc::getpid() } as u64;
    let kick = vmm_sys_util::signal::SIGRTMIN() as u64;
    let mut alts = Vec::new();
    for sig in [kick, libc::SIGABRT as u64] {
        alts.push(vec![
            arg(0, Len::Dword, Op::Eq, pid)?,
            arg(2, Len::Dword, Op::Eq, sig)?,
        ]);
    }
    allow_if(rules, libc::SYS_tgkill, alts)
}

fn fcntl(rules: &mut Rules) -> Result<(), SeccompError> {
    allow_values(
        rules,
        libc::SYS_fcntl,
        1,
        &[
            libc::F_GETFD as u64,
            libc::F_SETFD as u64,
            libc::F_GETFL as u64,
            libc::F_SETFL as u64,
            libc::F_DUPFD_CLOEXEC as u64,
        ],
    )
}

fn compile(rules: Rules) -> Result<BpfProgram, SeccompError> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )?;
    Ok(BpfProgram::try_from(filter)?)
}

/// The event loop's allow-list.
pub fn event_loop_filter() -> Result<BpfProgram, SeccompError> {
    let mut rules = Rules::new();
    runtime(&mut rules)?;
    own_signals(&mut rules)?;
    fcntl(&mut rules)?;
    allow(
        &mut rules,
        &[
            libc::SYS_epoll_wait,
            libc::SYS_epoll_pwait,
            libc::SYS_epoll_ctl,
            libc::SYS_epoll_create1,
            libc::SYS_accept4,
            libc::SYS_recvmsg,
            libc::SYS_recvfrom,
            libc::SYS_sendto,
            libc::SYS_sendmsg,
            libc::SYS_shutdown,
            libc::SYS_read,
            libc::SYS_readv,
            libc::SYS_write,
            libc::SYS_writev,
            libc::SYS_pread64,
            libc::SYS_preadv,
            libc::SYS_pwrite64,
            libc::SYS_pwritev,
            libc::SYS_fdatasync,
            libc::SYS_fsync,
            libc::SYS_fallocate,
            libc::SYS_lseek,
            libc::SYS_ftruncate,
        ],
    );
    allow_values(
        &mut rules,
        libc::SYS_ioctl,
        1,
        &[
            libc::FIONBIO,
            TUNSETOFFLOAD,
            KVM_SIGNAL_MSI,
            KVM_SET_GSI_ROUTING,
        ],
    )?;
    let sol = || arg(1, Len::Dword, Op::Eq, libc::SOL_SOCKET as u64);
    allow_if(
        &mut rules,
        libc::SYS_setsockopt,
        vec![
            vec![
                sol()?,
                arg(2, Len::Dword, Op::Eq, libc::SO_SNDTIMEO as u64)?,
            ],
            vec![
                sol()?,
                arg(2, Len::Dword, Op::Eq, libc::SO_RCVTIMEO as u64)?,
            ],
        ],
    )?;
    compile(rules)
}

/// A vCPU thread's allow-list.
pub fn vcpu_filter() -> Result<BpfProgram, SeccompError> {
    let mut rules = Rules::new();
    runtime(&mut rules)?;
    own_signals(&mut rules)?;
    fcntl(&mut rules)?;
    allow(
        &mut rules,
        &[
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_pread64,
            libc::SYS_pwrite64,
            libc::SYS_ftruncate,
        ],
    );
    allow_values(
        &mut rules,
        libc::SYS_ioctl,
        1,
        &[
            KVM_RUN,
            KVM_GET_REGS,
            KVM_SET_REGS,
            KVM_GET_SREGS,
            KVM_TRANSLATE,
            KVM_GET_VCPU_EVENTS,
            KVM_SET_VCPU_EVENTS,
            KVM_SIGNAL_MSI,
            KVM_SET_GSI_ROUTING,
            TUNSETOFFLOAD,
        ],
    )?;
    compile(rules)
}

/// The keeper's allow-list: wait for `child`, signal only it, write only standard error and
/// the exit record.
pub fn keeper_filter(
    child: libc::pid_t,
    exit_record: Option<RawFd>,
) -> Result<BpfProgram, SeccompError> {
    let mut rules = Rules::new();
    runtime(&mut rules)?;
    own_signals(&mut rules)?;
    // Closing a descriptor checks it first in debug builds (F_GETFD).
    allow_values(&mut rules, libc::SYS_fcntl, 1, &[libc::F_GETFD as u64])?;
    allow(&mut rules, &[libc::SYS_rt_sigtimedwait]);
    let child = child as u64;
    allow_if(
        &mut rules,
        libc::SYS_wait4,
        vec![vec![arg(0, Len::Dword, Op::Eq, child)?]],
    )?;
    let mut kills = Vec::new();
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGKILL] {
        kills.push(vec![
            arg(0, Len::Dword, Op::Eq, child)?,
            arg(1, Len::Dword, Op::Eq, sig as u64)?,
        ]);
    }
    allow_if(&mut rules, libc::SYS_kill, kills)?;
    allow_if(
        &mut rules,
        libc::SYS_write,
        vec![vec![arg(0, Len::Dword, Op::Eq, 2)?]],
    )?;
    if let Some(fd) = exit_record {
        for s in [libc::SYS_pwrite64, libc::SYS_lseek] {
            allow_if(
                &mut rules,
                s,
                vec![vec![arg(0, Len::Dword, Op::Eq, fd as u64)?]],
            )?;
        }
    }
    compile(rules)
}

/// Installs `filter` on the calling thread (it also sets no_new_privs).
pub fn apply(filter: &BpfProgram) -> Result<(), SeccompError> {
    Ok(seccompiler::apply_filter(filter)?)
}

#[cfg(feature = "test-hooks")]
static VIOLATION: std::sync::OnceLock<ThreadKind> = std::sync::OnceLock::new();

/// Test builds only: makes threads of `kind` call a system call outside their allow-list
/// once their filter is in force (see [`test_hook`]).
#[cfg(feature = "test-hooks")]
pub fn set_test_violation(kind: ThreadKind) {
    let _ = VIOLATION.set(kind);
}

/// Called by each thread right after it installs its filter. In a test build told to (see
/// `set_test_violation`), a thread of the chosen kind calls `chroot`, which no allow-list
/// has, and so ends the process; in any other build it does nothing.
pub fn test_hook(kind: ThreadKind) {
    #[cfg(feature = "test-hooks")]
    if VIOLATION.get() == Some(&kind) {
        eprintln!("strato-vmm: test hook: a {kind:?} thread calls chroot");
        // SAFETY: chroot takes a NUL-terminated path; the filter ends the process first.
        unsafe { libc::syscall(libc::SYS_chroot, c"/".as_ptr()) };
        eprintln!("strato-vmm: test hook: the {kind:?} thread survived chroot");
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = kind;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_SET_REGS, 0x4090_ae82);
        assert_eq!(KVM_GET_SREGS, 0x8138_ae83);
        assert_eq!(KVM_TRANSLATE, 0xc018_ae85);
        assert_eq!(KVM_GET_VCPU_EVENTS, 0x8040_ae9f);
        assert_eq!(KVM_SET_VCPU_EVENTS, 0x4040_aea0);
        assert_eq!(TUNSETOFFLOAD, 0x4004_54d0);
        assert_eq!(KVM_SIGNAL_MSI, 0x4020_aea5);
        assert_eq!(KVM_SET_GSI_ROUTING, 0x4008_ae6a);
    }

    #[test]
    fn every_filter_compiles() {
        for f in [
            event_loop_filter().unwrap(),
            vcpu_filter().unwrap(),
            keeper_filter(42, Some(7)).unwrap(),
        ] {
            assert!(f.len() > 20);
        }
    }

    /// Runs `f` in a forked child under `filter`; returns the child's wait status.
    fn in_child(filter: BpfProgram, f: fn()) -> libc::c_int {
        // SAFETY: the child installs the filter, runs `f` (system calls only) and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            if apply(&filter).is_err() {
                // SAFETY: ends the child.
                unsafe { libc::_exit(90) };
            }
            f();
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
    }

    #[test]
    fn a_forbidden_call_kills_and_an_allowed_one_does_not() {
        let ok = in_child(vcpu_filter().unwrap(), || {
            // SAFETY: writes nothing to standard error.
            unsafe { libc::write(2, std::ptr::null(), 0) };
        });
        assert!(libc::WIFEXITED(ok) && libc::WEXITSTATUS(ok) == 0, "{ok:#x}");
        let killed = in_child(vcpu_filter().unwrap(), || {
            // SAFETY: socket takes integers; the filter kills the process first.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        });
        assert!(libc::WIFSIGNALED(killed), "{killed:#x}");
        assert_eq!(libc::WTERMSIG(killed), libc::SIGSYS);
        let exec_map = in_child(event_loop_filter().unwrap(), || {
            // SAFETY: asks for an executable anonymous mapping; the filter kills first.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
        });
        assert!(libc::WIFSIGNALED(exec_map) && libc::WTERMSIG(exec_map) == libc::SIGSYS);
    }
}
