//! The control plane beyond instances, through the CLI: regions and availability zones,
//! placement groups (spread capacity, partitions, cluster zones, moving stopped instances),
//! launch templates (versions, defaults, and what an explicit parameter overrides) and key
//! pairs (the private key shown once, the public key in the guest's config drive), each with
//! the EC2 error codes of its refusals.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};
use strato_e2e::{fast_config, Daemon};

const T: Duration = Duration::from_secs(30);

/// A test daemon with three racks, so that a spread group is full at three instances.
fn three_racks(tag: &str) -> Daemon {
    let mut cfg = fast_config();
    cfg["racks"] = json!(["r1", "r2", "r3"]);
    Daemon::start_with(tag, cfg)
}

fn placement(d: &Daemon, id: &str) -> Value {
    d.instance(id)["Placement"].clone()
}

fn tag(instance: &Value, key: &str) -> Option<String> {
    instance["Tags"]
        .as_array()?
        .iter()
        .find(|t| t["Key"] == key)
        .map(|t| t["Value"].as_str().unwrap_or("").to_string())
}

/// The config drive of an instance, as text (a tar: the members' bytes appear as they are).
fn config_drive(d: &Daemon, id: &str) -> String {
    let p = d.data().join("instances").join(id).join("config-drive.img");
    String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
}

#[test]
fn regions_and_availability_zones() {
    let mut cfg = fast_config();
    cfg["peers"] = json!({"away-1": "http://10.99.0.2:7000"});
    let d = Daemon::start_with("regions", cfg);
    let v = d.json(&["describe-regions"]);
    let regions = v["Regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "{v}");
    assert_eq!(regions[0]["RegionName"], "home-1");
    assert_eq!(
        regions[0]["Endpoint"],
        format!("unix:{}", d.socket.display())
    );
    assert_eq!(regions[0]["OptInStatus"], "opt-in-not-required");
    assert_eq!(regions[1]["RegionName"], "away-1");
    assert_eq!(regions[1]["Endpoint"], "http://10.99.0.2:7000");
    let v = d.json(&["describe-regions", "--region-names", "away-1"]);
    assert_eq!(v["Regions"].as_array().unwrap().len(), 1);
    let names = d.cli(&[
        "describe-regions",
        "--query",
        "Regions[].RegionName",
        "--output",
        "text",
    ]);
    assert_eq!(names, "home-1\taway-1\n");
    d.cli_err(
        "InvalidParameterValue",
        &["describe-regions", "--region-names", "mars-1"],
    );

    let v = d.json(&["describe-availability-zones"]);
    let zones = v["AvailabilityZones"].as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = zones
        .iter()
        .map(|z| {
            (
                z["ZoneName"].as_str().unwrap(),
                z["ZoneId"].as_str().unwrap(),
                z["State"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("home-1a", "home-1-az1", "available"),
            ("home-1b", "home-1-az2", "available"),
            ("home-1c", "home-1-az3", "available")
        ]
    );
    assert_eq!(zones[0]["RegionName"], "home-1");
    let v = d.json(&[
        "describe-availability-zones",
        "--filters",
        "Name=zone-id,Values=home-1-az2",
    ]);
    assert_eq!(v["AvailabilityZones"][0]["ZoneName"], "home-1b");
    d.cli_err(
        "InvalidParameterValue",
        &["describe-availability-zones", "--zone-names", "home-1z"],
    );
}

#[test]
fn spread_groups_fill_their_racks_and_refuse_one_more() {
    let d = three_racks("spread");
    let ami = d.register_probe("probe");
    let v = d.json(&[
        "create-placement-group",
        "--group-name",
        "web",
        "--strategy",
        "spread",
    ]);
    assert_eq!(v["PlacementGroup"]["Strategy"], "spread");
    assert_eq!(v["PlacementGroup"]["SpreadLevel"], "rack");
    assert!(v["PlacementGroup"]["GroupId"]
        .as_str()
        .unwrap()
        .starts_with("pg-"));
    d.cli_err(
        "InvalidPlacementGroup.Duplicate",
        &[
            "create-placement-group",
            "--group-name",
            "web",
            "--strategy",
            "cluster",
        ],
    );
    d.cli_err(
        "InvalidPlacementGroup.Unknown",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--placement",
            "GroupName=nope",
        ],
    );

    let ids = d.run(&ami, &["--count", "3", "--placement", "GroupName=web"]);
    assert_eq!(ids.len(), 3);
    let mut racks: Vec<String> = ids
        .iter()
        .map(|id| {
            let p = placement(&d, id);
            assert_eq!(p["GroupName"], "web");
            p["Rack"].as_str().unwrap().to_string()
        })
        .collect();
    racks.sort();
    assert_eq!(racks, ["r1", "r2", "r3"]);
    // The fourth instance (one more than the racks) is refused, and nothing is launched.
    let err = d.cli_err(
        "InsufficientInstanceCapacity",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--placement",
            "GroupName=web",
        ],
    );
    assert!(err.contains("3 racks"), "{err}");
    let v = d.json(&[
        "describe-instances",
        "--filters",
        "Name=placement-group-name,Values=web",
    ]);
    assert_eq!(strato_e2e::instances_of(&v).len(), 3);

    d.cli_err(
        "InvalidPlacementGroup.InUse",
        &["delete-placement-group", "--group-name", "web"],
    );
    d.cli_err(
        "InvalidPlacementGroup.Unknown",
        &["delete-placement-group", "--group-name", "nope"],
    );

    // Moving into or out of a group needs a stopped instance.
    let loner = d.run(&ami, &[])[0].clone();
    d.wait_state(&loner, "running", T);
    d.cli_err(
        "IncorrectInstanceState",
        &[
            "modify-instance-placement",
            "--instance-id",
            &loner,
            "--group-name",
            "web",
        ],
    );
    d.cli(&[
        "stop-instances",
        "--instance-ids",
        &loner,
        "--force",
        "--wait",
    ]);
    let v = d.json(&[
        "modify-instance-placement",
        "--instance-id",
        &loner,
        "--group-name",
        "web",
    ]);
    assert_eq!(v["Return"], true);
    assert_eq!(placement(&d, &loner)["GroupName"], "web");
    // The group is full while its three run: the start is refused and it stays stopped.
    d.cli_err(
        "InsufficientInstanceCapacity",
        &["start-instances", "--instance-ids", &loner],
    );
    assert_eq!(d.state(&loner), "stopped");
    // A freed rack takes it.
    let freed = placement(&d, &ids[1])["Rack"].as_str().unwrap().to_string();
    d.cli(&["terminate-instances", "--instance-ids", &ids[1], "--wait"]);
    d.cli(&["start-instances", "--instance-ids", &loner, "--wait"]);
    assert_eq!(placement(&d, &loner)["Rack"], freed.as_str());
    // Out of the group again.
    d.cli(&[
        "stop-instances",
        "--instance-ids",
        &loner,
        "--force",
        "--wait",
    ]);
    d.cli(&[
        "modify-instance-placement",
        "--instance-id",
        &loner,
        "--group-name",
        "",
    ]);
    assert!(placement(&d, &loner).get("GroupName").is_none());

    d.cli(&[
        "terminate-instances",
        "--instance-ids",
        &ids[0],
        &ids[2],
        "--wait",
    ]);
    d.cli(&["delete-placement-group", "--group-name", "web"]);
    d.cli_err(
        "InvalidPlacementGroup.Unknown",
        &["describe-placement-groups", "--group-names", "web"],
    );
}

#[test]
fn partition_and_cluster_groups() {
    let d = three_racks("partition");
    let ami = d.register_probe("probe");
    d.cli_err(
        "InvalidParameterValue",
        &[
            "create-placement-group",
            "--group-name",
            "big",
            "--strategy",
            "partition",
            "--partition-count",
            "8",
        ],
    );
    // Partitions own disjoint racks: no more partitions than racks.
    d.cli_err(
        "InvalidParameterValue",
        &[
            "create-placement-group",
            "--group-name",
            "big",
            "--strategy",
            "partition",
            "--partition-count",
            "4",
        ],
    );
    let v = d.json(&[
        "create-placement-group",
        "--group-name",
        "hdfs",
        "--strategy",
        "partition",
        "--partition-count",
        "3",
    ]);
    assert_eq!(v["PlacementGroup"]["PartitionCount"], 3);
    let v = d.json(&[
        "describe-placement-groups",
        "--filters",
        "Name=strategy,Values=partition",
    ]);
    assert_eq!(v["PlacementGroups"][0]["GroupName"], "hdfs");

    let two = d.run(&ami, &["--placement", "GroupName=hdfs,PartitionNumber=2"])[0].clone();
    let p = placement(&d, &two);
    assert_eq!(
        (p["PartitionNumber"].as_i64(), p["Rack"].as_str()),
        (Some(2), Some("r2"))
    );
    d.cli_err(
        "InvalidParameterValue",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--placement",
            "GroupName=hdfs,PartitionNumber=4",
        ],
    );
    // Without a number, the least-loaded partitions, each on its own rack.
    let more = d.run(&ami, &["--count", "3", "--placement", "GroupName=hdfs"]);
    let got: Vec<(i64, String)> = more
        .iter()
        .map(|id| {
            let p = placement(&d, id);
            (
                p["PartitionNumber"].as_i64().unwrap(),
                p["Rack"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(1, "r1".into()), (3, "r3".into()), (1, "r1".into())],
        "partition k of 3 owns rack rk"
    );
    let v = d.json(&[
        "describe-instances",
        "--filters",
        "Name=placement-partition-number,Values=1",
    ]);
    assert_eq!(strato_e2e::instances_of(&v).len(), 2);
    // The guest learns its group and partition from the config drive.
    d.wait_state(&two, "running", T);
    let drive = config_drive(&d, &two);
    assert!(
        drive.contains("placement-group: hdfs\npartition-number: 2\n"),
        "{drive}"
    );

    // Cluster: one zone for the whole group.
    d.cli(&[
        "create-placement-group",
        "--group-name",
        "hpc",
        "--strategy",
        "cluster",
    ]);
    let first = d.run(
        &ami,
        &["--placement", "AvailabilityZone=home-1b,GroupName=hpc"],
    )[0]
    .clone();
    let err = d.cli_err(
        "InvalidParameterValue",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--placement",
            "AvailabilityZone=home-1c,GroupName=hpc",
        ],
    );
    assert!(err.contains("home-1b"), "{err}");
    // Unless told otherwise, the next one goes where the group is, on the same rack.
    let second = d.run(&ami, &["--placement", "GroupName=hpc"])[0].clone();
    let (a, b) = (placement(&d, &first), placement(&d, &second));
    assert_eq!(b["AvailabilityZone"], "home-1b");
    assert_eq!(a["Rack"], b["Rack"]);
}

#[test]
fn launch_templates_fill_what_the_request_leaves_out() {
    let d = Daemon::start("templates");
    let ami = d.register_probe("probe");
    // UserData is base64 in the AWS CLI's launch template JSON: "#!probe\necho v1 data\n".
    let data = json!({
        "ImageId": ami,
        "InstanceType": "custom-1-64",
        "UserData": "IyFwcm9iZQplY2hvIHYxIGRhdGEK",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "tpl"}]}]
    })
    .to_string();
    let v = d.json(&[
        "create-launch-template",
        "--launch-template-name",
        "web",
        "--version-description",
        "first",
        "--launch-template-data",
        &data,
    ]);
    let lt = v["LaunchTemplate"].clone();
    let lt_id = lt["LaunchTemplateId"].as_str().unwrap().to_string();
    assert!(lt_id.starts_with("lt-"), "{lt}");
    assert_eq!(
        (
            lt["DefaultVersionNumber"].as_i64(),
            lt["LatestVersionNumber"].as_i64()
        ),
        (Some(1), Some(1))
    );
    d.cli_err(
        "InvalidLaunchTemplateName.AlreadyExistsException",
        &[
            "create-launch-template",
            "--launch-template-name",
            "web",
            "--launch-template-data",
            "{}",
        ],
    );

    // Version 2 from version 1: a bigger instance type, the rest inherited.
    let v = d.json(&[
        "create-launch-template-version",
        "--launch-template-name",
        "web",
        "--source-version",
        "1",
        "--version-description",
        "bigger",
        "--launch-template-data",
        r#"{"InstanceType":"custom-1-96"}"#,
    ]);
    let v2 = &v["LaunchTemplateVersion"];
    assert_eq!(v2["VersionNumber"], 2);
    assert_eq!(v2["DefaultVersion"], false);
    assert_eq!(v2["LaunchTemplateData"]["ImageId"], ami.as_str());
    assert_eq!(
        v2["LaunchTemplateData"]["UserData"],
        "IyFwcm9iZQplY2hvIHYxIGRhdGEK"
    );

    let run = |spec: &str, extra: &[&str]| -> Value {
        let mut args = vec!["run-instances", "--launch-template", spec];
        args.extend_from_slice(extra);
        let v = d.json(&args);
        let id = v["Instances"][0]["InstanceId"]
            .as_str()
            .unwrap()
            .to_string();
        d.instance(&id)
    };
    // No version: $Default (1). No --image-id needed.
    let i1 = run("LaunchTemplateName=web", &[]);
    assert_eq!(i1["InstanceType"], "custom-1-64");
    assert_eq!(i1["ImageId"], ami.as_str());
    assert_eq!(tag(&i1, "Name").as_deref(), Some("tpl"));
    assert_eq!(
        tag(&i1, "aws:ec2launchtemplate:id").as_deref(),
        Some(lt_id.as_str())
    );
    assert_eq!(
        tag(&i1, "aws:ec2launchtemplate:version").as_deref(),
        Some("1")
    );
    let id1 = i1["InstanceId"].as_str().unwrap().to_string();
    d.wait_console(&id1, "probe: user-data: v1 data", T);

    let latest = run(&format!("LaunchTemplateId={lt_id},Version=$Latest"), &[]);
    assert_eq!(latest["InstanceType"], "custom-1-96");
    // Explicit parameters win over the template's.
    let explicit = run(
        "LaunchTemplateName=web,Version=2",
        &[
            "--instance-type",
            "custom-1-64",
            "--tags",
            "Key=Name,Value=mine",
        ],
    );
    assert_eq!(explicit["InstanceType"], "custom-1-64");
    assert_eq!(tag(&explicit, "Name").as_deref(), Some("mine"));
    assert_eq!(
        tag(&explicit, "aws:ec2launchtemplate:version").as_deref(),
        Some("2")
    );

    // A new default.
    let v = d.json(&[
        "modify-launch-template",
        "--launch-template-name",
        "web",
        "--default-version",
        "2",
    ]);
    assert_eq!(v["LaunchTemplate"]["DefaultVersionNumber"], 2);
    assert_eq!(
        run("LaunchTemplateName=web", &[])["InstanceType"],
        "custom-1-96"
    );
    let v = d.json(&[
        "describe-launch-template-versions",
        "--launch-template-name",
        "web",
        "--versions",
        "$Latest",
        "$Default",
    ]);
    let versions = v["LaunchTemplateVersions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{v}");
    assert_eq!(versions[0]["DefaultVersion"], true);
    let v = d.json(&[
        "describe-launch-template-versions",
        "--launch-template-id",
        &lt_id,
    ]);
    assert_eq!(v["LaunchTemplateVersions"].as_array().unwrap().len(), 2);
    let v = d.json(&[
        "describe-launch-templates",
        "--launch-template-names",
        "web",
    ]);
    assert_eq!(v["LaunchTemplates"][0]["LatestVersionNumber"], 2);

    // Refusals.
    d.cli_err(
        "InvalidLaunchTemplateName.NotFoundException",
        &[
            "run-instances",
            "--launch-template",
            "LaunchTemplateName=nope",
        ],
    );
    d.cli_err(
        "InvalidLaunchTemplateId.NotFound",
        &[
            "run-instances",
            "--launch-template",
            "LaunchTemplateId=lt-0123456789abcdef0",
        ],
    );
    d.cli_err(
        "InvalidLaunchTemplateId.VersionNotFound",
        &[
            "run-instances",
            "--launch-template",
            "LaunchTemplateName=web,Version=9",
        ],
    );
    d.cli_err(
        "InvalidLaunchTemplateId.VersionNotFound",
        &[
            "modify-launch-template",
            "--launch-template-name",
            "web",
            "--default-version",
            "7",
        ],
    );
    // Templates are the account's own.
    d.cli_err_as(
        Some("token-bob"),
        "InvalidLaunchTemplateName.NotFoundException",
        &[
            "describe-launch-templates",
            "--launch-template-names",
            "web",
        ],
    );

    let v = d.json(&["delete-launch-template", "--launch-template-name", "web"]);
    assert_eq!(v["LaunchTemplate"]["LaunchTemplateId"], lt_id.as_str());
    d.cli_err(
        "InvalidLaunchTemplateName.NotFoundException",
        &[
            "describe-launch-templates",
            "--launch-template-names",
            "web",
        ],
    );
}

#[test]
fn key_pairs_reach_the_guest_and_the_private_key_is_shown_once() {
    let d = Daemon::start("keys");
    let ami = d.register_probe("probe");
    // The AWS idiom prints the private key alone.
    let pem = d.cli(&[
        "create-key-pair",
        "--key-name",
        "laptop",
        "--key-type",
        "ed25519",
        "--query",
        "KeyMaterial",
        "--output",
        "text",
    ]);
    assert!(
        pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"),
        "{pem}"
    );
    assert!(
        pem.ends_with("-----END OPENSSH PRIVATE KEY-----\n"),
        "{pem}"
    );
    d.cli_err(
        "InvalidKeyPair.Duplicate",
        &["create-key-pair", "--key-name", "laptop"],
    );
    let v = d.json(&[
        "describe-key-pairs",
        "--key-names",
        "laptop",
        "--include-public-key",
    ]);
    let kp = v["KeyPairs"][0].clone();
    assert_eq!(kp["KeyType"], "ed25519");
    assert!(
        kp["KeyPairId"].as_str().unwrap().starts_with("key-"),
        "{kp}"
    );
    let fingerprint = kp["KeyFingerprint"].as_str().unwrap().to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{kp}");
    let public = kp["PublicKey"].as_str().unwrap().to_string();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    // The private key matches the stored public key (ssh-keygen agrees when it is there).
    let pem_file = d.file("laptop.pem", pem.as_bytes());
    std::fs::set_permissions(
        &pem_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    if let Ok(out) = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&pem_file)
        .output()
    {
        let derived = String::from_utf8_lossy(&out.stdout);
        let key = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(key(&derived), key(&public));
    }

    // EC2's default key type is rsa, its private key in PKCS#1 PEM.
    let rsa_pem = d.cli(&[
        "create-key-pair",
        "--key-name",
        "legacy",
        "--query",
        "KeyMaterial",
        "--output",
        "text",
    ]);
    assert!(
        rsa_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
        "{rsa_pem}"
    );
    let v = d.json(&[
        "describe-key-pairs",
        "--key-names",
        "legacy",
        "--include-public-key",
    ]);
    assert_eq!(v["KeyPairs"][0]["KeyType"], "rsa");
    let rsa_public = v["KeyPairs"][0]["PublicKey"].as_str().unwrap().to_string();
    assert!(rsa_public.starts_with("ssh-rsa AAAA"), "{rsa_public}");
    let rsa_file = d.file("legacy.pem", rsa_pem.as_bytes());
    std::fs::set_permissions(
        &rsa_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    if let Ok(out) = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&rsa_file)
        .output()
    {
        let derived = String::from_utf8_lossy(&out.stdout);
        let key = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(key(&derived), key(&rsa_public));
    }
    d.cli_err(
        "InvalidParameterValue",
        &["create-key-pair", "--key-name", "odd", "--key-type", "dsa"],
    );

    // Import: the same public key under another name; garbage is refused.
    let pubfile = d.file("id.pub", format!("{public}\n").as_bytes());
    let v = d.json(&[
        "import-key-pair",
        "--key-name",
        "imported",
        "--public-key-material",
        &format!("file://{}", pubfile.display()),
    ]);
    assert_eq!(v["KeyFingerprint"], fingerprint.as_str());
    d.cli_err(
        "InvalidKey.Format",
        &[
            "import-key-pair",
            "--key-name",
            "bad",
            "--public-key-material",
            "ssh-ed25519 AAAAnot-a-key",
        ],
    );
    d.cli_err_as(
        Some("token-bob"),
        "InvalidKeyPair.NotFound",
        &["describe-key-pairs", "--key-names", "laptop"],
    );

    d.cli_err(
        "InvalidKeyPair.NotFound",
        &["run-instances", "--image-id", &ami, "--key-name", "nope"],
    );
    let id = d.run(&ami, &["--key-name", "laptop"])[0].clone();
    d.wait_state(&id, "running", T);
    assert_eq!(d.instance(&id)["KeyName"], "laptop");
    let drive = config_drive(&d, &id);
    assert!(drive.contains("public-keys"), "no public-keys member");
    assert!(drive.contains(&format!("{public}\n")), "{drive}");

    // Deleting is idempotent, and the instance keeps its key.
    let v = d.json(&["delete-key-pair", "--key-name", "laptop"]);
    assert_eq!(v["Return"], true);
    assert_eq!(v["KeyPairId"], kp["KeyPairId"]);
    d.cli(&["delete-key-pair", "--key-name", "laptop"]);
    d.cli(&["reboot-instances", "--instance-ids", &id]);
    assert_eq!(d.instance(&id)["KeyName"], "laptop");
    let v = d.json(&["describe-key-pairs"]);
    let names: Vec<&str> = v["KeyPairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["KeyName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["imported", "legacy"]);
}
