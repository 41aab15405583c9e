//! CopyImage between two regions on this machine: daemon A ("home-1") holds the source AMI,
//! daemon B ("away-1") has A as a peer (`unix:<A's socket>`) and pulls the copy. The copy
//! gets a new ID and new snapshots, holds the same bytes, launches, keeps no launch
//! permissions and outlives its source; regions stay isolated. A copy interrupted by a
//! restart of B resumes from its partial file.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use strato_e2e::{fast_config, probe_bundle, Daemon};

const T: Duration = Duration::from_secs(30);
const MIB: usize = 1 << 20;

/// Daemons A (home-1) and B (away-1, A as its peer), B with these extra settings.
fn regions(tag: &str, b_extra: Value) -> (Daemon, Daemon) {
    let mut a_cfg = fast_config();
    a_cfg["region"] = "home-1".into();
    let a = Daemon::start_with(&format!("{tag}a"), a_cfg);
    let mut b_cfg = fast_config();
    b_cfg["region"] = "away-1".into();
    b_cfg["peers"] = serde_json::json!({"home-1": format!("unix:{}", a.socket.display())});
    for (k, v) in b_extra.as_object().unwrap() {
        b_cfg[k] = v.clone();
    }
    let b = Daemon::start_with(&format!("{tag}b"), b_cfg);
    (a, b)
}

/// Registers the probe kernel with `root` as its root volume on `d`, waiting until it is
/// available; returns the AMI and its snapshot.
fn register(d: &Daemon, name: &str, root: &Path) -> (String, String) {
    let kernel = probe_bundle().join("vmlinux");
    let v = d.json(&[
        "register-image",
        "--name",
        name,
        "--kernel",
        kernel.to_str().unwrap(),
        "--root-volume",
        root.to_str().unwrap(),
        "--boot-args",
        "console=ttyS0",
        "--wait",
    ]);
    let ami = v["ImageId"].as_str().unwrap().to_string();
    let snap = image(d, &ami)["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        .as_str()
        .unwrap()
        .to_string();
    (ami, snap)
}

fn image(d: &Daemon, ami: &str) -> Value {
    d.json(&["describe-images", "--image-ids", ami])["Images"][0].clone()
}

/// Waits until an image is no longer pending; returns it.
fn settled_image(d: &Daemon, ami: &str, secs: u64, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let img = image(d, ami);
        if img["State"] != "pending" {
            return img;
        }
        assert!(Instant::now() < deadline, "{what}: {img}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn snapshot_file(d: &Daemon, snap: &str) -> PathBuf {
    d.data().join("snapshots").join(format!("{snap}.img"))
}

fn same_bytes(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(x.len(), y.len(), "{} vs {}", a.display(), b.display());
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

#[test]
fn copy_image_between_regions() {
    let (a, b) = regions("cp", serde_json::json!({}));
    let mut root = vec![0u8; 8 * MIB];
    for (i, off) in [0, 3 * MIB + 17, 8 * MIB - 5].into_iter().enumerate() {
        root[off..off + 5].copy_from_slice(format!("mark{i}").as_bytes());
    }
    let root = a.file("root.img", &root);
    let (src, src_snap) = register(&a, "source-image", &root);

    // Bad requests are refused at once.
    b.cli_err(
        "InvalidRegion",
        &[
            "copy-image",
            "--source-region",
            "mars-1",
            "--source-image-id",
            &src,
            "--name",
            "x1x",
        ],
    );
    let unknown = format!("ami-{}", "0".repeat(src.len() - 4));
    b.cli_err(
        "InvalidAMIID.NotFound",
        &[
            "copy-image",
            "--source-region",
            "home-1",
            "--source-image-id",
            &unknown,
            "--name",
            "x2x",
        ],
    );
    // The source checks the caller's own rights: Bob may not launch the admin's image.
    b.cli_err_as(
        Some("token-bob"),
        "InvalidAMIID.NotFound",
        &[
            "copy-image",
            "--source-region",
            "home-1",
            "--source-image-id",
            &src,
            "--name",
            "x3x",
        ],
    );

    let v = b.json(&[
        "copy-image",
        "--source-region",
        "home-1",
        "--source-image-id",
        &src,
        "--name",
        "copied",
        "--description",
        "from home",
        "--wait",
    ]);
    let copy = v["ImageId"].as_str().unwrap().to_string();
    assert_ne!(copy, src);
    let img = image(&b, &copy);
    assert_eq!(img["State"], "available", "{img}");
    assert_eq!(img["Name"], "copied");
    assert_eq!(img["Description"], "from home");
    let copy_snap = img["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(copy_snap, src_snap);
    same_bytes(
        &snapshot_file(&a, &src_snap),
        &snapshot_file(&b, &copy_snap),
    );
    same_bytes(
        &a.data().join("images").join(&src).join("kernel"),
        &b.data().join("images").join(&copy).join("kernel"),
    );
    assert!(!b
        .data()
        .join("images")
        .join(&copy)
        .join("copy.json")
        .exists());
    let perms = b.json(&[
        "describe-image-attribute",
        "--image-id",
        &copy,
        "--attribute",
        "launchPermission",
    ]);
    assert_eq!(perms["LaunchPermissions"], serde_json::json!([]), "{perms}");
    b.cli_err(
        "InvalidAMIName.Duplicate",
        &[
            "copy-image",
            "--source-region",
            "home-1",
            "--source-image-id",
            &src,
            "--name",
            "copied",
        ],
    );

    // Regions are isolated: A's AMI ID means nothing on B.
    b.cli_err(
        "InvalidAMIID.NotFound",
        &[
            "run-instances",
            "--image-id",
            &src,
            "--instance-type",
            "custom-1-64",
        ],
    );

    // The copy is independent of its source.
    a.cli(&["deregister-image", "--image-id", &src]);
    assert_eq!(image(&b, &copy)["State"], "available");
    let ids = b.run(&copy, &[]);
    b.wait_state(&ids[0], "running", T);
    b.cli(&["terminate-instances", "--instance-ids", &ids[0]]);
}

#[test]
fn interrupted_copy_resumes() {
    // 256 MiB of data pulled at 24 MiB/s: about ten seconds, time enough to interrupt.
    let (a, mut b) = regions("cpr", serde_json::json!({"copy_rate_mib_s": 24.0}));
    let mut root = vec![0u8; 256 * MIB];
    for (i, block) in root.chunks_mut(MIB).enumerate() {
        block.fill((i % 251) as u8 + 1);
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
    }
    let root = a.file("big.img", &root);
    let (src, src_snap) = register(&a, "big-image", &root);
    let v = b.json(&[
        "copy-image",
        "--source-region",
        "home-1",
        "--source-image-id",
        &src,
        "--name",
        "big-copy",
    ]);
    let copy = v["ImageId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let progress = loop {
        let img = image(&b, &copy);
        assert_eq!(
            img["State"], "pending",
            "the copy ended before it could be interrupted: {img}"
        );
        let p = img["Progress"].as_i64().unwrap_or(0);
        // Past the first sync (16 MiB), so that there is something to resume from.
        if p >= 12 {
            break p;
        }
        assert!(Instant::now() < deadline, "no progress: {img}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(progress < 100);
    b.stop_daemon();
    let parts: Vec<String> = b
        .files("snapshots")
        .into_iter()
        .filter(|f| f.ends_with(".part"))
        .collect();
    assert_eq!(parts.len(), 1, "{:?}", b.files("snapshots"));
    b.restart();
    let img = settled_image(&b, &copy, 120, "the copy did not finish");
    assert_eq!(img["State"], "available", "{img}\n{}", b.log());
    let log = b.log();
    let resumed = log
        .lines()
        .find(|l| l.contains("resuming copy at offset"))
        .unwrap_or_else(|| panic!("no resume in the log:\n{log}"));
    assert!(!resumed.contains("offset 0 "), "{resumed}");
    let copy_snap = img["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        .as_str()
        .unwrap();
    same_bytes(&snapshot_file(&a, &src_snap), &snapshot_file(&b, copy_snap));
    assert!(
        b.files("snapshots").iter().all(|f| !f.contains(".part")),
        "{:?}",
        b.files("snapshots")
    );
}

#[test]
fn a_copy_whose_source_stays_down_fails_in_the_end() {
    // 64 MiB at 8 MiB/s: the source goes away long before the copy could finish, and B
    // gives up after 2 s without progress.
    let (mut a, b) = regions(
        "cpgu",
        serde_json::json!({"copy_rate_mib_s": 8.0, "copy_give_up_secs": 2.0}),
    );
    let root = a.file("data.img", &vec![7u8; 64 * MIB]);
    let (src, _) = register(&a, "doomed-source", &root);
    let v = b.json(&[
        "copy-image",
        "--source-region",
        "home-1",
        "--source-image-id",
        &src,
        "--name",
        "doomed-copy",
    ]);
    let copy = v["ImageId"].as_str().unwrap().to_string();
    a.stop_daemon();
    let img = settled_image(&b, &copy, 60, "the copy never gave up");
    assert_eq!(img["State"], "failed", "{img}");
    let reason = img["StateReason"]["Message"].as_str().unwrap_or_default();
    assert!(reason.starts_with("Client.SourceUnreachable"), "{img}");
    assert!(
        b.files("snapshots").iter().all(|f| !f.contains(".part")),
        "{:?}",
        b.files("snapshots")
    );
    let snap = img["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"].as_str();
    if let Some(snap) = snap {
        let v = b.json(&["describe-snapshots", "--snapshot-ids", snap]);
        assert_eq!(v["Snapshots"][0]["State"], "error", "{v}");
    }
}

/// Runs `ip ARGS`, expecting success.
fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn copy_over_tls_with_the_configured_ca_keeps_the_token_off_disk() {
    // A serves TLS on a veth link between the two namespaces; B trusts A's CA
    // (`tls.ca_file`) and copies as Alice, whose token must never reach B's disk, even
    // across a restart that resumes the copy.
    let mut a_cfg = fast_config();
    a_cfg["region"] = "home-1".into();
    a_cfg["listen"] = serde_json::json!(["tcp:0.0.0.0:7400"]);
    a_cfg["tls"] = serde_json::json!({"names": ["10.203.0.1"]});
    let a = Daemon::start_with("cpta", a_cfg);
    let mut b_cfg = fast_config();
    b_cfg["region"] = "away-1".into();
    b_cfg["peers"] = serde_json::json!({"home-1": "https://10.203.0.1:7400"});
    b_cfg["tls"] = serde_json::json!({"ca_file": a.ca_file()});
    b_cfg["copy_rate_mib_s"] = 8.0.into();
    let mut b = Daemon::start_with("cptb", b_cfg);
    ip(&[
        "-n", &a.ns, "link", "add", "cpt0", "type", "veth", "peer", "name", "cpt1", "netns", &b.ns,
    ]);
    ip(&["-n", &a.ns, "addr", "add", "10.203.0.1/30", "dev", "cpt0"]);
    ip(&["-n", &b.ns, "addr", "add", "10.203.0.2/30", "dev", "cpt1"]);
    ip(&["-n", &a.ns, "link", "set", "cpt0", "up"]);
    ip(&["-n", &b.ns, "link", "set", "cpt1", "up"]);

    let mut root = vec![0u8; 32 * MIB];
    for (i, block) in root.chunks_mut(MIB).enumerate() {
        block.fill((i % 251) as u8 + 1);
    }
    let root = a.file("tls.img", &root);
    let (src, src_snap) = register(&a, "tls-image", &root);
    a.cli(&[
        "modify-image-attribute",
        "--image-id",
        &src,
        "--launch-permission",
        "Add=[{UserId=111111111111}]",
    ]);
    let v = b.json_as(
        Some("token-alice"),
        &[
            "copy-image",
            "--source-region",
            "home-1",
            "--source-image-id",
            &src,
            "--name",
            "tls-copy",
        ],
    );
    let copy = v["ImageId"].as_str().unwrap().to_string();
    let job = b.data().join("images").join(&copy).join("copy.json");
    let text = std::fs::read_to_string(&job).unwrap();
    assert!(!text.contains("token-alice"), "{text}");
    assert!(text.contains("token_sha256"), "{text}");
    // Interrupted and resumed: the copy finds Alice's token again by its digest.
    std::thread::sleep(Duration::from_secs(1));
    let alices = |b: &Daemon| {
        b.json_as(
            Some("token-alice"),
            &["describe-images", "--image-ids", &copy],
        )["Images"][0]
            .clone()
    };
    assert_eq!(alices(&b)["State"], "pending");
    b.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    let img = loop {
        let img = alices(&b);
        if img["State"] != "pending" {
            break img;
        }
        assert!(
            Instant::now() < deadline,
            "the copy over TLS did not finish: {img}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(img["State"], "available", "{img}\n{}", b.log());
    let copy_snap = img["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        .as_str()
        .unwrap();
    same_bytes(&snapshot_file(&a, &src_snap), &snapshot_file(&b, copy_snap));
    let log = b.log();
    assert!(!log.contains("token-alice"), "{log}");
}

/// CopyImage under kill -9 of the destination daemon, at a random moment of each copy
/// (seeded and printed; `STRATO_STORM_SEED` replays it): after the restart the fault
/// tests' invariants hold, and the copy finishes with the source's bytes, resumed from
/// what was synced, never left half made.
#[test]
fn kill9_during_copy_image_keeps_the_invariants() {
    let (a, mut b) = regions("cpk", serde_json::json!({"copy_rate_mib_s": 48.0}));
    let mut root = vec![0u8; 64 * MIB];
    for (i, block) in root.chunks_mut(MIB).enumerate() {
        block.fill((i % 241) as u8 + 7);
    }
    let root = a.file("storm.img", &root);
    let (src, src_snap) = register(&a, "storm-image", &root);
    let seed: u64 = std::env::var("STRATO_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("copy storm seed {seed}: STRATO_STORM_SEED={seed} replays it");
    let mut state = seed | 1;
    for round in 0..3 {
        // xorshift: enough to spread the kills over the copy's life.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = state % 1500;
        let v = b.json(&[
            "copy-image",
            "--source-region",
            "home-1",
            "--source-image-id",
            &src,
            "--name",
            &format!("storm-copy-{round}"),
        ]);
        let copy = v["ImageId"].as_str().unwrap().to_string();
        std::thread::sleep(Duration::from_millis(delay));
        b.kill_daemon();
        b.start_again();
        let context = format!("seed {seed}, round {round}, killed {delay} ms into the copy");
        strato_e2e::invariants::settle(&b, Duration::from_secs(120));
        strato_e2e::invariants::assert_hold(&b, &context);
        let img = settled_image(&b, &copy, 120, &context);
        assert_eq!(img["State"], "available", "{context}: {img}\n{}", b.log());
        let copy_snap = img["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
            .as_str()
            .unwrap();
        same_bytes(&snapshot_file(&a, &src_snap), &snapshot_file(&b, copy_snap));
        println!("round {round}: killed after {delay} ms, copy {copy} available");
    }
}
