//! Elastic IPs.

use strato_proto::v1::{
    AllocateAddressRequest, AssociateAddressRequest, DescribeAddressesRequest,
    DisassociateAddressRequest, ReleaseAddressRequest,
};

use crate::args::addresses::{
    AllocateAddress, AssociateAddress, DescribeAddresses, DisassociateAddress, ReleaseAddress,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{NetworkView, View};
use crate::parse::{flatten, tags_for};

/// `allocate-address`
pub async fn allocate_address(conn: &Conn, a: AllocateAddress) -> Result<View, CliError> {
    let tags = tags_for("elastic-ip", flatten(a.tag_specifications), Vec::new())
        .map_err(CliError::Usage)?;
    let request = AllocateAddressRequest {
        domain: a.domain.unwrap_or_default(),
        tags,
    };
    let response = conn
        .addresses()
        .allocate_address(request)
        .await
        .map_err(conn.error("AllocateAddress"))?;
    Ok(View::Network(NetworkView::Allocated(response.into_inner())))
}

/// `associate-address`
pub async fn associate_address(conn: &Conn, a: AssociateAddress) -> Result<View, CliError> {
    let request = AssociateAddressRequest {
        allocation_id: a.allocation_id,
        instance_id: a.instance_id.unwrap_or_default(),
        network_interface_id: a.network_interface_id.unwrap_or_default(),
        private_ip_address: a.private_ip_address.unwrap_or_default(),
        allow_reassociation: a.allow_reassociation,
    };
    let response = conn
        .addresses()
        .associate_address(request)
        .await
        .map_err(conn.error("AssociateAddress"))?;
    Ok(View::Network(NetworkView::Association(
        response.into_inner().association_id,
    )))
}

/// `disassociate-address`
pub async fn disassociate_address(conn: &Conn, a: DisassociateAddress) -> Result<View, CliError> {
    let request = DisassociateAddressRequest {
        association_id: a.association_id,
    };
    conn.addresses()
        .disassociate_address(request)
        .await
        .map_err(conn.error("DisassociateAddress"))?;
    Ok(View::Empty)
}

/// `release-address`
pub async fn release_address(conn: &Conn, a: ReleaseAddress) -> Result<View, CliError> {
    let request = ReleaseAddressRequest {
        allocation_id: a.allocation_id,
    };
    conn.addresses()
        .release_address(request)
        .await
        .map_err(conn.error("ReleaseAddress"))?;
    Ok(View::Empty)
}

/// `describe-addresses`
pub async fn describe_addresses(conn: &Conn, a: DescribeAddresses) -> Result<View, CliError> {
    let request = DescribeAddressesRequest {
        allocation_ids: a.allocation_ids,
        public_ips: a.public_ips,
        filters: flatten(a.filters),
    };
    let response = conn
        .addresses()
        .describe_addresses(request)
        .await
        .map_err(conn.error("DescribeAddresses"))?;
    Ok(View::Network(NetworkView::Addresses(
        response.into_inner().addresses,
    )))
}
