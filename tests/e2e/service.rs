//! The daemon as a service and the CLI as a guide: the systemd unit scripts/install.sh
//! installs (rendered and checked by `systemd-analyze verify`), readiness on
//! `NOTIFY_SOCKET` only once the API answers, a log with no colour codes and one line per
//! lifecycle event, the first status check at boot speed with the default one-minute
//! interval, and the CLI's hints for a newcomer's first mistakes.

#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use strato_e2e::{bin, root, Daemon};

const T: Duration = Duration::from_secs(30);

/// The unit install.sh would install, for this build's binaries.
fn render_unit(data: &str, extra: &[&str]) -> String {
    let bin_dir = bin("stratod").parent().unwrap().display().to_string();
    let out = Command::new(root().join("scripts/install.sh"))
        .arg("--unit")
        .args(if extra.is_empty() { vec![] } else { vec!["--"] })
        .args(extra)
        .env("STRATO_BIN_DIR", &bin_dir)
        .env("STRATO_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_unit_is_a_notify_service_that_leaves_vms_running() {
    let dir = std::env::temp_dir().join(format!("se2e-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data with space");
    let unit = render_unit(data.to_str().unwrap(), &["--no-jail"]);
    let line = |key: &str| {
        unit.lines()
            .find(|l| l.starts_with(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in:\n{unit}"))
            .to_string()
    };
    assert_eq!(line("Type"), "Type=notify");
    assert_eq!(line("Restart"), "Restart=on-failure");
    // Monitors are in the daemon's control group: only the daemon may be stopped.
    assert_eq!(line("KillMode"), "KillMode=process");
    let exec = line("ExecStart");
    assert!(
        exec.contains(&format!("\"{}\"", bin("stratod").display())),
        "{exec}"
    );
    assert!(
        exec.contains(&format!("--data-dir \"{}\"", data.display())),
        "{exec}"
    );
    assert!(exec.ends_with(" \"--no-jail\""), "{exec}");
    assert!(!unit.contains('@'), "placeholders left:\n{unit}");
    // systemd's own check of the file, where systemd's tools are installed.
    let path = dir.join("stratod.service");
    std::fs::write(&path, &unit).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match verified {
        Ok(out) => assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("systemd-analyze not run ({e}); the unit's fields were checked"),
    }
}

#[test]
fn readiness_logs_and_the_first_status_check() {
    // In the temporary folder, outside the daemon's, which it removes with itself.
    let notify_path = std::env::temp_dir().join(format!("se2e-notify-{}", std::process::id()));
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut cfg = strato_e2e::fast_config();
    // The defaults: a round every minute, five minutes of grace.
    cfg["status_interval_secs"] = 60.0.into();
    cfg["status_grace_secs"] = 300.0.into();
    let d = Daemon::start_with_env(
        "svc",
        cfg,
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    assert!(
        msg.lines()
            .any(|l| l == format!("MAINPID={}", d.pid().unwrap())),
        "{msg:?}"
    );
    let _ = std::fs::remove_file(&notify_path);
    // Ready means answering: the first call after READY=1 succeeds.
    d.cli(&["describe-regions"]);

    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    let running = Instant::now();
    // The guest is up once it has its address (it then answers ARP).
    let deadline = Instant::now() + T;
    while !d.console(&id).contains("probe: ip ") {
        assert!(Instant::now() < deadline, "{}", d.console(&id));
        std::thread::sleep(Duration::from_millis(20));
    }
    let booted = Instant::now();
    let s = d.wait_status(&id, ("ok", "ok"), Duration::from_secs(10));
    eprintln!(
        "running -> guest has its address: {:?}; -> status ok: {:?} (status interval 60 s)",
        booted - running,
        booted.elapsed()
    );
    // Not the next round a minute away: the first checks run as the guest comes up, and
    // see it within a second (plus this test's polling).
    assert!(
        booted.elapsed() < Duration::from_millis(1500),
        "{:?}: {s}",
        booted.elapsed()
    );
    assert_eq!(s["InstanceStatus"]["Details"][0]["Status"], "passed");

    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    d.cli(&["terminate-instances", "--instance-ids", &id, "--wait"]);
    let log = d.log();
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(id.as_str())).collect();
    for event in [
        "launch",
        "pending -> running",
        "running -> stopping",
        "stopping -> stopped",
        "stopped -> shutting-down",
        "shutting-down -> terminated",
    ] {
        let n = lines.iter().filter(|l| l.contains(event)).count();
        assert_eq!(n, 1, "{event}: {n} lines of {id}:\n{}", lines.join("\n"));
    }
    // Status changes: initializing to ok, possibly the system check first.
    let changes: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("status changed"))
        .collect();
    assert!(
        (1..=2).contains(&changes.len())
            && changes
                .last()
                .is_some_and(|l| l.contains("system=\"ok\" reachability=\"ok\"")),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn the_cli_says_what_to_do_next() {
    let d = Daemon::start("guide");
    let ami = d.register_probe("probe");
    let stderr = |args: &[&str]| {
        let out = d.cli_raw(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // An unknown instance type names the listing and the custom form, which it shows.
    let err = d.cli_err(
        "InvalidParameterValue",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "t9.huge",
        ],
    );
    assert!(
        err.contains("describe-instance-types") && err.contains("custom-<vcpus>-<MiB>"),
        "{err}"
    );
    let types = d.cli(&["describe-instance-types"]);
    assert!(
        types
            .lines()
            .last()
            .unwrap()
            .starts_with("custom-<vcpus>-<MiB>"),
        "{types}"
    );
    // An image name where its ID belongs.
    let err = d.cli_err(
        "InvalidAMIID.Malformed",
        &["run-instances", "--image-id", "probe"],
    );
    assert!(
        err.contains("strato describe-images --filters Name=name,Values=probe"),
        "{err}"
    );
    // EC2's message for a malformed instance ID.
    let err = d.cli_err(
        "InvalidInstanceID.Malformed",
        &["describe-instances", "--instance-ids", "i-nope"],
    );
    assert!(err.trim_end().ends_with(r#"Invalid id: "i-nope""#), "{err}");
    // No uplink: the config field to set.
    let err = d.cli_err("UnsupportedOperation", &["allocate-address"]);
    assert!(err.contains("\"uplink\""), "{err}");
    // A page size EC2 refuses is refused by the CLI, naming the option.
    let err = stderr(&["describe-instances", "--page-size", "3"]);
    assert!(err.contains("--page-size"), "{err}");
    assert_eq!(
        d.cli_raw(&["describe-images", "--page-size", "4"])
            .status
            .code(),
        Some(2)
    );
    // No daemon at the endpoint: how to start one or point at it.
    let out = Command::new(bin("strato"))
        .env(
            "STRATO_ENDPOINT",
            format!("unix:{}", d.dir.join("absent.sock").display()),
        )
        .arg("describe-instances")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    for needle in ["STRATO_ENDPOINT", "--endpoint", "scripts/run.sh"] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // JMESPath multiselect lists and hashes, as the AWS CLI's --query.
    let out = d.cli(&[
        "describe-images",
        "--query",
        "Images[].[ImageId, Name]",
        "--output",
        "text",
    ]);
    assert_eq!(out, format!("{ami}\tprobe\n"));
    let v = d.json(&[
        "describe-images",
        "--query",
        "Images[].{Id: ImageId, N: Name}",
    ]);
    assert_eq!(v, serde_json::json!([{"Id": ami, "N": "probe"}]));
}
