//! Fault storms: the daemon killed with SIGKILL at random (seeded, printed) moments while
//! clients launch, attach, detach, snapshot, image and terminate; started again, the
//! invariant check of `strato_e2e::invariants` must hold and every call the client saw
//! succeed must still be there. `STRATO_STORM_ROUNDS` sets the rounds (3 by default),
//! `STRATO_STORM_SEED` replays a storm.
//!
//! Also a monitor killed while its guest writes (the volume keeps every write the guest
//! had flushed).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use strato_e2e::invariants::{self, Records};
use strato_e2e::{bin, Daemon};

const T: Duration = Duration::from_secs(30);
const AZ: &str = "home-1a";

/// A small seeded generator (xorshift64*): storms replay from their printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One client call of a storm and how it ended.
#[derive(Debug, Clone)]
struct Call {
    what: &'static str,
    /// The resource it names or made.
    id: String,
    /// Exit code of the CLI (0 success, 254 an EC2 error, else cut off by the crash).
    code: Option<i32>,
    out: Value,
    err: String,
    /// The CLI arguments.
    args: Vec<String>,
}

impl Call {
    /// The value of the CLI option `name` ("" without it).
    fn arg(&self, name: &str) -> &str {
        self.args
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.args.get(i + 1))
            .map_or("", String::as_str)
    }

    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// An EC2 error the daemon answered (not a call cut off by the crash).
    fn refused(&self) -> bool {
        let code = self
            .err
            .split_once("An error occurred (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(code, _)| code);
        // A connection cut by the crash comes back as a transport status, not an EC2 code.
        self.code == Some(254)
            && code.is_some_and(|c| !matches!(c, "Unknown" | "Unavailable" | "Cancelled"))
    }
}

fn finish(what: &'static str, id: &str, args: Vec<String>, out: Output) -> Call {
    Call {
        what,
        id: id.to_string(),
        args,
        code: out.status.code(),
        out: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the CLI against the daemon's socket with `--output json` on another thread (the
/// daemon itself stays with the test, which kills it meanwhile).
fn spawn_cli(
    socket: &Path,
    what: &'static str,
    id: &str,
    args: Vec<String>,
) -> std::thread::JoinHandle<Call> {
    let socket = socket.to_path_buf();
    let id = id.to_string();
    std::thread::spawn(move || {
        let out = Command::new(bin("strato"))
            .env("STRATO_ENDPOINT", format!("unix:{}", socket.display()))
            .env_remove("STRATO_TOKEN")
            .env_remove("STRATO_OUTPUT")
            .args(["--output", "json"])
            .args(&args)
            .output()
            .unwrap();
        finish(what, &id, args, out)
    })
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The storm's seed: `STRATO_STORM_SEED`, or the clock.
fn seed() -> u64 {
    std::env::var("STRATO_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// Checks what the client saw against the records after the restart.
fn check_calls(
    db: &Path,
    calls: &[Call],
    r: &Records,
    client_tokens: &BTreeMap<String, Vec<String>>,
) {
    for c in calls {
        match (c.what, c.ok()) {
            ("run-instances", true) => {
                for i in c.out["Instances"].as_array().unwrap() {
                    let id = i["InstanceId"].as_str().unwrap();
                    assert!(
                        r.instances.contains_key(id),
                        "{id} was launched (the client saw it) but is gone: {c:?}"
                    );
                }
            }
            ("run-instances", false) if c.refused() => {
                let left = client_tokens.get(&c.id).cloned().unwrap_or_default();
                assert!(
                    left.is_empty(),
                    "a refused launch left instances {left:?}: {c:?}"
                );
            }
            ("create-volume", true) => {
                let id = c.out["VolumeId"].as_str().unwrap();
                assert!(r.volumes.contains_key(id), "{id} is gone: {c:?}");
            }
            ("create-volume", false) if c.refused() => {
                let left = tagged(db, "volumes", &c.id);
                assert!(
                    left.is_empty(),
                    "a refused create-volume left {left:?}: {c:?}"
                );
            }
            ("attach-volume", true) => {
                let (_, inst) = r.volumes.get(&c.id).expect("attached volume is gone");
                assert!(!inst.is_empty(), "{} attached, now detached: {c:?}", c.id);
                assert_eq!(
                    device_of(db, &c.id),
                    c.out["Device"].as_str().unwrap_or(""),
                    "{} is not where the attach the client saw put it: {c:?}",
                    c.id
                );
            }
            ("attach-volume", false) if c.refused() => {
                // The racing twin of this call may have attached the volume, but never at
                // the device this call asked for.
                let asked = c.arg("--device");
                assert_ne!(
                    device_of(db, &c.id),
                    asked,
                    "a refused attach left {} at {asked}: {c:?}",
                    c.id
                );
            }
            ("detach-volume", true) => {
                let (_, inst) = r.volumes.get(&c.id).expect("detached volume is gone");
                assert!(inst.is_empty(), "{} detached, now attached: {c:?}", c.id);
            }
            ("create-snapshot", true) => {
                let id = c.out["SnapshotId"].as_str().unwrap();
                assert!(r.snapshots.contains_key(id), "{id} is gone: {c:?}");
            }
            ("create-snapshot", false) if c.refused() => {
                let left = invariants::query(
                    db,
                    &format!("SELECT id FROM snapshots WHERE description = '{}'", c.id),
                );
                assert!(
                    left.is_empty(),
                    "a refused create-snapshot left {left:?}: {c:?}"
                );
            }
            ("create-image", true) => {
                let id = c.out["ImageId"].as_str().unwrap();
                assert!(r.images.contains_key(id), "{id} is gone: {c:?}");
                assert_eq!(
                    images_named(db, &c.id),
                    vec![id.to_string()],
                    "the image the client saw made is not the only one named {}: {c:?}",
                    c.id
                );
            }
            ("create-image", false) if c.refused() => {
                // Its twin (same name) may have made the one image of that name; this call
                // made none, so there is at most one, and only if the twin was not refused.
                let named = images_named(db, &c.id);
                let twin_refused = calls
                    .iter()
                    .filter(|o| o.what == "create-image" && o.id == c.id)
                    .all(Call::refused);
                assert!(
                    named.len() <= 1 && (!twin_refused || named.is_empty()),
                    "refused create-image left {named:?} named {}: {c:?}",
                    c.id
                );
            }
            ("terminate-instances", true) => {
                for id in c.id.split(' ') {
                    assert_eq!(
                        r.instances.get(id).map(String::as_str),
                        Some("terminated"),
                        "{id} was terminated: {c:?}"
                    );
                }
            }
            _ => {}
        }
    }
}

/// Resources of `table` carrying the tag `storm=<value>`.
fn tagged(db: &Path, table: &str, value: &str) -> Vec<Value> {
    invariants::query(
        db,
        &format!(
            "SELECT id FROM {table} WHERE EXISTS (SELECT 1 FROM json_each({table}.tags) \
             WHERE json_extract(value, '$.Key') = 'storm' AND json_extract(value, '$.Value') = '{value}')"
        ),
    )
}

/// The device a volume is attached at ("" when it is not attached).
fn device_of(db: &Path, volume: &str) -> String {
    invariants::query(
        db,
        &format!("SELECT device FROM volumes WHERE id = '{volume}' AND instance_id IS NOT NULL"),
    )
    .first()
    .and_then(|row| row["device"].as_str().map(str::to_string))
    .unwrap_or_default()
}

/// The IDs of the images named `name`.
fn images_named(db: &Path, name: &str) -> Vec<String> {
    invariants::query(db, &format!("SELECT id FROM images WHERE name = '{name}'"))
        .iter()
        .filter_map(|row| row["id"].as_str().map(str::to_string))
        .collect()
}

/// Instances by the client token they were launched with.
fn by_client_token(d: &Daemon) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in invariants::query(
        &d.data().join("strato.db"),
        "SELECT id, client_token FROM instances WHERE client_token != ''",
    ) {
        m.entry(row["client_token"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(row["id"].as_str().unwrap_or("").to_string());
    }
    m
}

#[test]
fn kill9_storm_keeps_the_invariants() {
    let rounds: u64 = std::env::var("STRATO_STORM_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let seed = seed();
    println!("storm seed {seed} ({rounds} rounds): STRATO_STORM_SEED={seed} replays it");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let mut d = Daemon::start("storm");
    let ami = d.register_probe("probe");
    let base = d.run(&ami, &[])[0].clone();
    d.wait_state(&base, "running", T);
    let spare = d.json(&["create-volume", "--size", "1", "--availability-zone", AZ])["VolumeId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut kills = Vec::new();
    for round in 0..rounds {
        let r = Records::read(&d);
        // The volume attached to `base` (besides its root), if any: detach it this round;
        // otherwise attach a fresh one.
        let attached: Vec<String> = r
            .volumes
            .iter()
            .filter(|(_, (st, inst))| inst == &base && st == "in-use")
            .map(|(id, _)| id.clone())
            .filter(|id| {
                invariants::query(
                    &d.data().join("strato.db"),
                    &format!("SELECT device FROM volumes WHERE id = '{id}'"),
                )
                .first()
                .and_then(|row| row["device"].as_str().map(|s| s != "/dev/vda"))
                .unwrap_or(false)
            })
            .collect();
        // Earlier rounds' launches, terminated now.
        let victims: Vec<String> = r
            .instances
            .iter()
            .filter(|(id, st)| *id != &base && st.as_str() != "terminated")
            .map(|(id, _)| id.clone())
            .collect();

        let sock = d.socket.clone();
        let token = format!("storm-{seed}-{round}");
        let mut jobs = vec![spawn_cli(
            &sock,
            "run-instances",
            &token,
            strs(&[
                "run-instances",
                "--image-id",
                &ami,
                "--instance-type",
                "custom-1-64",
                "--count",
                "2",
                "--client-token",
                &token,
            ]),
        )];
        if let Some(v) = attached.first() {
            jobs.push(spawn_cli(
                &sock,
                "detach-volume",
                v,
                strs(&["detach-volume", "--volume-id", v]),
            ));
        } else if r.volumes.get(&spare).map(|(st, _)| st.as_str()) == Some("available") {
            // Two attaches of one volume race: at most one may win, and the loser must
            // leave no trace of its device.
            for device in ["/dev/vdb", "/dev/vdc"] {
                jobs.push(spawn_cli(
                    &sock,
                    "attach-volume",
                    &spare,
                    strs(&[
                        "attach-volume",
                        "--volume-id",
                        &spare,
                        "--instance-id",
                        &base,
                        "--device",
                        device,
                    ]),
                ));
            }
        }
        // Calls that fail (an EC2 error the client sees) must leave nothing behind: each
        // one carries a mark (a tag, a description, a name) the check looks for.
        let mark = format!("storm-{seed}-{round}");
        jobs.push(spawn_cli(
            &sock,
            "create-volume",
            &mark,
            strs(&[
                "create-volume",
                "--size",
                "1",
                "--availability-zone",
                AZ,
                "--tag-specifications",
                &format!("ResourceType=volume,Tags=[{{Key=storm,Value={mark}}}]"),
            ]),
        ));
        // A volume in a zone the region lacks: always refused.
        jobs.push(spawn_cli(
            &sock,
            "create-volume",
            &format!("{mark}-badzone"),
            strs(&[
                "create-volume",
                "--size",
                "1",
                "--availability-zone",
                "nowhere-1z",
                "--tag-specifications",
                &format!("ResourceType=volume,Tags=[{{Key=storm,Value={mark}-badzone}}]"),
            ]),
        ));
        jobs.push(spawn_cli(
            &sock,
            "create-snapshot",
            &mark,
            strs(&[
                "create-snapshot",
                "--volume-id",
                &spare,
                "--description",
                &mark,
            ]),
        ));
        // Two images of one name race: one may be made, the other is refused as a
        // duplicate and makes nothing.
        for _ in 0..2 {
            jobs.push(spawn_cli(
                &sock,
                "create-image",
                &mark,
                strs(&[
                    "create-image",
                    "--instance-id",
                    &base,
                    "--name",
                    &mark,
                    "--no-reboot",
                ]),
            ));
        }
        if !victims.is_empty() {
            let mut args = strs(&["terminate-instances", "--instance-ids"]);
            args.extend(victims.iter().cloned());
            jobs.push(spawn_cli(
                &sock,
                "terminate-instances",
                &victims.join(" "),
                args,
            ));
        }
        let delay = rng.below(600);
        kills.push(delay);
        std::thread::sleep(Duration::from_millis(delay));
        d.kill_daemon();
        let calls: Vec<Call> = jobs.into_iter().map(|j| j.join().unwrap()).collect();
        println!(
            "round {round}: killed after {delay} ms; calls: {:?}",
            calls
                .iter()
                .map(|c| match (c.ok(), c.refused()) {
                    (true, _) => format!("{} ok", c.what),
                    (false, true) => format!("{} refused", c.what),
                    (false, false) => format!("{} cut off ({:?})", c.what, c.code),
                })
                .collect::<Vec<_>>()
        );
        d.start_again();
        let records = invariants::settle(&d, Duration::from_secs(60));
        let context = format!("seed {seed}, round {round}, killed after {delay} ms");
        invariants::assert_hold(&d, &context);
        check_calls(
            &d.data().join("strato.db"),
            &calls,
            &records,
            &by_client_token(&d),
        );
        // The guest every round images and snapshots runs on (not left paused mid-copy).
        d.wait_status(&base, ("ok", "*"), T);

        // The rules the daemon put back after the crash are the ones it renders from the
        // database on a clean start.
        let after_crash = invariants::ruleset(&d);
        d.restart();
        invariants::settle(&d, Duration::from_secs(60));
        assert_eq!(
            after_crash,
            invariants::ruleset(&d),
            "{context}: the ruleset after the crash differs from a clean start's"
        );
        invariants::assert_hold(&d, &format!("{context}, after a clean restart"));
    }
    // Normal service afterwards.
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    d.wait_status(&base, ("ok", "*"), T);
    println!(
        "storm: {rounds} rounds in {:.1} s (kills at {kills:?} ms)",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn killed_monitor_keeps_every_flushed_write() {
    let d = Daemon::start("mkill");
    let ami = d.register_probe("probe");
    // A script of many markers on a second volume: each one is written, flushed and read
    // back before the probe prints `ok` for it.
    let mut script = String::from("#!probe\n");
    for n in 0..600u32 {
        script.push_str(&format!("marker vdb {} w{n}\n", 8 + n));
    }
    let ud = d.file("ud.txt", script.as_bytes());
    let ud_arg = format!("file://{}", ud.display());
    let id = d.run(
        &ami,
        &[
            "--user-data",
            &ud_arg,
            "--block-device-mappings",
            r#"[{"DeviceName":"/dev/vdb","Ebs":{"VolumeSize":1,"DeleteOnTermination":false}}]"#,
        ],
    )[0]
    .clone();
    d.wait_state(&id, "running", T);
    let log = d.data().join("instances").join(&id).join("console.log");
    // Kill the monitor as soon as the guest has some writes flushed, while it writes on.
    let deadline = Instant::now() + T;
    let pid = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("probe: marker vdb ").count() >= 20 {
            let pids = d.vmm_pids();
            assert_eq!(pids.len(), 1);
            break pids[0];
        }
        assert!(Instant::now() < deadline, "no markers written:\n{text}");
        std::thread::sleep(Duration::from_millis(5));
    };
    Daemon::signal_monitor(pid, libc::SIGKILL);
    let deadline = Instant::now() + T;
    while !d.vmm_pids().is_empty() {
        assert!(Instant::now() < deadline, "the monitor outlived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let flushed: Vec<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("probe: marker vdb "))
        .filter_map(|l| l.strip_suffix(" ok"))
        .filter_map(|lba| lba.parse().ok())
        .collect();
    assert!(!flushed.is_empty(), "{text}");
    let done = text.contains("probe: user-data done");
    println!(
        "monitor killed after {} of 600 flushed markers (script finished: {done})",
        flushed.len()
    );

    // The volume is a whole, readable file holding every flushed marker.
    let vols = d.json(&[
        "describe-volumes",
        "--filters",
        &format!("Name=attachment.instance-id,Values={id}"),
    ]);
    let vol = vols["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["Attachments"][0]["Device"] == "/dev/vdb")
        .unwrap_or_else(|| panic!("no vdb volume: {vols}"))["VolumeId"]
        .as_str()
        .unwrap()
        .to_string();
    let file = d.data().join("volumes").join(format!("{vol}.img"));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 1 << 30);
    for lba in &flushed {
        let sector = strato_e2e::read_at(&file, u64::from(*lba) * 512, 512);
        let want = format!("STRATO-MARKER w{}", lba - 8);
        assert!(
            sector.starts_with(want.as_bytes()) && sector[want.len()] == 0,
            "sector {lba} lost its flushed write: {:?}",
            String::from_utf8_lossy(&sector[..32])
        );
    }
    // The instance tells that its monitor died; stop and start bring it back with its data.
    let deadline = Instant::now() + T;
    while !d.instance(&id).to_string().contains("monitor exited") {
        assert!(Instant::now() < deadline, "{}", d.instance(&id));
        std::thread::sleep(Duration::from_millis(50));
    }
    invariants::settle(&d, T);
    invariants::assert_hold(&d, "after the monitor was killed");
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    invariants::settle(&d, T);
    invariants::assert_hold(&d, "after stop and start");
}

/// Fills the file system of `dir` with a file `name` until it is full (or `limit` bytes).
fn fill(dir: &Path, name: &str, limit: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join(name)).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0;
    while written < limit {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
}

/// The files of the data directory's volume and snapshot folders.
fn storage_files(d: &Daemon) -> Vec<String> {
    let mut v = d.files("volumes");
    v.extend(d.files("snapshots"));
    v
}

#[test]
fn full_disk_gives_clear_errors_and_leaves_nothing_half_made() {
    let d = Daemon::start_on_tmpfs("full", strato_e2e::fast_config(), 128);
    let ami = d.register_probe("probe");
    let base = d.run(&ami, &[])[0].clone();
    d.wait_state(&base, "running", T);
    // A volume holding 40 MiB of data: copies of it need room.
    let vol = d.json(&["create-volume", "--size", "1", "--availability-zone", AZ])["VolumeId"]
        .as_str()
        .unwrap()
        .to_string();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.data().join("volumes").join(format!("{vol}.img")))
            .unwrap();
        let chunk = vec![0xa5u8; 1 << 20];
        for k in 0..40u64 {
            f.write_all_at(&chunk, k << 20).unwrap();
        }
        f.sync_all().unwrap();
    }
    // Leave less free than a copy of that volume needs, and only a few MiB in all.
    fill(&d.data(), "filler", u64::MAX);
    let filler = d.data().join("filler");
    let len = std::fs::metadata(&filler).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    f.set_len(len.saturating_sub(8 << 20)).unwrap();
    drop(f);

    let records = Records::read(&d);
    let files = storage_files(&d);
    let images = d.files("images");
    let err = d.cli_err(
        "InsufficientVolumeCapacity",
        &["create-snapshot", "--volume-id", &vol],
    );
    assert!(err.contains("not enough free disk space"), "{err}");
    let err = d.cli_err(
        "InsufficientVolumeCapacity",
        &[
            "create-image",
            "--instance-id",
            &base,
            "--name",
            "full",
            "--no-reboot",
        ],
    );
    assert!(err.contains("not enough free disk space"), "{err}");
    let err = d.cli_err(
        "InsufficientVolumeCapacity",
        &["create-volume", "--size", "1", "--availability-zone", AZ],
    );
    assert!(err.contains("MiB free"), "{err}");
    let err = d.cli_err(
        "InsufficientInstanceCapacity",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "custom-1-64",
        ],
    );
    assert!(err.contains("not enough free disk space"), "{err}");
    // Nothing half-made: the same records, the same files.
    let after = Records::read(&d);
    assert_eq!(after.instances, records.instances);
    assert_eq!(after.volumes, records.volumes);
    assert_eq!(after.snapshots, records.snapshots);
    assert_eq!(after.images, records.images);
    assert_eq!(storage_files(&d), files);
    assert_eq!(d.files("images"), images);
    // The running guest was not disturbed.
    assert_eq!(d.state(&base), "running");

    // Space back: normal service.
    std::fs::remove_file(&filler).unwrap();
    let s = d.json(&["create-snapshot", "--volume-id", &vol, "--wait"]);
    assert_eq!(s["State"], "completed", "{s}");
    d.json(&["create-volume", "--size", "1", "--availability-zone", AZ]);
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    invariants::settle(&d, T);
    invariants::assert_hold(&d, "after the disk had room again");
}

/// Sends one request line to an instance's monitor; returns its reply line.
fn monitor(d: &Daemon, id: &str, req: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let sock = d.data().join("instances").join(id).join("api.sock");
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.write_all(format!("{req}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

#[test]
fn a_vm_left_paused_by_a_crash_mid_copy_runs_again_after_the_restart() {
    let mut d = Daemon::start("paused-crash");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    d.wait_status(&id, ("ok", "*"), T);
    // What a consistent copy does first; the daemon then dies before it resumes the VM.
    assert!(monitor(&d, &id, r#"{"op":"pause"}"#).contains("\"ok\":true"));
    d.kill_daemon();
    d.start_again();
    assert!(
        monitor(&d, &id, r#"{"op":"state"}"#).contains("\"running\""),
        "{}",
        d.log()
    );
    assert!(d.log().contains("resumed a VM left paused"), "{}", d.log());
    d.wait_status(&id, ("ok", "*"), T);
    invariants::settle(&d, T);
    invariants::assert_hold(&d, "after the restart");
}
