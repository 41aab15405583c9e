//! The results of the VPC, subnet and network interface commands, as the AWS CLI's JSON and as tables.

use serde_json::{json, Value};
use strato_proto::v1::{
    Address, AllocateAddressResponse, NetworkInterface, Subnet, SubnetIpv6CidrBlockAssociation,
    Vpc, VpcIpv6CidrBlockAssociation,
};

use super::json::{tags, text, time};
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
    /// create-network-interface (boxed: the largest message by far)
    Eni(Box<NetworkInterface>),
    /// describe-network-interfaces
    Enis(Vec<NetworkInterface>),
    /// attach-network-interface
    AttachmentId(String),
    /// assign-private-ip-addresses: the interface and the addresses added
    Assigned(String, Vec<String>),
    /// associate-/disassociate-vpc-cidr-block: the VPC and its IPv6 block
    VpcIpv6(String, VpcIpv6CidrBlockAssociation),
    /// associate-/disassociate-subnet-cidr-block: the subnet and its IPv6 block
    SubnetIpv6(String, SubnetIpv6CidrBlockAssociation),
    /// assign-ipv6-addresses: the interface and the addresses added
    Ipv6Assigned(String, Vec<String>),
    /// unassign-ipv6-addresses: the interface and the addresses removed
    Ipv6Unassigned(String, Vec<String>),
    /// allocate-address
    Allocated(AllocateAddressResponse),
    /// associate-address: the association ID
    Association(String),
    /// describe-addresses
    Addresses(Vec<Address>),
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
        NetworkView::Eni(e) => json!({ "NetworkInterface": eni(e) }),
        NetworkView::Enis(list) => {
            json!({ "NetworkInterfaces": list.iter().map(eni).collect::<Vec<_>>() })
        }
        NetworkView::AttachmentId(id) => json!({ "AttachmentId": id }),
        NetworkView::Assigned(id, ips) => json!({
            "NetworkInterfaceId": id,
            "AssignedPrivateIpAddresses": ips.iter()
                .map(|ip| json!({"PrivateIpAddress": ip}))
                .collect::<Vec<_>>(),
        }),
        NetworkView::VpcIpv6(id, b) => json!({
            "VpcId": id,
            "Ipv6CidrBlockAssociation": vpc_block(b),
        }),
        NetworkView::SubnetIpv6(id, b) => json!({
            "SubnetId": id,
            "Ipv6CidrBlockAssociation": subnet_block(b),
        }),
        NetworkView::Ipv6Assigned(id, ips) => json!({
            "NetworkInterfaceId": id,
            "AssignedIpv6Addresses": ips,
        }),
        NetworkView::Ipv6Unassigned(id, ips) => json!({
            "NetworkInterfaceId": id,
            "UnassignedIpv6Addresses": ips,
        }),
        NetworkView::Allocated(a) => json!({
            "PublicIp": a.public_ip,
            "AllocationId": a.allocation_id,
            "PublicIpv4Pool": a.public_ipv4_pool,
            "NetworkBorderGroup": a.network_border_group,
            "Domain": a.domain,
        }),
        NetworkView::Association(id) => json!({ "AssociationId": id }),
        NetworkView::Addresses(list) => {
            json!({ "Addresses": list.iter().map(address).collect::<Vec<_>>() })
        }
    }
}

/// A network interface in the AWS CLI's shape (also inside describe-instances).
pub fn eni(e: &NetworkInterface) -> Value {
    json!({
        "AvailabilityZone": e.availability_zone,
        "Description": e.description,
        "Groups": e.group_ids.iter().map(|g| json!({"GroupId": g})).collect::<Vec<_>>(),
        "InterfaceType": e.interface_type,
        "MacAddress": e.mac_address,
        "NetworkInterfaceId": e.network_interface_id,
        "OwnerId": e.owner_id,
        "PrivateDnsName": e.private_dns_name,
        "PrivateIpAddress": e.private_ip_address,
        "PrivateIpAddresses": e.private_ip_addresses.iter().map(|a| json!({
            "Primary": a.primary,
            "PrivateDnsName": a.private_dns_name,
            "PrivateIpAddress": a.private_ip_address,
        })).collect::<Vec<_>>(),
        "Ipv6Addresses": e.ipv6_addresses.iter().map(|a| json!({
            "Ipv6Address": a.ipv6_address,
            "IsPrimaryIpv6": a.is_primary_ipv6,
        })).collect::<Vec<_>>(),
        "SourceDestCheck": e.source_dest_check,
        "Status": e.status,
        "SubnetId": e.subnet_id,
        "VpcId": e.vpc_id,
        "Attachment": e.attachment.as_ref().map(|a| json!({
            "AttachmentId": a.attachment_id,
            "AttachTime": time(a.attach_time_unix),
            "DeleteOnTermination": a.delete_on_termination,
            "DeviceIndex": a.device_index,
            "InstanceId": a.instance_id,
            "InstanceOwnerId": a.instance_owner_id,
            "Status": a.status,
        })),
        "TagSet": tags(&e.tags),
    })
}

fn address(a: &Address) -> Value {
    json!({
        "PublicIp": a.public_ip,
        "AllocationId": a.allocation_id,
        "AssociationId": text(&a.association_id),
        "Domain": a.domain,
        "InstanceId": text(&a.instance_id),
        "NetworkInterfaceId": text(&a.network_interface_id),
        "NetworkInterfaceOwnerId": text(&a.network_interface_owner_id),
        "PrivateIpAddress": text(&a.private_ip_address),
        "Tags": tags(&a.tags),
        "PublicIpv4Pool": a.public_ipv4_pool,
        "NetworkBorderGroup": a.network_border_group,
    })
}

fn vpc_block(b: &VpcIpv6CidrBlockAssociation) -> Value {
    json!({
        "AssociationId": b.association_id,
        "Ipv6CidrBlock": b.ipv6_cidr_block,
        "Ipv6CidrBlockState": {"State": b.state},
        "Ipv6Pool": b.ipv6_pool,
        "NetworkBorderGroup": b.network_border_group,
    })
}

fn subnet_block(b: &SubnetIpv6CidrBlockAssociation) -> Value {
    json!({
        "AssociationId": b.association_id,
        "Ipv6CidrBlock": b.ipv6_cidr_block,
        "Ipv6CidrBlockState": {"State": b.state},
    })
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
        "Ipv6CidrBlockAssociationSet": v.ipv6_cidr_block_associations.iter()
            .map(vpc_block).collect::<Vec<_>>(),
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
        "AssignIpv6AddressOnCreation": s.assign_ipv6_address_on_creation,
        "Ipv6CidrBlockAssociationSet": s.ipv6_cidr_block_associations.iter()
            .map(subnet_block).collect::<Vec<_>>(),
        "Ipv6Native": false,
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
        NetworkView::Eni(e) => enis(std::slice::from_ref(e)),
        NetworkView::Enis(list) => enis(list),
        NetworkView::AttachmentId(id) => format!("{id}\n"),
        NetworkView::Assigned(_, ips)
        | NetworkView::Ipv6Assigned(_, ips)
        | NetworkView::Ipv6Unassigned(_, ips) => ips.iter().map(|ip| format!("{ip}\n")).collect(),
        NetworkView::VpcIpv6(id, b) => {
            let mut t = Table::new(&["VPC ID", "ASSOCIATION ID", "IPV6 CIDR", "STATE"]);
            t.row(vec![
                id.clone(),
                b.association_id.clone(),
                b.ipv6_cidr_block.clone(),
                b.state.clone(),
            ]);
            t.render()
        }
        NetworkView::SubnetIpv6(id, b) => {
            let mut t = Table::new(&["SUBNET ID", "ASSOCIATION ID", "IPV6 CIDR", "STATE"]);
            t.row(vec![
                id.clone(),
                b.association_id.clone(),
                b.ipv6_cidr_block.clone(),
                b.state.clone(),
            ]);
            t.render()
        }
        NetworkView::Allocated(a) => {
            let mut t = Table::new(&["ALLOCATION ID", "PUBLIC IP", "DOMAIN"]);
            t.row(vec![
                a.allocation_id.clone(),
                a.public_ip.clone(),
                a.domain.clone(),
            ]);
            t.render()
        }
        NetworkView::Association(id) => format!("{id}\n"),
        NetworkView::Addresses(list) => addresses(list),
    }
}

fn enis(list: &[NetworkInterface]) -> String {
    let mut t = Table::new(&[
        "ENI ID",
        "SUBNET ID",
        "PRIVATE IP",
        "MAC",
        "STATUS",
        "INSTANCE",
        "INDEX",
    ]);
    for e in list {
        let (instance, index) = match &e.attachment {
            Some(a) => (a.instance_id.clone(), a.device_index.to_string()),
            None => ("-".into(), "-".into()),
        };
        t.row(vec![
            e.network_interface_id.clone(),
            e.subnet_id.clone(),
            e.private_ip_address.clone(),
            e.mac_address.clone(),
            e.status.clone(),
            instance,
            index,
        ]);
    }
    t.render()
}

fn addresses(list: &[Address]) -> String {
    let mut t = Table::new(&[
        "ALLOCATION ID",
        "PUBLIC IP",
        "ASSOCIATION ID",
        "INSTANCE",
        "INTERFACE",
        "PRIVATE IP",
    ]);
    for a in list {
        t.row(vec![
            a.allocation_id.clone(),
            a.public_ip.clone(),
            a.association_id.clone(),
            a.instance_id.clone(),
            a.network_interface_id.clone(),
            a.private_ip_address.clone(),
        ]);
    }
    t.render()
}

fn vpcs(list: &[Vpc]) -> String {
    let mut t = Table::new(&["VPC ID", "CIDR", "IPV6 CIDR", "DEFAULT", "STATE", "OWNER"]);
    for v in list {
        t.row(vec![
            v.vpc_id.clone(),
            v.cidr_block.clone(),
            v.ipv6_cidr_block_associations
                .first()
                .map(|b| b.ipv6_cidr_block.clone())
                .unwrap_or_default(),
            v.is_default.to_string(),
            v.state.clone(),
            v.owner_id.clone(),
        ]);
    }
    t.render()
}

fn subnets(list: &[Subnet]) -> String {
    let mut t = Table::new(&[
        "SUBNET ID",
        "VPC ID",
        "CIDR",
        "IPV6 CIDR",
        "ZONE",
        "FREE IPS",
        "DEFAULT",
    ]);
    for s in list {
        t.row(vec![
            s.subnet_id.clone(),
            s.vpc_id.clone(),
            s.cidr_block.clone(),
            s.ipv6_cidr_block_associations
                .first()
                .map(|b| b.ipv6_cidr_block.clone())
                .unwrap_or_default(),
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
        let a = Address {
            public_ip: "198.51.100.17".into(),
            allocation_id: "eipalloc-1".into(),
            domain: "vpc".into(),
            ..Default::default()
        };
        let out: Value =
            serde_json::from_str(&render(NetworkView::Addresses(vec![a]), Format::Json)).unwrap();
        assert_eq!(out["Addresses"][0]["PublicIp"], "198.51.100.17");
        assert!(out["Addresses"][0].get("AssociationId").is_none(), "{out}");
        let out: Value = serde_json::from_str(&render(
            NetworkView::Association("eipassoc-1".into()),
            Format::Json,
        ))
        .unwrap();
        assert_eq!(out["AssociationId"], "eipassoc-1");
    }
}
