//! VPCs and subnets through the CLI: the default VPC and its subnets on first start, a VPC
//! of one's own with its bridge and gateway in the daemon's namespace, an instance launched
//! into it (address, status checks through its tap on that bridge, the address kept across
//! stop and start), the refusals, and deletion taking the bridge away.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use strato_e2e::{Daemon, ADMIN};

const T: Duration = Duration::from_secs(30);

/// `ip -j addr show dev NAME` in the daemon's namespace: the link's JSON, or None.
fn link(d: &Daemon, name: &str) -> Option<Value> {
    let out = Command::new("ip")
        .args(["-n", &d.ns, "-j", "addr", "show", "dev", name])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().and_then(|a| a.first().cloned())
}

/// The IPv4 addresses of a link as `a.b.c.d/n`.
fn addrs(link: &Value) -> Vec<String> {
    all_addrs(link)
        .into_iter()
        .filter(|a| a != METADATA)
        .collect()
}

/// The metadata service's address, which every VPC bridge holds beside its gateways.
const METADATA: &str = "169.254.169.254/32";

/// Every IPv4 address of a link.
fn all_addrs(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// The names of the links enslaved to a bridge.
fn ports(d: &Daemon, bridge: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", &d.ns, "-j", "link", "show", "master", bridge])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|l| l["ifname"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn vpcs_subnets_and_an_instance_in_one() {
    let d = Daemon::start("vpc");

    // The default VPC and one /20 per AZ, on the config's bridge.
    let v = d.json(&["describe-vpcs"]);
    let vpcs = v["Vpcs"].as_array().unwrap();
    assert_eq!(vpcs.len(), 1, "{v}");
    assert_eq!(vpcs[0]["CidrBlock"], "172.31.0.0/16");
    assert_eq!(vpcs[0]["IsDefault"], true);
    assert_eq!(vpcs[0]["State"], "available");
    let default_vpc = vpcs[0]["VpcId"].as_str().unwrap().to_string();
    let v = d.json(&["describe-subnets"]);
    let subnets = v["Subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 3, "{v}");
    for (s, cidr) in subnets
        .iter()
        .zip(["172.31.0.0/20", "172.31.16.0/20", "172.31.32.0/20"])
    {
        assert_eq!(s["CidrBlock"], cidr);
        assert_eq!(s["VpcId"], default_vpc.as_str());
        assert_eq!(s["DefaultForAz"], true);
        assert_eq!(s["AvailableIpAddressCount"], 4096 - 5);
    }
    let br = link(&d, "strato0").expect("default bridge");
    assert!(all_addrs(&br).contains(&METADATA.to_string()), "{br}");
    assert_eq!(
        addrs(&br),
        ["172.31.0.1/20", "172.31.16.1/20", "172.31.32.1/20"]
    );
    // Everyone sees the shared default VPC; only the admin may change it.
    let v = d.json_as(Some("token-alice"), &["describe-vpcs"]);
    assert_eq!(v["Vpcs"][0]["VpcId"], default_vpc.as_str());
    assert_eq!(v["Vpcs"][0]["OwnerId"], ADMIN);
    d.cli_err_as(
        Some("token-alice"),
        "UnauthorizedOperation",
        &[
            "create-subnet",
            "--vpc-id",
            &default_vpc,
            "--cidr-block",
            "172.31.128.0/24",
        ],
    );
    d.cli_err(
        "OperationNotPermitted",
        &["delete-vpc", "--vpc-id", &default_vpc],
    );

    // A VPC of one's own: a bridge at once, its gateway with the first subnet.
    let v = d.json(&["create-vpc", "--cidr-block", "10.10.0.0/16"]);
    let vpc = v["Vpc"]["VpcId"].as_str().unwrap().to_string();
    assert_eq!(v["Vpc"]["CidrBlock"], "10.10.0.0/16");
    assert_eq!(v["Vpc"]["IsDefault"], false);
    assert_eq!(v["Vpc"]["OwnerId"], ADMIN);
    let bridge = format!("svpc{}", &vpc[4..15]);
    let br = link(&d, &bridge).expect("VPC bridge");
    assert!(addrs(&br).is_empty(), "{br}");
    let v = d.json(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.10.1.0/24",
        "--availability-zone",
        "home-1a",
    ]);
    let subnet = v["Subnet"]["SubnetId"].as_str().unwrap().to_string();
    assert_eq!(v["Subnet"]["VpcId"], vpc.as_str());
    assert_eq!(v["Subnet"]["AvailabilityZone"], "home-1a");
    assert_eq!(v["Subnet"]["AvailableIpAddressCount"], 251);
    assert_eq!(v["Subnet"]["DefaultForAz"], false);
    assert_eq!(addrs(&link(&d, &bridge).unwrap()), ["10.10.1.1/24"]);
    let v = d.json(&["describe-vpcs", "--filters", "Name=is-default,Values=false"]);
    assert_eq!(v["Vpcs"].as_array().unwrap().len(), 1);
    assert_eq!(v["Vpcs"][0]["VpcId"], vpc.as_str());
    let v = d.json(&[
        "describe-subnets",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
    ]);
    assert_eq!(v["Subnets"].as_array().unwrap().len(), 1);
    // Other accounts see neither.
    let v = d.json_as(Some("token-alice"), &["describe-vpcs"]);
    assert_eq!(v["Vpcs"].as_array().unwrap().len(), 1);
    d.cli_err_as(
        Some("token-alice"),
        "InvalidSubnetID.NotFound",
        &["describe-subnets", "--subnet-ids", &subnet],
    );

    // The refusals.
    let create = |cidr: &str| {
        vec![
            "create-subnet".to_string(),
            "--vpc-id".into(),
            vpc.clone(),
            "--cidr-block".into(),
            cidr.to_string(),
        ]
    };
    let err = |code: &str, args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        d.cli_err(code, &a);
    };
    err("InvalidSubnet.Range", create("10.11.0.0/24"));
    err("InvalidSubnet.Range", create("10.10.0.0/29"));
    err("InvalidSubnet.Conflict", create("10.10.1.128/25"));
    err("InvalidSubnet.Conflict", create("10.10.0.0/16"));
    for bad in ["10.10.2.5/24", "10.10.2.0/33", "banana", "10.10.2/24"] {
        err("InvalidParameterValue", create(bad));
        d.cli_err(
            "InvalidParameterValue",
            &["create-vpc", "--cidr-block", bad],
        );
    }
    d.cli_err(
        "InvalidVpc.Range",
        &["create-vpc", "--cidr-block", "10.0.0.0/8"],
    );
    d.cli_err(
        "InvalidParameterValue",
        &[
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            "10.10.2.0/24",
            "--availability-zone",
            "mars-1a",
        ],
    );
    d.cli_err(
        "InvalidVpcID.NotFound",
        &["delete-vpc", "--vpc-id", "vpc-0123456789abcdef0"],
    );
    d.cli_err(
        "InvalidVpcID.Malformed",
        &["delete-vpc", "--vpc-id", "vpc-x"],
    );

    // An instance in the subnet: the first free address, its tap on the VPC's bridge, the
    // guest's gateway there (the ARP status check passes through it).
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &["--subnet-id", &subnet]).remove(0);
    d.wait_state(&id, "running", T);
    let inst = d.instance(&id);
    assert_eq!(inst["PrivateIpAddress"], "10.10.1.4");
    assert_eq!(inst["SubnetId"], subnet.as_str());
    assert_eq!(inst["VpcId"], vpc.as_str());
    assert_eq!(inst["Placement"]["AvailabilityZone"], "home-1a");
    d.wait_status(&id, ("ok", "ok"), T);
    let taps = ports(&d, &bridge);
    assert_eq!(taps.len(), 1, "{taps:?}");
    assert!(taps[0].starts_with("tap"), "{taps:?}");
    assert!(!ports(&d, "strato0").contains(&taps[0]));
    let v = d.json(&["describe-subnets", "--subnet-ids", &subnet]);
    assert_eq!(v["Subnets"][0]["AvailableIpAddressCount"], 250);

    // In use: neither the subnet nor the VPC can go.
    d.cli_err(
        "DependencyViolation",
        &["delete-subnet", "--subnet-id", &subnet],
    );
    d.cli_err("DependencyViolation", &["delete-vpc", "--vpc-id", &vpc]);

    // The address survives stop and start.
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    assert_eq!(d.instance(&id)["PrivateIpAddress"], "10.10.1.4");
    d.wait_status(&id, ("ok", "ok"), T);

    // Terminated, the subnet and then the VPC can be deleted; the bridge goes with the VPC.
    d.cli(&["terminate-instances", "--instance-ids", &id, "--wait"]);
    d.cli_err("DependencyViolation", &["delete-vpc", "--vpc-id", &vpc]);
    d.cli(&["delete-subnet", "--subnet-id", &subnet]);
    assert!(addrs(&link(&d, &bridge).unwrap()).is_empty());
    d.cli_err(
        "InvalidSubnetID.NotFound",
        &["describe-subnets", "--subnet-ids", &subnet],
    );
    d.cli(&["delete-vpc", "--vpc-id", &vpc]);
    assert!(
        link(&d, &bridge).is_none(),
        "bridge {bridge} is still there"
    );
    let v = d.json(&["describe-vpcs"]);
    assert_eq!(v["Vpcs"].as_array().unwrap().len(), 1);
}

#[test]
fn vpcs_and_gateways_come_back_after_a_restart() {
    let mut d = Daemon::start("vpcrst");
    let v = d.json(&["create-vpc", "--cidr-block", "10.20.0.0/16"]);
    let vpc = v["Vpc"]["VpcId"].as_str().unwrap().to_string();
    d.cli(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.20.3.0/28",
        "--availability-zone",
        "home-1b",
    ]);
    let bridge = format!("svpc{}", &vpc[4..15]);
    // A host reboot loses every bridge; the daemon's start puts them back.
    d.stop_daemon();
    let out = Command::new("ip")
        .args(["-n", &d.ns, "link", "del", &bridge])
        .output()
        .unwrap();
    assert!(out.status.success());
    d.restart();
    assert_eq!(
        addrs(&link(&d, &bridge).expect("bridge back")),
        ["10.20.3.1/28"]
    );
    let v = d.json(&["describe-vpcs"]);
    assert_eq!(v["Vpcs"].as_array().unwrap().len(), 2);
}
