//! Tags through the CLI: on creation (volumes, snapshots) and afterwards on any resource
//! (create-tags, delete-tags, describe-tags), tag filters on the describe commands, and the
//! refusals (another account's resource, unknown IDs, reserved keys).

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use strato_e2e::Daemon;

fn tags_of(v: &Value) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = v["Tags"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().to_string(),
                t["Value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    t.sort();
    t
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn tags_on_creation_and_afterwards() {
    let d = Daemon::start("tags");
    let vol = d.json(&[
        "create-volume",
        "--size",
        "1",
        "--availability-zone",
        "home-1a",
        "--tag-specifications",
        "ResourceType=volume,Tags=[{Key=Name,Value=data}]",
    ]);
    let vol_id = vol["VolumeId"].as_str().unwrap().to_string();
    assert_eq!(tags_of(&vol), [pair("Name", "data")]);
    let snap = d.json(&[
        "create-snapshot",
        "--volume-id",
        &vol_id,
        "--tag-specifications",
        "ResourceType=snapshot,Tags=[{Key=backup,Value=nightly}]",
    ]);
    let snap_id = snap["SnapshotId"].as_str().unwrap().to_string();
    let ami = d.register_probe("probe");

    // Tags afterwards, on several kinds at once.
    d.cli(&[
        "create-tags",
        "--resources",
        &vol_id,
        &ami,
        &snap_id,
        "--tags",
        "Key=env,Value=prod",
        "Key=team,Value=lab",
    ]);
    let v = d.json(&["describe-volumes", "--volume-ids", &vol_id]);
    assert_eq!(
        tags_of(&v["Volumes"][0]),
        [
            pair("Name", "data"),
            pair("env", "prod"),
            pair("team", "lab")
        ]
    );
    let v = d.json(&["describe-images", "--filters", "Name=tag:env,Values=prod"]);
    assert_eq!(v["Images"][0]["ImageId"], ami.as_str());
    let v = d.json(&[
        "describe-snapshots",
        "--filters",
        "Name=tag-key,Values=backup",
    ]);
    assert_eq!(v["Snapshots"][0]["SnapshotId"], snap_id.as_str());
    let v = d.json(&["describe-volumes", "--filters", "Name=tag:env,Values=dev"]);
    assert_eq!(v["Volumes"].as_array().unwrap().len(), 0);

    // describe-tags, filtered.
    let v = d.json(&[
        "describe-tags",
        "--filters",
        "Name=resource-type,Values=volume",
    ]);
    let got: Vec<(String, String)> = v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["ResourceId"], vol_id.as_str());
            (
                t["Key"].as_str().unwrap().to_string(),
                t["Value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            pair("Name", "data"),
            pair("env", "prod"),
            pair("team", "lab")
        ]
    );
    let v = d.json(&[
        "describe-tags",
        "--filters",
        "Name=key,Values=env",
        "--page-size",
        "5",
    ]);
    assert_eq!(v["Tags"].as_array().unwrap().len(), 3);

    // delete-tags: a wrong value keeps the tag, the key alone removes it, nothing named
    // removes every tag.
    d.cli(&[
        "delete-tags",
        "--resources",
        &vol_id,
        "--tags",
        "Key=env,Value=dev",
    ]);
    let v = d.json(&["describe-volumes", "--volume-ids", &vol_id]);
    assert_eq!(tags_of(&v["Volumes"][0]).len(), 3);
    d.cli(&["delete-tags", "--resources", &vol_id, "--tags", "Key=env"]);
    let v = d.json(&["describe-volumes", "--volume-ids", &vol_id]);
    assert_eq!(
        tags_of(&v["Volumes"][0]),
        [pair("Name", "data"), pair("team", "lab")]
    );
    d.cli(&["delete-tags", "--resources", &snap_id]);
    let v = d.json(&["describe-snapshots", "--snapshot-ids", &snap_id]);
    assert!(tags_of(&v["Snapshots"][0]).is_empty());

    // The default VPC (shared by every account) takes tags from the host's admin only.
    let vpc = d.json(&["describe-vpcs"])["Vpcs"][0]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    d.cli(&[
        "create-tags",
        "--resources",
        &vpc,
        "--tags",
        "Key=Name,Value=home",
    ]);
    let v = d.json(&["describe-vpcs", "--vpc-ids", &vpc]);
    assert_eq!(tags_of(&v["Vpcs"][0]), [pair("Name", "home")]);
    d.cli_err_as(
        Some("token-bob"),
        "InvalidVpcID.NotFound",
        &[
            "create-tags",
            "--resources",
            &vpc,
            "--tags",
            "Key=x,Value=y",
        ],
    );

    // Refusals, and nothing changes when one resource of several is refused.
    d.cli_err_as(
        Some("token-bob"),
        "InvalidVolume.NotFound",
        &[
            "create-tags",
            "--resources",
            &vol_id,
            "--tags",
            "Key=x,Value=y",
        ],
    );
    d.cli_err(
        "InvalidID",
        &[
            "create-tags",
            "--resources",
            "nonsense",
            "--tags",
            "Key=x,Value=y",
        ],
    );
    d.cli_err(
        "InvalidVolumeID.Malformed",
        &[
            "create-tags",
            "--resources",
            "vol-xyz",
            "--tags",
            "Key=x,Value=y",
        ],
    );
    d.cli_err(
        "InvalidParameterValue",
        &[
            "create-tags",
            "--resources",
            &vol_id,
            "--tags",
            "Key=aws:name,Value=y",
        ],
    );
    d.cli_err(
        "InvalidSnapshot.NotFound",
        &[
            "create-tags",
            "--resources",
            &vol_id,
            "snap-0123456789abcdef0",
            "--tags",
            "Key=partial,Value=no",
        ],
    );
    let v = d.json(&["describe-tags", "--filters", "Name=key,Values=partial"]);
    assert_eq!(v["Tags"].as_array().unwrap().len(), 0);
    d.cli_err(
        "InvalidParameterValue",
        &["describe-tags", "--filters", "Name=colour,Values=red"],
    );
}

#[test]
fn run_instances_tags_the_instance_and_the_volumes_it_creates() {
    let d = Daemon::start("tagrun");
    let ami = d.register_probe("probe");
    let id = d.run(
        &ami,
        &[
            "--tag-specifications",
            "ResourceType=instance,Tags=[{Key=Name,Value=web}]",
            "ResourceType=volume,Tags=[{Key=Name,Value=web-disk},{Key=team,Value=lab}]",
        ],
    )[0]
    .clone();
    let i = d.json(&["describe-instances", "--instance-ids", &id]);
    assert_eq!(
        tags_of(&i["Reservations"][0]["Instances"][0]),
        [pair("Name", "web")]
    );
    let v = d.json(&[
        "describe-volumes",
        "--filters",
        &format!("Name=attachment.instance-id,Values={id}"),
    ]);
    let vols = v["Volumes"].as_array().unwrap();
    assert!(!vols.is_empty(), "{v}");
    for vol in vols {
        assert_eq!(
            tags_of(vol),
            [pair("Name", "web-disk"), pair("team", "lab")],
            "{vol}"
        );
    }
    // Reserved keys are refused for volumes as for instances, and nothing is launched.
    let err = d.cli_err(
        "InvalidParameterValue",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "custom-1-64",
            "--tag-specifications",
            "ResourceType=volume,Tags=[{Key=aws:x,Value=y}]",
        ],
    );
    assert!(err.contains("aws:"), "{err}");
    let all = d.json(&["describe-instances"]);
    assert_eq!(all["Reservations"].as_array().unwrap().len(), 1, "{all}");
}
