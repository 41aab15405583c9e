//! Arguments of the security group commands.

use clap::Args;
use strato_proto::v1::{Filter, IpPermission};

use crate::parse::security_groups::{self as sg, PortRange};
use crate::parse::{self, Many, TagSpecification};

/// Arguments of `create-security-group`.
#[derive(Debug, Args)]
pub struct CreateSecurityGroup {
    /// The group's name, unique in its VPC.
    #[arg(long)]
    pub group_name: String,

    /// What the group is for.
    #[arg(long)]
    pub description: String,

    /// The VPC (default: the default VPC).
    #[arg(long)]
    pub vpc_id: Option<String>,

    /// ResourceType=security-group,Tags=[{Key=k,Value=v}].
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,
}

/// Arguments of `describe-security-groups`.
#[derive(Debug, Args)]
pub struct DescribeSecurityGroups {
    /// Only these groups.
    #[arg(long, num_args = 1..)]
    pub group_ids: Vec<String>,

    /// Only the groups of these names.
    #[arg(long, num_args = 1..)]
    pub group_names: Vec<String>,

    /// Filters, e.g. Name=vpc-id,Values=vpc-0123456789abcdef0.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,
}

/// Arguments of `delete-security-group`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "group")]
pub struct DeleteSecurityGroup {
    /// The group.
    #[arg(long, group = "group")]
    pub group_id: Option<String>,

    /// The group by name.
    #[arg(long, group = "group")]
    pub group_name: Option<String>,
}

/// Arguments of `authorize-security-group-ingress|egress` and `revoke-…`: either one rule
/// by `--protocol`, `--port` and `--cidr` or `--source-group`, or `--ip-permissions`.
#[derive(Debug, Args)]
pub struct SecurityGroupRules {
    /// The group.
    #[arg(long, required_unless_present = "group_name")]
    pub group_id: Option<String>,

    /// The group by name.
    #[arg(long, conflicts_with = "group_id")]
    pub group_name: Option<String>,

    /// tcp, udp, icmp, all (-1) or a protocol number.
    #[arg(
        long,
        allow_hyphen_values = true,
        conflicts_with = "ip_permissions",
        required_unless_present = "ip_permissions"
    )]
    pub protocol: Option<String>,

    /// Port or range: 22, 1000-2000; for icmp the type; -1 for all.
    #[arg(
        long,
        allow_hyphen_values = true,
        value_parser = sg::port,
        conflicts_with = "ip_permissions"
    )]
    pub port: Option<PortRange>,

    /// The peer block, e.g. 10.0.0.0/8.
    #[arg(long, conflicts_with_all = ["ip_permissions", "source_group", "cidr_ipv6"])]
    pub cidr: Option<String>,

    /// The peer IPv6 block, e.g. ::/0.
    #[arg(long, conflicts_with_all = ["ip_permissions", "source_group"])]
    pub cidr_ipv6: Option<String>,

    /// The peer group (its members' addresses).
    #[arg(long, conflicts_with = "ip_permissions")]
    pub source_group: Option<String>,

    /// Permissions in the AWS shape, JSON or shorthand, inline or file://.
    #[arg(long, num_args = 1.., value_parser = sg::ip_permissions)]
    pub ip_permissions: Vec<Many<IpPermission>>,
}

/// Arguments of `modify-instance-attribute --groups` live in `compute`; this is the
/// permission a plain `--protocol/--port/--cidr|--source-group` call stands for.
impl SecurityGroupRules {
    /// The permissions the arguments name.
    pub fn permissions(self) -> Result<Vec<IpPermission>, String> {
        if !self.ip_permissions.is_empty() {
            return Ok(parse::flatten(self.ip_permissions));
        }
        let protocol = self.protocol.unwrap_or_default();
        let proto = protocol.to_ascii_lowercase();
        let (from_port, to_port) = match (self.port, proto.as_str()) {
            (Some(range), _) => {
                let (a, b) = range.bounds(&protocol);
                (Some(a), Some(b))
            }
            (None, "tcp" | "udp" | "6" | "17") => {
                return Err(format!("--port is required with --protocol {protocol}"))
            }
            (None, _) => (None, None),
        };
        if self.cidr.is_none() && self.cidr_ipv6.is_none() && self.source_group.is_none() {
            return Err("give --cidr, --cidr-ipv6 or --source-group (or --ip-permissions)".into());
        }
        Ok(vec![IpPermission {
            ip_protocol: protocol,
            from_port,
            to_port,
            ip_ranges: self
                .cidr
                .into_iter()
                .map(|c| strato_proto::v1::IpRange {
                    cidr_ip: c,
                    description: String::new(),
                })
                .collect(),
            ipv6_ranges: self
                .cidr_ipv6
                .into_iter()
                .map(|c| strato_proto::v1::Ipv6Range {
                    cidr_ipv6: c,
                    description: String::new(),
                })
                .collect(),
            user_id_group_pairs: self
                .source_group
                .into_iter()
                .map(|g| strato_proto::v1::UserIdGroupPair {
                    group_id: g,
                    ..Default::default()
                })
                .collect(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::args::{Cli, Command};

    fn rules(args: &[&str]) -> Vec<strato_proto::v1::IpPermission> {
        let mut argv = vec!["strato", "authorize-security-group-ingress"];
        argv.extend_from_slice(args);
        let Command::AuthorizeSecurityGroupIngress(a) = Cli::try_parse_from(argv).unwrap().command
        else {
            panic!("wrong command");
        };
        a.permissions().unwrap()
    }

    #[test]
    fn both_forms() {
        let p = rules(&[
            "--group-id",
            "sg-1",
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "10.0.0.0/8",
        ]);
        assert_eq!((p[0].from_port, p[0].to_port), (Some(22), Some(22)));
        assert_eq!(p[0].ip_ranges[0].cidr_ip, "10.0.0.0/8");
        let p = rules(&[
            "--group-id",
            "sg-1",
            "--protocol",
            "icmp",
            "--source-group",
            "sg-2",
        ]);
        assert_eq!(p[0].from_port, None);
        assert_eq!(p[0].user_id_group_pairs[0].group_id, "sg-2");
        let p = rules(&[
            "--group-id",
            "sg-1",
            "--ip-permissions",
            r#"{"IpProtocol":"udp","FromPort":53,"ToPort":53,"IpRanges":[{"CidrIp":"0.0.0.0/0"}]}"#,
        ]);
        assert_eq!(p[0].ip_protocol, "udp");
        let p = rules(&[
            "--group-id",
            "sg-1",
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr-ipv6",
            "::/0",
        ]);
        assert_eq!(p[0].ipv6_ranges[0].cidr_ipv6, "::/0");
        assert!(p[0].ip_ranges.is_empty());
        let p = rules(&[
            "--group-id",
            "sg-1",
            "--ip-permissions",
            r#"{"IpProtocol":"icmpv6","FromPort":-1,"ToPort":-1,"Ipv6Ranges":[{"CidrIpv6":"2001:db8::/32","Description":"lab"}]}"#,
        ]);
        assert_eq!(p[0].ipv6_ranges[0].cidr_ipv6, "2001:db8::/32");
        assert_eq!(p[0].ipv6_ranges[0].description, "lab");
        let bad = Cli::try_parse_from([
            "strato",
            "authorize-security-group-ingress",
            "--group-id",
            "sg-1",
            "--protocol",
            "tcp",
            "--cidr",
            "10.0.0.0/8",
        ])
        .unwrap();
        let Command::AuthorizeSecurityGroupIngress(a) = bad.command else {
            panic!("wrong command");
        };
        assert!(a.permissions().is_err(), "tcp without --port");
    }
}
