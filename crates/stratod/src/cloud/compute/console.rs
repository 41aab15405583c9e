//! Instance consoles: GetConsoleOutput (the latest 64 KiB of the serial console's log, as
//! EC2 returns), a follow of the log while the instance exists, for StreamConsole, and
//! input for the guest's serial line (bytes and BREAK), for SendConsoleInput.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::lifecycle::State;
use crate::supervisor::{Monitor, SupervisorError, VmmPaths};

/// Bytes of console output GetConsoleOutput returns (EC2: the latest 64 KiB).
pub const CONSOLE_TAIL: u64 = 64 * 1024;

/// Most bytes one SendConsoleInput carries (as base64 they stay well inside the monitor's
/// request line).
pub const MAX_CONSOLE_INPUT: usize = 16 * 1024;

/// How long the daemon waits for the monitor to take console input.
const INPUT_TIMEOUT: Duration = Duration::from_secs(2);

/// What SendConsoleInput delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputDelivered {
    /// Bytes queued for the guest, from the start of the input; the rest did not fit the
    /// monitor's input queue (the guest has not read it yet) and can be sent again.
    pub accepted: u64,
    /// Whether the BREAK asked for was queued: only once all the input was, since it goes
    /// behind it.
    pub break_sent: bool,
}

/// GetConsoleOutput's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleOutput {
    /// The instance.
    pub instance_id: String,
    /// When it was read (Unix seconds).
    pub timestamp: i64,
    /// The latest bytes of the log.
    pub output: Vec<u8>,
}

/// The last `CONSOLE_TAIL` bytes of a console log.
pub fn console_tail(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(CONSOLE_TAIL)))?;
    let mut out = Vec::new();
    f.take(CONSOLE_TAIL).read_to_end(&mut out)?;
    Ok(out)
}

/// Up to 64 KiB of a file from `pos`.
fn read_from(path: &Path, pos: u64) -> Vec<u8> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(pos)).is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let _ = f.take(CONSOLE_TAIL).read_to_end(&mut out);
    out
}

impl Cloud {
    /// GetConsoleOutput.
    pub fn console_output(&self, account: &str, instance_id: &str) -> ApiResult<ConsoleOutput> {
        let inst = self.owned_instance(account, instance_id)?;
        let path = self.instance_dir(&inst.id).join("console.log");
        let output =
            console_tail(&path).map_err(|e| crate::cloud::host_io("Cannot read the console", e))?;
        Ok(ConsoleOutput {
            instance_id: inst.id,
            timestamp: crate::db::now_s(),
            output,
        })
    }

    /// StreamConsole: the log from its latest 64 KiB on, chunk by chunk as it grows, until
    /// the instance is terminated or the receiver goes away.
    pub fn follow_console(
        self: &Arc<Self>,
        account: &str,
        instance_id: &str,
    ) -> ApiResult<tokio::sync::mpsc::Receiver<Vec<u8>>> {
        let inst = self.owned_instance(account, instance_id)?;
        let path = self.instance_dir(&inst.id).join("console.log");
        let cloud = Arc::clone(self);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut pos = std::fs::metadata(&path)
                .map(|m| m.len())
                .unwrap_or(0)
                .saturating_sub(CONSOLE_TAIL);
            loop {
                let chunk = read_from(&path, pos);
                if !chunk.is_empty() {
                    pos += chunk.len() as u64;
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                    continue;
                }
                // Follow until the instance is gone for good.
                let state = cloud.db.instance(&inst.id).ok().flatten().map(|i| i.state);
                if matches!(state, None | Some(State::Terminated)) || tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(rx)
    }
}

impl Cloud {
    /// SendConsoleInput: `data` onto the serial line of a running instance of `account`,
    /// then a BREAK if `send_break`. Input that does not fit the monitor's queue is not
    /// an error: the answer says how much went in.
    pub async fn console_input(
        &self,
        account: &str,
        instance_id: &str,
        data: &[u8],
        send_break: bool,
    ) -> ApiResult<InputDelivered> {
        let inst = self.owned_instance(account, instance_id)?;
        if data.len() > MAX_CONSOLE_INPUT {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "Console input of {} bytes is longer than {MAX_CONSOLE_INPUT} bytes.",
                    data.len()
                ),
            ));
        }
        let not_running = || ApiError::incorrect_state(&inst.id, inst.state.name(), "typed on");
        if inst.state != State::Running || self.vm(&inst.id).is_none() {
            return Err(not_running());
        }
        let monitor = Monitor::new(
            &VmmPaths::in_dir(&self.instance_dir(&inst.id)),
            INPUT_TIMEOUT,
        );
        // A monitor that went away meanwhile (a stop or reboot under way) is a state the
        // caller can wait out, not a fault of the host.
        let failed = |e: SupervisorError| match self.vm(&inst.id) {
            Some(vm) if crate::supervisor::alive(vm.process) => ApiError::internal(format!(
                "The monitor did not take the console input: {}",
                crate::cloud::compute::launch::chain(&e)
            )),
            _ => not_running(),
        };
        let accepted = if data.is_empty() {
            0
        } else {
            monitor.console_input(data).await.map_err(failed)?
        };
        let mut break_sent = false;
        if send_break && accepted == data.len() as u64 {
            break_sent = match monitor.console_break().await {
                Ok(()) => true,
                // Refused only while the input queue is full: sent again later.
                Err(SupervisorError::Refused { .. }) => false,
                Err(e) => return Err(failed(e)),
            };
        }
        Ok(InputDelivered {
            accepted,
            break_sent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_tail_keeps_the_latest_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        assert!(console_tail(&p).unwrap().is_empty());
        let mut data = vec![b'a'; 70 * 1024];
        data.extend_from_slice(b"END");
        std::fs::write(&p, &data).unwrap();
        let t = console_tail(&p).unwrap();
        assert_eq!(t.len() as u64, CONSOLE_TAIL);
        assert!(t.ends_with(b"END"));
    }
}
