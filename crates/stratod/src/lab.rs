//! The teaching lab's history: once a second, every running instance's monitor is asked
//! for its exit counters (`counters`: the monitor's own per-reason counts and KVM's binary
//! statistics per vCPU) and its lab view (`lab`: the accesses each bus window served, the
//! memory map, the virtqueues, the boot milestones). The differences become per-second
//! rates, kept for an hour per instance, shown by the web view and exported on `/metrics`
//! with per-instance labels. One sampler serves every viewer, so no page makes a monitor
//! answer more often than once a second.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strato_vmm_api::control::{CounterSet, Counters, Lab as LabView};

use crate::prober::ProbeTargets;
use crate::supervisor::{Monitor, Process, VmmPaths};

/// How often the monitors are sampled (the history's resolution).
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How many samples are kept per instance: an hour.
pub const KEEP: usize = 3600;

/// The exit reasons a sample counts, each the sum over the vCPUs of these counters (the
/// first present wins: KVM's own statistics where the kernel has them).
pub const REASONS: &[(&str, &[&[&str]])] = &[
    ("io", &[&["io_in", "io_out"]]),
    ("mmio", &[&["mmio_read", "mmio_write"]]),
    ("halt", &[&["kvm_halt_exits"], &["hlt"]]),
    ("irq_window", &[&["kvm_irq_window_exits"]]),
    ("interrupt", &[&["kvm_irq_exits"]]),
    ("emulation", &[&["kvm_insn_emulation"]]),
    ("signal", &[&["kvm_signal_exits"], &["interrupted"]]),
    ("total", &[&["kvm_exits"], &["runs"]]),
];

/// One second of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Unix seconds (the end of the second).
    pub t: i64,
    /// Exits per second by reason.
    pub exits: Vec<(&'static str, f64)>,
    /// Exits per second by the device they hit (port I/O and MMIO).
    pub devices: Vec<(String, f64)>,
}

/// The raw totals of one sample.
#[derive(Debug, Clone)]
struct Raw {
    at: Instant,
    exits: Vec<(&'static str, u64)>,
    devices: BTreeMap<String, u64>,
}

/// What the sampler knows of one instance.
#[derive(Debug, Clone)]
pub struct Latest {
    /// The latest counters.
    pub counters: Counters,
    /// The latest lab view.
    pub lab: LabView,
}

#[derive(Debug)]
struct Series {
    process: Process,
    last: Option<Raw>,
    points: VecDeque<Point>,
    latest: Option<Latest>,
}

/// Every instance's history.
#[derive(Debug, Default)]
pub struct History {
    series: Mutex<HashMap<String, Series>>,
}

/// The totals per reason of a counters reply.
fn reason_totals(c: &Counters) -> Vec<(&'static str, u64)> {
    REASONS
        .iter()
        .map(|(reason, choices)| {
            let total = choices
                .iter()
                .find(|names| {
                    c.vcpus
                        .iter()
                        .any(|v| names.iter().all(|n| v.contains_key(*n)))
                })
                .map(|names| {
                    c.vcpus
                        .iter()
                        .map(|v: &CounterSet| names.iter().filter_map(|n| v.get(*n)).sum::<u64>())
                        .sum()
                })
                .unwrap_or(0);
            (*reason, total)
        })
        .collect()
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    // A counter that went down is a new VM's: count from zero.
    let d = if now >= before { now - before } else { now };
    (d as f64 / secs * 10.0).round() / 10.0
}

impl History {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Series>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds in one sample of instance `id`'s monitor `process`, taken at `at` (Unix
    /// seconds `t`).
    pub fn record(
        &self,
        id: &str,
        process: Process,
        at: Instant,
        t: i64,
        counters: Counters,
        lab: LabView,
    ) {
        let raw = Raw {
            at,
            exits: reason_totals(&counters),
            devices: lab
                .bus
                .iter()
                .map(|w| (w.device.clone(), w.accesses))
                .collect(),
        };
        let mut map = self.map();
        let s = map.entry(id.to_string()).or_insert_with(|| Series {
            process,
            last: None,
            points: VecDeque::new(),
            latest: None,
        });
        if s.process != process {
            // A new monitor (a reboot, a start): its counters start from zero.
            s.process = process;
            s.last = None;
        }
        if let Some(last) = &s.last {
            let secs = at.duration_since(last.at).as_secs_f64();
            let exits = raw
                .exits
                .iter()
                .map(|(r, n)| {
                    let before = last.exits.iter().find(|(b, _)| b == r).map_or(0, |b| b.1);
                    (*r, rate(*n, before, secs))
                })
                .collect();
            let devices = raw
                .devices
                .iter()
                .map(|(d, n)| {
                    (
                        d.clone(),
                        rate(*n, last.devices.get(d).copied().unwrap_or(0), secs),
                    )
                })
                .collect();
            s.points.push_back(Point { t, exits, devices });
            while s.points.len() > KEEP {
                s.points.pop_front();
            }
        }
        s.last = Some(raw);
        s.latest = Some(Latest { counters, lab });
    }

    /// Instance `id`'s points after Unix second `since`.
    pub fn points(&self, id: &str, since: i64) -> Vec<Point> {
        self.map()
            .get(id)
            .map(|s| s.points.iter().filter(|p| p.t > since).cloned().collect())
            .unwrap_or_default()
    }

    /// The latest sample's counters and lab view.
    pub fn latest(&self, id: &str) -> Option<Latest> {
        self.map().get(id).and_then(|s| s.latest.clone())
    }

    /// Keeps the history of these instances only (the running ones).
    fn retain(&self, ids: &[String]) {
        self.map().retain(|id, _| ids.contains(id));
    }

    /// The latest point of every instance in the Prometheus text format.
    pub fn render(&self) -> String {
        let map = self.map();
        let mut ids: Vec<&String> = map.keys().collect();
        ids.sort();
        let mut out = String::new();
        out.push_str("# HELP strato_instance_exits_per_second vCPU exits per second by reason, summed over the instance's vCPUs (the last second).\n");
        out.push_str("# TYPE strato_instance_exits_per_second gauge\n");
        for id in &ids {
            if let Some(p) = map[*id].points.back() {
                for (r, v) in &p.exits {
                    let _ = writeln!(
                        out,
                        "strato_instance_exits_per_second{{instance=\"{id}\",reason=\"{r}\"}} {v}"
                    );
                }
            }
        }
        out.push_str("# HELP strato_instance_device_exits_per_second Port I/O and MMIO exits per second by the device they hit (the last second).\n");
        out.push_str("# TYPE strato_instance_device_exits_per_second gauge\n");
        for id in &ids {
            if let Some(p) = map[*id].points.back() {
                for (d, v) in &p.devices {
                    let _ = writeln!(
                        out,
                        "strato_instance_device_exits_per_second{{instance=\"{id}\",device=\"{}\"}} {v}",
                        d.replace(['\\', '"', '\n'], "_")
                    );
                }
            }
        }
        out
    }

    /// Samples every running instance `targets` lists once a second, forever.
    pub async fn run(self: Arc<Self>, targets: Arc<dyn ProbeTargets>) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let targets = targets.running();
            self.retain(&targets.iter().map(|t| t.id.clone()).collect::<Vec<_>>());
            let mut set = tokio::task::JoinSet::new();
            for t in targets {
                let Some(process) = t.process else {
                    continue;
                };
                let me = Arc::clone(&self);
                set.spawn(async move {
                    let monitor =
                        Monitor::new(&VmmPaths::in_dir(&t.dir), Duration::from_millis(800));
                    let (Ok(c), Ok(l)) = (monitor.counters().await, monitor.lab().await) else {
                        return;
                    };
                    me.record(&t.id, process, Instant::now(), crate::db::now_s(), c, l);
                });
            }
            while set.join_next().await.is_some() {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_vmm_api::control::BusWindow;

    fn sample(io: u64, hlt: u64, serial: u64) -> (Counters, LabView) {
        let mut v = CounterSet::new();
        v.insert("io_in".into(), io);
        v.insert("io_out".into(), io);
        v.insert("hlt".into(), hlt);
        v.insert("runs".into(), 2 * io + hlt);
        let c = Counters {
            vcpus: vec![v.clone(), v],
            devices: BTreeMap::new(),
        };
        let lab = LabView {
            bus: vec![BusWindow {
                bus: "pio".into(),
                device: "serial".into(),
                base: 0x3f8,
                len: 8,
                accesses: serial,
            }],
            ..Default::default()
        };
        (c, lab)
    }

    #[test]
    fn rates_per_reason_and_device_over_the_vcpus() {
        let h = History::default();
        let p = Process { pid: 1, start: 1 };
        let t0 = Instant::now();
        let (c, l) = sample(10, 5, 100);
        h.record("i-1", p, t0, 100, c, l);
        assert!(h.points("i-1", 0).is_empty(), "one sample is no rate");
        let (c, l) = sample(20, 6, 150);
        h.record("i-1", p, t0 + Duration::from_secs(2), 102, c, l);
        let pts = h.points("i-1", 0);
        assert_eq!(pts.len(), 1);
        let get = |r: &str| pts[0].exits.iter().find(|(n, _)| *n == r).unwrap().1;
        // Two vCPUs, each 10 more in and 10 more out, over 2 s.
        assert_eq!(get("io"), 20.0);
        assert_eq!(get("halt"), 1.0, "the monitor's hlt without KVM statistics");
        assert_eq!(get("total"), 21.0);
        assert_eq!(pts[0].devices, vec![("serial".to_string(), 25.0)]);
        assert!(h.points("i-1", 102).is_empty());
        let text = h.render();
        assert!(
            text.contains("strato_instance_exits_per_second{instance=\"i-1\",reason=\"io\"} 20\n"),
            "{text}"
        );
        assert!(text.contains(
            "strato_instance_device_exits_per_second{instance=\"i-1\",device=\"serial\"} 25\n"
        ));
        // A new monitor starts over: no rate across the two.
        let (c, l) = sample(1, 1, 1);
        h.record(
            "i-1",
            Process { pid: 2, start: 9 },
            t0 + Duration::from_secs(3),
            103,
            c,
            l,
        );
        assert_eq!(h.points("i-1", 0).len(), 1);
        h.retain(&[]);
        assert!(h.latest("i-1").is_none());
    }
}
