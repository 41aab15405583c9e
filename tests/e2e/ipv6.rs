//! IPv6 in VPCs through the CLI and the aws CLI: a VPC's /56 from the daemon's `ipv6_pool`
//! (and one the operator names), a subnet's /64, interfaces with IPv6 addresses by count
//! and by name, AssignIpv6AddressOnCreation at launch, the describes and their filters,
//! EC2's refusals, and the blocks surviving a daemon restart.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use strato_e2e::query::query_config;
use strato_e2e::Daemon;

/// The pool test daemons hand /56s from (documentation space).
const POOL: &str = "2001:db8:40::/48";

fn config() -> Value {
    let mut c = query_config();
    c["ipv6_pool"] = POOL.into();
    c
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn vpcs_subnets_and_interfaces_get_ipv6_through_both_front_ends() {
    let mut d = Daemon::start_with("ipv6", config());
    let alice = |args: &[&str]| d.json_as(Some("token-alice"), args);

    let vpc = alice(&["create-vpc", "--cidr-block", "10.60.0.0/16"]);
    let vpc_id = vpc["Vpc"]["VpcId"].as_str().unwrap().to_string();
    let a = alice(&[
        "associate-vpc-cidr-block",
        "--vpc-id",
        &vpc_id,
        "--amazon-provided-ipv6-cidr-block",
    ]);
    assert_eq!(a["VpcId"], vpc_id.as_str());
    let block = &a["Ipv6CidrBlockAssociation"];
    assert_eq!(block["Ipv6CidrBlock"], "2001:db8:40::/56");
    assert_eq!(block["Ipv6Pool"], "Amazon");
    assert_eq!(block["Ipv6CidrBlockState"]["State"], "associated");
    let vpc_assoc = block["AssociationId"].as_str().unwrap().to_string();
    d.cli_err_as(
        Some("token-alice"),
        "CidrLimitExceeded",
        &[
            "associate-vpc-cidr-block",
            "--vpc-id",
            &vpc_id,
            "--amazon-provided-ipv6-cidr-block",
        ],
    );
    // Only the operator names blocks.
    d.cli_err_as(
        Some("token-alice"),
        "UnauthorizedOperation",
        &[
            "associate-vpc-cidr-block",
            "--vpc-id",
            &vpc_id,
            "--ipv6-cidr-block",
            "2001:db8:99::/56",
        ],
    );

    let subnet = alice(&[
        "create-subnet",
        "--vpc-id",
        &vpc_id,
        "--cidr-block",
        "10.60.1.0/24",
    ]);
    let subnet_id = subnet["Subnet"]["SubnetId"].as_str().unwrap().to_string();
    d.cli_err_as(
        Some("token-alice"),
        "InvalidSubnet.Range",
        &[
            "associate-subnet-cidr-block",
            "--subnet-id",
            &subnet_id,
            "--ipv6-cidr-block",
            "2001:db8:41::/64",
        ],
    );
    let s = alice(&[
        "associate-subnet-cidr-block",
        "--subnet-id",
        &subnet_id,
        "--ipv6-cidr-block",
        "2001:db8:40:7::/64",
    ]);
    let subnet_assoc = s["Ipv6CidrBlockAssociation"]["AssociationId"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = alice(&["describe-subnets", "--subnet-ids", &subnet_id]);
    assert_eq!(
        shown["Subnets"][0]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"],
        "2001:db8:40:7::/64"
    );
    assert_eq!(shown["Subnets"][0]["AssignIpv6AddressOnCreation"], false);

    let eni = alice(&[
        "create-network-interface",
        "--subnet-id",
        &subnet_id,
        "--ipv6-address-count",
        "2",
    ]);
    let eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
        .as_str()
        .unwrap()
        .to_string();
    let got: Vec<String> = eni["NetworkInterface"]["Ipv6Addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Ipv6Address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|a| a.starts_with("2001:db8:40:7:")),
        "{got:?}"
    );
    let added = alice(&[
        "assign-ipv6-addresses",
        "--network-interface-id",
        &eni_id,
        "--ipv6-addresses",
        "2001:db8:40:7::a",
    ]);
    assert_eq!(strs(&added["AssignedIpv6Addresses"]), ["2001:db8:40:7::a"]);
    d.cli_err_as(
        Some("token-alice"),
        "InvalidIPAddress.InUse",
        &[
            "assign-ipv6-addresses",
            "--network-interface-id",
            &eni_id,
            "--ipv6-addresses",
            "2001:db8:40:7::a",
        ],
    );
    // Bob sees neither the interface nor Alice's VPC.
    d.cli_err_as(
        Some("token-bob"),
        "InvalidNetworkInterfaceID.NotFound",
        &[
            "assign-ipv6-addresses",
            "--network-interface-id",
            &eni_id,
            "--ipv6-address-count",
            "1",
        ],
    );
    let found = alice(&[
        "describe-network-interfaces",
        "--filters",
        "Name=ipv6-addresses.ipv6-address,Values=2001:db8:40:7::a",
    ]);
    assert_eq!(found["NetworkInterfaces"].as_array().unwrap().len(), 1);
    assert_eq!(
        found["NetworkInterfaces"][0]["NetworkInterfaceId"],
        eni_id.as_str()
    );
    assert_eq!(
        found["NetworkInterfaces"][0]["Ipv6Addresses"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    d.cli_err_as(
        Some("token-alice"),
        "DependencyViolation",
        &[
            "disassociate-subnet-cidr-block",
            "--association-id",
            &subnet_assoc,
        ],
    );
    d.cli_err_as(
        Some("token-alice"),
        "DependencyViolation",
        &[
            "disassociate-vpc-cidr-block",
            "--association-id",
            &vpc_assoc,
        ],
    );

    // Launches into a subnet that assigns on creation get one address.
    let out = d.cli_as(
        Some("token-alice"),
        &[
            "modify-subnet-attribute",
            "--subnet-id",
            &subnet_id,
            "--assign-ipv6-address-on-creation",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let auto = alice(&["create-network-interface", "--subnet-id", &subnet_id]);
    assert_eq!(
        auto["NetworkInterface"]["Ipv6Addresses"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Everything is durable.
    d.restart();
    let alice = |args: &[&str]| d.json_as(Some("token-alice"), args);
    let vpcs = alice(&[
        "describe-vpcs",
        "--filters",
        "Name=ipv6-cidr-block-association.ipv6-cidr-block,Values=2001:db8:40::/56",
    ]);
    assert_eq!(vpcs["Vpcs"][0]["VpcId"], vpc_id.as_str());
    let shown = alice(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        &eni_id,
    ]);
    assert_eq!(
        shown["NetworkInterfaces"][0]["Ipv6Addresses"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The same through the aws CLI (the Query API).
    let aws = d.aws(Some("token-alice"));
    let other = aws.json(&["ec2", "create-vpc", "--cidr-block", "10.61.0.0/16"]);
    let other_id = other["Vpc"]["VpcId"].as_str().unwrap().to_string();
    let b = aws.json(&[
        "ec2",
        "associate-vpc-cidr-block",
        "--vpc-id",
        &other_id,
        "--amazon-provided-ipv6-cidr-block",
    ]);
    assert_eq!(
        b["Ipv6CidrBlockAssociation"]["Ipv6CidrBlock"],
        "2001:db8:40:100::/56"
    );
    let shown = aws.json(&["ec2", "describe-vpcs", "--vpc-ids", &other_id]);
    assert_eq!(
        shown["Vpcs"][0]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"],
        "2001:db8:40:100::/56"
    );
    let assigned = aws.json(&[
        "ec2",
        "assign-ipv6-addresses",
        "--network-interface-id",
        &eni_id,
        "--ipv6-address-count",
        "1",
    ]);
    let new = strs(&assigned["AssignedIpv6Addresses"]);
    assert_eq!(new.len(), 1);
    let gone = aws.json(&[
        "ec2",
        "unassign-ipv6-addresses",
        "--network-interface-id",
        &eni_id,
        "--ipv6-addresses",
        &new[0],
        "2001:db8:40:7::a",
    ]);
    assert_eq!(gone["UnassignedIpv6Addresses"].as_array().unwrap().len(), 2);
    aws.err(
        "CidrLimitExceeded",
        &[
            "ec2",
            "associate-subnet-cidr-block",
            "--subnet-id",
            &subnet_id,
            "--ipv6-cidr-block",
            "2001:db8:40:8::/64",
        ],
    );
    aws.err(
        "DependencyViolation",
        &[
            "ec2",
            "disassociate-vpc-cidr-block",
            "--association-id",
            &vpc_assoc,
        ],
    );
    aws.err(
        "InvalidVpcCidrBlockAssociationID.NotFound",
        &[
            "ec2",
            "disassociate-vpc-cidr-block",
            "--association-id",
            "vpc-cidr-assoc-0123456789abcdef0",
        ],
    );
    let sub = aws.json(&[
        "ec2",
        "describe-subnets",
        "--filters",
        "Name=assign-ipv6-address-on-creation,Values=true",
    ]);
    assert_eq!(sub["Subnets"].as_array().unwrap().len(), 1);
    assert_eq!(sub["Subnets"][0]["SubnetId"], subnet_id.as_str());
}
