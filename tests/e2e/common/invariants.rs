//! The invariant check the fault tests run after every crash and restart, in the style of
//! SQLite's own crash tests: whatever moment the daemon died at, once it has started again
//! (and its start-up clean-up ran) its records and the live system agree.
//!
//! - `PRAGMA integrity_check` is `ok`;
//! - a live monitor of its own exactly for each instance recorded running or stopping, and
//!   no monitor for anything else (a second monitor of one instance is a violation too);
//! - a tap exactly for each interface attached to an instance that is not terminated;
//! - every available or in-use volume and every completed snapshot has its file, and no
//!   volume or snapshot file (nor a half-written `.part`) lacks a record.
//!
//! The nftables side is compared by [`ruleset`] across a clean restart (the daemon renders
//! its rules from the database when it starts); what the client saw is the caller's to
//! compare, with [`Records`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Daemon;

/// Runs one query with the sqlite3 command-line shell; returns the rows as JSON objects.
pub fn query(db: &Path, sql: &str) -> Vec<Value> {
    let out = Command::new("sqlite3")
        .arg("-json")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 (the SQLite shell) is needed by the fault tests");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// What the database records, as sets of IDs by kind and state.
#[derive(Debug, Default, Clone)]
pub struct Records {
    /// Instance ID → state.
    pub instances: BTreeMap<String, String>,
    /// Volume ID → (state, attached instance or "").
    pub volumes: BTreeMap<String, (String, String)>,
    /// Snapshot ID → state.
    pub snapshots: BTreeMap<String, String>,
    /// Image ID → state.
    pub images: BTreeMap<String, String>,
}

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Records {
    /// Reads the records of a daemon's database.
    pub fn read(d: &Daemon) -> Records {
        let db = d.data().join("strato.db");
        let mut r = Records::default();
        for row in query(&db, "SELECT id, state FROM instances") {
            r.instances.insert(s(&row, "id"), s(&row, "state"));
        }
        for row in query(&db, "SELECT id, state, instance_id FROM volumes") {
            r.volumes
                .insert(s(&row, "id"), (s(&row, "state"), s(&row, "instance_id")));
        }
        for row in query(&db, "SELECT id, state FROM snapshots") {
            r.snapshots.insert(s(&row, "id"), s(&row, "state"));
        }
        for row in query(&db, "SELECT id, state FROM images") {
            r.images.insert(s(&row, "id"), s(&row, "state"));
        }
        r
    }

    /// Whether anything is still in a transitional state the daemon finishes on its own.
    pub fn settling(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (id, st) in &self.instances {
            if matches!(st.as_str(), "pending" | "stopping" | "shutting-down") {
                v.push(format!("{id} {st}"));
            }
        }
        for (id, (st, _)) in &self.volumes {
            if st == "creating" {
                v.push(format!("{id} {st}"));
            }
        }
        for (id, st) in self.snapshots.iter().chain(&self.images) {
            if st == "pending" {
                v.push(format!("{id} {st}"));
            }
        }
        v
    }
}

/// Waits until nothing is pending, stopping, shutting down or being created; returns the
/// records then.
pub fn settle(d: &Daemon, timeout: Duration) -> Records {
    let deadline = Instant::now() + timeout;
    loop {
        let r = Records::read(d);
        let busy = r.settling();
        if busy.is_empty() {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "still settling after {timeout:?}: {busy:?}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon's monitors (`Daemon::vmm_pids`: the process it started for each VM), by the
/// instance whose configuration they were started with (`instances/<id>/vm.json` on their
/// command line).
pub fn monitors(d: &Daemon) -> BTreeMap<String, Vec<i32>> {
    let mut by_instance: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for pid in d.vmm_pids() {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let Some(at) = cmdline.find("/instances/i-") else {
            continue;
        };
        let id: String = cmdline[at + "/instances/".len()..]
            .chars()
            .take_while(|c| *c != '/')
            .collect();
        by_instance.entry(id).or_default().push(pid);
    }
    by_instance
}

/// The tap devices in the daemon's namespace.
pub fn taps(d: &Daemon) -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-n", &d.ns, "-o", "link", "show", "type", "tun"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let name = l.split(':').nth(1)?.trim();
            Some(name.split('@').next()?.to_string())
        })
        .collect()
}

/// The nftables ruleset of the daemon's namespace, with handles and counters taken out
/// (they differ between two renderings of the same rules).
pub fn ruleset(d: &Daemon) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &d.ns, "nft", "list", "ruleset"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| {
            let mut words: Vec<&str> = Vec::new();
            let mut it = l.split_whitespace().peekable();
            while let Some(w) = it.next() {
                match w {
                    "counter" => {
                        // counter packets N bytes M
                        for _ in 0..4 {
                            it.next();
                        }
                    }
                    "#" if it.peek() == Some(&"handle") => break,
                    _ => words.push(w),
                }
            }
            words.join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files of a data subfolder.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every violation of the invariants above (empty: all hold). Call it once [`settle`] has
/// returned.
pub fn violations(d: &Daemon) -> Vec<String> {
    let db = d.data().join("strato.db");
    let mut bad = Vec::new();
    let integrity = query(&db, "PRAGMA integrity_check");
    if integrity.len() != 1 || s(&integrity[0], "integrity_check") != "ok" {
        bad.push(format!("integrity_check: {integrity:?}"));
    }
    let r = Records::read(d);

    // Monitors.
    let mons = monitors(d);
    let recorded: BTreeMap<String, (String, i64, String)> = query(
        &db,
        "SELECT id, state, vmm_pid, state_reason FROM instances WHERE state != 'terminated'",
    )
    .iter()
    .map(|row| {
        (
            s(row, "id"),
            (
                s(row, "state"),
                row["vmm_pid"].as_i64().unwrap_or(0),
                s(row, "state_reason"),
            ),
        )
    })
    .collect();
    for (id, (state, pid, reason)) in &recorded {
        let live = mons.get(id).cloned().unwrap_or_default();
        let wants = matches!(state.as_str(), "running" | "stopping");
        // A running instance whose monitor died stays running (EC2 keeps an instance on a
        // failed host running, its system check impaired): no PID then, and the reason told.
        if state == "running" && *pid == 0 {
            if !live.is_empty() || !reason.contains("monitor") {
                bad.push(format!(
                    "{id} is running with no monitor recorded (reason {reason:?}), live monitors {live:?}"
                ));
            }
            continue;
        }
        if wants && live != vec![*pid as i32] {
            bad.push(format!(
                "{id} is {state} with monitor {pid} recorded, live monitors {live:?}"
            ));
        }
        if !wants && !live.is_empty() {
            bad.push(format!("{id} is {state} but monitors {live:?} run"));
        }
    }
    for (id, pids) in &mons {
        if !recorded.contains_key(id) {
            bad.push(format!(
                "monitors {pids:?} run for {id}, which is {}",
                r.instances
                    .get(id)
                    .map(String::as_str)
                    .unwrap_or("not recorded")
            ));
        }
    }

    // Taps.
    let want_taps: BTreeSet<String> = query(
        &db,
        "SELECT n.tap FROM network_interfaces n JOIN instances i ON i.id = n.instance_id \
         WHERE i.state != 'terminated'",
    )
    .iter()
    .map(|row| s(row, "tap"))
    .collect();
    let have_taps = taps(d);
    if want_taps != have_taps {
        bad.push(format!(
            "taps {have_taps:?}, the records want {want_taps:?}"
        ));
    }

    // Volume and snapshot files.
    for (sub, kinds) in [("volumes", "vol-"), ("snapshots", "snap-")] {
        for f in files(&d.data().join(sub)) {
            let id = f.strip_suffix(".img");
            let known = match (sub, id) {
                ("volumes", Some(id)) => r.volumes.contains_key(id),
                ("snapshots", Some(id)) => r.snapshots.contains_key(id),
                _ => false,
            };
            if !known || !f.starts_with(kinds) {
                bad.push(format!("{sub}/{f} has no record"));
            }
        }
    }
    for (id, (state, _)) in &r.volumes {
        if matches!(state.as_str(), "available" | "in-use")
            && !d.data().join("volumes").join(format!("{id}.img")).exists()
        {
            bad.push(format!("{id} is {state} but has no file"));
        }
    }
    for (id, state) in &r.snapshots {
        if state == "completed"
            && !d
                .data()
                .join("snapshots")
                .join(format!("{id}.img"))
                .exists()
        {
            bad.push(format!("{id} is completed but has no file"));
        }
    }
    bad
}

/// Panics with every violation, the seed that led there and the daemon's log.
pub fn assert_hold(d: &Daemon, context: &str) {
    let bad = violations(d);
    assert!(
        bad.is_empty(),
        "invariants broken ({context}):\n  {}\n--- log ---\n{}",
        bad.join("\n  "),
        d.log()
    );
}
