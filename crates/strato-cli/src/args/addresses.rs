//! Arguments of the Elastic IP commands.

use clap::{ArgGroup, Args};
use strato_proto::v1::Filter;

use crate::parse::{self, Many, TagSpecification};

/// Arguments of `allocate-address`.
#[derive(Debug, Args)]
pub struct AllocateAddress {
    /// vpc (the only domain; the default).
    #[arg(long, value_parser = ["vpc"])]
    pub domain: Option<String>,

    /// ResourceType=elastic-ip,Tags=[{Key=k,Value=v}].
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,
}

/// Arguments of `associate-address`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true)
    .args(["instance_id", "network_interface_id"])))]
pub struct AssociateAddress {
    /// The Elastic IP.
    #[arg(long)]
    pub allocation_id: String,

    /// The instance (its primary network interface gets the address).
    #[arg(long)]
    pub instance_id: Option<String>,

    /// The network interface.
    #[arg(long)]
    pub network_interface_id: Option<String>,

    /// With --network-interface-id: which of its private addresses (default: the primary).
    #[arg(long, requires = "network_interface_id")]
    pub private_ip_address: Option<String>,

    /// Move the address even if it is associated elsewhere.
    #[arg(long, conflicts_with = "no_allow_reassociation")]
    pub allow_reassociation: bool,

    /// Fail if the address is associated elsewhere (the default).
    #[arg(long)]
    pub no_allow_reassociation: bool,
}

/// Arguments of `disassociate-address`.
#[derive(Debug, Args)]
pub struct DisassociateAddress {
    /// The association.
    #[arg(long)]
    pub association_id: String,
}

/// Arguments of `release-address`.
#[derive(Debug, Args)]
pub struct ReleaseAddress {
    /// The Elastic IP.
    #[arg(long)]
    pub allocation_id: String,
}

/// Arguments of `describe-addresses`.
#[derive(Debug, Args)]
pub struct DescribeAddresses {
    /// Only these allocations.
    #[arg(long, num_args = 1..)]
    pub allocation_ids: Vec<String>,

    /// Only these addresses.
    #[arg(long, num_args = 1..)]
    pub public_ips: Vec<String>,

    /// Filters, e.g. Name=instance-id,Values=i-0123456789abcdef0.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,
}
