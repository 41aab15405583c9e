//! AMIs end to end: create-image from a running instance (rebooted, or not with
//! `--no-reboot`) and a launch from the new AMI that finds the first guest's disk content;
//! launch permissions shared with one account, withdrawn, and made public; who may register
//! and change images; duplicate names; deregistration, which stops new launches but not the
//! instances already running.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use strato_e2e::{read_at, Daemon};

const T: Duration = Duration::from_secs(30);
const ALICE: Option<&str> = Some("token-alice");
const BOB: Option<&str> = Some("token-bob");
const GIB: u64 = 1 << 30;

/// Launches one probe instance as the token's account; returns its ID.
fn run_as(d: &Daemon, token: Option<&str>, ami: &str) -> String {
    let v = d.json_as(
        token,
        &[
            "run-instances",
            "--image-id",
            ami,
            "--instance-type",
            "custom-1-64",
        ],
    );
    v["Instances"][0]["InstanceId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until the token's account sees its instance in `state`.
fn wait_state_as(d: &Daemon, token: Option<&str>, id: &str, state: &str) {
    let deadline = Instant::now() + T;
    loop {
        let v = d.json_as(token, &["describe-instances", "--instance-ids", id]);
        let s = v["Reservations"][0]["Instances"][0]["State"]["Name"].clone();
        if s == state {
            return;
        }
        assert!(Instant::now() < deadline, "{id} is {s}, not {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The image IDs the token's account sees.
fn visible_images(d: &Daemon, token: Option<&str>) -> Vec<String> {
    let v = d.json_as(token, &["describe-images"]);
    v["Images"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["ImageId"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
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

/// The checksums the probe printed for disk `dev` (`probe: disk vda size B sum HEX`), in
/// console order.
fn sums(console: &str, dev: &str, size: u64) -> Vec<String> {
    let prefix = format!("probe: disk {dev} size {size} sum ");
    console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|s| s.trim().to_string())
        .collect()
}

/// Borrows a list of arguments.
fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The marker sector the probe writes: `STRATO-MARKER <text>` padded with zeros.
fn marker_sector(text: &str) -> Vec<u8> {
    let mut s = format!("STRATO-MARKER {text}").into_bytes();
    s.resize(512, 0);
    s
}

#[test]
fn create_image_from_a_running_instance_captures_its_disk() {
    let d = Daemon::start("img-create");
    let ami = d.register_probe("probe");

    // A guest on a blank root volume, for the blank volume's checksum.
    let blank = d.run(&ami, &[])[0].clone();
    // The source guest writes two markers: one in the first MiB (which the boot checksum
    // covers) and one at LBA 2048, just past it.
    let src = d.run(
        &ami,
        &[
            "--user-data",
            "marker vda 7 in-the-checksum\nmarker vda 2048 hello-image\n",
        ],
    )[0]
    .clone();
    for id in [&blank, &src] {
        d.wait_state(id, "running", T);
    }
    d.wait_console(&src, "probe: marker vda 7 ok", T);
    d.wait_console(&src, "probe: marker vda 2048 ok", T);
    let blank_console = d.wait_console(&blank, "probe: idle", T);
    let blank_sum = sums(&blank_console, "vda", GIB)[0].clone();
    assert_eq!(d.console(&src).matches("probe: ready").count(), 1);

    // create-image reboots the instance: the guest is shut down, its volume copied, and
    // the guest booted again on a fresh monitor.
    let v = d.json(&[
        "create-image",
        "--instance-id",
        &src,
        "--name",
        "snap1",
        "--description",
        "from a running probe",
        "--wait",
    ]);
    let img = v["ImageId"].as_str().unwrap().to_string();
    assert!(img.starts_with("ami-"), "{v}");
    let c = wait_count(&d, &src, "probe: ready", 2);
    assert!(c.contains("probe: power-button\n"), "{c}");
    assert_eq!(d.state(&src), "running");
    // The second boot sees the markers' disk: its checksum is no longer the blank one.
    let c = wait_count(&d, &src, &format!("probe: disk vda size {GIB} sum "), 2);
    let src_sums = sums(&c, "vda", GIB);
    assert_ne!(src_sums[1], blank_sum, "{c}");

    // The AMI: available, its root mapping backed by a completed snapshot.
    let v = d.json(&["describe-images", "--image-ids", &img]);
    let image = &v["Images"][0];
    assert_eq!(image["State"], "available", "{v}");
    assert_eq!(image["Name"], "snap1");
    assert_eq!(image["Description"], "from a running probe");
    assert_eq!(image["RootDeviceName"], "/dev/vda");
    let bdm = image["BlockDeviceMappings"].as_array().unwrap();
    assert_eq!(bdm.len(), 1, "{v}");
    assert_eq!(bdm[0]["DeviceName"], "/dev/vda");
    assert_eq!(bdm[0]["Ebs"]["VolumeSize"], 1);
    let snap = bdm[0]["Ebs"]["SnapshotId"].as_str().unwrap().to_string();
    assert!(snap.starts_with("snap-"), "{v}");
    let s = d.json(&["describe-snapshots", "--snapshot-ids", &snap]);
    assert_eq!(s["Snapshots"][0]["State"], "completed", "{s}");
    assert_eq!(s["Snapshots"][0]["Progress"], "100%", "{s}");
    let snap_file = d.data().join("snapshots").join(format!("{snap}.img"));
    assert_eq!(
        read_at(&snap_file, 2048 * 512, 512),
        marker_sector("hello-image")
    );

    // A launch from the new AMI finds the first guest's disk.
    let copy = d.run(&img, &[])[0].clone();
    d.wait_state(&copy, "running", T);
    let c = d.wait_console(&copy, "probe: idle", T);
    let copy_sums = sums(&c, "vda", GIB);
    assert_eq!(copy_sums.len(), 1, "{c}");
    assert_ne!(copy_sums[0], blank_sum, "{c}");
    assert_eq!(copy_sums[0], src_sums[1], "{c}");
    let inst = d.instance(&copy);
    assert_eq!(inst["ImageId"], img.as_str());
    assert_eq!(inst["BlockDeviceMappings"][0]["DeviceName"], "/dev/vda");
    let vol = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        .as_str()
        .unwrap()
        .to_string();
    let file = d.data().join("volumes").join(format!("{vol}.img"));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), GIB);
    assert_eq!(
        read_at(&file, 2048 * 512, 512),
        marker_sector("hello-image")
    );
    assert_eq!(
        read_at(&file, 7 * 512, 512),
        marker_sector("in-the-checksum")
    );
    let v = d.json(&["describe-volumes", "--volume-ids", &vol]);
    assert_eq!(v["Volumes"][0]["SnapshotId"], snap.as_str(), "{v}");
}

#[test]
fn create_image_with_no_reboot_leaves_the_guest_alone() {
    let d = Daemon::start("img-noreboot");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &["--user-data", "marker vda 2048 no-reboot\n"])[0].clone();
    d.wait_state(&id, "running", T);
    d.wait_console(&id, "probe: marker vda 2048 ok", T);
    d.wait_console(&id, "probe: idle", T);
    let monitors = d.vmm_pids();
    assert_eq!(monitors.len(), 1);

    let v = d.json(&[
        "create-image",
        "--instance-id",
        &id,
        "--name",
        "snap-noreboot",
        "--no-reboot",
        "--wait",
    ]);
    let img = v["ImageId"].as_str().unwrap().to_string();
    let v = d.json(&["describe-images", "--image-ids", &img]);
    assert_eq!(v["Images"][0]["State"], "available", "{v}");
    // Give a (wrong) reboot time to show.
    std::thread::sleep(Duration::from_millis(500));
    let c = d.console(&id);
    assert_eq!(c.matches("probe: ready").count(), 1, "{c}");
    assert!(!c.contains("probe: power-button"), "{c}");
    assert!(!c.contains("probe: ctrl-alt-del"), "{c}");
    assert_eq!(d.state(&id), "running");
    assert_eq!(d.vmm_pids(), monitors);

    // The copy was taken from the live volume and holds what the guest had written.
    let snap = v["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        .as_str()
        .unwrap()
        .to_string();
    let snap_file = d.data().join("snapshots").join(format!("{snap}.img"));
    assert_eq!(
        read_at(&snap_file, 2048 * 512, 512),
        marker_sector("no-reboot")
    );
}

#[test]
fn launch_permissions_share_withdraw_and_publish() {
    let d = Daemon::start("img-perm");
    let ami = d.register_probe("shared");
    let run_args = [
        "run-instances",
        "--image-id",
        ami.as_str(),
        "--instance-type",
        "custom-1-64",
    ];
    let modify = |change: &str| {
        d.cli(&[
            "modify-image-attribute",
            "--image-id",
            &ami,
            "--launch-permission",
            change,
        ])
    };
    let attribute = || {
        d.json_as(
            None,
            &[
                "describe-image-attribute",
                "--image-id",
                &ami,
                "--attribute",
                "launchPermission",
            ],
        )
    };

    // Private: bob can neither launch it nor see it; to him it does not exist.
    d.cli_err_as(BOB, "InvalidAMIID.NotFound", &run_args);
    assert!(!visible_images(&d, BOB).contains(&ami));
    d.cli_err_as(
        BOB,
        "InvalidAMIID.NotFound",
        &["describe-images", "--image-ids", &ami],
    );
    let v = attribute();
    assert!(
        v["LaunchPermissions"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{v}"
    );

    // Shared with bob: he sees it (not public) and launches it.
    modify("Add=[{UserId=222222222222}]");
    assert!(visible_images(&d, BOB).contains(&ami));
    let v = d.json_as(BOB, &["describe-images", "--image-ids", &ami]);
    assert_eq!(v["Images"][0]["Public"], false, "{v}");
    assert_eq!(v["Images"][0]["OwnerId"], strato_e2e::ADMIN, "{v}");
    let v = attribute();
    assert_eq!(
        v["LaunchPermissions"],
        serde_json::json!([{"UserId": "222222222222"}]),
        "{v}"
    );
    let bobs = run_as(&d, BOB, &ami);
    wait_state_as(&d, BOB, &bobs, "running");
    let out = d.cli_as(
        BOB,
        &["terminate-instances", "--instance-ids", &bobs, "--wait"],
    );
    assert!(out.status.success(), "{out:?}");
    // Alice was not given it.
    d.cli_err_as(ALICE, "InvalidAMIID.NotFound", &run_args);
    assert!(!visible_images(&d, ALICE).contains(&ami));

    // Withdrawn: bob is refused again and no longer sees it.
    modify("Remove=[{UserId=222222222222}]");
    d.cli_err_as(BOB, "InvalidAMIID.NotFound", &run_args);
    assert!(!visible_images(&d, BOB).contains(&ami));
    let v = attribute();
    assert!(
        v["LaunchPermissions"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{v}"
    );

    // Public: everyone sees and launches it.
    modify("Add=[{Group=all}]");
    let v = d.json_as(ALICE, &["describe-images", "--image-ids", &ami]);
    assert_eq!(v["Images"][0]["Public"], true, "{v}");
    let v = attribute();
    assert_eq!(
        v["LaunchPermissions"],
        serde_json::json!([{"Group": "all"}]),
        "{v}"
    );
    let alices = run_as(&d, ALICE, &ami);
    wait_state_as(&d, ALICE, &alices, "running");
    let out = d.cli_as(
        ALICE,
        &["terminate-instances", "--instance-ids", &alices, "--wait"],
    );
    assert!(out.status.success(), "{out:?}");

    // Only the owner changes or reads the permissions, or deregisters the image.
    let add_alice = [
        "modify-image-attribute",
        "--image-id",
        ami.as_str(),
        "--launch-permission",
        "Add=[{UserId=111111111111}]",
    ];
    d.cli_err_as(ALICE, "AuthFailure", &add_alice);
    d.cli_err_as(BOB, "AuthFailure", &add_alice);
    d.cli_err_as(
        ALICE,
        "AuthFailure",
        &[
            "describe-image-attribute",
            "--image-id",
            &ami,
            "--attribute",
            "launchPermission",
        ],
    );
    d.cli_err_as(
        ALICE,
        "AuthFailure",
        &["deregister-image", "--image-id", &ami],
    );

    // Account IDs are 12 digits; the only group is "all".
    for bad in [
        "Add=[{UserId=12345}]",
        "Add=[{UserId=1111111111111}]",
        "Add=[{UserId=abcdefghijkl}]",
        "Remove=[{UserId=2222}]",
        "Add=[{Group=everyone}]",
    ] {
        d.cli_err(
            "InvalidAMIAttributeItemValue",
            &[
                "modify-image-attribute",
                "--image-id",
                &ami,
                "--launch-permission",
                bad,
            ],
        );
    }
    // Nothing of the refused changes stuck.
    let v = attribute();
    assert_eq!(
        v["LaunchPermissions"],
        serde_json::json!([{"Group": "all"}]),
        "{v}"
    );
}

#[test]
fn registration_is_for_the_admin_and_names_are_unique_per_owner() {
    let d = Daemon::start("img-reg");
    let bundle = strato_e2e::probe_bundle();
    let register = |name: &str| {
        vec![
            "register-image".to_string(),
            "--name".into(),
            name.into(),
            "--bundle".into(),
            bundle.display().to_string(),
        ]
    };

    // Host paths are read with the daemon's rights: token accounts may not register.
    d.cli_err_as(ALICE, "UnauthorizedOperation", &strs(&register("alices")));
    assert!(d.files("images").is_empty(), "{:?}", d.files("images"));

    let ami = d.register_probe("unique");
    d.cli_err("InvalidAMIName.Duplicate", &strs(&register("unique")));
    // The refused registration left no image folder behind.
    assert_eq!(d.files("images"), vec![ami.clone()]);
    let v = d.json(&["describe-images"]);
    assert_eq!(v["Images"].as_array().unwrap().len(), 1, "{v}");
    // A bad name is refused before anything is made.
    d.cli_err("InvalidParameterValue", &strs(&register("x")));
    assert_eq!(d.files("images"), vec![ami.clone()]);
}

#[test]
fn deregistered_image_launches_nothing_but_its_instances_live_on() {
    let d = Daemon::start("img-dereg");
    let ami = d.register_probe("going");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);

    d.cli(&["deregister-image", "--image-id", &ami]);
    assert!(!visible_images(&d, None).contains(&ami));
    assert!(!d.files("images").contains(&ami), "{:?}", d.files("images"));
    d.cli_err(
        "InvalidAMIID.NotFound",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "custom-1-64",
        ],
    );
    d.cli_err(
        "InvalidAMIID.NotFound",
        &["describe-images", "--image-ids", &ami],
    );
    d.cli_err(
        "InvalidAMIID.NotFound",
        &["deregister-image", "--image-id", &ami],
    );

    // The instance keeps its own kernel: it stops and starts as before.
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    assert_eq!(d.state(&id), "stopped");
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    assert_eq!(d.state(&id), "running");
    wait_count(&d, &id, "probe: ready", 2);
    assert_eq!(d.instance(&id)["ImageId"], ami.as_str());
    // The name is free again.
    let again = d.register_probe("going");
    assert_ne!(again, ami);
}
