//! Bad input, through the CLI and through a raw gRPC client on the Unix socket: every RPC
//! of Compute, Images, Volumes and Usage is sent unknown and malformed IDs (including 10 KB
//! strings), requests in the wrong state, out-of-range values, bad names and filters, bad
//! page tokens, and bad tokens; each answer must carry the expected EC2 code in the
//! `ec2-error-code` metadata. After all the refusals nothing is half-created: the data
//! folders hold the same files, the listings show the same resources in the same states, and
//! no monitor came or went.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use strato_e2e::Daemon;
use strato_proto::v1 as pb;
use strato_proto::ERROR_CODE_METADATA;
use tonic::transport::Channel;

const T: Duration = Duration::from_secs(30);
const ALICE: &str = "token-alice";
const AZ: &str = "home-1a";

const UNKNOWN_INSTANCE: &str = "i-0123456789abcdef0";
const UNKNOWN_IMAGE: &str = "ami-0123456789abcdef0";
const UNKNOWN_VOLUME: &str = "vol-0123456789abcdef0";
const UNKNOWN_SNAPSHOT: &str = "snap-0123456789abcdef0";

/// What the refusals run against: one resource of each kind and state.
struct Fixture {
    ami: String,
    running: String,
    stopped: String,
    terminated: String,
    /// The running instance's root volume.
    root: String,
    /// An available volume in the default zone.
    vol: String,
    /// An available volume in another zone.
    far: String,
    /// A completed snapshot of `vol`.
    snap: String,
}

fn setup(d: &Daemon) -> Fixture {
    let ami = d.register_probe("probe");
    let ids = d.run(&ami, &["--count", "3"]);
    for id in &ids {
        d.wait_state(id, "running", T);
        d.wait_console(id, "probe: idle", T);
    }
    d.cli(&["stop-instances", "--instance-ids", &ids[1], "--wait"]);
    d.cli(&["terminate-instances", "--instance-ids", &ids[2], "--wait"]);
    let root = d.instance(&ids[0])["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        .as_str()
        .unwrap()
        .to_string();
    let volume = |az: &str| {
        let v = d.json(&["create-volume", "--size", "1", "--availability-zone", az]);
        v["VolumeId"].as_str().unwrap().to_string()
    };
    let vol = volume(AZ);
    let far = volume("home-1b");
    let s = d.json(&["create-snapshot", "--volume-id", &vol, "--wait"]);
    let snap = s["SnapshotId"].as_str().unwrap().to_string();
    Fixture {
        ami,
        running: ids[0].clone(),
        stopped: ids[1].clone(),
        terminated: ids[2].clone(),
        root,
        vol,
        far,
        snap,
    }
}

/// Everything a refused request must leave as it was.
#[derive(Debug, PartialEq)]
struct World {
    files: Vec<(String, Vec<String>)>,
    listings: Vec<(String, Vec<String>)>,
    monitors: Vec<i32>,
    boots: usize,
}

/// The resources an account sees, one line each, sorted.
fn listings(d: &Daemon, f: &Fixture, token: Option<&str>) -> Vec<(String, Vec<String>)> {
    let json = |args: &[&str]| {
        let mut a = vec!["--output", "json"];
        a.extend_from_slice(args);
        let out = d.cli_as(token, &a);
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let lines = |v: &serde_json::Value, key: &str, show: &dyn Fn(&serde_json::Value) -> String| {
        let mut l: Vec<String> = v[key]
            .as_array()
            .map(|a| a.iter().map(show).collect())
            .unwrap_or_default();
        l.sort();
        (format!("{token:?} {key}"), l)
    };
    let mut out = vec![
        lines(&json(&["describe-instances"]), "Reservations", &|r| {
            let i = &r["Instances"][0];
            format!(
                "{} {} {} {}",
                i["InstanceId"], i["State"]["Name"], i["BlockDeviceMappings"], i["Tags"]
            )
        }),
        lines(&json(&["describe-volumes"]), "Volumes", &|v| {
            format!(
                "{} {} {} {} {}",
                v["VolumeId"], v["State"], v["Size"], v["AvailabilityZone"], v["Attachments"]
            )
        }),
        lines(&json(&["describe-snapshots"]), "Snapshots", &|s| {
            format!("{} {} {}", s["SnapshotId"], s["State"], s["Progress"])
        }),
        lines(&json(&["describe-images"]), "Images", &|i| {
            format!(
                "{} {} {} {}",
                i["ImageId"], i["Name"], i["State"], i["Public"]
            )
        }),
    ];
    if token.is_none() {
        let v = json(&[
            "describe-image-attribute",
            "--image-id",
            &f.ami,
            "--attribute",
            "launchPermission",
        ]);
        out.push(("launch permissions".into(), vec![v.to_string()]));
    }
    out
}

fn world(d: &Daemon, f: &Fixture) -> World {
    let mut monitors = d.vmm_pids();
    monitors.sort();
    World {
        files: ["volumes", "snapshots", "images", "instances"]
            .iter()
            .map(|s| (s.to_string(), d.files(s)))
            .collect(),
        listings: [None, Some(ALICE), Some("token-bob")]
            .into_iter()
            .flat_map(|t| listings(d, f, t))
            .collect(),
        monitors,
        boots: d.console(&f.running).matches("probe: ready").count(),
    }
}

/// Command-line arguments: a command's head and the rest.
fn cat<'a>(head: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(rest).copied().collect()
}

/// Malformed IDs of a kind: bad hex, no prefix, 10 KB, capitals, short, another kind.
fn malformed(prefix: &str, other: &str) -> Vec<String> {
    vec![
        format!("{prefix}xyz"),
        "bogus".into(),
        format!("{prefix}{}", "0".repeat(10 * 1024)),
        "x".repeat(10 * 1024),
        format!("{prefix}0123456789ABCDEF0"),
        format!("{prefix}0123456789abcdef"),
        format!("{prefix}0123456789abcdef0 "),
        other.into(),
    ]
}

#[test]
fn cli_refusals_carry_the_ec2_code_and_change_nothing() {
    let d = Daemon::start("bad-cli");
    let f = setup(&d);
    let before = world(&d, &f);
    let e = |code: &str, args: &[&str]| {
        d.cli_err(code, args);
    };
    let long = "x".repeat(10 * 1024);

    // Instance IDs.
    for bad in ["i-xyz", "bogus", long.as_str(), "vol-0123456789abcdef0"] {
        let code = "InvalidInstanceID.Malformed";
        e(code, &["describe-instances", "--instance-ids", bad]);
        e(code, &["get-console-output", "--instance-id", bad]);
        e(
            code,
            &["terminate-instances", "--instance-ids", &f.running, bad],
        );
    }
    let nf = "InvalidInstanceID.NotFound";
    e(
        nf,
        &["describe-instances", "--instance-ids", UNKNOWN_INSTANCE],
    );
    e(
        nf,
        &[
            "stop-instances",
            "--instance-ids",
            &f.running,
            UNKNOWN_INSTANCE,
        ],
    );
    e(
        nf,
        &["reboot-instances", "--instance-ids", UNKNOWN_INSTANCE],
    );
    e(
        nf,
        &[
            "describe-instance-status",
            "--instance-ids",
            UNKNOWN_INSTANCE,
        ],
    );
    e(
        nf,
        &["get-console-output", "--instance-id", UNKNOWN_INSTANCE],
    );
    e(
        nf,
        &[
            "create-image",
            "--instance-id",
            UNKNOWN_INSTANCE,
            "--name",
            "img1",
        ],
    );

    // Wrong states.
    let st = "IncorrectInstanceState";
    e(st, &["reboot-instances", "--instance-ids", &f.stopped]);
    e(st, &["start-instances", "--instance-ids", &f.terminated]);
    e(
        st,
        &[
            "start-instances",
            "--instance-ids",
            &f.stopped,
            &f.terminated,
        ],
    );
    e(
        st,
        &[
            "stop-instances",
            "--instance-ids",
            &f.running,
            &f.terminated,
        ],
    );
    e(
        st,
        &[
            "create-image",
            "--instance-id",
            &f.terminated,
            "--name",
            "img1",
        ],
    );

    // Launch parameters.
    let run_head = ["run-instances", "--image-id", f.ami.as_str()];
    let ipv = "InvalidParameterValue";
    let big = d.file("big.txt", &[b'#'; 16385]);
    let big_arg = format!("file://{}", big.display());
    e(ipv, &cat(&run_head, &["--user-data", &big_arg]));
    for t in ["t9.huge", "custom-0-64", "custom-1-99999999", long.as_str()] {
        e(ipv, &cat(&run_head, &["--instance-type", t]));
    }
    e(ipv, &cat(&run_head, &["--count", "1000"]));
    e(ipv, &cat(&run_head, &["--count", "1:1000"]));
    for bdm in [
        r#"[{"DeviceName":"/dev/hda","Ebs":{"VolumeSize":1}}]"#,
        r#"[{"DeviceName":"/dev/vdb","Ebs":{"VolumeSize":16385}}]"#,
        r#"[{"DeviceName":"/dev/vda","Ebs":{"VolumeSize":16385}}]"#,
    ] {
        e(ipv, &cat(&run_head, &["--block-device-mappings", bdm]));
    }
    e(
        ipv,
        &cat(&run_head, &["--placement", "AvailabilityZone=mars-1a"]),
    );
    e(
        ipv,
        &["describe-instances", "--filters", "Name=colour,Values=red"],
    );
    e(
        ipv,
        &["describe-instance-types", "--instance-types", "t9.huge"],
    );
    e(
        "InvalidAMIID.Malformed",
        &["run-instances", "--image-id", "ami-xyz"],
    );
    e(
        "InvalidAMIID.NotFound",
        &["run-instances", "--image-id", UNKNOWN_IMAGE],
    );

    // Images.
    e(
        "InvalidAMIID.NotFound",
        &["describe-images", "--image-ids", UNKNOWN_IMAGE],
    );
    e(
        "InvalidAMIID.Malformed",
        &["deregister-image", "--image-id", "bogus"],
    );
    e(
        "InvalidAMIAttributeItemValue",
        &[
            "modify-image-attribute",
            "--image-id",
            &f.ami,
            "--launch-permission",
            "Add=[{UserId=12345}]",
        ],
    );
    e(
        "InvalidAMIName.Duplicate",
        &[
            "create-image",
            "--instance-id",
            &f.running,
            "--name",
            "probe",
        ],
    );
    e(
        ipv,
        &["create-image", "--instance-id", &f.running, "--name", "a*b"],
    );

    // Volumes and snapshots.
    e(
        ipv,
        &cat(
            &["create-volume"],
            &["--size", "16385", "--availability-zone", AZ],
        ),
    );
    e(
        ipv,
        &cat(
            &["create-volume"],
            &[
                "--size",
                "1",
                "--availability-zone",
                AZ,
                "--volume-type",
                "fast",
            ],
        ),
    );
    e(
        "InvalidAvailabilityZone",
        &cat(
            &["create-volume"],
            &["--size", "1", "--availability-zone", "mars-1a"],
        ),
    );
    e(
        "MissingParameter",
        &cat(&["create-volume"], &["--size", "1"]),
    );
    e(
        "InvalidSnapshot.NotFound",
        &cat(
            &["create-volume"],
            &["--snapshot-id", UNKNOWN_SNAPSHOT, "--availability-zone", AZ],
        ),
    );
    e(
        "InvalidVolumeID.Malformed",
        &[
            "attach-volume",
            "--volume-id",
            "vol-xyz",
            "--instance-id",
            &f.running,
            "--device",
            "/dev/vdf",
        ],
    );
    e(
        ipv,
        &[
            "attach-volume",
            "--volume-id",
            &f.vol,
            "--instance-id",
            &f.running,
            "--device",
            "/dev/hda",
        ],
    );
    e(
        "InvalidVolume.ZoneMismatch",
        &[
            "attach-volume",
            "--volume-id",
            &f.far,
            "--instance-id",
            &f.running,
            "--device",
            "/dev/vdf",
        ],
    );
    e("VolumeInUse", &["delete-volume", "--volume-id", &f.root]);
    e(
        "InvalidVolume.NotFound",
        &["delete-volume", "--volume-id", UNKNOWN_VOLUME],
    );
    e(
        "InvalidVolume.NotFound",
        &["create-snapshot", "--volume-id", UNKNOWN_VOLUME],
    );
    e(
        "InvalidSnapshotID.Malformed",
        &["delete-snapshot", "--snapshot-id", "snap-xyz"],
    );
    e(
        ipv,
        &["describe-snapshots", "--filters", "Name=colour,Values=red"],
    );
    e(
        ipv,
        &["describe-volumes", "--filters", "Name=colour,Values=red"],
    );

    // Usage: the window must not end before it starts.
    e(ipv, &["usage", "--start", "4102444800"]);

    // Tokens: a wrong one is refused by every service, even on the Unix socket.
    for args in [
        &["describe-instances"][..],
        &["describe-images"],
        &["describe-volumes"],
        &["usage"],
        &["run-instances", "--image-id", &f.ami],
    ] {
        d.cli_err_as(Some("token-mallory"), "AuthFailure", args);
    }
    // Another account's resources do not exist for alice.
    let a = Some(ALICE);
    d.cli_err_as(a, nf, &["describe-instances", "--instance-ids", &f.running]);
    d.cli_err_as(a, nf, &["stop-instances", "--instance-ids", &f.running]);
    d.cli_err_as(
        a,
        "InvalidVolume.NotFound",
        &["delete-volume", "--volume-id", &f.vol],
    );
    d.cli_err_as(
        a,
        "InvalidSnapshot.NotFound",
        &["delete-snapshot", "--snapshot-id", &f.snap],
    );
    d.cli_err_as(
        a,
        "InvalidAMIID.NotFound",
        &["run-instances", "--image-id", &f.ami],
    );

    assert_eq!(world(&d, &f), before);

    // The largest user data is accepted.
    let max = d.file("max.txt", &[b'#'; 16384]);
    let id = d.run(
        &f.ami,
        &["--user-data", &format!("file://{}", max.display())],
    )[0]
    .clone();
    d.wait_state(&id, "running", T);
    d.wait_console(&id, "probe: user-data 16384 bytes", T);
}

/// What went wrong in `refused` checks, listed together at the end of the test.
static MISMATCHES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Checks that a call was refused with the EC2 code `want`, in the metadata and as the
/// message's prefix, without echoing a 10 KB argument back; a mismatch is recorded.
fn refused<R>(what: &str, want: &str, r: Result<tonic::Response<R>, tonic::Status>) {
    let what: String = what.split_whitespace().collect::<Vec<_>>().join(" ");
    let problem = match r {
        Ok(_) => Some(format!("accepted, expected {want}")),
        Err(s) => {
            let got = s
                .metadata()
                .get(ERROR_CODE_METADATA)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)");
            if got != want {
                Some(format!(
                    "got {got} ({:?}: {:.200}), expected {want}",
                    s.code(),
                    s.message()
                ))
            } else if !s.message().starts_with(&format!("{want}: ")) {
                Some(format!(
                    "message {:.200} does not start with the code",
                    s.message()
                ))
            } else if s.message().len() >= 1024 {
                Some(format!("a {}-byte message", s.message().len()))
            } else {
                None
            }
        }
    };
    if let Some(p) = problem {
        MISMATCHES.lock().unwrap().push(format!("{what:.300}: {p}"));
    }
}

/// Fails the test if any refusal did not go as expected.
fn assert_no_mismatches() {
    let m = MISMATCHES.lock().unwrap();
    assert!(m.is_empty(), "{} mismatches:\n{}", m.len(), m.join("\n"));
}

/// A request with a bearer token.
fn with_token<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// A request as an account: the Unix socket's own (None) or a token's.
fn as_account<T>(token: Option<&str>, msg: T) -> tonic::Request<T> {
    match token {
        Some(t) => with_token(t, msg),
        None => tonic::Request::new(msg),
    }
}

/// A request with this `authorization` header.
fn with_header<T>(header: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", header.parse().unwrap());
    r
}

async fn unix_channel(d: &Daemon) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("unix:{}", d.socket.display()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Clients of the four services on one channel.
struct Clients {
    c: pb::compute_client::ComputeClient<Channel>,
    i: pb::images_client::ImagesClient<Channel>,
    v: pb::volumes_client::VolumesClient<Channel>,
    u: pb::usage_client::UsageClient<Channel>,
}

/// Sends a request and checks the refusal's code; the label is the call's source text.
macro_rules! refuse {
    ($want:expr, $call:expr) => {
        refused(stringify!($call), $want, $call.await)
    };
    ($want:expr, $what:expr, $call:expr) => {
        refused(&$what, $want, $call.await)
    };
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn bdm(device: &str, size: i64, snapshot: &str, vtype: &str) -> pb::BlockDeviceMapping {
    pb::BlockDeviceMapping {
        device_name: device.into(),
        ebs: Some(pb::EbsBlockDevice {
            volume_size: size,
            snapshot_id: snapshot.into(),
            volume_type: vtype.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Compute: RunInstances.
async fn run_instances(k: &mut Clients, f: &Fixture) {
    let run = |patch: &dyn Fn(&mut pb::RunInstancesRequest)| {
        let mut r = pb::RunInstancesRequest {
            image_id: f.ami.clone(),
            instance_type: "custom-1-64".into(),
            min_count: 1,
            max_count: 1,
            ..Default::default()
        };
        patch(&mut r);
        r
    };
    let ipv = "InvalidParameterValue";
    refuse!(
        "MissingParameter",
        k.c.run_instances(run(&|r| r.image_id.clear()))
    );
    for bad in malformed("ami-", "i-0123456789abcdef0") {
        refuse!(
            "InvalidAMIID.Malformed",
            format!("RunInstances {:.40}", bad),
            k.c.run_instances(run(&|r| r.image_id = bad.clone()))
        );
    }
    refuse!(
        "InvalidAMIID.NotFound",
        k.c.run_instances(run(&|r| r.image_id = UNKNOWN_IMAGE.into()))
    );
    // User data: 16 KiB at most.
    refuse!(
        ipv,
        k.c.run_instances(run(&|r| r.user_data = vec![b'#'; 16385]))
    );
    // Counts.
    for (min, max) in [(2, 1), (1, 1000), (1000, 1000), (-1, 1), (1, -1), (0, 101)] {
        refuse!(
            ipv,
            format!("RunInstances count {min}..{max}"),
            k.c.run_instances(run(&|r| {
                r.min_count = min;
                r.max_count = max;
            }))
        );
    }
    // Instance types.
    let long = "x".repeat(10 * 1024);
    for t in [
        "t9.huge",
        "custom-0-64",
        "custom-1-99999999",
        "custom-9-64",
        "custom-1-16",
        "custom-1",
        "custom-a-b",
        long.as_str(),
    ] {
        refuse!(
            ipv,
            format!("RunInstances type {t:.40}"),
            k.c.run_instances(run(&|r| r.instance_type = t.into()))
        );
    }
    // Shutdown behavior.
    for b in ["reboot", "STOP", "hibernate"] {
        refuse!(
            ipv,
            format!("RunInstances shutdown {b}"),
            k.c.run_instances(run(&|r| r.instance_initiated_shutdown_behavior = b.into()))
        );
    }
    // Block device mappings: device names, sizes, types, snapshots.
    for dev in [
        "/dev/hda",
        "vdb",
        "",
        "/dev/vdaa",
        "/dev/vd1",
        long.as_str(),
    ] {
        refuse!(
            ipv,
            format!("RunInstances device {dev:.40}"),
            k.c.run_instances(run(&|r| r.block_device_mappings = vec![bdm(dev, 1, "", "")]))
        );
    }
    for size in [0, -1, 16385, i64::MAX] {
        refuse!(
            ipv,
            format!("RunInstances new volume of {size} GiB"),
            k.c.run_instances(run(
                &|r| r.block_device_mappings = vec![bdm("/dev/vdb", size, "", "")]
            ))
        );
    }
    for size in [-1, 16385, i64::MAX] {
        refuse!(
            ipv,
            format!("RunInstances root of {size} GiB"),
            k.c.run_instances(run(
                &|r| r.block_device_mappings = vec![bdm("/dev/vda", size, "", "")]
            ))
        );
    }
    refuse!(
        ipv,
        k.c.run_instances(run(
            &|r| r.block_device_mappings = vec![bdm("/dev/vdb", 1, "", "fast")]
        ))
    );
    refuse!(
        "InvalidBlockDeviceMapping",
        k.c.run_instances(run(&|r| {
            r.block_device_mappings = vec![bdm("/dev/vdb", 1, "", ""), bdm("/dev/sdb", 1, "", "")]
        }))
    );
    for bad in malformed("snap-", "vol-0123456789abcdef0") {
        refuse!(
            "InvalidSnapshotID.Malformed",
            format!("RunInstances snapshot {bad:.40}"),
            k.c.run_instances(run(
                &|r| r.block_device_mappings = vec![bdm("/dev/vdb", 0, &bad, "")]
            ))
        );
    }
    refuse!(
        "InvalidSnapshot.NotFound",
        k.c.run_instances(run(&|r| {
            r.block_device_mappings = vec![bdm("/dev/vdb", 0, UNKNOWN_SNAPSHOT, "")]
        }))
    );
    // Placement, subnet, key pair, security groups.
    for az in ["mars-1a", "home-1z", long.as_str()] {
        refuse!(
            ipv,
            format!("RunInstances zone {az:.40}"),
            k.c.run_instances(run(&|r| {
                r.placement = Some(pb::Placement {
                    availability_zone: az.into(),
                    ..Default::default()
                })
            }))
        );
    }
    refuse!(
        "InvalidSubnetID.Malformed",
        k.c.run_instances(run(&|r| r.subnet_id = "subnet-xyz".into()))
    );
    refuse!(
        "InvalidSubnetID.NotFound",
        k.c.run_instances(run(&|r| r.subnet_id = "subnet-0123456789abcdef0".into()))
    );
    refuse!(
        "InvalidKeyPair.NotFound",
        k.c.run_instances(run(&|r| r.key_name = "no-such-key".into()))
    );
    refuse!(
        "InvalidGroupId.Malformed",
        k.c.run_instances(run(&|r| r.security_group_ids = ids(&["sg-xyz"])))
    );
    refuse!(
        "InvalidGroup.NotFound",
        k.c.run_instances(run(
            &|r| r.security_group_ids = ids(&["sg-0123456789abcdef0"])
        ))
    );
    // Someone else's private image: EC2 does not say that it exists.
    refuse!(
        "InvalidAMIID.NotFound",
        k.c.run_instances(with_token(ALICE, run(&|_| {})))
    );
}

/// Compute: every RPC that names instances.
async fn instance_rpcs(k: &mut Clients, f: &Fixture) {
    let mut bad_ids = malformed("i-", "vol-0123456789abcdef0");
    bad_ids.push(String::new());
    for bad in &bad_ids {
        let m = "InvalidInstanceID.Malformed";
        let what = |rpc: &str| format!("{rpc} {bad:.40}");
        let one = || vec![bad.clone()];
        let with = |ok: &str| vec![ok.to_string(), bad.clone()];
        refuse!(
            m,
            what("DescribeInstances"),
            k.c.describe_instances(pb::DescribeInstancesRequest {
                instance_ids: one(),
                ..Default::default()
            })
        );
        refuse!(
            m,
            what("StopInstances"),
            k.c.stop_instances(pb::StopInstancesRequest {
                instance_ids: with(&f.running),
                ..Default::default()
            })
        );
        refuse!(
            m,
            what("StartInstances"),
            k.c.start_instances(pb::StartInstancesRequest {
                instance_ids: with(&f.stopped),
            })
        );
        refuse!(
            m,
            what("RebootInstances"),
            k.c.reboot_instances(pb::RebootInstancesRequest {
                instance_ids: with(&f.running),
            })
        );
        refuse!(
            m,
            what("TerminateInstances"),
            k.c.terminate_instances(pb::TerminateInstancesRequest {
                instance_ids: with(&f.running),
            })
        );
        refuse!(
            m,
            what("ModifyInstanceAttribute"),
            k.c.modify_instance_attribute(pb::ModifyInstanceAttributeRequest {
                instance_id: bad.clone(),
                disable_api_termination: Some(true),
                ..Default::default()
            })
        );
        refuse!(
            m,
            what("DescribeInstanceStatus"),
            k.c.describe_instance_status(pb::DescribeInstanceStatusRequest {
                instance_ids: one(),
                ..Default::default()
            })
        );
        refuse!(
            m,
            what("GetConsoleOutput"),
            k.c.get_console_output(pb::GetConsoleOutputRequest {
                instance_id: bad.clone(),
            })
        );
        refuse!(
            m,
            what("StreamConsole"),
            k.c.stream_console(pb::StreamConsoleRequest {
                instance_id: bad.clone(),
            })
        );
        refuse!(
            m,
            what("SendConsoleInput"),
            k.c.send_console_input(pb::SendConsoleInputRequest {
                instance_id: bad.clone(),
                data: b"x\n".to_vec(),
                send_break: true,
            })
        );
        refuse!(
            m,
            what("CreateImage"),
            k.i.create_image(pb::CreateImageRequest {
                instance_id: bad.clone(),
                name: "img-bad".into(),
                ..Default::default()
            })
        );
        refuse!(
            m,
            what("AttachVolume"),
            k.v.attach_volume(pb::AttachVolumeRequest {
                volume_id: f.vol.clone(),
                instance_id: bad.clone(),
                device: "/dev/vdf".into(),
            })
        );
    }

    // Unknown IDs, and IDs of another account (alice asks about the admin's instances).
    for (token, id) in [(None, UNKNOWN_INSTANCE), (Some(ALICE), f.running.as_str())] {
        let nf = "InvalidInstanceID.NotFound";
        let what = |rpc: &str| format!("{rpc} {id} as {token:?}");
        refuse!(
            nf,
            what("DescribeInstances"),
            k.c.describe_instances(as_account(
                token,
                pb::DescribeInstancesRequest {
                    instance_ids: ids(&[id]),
                    ..Default::default()
                }
            ))
        );
        refuse!(
            nf,
            what("DescribeInstanceStatus"),
            k.c.describe_instance_status(as_account(
                token,
                pb::DescribeInstanceStatusRequest {
                    instance_ids: ids(&[id]),
                    ..Default::default()
                }
            ))
        );
        let list = ids(&[id]);
        let list = || list.clone();
        refuse!(
            nf,
            what("StopInstances"),
            k.c.stop_instances(as_account(
                token,
                pb::StopInstancesRequest {
                    instance_ids: list(),
                    force: true,
                }
            ))
        );
        refuse!(
            nf,
            what("StartInstances"),
            k.c.start_instances(as_account(
                token,
                pb::StartInstancesRequest {
                    instance_ids: list()
                }
            ))
        );
        refuse!(
            nf,
            what("RebootInstances"),
            k.c.reboot_instances(as_account(
                token,
                pb::RebootInstancesRequest {
                    instance_ids: list()
                }
            ))
        );
        refuse!(
            nf,
            what("TerminateInstances"),
            k.c.terminate_instances(as_account(
                token,
                pb::TerminateInstancesRequest {
                    instance_ids: list()
                }
            ))
        );
        refuse!(
            nf,
            what("ModifyInstanceAttribute"),
            k.c.modify_instance_attribute(as_account(
                token,
                pb::ModifyInstanceAttributeRequest {
                    instance_id: id.into(),
                    disable_api_termination: Some(true),
                    ..Default::default()
                }
            ))
        );
        refuse!(
            nf,
            what("GetConsoleOutput"),
            k.c.get_console_output(as_account(
                token,
                pb::GetConsoleOutputRequest {
                    instance_id: id.into()
                }
            ))
        );
        refuse!(
            nf,
            what("StreamConsole"),
            k.c.stream_console(as_account(
                token,
                pb::StreamConsoleRequest {
                    instance_id: id.into()
                }
            ))
        );
        refuse!(
            nf,
            what("SendConsoleInput"),
            k.c.send_console_input(as_account(
                token,
                pb::SendConsoleInputRequest {
                    instance_id: id.into(),
                    data: b"x\n".to_vec(),
                    send_break: true,
                }
            ))
        );
        refuse!(
            nf,
            what("CreateImage"),
            k.i.create_image(as_account(
                token,
                pb::CreateImageRequest {
                    instance_id: id.into(),
                    name: "img-bad".into(),
                    ..Default::default()
                }
            ))
        );
    }
    // One unknown ID refuses the whole list; the known ones are left alone.
    refuse!(
        "InvalidInstanceID.NotFound",
        k.c.terminate_instances(pb::TerminateInstancesRequest {
            instance_ids: ids(&[&f.running, &f.stopped, UNKNOWN_INSTANCE]),
        })
    );
    refuse!(
        "InvalidInstanceID.NotFound",
        k.c.stop_instances(pb::StopInstancesRequest {
            instance_ids: ids(&[&f.running, UNKNOWN_INSTANCE]),
            force: true,
        })
    );
    // No IDs at all.
    let none = Vec::new;
    refuse!(
        "MissingParameter",
        k.c.stop_instances(pb::StopInstancesRequest {
            instance_ids: none(),
            force: false,
        })
    );
    refuse!(
        "MissingParameter",
        k.c.start_instances(pb::StartInstancesRequest {
            instance_ids: none()
        })
    );
    refuse!(
        "MissingParameter",
        k.c.reboot_instances(pb::RebootInstancesRequest {
            instance_ids: none()
        })
    );
    refuse!(
        "MissingParameter",
        k.c.terminate_instances(pb::TerminateInstancesRequest {
            instance_ids: none()
        })
    );

    // Wrong states; a request with one bad instance changes none.
    let st = "IncorrectInstanceState";
    refuse!(
        st,
        k.c.reboot_instances(pb::RebootInstancesRequest {
            instance_ids: ids(&[&f.stopped]),
        })
    );
    refuse!(
        st,
        k.c.reboot_instances(pb::RebootInstancesRequest {
            instance_ids: ids(&[&f.running, &f.terminated]),
        })
    );
    refuse!(
        st,
        k.c.start_instances(pb::StartInstancesRequest {
            instance_ids: ids(&[&f.terminated]),
        })
    );
    refuse!(
        st,
        k.c.start_instances(pb::StartInstancesRequest {
            instance_ids: ids(&[&f.stopped, &f.terminated]),
        })
    );
    refuse!(
        st,
        k.c.stop_instances(pb::StopInstancesRequest {
            instance_ids: ids(&[&f.running, &f.terminated]),
            force: true,
        })
    );
    refuse!(
        st,
        k.i.create_image(pb::CreateImageRequest {
            instance_id: f.terminated.clone(),
            name: "img-of-terminated".into(),
            ..Default::default()
        })
    );
    refuse!(
        st,
        k.c.modify_instance_attribute(pb::ModifyInstanceAttributeRequest {
            instance_id: f.terminated.clone(),
            disable_api_termination: Some(true),
            ..Default::default()
        })
    );

    // Console input goes only to a running guest, at most 16 KiB at a time.
    for id in [&f.stopped, &f.terminated] {
        refuse!(
            st,
            k.c.send_console_input(pb::SendConsoleInputRequest {
                instance_id: id.clone(),
                data: b"x\n".to_vec(),
                send_break: false,
            })
        );
    }
    refuse!(
        "InvalidParameterValue",
        k.c.send_console_input(pb::SendConsoleInputRequest {
            instance_id: f.running.clone(),
            data: vec![b'x'; 16 * 1024 + 1],
            send_break: true,
        })
    );

    // Attribute values.
    refuse!(
        "InvalidParameterValue",
        k.c.modify_instance_attribute(pb::ModifyInstanceAttributeRequest {
            instance_id: f.running.clone(),
            instance_initiated_shutdown_behavior: "reboot".into(),
            ..Default::default()
        })
    );
    // Even with a valid change beside it, nothing is applied.
    refuse!(
        "InvalidParameterValue",
        k.c.modify_instance_attribute(pb::ModifyInstanceAttributeRequest {
            instance_id: f.running.clone(),
            disable_api_termination: Some(true),
            instance_initiated_shutdown_behavior: "x".repeat(10 * 1024),
            groups: vec![],
            ena_support: None,
        })
    );
}

/// Compute: listings and types.
async fn listing_rpcs(k: &mut Clients) {
    let ipv = "InvalidParameterValue";
    let colour = || {
        vec![pb::Filter {
            name: "colour".into(),
            values: ids(&["red"]),
        }]
    };
    refuse!(
        ipv,
        k.c.describe_instances(pb::DescribeInstancesRequest {
            filters: colour(),
            ..Default::default()
        })
    );
    refuse!(
        ipv,
        k.c.describe_instance_status(pb::DescribeInstanceStatusRequest {
            filters: colour(),
            ..Default::default()
        })
    );
    refuse!(
        ipv,
        k.i.describe_images(pb::DescribeImagesRequest {
            filters: colour(),
            ..Default::default()
        })
    );
    refuse!(
        ipv,
        k.v.describe_volumes(pb::DescribeVolumesRequest {
            filters: colour(),
            ..Default::default()
        })
    );
    refuse!(
        ipv,
        k.v.describe_snapshots(pb::DescribeSnapshotsRequest {
            filters: colour(),
            ..Default::default()
        })
    );
    for token in ["bogus", "-1", "1.5", "99999999999999999999999"] {
        refuse!(
            "InvalidNextToken",
            format!("DescribeInstances token {token}"),
            k.c.describe_instances(pb::DescribeInstancesRequest {
                next_token: token.into(),
                ..Default::default()
            })
        );
        refuse!(
            "InvalidNextToken",
            format!("DescribeInstanceStatus token {token}"),
            k.c.describe_instance_status(pb::DescribeInstanceStatusRequest {
                next_token: token.into(),
                include_all_instances: true,
                ..Default::default()
            })
        );
    }
    for max in [-1, 1, 4, 1001, i32::MAX] {
        refuse!(
            ipv,
            format!("DescribeInstances max {max}"),
            k.c.describe_instances(pb::DescribeInstancesRequest {
                max_results: max,
                ..Default::default()
            })
        );
        refuse!(
            ipv,
            format!("DescribeInstanceStatus max {max}"),
            k.c.describe_instance_status(pb::DescribeInstanceStatusRequest {
                max_results: max,
                ..Default::default()
            })
        );
    }
    for t in ["t9.huge", "custom-0-64", "custom-1-99999999", ""] {
        refuse!(
            ipv,
            format!("DescribeInstanceTypes {t}"),
            k.c.describe_instance_types(pb::DescribeInstanceTypesRequest {
                instance_types: ids(&["t3.micro", t]),
            })
        );
    }
}

/// Images: every RPC.
async fn image_rpcs(k: &mut Clients, f: &Fixture) {
    let ipv = "InvalidParameterValue";
    let bob = || pb::LaunchPermission {
        user_id: "222222222222".into(),
        ..Default::default()
    };
    let mut bad_ids = malformed("ami-", "i-0123456789abcdef0");
    bad_ids.push(String::new());
    let mut cases: Vec<(String, &str)> = bad_ids
        .into_iter()
        .map(|b| (b, "InvalidAMIID.Malformed"))
        .collect();
    cases.push((UNKNOWN_IMAGE.into(), "InvalidAMIID.NotFound"));
    for (bad, code) in &cases {
        let what = |rpc: &str| format!("{rpc} {bad:.40}");
        refuse!(
            code,
            what("DescribeImages"),
            k.i.describe_images(pb::DescribeImagesRequest {
                image_ids: vec![bad.clone()],
                ..Default::default()
            })
        );
        refuse!(
            code,
            what("DeregisterImage"),
            k.i.deregister_image(pb::DeregisterImageRequest {
                image_id: bad.clone()
            })
        );
        refuse!(
            code,
            what("ModifyImageAttribute"),
            k.i.modify_image_attribute(pb::ModifyImageAttributeRequest {
                image_id: bad.clone(),
                add: vec![bob()],
                ..Default::default()
            })
        );
        refuse!(
            code,
            what("DescribeImageAttribute"),
            k.i.describe_image_attribute(pb::DescribeImageAttributeRequest {
                image_id: bad.clone(),
                attribute: "launchPermission".into(),
            })
        );
    }
    // The admin's private image does not exist for alice.
    let nf = "InvalidAMIID.NotFound";
    refuse!(
        nf,
        k.i.describe_images(with_token(
            ALICE,
            pb::DescribeImagesRequest {
                image_ids: vec![f.ami.clone()],
                ..Default::default()
            }
        ))
    );
    refuse!(
        nf,
        k.i.deregister_image(with_token(
            ALICE,
            pb::DeregisterImageRequest {
                image_id: f.ami.clone()
            }
        ))
    );
    refuse!(
        nf,
        k.i.modify_image_attribute(with_token(
            ALICE,
            pb::ModifyImageAttributeRequest {
                image_id: f.ami.clone(),
                add: vec![pb::LaunchPermission {
                    group: "all".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }
        ))
    );

    // Launch permission values.
    for (user, group) in [
        ("12345", ""),
        ("1111111111111", ""),
        ("abcdefghijkl", ""),
        ("", "everyone"),
        ("", "ALL"),
        ("", ""),
    ] {
        refuse!(
            "InvalidAMIAttributeItemValue",
            format!("ModifyImageAttribute {user:?} {group:?}"),
            k.i.modify_image_attribute(pb::ModifyImageAttributeRequest {
                image_id: f.ami.clone(),
                // A valid entry beside the bad one is not applied either.
                add: vec![
                    bob(),
                    pb::LaunchPermission {
                        user_id: user.into(),
                        group: group.into(),
                    }
                ],
                ..Default::default()
            })
        );
    }
    refuse!(
        "MissingParameter",
        k.i.modify_image_attribute(pb::ModifyImageAttributeRequest {
            image_id: f.ami.clone(),
            ..Default::default()
        })
    );
    for attr in ["kernel", "LaunchPermission", &"x".repeat(10 * 1024)] {
        refuse!(
            "InvalidRequest",
            format!("DescribeImageAttribute {attr:.40}"),
            k.i.describe_image_attribute(pb::DescribeImageAttributeRequest {
                image_id: f.ami.clone(),
                attribute: attr.into(),
            })
        );
    }

    // CreateImage: names.
    for name in [
        "",
        "ab",
        "a*b",
        "naïve",
        &"n".repeat(129),
        &"x".repeat(10 * 1024),
    ] {
        refuse!(
            ipv,
            format!("CreateImage name {name:.40}"),
            k.i.create_image(pb::CreateImageRequest {
                instance_id: f.running.clone(),
                name: name.into(),
                ..Default::default()
            })
        );
    }
    refuse!(
        "InvalidAMIName.Duplicate",
        k.i.create_image(pb::CreateImageRequest {
            instance_id: f.stopped.clone(),
            name: "probe".into(),
            no_reboot: true,
            ..Default::default()
        })
    );

    // RegisterImage.
    let bundle = strato_e2e::probe_bundle().display().to_string();
    let kernel = strato_e2e::probe_bundle()
        .join("vmlinux")
        .display()
        .to_string();
    let reg = |patch: &dyn Fn(&mut pb::RegisterImageRequest)| {
        let mut r = pb::RegisterImageRequest {
            name: "fresh".into(),
            bundle_path: bundle.clone(),
            ..Default::default()
        };
        patch(&mut r);
        r
    };
    refuse!(
        "UnauthorizedOperation",
        k.i.register_image(with_token(ALICE, reg(&|_| {})))
    );
    refuse!(
        "InvalidAMIName.Duplicate",
        k.i.register_image(reg(&|r| r.name = "probe".into()))
    );
    for name in ["", "ab", "a*b", &"n".repeat(129), &"x".repeat(10 * 1024)] {
        refuse!(
            ipv,
            format!("RegisterImage name {name:.40}"),
            k.i.register_image(reg(&|r| r.name = name.into()))
        );
    }
    refuse!(
        "MissingParameter",
        k.i.register_image(reg(&|r| r.bundle_path.clear()))
    );
    refuse!(
        ipv,
        k.i.register_image(reg(&|r| r.bundle_path = "/nonexistent/bundle".into()))
    );
    refuse!(
        ipv,
        k.i.register_image(reg(&|r| {
            r.bundle_path.clear();
            r.kernel_path = "/nonexistent/vmlinux".into();
        }))
    );
    refuse!(
        ipv,
        k.i.register_image(reg(&|r| {
            r.bundle_path.clear();
            r.kernel_path = kernel.clone();
            r.root_volume_path = "/nonexistent/root.img".into();
        }))
    );
    refuse!(
        ipv,
        k.i.register_image(reg(&|r| r.root_device_name = "/dev/hda".into()))
    );
    for dev in ["/dev/hda", "", "vdb"] {
        refuse!(
            ipv,
            format!("RegisterImage device {dev}"),
            k.i.register_image(reg(&|r| r.block_device_mappings = vec![bdm(dev, 1, "", "")]))
        );
    }
    for size in [0, -1, 16385, i64::MAX] {
        refuse!(
            ipv,
            format!("RegisterImage volume of {size} GiB"),
            k.i.register_image(reg(
                &|r| r.block_device_mappings = vec![bdm("/dev/vda", size, "", "")]
            ))
        );
    }
    refuse!(
        ipv,
        k.i.register_image(reg(
            &|r| r.block_device_mappings = vec![bdm("/dev/vda", 1, &f.snap, "")]
        ))
    );
    refuse!(
        ipv,
        k.i.register_image(reg(
            &|r| r.block_device_mappings = vec![bdm("/dev/vda", 1, "", "fast")]
        ))
    );
    refuse!(
        "InvalidBlockDeviceMapping",
        k.i.register_image(reg(&|r| {
            r.block_device_mappings = vec![bdm("/dev/vdb", 1, "", ""), bdm("/dev/sdb", 1, "", "")]
        }))
    );
}

/// Volumes: every RPC.
async fn volume_rpcs(k: &mut Clients, f: &Fixture) {
    let ipv = "InvalidParameterValue";
    let mut cases: Vec<(String, &str)> = malformed("vol-", "snap-0123456789abcdef0")
        .into_iter()
        .map(|b| (b, "InvalidVolumeID.Malformed"))
        .collect();
    cases.push((UNKNOWN_VOLUME.into(), "InvalidVolume.NotFound"));
    for (bad, code) in &cases {
        let what = |rpc: &str| format!("{rpc} {bad:.40}");
        refuse!(
            code,
            what("AttachVolume"),
            k.v.attach_volume(pb::AttachVolumeRequest {
                volume_id: bad.clone(),
                instance_id: f.running.clone(),
                device: "/dev/vdf".into(),
            })
        );
        refuse!(
            code,
            what("DetachVolume"),
            k.v.detach_volume(pb::DetachVolumeRequest {
                volume_id: bad.clone(),
                ..Default::default()
            })
        );
        refuse!(
            code,
            what("DeleteVolume"),
            k.v.delete_volume(pb::DeleteVolumeRequest {
                volume_id: bad.clone(),
                ..Default::default()
            })
        );
        refuse!(
            code,
            what("DescribeVolumes"),
            k.v.describe_volumes(pb::DescribeVolumesRequest {
                volume_ids: vec![bad.clone()],
                ..Default::default()
            })
        );
        refuse!(
            code,
            what("CreateSnapshot"),
            k.v.create_snapshot(pb::CreateSnapshotRequest {
                volume_id: bad.clone(),
                ..Default::default()
            })
        );
    }
    let mut cases: Vec<(String, &str)> = malformed("snap-", "vol-0123456789abcdef0")
        .into_iter()
        .map(|b| (b, "InvalidSnapshotID.Malformed"))
        .collect();
    cases.push((UNKNOWN_SNAPSHOT.into(), "InvalidSnapshot.NotFound"));
    for (bad, code) in &cases {
        let what = |rpc: &str| format!("{rpc} {bad:.40}");
        refuse!(
            code,
            what("CreateVolume"),
            k.v.create_volume(pb::CreateVolumeRequest {
                snapshot_id: bad.clone(),
                availability_zone: AZ.into(),
                ..Default::default()
            })
        );
        refuse!(
            code,
            what("DescribeSnapshots"),
            k.v.describe_snapshots(pb::DescribeSnapshotsRequest {
                snapshot_ids: vec![bad.clone()],
                ..Default::default()
            })
        );
        refuse!(
            code,
            what("DeleteSnapshot"),
            k.v.delete_snapshot(pb::DeleteSnapshotRequest {
                snapshot_id: bad.clone()
            })
        );
    }
    // The admin's volume and snapshot do not exist for alice.
    refuse!(
        "InvalidVolume.NotFound",
        k.v.delete_volume(with_token(
            ALICE,
            pb::DeleteVolumeRequest {
                volume_id: f.vol.clone(),
                ..Default::default()
            }
        ))
    );
    refuse!(
        "InvalidVolume.NotFound",
        k.v.create_snapshot(with_token(
            ALICE,
            pb::CreateSnapshotRequest {
                volume_id: f.vol.clone(),
                ..Default::default()
            }
        ))
    );
    refuse!(
        "InvalidSnapshot.NotFound",
        k.v.create_volume(with_token(
            ALICE,
            pb::CreateVolumeRequest {
                snapshot_id: f.snap.clone(),
                availability_zone: AZ.into(),
                ..Default::default()
            }
        ))
    );
    refuse!(
        "InvalidSnapshot.NotFound",
        k.v.delete_snapshot(with_token(
            ALICE,
            pb::DeleteSnapshotRequest {
                snapshot_id: f.snap.clone()
            }
        ))
    );

    // A volume's move between a region's hosts is theirs to ask for, not a caller's.
    refuse!(
        "AuthFailure",
        k.v.delete_volume(pb::DeleteVolumeRequest {
            volume_id: f.vol.clone(),
            region_move: true,
        })
    );
    refuse!(
        "AuthFailure",
        k.v.create_volume(pb::CreateVolumeRequest {
            size: 1,
            availability_zone: AZ.into(),
            region_volume_id: "vol-0123456789abcdef0".into(),
            ..Default::default()
        })
    );

    // CreateVolume values.
    let cv = |patch: &dyn Fn(&mut pb::CreateVolumeRequest)| {
        let mut r = pb::CreateVolumeRequest {
            size: 1,
            availability_zone: AZ.into(),
            ..Default::default()
        };
        patch(&mut r);
        r
    };
    for size in [0, -1, 16385, i64::MAX, i64::MIN] {
        refuse!(
            ipv,
            format!("CreateVolume {size} GiB"),
            k.v.create_volume(cv(&|r| r.size = size))
        );
    }
    for size in [-1, 16385, i64::MAX] {
        refuse!(
            ipv,
            format!("CreateVolume {size} GiB from a snapshot"),
            k.v.create_volume(cv(&|r| {
                r.size = size;
                r.snapshot_id = f.snap.clone();
            }))
        );
    }
    refuse!(
        "MissingParameter",
        k.v.create_volume(cv(&|r| r.availability_zone.clear()))
    );
    for az in ["mars-1a", "home-1z", "HOME-1A", &"x".repeat(10 * 1024)] {
        refuse!(
            "InvalidAvailabilityZone",
            format!("CreateVolume zone {az:.40}"),
            k.v.create_volume(cv(&|r| r.availability_zone = az.into()))
        );
    }
    for t in ["fast", "GP3", &"x".repeat(10 * 1024)] {
        refuse!(
            ipv,
            format!("CreateVolume type {t:.40}"),
            k.v.create_volume(cv(&|r| r.volume_type = t.into()))
        );
    }

    // AttachVolume values and states.
    let attach = |vol: &str, inst: &str, dev: &str| pb::AttachVolumeRequest {
        volume_id: vol.into(),
        instance_id: inst.into(),
        device: dev.into(),
    };
    refuse!(
        "MissingParameter",
        k.v.attach_volume(attach(&f.vol, &f.running, ""))
    );
    for dev in [
        "/dev/hda",
        "vdf",
        "/dev/vdff",
        "/dev/vd1",
        &"x".repeat(10 * 1024),
    ] {
        refuse!(
            ipv,
            format!("AttachVolume device {dev:.40}"),
            k.v.attach_volume(attach(&f.vol, &f.running, dev))
        );
    }
    refuse!(
        ipv,
        k.v.attach_volume(attach(&f.vol, &f.running, "/dev/vda"))
    );
    refuse!(
        "InvalidVolume.ZoneMismatch",
        k.v.attach_volume(attach(&f.far, &f.running, "/dev/vdf"))
    );
    refuse!(
        "IncorrectInstanceState",
        k.v.attach_volume(attach(&f.vol, &f.terminated, "/dev/vdf"))
    );
    refuse!(
        "VolumeInUse",
        k.v.attach_volume(attach(&f.root, &f.stopped, "/dev/vdf"))
    );
    refuse!(
        "InvalidInstanceID.NotFound",
        k.v.attach_volume(attach(&f.vol, UNKNOWN_INSTANCE, "/dev/vdf"))
    );

    // DetachVolume and DeleteVolume states.
    refuse!(
        "IncorrectState",
        k.v.detach_volume(pb::DetachVolumeRequest {
            volume_id: f.vol.clone(),
            ..Default::default()
        })
    );
    refuse!(
        "OperationNotPermitted",
        k.v.detach_volume(pb::DetachVolumeRequest {
            volume_id: f.root.clone(),
            ..Default::default()
        })
    );
    refuse!(
        "OperationNotPermitted",
        k.v.detach_volume(pb::DetachVolumeRequest {
            volume_id: f.root.clone(),
            instance_id: f.running.clone(),
            force: true,
        })
    );
    refuse!(
        "InvalidAttachment.NotFound",
        k.v.detach_volume(pb::DetachVolumeRequest {
            volume_id: f.root.clone(),
            instance_id: f.stopped.clone(),
            ..Default::default()
        })
    );
    refuse!(
        "InvalidInstanceID.Malformed",
        k.v.detach_volume(pb::DetachVolumeRequest {
            volume_id: f.root.clone(),
            instance_id: "i-xyz".into(),
            ..Default::default()
        })
    );
    refuse!(
        "VolumeInUse",
        k.v.delete_volume(pb::DeleteVolumeRequest {
            volume_id: f.root.clone(),
            ..Default::default()
        })
    );
}

/// Usage: the time window.
async fn usage_rpcs(k: &mut Clients) {
    let far_future = 4_102_444_800; // 2100-01-01
    for (start, end) in [
        (-1, 0),
        (0, -1),
        (i64::MIN, 0),
        (far_future, 0),
        (i64::MAX, 0),
        (1_714_600_000, 1_714_500_000),
    ] {
        refuse!(
            "InvalidParameterValue",
            format!("DescribeUsage {start}..{end}"),
            k.u.describe_usage(pb::DescribeUsageRequest {
                start_unix: start,
                end_unix: end,
            })
        );
    }
}

/// Tokens: a wrong one is refused by every service, on the Unix socket too.
async fn auth_rpcs(k: &mut Clients, f: &Fixture) {
    for header in [
        "Bearer token-mallory",
        "Bearer TOKEN-ALICE",
        "Bearer ",
        "Basic dG9rZW4tYWxpY2U=",
        "token-alice",
    ] {
        let what = |rpc: &str| format!("{rpc} with {header:?}");
        let a = "AuthFailure";
        refuse!(
            a,
            what("DescribeInstances"),
            k.c.describe_instances(with_header(header, pb::DescribeInstancesRequest::default()))
        );
        refuse!(
            a,
            what("RunInstances"),
            k.c.run_instances(with_header(
                header,
                pb::RunInstancesRequest {
                    image_id: f.ami.clone(),
                    ..Default::default()
                }
            ))
        );
        refuse!(
            a,
            what("TerminateInstances"),
            k.c.terminate_instances(with_header(
                header,
                pb::TerminateInstancesRequest {
                    instance_ids: ids(&[&f.running]),
                }
            ))
        );
        refuse!(
            a,
            what("DescribeInstanceTypes"),
            k.c.describe_instance_types(with_header(
                header,
                pb::DescribeInstanceTypesRequest::default()
            ))
        );
        refuse!(
            a,
            what("StreamConsole"),
            k.c.stream_console(with_header(
                header,
                pb::StreamConsoleRequest {
                    instance_id: f.running.clone(),
                }
            ))
        );
        refuse!(
            a,
            what("SendConsoleInput"),
            k.c.send_console_input(with_header(
                header,
                pb::SendConsoleInputRequest {
                    instance_id: f.running.clone(),
                    data: b"x\n".to_vec(),
                    send_break: false,
                }
            ))
        );
        refuse!(
            a,
            what("DescribeImages"),
            k.i.describe_images(with_header(header, pb::DescribeImagesRequest::default()))
        );
        refuse!(
            a,
            what("DeregisterImage"),
            k.i.deregister_image(with_header(
                header,
                pb::DeregisterImageRequest {
                    image_id: f.ami.clone(),
                }
            ))
        );
        refuse!(
            a,
            what("DescribeVolumes"),
            k.v.describe_volumes(with_header(header, pb::DescribeVolumesRequest::default()))
        );
        refuse!(
            a,
            what("DeleteVolume"),
            k.v.delete_volume(with_header(
                header,
                pb::DeleteVolumeRequest {
                    volume_id: f.vol.clone(),
                    ..Default::default()
                }
            ))
        );
        refuse!(
            a,
            what("DescribeUsage"),
            k.u.describe_usage(with_header(header, pb::DescribeUsageRequest::default()))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refusals_carry_the_ec2_code_and_change_nothing() {
    let d = Daemon::start("bad-grpc");
    let f = setup(&d);
    let before = world(&d, &f);

    let ch = unix_channel(&d).await;
    let mut k = Clients {
        c: pb::compute_client::ComputeClient::new(ch.clone()),
        i: pb::images_client::ImagesClient::new(ch.clone()),
        v: pb::volumes_client::VolumesClient::new(ch.clone()),
        u: pb::usage_client::UsageClient::new(ch),
    };
    run_instances(&mut k, &f).await;
    instance_rpcs(&mut k, &f).await;
    listing_rpcs(&mut k).await;
    image_rpcs(&mut k, &f).await;
    volume_rpcs(&mut k, &f).await;
    usage_rpcs(&mut k).await;
    auth_rpcs(&mut k, &f).await;

    assert_no_mismatches();
    // Give anything wrongly started a moment to show, then compare.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world(&d, &f), before);

    // The limits themselves are accepted: 16 KiB of user data.
    let r =
        k.c.run_instances(pb::RunInstancesRequest {
            image_id: f.ami.clone(),
            instance_type: "custom-1-64".into(),
            user_data: vec![b'#'; 16384],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let id = r.instances[0].instance_id.clone();
    d.wait_state(&id, "running", T);
    d.wait_console(&id, "probe: user-data 16384 bytes", T);
}
