//! Enhanced networking (EC2's `EnaSupport`) end to end: an image with it launches an
//! instance whose monitor builds the enhanced virtio-net device on a multiqueue tap (one
//! queue pair per vCPU, plus the control queue), shown by the monitor's own `lab` reply
//! on its control socket; the guest still gets its DHCP lease and passes its status
//! checks. The attribute changes only while the instance is stopped, and the device
//! follows at the next start. The same through the aws CLI's view of it.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value;
use strato_e2e::Daemon;

const T: Duration = Duration::from_secs(30);

fn s(v: &Value) -> String {
    v.as_str().unwrap().to_string()
}

/// The virtqueues of the instance's first interface (`eth0`), from its monitor's `lab`.
fn eth0_queues(d: &Daemon, id: &str) -> usize {
    let sock = d.data().join("instances").join(id).join("api.sock");
    let mut stream = UnixStream::connect(&sock).unwrap();
    stream.write_all(b"{\"op\": \"lab\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    let lab: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(lab["ok"], true, "{lab}");
    lab["virtqueues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["device"] == "eth0")
        .count()
}

fn register(d: &Daemon, name: &str, extra: &[&str]) -> String {
    let bundle = strato_e2e::probe_bundle();
    let mut args = vec![
        "register-image",
        "--name",
        name,
        "--bundle",
        bundle.to_str().unwrap(),
        "--boot-args",
        "console=ttyS0 probe.dhcp",
        "--block-device-mappings",
        r#"[{"DeviceName":"/dev/vda","Ebs":{"VolumeSize":1,"DeleteOnTermination":true}}]"#,
    ];
    args.extend_from_slice(extra);
    s(&d.json(&args)["ImageId"])
}

/// Waits for the lease and both status checks: the guest's network works on this device.
fn network_works(d: &Daemon, id: &str) {
    let ip = s(&d.instance(id)["PrivateIpAddress"]);
    d.wait_console(id, &format!("probe: dhcp {ip}/20"), T);
    d.wait_status(id, ("ok", "ok"), T);
}

#[test]
fn ena_support_gives_the_enhanced_multiqueue_device() {
    let d = Daemon::start("ena");
    // A bundle is ENA enabled unless told otherwise (strato's images are its
    // Amazon-provided ones); --no-ena-support registers a plain one.
    let ena = register(&d, "probe-ena", &[]);
    let plain = register(&d, "probe-plain", &["--no-ena-support"]);
    let image = |ami: &str| d.json(&["describe-images", "--image-ids", ami])["Images"][0].clone();
    assert_eq!(image(&ena)["EnaSupport"], true);
    assert_eq!(image(&plain)["EnaSupport"], false);
    let v = d.json(&[
        "describe-images",
        "--filters",
        "Name=ena-support,Values=false",
    ]);
    let ids: Vec<String> = v["Images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| s(&i["ImageId"]))
        .collect();
    assert_eq!(ids, vec![plain.clone()]);

    // Two vCPUs: two queue pairs and the control queue.
    let v = d.json(&[
        "run-instances",
        "--image-id",
        &ena,
        "--instance-type",
        "custom-2-64",
    ]);
    let id = s(&v["Instances"][0]["InstanceId"]);
    d.wait_state(&id, "running", T);
    assert_eq!(d.instance(&id)["EnaSupport"], true);
    network_works(&d, &id);
    assert_eq!(eth0_queues(&d, &id), 5, "{}", d.log());

    // Not while it runs: EC2's IncorrectInstanceState, and nothing changes.
    d.cli_err(
        "IncorrectInstanceState",
        &[
            "modify-instance-attribute",
            "--instance-id",
            &id,
            "--no-ena-support",
        ],
    );
    assert_eq!(d.instance(&id)["EnaSupport"], true);

    // Stopped, it changes; the next start builds the plain device (one pair, no control
    // queue) and the guest's network still works.
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    d.cli(&[
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--no-ena-support",
    ]);
    assert_eq!(d.instance(&id)["EnaSupport"], false);
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    network_works(&d, &id);
    assert_eq!(eth0_queues(&d, &id), 2);

    // And back.
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    d.cli(&[
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--ena-support",
    ]);
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    network_works(&d, &id);
    assert_eq!(eth0_queues(&d, &id), 5);

    // An instance of the plain image inherits its attribute.
    let other = d.run(&plain, &[]).remove(0);
    d.wait_state(&other, "running", T);
    assert_eq!(d.instance(&other)["EnaSupport"], false);
    network_works(&d, &other);
    assert_eq!(eth0_queues(&d, &other), 2);
}

#[test]
fn the_aws_cli_sees_and_changes_ena_support() {
    let d = Daemon::start_with("qena", strato_e2e::query::query_config());
    let ami = d.register_probe("probe");
    let aws = d.aws(None);
    let images = aws.json(&["ec2", "describe-images", "--image-ids", &ami]);
    assert_eq!(images["Images"][0]["EnaSupport"], true);
    let run = aws.json(&[
        "ec2",
        "run-instances",
        "--image-id",
        &ami,
        "--instance-type",
        "custom-1-64",
        "--count",
        "1",
    ]);
    let id = s(&run["Instances"][0]["InstanceId"]);
    d.wait_state(&id, "running", T);
    let attr = |aws: &strato_e2e::query::Aws<'_>| {
        aws.json(&[
            "ec2",
            "describe-instance-attribute",
            "--instance-id",
            &id,
            "--attribute",
            "enaSupport",
        ])["EnaSupport"]["Value"]
            .clone()
    };
    assert_eq!(attr(&aws), true);
    aws.err(
        "IncorrectInstanceState",
        &[
            "ec2",
            "modify-instance-attribute",
            "--instance-id",
            &id,
            "--no-ena-support",
        ],
    );
    aws.json(&["ec2", "stop-instances", "--instance-ids", &id]);
    d.wait_state(&id, "stopped", T);
    aws.json(&[
        "ec2",
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--no-ena-support",
    ]);
    assert_eq!(attr(&aws), false);
    let v = aws.json(&["ec2", "describe-instances", "--instance-ids", &id]);
    assert_eq!(v["Reservations"][0]["Instances"][0]["EnaSupport"], false);
    aws.json(&[
        "ec2",
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--attribute",
        "enaSupport",
        "--value",
        "true",
    ]);
    assert_eq!(attr(&aws), true);
}
