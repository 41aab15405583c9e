//! The results of the VPC and subnet commands, as the AWS CLI's JSON and as tables.

use serde_json::{json, Value};
use strato_proto::v1::{Subnet, Vpc};

use super::json::tags;
use super::table::Table;

/// A result of one of these commands.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkView {
    /// create-vpc
    Vpc(Vpc),
    /// describe-vpcs
    Vpcs(Vec<Vpc>),
    /// create-subnet
    Subnet(Subnet),
    /// describe-subnets
    Subnets(Vec<Subnet>),
}

/// The AWS CLI's JSON for `view` (nulls are stripped by the caller).
pub fn json(view: &NetworkView) -> Value {
    match view {
        NetworkView::Vpc(v) => json!({ "Vpc": vpc(v) }),
        NetworkView::Vpcs(list) => json!({ "Vpcs": list.iter().map(vpc).collect::<Vec<_>>() }),
        NetworkView::Subnet(s) => json!({ "Subnet": subnet(s) }),
        NetworkView::Subnets(list) => {
            json!({ "Subnets": list.iter().map(subnet).collect::<Vec<_>>() })
        }
    }
}

fn vpc(v: &Vpc) -> Value {
    json!({
        "CidrBlock": v.cidr_block,
        "State": v.state,
        "VpcId": v.vpc_id,
        "OwnerId": v.owner_id,
        "InstanceTenancy": v.instance_tenancy,
        "CidrBlockAssociationSet": [{
            "CidrBlock": v.cidr_block,
            "CidrBlockState": {"State": "associated"},
        }],
        "IsDefault": v.is_default,
        "Tags": tags(&v.tags),
    })
}

fn subnet(s: &Subnet) -> Value {
    json!({
        "AvailabilityZone": s.availability_zone,
        "AvailabilityZoneId": s.availability_zone_id,
        "AvailableIpAddressCount": s.available_ip_address_count,
        "CidrBlock": s.cidr_block,
        "DefaultForAz": s.default_for_az,
        "MapPublicIpOnLaunch": s.map_public_ip_on_launch,
        "State": s.state,
        "SubnetId": s.subnet_id,
        "VpcId": s.vpc_id,
        "OwnerId": s.owner_id,
    })
}

/// The table for `view`.
pub fn table(view: &NetworkView) -> String {
    match view {
        NetworkView::Vpc(v) => vpcs(std::slice::from_ref(v)),
        NetworkView::Vpcs(list) => vpcs(list),
        NetworkView::Subnet(s) => subnets(std::slice::from_ref(s)),
        NetworkView::Subnets(list) => subnets(list),
    }
}

fn vpcs(list: &[Vpc]) -> String {
    let mut t = Table::new(&["VPC ID", "CIDR", "DEFAULT", "STATE", "OWNER"]);
    for v in list {
        t.row(vec![
            v.vpc_id.clone(),
            v.cidr_block.clone(),
            v.is_default.to_string(),
            v.state.clone(),
            v.owner_id.clone(),
        ]);
    }
    t.render()
}

fn subnets(list: &[Subnet]) -> String {
    let mut t = Table::new(&["SUBNET ID", "VPC ID", "CIDR", "ZONE", "FREE IPS", "DEFAULT"]);
    for s in list {
        t.row(vec![
            s.subnet_id.clone(),
            s.vpc_id.clone(),
            s.cidr_block.clone(),
            s.availability_zone.clone(),
            s.available_ip_address_count.to_string(),
            s.default_for_az.to_string(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{write, Format, View};

    fn render(view: NetworkView, format: Format) -> String {
        let mut out = Vec::new();
        write(&View::Network(view), format, None, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn aws_shapes() {
        let v = Vpc {
            vpc_id: "vpc-1".into(),
            cidr_block: "10.10.0.0/16".into(),
            state: "available".into(),
            owner_id: "111111111111".into(),
            instance_tenancy: "default".into(),
            ..Default::default()
        };
        let out: Value = serde_json::from_str(&render(NetworkView::Vpc(v), Format::Json)).unwrap();
        assert_eq!(out["Vpc"]["VpcId"], "vpc-1");
        assert_eq!(out["Vpc"]["IsDefault"], false);
        assert_eq!(
            out["Vpc"]["CidrBlockAssociationSet"][0]["CidrBlock"],
            "10.10.0.0/16"
        );
        let s = Subnet {
            subnet_id: "subnet-1".into(),
            cidr_block: "10.10.1.0/24".into(),
            available_ip_address_count: 251,
            ..Default::default()
        };
        let out: Value =
            serde_json::from_str(&render(NetworkView::Subnets(vec![s]), Format::Json)).unwrap();
        assert_eq!(out["Subnets"][0]["AvailableIpAddressCount"], 251);
        let table = render(NetworkView::Subnets(vec![]), Format::Table);
        assert!(table.starts_with("SUBNET ID"), "{table}");
    }
}
