//! Status checks as EC2 defines them, run every interval against each running instance.
//!
//! - System status (the host's side): the monitor process is alive and answers on its
//!   control socket, the VM is not paused and every vCPU thread is alive, the ENI's tap is up
//!   with carrier, and every volume file is present.
//! - Instance status (the guest's side): an ARP request for the instance's private IP sent
//!   into its ENI gets an answer, as EC2's reachability check does.
//!
//! A check is `initializing` until it first passes (for the instance check, at most for the
//! grace period after boot), then `ok` or `impaired` with the time it first failed.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::cloud::Cloud;
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
    }

    /// The system check of one instance; false with the first failing part logged.
    async fn system_check(&self, inst: &crate::db::instances::Instance) -> bool {
        let Some(vm) = self.vm(&inst.id) else {
            return false;
        };
        if !supervisor::alive(vm.process) {
            return false;
        }
        let paths = VmmPaths::in_dir(&self.instance_dir(&inst.id));
        match Monitor::new(&paths, Duration::from_secs(1)).state().await {
            Ok(s) if s.state == VmState::Running => {}
            _ => return false,
        }
        if supervisor::vcpu_threads(vm.process) != inst.vcpus as usize {
            return false;
        }
        for eni in self.db.instance_enis(&inst.id).unwrap_or_default() {
            let tap = eni.tap.clone();
            let up = crate::cloud::network::blocking(move || strato_net::link::link_status(&tap))
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

    /// The instance check: does the guest answer ARP for its private IP on its ENI?
    async fn instance_check(&self, inst: &crate::db::instances::Instance) -> Option<bool> {
        let eni = self.db.instance_enis(&inst.id).ok()?.into_iter().next()?;
        let subnet = self.db.subnet(&eni.subnet_id).ok()??;
        let (gw, _) = crate::cloud::network::gateway(&subnet)?;
        let target: Ipv4Addr = eni.private_ip.parse().ok()?;
        let bridge = subnet.bridge.clone();
        let src_mac = crate::cloud::network::blocking(move || strato_net::link::link_mac(&bridge))
            .await
            .ok()??;
        let timeout = (self.cfg.status_interval / 2).min(Duration::from_secs(1));
        let tap = eni.tap.clone();
        // Three tries inside the window: one lost frame is not an outage.
        for _ in 0..3 {
            let tap = tap.clone();
            let r = crate::cloud::network::blocking(move || {
                strato_net::arp::arp_probe(&tap, src_mac, gw, target, timeout / 3)
            })
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
        let Ok(instances) = self.db.instances(None) else {
            return;
        };
        let mut set = tokio::task::JoinSet::new();
        for inst in instances.into_iter().filter(|i| i.state == State::Running) {
            let cloud = Arc::clone(self);
            set.spawn(async move {
                crate::metrics::inc(&cloud.metrics.status_checks_total);
                let sys = cloud.system_check(&inst).await;
                let reach = if sys || cloud.vm(&inst.id).is_some() {
                    cloud.instance_check(&inst).await
                } else {
                    Some(false)
                };
                (inst.id, sys, reach)
            });
        }
        let now = now_s();
        let grace = self.cfg.status_grace.as_secs_f64();
        let mut results: HashMap<String, Record> = HashMap::new();
        while let Some(Ok((id, sys, reach))) = set.join_next().await {
            let mut rec = self.status_of(&id);
            let in_grace = (now - rec.since) as f64 <= grace;
            rec.system.update(sys, false, now);
            match reach {
                Some(passed) => rec.instance.update(passed, in_grace, now),
                None => rec.instance.status = Status::InsufficientData,
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
        let mut map = self.status.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|id, _| results.contains_key(id));
        map.extend(results);
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
