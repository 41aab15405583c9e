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
pub mod irqchip;
pub mod kvm_stats;
pub mod memory;
pub mod signals;
pub mod state;
pub mod vcpu;
pub mod vmm;
