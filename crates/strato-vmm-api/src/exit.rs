//! How a monitor ended: its process exit status, and the exit record it writes before it
//! exits (a supervisor that adopted the process after a restart is not its parent and
//! cannot read the status any other way).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The monitor's process exit status (the README's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The guest powered off (ACPI S5, KVM shutdown event).
    PowerOff,
    /// The monitor failed (cannot open the kernel, KVM error).
    Failed,
    /// The configuration was refused.
    BadConfig,
    /// The guest crashed (triple fault, an emulation failure no template handles).
    Crashed,
    /// Stopped from outside: control request `stop`, SIGTERM or SIGINT.
    Stopped,
    /// The guest reset itself (i8042 reset line, KVM reset event): a reboot.
    Reset,
}

/// Every status, in code order.
pub const ALL_EXIT_STATUSES: [ExitStatus; 6] = [
    ExitStatus::PowerOff,
    ExitStatus::Failed,
    ExitStatus::BadConfig,
    ExitStatus::Crashed,
    ExitStatus::Stopped,
    ExitStatus::Reset,
];

impl ExitStatus {
    /// The process exit status.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::PowerOff => 0,
            ExitStatus::Failed => 1,
            ExitStatus::BadConfig => 2,
            ExitStatus::Crashed => 3,
            ExitStatus::Stopped => 4,
            ExitStatus::Reset => 5,
        }
    }

    /// The status with this code, if it is one.
    pub fn from_code(code: i32) -> Option<ExitStatus> {
        ALL_EXIT_STATUSES.into_iter().find(|s| s.code() == code)
    }
}

/// The exit record: `{"code": N, "reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The process exit status.
    pub code: i32,
    /// Why, for a person.
    pub reason: String,
}

impl ExitRecord {
    /// A record for `status`.
    pub fn new(status: ExitStatus, reason: impl Into<String>) -> Self {
        Self {
            code: status.code(),
            reason: reason.into(),
        }
    }

    /// The status the code stands for.
    pub fn status(&self) -> Option<ExitStatus> {
        ExitStatus::from_code(self.code)
    }

    /// Writes the record through a temporary name, so that a reader never sees half of it.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, path)
    }

    /// Writes the record over an open file, in one write at its start: a jailed monitor
    /// holds its record as a descriptor and cannot rename. Readers look only once the
    /// process is gone.
    pub fn write_to(&self, file: &std::fs::File) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        file.set_len(0)?;
        file.write_all_at(&body, 0)
    }

    /// Reads a record; `None` if there is none or it does not parse.
    pub fn read(path: &Path) -> Option<ExitRecord> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones_and_distinct() {
        let codes: Vec<i32> = ALL_EXIT_STATUSES.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
        for s in ALL_EXIT_STATUSES {
            assert_eq!(ExitStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(ExitStatus::from_code(9), None);
    }

    #[test]
    fn records_round_trip_through_a_file() {
        let dir = std::env::temp_dir().join(format!("vmm-api-exit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("exit.json");
        assert_eq!(ExitRecord::read(&path), None);
        let r = ExitRecord::new(ExitStatus::Reset, "guest reset");
        r.write(&path).unwrap();
        let back = ExitRecord::read(&path).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.status(), Some(ExitStatus::Reset));
        assert!(!path.with_extension("tmp").exists());
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let longer = ExitRecord::new(ExitStatus::Failed, "a much longer reason than before");
        longer.write_to(&f).unwrap();
        ExitRecord::new(ExitStatus::Stopped, "short")
            .write_to(&f)
            .unwrap();
        assert_eq!(ExitRecord::read(&path).unwrap().reason, "short");
        std::fs::write(&path, "{half").unwrap();
        assert_eq!(ExitRecord::read(&path), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
