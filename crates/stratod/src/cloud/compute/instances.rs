//! Stop, start, reboot and terminate, and what happens when a monitor exits on its own.
//! Each request checks the transition table and records the new state at once; the work
//! runs in a task holding the instance's operation lock.

use std::sync::Arc;
use std::time::Duration;

use crate::cloud::Cloud;
use crate::db::instances::Instance;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::lifecycle::{transition, verb, Event, Outcome, State};
use crate::supervisor::{self, Exit, Monitor, Process, VmmPaths};
use strato_vmm_api::exit::ExitStatus;

/// ModifyInstanceAttribute's changes; `None` or empty leaves an attribute as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceAttributes {
    /// DisableApiTermination.
    pub disable_api_termination: Option<bool>,
    /// InstanceInitiatedShutdownBehavior: `stop` or `terminate`.
    pub shutdown_behavior: Option<String>,
    /// The security groups of the primary interface.
    pub groups: Vec<String>,
    /// EnaSupport: only while stopped, as in EC2 (the device is chosen at start).
    pub ena_support: Option<bool>,
}

/// One instance's state change, as the API reports it.
#[derive(Debug, Clone)]
pub struct Change {
    /// Instance.
    pub id: String,
    /// Before.
    pub previous: State,
    /// After.
    pub current: State,
}

/// The least time between two boots of a guest that keeps resetting itself.
const MIN_GUEST_REBOOT_INTERVAL: Duration = Duration::from_secs(1);

/// Why a guest-initiated stop happened.
const GUEST_SHUTDOWN_REASON: &str = "Client.InstanceInitiatedShutdown: Instance initiated shutdown";

impl Cloud {
    /// Checks every ID first, so that one bad ID refuses the whole request, as EC2 does.
    fn owned_all(&self, account: &str, ids: &[String]) -> ApiResult<Vec<Instance>> {
        if ids.is_empty() {
            return Err(ApiError::missing("InstanceId"));
        }
        ids.iter()
            .map(|id| self.owned_instance(account, id))
            .collect()
    }

    /// Applies a caller's event to each instance: the table decides, `IncorrectInstanceState`
    /// for an illegal one (checked for all before any changes).
    fn apply_all(
        &self,
        instances: &[Instance],
        event: Event,
        reason: &str,
    ) -> ApiResult<Vec<(Change, bool)>> {
        for i in instances {
            if transition(i.state, event) == Outcome::Illegal {
                return Err(ApiError::incorrect_state(
                    &i.id,
                    i.state.name(),
                    verb(event),
                ));
            }
        }
        let mut out = Vec::new();
        for i in instances {
            match transition(i.state, event) {
                Outcome::To(to) => {
                    let moved = to == i.state
                        || self.advance_from(&i.id, i.state, event, reason)?.is_some();
                    if !moved {
                        // Lost a race with another request: report what is there now.
                        let now = self.db.instance(&i.id)?.map(|n| n.state).unwrap_or(i.state);
                        out.push((
                            Change {
                                id: i.id.clone(),
                                previous: i.state,
                                current: now,
                            },
                            false,
                        ));
                    } else {
                        out.push((
                            Change {
                                id: i.id.clone(),
                                previous: i.state,
                                current: to,
                            },
                            true,
                        ));
                    }
                }
                _ => out.push((
                    Change {
                        id: i.id.clone(),
                        previous: i.state,
                        current: i.state,
                    },
                    false,
                )),
            }
        }
        Ok(out)
    }

    /// StopInstances: graceful through Ctrl-Alt-Del, forced after the stop timeout or at
    /// once with `force`.
    pub fn stop_instances(
        self: &Arc<Self>,
        account: &str,
        ids: &[String],
        force: bool,
    ) -> ApiResult<Vec<Change>> {
        let instances = self.owned_all(account, ids)?;
        let reason = format!(
            "User initiated ({})",
            crate::time::rfc3339(crate::db::now_s())
        );
        let changes = self.apply_all(&instances, Event::Stop, &reason)?;
        for (c, moved) in &changes {
            if *moved {
                let cloud = Arc::clone(self);
                let id = c.id.clone();
                tokio::spawn(async move { cloud.stop_task(&id, force).await });
            } else if force && c.current == State::Stopping {
                // A graceful stop is waiting for the guest: cut it short.
                if let Some(vm) = self.vm(&c.id) {
                    self.expect_exit(&c.id);
                    supervisor::kill(vm.process);
                }
            }
        }
        Ok(changes.into_iter().map(|c| c.0).collect())
    }

    /// StartInstances.
    pub fn start_instances(
        self: &Arc<Self>,
        account: &str,
        ids: &[String],
    ) -> ApiResult<Vec<Change>> {
        let instances = self.owned_all(account, ids)?;
        self.check_start_capacity(&instances)?;
        // Instances of placement groups get their racks before they turn pending, under the
        // placement lock, so a full spread group refuses the start with nothing changed.
        let placement = self.placement_lock();
        self.place_for_start(&instances)?;
        let changes = self.apply_all(&instances, Event::Start, "")?;
        drop(placement);
        for (c, moved) in &changes {
            if *moved {
                let cloud = Arc::clone(self);
                let id = c.id.clone();
                tokio::spawn(async move { cloud.boot(&id, false).await });
            }
        }
        Ok(changes.into_iter().map(|c| c.0).collect())
    }

    /// RebootInstances: the guest is shut down and booted again on a fresh monitor; the
    /// instance stays `running` and keeps its billing period.
    pub fn reboot_instances(self: &Arc<Self>, account: &str, ids: &[String]) -> ApiResult<()> {
        let instances = self.owned_all(account, ids)?;
        self.apply_all(&instances, Event::Reboot, "")?;
        for i in instances {
            let cloud = Arc::clone(self);
            tokio::spawn(async move {
                let lock = cloud.lock(&i.id);
                let _g = lock.lock().await;
                if let Err(e) = cloud.restart_locked(&i.id).await {
                    tracing::warn!(instance = %i.id, error = %e, "reboot failed");
                }
            });
        }
        Ok(())
    }

    /// TerminateInstances: final and idempotent; protected instances are refused.
    pub fn terminate_instances(
        self: &Arc<Self>,
        account: &str,
        ids: &[String],
    ) -> ApiResult<Vec<Change>> {
        let instances = self.owned_all(account, ids)?;
        if let Some(p) = instances
            .iter()
            .find(|i| i.disable_api_termination && i.state != State::Terminated)
        {
            return Err(ApiError::new(
                ErrorCode::OperationNotPermitted,
                format!(
                    "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                    p.id
                ),
            ));
        }
        let reason = format!(
            "User initiated ({})",
            crate::time::rfc3339(crate::db::now_s())
        );
        let changes = self.apply_all(&instances, Event::Terminate, &reason)?;
        for (c, moved) in &changes {
            if *moved {
                // A running guest is asked to shut down first, as StopInstances asks; a boot
                // or a graceful stop under way is cut short.
                let graceful = c.previous == State::Running;
                if !graceful {
                    if let Some(vm) = self.vm(&c.id) {
                        self.expect_exit(&c.id);
                        supervisor::kill(vm.process);
                    }
                }
                let cloud = Arc::clone(self);
                let id = c.id.clone();
                let reason = reason.clone();
                tokio::spawn(async move {
                    let lock = cloud.lock(&id);
                    let _g = lock.lock().await;
                    cloud.release_locked(&id, &reason, graceful).await;
                });
            }
        }
        Ok(changes.into_iter().map(|c| c.0).collect())
    }

    /// ModifyInstanceAttribute: the groups are checked first, so that a bad group changes
    /// nothing; then the row's attributes; then the groups of the primary interface.
    pub async fn modify_instance_attribute(
        &self,
        account: &str,
        id: &str,
        change: &InstanceAttributes,
    ) -> ApiResult<()> {
        if !change.groups.is_empty() {
            self.plan_instance_groups(account, id, &change.groups)?;
        }
        if let Some(ena) = change.ena_support {
            // As EC2: the device is chosen when the monitor starts, so only while stopped.
            let inst = self.owned_instance(account, id)?;
            if !self.db.set_stopped_instance_ena_support(id, ena)? {
                let state = self.db.instance(id)?.map_or(inst.state, |i| i.state);
                return Err(ApiError::new(
                    ErrorCode::IncorrectInstanceState,
                    format!(
                        "The instance '{id}' is not in the 'stopped' state (it is {}): \
                         EnaSupport can be modified only while it is stopped.",
                        state.name()
                    ),
                ));
            }
        }
        self.modify_instance(
            account,
            id,
            change.disable_api_termination,
            change.shutdown_behavior.as_deref(),
        )?;
        if !change.groups.is_empty() {
            self.modify_instance_groups(account, id, &change.groups)
                .await?;
        }
        Ok(())
    }

    /// ModifyInstanceAttribute for the attributes kept in the instance row.
    pub fn modify_instance(
        &self,
        account: &str,
        id: &str,
        disable_api_termination: Option<bool>,
        shutdown_behavior: Option<&str>,
    ) -> ApiResult<()> {
        let inst = self.owned_instance(account, id)?;
        if inst.state == State::Terminated {
            return Err(ApiError::incorrect_state(id, inst.state.name(), "modified"));
        }
        if let Some(b) = shutdown_behavior {
            if b != "stop" && b != "terminate" {
                return Err(ApiError::invalid(
                    "InstanceInitiatedShutdownBehavior must be stop or terminate.",
                ));
            }
        }
        self.db
            .set_instance_attributes(id, disable_api_termination, shutdown_behavior)?;
        Ok(())
    }

    async fn stop_task(self: Arc<Self>, id: &str, force: bool) {
        let lock = self.lock(id);
        let _g = lock.lock().await;
        self.halt_vm(id, force).await;
        self.finish_stop(id, None);
    }

    /// Brings the monitor of an instance down. Unless `force`, the guest is asked first, as
    /// EC2 asks its guests: the ACPI power button, then Ctrl-Alt-Del once half the stop
    /// timeout has passed, and at the stop timeout the monitor's stop, then SIGKILL. A guest
    /// that resets instead of powering off is down all the same: its monitor ends either way.
    pub async fn halt_vm(&self, id: &str, force: bool) -> Option<Exit> {
        let vm = self.vm(id)?;
        self.expect_exit(id);
        let paths = VmmPaths::in_dir(&self.instance_dir(id));
        let exit = supervisor::wait_exit(vm.process, &paths.exit_status);
        tokio::pin!(exit);
        let short = Duration::from_secs(2);
        let monitor = Monitor::new(&paths, short);
        if !force {
            let start = tokio::time::Instant::now();
            let mut asked = false;
            match monitor.power_button().await {
                Ok(()) => {
                    asked = true;
                    let grace = start + self.cfg.stop_timeout / 2;
                    if let Ok(e) = tokio::time::timeout_at(grace, &mut exit).await {
                        self.forget_vm(id);
                        return Some(e);
                    }
                }
                // A paused VM, or a monitor without ACPI: on to the next way of asking.
                Err(e) => tracing::debug!(instance = id, error = %e, "power button not pressed"),
            }
            match monitor.ctrl_alt_del().await {
                Ok(()) => asked = true,
                Err(e) => tracing::debug!(instance = id, error = %e, "Ctrl-Alt-Del not pressed"),
            }
            if asked {
                let deadline = start + self.cfg.stop_timeout;
                if let Ok(e) = tokio::time::timeout_at(deadline, &mut exit).await {
                    self.forget_vm(id);
                    return Some(e);
                }
                tracing::info!(instance = id, "guest did not power off in time; forcing");
            }
        }
        let _ = monitor.stop().await;
        let e = match tokio::time::timeout(short, &mut exit).await {
            Ok(e) => e,
            Err(_) => {
                supervisor::kill(vm.process);
                tokio::time::timeout(Duration::from_secs(10), &mut exit)
                    .await
                    .unwrap_or(Exit {
                        status: None,
                        reason: "killed".into(),
                    })
            }
        };
        self.forget_vm(id);
        Some(e)
    }

    /// After the monitor is gone: wipe the instance store, close the billing period,
    /// record `stopped`.
    pub fn finish_stop(&self, id: &str, reason: Option<&str>) {
        if let Ok(Some(inst)) = self.db.instance(id) {
            for s in &inst.instance_store {
                let path = self
                    .instance_dir(id)
                    .join(format!("{}.img", s.virtual_name));
                if let Err(e) = crate::cloud::remove_file(&path) {
                    tracing::warn!(instance = id, error = %e, "cannot wipe the instance store");
                }
            }
            for v in self.db.instance_volumes(id).unwrap_or_default() {
                let _ = self.db.set_volume_slot(&v.id, None);
            }
            self.release_public_ips(id, false);
            let reason = reason.map(str::to_string).unwrap_or(inst.state_reason);
            let _ = self.db.close_period(id, now_ms());
            let _ = self.db.set_vmm(id, None, None);
            if let Err(e) = self.advance_from(id, State::Stopping, Event::Halted, &reason) {
                tracing::error!(instance = id, error = %e, "cannot record stopped");
            }
        }
        self.status_forget(id);
    }

    /// Shuts the guest down and boots it on a fresh monitor (reboot, create-image).
    pub async fn restart_locked(self: &Arc<Self>, id: &str) -> ApiResult<()> {
        self.timelines.begin(id);
        self.halt_vm(id, false).await;
        let inst = self
            .db
            .instance(id)?
            .ok_or_else(|| crate::ids::Kind::Instance.not_found(id))?;
        if inst.state != State::Running {
            return Ok(());
        }
        self.status_forget(id);
        self.spawn_vmm(&inst).await
    }

    /// Releases everything of an instance that is shutting down and records `terminated`:
    /// the monitor (asking the guest to shut down first when `graceful`), DeleteOnTermination
    /// volumes and ENIs with their taps (other volumes and ENIs are detached), the instance
    /// store. Runs under the instance's lock.
    pub async fn release_locked(&self, id: &str, reason: &str, graceful: bool) {
        self.halt_vm(id, !graceful).await;
        for v in self.db.instance_volumes(id).unwrap_or_default() {
            if v.delete_on_termination {
                if let Err(e) = crate::cloud::remove_file(&self.volume_path(&v.id)) {
                    tracing::warn!(volume = %v.id, error = %e, "cannot delete volume file");
                }
                let _ = self.db.close_period(&v.id, now_ms());
                if self.db.delete_volume_row(&v.id).is_ok() {
                    self.unindex_volume_later(&v.id);
                }
            } else {
                let _ = self.db.detach_volume(&v.id);
            }
        }
        self.release_public_ips(id, true);
        for eni in self.db.instance_enis(id).unwrap_or_default() {
            if eni.delete_on_termination {
                if let Err(e) = self.release_eni(&eni).await {
                    tracing::warn!(eni = %eni.id, error = %e.message, "cannot release ENI");
                }
            } else {
                // Attached after launch (or kept by ModifyNetworkInterfaceAttribute): the
                // interface outlives the instance, available again.
                self.unplug(&eni).await;
                if let Err(e) = self.db.detach_eni(&eni.id, &[]) {
                    tracing::warn!(eni = %eni.id, error = %e, "cannot detach ENI");
                }
            }
        }
        // EC2 disassociates a terminated instance's profile: its credentials die now.
        if let Err(e) = self.db.delete_iam_association(id) {
            tracing::warn!(instance = id, error = %e, "cannot remove the profile association");
        }
        let dir = self.instance_dir(id);
        // Keep the console log (GetConsoleOutput works on terminated instances while they
        // are listed); the rest goes.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name() != "console.log" {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let _ = self.db.close_period(id, now_ms());
        let _ = self.db.set_vmm(id, None, None);
        if let Err(e) = self.advance_from(id, State::ShuttingDown, Event::Released, reason) {
            tracing::error!(instance = id, error = %e, "cannot record terminated");
        }
        self.status_forget(id);
    }

    /// Watches a monitor until it exits.
    pub fn watch(self: &Arc<Self>, id: &str, process: Process) {
        let cloud = Arc::clone(self);
        let id = id.to_string();
        tokio::spawn(async move {
            let paths = VmmPaths::in_dir(&cloud.instance_dir(&id));
            let exit = supervisor::wait_exit(process, &paths.exit_status).await;
            cloud.on_exit(&id, process, exit).await;
        });
    }

    /// A monitor exited. If the daemon asked, the operation that asked handles it; else the
    /// guest powered off (shutdown behavior decides), reset itself (it boots again) or the
    /// monitor died (the instance stays `running` with an impaired system status, as when an
    /// EC2 host fails).
    async fn on_exit(self: &Arc<Self>, id: &str, process: Process, exit: Exit) {
        match self.vm(id) {
            Some(vm) if vm.process == process && !vm.expected_exit => {}
            _ => return,
        }
        crate::metrics::inc(&self.metrics.vmm_unexpected_exits_total);
        let lock = self.lock(id);
        let _g = lock.lock().await;
        // Re-check under the lock: an operation may have begun meanwhile.
        let ran_for = match self.vm(id) {
            Some(vm) if vm.process == process && !vm.expected_exit => vm.since.elapsed(),
            _ => return,
        };
        self.forget_vm(id);
        self.handle_unexpected_exit(id, exit, Some(ran_for)).await;
    }

    /// Applies an exit nobody asked for (also for monitors that ended while the daemon was
    /// down); `ran_for` is how long the monitor ran, when known. Runs under the instance's
    /// lock.
    pub async fn handle_unexpected_exit(
        self: &Arc<Self>,
        id: &str,
        exit: Exit,
        ran_for: Option<Duration>,
    ) {
        let Ok(Some(inst)) = self.db.instance(id) else {
            return;
        };
        if inst.state != State::Running {
            return;
        }
        let _ = self.db.set_vmm(id, None, None);
        match exit.status {
            Some(ExitStatus::PowerOff) => self.guest_powered_off(&inst).await,
            Some(ExitStatus::Reset) => self.guest_reset(id, ran_for).await,
            _ => {
                let reason = format!("Server.InternalError: the monitor exited: {}", exit.reason);
                tracing::warn!(instance = id, reason = %reason, "monitor died");
                let _ = self.db.set_state_reason(id, &reason);
            }
        }
    }

    /// The guest powered off: `stopped` or `terminated` as its shutdown behavior says.
    async fn guest_powered_off(&self, inst: &Instance) {
        let id = inst.id.as_str();
        tracing::info!(instance = id, behavior = %inst.shutdown_behavior, "guest powered off");
        if inst.shutdown_behavior == "terminate" {
            if let Ok(Some(_)) = self.advance_from(
                id,
                State::Running,
                Event::GuestTerminated,
                GUEST_SHUTDOWN_REASON,
            ) {
                self.release_locked(id, GUEST_SHUTDOWN_REASON, false).await;
            }
        } else if let Ok(Some(_)) = self.advance_from(
            id,
            State::Running,
            Event::GuestStopped,
            GUEST_SHUTDOWN_REASON,
        ) {
            self.finish_stop(id, Some(GUEST_SHUTDOWN_REASON));
        }
    }

    /// The guest reset itself: as RebootInstances, a fresh monitor on the same volumes,
    /// interfaces and addresses, the instance `running` all along in the same billing
    /// period. A guest that resets again at once waits out [`MIN_GUEST_REBOOT_INTERVAL`], so
    /// that a reboot loop costs the host at most one monitor start (and log line) a second.
    async fn guest_reset(self: &Arc<Self>, id: &str, ran_for: Option<Duration>) {
        crate::metrics::inc(&self.metrics.guest_reboots_total);
        tracing::info!(instance = id, "guest reset itself; booting it again");
        if let Some(wait) = ran_for.and_then(|r| MIN_GUEST_REBOOT_INTERVAL.checked_sub(r)) {
            tokio::time::sleep(wait).await;
        }
        // A stop or terminate may have come meanwhile: its task, queued on the lock, finds no
        // monitor and finishes.
        let inst = match self.db.instance(id) {
            Ok(Some(i))
                if transition(i.state, Event::GuestRebooted) == Outcome::To(State::Running) =>
            {
                i
            }
            _ => return,
        };
        self.status_forget(id);
        if let Err(e) = self.spawn_vmm(&inst).await {
            let reason = format!(
                "Server.InternalError: the guest reset and its monitor did not start again: {}",
                e.message
            );
            tracing::warn!(instance = id, reason = %reason, "reboot after a guest reset failed");
            let _ = self.db.set_state_reason(id, &reason);
        }
    }
}
