//! Per-device counters, read by the monitor's API and exported by the daemon in
//! Prometheus format.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter, cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Something that exposes named counters (`snake_case` names, no device prefix).
pub trait Metrics {
    /// `(name, value)` pairs.
    fn counters(&self) -> Vec<(&'static str, u64)>;
}
