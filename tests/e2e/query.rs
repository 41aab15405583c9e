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
import os, urllib.request, urllib.error
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
    with urllib.request.urlopen(r) as resp:
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
