//! Volumes and snapshots end to end: create, hot attach to a running guest (which sees the
//! disk appear and go), attach to a stopped instance (the disk is there at the next boot),
//! detach and delete; snapshots of a volume's bytes and volumes made from them; snapshots
//! held by an AMI; DeleteOnTermination of root, launch-time and attached volumes; and the
//! refusals of attachments that cannot be.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use serde_json::Value;
use strato_e2e::{read_at, Daemon};

const T: Duration = Duration::from_secs(30);
const GIB: u64 = 1 << 30;
const AZ: &str = "home-1a";

/// Creates a blank 1 GiB volume in `az`; returns its ID.
fn create_volume(d: &Daemon, az: &str) -> String {
    let v = d.json(&["create-volume", "--size", "1", "--availability-zone", az]);
    assert_eq!(v["State"], "available", "{v}");
    v["VolumeId"].as_str().unwrap().to_string()
}

/// One volume as DescribeVolumes shows it.
fn volume(d: &Daemon, id: &str) -> Value {
    let v = d.json(&["describe-volumes", "--volume-ids", id]);
    v["Volumes"][0].clone()
}

/// The attachments of a volume (none when the listing leaves the field out).
fn attachments(v: &Value) -> Vec<Value> {
    v["Attachments"].as_array().cloned().unwrap_or_default()
}

/// Waits until the volume is in `state`.
fn wait_volume(d: &Daemon, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let v = volume(d, id);
        if v["State"] == state {
            return v;
        }
        assert!(Instant::now() < deadline, "{id} is not {state}: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The file of a volume.
fn volume_file(d: &Daemon, id: &str) -> std::path::PathBuf {
    d.data().join("volumes").join(format!("{id}.img"))
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
            "{id}: {needle:?} not {n} times on the console:\n{c}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The console output of the latest boot (from the last `probe: ready`).
fn last_boot(console: &str) -> &str {
    console
        .rfind("probe: ready")
        .map(|i| &console[i..])
        .unwrap_or(console)
}

/// The disks of 1 GiB the probe reported in `text`, as `vdX` names.
fn gib_disks(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("probe: disk "))
        .filter(|l| l.contains(&format!(" size {GIB} sum ")))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

/// The volume IDs of an instance's mapping by device name.
fn mapped_volumes(d: &Daemon, id: &str) -> Vec<(String, String, bool)> {
    let inst = d.instance(id);
    inst["BlockDeviceMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["DeviceName"].as_str().unwrap().to_string(),
                b["Ebs"]["VolumeId"].as_str().unwrap().to_string(),
                b["Ebs"]["DeleteOnTermination"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn hot_attach_and_detach_on_a_running_guest() {
    let d = Daemon::start("vol-hot");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    let boot = d.wait_console(&id, "probe: idle", T);
    assert_eq!(gib_disks(&boot), ["vda"], "{boot}");

    let v = d.json(&["create-volume", "--size", "1", "--availability-zone", AZ]);
    let vol = v["VolumeId"].as_str().unwrap().to_string();
    assert!(vol.starts_with("vol-"), "{v}");
    assert_eq!(v["State"], "available");
    assert_eq!(v["Size"], 1);
    assert_eq!(v["AvailabilityZone"], AZ);
    assert!(attachments(&v).is_empty(), "{v}");
    assert_eq!(std::fs::metadata(volume_file(&d, &vol)).unwrap().len(), GIB);

    // Hot attach: the guest sees a new 1 GiB disk.
    let a = d.json(&[
        "attach-volume",
        "--volume-id",
        &vol,
        "--instance-id",
        &id,
        "--device",
        "/dev/vdf",
    ]);
    assert_eq!(a["VolumeId"], vol.as_str(), "{a}");
    assert_eq!(a["InstanceId"], id.as_str(), "{a}");
    assert_eq!(a["Device"], "/dev/vdf", "{a}");
    assert_eq!(a["State"], "attached", "{a}");
    let c = wait_count(&d, &id, &format!(" size {GIB} sum "), 2);
    let disks = gib_disks(&c);
    assert_eq!(disks.len(), 2, "{c}");
    let hot = disks[1].clone();
    assert_ne!(hot, "vda");
    let v = volume(&d, &vol);
    assert_eq!(v["State"], "in-use", "{v}");
    let att = attachments(&v);
    assert_eq!(att.len(), 1, "{v}");
    assert_eq!(att[0]["InstanceId"], id.as_str());
    assert_eq!(att[0]["Device"], "/dev/vdf");
    assert_eq!(att[0]["State"], "attached");
    assert_eq!(att[0]["DeleteOnTermination"], false);
    assert!(mapped_volumes(&d, &id)
        .iter()
        .any(|(dev, v, _)| dev == "/dev/vdf" && *v == vol));

    d.cli_err("VolumeInUse", &["delete-volume", "--volume-id", &vol]);
    assert!(volume_file(&d, &vol).exists());

    // Detach: the guest sees the slot empty again.
    let attach_line = c.rfind(&format!("probe: disk {hot} size {GIB}")).unwrap();
    let a = d.json(&["detach-volume", "--volume-id", &vol]);
    assert_eq!(a["VolumeId"], vol.as_str(), "{a}");
    let deadline = Instant::now() + T;
    loop {
        let c = d.console(&id);
        if c[attach_line..].contains(&format!("probe: disk {hot} size 0\n")) {
            break;
        }
        assert!(Instant::now() < deadline, "no detach on the console:\n{c}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let v = wait_volume(&d, &vol, "available");
    assert!(attachments(&v).is_empty(), "{v}");
    assert!(!mapped_volumes(&d, &id).iter().any(|(_, v, _)| *v == vol));
    assert_eq!(d.state(&id), "running");

    d.cli(&["delete-volume", "--volume-id", &vol]);
    assert!(!volume_file(&d, &vol).exists());
    assert!(!d.files("volumes").contains(&format!("{vol}.img")));
    d.cli_err(
        "InvalidVolume.NotFound",
        &["describe-volumes", "--volume-ids", &vol],
    );
    d.cli_err(
        "InvalidVolume.NotFound",
        &["delete-volume", "--volume-id", &vol],
    );
}

#[test]
fn attach_to_a_stopped_instance_shows_at_the_next_boot() {
    let d = Daemon::start("vol-cold");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    d.wait_console(&id, "probe: idle", T);
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);

    let vol = create_volume(&d, AZ);
    let a = d.json(&[
        "attach-volume",
        "--volume-id",
        &vol,
        "--instance-id",
        &id,
        "--device",
        "/dev/vdf",
    ]);
    assert_eq!(a["State"], "attached", "{a}");
    let v = volume(&d, &vol);
    assert_eq!(v["State"], "in-use", "{v}");
    assert_eq!(attachments(&v)[0]["InstanceId"], id.as_str());
    assert_eq!(d.state(&id), "stopped");

    // At boot the volume is a disk in device order: after vda, before the config drive.
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    let c = wait_count(&d, &id, "probe: idle", 2);
    let boot = last_boot(&c);
    assert_eq!(gib_disks(boot), ["vda", "vdb"], "{boot}");
    assert_eq!(attachments(&volume(&d, &vol))[0]["State"], "attached");

    // Detach from the stopped instance: in the records only, gone at the next boot.
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    d.cli(&["detach-volume", "--volume-id", &vol, "--instance-id", &id]);
    let v = wait_volume(&d, &vol, "available");
    assert!(attachments(&v).is_empty(), "{v}");
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    let c = wait_count(&d, &id, "probe: idle", 3);
    let boot = last_boot(&c);
    assert_eq!(gib_disks(boot), ["vda"], "{boot}");
    d.cli(&["delete-volume", "--volume-id", &vol]);
}

#[test]
fn snapshots_copy_bytes_and_volumes_restore_them() {
    let d = Daemon::start("vol-snap");
    let vol = create_volume(&d, AZ);
    // Write into the detached volume's file, at the start and deep inside.
    let head: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let deep = b"strato snapshot: bytes at 512 MiB";
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(volume_file(&d, &vol))
            .unwrap();
        f.write_all_at(&head, 0).unwrap();
        f.write_all_at(deep, 512 << 20).unwrap();
    }

    let s = d.json(&[
        "create-snapshot",
        "--volume-id",
        &vol,
        "--description",
        "nightly",
        "--wait",
    ]);
    let snap = s["SnapshotId"].as_str().unwrap().to_string();
    assert!(snap.starts_with("snap-"), "{s}");
    assert_eq!(s["State"], "completed", "{s}");
    let v = d.json(&["describe-snapshots", "--snapshot-ids", &snap]);
    let sn = &v["Snapshots"][0];
    assert_eq!(sn["State"], "completed", "{v}");
    assert_eq!(sn["Progress"], "100%", "{v}");
    assert_eq!(sn["VolumeId"], vol.as_str());
    assert_eq!(sn["VolumeSize"], 1);
    assert_eq!(sn["Description"], "nightly");
    assert_eq!(sn["OwnerId"], strato_e2e::ADMIN);
    assert!(d.files("snapshots").contains(&format!("{snap}.img")));

    // Later writes to the volume do not reach the snapshot.
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(volume_file(&d, &vol))
            .unwrap();
        f.write_all_at(b"changed after the snapshot", 0).unwrap();
    }

    let v = d.json(&[
        "create-volume",
        "--snapshot-id",
        &snap,
        "--availability-zone",
        AZ,
    ]);
    let restored = v["VolumeId"].as_str().unwrap().to_string();
    assert_eq!(v["SnapshotId"], snap.as_str(), "{v}");
    assert_eq!(v["Size"], 1, "{v}");
    wait_volume(&d, &restored, "available");
    let file = volume_file(&d, &restored);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), GIB);
    assert_eq!(read_at(&file, 0, head.len()), head);
    assert_eq!(read_at(&file, 512 << 20, deep.len()), deep);
    assert_eq!(read_at(&file, 4096, 4096), vec![0; 4096]);

    // A bigger volume from the same snapshot.
    let v = d.json(&[
        "create-volume",
        "--snapshot-id",
        &snap,
        "--size",
        "2",
        "--availability-zone",
        AZ,
    ]);
    let bigger = v["VolumeId"].as_str().unwrap().to_string();
    wait_volume(&d, &bigger, "available");
    let file = volume_file(&d, &bigger);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 2 * GIB);
    assert_eq!(read_at(&file, 0, head.len()), head);

    d.cli(&["delete-snapshot", "--snapshot-id", &snap]);
    assert!(!d.files("snapshots").contains(&format!("{snap}.img")));
    d.cli_err(
        "InvalidSnapshot.NotFound",
        &["describe-snapshots", "--snapshot-ids", &snap],
    );
    d.cli_err(
        "InvalidSnapshot.NotFound",
        &["delete-snapshot", "--snapshot-id", &snap],
    );
    // The volumes made from it keep their bytes.
    assert_eq!(read_at(&volume_file(&d, &restored), 0, head.len()), head);
}

#[test]
fn snapshot_behind_an_ami_cannot_be_deleted() {
    let d = Daemon::start("vol-snapami");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    let v = d.json(&[
        "create-image",
        "--instance-id",
        &id,
        "--name",
        "holder",
        "--no-reboot",
        "--wait",
    ]);
    let img = v["ImageId"].as_str().unwrap().to_string();
    let v = d.json(&["describe-images", "--image-ids", &img]);
    let snap = v["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        .as_str()
        .unwrap()
        .to_string();
    let err = d.cli_err(
        "InvalidSnapshot.InUse",
        &["delete-snapshot", "--snapshot-id", &snap],
    );
    assert!(err.contains(&img), "{err}");
    assert!(d.files("snapshots").contains(&format!("{snap}.img")));
    // Once the AMI is gone, its snapshot stays (as in EC2) and can be deleted.
    d.cli(&["deregister-image", "--image-id", &img]);
    let v = d.json(&["describe-snapshots", "--snapshot-ids", &snap]);
    assert_eq!(v["Snapshots"][0]["State"], "completed", "{v}");
    d.cli(&["delete-snapshot", "--snapshot-id", &snap]);
    assert!(!d.files("snapshots").contains(&format!("{snap}.img")));
}

#[test]
fn delete_on_termination_decides_which_volumes_outlive_the_instance() {
    let d = Daemon::start("vol-dot");
    let ami = d.register_probe("probe");
    let id = d.run(
        &ami,
        &[
            "--block-device-mappings",
            r#"[{"DeviceName":"/dev/vdb","Ebs":{"VolumeSize":1,"DeleteOnTermination":true}},
                {"DeviceName":"/dev/vdc","Ebs":{"VolumeSize":1}}]"#,
        ],
    )[0]
    .clone();
    d.wait_state(&id, "running", T);
    let c = d.wait_console(&id, "probe: idle", T);
    assert_eq!(gib_disks(&c), ["vda", "vdb", "vdc"], "{c}");
    let mapped = mapped_volumes(&d, &id);
    let by_dev = |dev: &str| mapped.iter().find(|m| m.0 == dev).unwrap().clone();
    let (_, root, root_dot) = by_dev("/dev/vda");
    let (_, launched, launched_dot) = by_dev("/dev/vdb");
    let (_, kept, kept_dot) = by_dev("/dev/vdc");
    // EC2's defaults: the root goes with the instance, other launch volumes stay.
    assert!(root_dot && launched_dot && !kept_dot, "{mapped:?}");

    let extra = create_volume(&d, AZ);
    d.cli(&[
        "attach-volume",
        "--volume-id",
        &extra,
        "--instance-id",
        &id,
        "--device",
        "/dev/vdf",
    ]);
    wait_count(&d, &id, &format!(" size {GIB} sum "), 4);

    d.cli(&["terminate-instances", "--instance-ids", &id, "--wait"]);
    for gone in [&root, &launched] {
        d.cli_err(
            "InvalidVolume.NotFound",
            &["describe-volumes", "--volume-ids", gone],
        );
        assert!(!volume_file(&d, gone).exists(), "{gone}");
    }
    for stays in [&kept, &extra] {
        let v = volume(&d, stays);
        assert_eq!(v["State"], "available", "{v}");
        assert!(attachments(&v).is_empty(), "{v}");
        assert!(volume_file(&d, stays).exists(), "{stays}");
    }
    // The survivors attach to another instance.
    let other = d.run(&ami, &[])[0].clone();
    d.wait_state(&other, "running", T);
    d.cli(&[
        "attach-volume",
        "--volume-id",
        &extra,
        "--instance-id",
        &other,
        "--device",
        "/dev/vdg",
    ]);
    assert_eq!(volume(&d, &extra)["State"], "in-use");
}

#[test]
fn impossible_attachments_are_refused() {
    let d = Daemon::start("vol-err");
    let ami = d.register_probe("probe");
    let ids = d.run(&ami, &["--count", "2"]);
    let (id, other) = (ids[0].clone(), ids[1].clone());
    for i in &ids {
        d.wait_state(i, "running", T);
    }
    assert_eq!(d.instance(&id)["Placement"]["AvailabilityZone"], AZ);
    let attach = |vol: &str, inst: &str, dev: &str| {
        vec![
            "attach-volume".to_string(),
            "--volume-id".into(),
            vol.into(),
            "--instance-id".into(),
            inst.into(),
            "--device".into(),
            dev.into(),
        ]
    };
    let err = |code: &str, args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        d.cli_err(code, &a);
    };
    let ok = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        d.cli(&a);
    };

    // A volume in another zone.
    let far = create_volume(&d, "home-1b");
    err("InvalidVolume.ZoneMismatch", attach(&far, &id, "/dev/vdf"));
    assert_eq!(volume(&d, &far)["State"], "available");

    // A device already in use: the root, also under another name for the same slot.
    let vol = create_volume(&d, AZ);
    for dev in ["/dev/vda", "/dev/sda", "/dev/xvda"] {
        err("InvalidParameterValue", attach(&vol, &id, dev));
    }
    ok(attach(&vol, &id, "/dev/vdf"));
    let second = create_volume(&d, AZ);
    err("InvalidParameterValue", attach(&second, &id, "/dev/vdf"));
    err("InvalidParameterValue", attach(&second, &id, "/dev/sdf"));
    // Bad device names.
    for dev in ["/dev/hda", "vdb", "/dev/vdaa", "/dev/vd1"] {
        err("InvalidParameterValue", attach(&second, &id, dev));
    }
    assert_eq!(volume(&d, &second)["State"], "available");

    // A volume in use cannot be attached again, here or elsewhere.
    err("VolumeInUse", attach(&vol, &id, "/dev/vdg"));
    err("VolumeInUse", attach(&vol, &other, "/dev/vdg"));
    let v = volume(&d, &vol);
    assert_eq!(attachments(&v).len(), 1, "{v}");
    assert_eq!(attachments(&v)[0]["InstanceId"], id.as_str());

    // The root volume of a running instance stays.
    let root = mapped_volumes(&d, &id)
        .into_iter()
        .find(|m| m.0 == "/dev/vda")
        .unwrap()
        .1;
    d.cli_err(
        "OperationNotPermitted",
        &["detach-volume", "--volume-id", &root],
    );
    assert_eq!(volume(&d, &root)["State"], "in-use");
    // Detaching from the wrong instance, or a volume that is not attached.
    d.cli_err(
        "InvalidAttachment.NotFound",
        &[
            "detach-volume",
            "--volume-id",
            &vol,
            "--instance-id",
            &other,
        ],
    );
    d.cli_err("IncorrectState", &["detach-volume", "--volume-id", &second]);
    assert_eq!(d.state(&id), "running");
}

/// The monitor's counters, asked on its control socket.
fn monitor_counters(d: &Daemon, instance: &str) -> Value {
    use std::io::{BufRead, BufReader, Write};
    let sock = d.data().join("instances").join(instance).join("api.sock");
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(b"{\"op\":\"counters\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

/// Attachments started together to one running instance each get a drive slot of their own
/// (the guest gets every disk, and a later detach empties the right one).
#[test]
fn concurrent_attachments_take_distinct_slots() {
    let d = Daemon::start("vol-race");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    let vols: Vec<String> = (0..3).map(|_| create_volume(&d, AZ)).collect();
    let outs: Vec<std::process::Output> = std::thread::scope(|s| {
        let handles: Vec<_> = vols
            .iter()
            .zip(["/dev/vdf", "/dev/vdg", "/dev/vdh"])
            .map(|(vol, dev)| {
                let (d, id) = (&d, &id);
                s.spawn(move || {
                    d.cli_raw(&[
                        "attach-volume",
                        "--volume-id",
                        vol,
                        "--instance-id",
                        id,
                        "--device",
                        dev,
                    ])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        assert!(o.status.success(), "{o:?}");
    }
    for v in &vols {
        assert_eq!(attachments(&wait_volume(&d, v, "in-use")).len(), 1);
    }
    let c = monitor_counters(&d, &id);
    let mut changed = Vec::new();
    for (dev, counters) in c["devices"].as_object().unwrap() {
        if let Some(n) = counters.get("config_changes").and_then(Value::as_u64) {
            assert!(n <= 1, "slot {dev} changed {n} times: {c}");
            if n == 1 {
                changed.push(dev.clone());
            }
        }
    }
    assert_eq!(changed.len(), 3, "three slots, one change each: {c}");
    // Each detach empties its own slot: all three come back.
    for v in &vols {
        d.cli(&["detach-volume", "--volume-id", v]);
    }
    for v in &vols {
        wait_volume(&d, v, "available");
    }
    let c = monitor_counters(&d, &id);
    let twice = c["devices"]
        .as_object()
        .unwrap()
        .values()
        .filter(|x| x.get("config_changes").and_then(Value::as_u64) == Some(2))
        .count();
    assert_eq!(twice, 3, "{c}");
}

/// A forced detach that the monitor does not carry out leaves the volume attached: the
/// monitor still has the file open, and releasing it would let a second writer in.
#[test]
fn a_forced_detach_the_monitor_refuses_keeps_the_volume() {
    let d = Daemon::start("vol-force");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    let vol = create_volume(&d, AZ);
    d.cli(&[
        "attach-volume",
        "--volume-id",
        &vol,
        "--instance-id",
        &id,
        "--device",
        "/dev/vdf",
    ]);
    wait_volume(&d, &vol, "in-use");
    let pid = d.vmm_pids()[0];
    Daemon::signal_monitor(pid, libc::SIGSTOP);
    let out = d.cli_raw(&["detach-volume", "--volume-id", &vol, "--force"]);
    Daemon::signal_monitor(pid, libc::SIGCONT);
    assert!(!out.status.success(), "{out:?}");
    let v = volume(&d, &vol);
    assert_eq!(v["State"], "in-use", "{v}");
    assert_eq!(attachments(&v)[0]["State"], "attached", "{v}");
    // Once the monitor answers, a detach goes through.
    d.cli(&["detach-volume", "--volume-id", &vol]);
    wait_volume(&d, &vol, "available");
}

/// The monitor's VM state (`running`, `paused`), asked on its control socket.
fn monitor_state(d: &Daemon, instance: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let sock = d.data().join("instances").join(instance).join("api.sock");
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(b"{\"op\":\"state\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    v["state"].as_str().unwrap().to_string()
}

/// CreateSnapshot of an attached volume and CreateImage with NoReboot copy a running VM's
/// disks while it is paused (the monitor has served and flushed what the guest issued),
/// then resume it: same monitor, still running, the copies whole.
#[test]
fn copies_of_a_running_vm_are_taken_paused() {
    let d = Daemon::start("vol-pause");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    let pid = d.vmm_pids();
    let vol = create_volume(&d, AZ);
    d.cli(&[
        "attach-volume",
        "--volume-id",
        &vol,
        "--instance-id",
        &id,
        "--device",
        "/dev/vdf",
    ]);
    wait_volume(&d, &vol, "in-use");
    let marker = b"written before the snapshot";
    std::fs::OpenOptions::new()
        .write(true)
        .open(volume_file(&d, &vol))
        .unwrap()
        .write_all_at(marker, 4096)
        .unwrap();
    let s = d.json(&["create-snapshot", "--volume-id", &vol, "--wait"]);
    assert_eq!(s["State"], "completed", "{s}");
    let snap = s["SnapshotId"].as_str().unwrap();
    let copy = d.data().join("snapshots").join(format!("{snap}.img"));
    assert_eq!(read_at(&copy, 4096, marker.len()), marker);
    // The daemon resumes the VM (and logs the pause) just after it marks the copy done, so
    // the line may trail the state a client sees by a moment.
    let paused = |n: usize| {
        let deadline = Instant::now() + T;
        loop {
            let log = d.log();
            let seen = log.matches("paused for a consistent copy").count();
            if seen >= n || Instant::now() > deadline {
                assert_eq!(seen, n, "{log}");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    paused(1);
    assert_eq!(monitor_state(&d, &id), "running");

    let v = d.json(&[
        "create-image",
        "--instance-id",
        &id,
        "--name",
        "no-reboot",
        "--no-reboot",
    ]);
    let image = v["ImageId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + T;
    loop {
        let v = d.json(&["describe-images", "--image-ids", &image]);
        if v["Images"][0]["State"] == "available" {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    paused(2);
    assert_eq!(monitor_state(&d, &id), "running");
    assert_eq!(d.state(&id), "running");
    assert_eq!(d.vmm_pids(), pid, "the VM was not rebooted");
    // The pause lengths, for docs/performance.md.
    for l in d.log().lines().filter(|l| l.contains("paused_ms")) {
        eprintln!("{l}");
    }
}
