//! What the daemon does when it starts: taps re-created, monitors that kept running adopted
//! again (checked against their PID, start time and control socket), monitors that ended
//! while it was down reported as such, and interrupted operations finished (image copies
//! resume from their partial files).

use std::sync::Arc;
use std::time::Duration;

use crate::cloud::Cloud;
use crate::lifecycle::State;
use crate::states::{AttachState, VolumeState};
use crate::supervisor::{self, Monitor, Process, VmmPaths};
use strato_vmm_api::control::VmState;

impl Cloud {
    /// Brings every instance back under supervision.
    pub async fn restore(self: &Arc<Self>) {
        self.sweep_storage();
        self.restore_storage();
        self.resume_copies();
        let instances = match self.db.instances(None) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "cannot list instances to restore");
                return;
            }
        };
        for inst in instances {
            if inst.state == State::Terminated {
                continue;
            }
            for eni in self.db.instance_enis(&inst.id).unwrap_or_default() {
                if let Err(e) = self.plug(&eni).await {
                    tracing::warn!(instance = %inst.id, error = %e.message, "cannot re-create tap");
                }
            }
            let paths = VmmPaths::in_dir(&self.instance_dir(&inst.id));
            let process = match (inst.vmm_pid, inst.vmm_start) {
                (Some(pid), Some(start)) => Some(Process { pid, start }),
                _ => None,
            };
            let adopted = match process {
                // The process is the one the daemon started (PID and start time): adopt it
                // whether or not it answers now. A busy or wedged monitor is the system
                // status check's to judge; killing it would end a guest that may be fine.
                Some(p) if supervisor::alive(p) => {
                    self.set_vm(&inst.id, p);
                    self.watch(&inst.id, p);
                    if inst.state == State::Running {
                        // Its checks' history went with the old daemon: tell again now.
                        self.boots.booted(&inst.id, p);
                    }
                    crate::metrics::inc(&self.metrics.vmm_adopted_total);
                    let monitor = Monitor::new(&paths, Duration::from_secs(2));
                    let reply = monitor.state().await;
                    let answers = reply.is_ok();
                    // Only the daemon pauses a VM, for a consistent copy; no copy outlives
                    // the daemon, so a VM still paused was left so by a crash mid-copy.
                    if matches!(&reply, Ok(r) if r.state == VmState::Paused)
                        && inst.state == State::Running
                    {
                        match monitor.resume().await {
                            Ok(_) => {
                                tracing::warn!(instance = %inst.id, "resumed a VM left paused by a crash during a copy")
                            }
                            Err(e) => {
                                tracing::warn!(instance = %inst.id, error = %e, "cannot resume a VM left paused")
                            }
                        }
                    }
                    if answers {
                        tracing::info!(instance = %inst.id, pid = p.pid, "monitor adopted");
                    } else {
                        tracing::warn!(instance = %inst.id, pid = p.pid, "monitor adopted; it does not answer (the status check will tell)");
                    }
                    true
                }
                _ => false,
            };
            // A monitor started just before a crash, its PID never recorded: it would run
            // beside the one a restarted boot starts, both on the same volumes.
            let keep = process.filter(|_| adopted).map(|p| p.pid);
            for pid in supervisor::strays(&paths.config, keep) {
                tracing::warn!(instance = %inst.id, pid, "killing an unrecorded monitor (started before a crash)");
                // SAFETY: kill takes a PID and a signal; the process runs this instance's
                // monitor configuration and is not the one the records name.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if inst.state == State::Running {
                self.settle_attachments(&inst.id, adopted).await;
            }
            let cloud = Arc::clone(self);
            let id = inst.id.clone();
            match inst.state {
                State::Running if !adopted && process.is_some() => {
                    let exit = supervisor::read_exit(&paths.exit_status);
                    tracing::warn!(instance = %id, reason = %exit.reason, "monitor ended while the daemon was down");
                    self.handle_unexpected_exit(
                        &id,
                        supervisor::Exit {
                            reason: format!("{} (while the daemon was down)", exit.reason),
                            ..exit
                        },
                        None,
                    )
                    .await;
                }
                State::Pending => {
                    // The boot was interrupted: start it over.
                    if adopted {
                        self.expect_exit(&id);
                        if let Some(vm) = self.vm(&id) {
                            supervisor::kill(vm.process);
                        }
                        self.forget_vm(&id);
                    }
                    tokio::spawn(async move { cloud.boot(&id, false).await });
                }
                State::Stopping => {
                    tokio::spawn(async move {
                        let lock = cloud.lock(&id);
                        let _g = lock.lock().await;
                        cloud.halt_vm(&id, true).await;
                        cloud.finish_stop(&id, None);
                    });
                }
                State::ShuttingDown => {
                    tokio::spawn(async move {
                        let lock = cloud.lock(&id);
                        let _g = lock.lock().await;
                        let reason = cloud
                            .db
                            .instance(&id)
                            .ok()
                            .flatten()
                            .map(|i| i.state_reason)
                            .unwrap_or_default();
                        cloud.release_locked(&id, &reason, false).await;
                    });
                }
                _ => {}
            }
        }
    }

    /// Hot attachments of a running instance that a crash cut short (`attaching` or `detaching`, the caller never told
    /// the outcome) are rolled to detached: the drive slot they name is emptied first when the
    /// monitor lives (emptying an empty slot is no error), so the volume is released only
    /// once no monitor has it open. A monitor that does not answer keeps the volume as it is.
    async fn settle_attachments(&self, id: &str, adopted: bool) {
        let paths = VmmPaths::in_dir(&self.instance_dir(id));
        for v in self.db.instance_volumes(id).unwrap_or_default() {
            // Launch-time volumes are `attaching` while they are still being created.
            if v.state == VolumeState::Creating
                || !matches!(
                    v.attach_state,
                    Some(AttachState::Attaching | AttachState::Detaching)
                )
            {
                continue;
            }
            if let (true, Some(slot)) = (adopted, &v.slot) {
                let monitor = Monitor::new(&paths, Duration::from_secs(5));
                if let Err(e) = monitor.detach_drive(slot).await {
                    tracing::warn!(instance = id, volume = %v.id, error = %e, "cannot finish an attachment cut short by a restart");
                    continue;
                }
            }
            tracing::warn!(instance = id, volume = %v.id, state = ?v.attach_state, "attachment cut short by a restart: detached");
            if let Err(e) = self.db.detach_volume(&v.id) {
                tracing::warn!(volume = %v.id, error = %e, "cannot detach");
            }
        }
    }

    /// Removes terminated instances once their retention is over, every minute.
    pub async fn run_reaper(self: Arc<Self>) {
        let mut tick = tokio::time::interval(
            Duration::from_secs(60).min(self.cfg.terminated_retention.max(Duration::from_secs(1))),
        );
        loop {
            tick.tick().await;
            let before = crate::db::now_s() - self.cfg.terminated_retention.as_secs() as i64;
            match self.db.purge_terminated(before) {
                Ok(ids) => {
                    for id in ids {
                        let _ = std::fs::remove_dir_all(self.instance_dir(&id));
                        self.status_forget(&id);
                        self.timelines.forget(&id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot purge terminated instances"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::instances::tests::sample;
    use crate::db::volumes::Volume;

    fn volume(id: &str, state: VolumeState, attach: AttachState, device: &str) -> Volume {
        Volume {
            id: id.into(),
            owner: "111111111111".into(),
            size_gib: 1,
            volume_type: "gp3".into(),
            az: "home-1a".into(),
            snapshot_id: String::new(),
            state,
            created: 0,
            instance_id: Some("i-0000000000000000a".into()),
            device: Some(device.into()),
            attach_state: Some(attach),
            delete_on_termination: false,
            slot: None,
            tags: Vec::new(),
        }
    }

    #[tokio::test]
    async fn attachments_cut_short_are_rolled_back_and_launch_volumes_kept() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        let mut i = sample("i-0000000000000000a", "111111111111");
        i.state = State::Running;
        cloud.db.insert_instance(&i).unwrap();
        let cut = [
            volume(
                "vol-0000000000000000a",
                VolumeState::InUse,
                AttachState::Attaching,
                "/dev/vdb",
            ),
            volume(
                "vol-0000000000000000b",
                VolumeState::InUse,
                AttachState::Detaching,
                "/dev/vdc",
            ),
        ];
        let kept = [
            volume(
                "vol-0000000000000000c",
                VolumeState::InUse,
                AttachState::Attached,
                "/dev/vda",
            ),
            // A launch-time volume not created yet: the boot that resumes makes it.
            volume(
                "vol-0000000000000000d",
                VolumeState::Creating,
                AttachState::Attaching,
                "/dev/vdd",
            ),
        ];
        for v in cut.iter().chain(&kept) {
            cloud.db.insert_volume(v).unwrap();
        }
        // No monitor answers (none was adopted): nothing can hold the slots open.
        cloud.settle_attachments("i-0000000000000000a", false).await;
        for v in &cut {
            let now = cloud.db.volume(&v.id).unwrap().unwrap();
            assert_eq!(now.state, VolumeState::Available, "{}", v.id);
            assert_eq!(now.instance_id, None);
        }
        for v in &kept {
            let now = cloud.db.volume(&v.id).unwrap().unwrap();
            assert_eq!(now.state, v.state, "{}", v.id);
            assert_eq!(now.attach_state, v.attach_state, "{}", v.id);
        }
    }
}
