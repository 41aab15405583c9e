//! Arguments of the VPC and subnet commands.

use clap::{ArgGroup, Args};
use strato_proto::v1::Filter;

use crate::parse::{self, Many, TagSpecification};

/// Arguments of `create-vpc`.
#[derive(Debug, Args)]
pub struct CreateVpc {
    /// The VPC's range, a /16 to a /28, e.g. 10.10.0.0/16.
    #[arg(long)]
    pub cidr_block: String,

    /// ResourceType=vpc,Tags=[{Key=k,Value=v}].
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,
}

/// Arguments of `describe-vpcs`.
#[derive(Debug, Args)]
pub struct DescribeVpcs {
    /// Only these VPCs.
    #[arg(long, num_args = 1..)]
    pub vpc_ids: Vec<String>,

    /// Filters, e.g. Name=is-default,Values=true.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,
}

/// Arguments of `delete-vpc`.
#[derive(Debug, Args)]
pub struct DeleteVpc {
    /// The VPC.
    #[arg(long)]
    pub vpc_id: String,
}

/// Arguments of `create-subnet`.
#[derive(Debug, Args)]
pub struct CreateSubnet {
    /// The VPC the subnet is in.
    #[arg(long)]
    pub vpc_id: String,

    /// The subnet's range, inside the VPC's, e.g. 10.10.1.0/24.
    #[arg(long)]
    pub cidr_block: String,

    /// The zone (default: the first).
    #[arg(long)]
    pub availability_zone: Option<String>,
}

/// Arguments of `describe-subnets`.
#[derive(Debug, Args)]
pub struct DescribeSubnets {
    /// Only these subnets.
    #[arg(long, num_args = 1..)]
    pub subnet_ids: Vec<String>,

    /// Filters, e.g. Name=vpc-id,Values=vpc-0123456789abcdef0.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,
}

/// Arguments of `delete-subnet`.
#[derive(Debug, Args)]
pub struct DeleteSubnet {
    /// The subnet.
    #[arg(long)]
    pub subnet_id: String,
}

/// Arguments of `modify-subnet-attribute`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("attribute").required(true)
    .args(["map_public_ip_on_launch", "no_map_public_ip_on_launch",
        "assign_ipv6_address_on_creation", "no_assign_ipv6_address_on_creation"])))]
pub struct ModifySubnetAttribute {
    /// The subnet.
    #[arg(long)]
    pub subnet_id: String,

    /// Instances launched into the subnet get a public IPv4 address.
    #[arg(long)]
    pub map_public_ip_on_launch: bool,

    /// Instances launched into the subnet get no public IPv4 address.
    #[arg(long)]
    pub no_map_public_ip_on_launch: bool,

    /// Instances and interfaces made in the subnet get an IPv6 address (the subnet needs
    /// an IPv6 block).
    #[arg(long)]
    pub assign_ipv6_address_on_creation: bool,

    /// Instances and interfaces made in the subnet get no IPv6 address unless asked.
    #[arg(long)]
    pub no_assign_ipv6_address_on_creation: bool,
}

/// Arguments of `associate-vpc-cidr-block`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("block").required(true)
    .args(["amazon_provided_ipv6_cidr_block", "ipv6_cidr_block", "cidr_block"])))]
pub struct AssociateVpcCidrBlock {
    /// The VPC.
    #[arg(long)]
    pub vpc_id: String,

    /// A /56 from the host's IPv6 pool.
    #[arg(long)]
    pub amazon_provided_ipv6_cidr_block: bool,

    /// A /56 the operator names (admin account only).
    #[arg(long)]
    pub ipv6_cidr_block: Option<String>,

    /// The pool the named block comes from (recorded and shown).
    #[arg(long, requires = "ipv6_cidr_block")]
    pub ipv6_pool: Option<String>,

    /// A secondary IPv4 block (not supported; the daemon refuses it).
    #[arg(long)]
    pub cidr_block: Option<String>,
}

/// Arguments of `disassociate-vpc-cidr-block` and `disassociate-subnet-cidr-block`.
#[derive(Debug, Args)]
pub struct DisassociateCidrBlock {
    /// The block's association ID (vpc-cidr-assoc-… or subnet-cidr-assoc-…).
    #[arg(long)]
    pub association_id: String,
}

/// Arguments of `associate-subnet-cidr-block`.
#[derive(Debug, Args)]
pub struct AssociateSubnetCidrBlock {
    /// The subnet.
    #[arg(long)]
    pub subnet_id: String,

    /// A /64 of the VPC's IPv6 /56.
    #[arg(long)]
    pub ipv6_cidr_block: String,
}
