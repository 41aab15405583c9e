//! strato-vmm: the KVM microVM monitor behind every strato instance.
//!
//! One process runs one VM (as Firecracker does): the main thread runs the event loop
//! for devices and the control API, and one thread per vCPU runs guest code. The daemon
//! spawns the binary; the two share the contract in `strato-vmm-api` (configuration,
//! control requests and replies, exit statuses), re-exported here as [`config`].

pub mod api;
pub mod arch;
pub mod cli;
pub use strato_vmm_api::config;
pub mod devices;
pub mod emulation;
#[cfg(any(test, feature = "fuzzgen"))]
pub mod fuzzgen;
pub mod irqchip;
pub mod jail;
pub mod kvm_stats;
pub mod memory;
pub mod resources;
pub mod seccomp;
pub mod signals;
pub mod state;
pub mod vcpu;
pub mod vmm;

/// An error and its sources as one line, for the edge where it is reported.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

// The control-socket property test (`fuzzgen`) bounds what a case holds: count allocations.
#[cfg(test)]
#[global_allocator]
static METER: strato_fuzzgen::alloc::Meter = strato_fuzzgen::alloc::Meter;
