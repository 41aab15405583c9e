//! VPCs and subnets.

use strato_proto::v1::{
    AssociateSubnetCidrBlockRequest, AssociateVpcCidrBlockRequest, AttributeBooleanValue,
    CreateSubnetRequest, CreateVpcRequest, DeleteSubnetRequest, DeleteVpcRequest,
    DescribeSubnetsRequest, DescribeVpcsRequest, DisassociateSubnetCidrBlockRequest,
    DisassociateVpcCidrBlockRequest, ModifySubnetAttributeRequest,
};

use crate::args::vpc::{
    AssociateSubnetCidrBlock, AssociateVpcCidrBlock, CreateSubnet, CreateVpc, DeleteSubnet,
    DeleteVpc, DescribeSubnets, DescribeVpcs, DisassociateCidrBlock, ModifySubnetAttribute,
};
use crate::conn::Conn;
use crate::error::CliError;
use crate::output::{NetworkView, View};
use crate::parse::{flatten, tags_for};

/// `create-vpc`
pub async fn create_vpc(conn: &Conn, a: CreateVpc) -> Result<View, CliError> {
    let tags =
        tags_for("vpc", flatten(a.tag_specifications), Vec::new()).map_err(CliError::Usage)?;
    let request = CreateVpcRequest {
        cidr_block: a.cidr_block,
        tags,
    };
    let response = conn
        .vpcs()
        .create_vpc(request)
        .await
        .map_err(conn.error("CreateVpc"))?;
    let vpc = response.into_inner().vpc.unwrap_or_default();
    Ok(View::Network(NetworkView::Vpc(vpc)))
}

/// `describe-vpcs`
pub async fn describe_vpcs(conn: &Conn, a: DescribeVpcs) -> Result<View, CliError> {
    let request = DescribeVpcsRequest {
        vpc_ids: a.vpc_ids,
        filters: flatten(a.filters),
    };
    let response = conn
        .vpcs()
        .describe_vpcs(request)
        .await
        .map_err(conn.error("DescribeVpcs"))?;
    Ok(View::Network(NetworkView::Vpcs(response.into_inner().vpcs)))
}

/// `delete-vpc`
pub async fn delete_vpc(conn: &Conn, a: DeleteVpc) -> Result<View, CliError> {
    let request = DeleteVpcRequest { vpc_id: a.vpc_id };
    conn.vpcs()
        .delete_vpc(request)
        .await
        .map_err(conn.error("DeleteVpc"))?;
    Ok(View::Empty)
}

/// `create-subnet`
pub async fn create_subnet(conn: &Conn, a: CreateSubnet) -> Result<View, CliError> {
    let request = CreateSubnetRequest {
        vpc_id: a.vpc_id,
        cidr_block: a.cidr_block,
        availability_zone: a.availability_zone.unwrap_or_default(),
    };
    let response = conn
        .vpcs()
        .create_subnet(request)
        .await
        .map_err(conn.error("CreateSubnet"))?;
    let subnet = response.into_inner().subnet.unwrap_or_default();
    Ok(View::Network(NetworkView::Subnet(subnet)))
}

/// `describe-subnets`
pub async fn describe_subnets(conn: &Conn, a: DescribeSubnets) -> Result<View, CliError> {
    let request = DescribeSubnetsRequest {
        subnet_ids: a.subnet_ids,
        filters: flatten(a.filters),
    };
    let response = conn
        .vpcs()
        .describe_subnets(request)
        .await
        .map_err(conn.error("DescribeSubnets"))?;
    Ok(View::Network(NetworkView::Subnets(
        response.into_inner().subnets,
    )))
}

/// `delete-subnet`
pub async fn delete_subnet(conn: &Conn, a: DeleteSubnet) -> Result<View, CliError> {
    let request = DeleteSubnetRequest {
        subnet_id: a.subnet_id,
    };
    conn.vpcs()
        .delete_subnet(request)
        .await
        .map_err(conn.error("DeleteSubnet"))?;
    Ok(View::Empty)
}

/// `modify-subnet-attribute`
pub async fn modify_subnet_attribute(
    conn: &Conn,
    a: ModifySubnetAttribute,
) -> Result<View, CliError> {
    let flag = |on: bool, off: bool| (on || off).then_some(AttributeBooleanValue { value: on });
    let request = ModifySubnetAttributeRequest {
        subnet_id: a.subnet_id,
        map_public_ip_on_launch: flag(a.map_public_ip_on_launch, a.no_map_public_ip_on_launch),
        assign_ipv6_address_on_creation: flag(
            a.assign_ipv6_address_on_creation,
            a.no_assign_ipv6_address_on_creation,
        ),
    };
    conn.vpcs()
        .modify_subnet_attribute(request)
        .await
        .map_err(conn.error("ModifySubnetAttribute"))?;
    Ok(View::Empty)
}

/// `associate-vpc-cidr-block`
pub async fn associate_vpc_cidr_block(
    conn: &Conn,
    a: AssociateVpcCidrBlock,
) -> Result<View, CliError> {
    let request = AssociateVpcCidrBlockRequest {
        vpc_id: a.vpc_id,
        amazon_provided_ipv6_cidr_block: a.amazon_provided_ipv6_cidr_block,
        ipv6_cidr_block: a.ipv6_cidr_block.unwrap_or_default(),
        ipv6_pool: a.ipv6_pool.unwrap_or_default(),
        cidr_block: a.cidr_block.unwrap_or_default(),
    };
    let r = conn
        .vpcs()
        .associate_vpc_cidr_block(request)
        .await
        .map_err(conn.error("AssociateVpcCidrBlock"))?
        .into_inner();
    Ok(View::Network(NetworkView::VpcIpv6(
        r.vpc_id,
        r.ipv6_cidr_block_association.unwrap_or_default(),
    )))
}

/// `disassociate-vpc-cidr-block`
pub async fn disassociate_vpc_cidr_block(
    conn: &Conn,
    a: DisassociateCidrBlock,
) -> Result<View, CliError> {
    let request = DisassociateVpcCidrBlockRequest {
        association_id: a.association_id,
    };
    let r = conn
        .vpcs()
        .disassociate_vpc_cidr_block(request)
        .await
        .map_err(conn.error("DisassociateVpcCidrBlock"))?
        .into_inner();
    Ok(View::Network(NetworkView::VpcIpv6(
        r.vpc_id,
        r.ipv6_cidr_block_association.unwrap_or_default(),
    )))
}

/// `associate-subnet-cidr-block`
pub async fn associate_subnet_cidr_block(
    conn: &Conn,
    a: AssociateSubnetCidrBlock,
) -> Result<View, CliError> {
    let request = AssociateSubnetCidrBlockRequest {
        subnet_id: a.subnet_id,
        ipv6_cidr_block: a.ipv6_cidr_block,
    };
    let r = conn
        .vpcs()
        .associate_subnet_cidr_block(request)
        .await
        .map_err(conn.error("AssociateSubnetCidrBlock"))?
        .into_inner();
    Ok(View::Network(NetworkView::SubnetIpv6(
        r.subnet_id,
        r.ipv6_cidr_block_association.unwrap_or_default(),
    )))
}

/// `disassociate-subnet-cidr-block`
pub async fn disassociate_subnet_cidr_block(
    conn: &Conn,
    a: DisassociateCidrBlock,
) -> Result<View, CliError> {
    let request = DisassociateSubnetCidrBlockRequest {
        association_id: a.association_id,
    };
    let r = conn
        .vpcs()
        .disassociate_subnet_cidr_block(request)
        .await
        .map_err(conn.error("DisassociateSubnetCidrBlock"))?
        .into_inner();
    Ok(View::Network(NetworkView::SubnetIpv6(
        r.subnet_id,
        r.ipv6_cidr_block_association.unwrap_or_default(),
    )))
}
