//! Status checks as EC2 defines them, run every interval against each running instance.
//!
//! - System status (the host's side): the monitor process is alive and answers on its
//!   control socket, the VM is not paused and every vCPU thread is alive and making
//!   progress, the ENI's tap is up with carrier, and every volume file is present. Progress
//!   comes from KVM's statistics of each vCPU, which the guest cannot fake: since the last
//!   round it left the guest (an exit of any kind) or it is halted now (an idle guest); a
//!   vCPU that did neither is wedged.
//! - Instance status (the guest's side): an ARP request for the instance's private IP sent
//!   into its ENI gets an answer, as EC2's reachability check does.
//!
//! A check is `initializing` until it first passes (for the instance check, at most for the
//! grace period after boot), then `ok` or `impaired` with the time it first failed.
//!
//! The prober reads what it checks from a [`ProbeTargets`] and writes what it found to a
//! [`StatusBoard`]; the domain implements both over its state, and DescribeInstanceStatus
//! reads the board.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cloud::network::plumbing::blocking;
use crate::db::now_s;
use crate::metrics::Metrics;
use crate::supervisor::{self, Monitor, Process, VmmPaths};
use strato_vmm_api::control::VmState;

/// A check's summary status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not yet passed.
    Initializing,
    /// Passing.
    Ok,
    /// Failing.
    Impaired,
    /// Not enough information (e.g. the check could not run).
    InsufficientData,
}

impl Status {
    /// EC2's summary name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Initializing => "initializing",
            Status::Ok => "ok",
            Status::Impaired => "impaired",
            Status::InsufficientData => "insufficient-data",
        }
    }

    /// EC2's detail name for the reachability check.
    pub fn detail(self) -> &'static str {
        match self {
            Status::Initializing => "initializing",
            Status::Ok => "passed",
            Status::Impaired => "failed",
            Status::InsufficientData => "insufficient-data",
        }
    }
}

/// One check's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Current status.
    pub status: Status,
    /// Unix seconds of the first failure in the current run of failures.
    pub impaired_since: Option<i64>,
    /// Whether it ever passed since the VM booted.
    pub passed_once: bool,
}

impl Default for Check {
    fn default() -> Self {
        Self {
            status: Status::Initializing,
            impaired_since: None,
            passed_once: false,
        }
    }
}

impl Check {
    /// Folds one result in. `in_grace` keeps a never-passed check `initializing`.
    pub fn update(&mut self, passed: bool, in_grace: bool, now: i64) {
        if passed {
            self.status = Status::Ok;
            self.impaired_since = None;
            self.passed_once = true;
        } else if !self.passed_once && in_grace {
            self.status = Status::Initializing;
        } else {
            self.status = Status::Impaired;
            self.impaired_since.get_or_insert(now);
        }
    }
}

/// One vCPU's progress as KVM counts it: exits, halt exits, and whether it is halted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuSample {
    /// `exits`: every time the vCPU left the guest.
    pub exits: u64,
    /// `halt_exits`.
    pub halts: u64,
    /// `blocking`: halted (waiting for an interrupt) right now.
    pub blocking: bool,
}

impl VcpuSample {
    /// The sample in a vCPU's monitor counters; `None` where the kernel has no statistics.
    pub fn from_counters(c: &strato_vmm_api::control::CounterSet) -> Option<Self> {
        Some(Self {
            exits: *c.get("kvm_exits")?,
            halts: *c.get("kvm_halt_exits")?,
            blocking: *c.get("kvm_blocking")? != 0,
        })
    }
}

/// Whether every vCPU made progress between two samples: it exited or halted meanwhile,
/// or is halted now. A count that changed at all counts (a new VM starts from zero).
pub fn vcpus_progressed(before: &[VcpuSample], now: &[VcpuSample]) -> bool {
    before.len() == now.len()
        && before
            .iter()
            .zip(now)
            .all(|(b, n)| n.blocking || n.exits != b.exits || n.halts != b.halts)
}

/// Both checks of one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    /// System status.
    pub system: Check,
    /// Instance status.
    pub instance: Check,
    /// When this VM's checks began (Unix seconds).
    pub since: i64,
}

/// One running instance as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `i-…`
    pub id: String,
    /// vCPUs it was booted with (one thread each).
    pub vcpus: usize,
    /// Its monitor, while the daemon watches one.
    pub process: Option<Process>,
    /// Its folder (the monitor's control socket).
    pub dir: PathBuf,
    /// The taps of its ENIs.
    pub taps: Vec<String>,
    /// The files of its volumes.
    pub volumes: Vec<PathBuf>,
    /// What the reachability check asks; `None` when its records do not say.
    pub reach: Option<Reach>,
}

/// The reachability check of one instance: an ARP request from the subnet's gateway for
/// the primary private address, sent into the primary ENI's tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The primary ENI's tap.
    pub tap: String,
    /// Its subnet's bridge (whose MAC the request comes from).
    pub bridge: String,
    /// The subnet's gateway (the request's sender address).
    pub gateway: Ipv4Addr,
    /// The primary private address.
    pub ip: Ipv4Addr,
}

/// What a status check may read: the running instances.
pub trait ProbeTargets: Send + Sync + 'static {
    /// Every running instance, as the checks see it.
    fn running(&self) -> Vec<Target>;
}

/// Where status results go, and where a check's history is read back from.
pub trait StatusBoard: Send + Sync + 'static {
    /// The record of an instance; a fresh one (`initializing`, since now) if it has none.
    fn record(&self, id: &str) -> Record;
    /// Publishes a round: these records replace every record held.
    fn publish(&self, round: HashMap<String, Record>);
}

/// The status checks, run every interval.
pub struct Prober {
    targets: Arc<dyn ProbeTargets>,
    board: Arc<dyn StatusBoard>,
    metrics: Arc<Metrics>,
    interval: Duration,
    grace: Duration,
    /// The last vCPU sample of each instance's monitor (KVM's statistics): a new monitor
    /// starts without one.
    progress: Mutex<HashMap<String, (Process, Vec<VcpuSample>)>>,
}

impl Prober {
    /// Checks `targets` every `interval` into `board`; an instance check that never passed
    /// stays `initializing` for `grace` after its checks began.
    pub fn new(
        targets: Arc<dyn ProbeTargets>,
        board: Arc<dyn StatusBoard>,
        metrics: Arc<Metrics>,
        interval: Duration,
        grace: Duration,
    ) -> Prober {
        Prober {
            targets,
            board,
            metrics,
            interval,
            grace,
            progress: Mutex::new(HashMap::new()),
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Process, Vec<VcpuSample>)>> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The vCPU part of the system check: false when a vCPU neither exited nor halted
    /// since the last round. Kernels without KVM statistics fall back to the thread count.
    async fn vcpus_progress(&self, id: &str, process: Process, monitor: &Monitor) -> bool {
        let Ok(c) = monitor.counters().await else {
            return false;
        };
        let Some(now) = c
            .vcpus
            .iter()
            .map(VcpuSample::from_counters)
            .collect::<Option<Vec<_>>>()
        else {
            return true;
        };
        let before = self
            .progress()
            .insert(id.to_string(), (process, now.clone()));
        match before {
            Some((p, b)) if p == process => vcpus_progressed(&b, &now),
            _ => true,
        }
    }

    /// The system check of one instance; false with the first failing part logged.
    async fn system_check(&self, t: &Target) -> bool {
        let Some(process) = t.process else {
            return false;
        };
        if !supervisor::alive(process) {
            return false;
        }
        let monitor = Monitor::new(&VmmPaths::in_dir(&t.dir), Duration::from_secs(1));
        match monitor.state().await {
            Ok(s) if s.state == VmState::Running => {}
            _ => return false,
        }
        if supervisor::vcpu_threads(process) != t.vcpus {
            return false;
        }
        if !self.vcpus_progress(&t.id, process, &monitor).await {
            tracing::warn!(instance = %t.id, "a vCPU made no progress (no exit, not halted)");
            return false;
        }
        for tap in &t.taps {
            let tap = tap.clone();
            let up = blocking(move || strato_net::link::link_status(&tap))
                .await
                .ok()
                .flatten()
                .map(|s| s.admin_up && s.lower_up)
                .unwrap_or(false);
            if !up {
                return false;
            }
        }
        t.volumes.iter().all(|v| v.exists())
    }

    /// The instance check: does the guest answer ARP for its private IP on its ENI?
    async fn instance_check(&self, t: &Target) -> Option<bool> {
        let reach = t.reach.clone()?;
        let bridge = reach.bridge.clone();
        let src_mac = blocking(move || strato_net::link::link_mac(&bridge))
            .await
            .ok()??;
        let timeout = (self.interval / 2).min(Duration::from_secs(1));
        // Three tries inside the window: one lost frame is not an outage.
        for _ in 0..3 {
            let tap = reach.tap.clone();
            let (gw, ip) = (reach.gateway, reach.ip);
            let r =
                blocking(move || strato_net::arp::arp_probe(&tap, src_mac, gw, ip, timeout / 3))
                    .await;
            match r {
                Ok(Some(_)) => return Some(true),
                Ok(None) => {}
                Err(_) => return Some(false),
            }
        }
        Some(false)
    }

    /// One round of checks over every running instance, all instances at once (an ARP
    /// probe that waits for a silent guest must not delay the others).
    pub async fn probe_round(self: &Arc<Self>) {
        let running = self.targets.running();
        self.record_round(running, |me, t| async move {
            let sys = me.system_check(&t).await;
            let reach = if sys || t.process.is_some() {
                me.instance_check(&t).await
            } else {
                Some(false)
            };
            (sys, reach)
        })
        .await;
    }

    /// Runs `check` (system passed, reachability passed) for each instance at once and
    /// publishes the results. A check that panics keeps its instance's previous record
    /// and costs no other instance its history.
    async fn record_round<F, Fut>(self: &Arc<Self>, targets: Vec<Target>, check: F)
    where
        F: Fn(Arc<Prober>, Target) -> Fut,
        Fut: std::future::Future<Output = (bool, Option<bool>)> + Send + 'static,
    {
        let mut set = tokio::task::JoinSet::new();
        let mut task_of: HashMap<tokio::task::Id, String> = HashMap::new();
        for t in targets {
            crate::metrics::inc(&self.metrics.status_checks_total);
            let id = t.id.clone();
            let handle = set.spawn(check(Arc::clone(self), t));
            task_of.insert(handle.id(), id);
        }
        let now = now_s();
        let grace = self.grace.as_secs_f64();
        let mut results: HashMap<String, Record> = HashMap::new();
        while let Some(joined) = set.join_next_with_id().await {
            let (task, outcome) = match joined {
                Ok((task, r)) => (task, Some(r)),
                Err(e) => (e.id(), None),
            };
            let Some(id) = task_of.remove(&task) else {
                continue;
            };
            let mut rec = self.board.record(&id);
            match outcome {
                Some((sys, reach)) => {
                    let in_grace = (now - rec.since) as f64 <= grace;
                    rec.system.update(sys, false, now);
                    match reach {
                        Some(passed) => rec.instance.update(passed, in_grace, now),
                        None => rec.instance.status = Status::InsufficientData,
                    }
                }
                None => tracing::error!(instance = %id, "status check panicked; its record stays"),
            }
            results.insert(id, rec);
        }
        tracing::debug!(
            instances = results.len(),
            ok = results
                .values()
                .filter(|r| r.system.status == Status::Ok && r.instance.status == Status::Ok)
                .count(),
            "status round"
        );
        self.progress().retain(|id, _| results.contains_key(id));
        self.board.publish(results);
    }

    /// Runs the checks forever.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.probe_round().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_an_exit_a_halt_or_being_halted() {
        let s = |exits, halts, blocking| VcpuSample {
            exits,
            halts,
            blocking,
        };
        let before = [s(10, 2, false), s(5, 5, true)];
        // Busy (exits), idle (halted now), halted meanwhile: progress.
        assert!(vcpus_progressed(&before, &[s(11, 2, false), s(5, 5, true)]));
        assert!(vcpus_progressed(&before, &[s(10, 3, false), s(5, 5, true)]));
        // One vCPU that neither exited nor halted and is not halted: wedged.
        assert!(!vcpus_progressed(
            &before,
            &[s(11, 2, false), s(5, 5, false)]
        ));
        assert!(!vcpus_progressed(
            &before,
            &[s(10, 2, false), s(9, 5, true)]
        ));
        // A VM that was replaced (counts from zero) and a vCPU count that changed.
        assert!(vcpus_progressed(&before, &[s(1, 0, false), s(0, 0, true)]));
        assert!(!vcpus_progressed(&before, &before[..1]));
        let mut c = strato_vmm_api::control::CounterSet::new();
        assert_eq!(VcpuSample::from_counters(&c), None);
        for (k, v) in [("kvm_exits", 7), ("kvm_halt_exits", 1), ("kvm_blocking", 1)] {
            c.insert(k.into(), v);
        }
        assert_eq!(VcpuSample::from_counters(&c), Some(s(7, 1, true)));
    }

    /// Targets and a board held in memory.
    #[derive(Default)]
    struct Fake {
        targets: Mutex<Vec<Target>>,
        board: Mutex<HashMap<String, Record>>,
    }

    impl ProbeTargets for Fake {
        fn running(&self) -> Vec<Target> {
            self.targets.lock().unwrap().clone()
        }
    }

    impl StatusBoard for Fake {
        fn record(&self, id: &str) -> Record {
            self.board
                .lock()
                .unwrap()
                .get(id)
                .copied()
                .unwrap_or(Record {
                    since: now_s(),
                    ..Default::default()
                })
        }

        fn publish(&self, round: HashMap<String, Record>) {
            *self.board.lock().unwrap() = round;
        }
    }

    /// An instance the daemon watches no monitor of, with nothing to probe.
    fn target(id: &str) -> Target {
        Target {
            id: id.into(),
            vcpus: 1,
            process: None,
            dir: PathBuf::from("/nonexistent"),
            taps: vec![],
            volumes: vec![],
            reach: None,
        }
    }

    fn prober(fake: &Arc<Fake>, grace: Duration) -> Arc<Prober> {
        Arc::new(Prober::new(
            fake.clone(),
            fake.clone(),
            Arc::new(Metrics::default()),
            Duration::from_secs(5),
            grace,
        ))
    }

    const IDS: [&str; 3] = [
        "i-0000000000000000a",
        "i-0000000000000000b",
        "i-0000000000000000c",
    ];

    /// A panicking check of one instance leaves every instance's history in place, its own
    /// included.
    #[tokio::test]
    async fn a_panicking_check_costs_no_history() {
        let fake = Arc::new(Fake::default());
        let p = prober(&fake, Duration::from_secs(60));
        let targets: Vec<Target> = IDS.iter().map(|id| target(id)).collect();
        p.record_round(targets.clone(), |_, _| async { (true, Some(true)) })
            .await;
        for id in IDS {
            assert_eq!(fake.record(id).system.status, Status::Ok);
        }
        p.record_round(targets, |_, t| async move {
            assert_ne!(t.id, "i-0000000000000000a", "a probe bug");
            (false, Some(true))
        })
        .await;
        let map = fake.board.lock().unwrap().clone();
        assert_eq!(map.len(), 3, "{map:?}");
        assert_eq!(map["i-0000000000000000a"].system.status, Status::Ok);
        assert_eq!(map["i-0000000000000000b"].system.status, Status::Impaired);
        assert_eq!(map["i-0000000000000000c"].system.status, Status::Impaired);
        assert_eq!(
            p.metrics
                .status_checks_total
                .load(std::sync::atomic::Ordering::Relaxed),
            6
        );
    }

    /// An instance without a monitor fails its system check and, once the grace period is
    /// over, its instance check; one with no reachability facts has insufficient data; one
    /// that stopped running leaves the board.
    #[tokio::test]
    async fn a_round_without_monitors() {
        let fake = Arc::new(Fake::default());
        let mut unreachable = target(IDS[1]);
        unreachable.process = Some(Process { pid: 1, start: -1 });
        *fake.targets.lock().unwrap() = vec![target(IDS[0]), unreachable];
        fake.board
            .lock()
            .unwrap()
            .insert(IDS[2].into(), Record::default());
        prober(&fake, Duration::from_secs(600)).probe_round().await;
        let a = fake.record(IDS[0]);
        assert_eq!(a.system.status, Status::Impaired);
        assert!(a.system.impaired_since.is_some());
        assert_eq!(
            a.instance.status,
            Status::Initializing,
            "inside the grace period"
        );
        // A process the daemon watches (no process ever had that start time: the system check fails) and
        // no facts to probe with: the instance check cannot run.
        let b = fake.record(IDS[1]);
        assert_eq!(b.system.status, Status::Impaired);
        assert_eq!(b.instance.status, Status::InsufficientData);
        assert!(!fake.board.lock().unwrap().contains_key(IDS[2]), "gone");
        // Past the grace period a check that never passed is impaired.
        fake.board.lock().unwrap().get_mut(IDS[0]).unwrap().since -= 10;
        prober(&fake, Duration::from_secs(5)).probe_round().await;
        assert_eq!(fake.record(IDS[0]).instance.status, Status::Impaired);
    }

    #[test]
    fn check_history() {
        let mut c = Check::default();
        c.update(false, true, 10);
        assert_eq!((c.status, c.impaired_since), (Status::Initializing, None));
        c.update(true, true, 11);
        assert_eq!(c.status, Status::Ok);
        // Once it passed, a failure is an impairment even inside the grace period.
        c.update(false, true, 12);
        assert_eq!((c.status, c.impaired_since), (Status::Impaired, Some(12)));
        c.update(false, true, 13);
        assert_eq!(c.impaired_since, Some(12));
        c.update(true, false, 14);
        assert_eq!((c.status, c.impaired_since), (Status::Ok, None));
        let mut never = Check::default();
        never.update(false, false, 20);
        assert_eq!(
            (never.status, never.impaired_since),
            (Status::Impaired, Some(20))
        );
    }
}
