//! Instance roles with the real clients: boto3 on a namespace host standing in for an
//! instance (its address and MAC) finds the role's temporary credentials through
//! botocore's own credential chain (the metadata service, IMDSv2), with no configuration,
//! and reaches the Query API on its gateway (`ec2_api.vpc_endpoint`); it may call what the
//! role allows and nothing else; the aws CLI takes the profile away and gives it back.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use strato_e2e::query::{query_config, venv_bin};
use strato_e2e::{Daemon, NsHost};

/// The gateway of the default subnet, where the VPC endpoint answers.
const ENDPOINT: &str = "https://172.31.0.1:8773";

/// Runs a Python script with the virtual environment's boto3 inside `h` with an empty
/// environment (no keys, no profile, no config file) but the daemon's CA; returns its
/// JSON output.
fn on_instance(d: &Daemon, h: &NsHost, script: &str, args: &[&str]) -> Value {
    let home = d.file("home-keep", b"");
    let out = Command::new("ip")
        .args(["netns", "exec", &h.ns])
        .arg(venv_bin("python"))
        .args(["-c", script])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home.parent().unwrap())
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_CA_BUNDLE", d.ca_file())
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("STRATO_ENDPOINT_URL", ENDPOINT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python on the instance failed ({}):\n{}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// What the instance does with the chain's credentials: who it is, what it may call.
const CALLS: &str = r#"
import json, os, sys
import boto3, botocore.exceptions
url = os.environ["STRATO_ENDPOINT_URL"]
s = boto3.session.Session(region_name="home-1")
c = s.get_credentials()
f = c.get_frozen_credentials()
out = {"method": c.method, "key": f.access_key, "secret": f.secret_key, "token": f.token}
ec2 = s.client("ec2", endpoint_url=url)
i = ec2.describe_instances(InstanceIds=[sys.argv[1]])["Reservations"][0]["Instances"][0]
out["described"] = i["InstanceId"]
out["profile"] = i["IamInstanceProfile"]["Arn"]
def code(call, **kw):
    try:
        call(**kw)
        return "allowed"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
out["terminate"] = code(ec2.terminate_instances, InstanceIds=[sys.argv[1]])
out["create_volume_dry_run"] = code(ec2.create_volume, Size=1, AvailabilityZone="home-1a", DryRun=True)
out["describe_volumes"] = code(ec2.describe_volumes)
out["arn"] = s.client("sts", endpoint_url=url).get_caller_identity()["Arn"]
print(json.dumps(out))
"#;

/// A call with given temporary credentials: the error code, or `allowed`.
const WITH_KEYS: &str = r#"
import json, os, sys
import boto3, botocore.exceptions
ec2 = boto3.client("ec2", region_name="home-1", endpoint_url=os.environ["STRATO_ENDPOINT_URL"],
                   aws_access_key_id=sys.argv[1], aws_secret_access_key=sys.argv[2],
                   aws_session_token=sys.argv[3])
try:
    ec2.describe_instances()
    print(json.dumps("allowed"))
except botocore.exceptions.ClientError as e:
    print(json.dumps(e.response["Error"]["Code"]))
"#;

#[test]
fn boto3_on_an_instance_gets_role_credentials_and_may_call_only_what_its_role_allows() {
    let mut cfg = query_config();
    cfg["ec2_api"] = json!({ "listen": "tcp:0.0.0.0:8773", "vpc_endpoint": true });
    cfg["tls"] = json!({ "names": ["172.31.0.1"] });
    let d = Daemon::start_with("roles", cfg);
    let ami = d.register_probe("probe");
    d.cli(&[
        "create-role",
        "--role-name",
        "reader",
        "--actions",
        "ec2:Describe*",
    ]);
    d.cli(&[
        "create-instance-profile",
        "--instance-profile-name",
        "web",
        "--role-name",
        "reader",
    ]);
    // The probe goes quiet once its user data ran, and the namespace host takes its
    // address and MAC: to the metadata service and the firewall it is the instance.
    let ud = d.file("quiet.txt", b"net-silent-after 0\necho quiet\n");
    let ud = format!("file://{}", ud.display());
    let id = d.run(&ami, &["--user-data", &ud, "--iam-instance-profile", "web"])[0].clone();
    d.wait_state(&id, "running", Duration::from_secs(30));
    d.wait_console(&id, "probe: user-data done", Duration::from_secs(30));
    let i = d.instance(&id);
    let ip = i["PrivateIpAddress"].as_str().unwrap().to_string();
    let mac = i["NetworkInterfaces"][0]["MacAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let h = d.host("role", "strato0", &format!("{ip}/20"), Some("172.31.0.1"));
    let out = h.exec(&["ip", "link", "set", "eth0", "address", &mac]);
    assert!(out.status.success(), "{out:?}");

    let got = on_instance(&d, &h, CALLS, &[&id]);
    assert_eq!(got["method"], "iam-role", "{got}");
    assert!(got["key"].as_str().unwrap().starts_with("ASIA"), "{got}");
    assert_eq!(got["described"], id.as_str());
    assert!(got["profile"]
        .as_str()
        .unwrap()
        .ends_with(":instance-profile/web"));
    assert_eq!(got["describe_volumes"], "allowed");
    assert_eq!(got["terminate"], "UnauthorizedOperation", "{got}");
    assert_eq!(
        got["create_volume_dry_run"], "UnauthorizedOperation",
        "{got}"
    );
    assert!(
        got["arn"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":assumed-role/reader/{id}")),
        "{got}"
    );
    assert_eq!(d.instance(&id)["State"]["Name"], "running");

    // The owner takes the profile away with the aws CLI: the keys die at once.
    let admin = d.aws(None);
    let assoc = admin.json(&[
        "ec2",
        "describe-iam-instance-profile-associations",
        "--filters",
        &format!("Name=instance-id,Values={id}"),
    ]);
    let list = assoc["IamInstanceProfileAssociations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{assoc}");
    assert_eq!(list[0]["State"], "associated");
    let assoc_id = list[0]["AssociationId"].as_str().unwrap().to_string();
    let gone = admin.json(&[
        "ec2",
        "disassociate-iam-instance-profile",
        "--association-id",
        &assoc_id,
    ]);
    assert_eq!(
        gone["IamInstanceProfileAssociation"]["State"],
        "disassociating"
    );
    let keys = [
        got["key"].as_str().unwrap(),
        got["secret"].as_str().unwrap(),
        got["token"].as_str().unwrap(),
    ];
    assert_eq!(on_instance(&d, &h, WITH_KEYS, &keys), "AuthFailure");

    // And gives it back: the chain finds fresh credentials again.
    let again = admin.json(&[
        "ec2",
        "associate-iam-instance-profile",
        "--instance-id",
        &id,
        "--iam-instance-profile",
        "Name=web",
    ]);
    assert_eq!(
        again["IamInstanceProfileAssociation"]["InstanceId"],
        id.as_str()
    );
    // strato's own CLI (gRPC) sees the same association.
    let mine = d.json(&[
        "describe-iam-instance-profile-associations",
        "--filters",
        &format!("Name=instance-id,Values={id}"),
    ]);
    assert_eq!(
        mine["IamInstanceProfileAssociations"][0]["AssociationId"],
        again["IamInstanceProfileAssociation"]["AssociationId"],
        "{mine}"
    );
    let got2 = on_instance(&d, &h, CALLS, &[&id]);
    assert_eq!(got2["method"], "iam-role");
    assert_ne!(got2["key"], got["key"]);
    assert_eq!(got2["describe_volumes"], "allowed");
    admin.err(
        "IncorrectState",
        &[
            "ec2",
            "associate-iam-instance-profile",
            "--instance-id",
            &id,
            "--iam-instance-profile",
            "Name=web",
        ],
    );

    // A launch template carries the profile to the instances it launches.
    let data = json!({
        "ImageId": ami,
        "InstanceType": "custom-1-64",
        "IamInstanceProfile": { "Name": "web" },
    });
    admin.json(&[
        "ec2",
        "create-launch-template",
        "--launch-template-name",
        "webs",
        "--launch-template-data",
        &data.to_string(),
    ]);
    let versions = admin.json(&[
        "ec2",
        "describe-launch-template-versions",
        "--launch-template-name",
        "webs",
    ]);
    assert_eq!(
        versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]["IamInstanceProfile"]["Name"],
        "web",
        "{versions}"
    );
    let run = admin.json(&[
        "ec2",
        "run-instances",
        "--launch-template",
        "LaunchTemplateName=webs",
        "--count",
        "1",
    ]);
    let launched = &run["Instances"][0];
    assert!(
        launched["IamInstanceProfile"]["Arn"]
            .as_str()
            .unwrap_or_default()
            .ends_with(":instance-profile/web"),
        "{run}"
    );
}
