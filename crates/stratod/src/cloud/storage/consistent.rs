//! Crash-consistent copies of the disks of a running VM: the monitor parks the vCPUs,
//! serves the block requests they had published and flushes every drive (its `pause`), the
//! files are cloned (a reflink where the file system can, a sparse copy otherwise), and the
//! VM resumes. What the copy holds is what the disk would hold after a power cut at the
//! moment of the pause: every write the guest had issued, nothing torn.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult};
use crate::lifecycle::State;
use crate::supervisor::{Monitor, VmmPaths};

/// How long the monitor may take to park the vCPUs and flush.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A VM held paused for a copy; [`Pause::resume`] lets it go on.
pub struct Pause {
    instance: String,
    monitor: Monitor,
    since: Instant,
}

impl Cloud {
    /// Pauses the VM of `instance` if it runs (the caller holds the instance lock): `None`
    /// when there is no VM to pause (stopped, or not this daemon's). A monitor that cannot
    /// pause is an error, and then nothing must be copied.
    pub async fn pause_for_copy(&self, instance: &str) -> ApiResult<Option<Pause>> {
        let running = self.db.instance(instance)?.map(|i| i.state) == Some(State::Running);
        if !running || self.vm(instance).is_none() {
            return Ok(None);
        }
        let paths = VmmPaths::in_dir(&self.instance_dir(instance));
        let monitor = Monitor::new(&paths, PAUSE_TIMEOUT);
        let since = Instant::now();
        if let Err(e) = monitor.pause().await {
            // It may have parked the vCPUs before failing (a drive that would not flush).
            let _ = monitor.resume().await;
            return Err(ApiError::internal(format!(
                "Cannot pause {instance} for a consistent copy: {}",
                crate::cloud::compute::launch::chain(&e)
            )));
        }
        Ok(Some(Pause {
            instance: instance.to_string(),
            monitor,
            since,
        }))
    }
}

impl Pause {
    /// Resumes the VM; how long it was paused.
    pub async fn resume(self, cloud: &Cloud) -> Duration {
        if let Err(e) = self.monitor.resume().await {
            tracing::error!(instance = %self.instance, error = %crate::cloud::compute::launch::chain(&e), "cannot resume after a consistent copy");
        }
        let paused = self.since.elapsed();
        cloud
            .metrics
            .consistent_pauses_total
            .fetch_add(1, Ordering::Relaxed);
        cloud
            .metrics
            .consistent_pause_ms_total
            .fetch_add(paused.as_millis() as u64, Ordering::Relaxed);
        tracing::info!(instance = %self.instance, paused_ms = paused.as_millis() as u64, "paused for a consistent copy");
        paused
    }
}
