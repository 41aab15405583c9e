//! What the guest does to its own power, and how the daemon asks it: a guest `reboot` boots
//! the instance again in place (still `running`, same volumes, MAC and address, one billing
//! period), a guest power-off follows the shutdown behavior (DeleteOnTermination honoured),
//! StopInstances and TerminateInstances press the ACPI power button first, then Ctrl-Alt-Del,
//! then force the VM off after `stop_timeout_secs` (3 s in the test config); and the SMBIOS
//! identity each guest reads.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use strato_e2e::Daemon;

const T: Duration = Duration::from_secs(30);

/// Launches one probe instance with `script` as its user data and these extra arguments.
fn run_script(d: &Daemon, ami: &str, name: &str, script: &str, extra: &[&str]) -> String {
    let ud = d.file(name, script.as_bytes());
    let arg = format!("file://{}", ud.display());
    let mut args = vec!["--user-data", arg.as_str()];
    args.extend_from_slice(extra);
    d.run(ami, &args)[0].clone()
}

/// Waits until the console shows `needle` at least `n` times.
fn wait_count(d: &Daemon, id: &str, needle: &str, n: usize) -> String {
    let deadline = Instant::now() + T;
    loop {
        let c = d.console(id);
        if c.matches(needle).count() >= n {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{id}: {needle:?} not {n} times on the console:\n{c}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The rest of each console line that starts with `prefix`, in order.
fn lines_after<'a>(console: &'a str, prefix: &str) -> Vec<&'a str> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .collect()
}

/// The IDs of the volumes attached to an instance, sorted.
fn volume_ids(inst: &Value) -> Vec<String> {
    let mut v: Vec<String> = inst["BlockDeviceMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["Ebs"]["VolumeId"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The running seconds the usage report gives an instance.
fn instance_seconds(d: &Daemon, id: &str) -> i64 {
    let u = d.json(&["usage"]);
    let recs: Vec<&Value> = u["Usage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ResourceId"] == id)
        .collect();
    assert_eq!(recs.len(), 1, "{u}");
    recs[0]["Seconds"].as_i64().unwrap()
}

/// The system UUID (and serial number) strato gives an instance, as the daemon derives it.
fn ec2_uuid(id: &str) -> String {
    let d = Sha256::digest(format!("strato system uuid {id}").as_bytes());
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    let hex = format!("ec2{}", &hex[3..]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[test]
fn a_guest_reboot_boots_the_instance_again_in_place() {
    let d = Daemon::start("greboot");
    let ami = d.register_probe("probe");
    let t0 = Instant::now();
    // Reboot once: the marker on the root volume, written before the reboot, stops the
    // script on the second boot (so that the same volume is proven to be there).
    let id = run_script(
        &d,
        &ami,
        "reboot.txt",
        "stop-if-marker vda 8 rebooted\nmarker vda 8 rebooted\nreboot\n",
        &[],
    );
    d.wait_state(&id, "running", T);
    let before = d.instance(&id);
    let c = d.wait_console(&id, "probe: marker vda 8 found", T);
    let c = if c.contains("probe: user-data done") {
        c
    } else {
        d.wait_console(&id, "probe: user-data done", T)
    };
    // Two boots on the console, the reset between them.
    assert_eq!(c.matches("probe: ready").count(), 2, "{c}");
    assert_eq!(c.matches("probe: reboot\n").count(), 1, "{c}");
    assert_eq!(c.matches("probe: marker vda 8 absent").count(), 1, "{c}");
    assert_eq!(c.matches("probe: marker vda 8 ok").count(), 1, "{c}");
    // Still running, never stopped: the same launch, volumes, MAC and private address.
    let after = d.instance(&id);
    assert_eq!(after["State"]["Name"], "running", "{after}");
    assert_eq!(after["LaunchTime"], before["LaunchTime"]);
    assert_eq!(volume_ids(&after), volume_ids(&before));
    assert_eq!(volume_ids(&after).len(), 1);
    let mac = after["NetworkInterfaces"][0]["MacAddress"]
        .as_str()
        .unwrap();
    let ip = after["PrivateIpAddress"].as_str().unwrap();
    assert_eq!(lines_after(&c, "probe: net eth0 mac "), [mac, mac], "{c}");
    let ips = lines_after(&c, "probe: ip ");
    assert_eq!(ips.len(), 2, "{c}");
    assert!(ips.iter().all(|a| a.split('/').next() == Some(ip)), "{c}");
    let log = d.log();
    assert!(log.contains("guest reset itself"), "{log}");
    assert!(!log.contains("monitor died"), "{log}");
    // The fresh monitor passes both status checks (the guest answers ARP again).
    d.wait_status(&id, ("ok", "ok"), T);

    // One running period: with the 60-second minimum, two would be 120 seconds or more.
    d.cli(&["terminate-instances", "--instance-ids", &id, "--wait"]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(110), "{took:?}");
    let secs = instance_seconds(&d, &id);
    assert!((60..120).contains(&secs), "{secs} s");
}

#[test]
fn a_guest_power_off_follows_the_shutdown_behavior_and_delete_on_termination() {
    let d = Daemon::start("gpoweroff");
    let ami = d.register_probe("probe");
    let extra = r#"[{"DeviceName":"/dev/vdb","Ebs":{"VolumeSize":1,"DeleteOnTermination":false}}]"#;
    let stop = run_script(
        &d,
        &ami,
        "off.txt",
        "poweroff\n",
        &["--block-device-mappings", extra],
    );
    let term = run_script(
        &d,
        &ami,
        "off2.txt",
        "poweroff\n",
        &[
            "--block-device-mappings",
            extra,
            "--instance-initiated-shutdown-behavior",
            "terminate",
        ],
    );
    d.wait_state(&stop, "stopped", T);
    d.wait_state(&term, "terminated", T);
    for id in [&stop, &term] {
        let c = d.console(id);
        // ACPI S5, not the keyboard controller's reset: the guest powered off.
        assert!(c.contains("probe: acpi ok"), "{c}");
        assert!(c.contains("probe: poweroff"), "{c}");
        assert_eq!(c.matches("probe: ready").count(), 1, "{c}");
    }
    let i = d.instance(&stop);
    assert!(
        i["StateTransitionReason"]
            .as_str()
            .unwrap()
            .contains("InstanceInitiatedShutdown"),
        "{i}"
    );
    // Stopped: both volumes stay attached.
    let vols = d.json(&["describe-volumes"]);
    let vols = vols["Volumes"].as_array().unwrap();
    let of = |id: &str| -> Vec<&Value> {
        vols.iter()
            .filter(|v| {
                v["Attachments"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["InstanceId"] == id))
            })
            .collect()
    };
    assert_eq!(of(&stop).len(), 2, "{vols:?}");
    // Terminated: its root (DeleteOnTermination) is gone, its data volume is available.
    assert!(of(&term).is_empty(), "{vols:?}");
    assert_eq!(vols.len(), 3, "{vols:?}");
    assert_eq!(
        vols.iter().filter(|v| v["State"] == "available").count(),
        1,
        "{vols:?}"
    );
}

#[test]
fn stop_and_terminate_press_the_power_button() {
    let d = Daemon::start("gbutton");
    let ami = d.register_probe("probe");
    let a = d.run(&ami, &[])[0].clone();
    let b = d.run(&ami, &[])[0].clone();
    for id in [&a, &b] {
        d.wait_state(id, "running", T);
        d.wait_console(id, "probe: idle", T);
    }
    d.cli(&["stop-instances", "--instance-ids", &a, "--wait"]);
    d.cli(&["terminate-instances", "--instance-ids", &b, "--wait"]);
    assert_eq!(d.state(&a), "stopped");
    assert_eq!(d.state(&b), "terminated");
    for id in [&a, &b] {
        // The guest went down on the button, before anything else was tried.
        let c = d.console(id);
        assert!(c.contains("probe: power-button\n"), "{c}");
        assert!(!c.contains("probe: ctrl-alt-del"), "{c}");
    }
    assert!(!d.log().contains("forcing"), "{}", d.log());
}

#[test]
fn a_guest_that_ignores_the_button_gets_ctrl_alt_del_then_is_forced_off() {
    let d = Daemon::start("gignore");
    let ami = d.register_probe("probe");
    let button = run_script(&d, &ami, "b.txt", "ignore-power-button\n", &[]);
    let both = run_script(
        &d,
        &ami,
        "both.txt",
        "ignore-power-button\nignore-ctrl-alt-del\n",
        &[],
    );
    for id in [&button, &both] {
        d.wait_state(id, "running", T);
        d.wait_console(id, "probe: user-data done", T);
    }
    // Ignores the button: Ctrl-Alt-Del follows at half the stop timeout and works.
    let t0 = Instant::now();
    d.cli(&["stop-instances", "--instance-ids", &button, "--wait"]);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    assert_eq!(d.state(&button), "stopped");
    let c = d.console(&button);
    let ignored = c.find("probe: power-button ignored").expect(&c);
    let cad = c.find("probe: ctrl-alt-del\n").expect(&c);
    assert!(ignored < cad, "{c}");
    assert!(!d.log().contains("forcing"), "{}", d.log());

    // Ignores both: forced off at the timeout.
    let t0 = Instant::now();
    d.cli(&["terminate-instances", "--instance-ids", &both, "--wait"]);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    assert_eq!(d.state(&both), "terminated");
    let c = d.console(&both);
    assert!(c.contains("probe: power-button ignored"), "{c}");
    assert!(c.contains("probe: ctrl-alt-del ignored"), "{c}");
    assert!(d.log().contains("forcing"), "{}", d.log());
}

#[test]
fn the_guest_reads_its_instance_in_smbios() {
    let d = Daemon::start("gsmbios");
    let ami = d.register_probe("probe");
    let v = d.json(&[
        "run-instances",
        "--image-id",
        &ami,
        "--instance-type",
        "t3.micro",
        "--count",
        "2",
    ]);
    let ids: Vec<String> = v["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["InstanceId"].as_str().unwrap().to_string())
        .collect();
    let mut serials = Vec::new();
    for id in &ids {
        d.wait_state(id, "running", T);
        let c = d.wait_console(id, "probe: idle", T);
        let serial = ec2_uuid(id);
        assert!(serial.starts_with("ec2"), "{serial}");
        assert_eq!(
            lines_after(&c, "probe: smbios "),
            [format!("strato t3.micro {serial}")],
            "{c}"
        );
        serials.push(serial);
    }
    assert_ne!(serials[0], serials[1]);
    // The identity belongs to the instance: the same after a reboot on a fresh monitor.
    d.cli(&["reboot-instances", "--instance-ids", &ids[0]]);
    let c = wait_count(&d, &ids[0], "probe: idle", 2);
    assert_eq!(
        lines_after(&c, "probe: smbios "),
        [
            format!("strato t3.micro {}", serials[0]),
            format!("strato t3.micro {}", serials[0])
        ],
        "{c}"
    );
    // RebootInstances asked the guest through the power button too.
    assert!(c.contains("probe: power-button\n"), "{c}");
}
