//! Status checks as EC2 defines them, run every interval against each running instance.
//!
//! - System status (the host's side): the monitor process is alive and answers on its
//!   control socket, the VM is not paused and every vCPU thread is alive and making
//!   progress, the ENI's tap is up with carrier, and every volume file is present. Progress
//!   comes from KVM's statistics of each vCPU, which the guest cannot fake: since the last
//!   round it left the guest (an exit of any kind) or it is halted now (an idle guest); a
//!   vCPU that did neither is wedged.
//! - Instance status (the guest's side): an ARP request for the instance's private IP sent
//!   into its ENI gets an answer, as EC2's reachability check does; when it does not and
//!   the ENI has IPv6 addresses, a neighbour solicitation for the first one sent the same
//!   way gets an advertisement (a guest that speaks only IPv6 is reachable too).
//!
//! A check is `initializing` until it first passes (for the instance check, at most for the
//! grace period after boot), then `ok` or `impaired` with the time it first failed.
//!
//! Timing: a VM's first checks do not wait for the next round. The domain announces each
//! monitor that comes up (or is adopted) on [`BootEvents`]; its checks then run every
//! [`FIRST_CHECK_CADENCE`] until both pass (or the grace period ends), so a guest that
//! answers ARP a moment after boot is `ok` a moment later. From then on the rounds at the
//! configured interval check it with every other instance.
//!
//! The prober reads what it checks from a [`ProbeTargets`] and writes what it found to a
//! [`StatusBoard`]; the domain implements both over its state, and DescribeInstanceStatus
//! reads the board.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cloud::network::plumbing::blocking;
use crate::db::now_s;
use crate::metrics::Metrics;
use crate::supervisor::{self, Monitor, Process, VmmPaths};
use strato_vmm_api::control::VmState;
use strato_wire::neighbour;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How often a new VM's checks are retried until they first pass: short, since each retry
/// costs one control-socket request and one ARP request, and the wait is the user's.
pub const FIRST_CHECK_CADENCE: Duration = Duration::from_millis(100);

/// How long one of those retries waits for the guest's ARP reply.
const FIRST_CHECK_ARP_WAIT: Duration = Duration::from_millis(200);

/// How long first checks wait for a guest to send its first frame before asking it anyway.
const QUIET_GUEST_WAIT: Duration = Duration::from_secs(5);

/// Whether the guest behind `tap` has sent a frame (the tap has received one); true when
/// the counter cannot be read, so that nothing waits on a host without it.
fn guest_has_sent(tap: &str) -> bool {
    if tap.is_empty() || tap.contains('/') || tap.starts_with('.') {
        return true;
    }
    std::fs::read_to_string(format!("/sys/class/net/{tap}/statistics/rx_packets"))
        .ok()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .is_none_or(|n| n > 0)
}

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

/// The system check's result: `Err` says which part failed.
pub type SystemResult = Result<(), &'static str>;

/// One round's result for an instance: the system check's, and whether the guest answered
/// (`None`: its records do not say what to ask).
pub type Outcome = (SystemResult, Option<bool>);

/// Why a system check failed: the daemon watches no monitor for the instance.
pub const NO_MONITOR: &str = "no monitor process is watched for this instance";
/// Why a system check failed: the monitor process is gone.
pub const MONITOR_GONE: &str = "the monitor process is not running";
/// Why a system check failed: the control socket did not answer.
pub const MONITOR_SILENT: &str = "the monitor does not answer on its control socket";
/// Why a system check failed: the VM is paused or stopped.
pub const VM_NOT_RUNNING: &str = "the VM is not running (paused or stopped in the monitor)";
/// Why a system check failed: fewer vCPU threads than vCPUs.
pub const VCPU_THREAD_GONE: &str = "a vCPU thread of the monitor is gone";
/// Why a system check failed: a vCPU neither exited nor halted.
pub const VCPU_WEDGED: &str = "a vCPU made no progress (no exit since the last check, not halted)";
/// Why a system check failed: a tap is down.
pub const TAP_DOWN: &str = "a network interface's tap is down or has no carrier";
/// Why a system check failed: a volume's file is gone.
pub const VOLUME_MISSING: &str = "a volume's file is missing on the host";
/// Why a reachability check failed.
pub const NO_ARP_REPLY: &str = "the guest did not answer ARP for its private address";
/// Why a reachability check has insufficient data.
pub const NO_REACH_FACTS: &str = "the instance's records do not say which address to check";

/// One check's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Current status.
    pub status: Status,
    /// Unix seconds of the first failure in the current run of failures.
    pub impaired_since: Option<i64>,
    /// Whether it ever passed since the VM booted.
    pub passed_once: bool,
    /// Why it failed last, while it fails.
    pub reason: Option<&'static str>,
}

impl Default for Check {
    fn default() -> Self {
        Self {
            status: Status::Initializing,
            impaired_since: None,
            passed_once: false,
            reason: None,
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
            self.reason = None;
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
/// the primary private address, sent into the primary ENI's tap; when no ARP reply comes
/// and the ENI has IPv6 addresses, a neighbour solicitation for the first of them (a guest
/// that speaks only IPv6 is reachable too).
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
    /// The ENI's IPv6 addresses, in the order they were assigned.
    pub ipv6: Vec<Ipv6Addr>,
}

/// One instance as a new VM's first checks look it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Still booting: `running` is recorded once its monitor answers.
    Pending,
    /// Running (boxed: a target is large beside the other variants).
    Running(Box<Target>),
    /// Neither (stopping, stopped, gone): its first checks end.
    Gone,
}

/// What a status check may read: the running instances.
pub trait ProbeTargets: Send + Sync + 'static {
    /// Every running instance, as the checks see it.
    fn running(&self) -> Vec<Target>;
    /// One instance.
    fn target(&self, id: &str) -> Lookup;
}

/// Where status results go, and where a check's history is read back from.
pub trait StatusBoard: Send + Sync + 'static {
    /// The record of an instance; a fresh one (`initializing`, since now) if it has none.
    fn record(&self, id: &str) -> Record;
    /// Publishes a round: these records replace every record held, but those of VMs that
    /// came up during the round.
    fn publish(&self, round: HashMap<String, Record>);
    /// Sets one instance's record (a new VM's first checks).
    fn put(&self, id: &str, record: Record);
}

/// A VM whose monitor came up (or was adopted): its instance and monitor.
pub type Booted = (String, Process);

/// The domain's announcements of booted VMs, and the prober's end of them (taken once).
#[derive(Debug)]
pub struct BootEvents {
    tx: UnboundedSender<Booted>,
    rx: Mutex<Option<UnboundedReceiver<Booted>>>,
}

impl Default for BootEvents {
    fn default() -> Self {
        let (tx, rx) = unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl BootEvents {
    /// Announces that instance `id`'s monitor `process` is up. Kept until the prober runs
    /// (a restart adopts monitors before it starts).
    pub fn booted(&self, id: &str, process: Process) {
        let _ = self.tx.send((id.to_string(), process));
    }

    /// The receiving end, for the prober; `None` once taken.
    pub fn take(&self) -> Option<UnboundedReceiver<Booted>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
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

    /// The system check of one instance: `Err` names the first failing part. Without
    /// `progress` the vCPUs' progress is not sampled (a new VM's first checks, too close
    /// together to tell a wedged vCPU from a busy one).
    async fn system_check(&self, t: &Target, progress: bool) -> SystemResult {
        let Some(process) = t.process else {
            return Err(NO_MONITOR);
        };
        if !supervisor::alive(process) {
            return Err(MONITOR_GONE);
        }
        let monitor = Monitor::new(&VmmPaths::in_dir(&t.dir), Duration::from_secs(1));
        match monitor.state().await {
            Ok(s) if s.state == VmState::Running => {}
            Ok(_) => return Err(VM_NOT_RUNNING),
            Err(_) => return Err(MONITOR_SILENT),
        }
        if supervisor::vcpu_threads(process) != t.vcpus {
            return Err(VCPU_THREAD_GONE);
        }
        if progress && !self.vcpus_progress(&t.id, process, &monitor).await {
            tracing::warn!(instance = %t.id, "a vCPU made no progress (no exit, not halted)");
            return Err(VCPU_WEDGED);
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
                return Err(TAP_DOWN);
            }
        }
        if t.volumes.iter().all(|v| v.exists()) {
            Ok(())
        } else {
            Err(VOLUME_MISSING)
        }
    }

    /// The instance check: does the guest answer ARP for its private IP on its ENI within
    /// `window`, or, failing that, a neighbour solicitation for its first IPv6 address
    /// within another `window`?
    async fn instance_check(&self, t: &Target, window: Duration) -> Option<bool> {
        let reach = t.reach.clone()?;
        let bridge = reach.bridge.clone();
        let src_mac = blocking(move || strato_net::link::link_mac(&bridge))
            .await
            .ok()??;
        let (tap, gw, ip) = (reach.tap.clone(), reach.gateway, reach.ip);
        // Three requests inside the window, any reply counts: one lost frame is not an
        // outage, and a guest slow to answer the first request is still answering.
        let r =
            blocking(move || strato_net::arp::arp_probe_retrying(&tap, src_mac, gw, ip, window, 3))
                .await;
        if matches!(r, Ok(Some(_))) {
            return Some(true);
        }
        let Some(&target) = reach.ipv6.first() else {
            return Some(false);
        };
        let tap = reach.tap;
        let r = blocking(move || {
            let ns = neighbour::solicitation_frame(src_mac, target);
            strato_net::arp::frame_probe_retrying(
                &tap,
                neighbour::ETHERTYPE_IPV6,
                &ns,
                window,
                3,
                |f| neighbour::parse_advertisement_frame(f, target),
            )
        })
        .await;
        Some(matches!(r, Ok(Some(_))))
    }

    /// The ARP window of a round at the configured interval.
    fn round_arp_window(&self) -> Duration {
        (self.interval / 2).min(Duration::from_secs(1))
    }

    /// One round of checks over every running instance, all instances at once (an ARP
    /// probe that waits for a silent guest must not delay the others).
    pub async fn probe_round(self: &Arc<Self>) {
        let running = self.targets.running();
        self.record_round(running, |me, t| async move {
            let sys = me.system_check(&t, true).await;
            let reach = if sys.is_ok() || t.process.is_some() {
                me.instance_check(&t, me.round_arp_window()).await
            } else {
                Some(false)
            };
            (sys, reach)
        })
        .await;
    }

    /// The first checks of instance `id`, whose monitor `process` just came up: every
    /// [`FIRST_CHECK_CADENCE`] until both have passed, the grace period is over, or the VM
    /// is no longer this one. Its record starts now.
    async fn first_checks(self: Arc<Self>, id: String, process: Process) {
        let started = std::time::Instant::now();
        self.first_checks_with(id, process, move |me, t, system_passed| async move {
            let sys = if system_passed {
                Ok(())
            } else {
                me.system_check(&t, false).await
            };
            // ARP requests sent before the guest's network driver is up wait in the tap's
            // queue and reach the guest all at once later: ask only once the guest has sent
            // a frame (a DHCP request, an announcement), or after a while for a quiet one.
            let quiet = t.reach.as_ref().is_some_and(|r| !guest_has_sent(&r.tap));
            if quiet && started.elapsed() < QUIET_GUEST_WAIT {
                return (sys, Some(false));
            }
            (sys, me.instance_check(&t, FIRST_CHECK_ARP_WAIT).await)
        })
        .await;
    }

    /// As [`Prober::first_checks`], with `check` (the target, whether its system check has
    /// passed already) giving each try's result.
    async fn first_checks_with<F, Fut>(self: Arc<Self>, id: String, process: Process, check: F)
    where
        F: Fn(Arc<Prober>, Target, bool) -> Fut,
        Fut: std::future::Future<Output = Outcome>,
    {
        let started = now_s();
        self.board.put(
            &id,
            Record {
                since: started,
                ..Default::default()
            },
        );
        loop {
            tokio::time::sleep(FIRST_CHECK_CADENCE).await;
            if (now_s() - started) as f64 > self.grace.as_secs_f64() {
                return;
            }
            let t = match self.targets.target(&id) {
                Lookup::Running(t) if t.process == Some(process) => *t,
                // The boot records `running` once the monitor answers.
                Lookup::Pending => continue,
                _ => return,
            };
            crate::metrics::inc(&self.metrics.status_checks_total);
            let system_passed = self.board.record(&id).system.status == Status::Ok;
            let outcome = check(Arc::clone(&self), t, system_passed).await;
            // Folded in only while the VM is still this one (a stop may have begun).
            if !matches!(self.targets.target(&id), Lookup::Running(t) if t.process == Some(process))
            {
                return;
            }
            let rec = self.fold(&id, Some(outcome), now_s());
            self.board.put(&id, rec);
            if rec.system.status == Status::Ok && rec.instance.status != Status::Initializing {
                return;
            }
        }
    }

    /// Instance `id`'s record with one result folded in (the system check's result,
    /// reachability passed; `None`: the check panicked), a change of either status logged.
    fn fold(&self, id: &str, outcome: Option<Outcome>, now: i64) -> Record {
        let before = self.board.record(id);
        let mut rec = before;
        match outcome {
            Some((sys, reach)) => {
                let in_grace = (now - rec.since) as f64 <= self.grace.as_secs_f64();
                rec.system.update(sys.is_ok(), false, now);
                rec.system.reason = sys.err();
                match reach {
                    Some(passed) => {
                        rec.instance.update(passed, in_grace, now);
                        rec.instance.reason = (!passed).then_some(NO_ARP_REPLY);
                    }
                    None => {
                        rec.instance.status = Status::InsufficientData;
                        rec.instance.reason = Some(NO_REACH_FACTS);
                    }
                }
            }
            None => tracing::error!(instance = %id, "status check panicked; its record stays"),
        }
        if (rec.system.status, rec.instance.status)
            != (before.system.status, before.instance.status)
        {
            tracing::info!(
                instance = %id,
                system = rec.system.status.name(),
                reachability = rec.instance.status.name(),
                "status changed"
            );
        }
        rec
    }

    /// Runs `check` (system passed, reachability passed) for each instance at once and
    /// publishes the results. A check that panics keeps its instance's previous record
    /// and costs no other instance its history.
    async fn record_round<F, Fut>(self: &Arc<Self>, targets: Vec<Target>, check: F)
    where
        F: Fn(Arc<Prober>, Target) -> Fut,
        Fut: std::future::Future<Output = Outcome> + Send + 'static,
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
        let mut results: HashMap<String, Record> = HashMap::new();
        while let Some(joined) = set.join_next_with_id().await {
            let (task, outcome) = match joined {
                Ok((task, r)) => (task, Some(r)),
                Err(e) => (e.id(), None),
            };
            let Some(id) = task_of.remove(&task) else {
                continue;
            };
            results.insert(id.clone(), self.fold(&id, outcome, now));
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

    /// Runs the checks forever: a round every interval, and the first checks of each VM
    /// announced on `boots` as it comes.
    pub async fn run(self: Arc<Self>, boots: Option<UnboundedReceiver<Booted>>) {
        if let Some(mut boots) = boots {
            let me = Arc::clone(&self);
            tokio::spawn(async move {
                while let Some((id, process)) = boots.recv().await {
                    tokio::spawn(Arc::clone(&me).first_checks(id, process));
                }
            });
        }
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
        /// Instances still booting.
        pending: Mutex<Vec<String>>,
        board: Mutex<HashMap<String, Record>>,
    }

    impl ProbeTargets for Fake {
        fn running(&self) -> Vec<Target> {
            self.targets.lock().unwrap().clone()
        }

        fn target(&self, id: &str) -> Lookup {
            if self.pending.lock().unwrap().iter().any(|p| p == id) {
                return Lookup::Pending;
            }
            self.running()
                .into_iter()
                .find(|t| t.id == id)
                .map_or(Lookup::Gone, |t| Lookup::Running(Box::new(t)))
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

        fn put(&self, id: &str, record: Record) {
            self.board.lock().unwrap().insert(id.to_string(), record);
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
        p.record_round(targets.clone(), |_, _| async { (Ok(()), Some(true)) })
            .await;
        for id in IDS {
            assert_eq!(fake.record(id).system.status, Status::Ok);
        }
        p.record_round(targets, |_, t| async move {
            assert_ne!(t.id, "i-0000000000000000a", "a probe bug");
            (Err(MONITOR_GONE), Some(true))
        })
        .await;
        let map = fake.board.lock().unwrap().clone();
        assert_eq!(map.len(), 3, "{map:?}");
        assert_eq!(map["i-0000000000000000a"].system.status, Status::Ok);
        assert_eq!(map["i-0000000000000000b"].system.status, Status::Impaired);
        assert_eq!(map["i-0000000000000000b"].system.reason, Some(MONITOR_GONE));
        assert_eq!(map["i-0000000000000000a"].system.reason, None);
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

    /// A new VM's first checks wait out its boot, retry at the short cadence until both
    /// pass, then stop; the rounds take over.
    #[tokio::test]
    async fn first_checks_retry_until_both_pass() {
        let fake = Arc::new(Fake::default());
        let process = Process { pid: 7, start: 70 };
        let mut t = target(IDS[0]);
        t.process = Some(process);
        fake.pending.lock().unwrap().push(IDS[0].into());
        let p = prober(&fake, Duration::from_secs(600));
        let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = {
            let (p, tries) = (Arc::clone(&p), Arc::clone(&tries));
            tokio::spawn(
                p.first_checks_with(IDS[0].into(), process, move |_, _, sys| {
                    let n = tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // The monitor answers at once; the guest from its third try on.
                    async move { (Ok(()), Some(n >= 2 && sys)) }
                }),
            )
        };
        tokio::time::sleep(FIRST_CHECK_CADENCE * 3).await;
        assert_eq!(
            tries.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "booting"
        );
        assert_eq!(fake.record(IDS[0]).system.status, Status::Initializing);
        fake.pending.lock().unwrap().clear();
        *fake.targets.lock().unwrap() = vec![t];
        task.await.unwrap();
        assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 3);
        let rec = fake.record(IDS[0]);
        assert_eq!(
            (rec.system.status, rec.instance.status),
            (Status::Ok, Status::Ok)
        );
    }

    /// First checks end when the VM is replaced or stops, and never touch the record of
    /// the VM that replaced it.
    #[tokio::test]
    async fn first_checks_end_with_their_vm() {
        let fake = Arc::new(Fake::default());
        let mut t = target(IDS[1]);
        t.process = Some(Process { pid: 8, start: 80 });
        *fake.targets.lock().unwrap() = vec![t];
        let p = prober(&fake, Duration::from_secs(600));
        // A monitor that is not the running one: nothing is tried.
        Arc::clone(&p)
            .first_checks_with(
                IDS[1].into(),
                Process { pid: 9, start: 90 },
                |_, _, _| async { panic!("checked another VM") },
            )
            .await;
        // Gone: ends.
        fake.targets.lock().unwrap().clear();
        p.first_checks_with(
            IDS[1].into(),
            Process { pid: 8, start: 80 },
            |_, _, _| async { panic!("checked a stopped VM") },
        )
        .await;
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
