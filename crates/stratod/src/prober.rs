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
//! Timing: a VM's first checks do not wait for the next round. Once its monitor is up they
//! run at [`FIRST_CHECK_CADENCE`] until both pass (or the grace period ends), so a guest
//! that answers ARP a moment after boot is `ok` a moment later; from then on the rounds at
//! the configured interval check it with every other instance.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

/// How often a new VM's checks are retried until they first pass: short, since each retry
/// costs one control-socket request and one ARP request, and the wait is the user's.
pub const FIRST_CHECK_CADENCE: Duration = Duration::from_millis(100);

/// How long one of those retries waits for the guest's ARP reply.
const FIRST_CHECK_ARP_WAIT: Duration = Duration::from_millis(200);

use crate::cloud::Cloud;
use crate::db::instances::Instance;
use crate::db::now_s;
use crate::lifecycle::State;
use crate::supervisor::{self, Monitor, VmmPaths};
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

impl Cloud {
    /// The latest status of an instance (`initializing` before the first round).
    pub fn status_of(&self, id: &str) -> Record {
        let map = self.status.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).copied().unwrap_or(Record {
            since: now_s(),
            ..Default::default()
        })
    }

    /// Drops an instance's checks (it stopped, or its VM is replaced).
    pub fn status_forget(&self, id: &str) {
        let mut map = self.status.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
        drop(map);
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// The vCPU part of the system check: false when a vCPU neither exited nor halted
    /// since the last round. Kernels without KVM statistics fall back to the thread count.
    async fn vcpus_progress(&self, id: &str, monitor: &Monitor) -> bool {
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
            .progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), now.clone());
        before.is_none_or(|b| vcpus_progressed(&b, &now))
    }

    /// The system check of one instance; false with the first failing part logged. Without
    /// `progress` the vCPUs' progress is not sampled (a new VM's first checks, too close
    /// together to tell a wedged vCPU from a busy one).
    async fn system_check(&self, inst: &crate::db::instances::Instance, progress: bool) -> bool {
        let Some(vm) = self.vm(&inst.id) else {
            return false;
        };
        if !supervisor::alive(vm.process) {
            return false;
        }
        let paths = VmmPaths::in_dir(&self.instance_dir(&inst.id));
        let monitor = Monitor::new(&paths, Duration::from_secs(1));
        match monitor.state().await {
            Ok(s) if s.state == VmState::Running => {}
            _ => return false,
        }
        if supervisor::vcpu_threads(vm.process) != inst.vcpus as usize {
            return false;
        }
        if progress && !self.vcpus_progress(&inst.id, &monitor).await {
            tracing::warn!(instance = %inst.id, "a vCPU made no progress (no exit, not halted)");
            return false;
        }
        for eni in self.db.instance_enis(&inst.id).unwrap_or_default() {
            let tap = eni.tap.clone();
            let up = crate::cloud::network::plumbing::blocking(move || {
                strato_net::link::link_status(&tap)
            })
            .await
            .ok()
            .flatten()
            .map(|s| s.admin_up && s.lower_up)
            .unwrap_or(false);
            if !up {
                return false;
            }
        }
        for v in self.db.instance_volumes(&inst.id).unwrap_or_default() {
            if !self.volume_path(&v.id).exists() {
                return false;
            }
        }
        true
    }

    /// The instance check: does the guest answer ARP for its private IP on its ENI within
    /// `window`?
    async fn instance_check(
        &self,
        inst: &crate::db::instances::Instance,
        window: Duration,
    ) -> Option<bool> {
        let eni = self.db.instance_enis(&inst.id).ok()?.into_iter().next()?;
        let subnet = self.db.subnet(&eni.subnet_id).ok()??;
        let (gw, _) = crate::cloud::network::plumbing::gateway(&subnet)?;
        let target: Ipv4Addr = eni.private_ip.parse().ok()?;
        let bridge = subnet.bridge.clone();
        let src_mac =
            crate::cloud::network::plumbing::blocking(move || strato_net::link::link_mac(&bridge))
                .await
                .ok()??;
        let tap = eni.tap.clone();
        // Three requests inside the window, any reply counts: one lost frame is not an
        // outage, and a guest slow to answer the first request is still answering.
        let r = crate::cloud::network::plumbing::blocking(move || {
            strato_net::arp::arp_probe_retrying(&tap, src_mac, gw, target, window, 3)
        })
        .await;
        Some(matches!(r, Ok(Some(_))))
    }

    /// The ARP window of a round at the configured interval.
    fn round_arp_window(&self) -> Duration {
        (self.cfg.status_interval / 2).min(Duration::from_secs(1))
    }

    /// One round of checks over every running instance, all instances at once (an ARP
    /// probe that waits for a silent guest must not delay the others).
    pub async fn probe_round(self: &Arc<Self>) {
        let Ok(instances) = self.db.instances(None) else {
            return;
        };
        let running = instances
            .into_iter()
            .filter(|i| i.state == State::Running)
            .collect();
        self.record_round(running, |cloud, inst| async move {
            let sys = cloud.system_check(&inst, true).await;
            let reach = if sys || cloud.vm(&inst.id).is_some() {
                cloud.instance_check(&inst, cloud.round_arp_window()).await
            } else {
                Some(false)
            };
            (sys, reach)
        })
        .await;
    }

    /// Starts the first checks of instance `id`, whose monitor `process` just came up:
    /// every [`FIRST_CHECK_CADENCE`] until both checks have passed, the grace period is
    /// over, or the VM is no longer this one. The instance's record starts now.
    pub fn first_checks(self: &Arc<Self>, id: &str, process: supervisor::Process) {
        let started = now_s();
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id.to_string(),
                Record {
                    since: started,
                    ..Default::default()
                },
            );
        let cloud = Arc::clone(self);
        let id = id.to_string();
        tokio::spawn(async move {
            let grace = cloud.cfg.status_grace.as_secs_f64();
            loop {
                tokio::time::sleep(FIRST_CHECK_CADENCE).await;
                if cloud.vm(&id).map(|v| v.process) != Some(process) {
                    return;
                }
                let inst = match cloud.db.instance(&id) {
                    Ok(Some(i)) => i,
                    _ => return,
                };
                match inst.state {
                    // The boot records `running` once this returns to it.
                    State::Pending => continue,
                    State::Running => {}
                    _ => return,
                }
                let rec = cloud.status_of(&id);
                let sys = rec.system.status == Status::Ok
                    || cloud.system_check(&inst, false).await;
                let reach = cloud.instance_check(&inst, FIRST_CHECK_ARP_WAIT).await;
                // Folded in only while the VM is still this one (a stop may have begun).
                if cloud.vm(&id).map(|v| v.process) != Some(process) {
                    return;
                }
                let now = now_s();
                let rec = cloud.fold(&id, Some((sys, reach)), now);
                let settled = rec.system.status == Status::Ok
                    && rec.instance.status != Status::Initializing;
                if settled || (now - rec.since) as f64 > grace {
                    return;
                }
            }
        });
    }

    /// Folds one result (system passed, reachability passed; `None`: the check panicked)
    /// into instance `id`'s record, logging a change of either status; returns the record.
    fn fold(&self, id: &str, outcome: Option<(bool, Option<bool>)>, now: i64) -> Record {
        let mut map = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let before = map.get(id).copied().unwrap_or(Record {
            since: now,
            ..Default::default()
        });
        let mut rec = before;
        match outcome {
            Some((sys, reach)) => {
                let in_grace = (now - rec.since) as f64 <= self.cfg.status_grace.as_secs_f64();
                rec.system.update(sys, false, now);
                match reach {
                    Some(passed) => rec.instance.update(passed, in_grace, now),
                    None => rec.instance.status = Status::InsufficientData,
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
        map.insert(id.to_string(), rec);
        rec
    }

    /// Runs `check` (system passed, reachability passed) for each instance at once and
    /// folds the results into the status map. A check that panics keeps its instance's
    /// previous record and costs no other instance its history.
    async fn record_round<F, Fut>(self: &Arc<Self>, instances: Vec<Instance>, check: F)
    where
        F: Fn(Arc<Cloud>, Instance) -> Fut,
        Fut: std::future::Future<Output = (bool, Option<bool>)> + Send + 'static,
    {
        let mut set = tokio::task::JoinSet::new();
        let mut task_of: HashMap<tokio::task::Id, String> = HashMap::new();
        for inst in instances {
            crate::metrics::inc(&self.metrics.status_checks_total);
            let id = inst.id.clone();
            let handle = set.spawn(check(Arc::clone(self), inst));
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
        // Records of instances no longer running go; a VM that came up during the round
        // (its first checks run on their own) keeps its record.
        let live: std::collections::HashSet<String> = self.vms_map().keys().cloned().collect();
        let mut map = self.status.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|id, _| results.contains_key(id) || live.contains(id));
    }

    /// Runs the checks forever.
    pub async fn run_prober(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.status_interval);
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
    use crate::db::instances::tests::sample;

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

    /// A panicking check of one instance leaves every instance's history in place, its own
    /// included.
    #[tokio::test]
    async fn a_panicking_check_costs_no_history() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        let insts: Vec<Instance> = [
            "i-0000000000000000a",
            "i-0000000000000000b",
            "i-0000000000000000c",
        ]
        .iter()
        .map(|id| sample(id, "111111111111"))
        .collect();
        cloud
            .record_round(insts.clone(), |_, _| async { (true, Some(true)) })
            .await;
        for i in &insts {
            assert_eq!(cloud.status_of(&i.id).system.status, Status::Ok);
        }
        cloud
            .record_round(insts.clone(), |_, inst| async move {
                assert_ne!(inst.id, "i-0000000000000000a", "a probe bug");
                (false, Some(true))
            })
            .await;
        let map = cloud.status.lock().unwrap().clone();
        assert_eq!(map.len(), 3, "{map:?}");
        assert_eq!(map["i-0000000000000000a"].system.status, Status::Ok);
        assert_eq!(map["i-0000000000000000b"].system.status, Status::Impaired);
        assert_eq!(map["i-0000000000000000c"].system.status, Status::Impaired);
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
