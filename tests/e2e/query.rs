//! The EC2 Query API driven by the real clients, unchanged: the aws CLI (1.45) and boto3
//! (1.43) from the pinned virtual environment of `scripts/test.sh`, signing with access
//! keys made by `strato create-access-key`, against a daemon in a namespace of its own.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use strato_e2e::query::{query_config, Aws};
use strato_e2e::{Daemon, ADMIN};

/// A signed request of any action and parameters, sent by botocore's own signer and
/// printed as `STATUS BODY` (for what the aws CLI cannot send: unknown actions and
/// parameters).
fn raw_request(aws: &Aws<'_>, body: &str) -> (u16, String) {
    let script = format!(
        r#"
import os, ssl, urllib.request, urllib.error
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url = os.environ["STRATO_ENDPOINT_URL"] + "/"
req = AWSRequest(method="POST", url=url, data={body:?}.encode(),
                 headers={{"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}})
SigV4Auth(Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]), "ec2", "home-1").add_auth(req)
p = req.prepare()
r = urllib.request.Request(url, data=p.body, headers=dict(p.headers), method="POST")
try:
    with urllib.request.urlopen(r, context=ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])) as resp:
        print(resp.status, resp.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#
    );
    let out = aws.python(&script);
    let (status, body) = out.trim().split_once(' ').unwrap();
    (status.parse().unwrap(), body.to_string())
}

#[test]
fn the_aws_cli_speaks_to_strato() {
    let d = Daemon::start_with("qcli", query_config());
    let admin = d.aws(None);
    let alice = d.aws(Some("token-alice"));

    // STS first, as Terraform's provider does.
    let who = alice.json(&["sts", "get-caller-identity"]);
    assert_eq!(who["Account"], "111111111111");
    assert_eq!(who["Arn"], "arn:aws:iam::111111111111:root");
    assert_eq!(
        admin.json(&["sts", "get-caller-identity"])["Account"],
        ADMIN
    );

    let regions = alice.json(&["ec2", "describe-regions"]);
    assert_eq!(regions["Regions"][0]["RegionName"], "home-1");
    let zones = alice.json(&[
        "ec2",
        "describe-availability-zones",
        "--filters",
        "Name=zone-name,Values=home-1b",
    ]);
    let zones = zones["AvailabilityZones"].as_array().unwrap();
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0]["ZoneId"], "home-1-az2");

    // The default VPC and its subnets, with filters.
    let vpcs = alice.json(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=is-default,Values=true",
    ]);
    let vpc = &vpcs["Vpcs"][0];
    assert_eq!(vpc["CidrBlock"], "172.31.0.0/16");
    assert_eq!(vpc["IsDefault"], true);
    let vpc_id = vpc["VpcId"].as_str().unwrap();
    let subnets = alice.json(&[
        "ec2",
        "describe-subnets",
        "--filters",
        &format!("Name=vpc-id,Values={vpc_id}"),
        "Name=availability-zone,Values=home-1a",
    ]);
    assert_eq!(subnets["Subnets"].as_array().unwrap().len(), 1);
    assert_eq!(subnets["Subnets"][0]["DefaultForAz"], true);

    // A VPC of alice's own, tagged, seen by the gRPC CLI too; bob does not see it.
    let v = alice.json(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        "10.20.0.0/16",
        "--tag-specifications",
        "ResourceType=vpc,Tags=[{Key=Name,Value=lab}]",
    ]);
    let mine = v["Vpc"]["VpcId"].as_str().unwrap().to_string();
    assert_eq!(v["Vpc"]["Tags"][0]["Value"], "lab");
    let by_grpc = d.json_as(Some("token-alice"), &["describe-vpcs", "--vpc-ids", &mine]);
    assert_eq!(by_grpc["Vpcs"][0]["CidrBlock"], "10.20.0.0/16");
    let bob = d.aws(Some("token-bob"));
    bob.err(
        "InvalidVpcID.NotFound",
        &["ec2", "describe-vpcs", "--vpc-ids", &mine],
    );
    alice.json(&[
        "ec2",
        "create-tags",
        "--resources",
        &mine,
        "--tags",
        "Key=env,Value=test",
    ]);
    let tags = alice.json(&[
        "ec2",
        "describe-tags",
        "--filters",
        &format!("Name=resource-id,Values={mine}"),
    ]);
    let keys: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["Key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["Name", "env"]);
    alice.json(&[
        "ec2",
        "delete-tags",
        "--resources",
        &mine,
        "--tags",
        "Key=env",
    ]);
    // DryRun: the checks run and nothing changes.
    alice.err(
        "DryRunOperation",
        &["ec2", "delete-vpc", "--vpc-id", &mine, "--dry-run"],
    );
    alice.err("DryRunOperation", &["ec2", "describe-vpcs", "--dry-run"]);
    alice.json(&["ec2", "describe-vpcs", "--vpc-ids", &mine]);
    alice.json(&["ec2", "delete-vpc", "--vpc-id", &mine]);
    alice.err(
        "InvalidVpcID.NotFound",
        &["ec2", "describe-vpcs", "--vpc-ids", &mine],
    );

    // Key pairs: create (the private key once), import (a blob), describe, delete.
    let k = alice.json(&[
        "ec2",
        "create-key-pair",
        "--key-name",
        "laptop",
        "--key-type",
        "ed25519",
    ]);
    assert!(k["KeyMaterial"]
        .as_str()
        .unwrap()
        .contains("OPENSSH PRIVATE KEY"));
    let pubkey = d.file(
        "k.pub",
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test\n",
    );
    let imported = alice.json(&[
        "ec2",
        "import-key-pair",
        "--key-name",
        "imported",
        "--public-key-material",
        &format!("fileb://{}", pubkey.display()),
    ]);
    assert!(imported["KeyFingerprint"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));
    let pairs = alice.json(&["ec2", "describe-key-pairs"]);
    let names: Vec<&str> = pairs["KeyPairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["KeyName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["imported", "laptop"]);
    alice.json(&["ec2", "delete-key-pair", "--key-name", "laptop"]);
    alice.err(
        "InvalidKeyPair.NotFound",
        &["ec2", "describe-key-pairs", "--key-names", "laptop"],
    );

    // Instance types: no burstable credits.
    let t = alice.json(&[
        "ec2",
        "describe-instance-types",
        "--instance-types",
        "t3.micro",
    ]);
    let t = &t["InstanceTypes"][0];
    assert_eq!(t["BurstablePerformanceSupported"], false);
    assert!(t["VCpuInfo"]["DefaultVCpus"].as_i64().unwrap() >= 1);

    // What the CLI cannot send: an unknown action, an unknown or ill-typed parameter.
    let (status, body) = raw_request(&alice, "Action=LaunchRockets&Version=2016-11-15");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
    let (status, body) = raw_request(
        &alice,
        "Action=DescribeRegions&Version=2016-11-15&RegionName.1=home-1&Colour=blue",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>UnknownParameter</Code>"), "{body}");
    assert!(body.contains("Colour"), "{body}");
    let (status, body) = raw_request(
        &alice,
        "Action=DescribeTags&Version=2016-11-15&MaxResults=ten",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("<Code>InvalidParameterValue</Code>"),
        "{body}"
    );
    // Leading zeros are decimal, and list indexes past 9 keep their order.
    let (status, body) = raw_request(
        &alice,
        "Action=DescribeTags&Version=2016-11-15&MaxResults=010",
    );
    assert_eq!(status, 200, "{body}");
    let mut q = String::from("Action=DescribeRegions&Version=2016-11-15");
    for n in 1..=11 {
        q.push_str(&format!("&RegionName.{n}=home-1"));
    }
    let (status, body) = raw_request(&alice, &q);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<requestId>"), "{body}");
}

#[test]
fn signatures_are_verified() {
    let d = Daemon::start_with("qsig", query_config());
    let good = d.aws(Some("token-alice"));
    good.json(&["ec2", "describe-regions"]);

    let wrong_secret = Aws {
        secret: "x".repeat(40),
        ..d.aws(Some("token-bob"))
    };
    let e = wrong_secret.err("AuthFailure", &["ec2", "describe-regions"]);
    assert!(e.contains("signature does not match"), "{e}");

    let unknown = Aws {
        key: "AKIAAAAAAAAAAAAAAAAA".into(),
        ..d.aws(None)
    };
    let e = unknown.err("AuthFailure", &["ec2", "describe-regions"]);
    assert!(e.contains("does not exist"), "{e}");

    let other_region = Aws {
        region: "us-east-1".into(),
        ..d.aws(None)
    };
    let e = other_region.err("AuthFailure", &["ec2", "describe-regions"]);
    assert!(e.contains("us-east-1"), "{e}");

    good.err(
        "MissingAuthenticationToken",
        &["ec2", "describe-regions", "--no-sign-request"],
    );

    // A client whose clock is 20 minutes ahead, then 10 (within AWS's 15).
    for (minutes, ok) in [(20, false), (-20, false), (10, true)] {
        let out = good.python(&format!(
            r#"
import datetime, os
from unittest import mock
import boto3, botocore.auth, botocore.exceptions
skewed = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(minutes={minutes})
ec2 = boto3.client("ec2", endpoint_url=os.environ["STRATO_ENDPOINT_URL"])
with mock.patch("botocore.auth.get_current_datetime", return_value=skewed):
    try:
        ec2.describe_regions()
        print("ok")
    except botocore.exceptions.ClientError as e:
        print(e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
"#
        ));
        if ok {
            assert_eq!(out.trim(), "ok");
        } else {
            assert_eq!(out.trim(), "RequestExpired 400", "{minutes} minutes");
        }
    }

    // A deleted key stops working at once.
    let gone = d.aws(Some("token-bob"));
    gone.json(&["ec2", "describe-regions"]);
    let out = d.cli_as(
        Some("token-bob"),
        &["delete-access-key", "--access-key-id", &gone.key],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gone.err("AuthFailure", &["ec2", "describe-regions"]);
    let keys: Value = d.json(&["describe-access-keys", "--all"]);
    assert!(!keys.to_string().contains(&gone.key));
    assert!(
        !keys.to_string().contains(&good.secret),
        "secrets are never listed"
    );
}

#[test]
fn the_aws_cli_walks_an_instances_life() {
    let d = Daemon::start_with("qlife", query_config());
    let ami = d.register_probe("probe");
    let aws = d.aws(None);
    let ud = d.file("user-data.txt", b"#probe\necho hello from user data\n");

    let run = aws.json(&[
        "ec2",
        "run-instances",
        "--image-id",
        &ami,
        "--instance-type",
        "custom-1-64",
        "--count",
        "1",
        "--user-data",
        &format!("file://{}", ud.display()),
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=Name,Value=web},{Key=tier,Value=front}]",
        "--client-token",
        "life-1",
    ]);
    let inst = &run["Instances"][0];
    let id = inst["InstanceId"].as_str().unwrap().to_string();
    assert_eq!(inst["State"]["Name"], "pending");
    assert_eq!(inst["ClientToken"], "life-1");
    assert!(run["ReservationId"].as_str().unwrap().starts_with("r-"));
    // The same token and parameters again is the same launch; other parameters with it
    // are refused.
    let again = aws.json(&[
        "ec2",
        "run-instances",
        "--image-id",
        &ami,
        "--instance-type",
        "custom-1-64",
        "--count",
        "1",
        "--user-data",
        &format!("file://{}", ud.display()),
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=Name,Value=web},{Key=tier,Value=front}]",
        "--client-token",
        "life-1",
    ]);
    assert_eq!(again["Instances"][0]["InstanceId"], id.as_str());
    assert_eq!(again["ReservationId"], run["ReservationId"]);
    aws.err(
        "IdempotentParameterMismatch",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "custom-1-64",
            "--client-token",
            "life-1",
        ],
    );

    aws.json(&["ec2", "wait", "instance-running", "--instance-ids", &id]);
    let v = aws.json(&[
        "ec2",
        "describe-instances",
        "--filters",
        "Name=tag:Name,Values=web",
        "Name=instance-state-name,Values=running",
    ]);
    let r = v["Reservations"].as_array().unwrap();
    assert_eq!(r.len(), 1, "{v}");
    let i = &r[0]["Instances"][0];
    assert_eq!(i["InstanceId"], id.as_str());
    assert_eq!(i["State"]["Code"], 16);
    let ip = i["PrivateIpAddress"].as_str().unwrap();
    assert!(ip.starts_with("172.31."), "{ip}");
    // One private DNS name on every surface: EC2's form for a region other than us-east-1.
    let name = format!(
        "ip-{}.{}.compute.internal",
        ip.replace('.', "-"),
        aws.region
    );
    assert_eq!(i["PrivateDnsName"], name.as_str());
    assert_eq!(i["NetworkInterfaces"][0]["PrivateDnsName"], name.as_str());
    let eni_id = i["NetworkInterfaces"][0]["NetworkInterfaceId"]
        .as_str()
        .unwrap();
    let grpc = d.json(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        eni_id,
    ]);
    assert_eq!(
        grpc["NetworkInterfaces"][0]["PrivateDnsName"],
        name.as_str(),
        "{grpc}"
    );
    assert!(i["LaunchTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        i["Placement"]["AvailabilityZone"].as_str().unwrap().len(),
        7
    );
    assert_eq!(i["NetworkInterfaces"][0]["Attachment"]["DeviceIndex"], 0);
    assert_eq!(i["SecurityGroups"][0]["GroupName"], "default");
    // What the gRPC CLI sees is the same instance.
    assert_eq!(d.state(&id), "running");

    let ud_attr = aws.json(&[
        "ec2",
        "describe-instance-attribute",
        "--instance-id",
        &id,
        "--attribute",
        "userData",
    ]);
    let decoded = base64_decode(ud_attr["UserData"]["Value"].as_str().unwrap());
    assert_eq!(decoded, b"#probe\necho hello from user data\n");
    for (attr, member, want) in [
        (
            "disableApiTermination",
            "DisableApiTermination",
            Value::Bool(false),
        ),
        ("disableApiStop", "DisableApiStop", Value::Bool(false)),
        (
            "instanceInitiatedShutdownBehavior",
            "InstanceInitiatedShutdownBehavior",
            "stop".into(),
        ),
    ] {
        let a = aws.json(&[
            "ec2",
            "describe-instance-attribute",
            "--instance-id",
            &id,
            "--attribute",
            attr,
        ]);
        assert_eq!(a[member]["Value"], want, "{attr}: {a}");
    }

    aws.json(&["ec2", "wait", "instance-status-ok", "--instance-ids", &id]);
    let st = aws.json(&["ec2", "describe-instance-status", "--instance-ids", &id]);
    assert_eq!(st["InstanceStatuses"][0]["InstanceStatus"]["Status"], "ok");
    assert_eq!(
        st["InstanceStatuses"][0]["SystemStatus"]["Details"][0]["Name"],
        "reachability"
    );

    let console = aws.json(&["ec2", "get-console-output", "--instance-id", &id]);
    assert!(
        console["Output"].as_str().unwrap().contains("probe: ready"),
        "{console}"
    );

    // Termination protection, as Terraform clears it before deleting.
    aws.json(&[
        "ec2",
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--disable-api-termination",
    ]);
    aws.err(
        "OperationNotPermitted",
        &["ec2", "terminate-instances", "--instance-ids", &id],
    );
    aws.json(&[
        "ec2",
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--no-disable-api-termination",
    ]);

    // A dry run changes nothing.
    aws.err(
        "DryRunOperation",
        &["ec2", "stop-instances", "--instance-ids", &id, "--dry-run"],
    );
    assert_eq!(d.state(&id), "running");
    aws.err(
        "InvalidInstanceID.NotFound",
        &[
            "ec2",
            "stop-instances",
            "--instance-ids",
            "i-0123456789abcdef0",
            "--dry-run",
        ],
    );

    let stop = aws.json(&["ec2", "stop-instances", "--instance-ids", &id]);
    assert_eq!(
        stop["StoppingInstances"][0]["PreviousState"]["Name"],
        "running"
    );
    aws.json(&["ec2", "wait", "instance-stopped", "--instance-ids", &id]);
    aws.json(&["ec2", "start-instances", "--instance-ids", &id]);
    aws.json(&["ec2", "wait", "instance-running", "--instance-ids", &id]);
    let term = aws.json(&["ec2", "terminate-instances", "--instance-ids", &id]);
    assert_eq!(
        term["TerminatingInstances"][0]["CurrentState"]["Name"],
        "shutting-down"
    );
    aws.json(&["ec2", "wait", "instance-terminated", "--instance-ids", &id]);
    assert_eq!(d.state(&id), "terminated");
}

#[test]
fn boto3_pages_and_uses_its_resource_api() {
    let d = Daemon::start_with("qboto", query_config());
    let ami = d.register_probe("probe");
    let aws = d.aws(None);
    let out = aws.python(&format!(
        r#"
import os, boto3
ec2 = boto3.resource("ec2", endpoint_url=os.environ["STRATO_ENDPOINT_URL"])
made = ec2.create_instances(ImageId="{ami}", InstanceType="custom-1-64", MinCount=7, MaxCount=7,
    TagSpecifications=[{{"ResourceType": "instance", "Tags": [{{"Key": "batch", "Value": "b1"}}]}}])
assert len(made) == 7, made
made[0].wait_until_running()
made[0].reload()
assert made[0].state["Name"] == "running", made[0].state
client = ec2.meta.client
pages = list(client.get_paginator("describe_instances").paginate(
    Filters=[{{"Name": "tag:batch", "Values": ["b1"]}}], PaginationConfig={{"PageSize": 5}}))
assert len(pages) == 2, [len(p["Reservations"]) for p in pages]
ids = [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
assert sorted(ids) == sorted(i.id for i in made), ids
tagged = list(ec2.instances.filter(Filters=[{{"Name": "tag:batch", "Values": ["b1"]}}]))
assert len(tagged) == 7
try:
    client.describe_instances(InstanceIds=[made[0].id], MaxResults=5)
    raise SystemExit("MaxResults beside InstanceIds was accepted")
except client.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidParameterCombination", e.response
ec2.instances.filter(InstanceIds=[i.id for i in made]).terminate()
for i in made:
    i.wait_until_terminated()
print("ok", len(ids))
"#
    ));
    assert_eq!(out.trim(), "ok 7");
}

fn base64_decode(s: &str) -> Vec<u8> {
    let table = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(table).collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (k, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (18 - 6 * k);
        }
        for k in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * k)) as u8);
        }
    }
    out
}

/// `s` of a JSON string.
fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

#[test]
fn the_aws_cli_manages_groups_addresses_interfaces_and_templates() {
    let d = Daemon::start_with_uplink("qnet", query_config());
    let ami = d.register_probe("probe");
    let aws = d.aws(None);

    // A security group in the default VPC with rules in both of EC2's forms.
    let vpc = s(&aws.json(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=is-default,Values=true",
    ])["Vpcs"][0]["VpcId"]);
    let sg = s(&aws.json(&[
        "ec2",
        "create-security-group",
        "--group-name",
        "web",
        "--description",
        "web servers",
        "--vpc-id",
        &vpc,
        "--tag-specifications",
        "ResourceType=security-group,Tags=[{Key=Name,Value=web}]",
    ])["GroupId"]);
    // The CLI's short form (IpProtocol/FromPort/ToPort/CidrIp) and the IpPermissions form.
    aws.json(&[
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "10.0.0.0/8",
    ]);
    aws.json(&[
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--ip-permissions",
        &format!("IpProtocol=tcp,FromPort=80,ToPort=81,UserIdGroupPairs=[{{GroupId={sg}}}]"),
    ]);
    aws.err(
        "InvalidPermission.Duplicate",
        &[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "10.0.0.0/8",
        ],
    );
    let g = aws.json(&["ec2", "describe-security-groups", "--group-ids", &sg]);
    let g = &g["SecurityGroups"][0];
    assert_eq!(g["GroupName"], "web");
    assert_eq!(g["Tags"][0]["Value"], "web");
    let ingress = g["IpPermissions"].as_array().unwrap();
    assert_eq!(ingress.len(), 2, "{g}");
    let ssh = ingress.iter().find(|p| p["FromPort"] == 22).unwrap();
    assert_eq!(ssh["IpRanges"][0]["CidrIp"], "10.0.0.0/8");
    let http = ingress.iter().find(|p| p["FromPort"] == 80).unwrap();
    assert_eq!(http["ToPort"], 81);
    assert_eq!(http["UserIdGroupPairs"][0]["GroupId"], sg.as_str());
    assert_eq!(g["IpPermissionsEgress"][0]["IpProtocol"], "-1");
    aws.json(&[
        "ec2",
        "revoke-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "10.0.0.0/8",
    ]);
    aws.err(
        "InvalidPermission.NotFound",
        &[
            "ec2",
            "revoke-security-group-ingress",
            "--group-id",
            &sg,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "10.0.0.0/8",
        ],
    );
    // By name, as EC2 finds names in the default VPC.
    let by_name = aws.json(&["ec2", "describe-security-groups", "--group-names", "web"]);
    assert_eq!(by_name["SecurityGroups"][0]["GroupId"], sg.as_str());

    // A placement group and a launch template with two versions.
    let pg = aws.json(&[
        "ec2",
        "create-placement-group",
        "--group-name",
        "racks",
        "--strategy",
        "partition",
        "--partition-count",
        "2",
    ]);
    assert_eq!(pg["PlacementGroup"]["PartitionCount"], 2);
    let pgs = aws.json(&["ec2", "describe-placement-groups", "--group-names", "racks"]);
    assert_eq!(pgs["PlacementGroups"][0]["Strategy"], "partition");
    assert_eq!(pgs["PlacementGroups"][0]["State"], "available");
    let data = serde_json::json!({
        "ImageId": ami,
        "InstanceType": "custom-1-64",
        "SecurityGroupIds": [sg],
        "UserData": "I3Byb2JlCg==",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "from", "Value": "lt"}]}],
    });
    let lt = aws.json(&[
        "ec2",
        "create-launch-template",
        "--launch-template-name",
        "web-lt",
        "--version-description",
        "first",
        "--launch-template-data",
        &data.to_string(),
    ]);
    let lt_id = s(&lt["LaunchTemplate"]["LaunchTemplateId"]);
    assert_eq!(lt["LaunchTemplate"]["LatestVersionNumber"], 1);
    let v2 = aws.json(&[
        "ec2",
        "create-launch-template-version",
        "--launch-template-id",
        &lt_id,
        "--source-version",
        "1",
        "--launch-template-data",
        r#"{"InstanceInitiatedShutdownBehavior":"terminate"}"#,
    ]);
    assert_eq!(v2["LaunchTemplateVersion"]["VersionNumber"], 2);
    assert_eq!(
        v2["LaunchTemplateVersion"]["LaunchTemplateData"]["ImageId"],
        ami.as_str()
    );
    aws.err(
        "UnsupportedOperation",
        &[
            "ec2",
            "create-launch-template-version",
            "--launch-template-id",
            &lt_id,
            "--launch-template-data",
            r#"{"EbsOptimized":true}"#,
        ],
    );
    aws.json(&[
        "ec2",
        "modify-launch-template",
        "--launch-template-id",
        &lt_id,
        "--default-version",
        "2",
    ]);
    let versions = aws.json(&[
        "ec2",
        "describe-launch-template-versions",
        "--launch-template-name",
        "web-lt",
        "--versions",
        "$Default",
    ]);
    let v = &versions["LaunchTemplateVersions"][0];
    assert_eq!(v["VersionNumber"], 2, "{versions}");
    assert_eq!(v["DefaultVersion"], true);
    assert_eq!(
        v["LaunchTemplateData"]["InstanceInitiatedShutdownBehavior"],
        "terminate"
    );
    assert_eq!(v["LaunchTemplateData"]["UserData"], "I3Byb2JlCg==");
    let all = aws.json(&["ec2", "describe-launch-templates"]);
    assert_eq!(all["LaunchTemplates"][0]["DefaultVersionNumber"], 2);

    // An instance from the template's default version, in the placement group.
    let run = aws.json(&[
        "ec2",
        "run-instances",
        "--launch-template",
        "LaunchTemplateName=web-lt",
        "--placement",
        "GroupName=racks,PartitionNumber=1",
    ]);
    let inst = &run["Instances"][0];
    let id = s(&inst["InstanceId"]);
    assert_eq!(inst["ImageId"], ami.as_str());
    assert_eq!(inst["SecurityGroups"][0]["GroupId"], sg.as_str());
    assert!(inst["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["Key"] == "from" && t["Value"] == "lt"));
    let shutdown = aws.json(&[
        "ec2",
        "describe-instance-attribute",
        "--instance-id",
        &id,
        "--attribute",
        "instanceInitiatedShutdownBehavior",
    ]);
    assert_eq!(
        shutdown["InstanceInitiatedShutdownBehavior"]["Value"],
        "terminate"
    );
    aws.json(&["ec2", "wait", "instance-running", "--instance-ids", &id]);
    let i = &aws.json(&["ec2", "describe-instances", "--instance-ids", &id])["Reservations"][0]
        ["Instances"][0];
    assert_eq!(i["Placement"]["GroupName"], "racks");
    assert_eq!(i["Placement"]["PartitionNumber"], 1);
    aws.err(
        "InvalidPlacementGroup.InUse",
        &["ec2", "delete-placement-group", "--group-name", "racks"],
    );
    aws.err(
        "DependencyViolation",
        &["ec2", "delete-security-group", "--group-id", &sg],
    );

    // An Elastic IP on the instance, through the uplink.
    let eip = aws.json(&["ec2", "allocate-address", "--domain", "vpc"]);
    let alloc = s(&eip["AllocationId"]);
    let public = s(&eip["PublicIp"]);
    assert!(public.starts_with("198.51.100."), "{eip}");
    let assoc = aws.json(&[
        "ec2",
        "associate-address",
        "--allocation-id",
        &alloc,
        "--instance-id",
        &id,
    ]);
    let assoc_id = s(&assoc["AssociationId"]);
    let a = aws.json(&["ec2", "describe-addresses", "--allocation-ids", &alloc]);
    assert_eq!(a["Addresses"][0]["InstanceId"], id.as_str());
    assert_eq!(a["Addresses"][0]["AssociationId"], assoc_id.as_str());
    let i = &aws.json(&["ec2", "describe-instances", "--instance-ids", &id])["Reservations"][0]
        ["Instances"][0];
    assert_eq!(i["PublicIpAddress"], public.as_str());
    aws.err(
        "InvalidIPAddress.InUse",
        &["ec2", "release-address", "--allocation-id", &alloc],
    );
    aws.json(&["ec2", "disassociate-address", "--association-id", &assoc_id]);
    let a = aws.json(&["ec2", "describe-addresses", "--public-ips", &public]);
    assert!(a["Addresses"][0].get("InstanceId").is_none(), "{a}");
    aws.json(&["ec2", "release-address", "--allocation-id", &alloc]);
    aws.err(
        "InvalidAllocationID.NotFound",
        &["ec2", "describe-addresses", "--allocation-ids", &alloc],
    );

    // A network interface with a secondary address, attached while the instance is stopped.
    let subnet = s(&i["SubnetId"]);
    let eni = aws.json(&[
        "ec2",
        "create-network-interface",
        "--subnet-id",
        &subnet,
        "--groups",
        &sg,
        "--description",
        "second",
        "--secondary-private-ip-address-count",
        "1",
    ]);
    let eni = &eni["NetworkInterface"];
    let eni_id = s(&eni["NetworkInterfaceId"]);
    assert_eq!(eni["Status"], "available");
    assert_eq!(eni["PrivateIpAddresses"].as_array().unwrap().len(), 2);
    assert_eq!(eni["Groups"][0]["GroupName"], "web");
    let added = aws.json(&[
        "ec2",
        "assign-private-ip-addresses",
        "--network-interface-id",
        &eni_id,
        "--secondary-private-ip-address-count",
        "1",
    ]);
    let extra = s(&added["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]);
    aws.json(&[
        "ec2",
        "unassign-private-ip-addresses",
        "--network-interface-id",
        &eni_id,
        "--private-ip-addresses",
        &extra,
    ]);
    aws.json(&[
        "ec2",
        "modify-network-interface-attribute",
        "--network-interface-id",
        &eni_id,
        "--description",
        "Value=renamed",
    ]);
    aws.err(
        "IncorrectInstanceState",
        &[
            "ec2",
            "attach-network-interface",
            "--network-interface-id",
            &eni_id,
            "--instance-id",
            &id,
            "--device-index",
            "1",
        ],
    );
    aws.json(&["ec2", "stop-instances", "--instance-ids", &id]);
    aws.json(&["ec2", "wait", "instance-stopped", "--instance-ids", &id]);
    let att = aws.json(&[
        "ec2",
        "attach-network-interface",
        "--network-interface-id",
        &eni_id,
        "--instance-id",
        &id,
        "--device-index",
        "1",
    ]);
    let att_id = s(&att["AttachmentId"]);
    let e = aws.json(&[
        "ec2",
        "describe-network-interfaces",
        "--filters",
        &format!("Name=attachment.instance-id,Values={id}"),
    ]);
    let list = e["NetworkInterfaces"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{e}");
    let second = list
        .iter()
        .find(|n| n["NetworkInterfaceId"] == eni_id.as_str())
        .unwrap();
    assert_eq!(second["Description"], "renamed");
    assert_eq!(second["Status"], "in-use");
    assert_eq!(second["Attachment"]["DeviceIndex"], 1);
    assert_eq!(second["PrivateIpAddresses"].as_array().unwrap().len(), 2);
    aws.err(
        "InvalidNetworkInterface.InUse",
        &[
            "ec2",
            "delete-network-interface",
            "--network-interface-id",
            &eni_id,
        ],
    );
    aws.json(&[
        "ec2",
        "detach-network-interface",
        "--attachment-id",
        &att_id,
    ]);

    // Into the other partition while stopped.
    aws.json(&[
        "ec2",
        "modify-instance-placement",
        "--instance-id",
        &id,
        "--group-name",
        "racks",
        "--partition-number",
        "2",
    ]);
    let i = &aws.json(&["ec2", "describe-instances", "--instance-ids", &id])["Reservations"][0]
        ["Instances"][0];
    assert_eq!(i["Placement"]["PartitionNumber"], 2);

    aws.json(&["ec2", "terminate-instances", "--instance-ids", &id]);
    aws.json(&["ec2", "wait", "instance-terminated", "--instance-ids", &id]);
    aws.json(&[
        "ec2",
        "delete-network-interface",
        "--network-interface-id",
        &eni_id,
    ]);
    aws.json(&["ec2", "delete-placement-group", "--group-name", "racks"]);
    aws.json(&["ec2", "delete-security-group", "--group-id", &sg]);
    aws.json(&[
        "ec2",
        "delete-launch-template",
        "--launch-template-id",
        &lt_id,
    ]);
    aws.err(
        "InvalidLaunchTemplateId.NotFound",
        &[
            "ec2",
            "describe-launch-templates",
            "--launch-template-ids",
            &lt_id,
        ],
    );
}

#[test]
fn client_tokens_make_retries_safe_across_restarts() {
    let mut d = Daemon::start_with("qtoken", query_config());
    let aws = d.aws(None);
    let az = "home-1a";
    let create = |size: &str, token: &str| -> Vec<String> {
        [
            "ec2",
            "create-volume",
            "--availability-zone",
            az,
            "--size",
            size,
            "--client-token",
            token,
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let args = create("1", "vol-token-1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = aws.json(&args);
    let vol = s(&first["VolumeId"]);
    let again = aws.json(&args);
    assert_eq!(again["VolumeId"], vol.as_str());
    let other = create("2", "vol-token-1");
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    aws.err("IdempotentParameterMismatch", &other);
    // A failed call keeps no token: the same token with good parameters works after it.
    let bad = create("0", "vol-token-2");
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    aws.err("InvalidParameterValue", &bad);
    let good = create("1", "vol-token-2");
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let second = s(&aws.json(&good)["VolumeId"]);
    assert_ne!(second, vol);
    // A dry run neither uses nor claims the token.
    let mut dry = good.clone();
    dry.push("--dry-run");
    aws.err("DryRunOperation", &dry);

    // Another account's token of the same text is its own.
    let bob = d.aws(Some("token-bob"));
    let theirs = s(&bob.json(&args)["VolumeId"]);
    assert_ne!(theirs, vol);

    // A network interface and a launch template by token too.
    let subnet = s(&aws.json(&[
        "ec2",
        "describe-subnets",
        "--filters",
        "Name=availability-zone,Values=home-1a",
        "Name=default-for-az,Values=true",
    ])["Subnets"][0]["SubnetId"]);
    let eni_args = [
        "ec2",
        "create-network-interface",
        "--subnet-id",
        &subnet,
        "--client-token",
        "eni-token",
    ];
    let eni = s(&aws.json(&eni_args)["NetworkInterface"]["NetworkInterfaceId"]);
    assert_eq!(
        aws.json(&eni_args)["NetworkInterface"]["NetworkInterfaceId"],
        eni.as_str()
    );
    let lt_args = [
        "ec2",
        "create-launch-template",
        "--launch-template-name",
        "tok",
        "--launch-template-data",
        r#"{"InstanceType":"custom-1-64"}"#,
        "--client-token",
        "lt-token",
    ];
    let lt = s(&aws.json(&lt_args)["LaunchTemplate"]["LaunchTemplateId"]);

    // The daemon restarts; the same retries get the same answers.
    let key = (aws.key.clone(), aws.secret.clone());
    d.restart();
    let aws = Aws {
        key: key.0,
        secret: key.1,
        ..d.aws(None)
    };
    assert_eq!(aws.json(&args)["VolumeId"], vol.as_str());
    aws.err("IdempotentParameterMismatch", &other);
    assert_eq!(
        aws.json(&eni_args)["NetworkInterface"]["NetworkInterfaceId"],
        eni.as_str()
    );
    assert_eq!(
        aws.json(&lt_args)["LaunchTemplate"]["LaunchTemplateId"],
        lt.as_str()
    );
    let vols = aws.json(&["ec2", "describe-volumes"]);
    assert_eq!(
        vols["Volumes"].as_array().unwrap().len(),
        2,
        "one volume per token: {vols}"
    );
}

#[test]
fn dry_runs_run_the_real_checks_and_change_nothing() {
    let d = Daemon::start_with("qdry", query_config());
    let ami = d.register_probe("probe");
    let admin = d.aws(None);
    let alice = d.aws(Some("token-alice"));
    let missing_instance = "i-0123456789abcdef0";

    // RunInstances: every launch check, and no instance. The admin's private image does
    // not exist for alice.
    alice.err(
        "InvalidAMIID.NotFound",
        &["ec2", "run-instances", "--image-id", &ami, "--dry-run"],
    );
    admin.err(
        "DryRunOperation",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "custom-1-64",
            "--dry-run",
        ],
    );
    let none = admin.json(&["ec2", "describe-instances"]);
    assert_eq!(none["Reservations"].as_array().unwrap().len(), 0, "{none}");
    admin.err(
        "InvalidAMIID.NotFound",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            "ami-0123456789abcdef0",
            "--dry-run",
        ],
    );
    admin.err(
        "InvalidKeyPair.NotFound",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "custom-1-64",
            "--key-name",
            "nosuchkey",
            "--dry-run",
        ],
    );
    admin.err(
        "InvalidParameterValue",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "custom-1-64",
            "--count",
            "3:2",
            "--dry-run",
        ],
    );

    // An instance profile the account does not have.
    admin.err(
        "InvalidParameterValue",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &ami,
            "--iam-instance-profile",
            "Name=web",
            "--dry-run",
        ],
    );

    // Who may change what: the default VPC is the admin's, images are registered by the admin.
    let default_vpc = s(&alice.json(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=is-default,Values=true",
    ])["Vpcs"][0]["VpcId"]);
    alice.err(
        "UnauthorizedOperation",
        &["ec2", "delete-vpc", "--vpc-id", &default_vpc, "--dry-run"],
    );
    alice.err(
        "UnauthorizedOperation",
        &["ec2", "delete-vpc", "--vpc-id", &default_vpc],
    );
    alice.err(
        "UnauthorizedOperation",
        &[
            "ec2",
            "register-image",
            "--name",
            "mine",
            "--image-location",
            "/nonexistent",
            "--dry-run",
        ],
    );

    // References: each named resource must be the caller's.
    alice.err(
        "InvalidInstanceID.NotFound",
        &[
            "ec2",
            "create-tags",
            "--resources",
            missing_instance,
            "--tags",
            "Key=a,Value=b",
            "--dry-run",
        ],
    );
    alice.err(
        "InvalidSnapshot.NotFound",
        &[
            "ec2",
            "create-volume",
            "--availability-zone",
            "home-1a",
            "--size",
            "1",
            "--snapshot-id",
            "snap-0123456789abcdef0",
            "--dry-run",
        ],
    );
    alice.err(
        "InvalidGroup.NotFound",
        &[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            "sg-0123456789abcdef0",
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "0.0.0.0/0",
            "--dry-run",
        ],
    );
    // Another account's group is not found either, and a good request changes nothing.
    let sg = s(&admin.json(&[
        "ec2",
        "create-security-group",
        "--group-name",
        "dry",
        "--description",
        "dry",
    ])["GroupId"]);
    alice.err(
        "InvalidGroup.NotFound",
        &[
            "ec2",
            "delete-security-group",
            "--group-id",
            &sg,
            "--dry-run",
        ],
    );
    admin.err(
        "DryRunOperation",
        &[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "0.0.0.0/0",
            "--dry-run",
        ],
    );
    let g = admin.json(&["ec2", "describe-security-groups", "--group-ids", &sg]);
    assert_eq!(
        g["SecurityGroups"][0]["IpPermissions"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "{g}"
    );
    admin.err(
        "DryRunOperation",
        &[
            "ec2",
            "delete-security-group",
            "--group-id",
            &sg,
            "--dry-run",
        ],
    );
    admin.json(&["ec2", "describe-security-groups", "--group-ids", &sg]);
    // A host without an uplink has no addresses to allocate, dry run or not.
    admin.err(
        "UnsupportedOperation",
        &["ec2", "allocate-address", "--dry-run"],
    );
    let v = admin.json(&[
        "ec2",
        "create-volume",
        "--availability-zone",
        "home-1a",
        "--size",
        "1",
    ]);
    let vol = s(&v["VolumeId"]);
    alice.err(
        "InvalidVolume.NotFound",
        &["ec2", "delete-volume", "--volume-id", &vol, "--dry-run"],
    );
    admin.err(
        "DryRunOperation",
        &["ec2", "delete-volume", "--volume-id", &vol, "--dry-run"],
    );
    admin.json(&["ec2", "describe-volumes", "--volume-ids", &vol]);
}

#[test]
fn instance_profiles_reach_run_and_describe_instances() {
    let d = Daemon::start_with("qrole", query_config());
    let ami = d.register_probe("probe");
    let admin = d.aws(None);

    // Roles and profiles through strato's CLI, checked as IAM checks them.
    d.cli_err(
        "InvalidParameterValue",
        &[
            "create-role",
            "--role-name",
            "bad",
            "--actions",
            "s3:GetObject",
        ],
    );
    d.cli_err(
        "NoSuchEntity",
        &[
            "create-instance-profile",
            "--instance-profile-name",
            "web",
            "--role-name",
            "reader",
        ],
    );
    let role = d.json(&[
        "create-role",
        "--role-name",
        "reader",
        "--actions",
        "ec2:Describe*",
        "sts:GetCallerIdentity",
    ]);
    assert_eq!(role["Roles"][0]["RoleName"], "reader");
    assert_eq!(role["Roles"][0]["Actions"][0], "ec2:Describe*");
    d.cli_err(
        "EntityAlreadyExists",
        &["create-role", "--role-name", "reader", "--actions", "*"],
    );
    let profile = d.json(&[
        "create-instance-profile",
        "--instance-profile-name",
        "web",
        "--role-name",
        "reader",
    ]);
    let arn = format!("arn:aws:iam::{ADMIN}:instance-profile/web");
    assert_eq!(profile["InstanceProfiles"][0]["Arn"], arn.as_str());
    assert_eq!(
        d.json(&["describe-instance-profiles"])["InstanceProfiles"][0]["Roles"][0]["RoleName"],
        "reader"
    );
    d.cli_err(
        "DependencyViolation",
        &["delete-role", "--role-name", "reader"],
    );

    // A profile ARN of another account names nothing the caller has.
    admin.err(
        "InvalidParameterValue",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &ami,
            "--iam-instance-profile",
            "Arn=arn:aws:iam::222222222222:instance-profile/web",
            "--dry-run",
        ],
    );
    admin.err(
        "DryRunOperation",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "custom-1-64",
            "--iam-instance-profile",
            "Name=web",
            "--dry-run",
        ],
    );

    // A launch by ARN: DescribeInstances shows the profile and its association.
    let run = admin.json(&[
        "ec2",
        "run-instances",
        "--image-id",
        &ami,
        "--instance-type",
        "custom-1-64",
        "--iam-instance-profile",
        &format!("Arn={arn}"),
    ]);
    let id = s(&run["Instances"][0]["InstanceId"]);
    assert_eq!(
        run["Instances"][0]["IamInstanceProfile"]["Arn"],
        arn.as_str()
    );
    let described = admin.json(&["ec2", "describe-instances", "--instance-ids", &id]);
    let p = &described["Reservations"][0]["Instances"][0]["IamInstanceProfile"];
    assert_eq!(p["Arn"], arn.as_str());
    assert!(s(&p["Id"]).starts_with("iip-assoc-"), "{p}");
    // The gRPC API shows the same.
    let grpc = d.json(&["describe-instances", "--instance-ids", &id]);
    assert!(grpc.to_string().contains(&arn), "{grpc}");
    // A profile an instance has stays.
    d.cli_err(
        "DependencyViolation",
        &["delete-instance-profile", "--instance-profile-name", "web"],
    );
    admin.json(&["ec2", "terminate-instances", "--instance-ids", &id]);
    let waited = admin.raw(&["ec2", "wait", "instance-terminated", "--instance-ids", &id]);
    assert!(waited.status.success(), "{waited:?}");
}
