//! Network interfaces.

use strato_proto::v1::{
    AssignIpv6AddressesRequest, AssignPrivateIpAddressesRequest, AttachNetworkInterfaceRequest,
    CreateNetworkInterfaceRequest, DeleteNetworkInterfaceRequest, DescribeNetworkInterfacesRequest,
    DetachNetworkInterfaceRequest, ModifyNetworkInterfaceAttributeRequest,
    UnassignIpv6AddressesRequest, UnassignPrivateIpAddressesRequest,
};

use crate::args::network_interfaces::{
    AssignIpv6Addresses, AssignPrivateIpAddresses, AttachNetworkInterface, CreateNetworkInterface,
    DescribeNetworkInterfaces, DetachNetworkInterface, ModifyNetworkInterfaceAttribute,
    NetworkInterfaceId, UnassignIpv6Addresses, UnassignPrivateIpAddresses,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{NetworkView, View};
use crate::parse::{flatten, tags_for};

/// `create-network-interface`
pub async fn create(conn: &Conn, a: CreateNetworkInterface) -> Result<View, CliError> {
    let tags = tags_for(
        "network-interface",
        flatten(a.tag_specifications),
        Vec::new(),
    )
    .map_err(CliError::Usage)?;
    // As in the AWS CLI, a Primary=true entry of --private-ip-addresses names the primary.
    let mut private_ip = a.private_ip_address.unwrap_or_default();
    let mut secondary = Vec::new();
    for spec in a.private_ip_addresses {
        if spec.primary {
            if !private_ip.is_empty() && private_ip != spec.address {
                return Err(CliError::Usage(
                    "two primary addresses: --private-ip-address and a Primary=true entry".into(),
                ));
            }
            private_ip = spec.address;
        } else {
            secondary.push(spec.address);
        }
    }
    let request = CreateNetworkInterfaceRequest {
        subnet_id: a.subnet_id,
        private_ip_address: private_ip,
        description: a.description.unwrap_or_default(),
        groups: a.groups,
        secondary_private_ip_address_count: a.secondary_private_ip_address_count.unwrap_or(0),
        private_ip_addresses: secondary,
        tags,
        ipv6_address_count: a.ipv6_address_count,
        ipv6_addresses: a.ipv6_addresses,
    };
    let response = conn
        .enis()
        .create_network_interface(request)
        .await
        .map_err(conn.error("CreateNetworkInterface"))?;
    let eni = response.into_inner().network_interface.unwrap_or_default();
    Ok(View::Network(NetworkView::Eni(Box::new(eni))))
}

/// `describe-network-interfaces`
pub async fn describe(conn: &Conn, a: DescribeNetworkInterfaces) -> Result<View, CliError> {
    let request = DescribeNetworkInterfacesRequest {
        network_interface_ids: a.network_interface_ids,
        filters: flatten(a.filters),
    };
    let response = conn
        .enis()
        .describe_network_interfaces(request)
        .await
        .map_err(conn.error("DescribeNetworkInterfaces"))?;
    Ok(View::Network(NetworkView::Enis(
        response.into_inner().network_interfaces,
    )))
}

/// `attach-network-interface`
pub async fn attach(conn: &Conn, a: AttachNetworkInterface) -> Result<View, CliError> {
    let request = AttachNetworkInterfaceRequest {
        network_interface_id: a.network_interface_id,
        instance_id: a.instance_id,
        device_index: Some(a.device_index),
    };
    let response = conn
        .enis()
        .attach_network_interface(request)
        .await
        .map_err(conn.error("AttachNetworkInterface"))?;
    Ok(View::Network(NetworkView::AttachmentId(
        response.into_inner().attachment_id,
    )))
}

/// `detach-network-interface`
pub async fn detach(conn: &Conn, a: DetachNetworkInterface) -> Result<View, CliError> {
    let request = DetachNetworkInterfaceRequest {
        attachment_id: a.attachment_id,
        force: a.force,
    };
    conn.enis()
        .detach_network_interface(request)
        .await
        .map_err(conn.error("DetachNetworkInterface"))?;
    Ok(View::Empty)
}

/// `delete-network-interface`
pub async fn delete(conn: &Conn, a: NetworkInterfaceId) -> Result<View, CliError> {
    let request = DeleteNetworkInterfaceRequest {
        network_interface_id: a.network_interface_id,
    };
    conn.enis()
        .delete_network_interface(request)
        .await
        .map_err(conn.error("DeleteNetworkInterface"))?;
    Ok(View::Empty)
}

/// `assign-private-ip-addresses`
pub async fn assign(conn: &Conn, a: AssignPrivateIpAddresses) -> Result<View, CliError> {
    let request = AssignPrivateIpAddressesRequest {
        network_interface_id: a.network_interface_id,
        private_ip_addresses: a.private_ip_addresses,
        secondary_private_ip_address_count: a.secondary_private_ip_address_count.unwrap_or(0),
    };
    let response = conn
        .enis()
        .assign_private_ip_addresses(request)
        .await
        .map_err(conn.error("AssignPrivateIpAddresses"))?
        .into_inner();
    Ok(View::Network(NetworkView::Assigned(
        response.network_interface_id,
        response.assigned_private_ip_addresses,
    )))
}

/// `unassign-private-ip-addresses`
pub async fn unassign(conn: &Conn, a: UnassignPrivateIpAddresses) -> Result<View, CliError> {
    let request = UnassignPrivateIpAddressesRequest {
        network_interface_id: a.network_interface_id,
        private_ip_addresses: a.private_ip_addresses,
    };
    conn.enis()
        .unassign_private_ip_addresses(request)
        .await
        .map_err(conn.error("UnassignPrivateIpAddresses"))?;
    Ok(View::Empty)
}

/// `modify-network-interface-attribute`
pub async fn modify(conn: &Conn, a: ModifyNetworkInterfaceAttribute) -> Result<View, CliError> {
    let source_dest_check = match (a.source_dest_check, a.no_source_dest_check) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let request = ModifyNetworkInterfaceAttributeRequest {
        network_interface_id: a.network_interface_id,
        description: a.description,
        source_dest_check,
        attachment: a.attachment,
        groups: a.groups,
    };
    conn.enis()
        .modify_network_interface_attribute(request)
        .await
        .map_err(conn.error("ModifyNetworkInterfaceAttribute"))?;
    Ok(View::Empty)
}

/// `assign-ipv6-addresses`
pub async fn assign_ipv6(conn: &Conn, a: AssignIpv6Addresses) -> Result<View, CliError> {
    let request = AssignIpv6AddressesRequest {
        network_interface_id: a.network_interface_id,
        ipv6_addresses: a.ipv6_addresses,
        ipv6_address_count: a.ipv6_address_count.unwrap_or(0),
    };
    let r = conn
        .enis()
        .assign_ipv6_addresses(request)
        .await
        .map_err(conn.error("AssignIpv6Addresses"))?
        .into_inner();
    Ok(View::Network(NetworkView::Ipv6Assigned(
        r.network_interface_id,
        r.assigned_ipv6_addresses,
    )))
}

/// `unassign-ipv6-addresses`
pub async fn unassign_ipv6(conn: &Conn, a: UnassignIpv6Addresses) -> Result<View, CliError> {
    let request = UnassignIpv6AddressesRequest {
        network_interface_id: a.network_interface_id,
        ipv6_addresses: a.ipv6_addresses,
    };
    let r = conn
        .enis()
        .unassign_ipv6_addresses(request)
        .await
        .map_err(conn.error("UnassignIpv6Addresses"))?
        .into_inner();
    Ok(View::Network(NetworkView::Ipv6Unassigned(
        r.network_interface_id,
        r.unassigned_ipv6_addresses,
    )))
}
