//! Boot timelines: when each step of an instance's latest boot happened, on
//! CLOCK_MONOTONIC (the clock the monitor's own milestones use, so the two line up). The
//! daemon's steps are marked here as they happen (the request, volumes, taps, the
//! monitor's exec, the DHCP lease, the first metadata request, both status checks ok); the
//! monitor's (VM created, memory mapped, first guest instruction, first console byte) come
//! from its control socket when the timeline is read.

use std::collections::HashMap;
use std::sync::Mutex;

/// The daemon's steps, in boot order.
pub const DAEMON_STEPS: &[&str] = &[
    "request",
    "volumes",
    "tap",
    "monitor_exec",
    "dhcp_lease",
    "first_metadata_request",
    "status_ok",
];

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Every instance's latest boot: step → when.
#[derive(Debug, Default)]
pub struct Timelines {
    boots: Mutex<HashMap<String, Vec<(&'static str, u64)>>>,
}

impl Timelines {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(&'static str, u64)>>> {
        self.boots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new boot of `id` begins now (its previous timeline goes).
    pub fn begin(&self, id: &str) {
        self.map()
            .insert(id.to_string(), vec![("request", monotonic_ns())]);
    }

    /// `step` of `id`'s current boot happened now; only its first time counts, and only
    /// while a boot is recorded.
    pub fn mark(&self, id: &str, step: &'static str) {
        if let Some(t) = self.map().get_mut(id) {
            if !t.iter().any(|(s, _)| *s == step) {
                t.push((step, monotonic_ns()));
            }
        }
    }

    /// The steps of `id`'s latest boot so far.
    pub fn of(&self, id: &str) -> Vec<(&'static str, u64)> {
        self.map().get(id).cloned().unwrap_or_default()
    }

    /// The instance is gone.
    pub fn forget(&self, id: &str) {
        self.map().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boot_keeps_each_steps_first_time() {
        let t = Timelines::default();
        t.mark("i-1", "tap");
        assert!(t.of("i-1").is_empty(), "no boot begun");
        t.begin("i-1");
        t.mark("i-1", "tap");
        let first = t.of("i-1")[1].1;
        t.mark("i-1", "tap");
        let steps = t.of("i-1");
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1], ("tap", first));
        assert!(steps[0].1 <= first);
        t.begin("i-1");
        assert_eq!(t.of("i-1").len(), 1, "a new boot starts over");
    }
}
