//! Arguments of the network interface commands.

use clap::Args;
use strato_proto::v1::{Filter, NetworkInterfaceAttachmentChanges};

use crate::parse::{self, Many, TagSpecification};

/// Arguments of `create-network-interface`.
#[derive(Debug, Args)]
pub struct CreateNetworkInterface {
    /// The subnet.
    #[arg(long)]
    pub subnet_id: String,

    /// The primary private IPv4 address (default: the lowest free one).
    #[arg(long)]
    pub private_ip_address: Option<String>,

    /// A description.
    #[arg(long)]
    pub description: Option<String>,

    /// Security group IDs.
    #[arg(long, num_args = 1..)]
    pub groups: Vec<String>,

    /// How many secondary private addresses the daemon picks.
    #[arg(long, conflicts_with = "private_ip_addresses")]
    pub secondary_private_ip_address_count: Option<i32>,

    /// Secondary private addresses, e.g. PrivateIpAddress=10.0.1.9,Primary=false.
    #[arg(long, num_args = 1.., value_parser = private_ip_spec)]
    pub private_ip_addresses: Vec<PrivateIpSpec>,

    /// ResourceType=network-interface,Tags=[{Key=k,Value=v}].
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,

    /// How many IPv6 addresses the daemon picks from the subnet's /64 (default: one if the
    /// subnet's AssignIpv6AddressOnCreation is on, else none).
    #[arg(long, conflicts_with = "ipv6_addresses")]
    pub ipv6_address_count: Option<i32>,

    /// IPv6 addresses of the subnet's /64: Ipv6Address=2001:db8::10, or the address.
    #[arg(long, num_args = 1.., value_parser = ipv6_spec)]
    pub ipv6_addresses: Vec<String>,
}

/// Parses `Ipv6Address=addr` (the aws CLI's shorthand) or a bare address.
pub fn ipv6_spec(raw: &str) -> Result<String, String> {
    let a = raw.strip_prefix("Ipv6Address=").unwrap_or(raw);
    if a.is_empty() || a.contains('=') || a.contains(',') {
        return Err(format!("unexpected {raw:?}: use Ipv6Address=2001:db8::10"));
    }
    Ok(a.to_string())
}

/// One `--private-ip-addresses` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateIpSpec {
    /// The address.
    pub address: String,
    /// Whether it is the primary.
    pub primary: bool,
}

/// Parses `PrivateIpAddress=a.b.c.d[,Primary=true|false]` or a bare address.
fn private_ip_spec(raw: &str) -> Result<PrivateIpSpec, String> {
    let mut spec = PrivateIpSpec {
        address: String::new(),
        primary: false,
    };
    if !raw.contains('=') {
        spec.address = raw.to_string();
        return Ok(spec);
    }
    for part in raw.split(',') {
        match part.split_once('=') {
            Some(("PrivateIpAddress", v)) => spec.address = v.to_string(),
            Some(("Primary", "true")) => spec.primary = true,
            Some(("Primary", "false")) => spec.primary = false,
            _ => {
                return Err(format!(
                    "unexpected {part:?}: use PrivateIpAddress=a.b.c.d,Primary=true|false"
                ))
            }
        }
    }
    if spec.address.is_empty() {
        return Err("PrivateIpAddress is missing".into());
    }
    Ok(spec)
}

/// Arguments of `describe-network-interfaces`.
#[derive(Debug, Args)]
pub struct DescribeNetworkInterfaces {
    /// Only these network interfaces.
    #[arg(long, num_args = 1..)]
    pub network_interface_ids: Vec<String>,

    /// Filters, e.g. Name=attachment.instance-id,Values=i-0123456789abcdef0.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,
}

/// Arguments of `attach-network-interface`.
#[derive(Debug, Args)]
pub struct AttachNetworkInterface {
    /// The network interface.
    #[arg(long)]
    pub network_interface_id: String,

    /// The (stopped) instance.
    #[arg(long)]
    pub instance_id: String,

    /// The device index; the guest sees interfaces as eth0, eth1, ... in index order.
    #[arg(long)]
    pub device_index: i32,
}

/// Arguments of `detach-network-interface`.
#[derive(Debug, Args)]
pub struct DetachNetworkInterface {
    /// The attachment (eni-attach-...).
    #[arg(long)]
    pub attachment_id: String,

    /// Accepted as the AWS CLI does; the instance must be stopped anyway.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of commands that act on one network interface.
#[derive(Debug, Args)]
pub struct NetworkInterfaceId {
    /// The network interface.
    #[arg(long)]
    pub network_interface_id: String,
}

/// Arguments of `assign-private-ip-addresses`.
#[derive(Debug, Args)]
pub struct AssignPrivateIpAddresses {
    /// The network interface.
    #[arg(long)]
    pub network_interface_id: String,

    /// The addresses to add.
    #[arg(long, num_args = 1.., conflicts_with = "secondary_private_ip_address_count")]
    pub private_ip_addresses: Vec<String>,

    /// How many addresses the daemon picks.
    #[arg(long)]
    pub secondary_private_ip_address_count: Option<i32>,
}

/// Arguments of `unassign-private-ip-addresses`.
#[derive(Debug, Args)]
pub struct UnassignPrivateIpAddresses {
    /// The network interface.
    #[arg(long)]
    pub network_interface_id: String,

    /// The secondary addresses to remove.
    #[arg(long, num_args = 1.., required = true)]
    pub private_ip_addresses: Vec<String>,
}

/// Arguments of `assign-ipv6-addresses`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true)
    .args(["ipv6_addresses", "ipv6_address_count"])))]
pub struct AssignIpv6Addresses {
    /// The network interface.
    #[arg(long)]
    pub network_interface_id: String,

    /// The addresses to add (of the subnet's /64).
    #[arg(long, num_args = 1.., conflicts_with = "ipv6_address_count")]
    pub ipv6_addresses: Vec<String>,

    /// How many addresses the daemon picks.
    #[arg(long)]
    pub ipv6_address_count: Option<i32>,
}

/// Arguments of `unassign-ipv6-addresses`.
#[derive(Debug, Args)]
pub struct UnassignIpv6Addresses {
    /// The network interface.
    #[arg(long)]
    pub network_interface_id: String,

    /// The addresses to remove.
    #[arg(long, num_args = 1.., required = true)]
    pub ipv6_addresses: Vec<String>,
}

/// Arguments of `modify-network-interface-attribute`.
#[derive(Debug, Args)]
pub struct ModifyNetworkInterfaceAttribute {
    /// The network interface.
    #[arg(long)]
    pub network_interface_id: String,

    /// A new description: Value=text, or the text.
    #[arg(long, value_parser = parse::attribute_value)]
    pub description: Option<String>,

    /// Turn source/destination checking on.
    #[arg(long, conflicts_with = "no_source_dest_check")]
    pub source_dest_check: bool,

    /// Turn source/destination checking off.
    #[arg(long)]
    pub no_source_dest_check: bool,

    /// AttachmentId=eni-attach-...,DeleteOnTermination=true|false.
    #[arg(long, value_parser = parse::attachment_changes)]
    pub attachment: Option<NetworkInterfaceAttachmentChanges>,

    /// Replace the interface's security groups (1 to 5).
    #[arg(long, num_args = 1..)]
    pub groups: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    #[test]
    fn aws_cli_spellings() {
        let cli = Cli::try_parse_from([
            "strato",
            "modify-network-interface-attribute",
            "--network-interface-id",
            "eni-1",
            "--attachment",
            "AttachmentId=eni-attach-1,DeleteOnTermination=true",
        ])
        .unwrap();
        let Command::ModifyNetworkInterfaceAttribute(m) = cli.command else {
            panic!("wrong command");
        };
        let a = m.attachment.unwrap();
        assert_eq!(a.attachment_id, "eni-attach-1");
        assert!(a.delete_on_termination);
        let cli = Cli::try_parse_from([
            "strato",
            "modify-network-interface-attribute",
            "--network-interface-id",
            "eni-1",
            "--description",
            "Value=web tier",
        ])
        .unwrap();
        let Command::ModifyNetworkInterfaceAttribute(m) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(m.description.as_deref(), Some("web tier"));
        assert_eq!(
            private_ip_spec("PrivateIpAddress=10.0.0.9,Primary=true").unwrap(),
            PrivateIpSpec {
                address: "10.0.0.9".into(),
                primary: true
            }
        );
        assert!(private_ip_spec("Primary=true").is_err());
        assert!(Cli::try_parse_from([
            "strato",
            "attach-network-interface",
            "--network-interface-id",
            "eni-1",
            "--instance-id",
            "i-1",
        ])
        .is_err());
    }
}
