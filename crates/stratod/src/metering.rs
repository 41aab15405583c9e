//! Metering: per-second instance time with a 60-second minimum for every running period
//! (every start begins a new one; a reboot does not), and volume GiB-seconds in every state.

use std::collections::BTreeMap;

use crate::db::usage::Period;

/// Least billable seconds of one running period.
pub const MIN_INSTANCE_SECONDS: i64 = 60;

/// Usage of one resource over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Instance or volume ID.
    pub resource_id: String,
    /// `instance` or `volume`.
    pub resource_type: String,
    /// Instance type or volume type (the latest seen).
    pub kind: String,
    /// Billable seconds.
    pub seconds: i64,
    /// GiB-seconds (volumes).
    pub gib_seconds: i64,
}

/// Sums periods over the window `[start_ms, end_ms]`. A period is cut to the window; an
/// instance period that begins inside the window is billed at least
/// [`MIN_INSTANCE_SECONDS`], however short, and the minimum is charged to the window that
/// holds the period's start, so that adjacent windows never bill it twice.
pub fn summarize(periods: &[Period], start_ms: i64, end_ms: i64) -> Vec<Usage> {
    let mut out: BTreeMap<(String, String), Usage> = BTreeMap::new();
    for p in periods {
        let from = p.start_ms.max(start_ms);
        let to = p.end_ms.unwrap_or(end_ms).min(end_ms);
        if to < from {
            continue;
        }
        let mut seconds = (to - from) / 1000;
        if p.resource_type == "instance" && p.start_ms >= start_ms {
            seconds = seconds.max(MIN_INSTANCE_SECONDS);
        }
        let u = out
            .entry((p.resource_type.clone(), p.resource_id.clone()))
            .or_insert_with(|| Usage {
                resource_id: p.resource_id.clone(),
                resource_type: p.resource_type.clone(),
                kind: p.kind.clone(),
                seconds: 0,
                gib_seconds: 0,
            });
        u.kind = p.kind.clone();
        u.seconds += seconds;
        if p.resource_type == "volume" {
            u.gib_seconds += seconds * p.gib;
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(kind: &str, id: &str, gib: i64, start: i64, end: Option<i64>) -> Period {
        Period {
            owner: "1".into(),
            resource_id: id.into(),
            resource_type: kind.into(),
            kind: "t".into(),
            gib,
            start_ms: start * 1000,
            end_ms: end.map(|e| e * 1000),
        }
    }

    #[test]
    fn short_runs_are_billed_a_minute_each() {
        let p = [
            period("instance", "i-1", 0, 100, Some(110)),
            period("instance", "i-1", 0, 200, Some(500)),
        ];
        let u = summarize(&p, 0, 1_000_000);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].seconds, 60 + 300);
    }

    #[test]
    fn windows_cut_periods_and_the_minimum_goes_to_the_first() {
        let p = [period("instance", "i-1", 0, 100, Some(130))];
        assert_eq!(summarize(&p, 0, 1000 * 1000)[0].seconds, 60);
        // The window opens after the period began: no minimum, only the overlap.
        assert_eq!(summarize(&p, 120 * 1000, 1000 * 1000)[0].seconds, 10);
        // Outside the window: nothing.
        assert!(summarize(&p, 200 * 1000, 300 * 1000).is_empty());
    }

    #[test]
    fn open_periods_run_to_the_window_end_and_volumes_count_gib() {
        let p = [period("volume", "vol-1", 8, 0, None)];
        let u = summarize(&p, 0, 10 * 1000);
        assert_eq!((u[0].seconds, u[0].gib_seconds), (10, 80));
    }
}
