//! The contract between the daemon (`stratod`) and the monitor (`strato-vmm`), one process
//! per VM. Both sides compile against these types, so a field or request that one side
//! knows and the other does not is a build error, not a run-time surprise:
//!
//! - [`config`]: the VM the monitor runs (its JSON `--config` file), with its checks;
//! - [`control`]: the requests and replies of the monitor's control socket;
//! - [`exit`]: how a monitor ended (process exit status and the exit record it leaves);
//! - [`names`]: the IDs of drives, hot-attach slots and interfaces that both sides use.

pub mod config;
pub mod control;
pub mod exit;
#[cfg(any(test, feature = "fuzzgen"))]
pub mod fuzzgen;
pub mod names;

// The property tests bound what each case holds: count allocations.
#[cfg(test)]
#[global_allocator]
static METER: strato_fuzzgen::alloc::Meter = strato_fuzzgen::alloc::Meter;
