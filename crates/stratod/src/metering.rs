//! Metering: per-second instance time with a 60-second minimum for every running period
//! (every start begins a new one; a reboot does not), and volume GiB-seconds in every state.
//! A period costs max(its seconds, 60) in total however a report cuts time into windows.

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

/// Billable seconds of an instance period from its start up to time `t_ms` (exclusive):
/// the minute minimum is charged at the start, real seconds beyond it as they pass, so
/// that the charge of a window `[a, b)` is `charged(b) - charged(a)` and a period costs
/// `max(its seconds, 60)` in total however the time is cut into windows.
fn charged(p: &Period, t_ms: i64) -> i64 {
    if t_ms <= p.start_ms {
        return 0;
    }
    let to = p.end_ms.map_or(t_ms, |e| e.min(t_ms));
    ((to - p.start_ms) / 1000).max(MIN_INSTANCE_SECONDS)
}

/// Sums periods over the window `[start_ms, end_ms)`. Volumes count the seconds of the
/// window they exist in. An instance period is billed [`MIN_INSTANCE_SECONDS`] at least,
/// however short: the minimum is charged to the window that holds the period's start, and
/// the seconds past the first minute to the windows they fall in, so adjacent windows
/// never bill a second twice.
pub fn summarize(periods: &[Period], start_ms: i64, end_ms: i64) -> Vec<Usage> {
    let mut out: BTreeMap<(String, String), Usage> = BTreeMap::new();
    for p in periods {
        let from = p.start_ms.max(start_ms);
        let to = p.end_ms.unwrap_or(end_ms).min(end_ms);
        if to < from {
            continue;
        }
        let seconds = if p.resource_type == "instance" {
            charged(p, end_ms) - charged(p, start_ms)
        } else {
            (to - from) / 1000
        };
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
        // The window opens after the period began: its first minute was charged already.
        assert_eq!(summarize(&p, 120 * 1000, 1000 * 1000)[0].seconds, 0);
        let long = [period("instance", "i-1", 0, 100, Some(400))];
        assert_eq!(summarize(&long, 0, 130 * 1000)[0].seconds, 60);
        assert_eq!(summarize(&long, 130 * 1000, 200 * 1000)[0].seconds, 40);
        assert_eq!(summarize(&long, 200 * 1000, 1000 * 1000)[0].seconds, 200);
        // Outside the window: nothing.
        assert!(summarize(&p, 200 * 1000, 300 * 1000).is_empty());
    }

    /// However a span of time is cut into windows, the windows' sum is each period's
    /// max(seconds, 60): short and long periods, open ones, cuts through the first minute,
    /// on a period's start and on its end.
    #[test]
    fn windows_add_up_to_the_whole() {
        let p = [
            period("instance", "i-1", 0, 100, Some(110)),
            period("instance", "i-1", 0, 200, Some(500)),
            period("instance", "i-2", 0, 150, Some(209)),
            period("instance", "i-3", 0, 900, None),
        ];
        let whole = |id: &str, u: &[Usage]| {
            u.iter()
                .find(|u| u.resource_id == id)
                .map_or(0, |u| u.seconds)
        };
        let all = summarize(&p, 0, 1000 * 1000);
        assert_eq!(whole("i-1", &all), 60 + 300);
        assert_eq!(whole("i-2", &all), 60);
        assert_eq!(whole("i-3", &all), 100);
        for cuts in [
            vec![105],
            vec![100, 110, 200],
            vec![130, 230, 260, 499],
            vec![150, 151, 152, 208, 209, 210, 901, 950],
            (0..100).map(|k| k * 10 + 3).collect(),
        ] {
            let mut edges = vec![0];
            edges.extend(cuts.iter().map(|c| c * 1000));
            edges.push(1000 * 1000);
            for id in ["i-1", "i-2", "i-3"] {
                let sum: i64 = edges
                    .windows(2)
                    .map(|w| whole(id, &summarize(&p, w[0], w[1])))
                    .sum();
                assert_eq!(sum, whole(id, &all), "{id} cut at {cuts:?}");
            }
        }
    }

    #[test]
    fn open_periods_run_to_the_window_end_and_volumes_count_gib() {
        let p = [period("volume", "vol-1", 8, 0, None)];
        let u = summarize(&p, 0, 10 * 1000);
        assert_eq!((u[0].seconds, u[0].gib_seconds), (10, 80));
    }
}
