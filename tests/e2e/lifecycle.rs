//! The instance lifecycle through the CLI: launch with user data, describe and filter, stop
//! (graceful and forced), start, reboot, the guest powering itself off under both shutdown
//! behaviors, termination protection, illegal transitions, and termination.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use strato_e2e::Daemon;

const T: Duration = Duration::from_secs(30);

#[test]
fn whole_lifecycle_through_the_cli() {
    let d = Daemon::start("life");
    let ami = d.register_probe("probe");
    let ud = d.file("ud.txt", b"#!probe\necho hello from user data\n");
    let ud_arg = format!("file://{}", ud.display());
    let ids = d.run(
        &ami,
        &[
            "--count",
            "2",
            "--user-data",
            &ud_arg,
            "--tags",
            "Key=Name,Value=web",
        ],
    );
    assert_eq!(ids.len(), 2);
    for id in &ids {
        d.wait_state(id, "running", T);
        // User data reached the guest through the config drive.
        d.wait_console(id, "probe: user-data: hello from user data", T);
    }
    let a = &ids[0];
    let inst = d.instance(a);
    assert_eq!(inst["State"]["Code"], 16);
    assert_eq!(inst["InstanceType"], "custom-1-64");
    let ip = inst["PrivateIpAddress"].as_str().unwrap().to_string();
    assert!(ip.starts_with("172.31."), "{ip}");
    assert_eq!(inst["BlockDeviceMappings"][0]["DeviceName"], "/dev/vda");

    // Filters.
    let v = d.json(&[
        "describe-instances",
        "--filters",
        "Name=instance-state-name,Values=running",
        "Name=tag:Name,Values=we*",
    ]);
    assert_eq!(strato_e2e::instances_of(&v).len(), 2);
    // One launch, one reservation.
    assert_eq!(v["Reservations"].as_array().unwrap().len(), 1, "{v}");
    let v = d.json(&[
        "describe-instances",
        "--filters",
        "Name=instance-state-name,Values=stopped",
    ]);
    assert_eq!(strato_e2e::instances_of(&v).len(), 0);
    d.cli_err(
        "InvalidParameterValue",
        &["describe-instances", "--filters", "Name=colour,Values=red"],
    );

    // Reboot keeps it running on a fresh monitor; the guest boots again.
    let boots = d.console(a).matches("probe: ready").count();
    d.cli(&["reboot-instances", "--instance-ids", a]);
    let deadline = std::time::Instant::now() + T;
    while d.console(a).matches("probe: ready").count() <= boots {
        assert!(std::time::Instant::now() < deadline, "no second boot");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(d.state(a), "running");

    // Graceful stop: the probe powers off on the ACPI power button.
    let v = d.json(&["stop-instances", "--instance-ids", a]);
    assert_eq!(
        v["StoppingInstances"][0]["PreviousState"]["Name"],
        "running"
    );
    assert_eq!(
        v["StoppingInstances"][0]["CurrentState"]["Name"],
        "stopping"
    );
    d.wait_state(a, "stopped", T);
    assert!(d.console(a).contains("probe: power-button\n"));
    // The private IP survives stop and start.
    assert_eq!(d.instance(a)["PrivateIpAddress"], ip.as_str());
    // Stop on a stopped instance is no error; reboot is.
    let v = d.json(&["stop-instances", "--instance-ids", a]);
    assert_eq!(v["StoppingInstances"][0]["CurrentState"]["Name"], "stopped");
    d.cli_err(
        "IncorrectInstanceState",
        &["reboot-instances", "--instance-ids", a],
    );
    d.cli(&["start-instances", "--instance-ids", a, "--wait"]);
    assert_eq!(d.state(a), "running");
    assert_eq!(d.instance(a)["PrivateIpAddress"], ip.as_str());

    // Forced stop.
    d.cli(&["stop-instances", "--instance-ids", a, "--force", "--wait"]);
    assert_eq!(d.state(a), "stopped");

    // Termination is final and idempotent; terminated instances stay listed.
    let v = d.json(&["terminate-instances", "--instance-ids", a, "--wait"]);
    assert_eq!(
        v["TerminatingInstances"][0]["PreviousState"]["Name"],
        "stopped"
    );
    assert_eq!(d.state(a), "terminated");
    let v = d.json(&["terminate-instances", "--instance-ids", a]);
    assert_eq!(
        v["TerminatingInstances"][0]["CurrentState"]["Name"],
        "terminated"
    );
    d.cli_err(
        "IncorrectInstanceState",
        &["start-instances", "--instance-ids", a],
    );
    assert_eq!(d.instance(a)["State"]["Code"], 48);
    // Its root volume (DeleteOnTermination) is gone with it.
    let vols = d.json(&["describe-volumes"]);
    assert_eq!(vols["Volumes"].as_array().unwrap().len(), 1, "{vols}");

    d.cli(&["terminate-instances", "--instance-ids", &ids[1], "--wait"]);

    // Usage: two instances metered at least a minute each, volumes in GiB-seconds.
    let u = d.json(&["usage"]);
    let recs = u["Usage"].as_array().unwrap();
    let inst_secs: Vec<i64> = recs
        .iter()
        .filter(|r| r["ResourceType"] == "instance")
        .map(|r| r["Seconds"].as_i64().unwrap())
        .collect();
    assert_eq!(inst_secs.len(), 2, "{u}");
    // Instance a ran three periods (launch, start; the reboot kept its period).
    assert!(inst_secs.iter().any(|&s| s >= 120), "{u}");
    assert!(
        recs.iter()
            .any(|r| r["ResourceType"] == "volume" && r["GiBSeconds"].as_i64().unwrap() >= 1),
        "{u}"
    );
}

#[test]
fn guest_poweroff_follows_the_shutdown_behavior_and_protection_holds() {
    let d = Daemon::start("poweroff");
    let ami = d.register_probe("probe");
    let off = d.file("off.txt", b"poweroff\n");
    let off_arg = format!("file://{}", off.display());
    let stop = d.run(&ami, &["--user-data", &off_arg])[0].clone();
    let term = d.run(
        &ami,
        &[
            "--user-data",
            &off_arg,
            "--instance-initiated-shutdown-behavior",
            "terminate",
        ],
    )[0]
    .clone();
    d.wait_state(&stop, "stopped", T);
    d.wait_state(&term, "terminated", T);
    let reason = d.instance(&stop).to_string();
    assert!(reason.contains("InstanceInitiatedShutdown"), "{reason}");

    // Termination protection.
    let p = d.run(&ami, &["--disable-api-termination"])[0].clone();
    d.wait_state(&p, "running", T);
    d.cli_err(
        "OperationNotPermitted",
        &["terminate-instances", "--instance-ids", &p],
    );
    assert_eq!(d.state(&p), "running");
    d.cli(&[
        "modify-instance-attribute",
        "--instance-id",
        &p,
        "--no-disable-api-termination",
    ]);
    d.cli(&["terminate-instances", "--instance-ids", &p, "--wait"]);
}

/// Sends one request to an instance's monitor socket.
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
fn stop_forces_a_guest_that_ignores_ctrl_alt_del() {
    let d = Daemon::start("forced");
    let ami = d.register_probe("probe");
    // It ignores the power button too, which the stop presses first.
    let ud = d.file("ud.txt", b"ignore-power-button\nignore-ctrl-alt-del\n");
    let id = d.run(&ami, &["--user-data", &format!("file://{}", ud.display())])[0].clone();
    d.wait_state(&id, "running", T);
    d.wait_console(&id, "probe: user-data done", T);
    // The guest ignores the button and Ctrl-Alt-Del: the stop waits the timeout (3 s in the test config),
    // then forces the VM off.
    let t0 = std::time::Instant::now();
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    assert_eq!(d.state(&id), "stopped");
    assert!(d.console(&id).contains("probe: ctrl-alt-del ignored"));
    assert!(d.log().contains("forcing"), "{}", d.log());
}

#[test]
fn stop_of_a_paused_vm_forces_it_at_once() {
    let d = Daemon::start("paused");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    // A paused VM cannot take the key press; the monitor says so and the stop goes on.
    assert!(monitor(&d, &id, r#"{"op":"pause"}"#).contains("\"ok\":true"));
    let t0 = std::time::Instant::now();
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    assert!(
        t0.elapsed() < Duration::from_millis(2900),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(d.state(&id), "stopped");
}

#[test]
fn instance_store_is_wiped_on_stop_and_kept_across_reboot() {
    let d = Daemon::start("store");
    let ami = d.register_probe("probe");
    let v = d.json(&[
        "run-instances",
        "--image-id",
        &ami,
        "--instance-type",
        "m5d.large",
        "--block-device-mappings",
        r#"[{"DeviceName":"/dev/vdb","VirtualName":"ephemeral0"}]"#,
    ]);
    let id = v["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    d.wait_state(&id, "running", T);
    let store = d.data().join("instances").join(&id).join("ephemeral0.img");
    assert_eq!(std::fs::metadata(&store).unwrap().len(), 75 << 30);
    // The guest sees it as its second disk.
    d.wait_console(&id, "probe: disk vdb size 80530636800", T);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&store)
            .unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(b"scratch data").unwrap();
    }
    d.cli(&["reboot-instances", "--instance-ids", &id]);
    std::thread::sleep(Duration::from_secs(1));
    d.wait_state(&id, "running", T);
    assert_eq!(strato_e2e::read_at(&store, 4096, 12), b"scratch data");
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    assert!(!store.exists(), "instance store kept after stop");
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    assert_eq!(strato_e2e::read_at(&store, 4096, 12), vec![0u8; 12]);
}
