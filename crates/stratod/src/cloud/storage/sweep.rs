//! The start-up sweep of the data directory: files a crash left without a record. Every
//! write of a volume or snapshot file happens before its record exists or after its record
//! is gone (create: file, then record; delete: record, then file; copies through a `.part`
//! renamed when whole), so a file without a record after a crash is one that no caller was
//! told exists: it goes.

use std::collections::HashSet;
use std::path::Path;

use crate::cloud::Cloud;

impl Cloud {
    /// Removes volume and snapshot files (and `.part` copies) that no record owns. Runs at
    /// start-up, before anything could be writing them; `.part` files of snapshots still
    /// pending stay for the restore that follows to judge.
    pub fn sweep_storage(&self) {
        let volumes: HashSet<String> = match self.db.volumes(None) {
            Ok(v) => v.into_iter().map(|v| v.id).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot list volumes: no sweep");
                return;
            }
        };
        let snapshots: HashSet<String> = match self.db.all_snapshot_ids() {
            Ok(s) => s.into_iter().collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot list snapshots: no sweep");
                return;
            }
        };
        let data = &self.cfg.data_dir;
        sweep_dir(&data.join("volumes"), &volumes);
        sweep_dir(&data.join("snapshots"), &snapshots);
    }
}

/// Removes the `<id>.img` and `<id>.part` files of `dir` whose ID is not in `known`.
fn sweep_dir(dir: &Path, known: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let id = name
            .strip_suffix(".img")
            .or_else(|| name.strip_suffix(".part"));
        let Some(id) = id else { continue };
        if known.contains(id) {
            continue;
        }
        match crate::cloud::remove_file(&e.path()) {
            Ok(()) => {
                tracing::warn!(file = %e.path().display(), "removed a file without a record (left by a crash)")
            }
            Err(err) => {
                tracing::warn!(file = %e.path().display(), error = %err, "cannot remove a file without a record")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_records_go_and_recorded_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "vol-a.img",
            "vol-b.img",
            "vol-b.part",
            "vol-c.part",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let known: HashSet<String> = ["vol-a".to_string()].into();
        sweep_dir(dir.path(), &known);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["notes.txt", "vol-a.img"]);
    }
}
