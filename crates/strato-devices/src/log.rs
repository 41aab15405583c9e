//! Rate-limited logging for anything the guest can trigger.
//!
//! A guest that hammers a broken queue must not flood the monitor's log. Every call
//! site of [`warn_limited!`](crate::log::warn_limited) gets its own [`RateLimiter`]:
//! at most [`MESSAGES_PER_SECOND`] messages a second go through, the rest are counted
//! and the count is reported with the next message that is let through.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Messages let through per call site and second.
pub const MESSAGES_PER_SECOND: u32 = 10;

/// Seconds since the first rate-limited message of the process.
fn now_secs() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// Per-call-site state of a rate-limited log message.
#[derive(Debug, Default)]
pub struct RateLimiter {
    window: AtomicU64,
    in_window: AtomicU32,
    suppressed: AtomicU64,
}

impl RateLimiter {
    /// A limiter with nothing logged yet.
    pub const fn new() -> Self {
        Self {
            window: AtomicU64::new(0),
            in_window: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a message may be logged now: `Some(n)` with the number of messages
    /// suppressed since the last one let through, or `None` to drop this one.
    pub fn check(&self) -> Option<u64> {
        self.check_at(now_secs())
    }

    fn check_at(&self, now: u64) -> Option<u64> {
        let window = self.window.load(Ordering::Relaxed);
        if window != now
            && self
                .window
                .compare_exchange(window, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.in_window.store(0, Ordering::Relaxed);
        }
        if self.in_window.fetch_add(1, Ordering::Relaxed) < MESSAGES_PER_SECOND {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// `tracing::warn!` with a per-call-site rate limit (see the module documentation).
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMITER: $crate::log::RateLimiter = $crate::log::RateLimiter::new();
        if let Some(suppressed) = LIMITER.check() {
            if suppressed > 0 {
                tracing::warn!(suppressed, $($arg)+);
            } else {
                tracing::warn!($($arg)+);
            }
        }
    }};
}
pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_window_and_counts_suppressed() {
        let l = RateLimiter::new();
        for _ in 0..MESSAGES_PER_SECOND {
            assert_eq!(l.check_at(5), Some(0));
        }
        assert_eq!(l.check_at(5), None);
        assert_eq!(l.check_at(5), None);
        // A new second: the suppressed count comes with the first message.
        assert_eq!(l.check_at(6), Some(2));
        assert_eq!(l.check_at(6), Some(0));
    }

    #[test]
    fn macro_expands() {
        for i in 0..20 {
            warn_limited!("test message {}", i);
        }
    }
}
