//! `--wait`: polls the matching Describe call every 500 ms until the resource settles,
//! and shows image and snapshot progress on stderr.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use strato_proto::v1::{
    DescribeImagesRequest, DescribeInstancesRequest, DescribeSnapshotsRequest, Image, Instance,
    Snapshot,
};
use tokio::time::Instant;

use crate::args::Wait;
use crate::conn::Conn;
use crate::error::CliError;

/// How often to ask the daemon again.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Width of the progress bar, in characters.
const BAR_WIDTH: usize = 30;

/// One look at a set of instances: settled, or not yet.
#[derive(Debug, PartialEq)]
enum Step<T> {
    Done(T),
    Pending,
}

/// Paces the polling of one wait and enforces its timeout.
struct Poller {
    deadline: Instant,
    timeout_secs: u64,
    what: String,
}

impl Poller {
    fn new(wait: Wait, what: String) -> Self {
        Self {
            deadline: Instant::now() + Duration::from_secs(wait.wait_timeout),
            timeout_secs: wait.wait_timeout,
            what,
        }
    }

    /// Sleeps until the next look, or fails once the timeout has passed.
    async fn tick(&self) -> Result<(), CliError> {
        if Instant::now() >= self.deadline {
            return Err(CliError::Wait(format!(
                "Timed out after {} s waiting for {}",
                self.timeout_secs, self.what
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        Ok(())
    }
}

/// Waits until every instance in `ids` is in state `target` (`running`, `stopped` or
/// `terminated`) and returns them as last described.
pub async fn instances(
    conn: &Conn,
    ids: &[String],
    target: &'static str,
    wait: Wait,
) -> Result<Vec<Instance>, CliError> {
    let poller = Poller::new(wait, format!("{} to be {target}", ids.join(", ")));
    loop {
        let request = DescribeInstancesRequest {
            instance_ids: ids.to_vec(),
            ..Default::default()
        };
        let response = conn
            .compute()
            .describe_instances(request)
            .await
            .map_err(conn.error("DescribeInstances"))?;
        if let Step::Done(instances) = instances_step(response.into_inner().instances, ids, target)?
        {
            return Ok(instances);
        }
        poller.tick().await?;
    }
}

/// Whether `instances` have all reached `target`, or one of them never will.
fn instances_step(
    mut instances: Vec<Instance>,
    ids: &[String],
    target: &str,
) -> Result<Step<Vec<Instance>>, CliError> {
    let mut settled = true;
    for id in ids {
        let Some(instance) = instances.iter().find(|i| &i.instance_id == id) else {
            // A terminated instance may already be gone from the listing.
            if target == "terminated" {
                continue;
            }
            return Err(CliError::Wait(format!(
                "{id} disappeared while waiting for {target}"
            )));
        };
        let state = instance.state.as_ref().map_or("", |s| s.name.as_str());
        if state == target {
            continue;
        }
        if is_dead_end(target, state) {
            return Err(CliError::Wait(format!(
                "{id} reached {state} while waiting for {target}{}",
                reason_suffix(&instance.state_reason)
            )));
        }
        settled = false;
    }
    if !settled {
        return Ok(Step::Pending);
    }
    // Report them in the order they were asked for.
    instances.sort_by_key(|i| ids.iter().position(|id| *id == i.instance_id));
    Ok(Step::Done(instances))
}

/// States from which an instance cannot reach `target` on its own (as the AWS waiters
/// judge it).
fn is_dead_end(target: &str, state: &str) -> bool {
    match target {
        "running" => matches!(state, "stopping" | "shutting-down" | "terminated"),
        "stopped" => matches!(state, "shutting-down" | "terminated"),
        _ => false,
    }
}

/// Waits until image `id` is available, showing its progress after `verb` ("Creating").
pub async fn image(conn: &Conn, id: &str, wait: Wait, verb: &str) -> Result<Image, CliError> {
    let poller = Poller::new(wait, format!("{id} to be available"));
    let mut bar = ProgressBar::stderr(format!("{verb} {id}"));
    loop {
        let request = DescribeImagesRequest {
            image_ids: vec![id.to_owned()],
            ..Default::default()
        };
        let response = conn
            .images()
            .describe_images(request)
            .await
            .map_err(conn.error("DescribeImages"))?;
        let Some(image) = response.into_inner().images.into_iter().next() else {
            return Err(CliError::Wait(format!(
                "{id} disappeared while waiting for it"
            )));
        };
        match image.state.as_str() {
            "available" => {
                bar.update(100);
                return Ok(image);
            }
            "failed" | "deregistered" => {
                return Err(CliError::Wait(format!(
                    "{id} is {}{}",
                    image.state,
                    reason_suffix(&image.state_reason)
                )));
            }
            _ => bar.update(image.progress),
        }
        poller.tick().await?;
    }
}

/// Waits until snapshot `id` is completed, showing its progress.
pub async fn snapshot(conn: &Conn, id: &str, wait: Wait) -> Result<Snapshot, CliError> {
    let poller = Poller::new(wait, format!("{id} to be completed"));
    let mut bar = ProgressBar::stderr(format!("Snapshotting {id}"));
    loop {
        let request = DescribeSnapshotsRequest {
            snapshot_ids: vec![id.to_owned()],
            ..Default::default()
        };
        let response = conn
            .volumes()
            .describe_snapshots(request)
            .await
            .map_err(conn.error("DescribeSnapshots"))?;
        let Some(snapshot) = response.into_inner().snapshots.into_iter().next() else {
            return Err(CliError::Wait(format!(
                "{id} disappeared while waiting for it"
            )));
        };
        match snapshot.state.as_str() {
            "completed" => {
                bar.update(100);
                return Ok(snapshot);
            }
            "error" => return Err(CliError::Wait(format!("{id} failed"))),
            _ => {
                if let Some(percent) = parse_percent(&snapshot.progress) {
                    bar.update(percent);
                }
            }
        }
        poller.tick().await?;
    }
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// Parses a snapshot's progress, e.g. `"42%"`.
fn parse_percent(progress: &str) -> Option<i32> {
    progress.trim().trim_end_matches('%').trim().parse().ok()
}

/// A one-line progress bar on a terminal; on anything else, one line per 10 % step so
/// that logs stay short.
struct ProgressBar<W: Write> {
    out: W,
    label: String,
    tty: bool,
    /// The last percentage written.
    shown: Option<i32>,
}

impl ProgressBar<io::Stderr> {
    fn stderr(label: String) -> Self {
        let out = io::stderr();
        let tty = out.is_terminal();
        Self::new(out, label, tty)
    }
}

impl<W: Write> ProgressBar<W> {
    fn new(out: W, label: String, tty: bool) -> Self {
        Self {
            out,
            label,
            tty,
            shown: None,
        }
    }

    fn update(&mut self, percent: i32) {
        let percent = percent.clamp(0, 100);
        let due = match self.shown {
            None => true,
            Some(shown) if self.tty => percent != shown,
            Some(shown) => percent >= shown + 10 || (percent == 100 && shown != 100),
        };
        if !due {
            return;
        }
        self.shown = Some(percent);
        // Progress is a courtesy: a closed stderr must not fail the command.
        let _ = if self.tty {
            let filled = usize::try_from(percent).unwrap_or(0) * BAR_WIDTH / 100;
            write!(
                self.out,
                "\r{} [{}{}] {percent:>3}%",
                self.label,
                "#".repeat(filled),
                ".".repeat(BAR_WIDTH - filled)
            )
            .and_then(|()| self.out.flush())
        } else {
            writeln!(self.out, "{}: {percent}%", self.label)
        };
    }
}

impl<W: Write> Drop for ProgressBar<W> {
    /// Ends the bar's line so that whatever comes next starts on a fresh one.
    fn drop(&mut self) {
        if self.tty && self.shown.is_some() {
            let _ = writeln!(self.out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_proto::v1::InstanceState;

    fn instance(id: &str, state: &str) -> Instance {
        Instance {
            instance_id: id.into(),
            state: Some(InstanceState {
                code: 0,
                name: state.into(),
            }),
            ..Default::default()
        }
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn instances_settle_when_all_reach_the_target() {
        let both = ids(&["i-1", "i-2"]);
        let step = instances_step(
            vec![instance("i-1", "running"), instance("i-2", "pending")],
            &both,
            "running",
        );
        assert!(matches!(step, Ok(Step::Pending)));
        let step = instances_step(
            vec![instance("i-2", "running"), instance("i-1", "running")],
            &both,
            "running",
        );
        let Ok(Step::Done(list)) = step else {
            panic!("not settled: {step:?}");
        };
        assert_eq!(list[0].instance_id, "i-1");
        assert_eq!(list[1].instance_id, "i-2");
    }

    #[test]
    fn instances_fail_on_dead_ends() {
        let mut dead = instance("i-1", "terminated");
        dead.state_reason = "Server.InternalError: VMM exited".into();
        let err = instances_step(vec![dead], &ids(&["i-1"]), "running").unwrap_err();
        assert_eq!(
            err.to_string(),
            "i-1 reached terminated while waiting for running: Server.InternalError: VMM exited"
        );
        assert_eq!(err.exit_code(), 255);
        assert!(instances_step(Vec::new(), &ids(&["i-1"]), "stopped").is_err());
        // Gone is as good as terminated.
        let step = instances_step(Vec::new(), &ids(&["i-1"]), "terminated");
        assert!(matches!(step, Ok(Step::Done(_))));
    }

    #[test]
    fn percent_strings() {
        assert_eq!(parse_percent("42%"), Some(42));
        assert_eq!(parse_percent(" 100 % "), Some(100));
        assert_eq!(parse_percent(""), None);
        assert_eq!(parse_percent("half"), None);
    }

    #[test]
    fn plain_progress_prints_every_ten_percent() {
        let mut out = Vec::new();
        {
            let mut bar = ProgressBar::new(&mut out, "Copying".into(), false);
            for p in [0, 3, 9, 10, 15, 19, 20, 55, 60, 100, 100] {
                bar.update(p);
            }
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Copying: 0%\nCopying: 10%\nCopying: 20%\nCopying: 55%\nCopying: 100%\n"
        );
    }

    #[test]
    fn terminal_progress_redraws_one_line() {
        let mut out = Vec::new();
        {
            let mut bar = ProgressBar::new(&mut out, "Copying".into(), true);
            bar.update(50);
            bar.update(50);
            bar.update(150);
        }
        let text = String::from_utf8(out).unwrap();
        let dots = ".".repeat(BAR_WIDTH / 2);
        let hashes = "#".repeat(BAR_WIDTH / 2);
        assert_eq!(
            text,
            format!(
                "\rCopying [{hashes}{dots}]  50%\rCopying [{}] 100%\n",
                "#".repeat(BAR_WIDTH)
            )
        );
    }
}
