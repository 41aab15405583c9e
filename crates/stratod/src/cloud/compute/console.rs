//! Instance consoles: GetConsoleOutput (the latest 64 KiB of the serial console's log, as
//! EC2 returns) and a follow of the log while the instance exists, for StreamConsole.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cloud::Cloud;
use crate::error::ApiResult;
use crate::lifecycle::State;

/// Bytes of console output GetConsoleOutput returns (EC2: the latest 64 KiB).
pub const CONSOLE_TAIL: u64 = 64 * 1024;

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
