//! What the daemon does when it starts: taps re-created, monitors that kept running adopted
//! again (checked against their PID, start time and control socket), monitors that ended
//! while it was down reported as such, and interrupted operations finished (image copies
//! resume from their partial files).

use std::sync::Arc;
use std::time::Duration;

use crate::cloud::Cloud;
use crate::lifecycle::State;
use crate::supervisor::{self, Monitor, Process, VmmPaths};

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
                    let answers = Monitor::new(&paths, Duration::from_secs(2))
                        .state()
                        .await
                        .is_ok();
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
