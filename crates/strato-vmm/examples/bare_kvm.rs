//! The floor for a VM's whole life on this host: a bare KVM program, for `scripts/bench-vmm.sh`.
//!
//! It opens /dev/kvm, creates a VM with one page of memory and one vCPU in real mode, runs
//! five instructions that write `!` to COM1 and pulse the i8042 reset line, writes the `!` to
//! stdout, and exits. Nothing else: no CPUID or MSR setup, no devices, no threads. With
//! `--irqchip kernel` it also creates KVM's in-kernel PIC, IOAPIC and local APICs (and with
//! `kernel-pit` the PIT), with `split` only the local APICs, so the benchmark can show what the
//! interrupt controllers cost to set up and to tear down.
//!
//!     bare_kvm [--irqchip none|kernel|kernel-pit|split]

#![allow(clippy::unwrap_used)]

use std::io::Write;

use kvm_bindings::{
    kvm_enable_cap, kvm_pit_config, kvm_userspace_memory_region, KVM_CAP_SPLIT_IRQCHIP,
};
use kvm_ioctls::{Kvm, VcpuExit};

/// `mov dx, 0x3f8; mov al, '!'; out dx, al; mov al, 0xfe; out 0x64, al; hlt`, in real mode.
const GUEST: [u8; 11] = [
    0xba, 0xf8, 0x03, 0xb0, b'!', 0xee, 0xb0, 0xfe, 0xe6, 0x64, 0xf4,
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.as_slice() {
        [] => "none".to_string(),
        [flag, m] if flag == "--irqchip" => m.clone(),
        _ => {
            eprintln!("usage: bare_kvm [--irqchip none|kernel|kernel-pit|split]");
            std::process::exit(2);
        }
    };
    let kvm = Kvm::new().unwrap();
    let vm = kvm.create_vm().unwrap();
    match mode.as_str() {
        "none" => {}
        "kernel" | "kernel-pit" => {
            vm.set_tss_address(0xfffb_d000).unwrap();
            vm.create_irq_chip().unwrap();
            if mode == "kernel-pit" {
                vm.create_pit2(kvm_pit_config::default()).unwrap();
            }
        }
        "split" => {
            vm.set_tss_address(0xfffb_d000).unwrap();
            let mut cap = kvm_enable_cap {
                cap: KVM_CAP_SPLIT_IRQCHIP,
                ..Default::default()
            };
            cap.args[0] = 24;
            vm.enable_cap(&cap).unwrap();
        }
        other => {
            eprintln!("bare_kvm: unknown irqchip mode {other:?}");
            std::process::exit(2);
        }
    }

    // SAFETY: an anonymous private mapping of one page, checked below; it is never unmapped
    // while the VM runs (the process exits first).
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(mem, libc::MAP_FAILED);
    // SAFETY: the mapping is 4096 bytes long and writable; GUEST is 11 bytes.
    unsafe { std::ptr::copy_nonoverlapping(GUEST.as_ptr(), mem.cast::<u8>(), GUEST.len()) };
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: 4096,
        userspace_addr: mem as u64,
        flags: 0,
    };
    // SAFETY: the region is the live mapping above, which outlives the VM.
    unsafe { vm.set_user_memory_region(region) }.unwrap();

    let mut vcpu = vm.create_vcpu(0).unwrap();
    let mut sregs = vcpu.get_sregs().unwrap();
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).unwrap();
    let mut regs = vcpu.get_regs().unwrap();
    regs.rip = 0;
    regs.rflags = 2;
    vcpu.set_regs(&regs).unwrap();

    let mut out = std::io::stdout().lock();
    loop {
        match vcpu.run().unwrap() {
            VcpuExit::IoOut(0x3f8, data) => {
                out.write_all(data).unwrap();
                out.flush().unwrap();
            }
            VcpuExit::IoOut(0x64, [0xfe]) => break,
            VcpuExit::Hlt => break,
            other => {
                eprintln!("bare_kvm: unexpected exit {other:?}");
                std::process::exit(1);
            }
        }
    }
}
