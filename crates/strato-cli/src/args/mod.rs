//! The command line: global options and one subcommand per API verb, named and spelled
//! as in the AWS CLI (`describe-instances --instance-ids i-1 i-2`).

pub mod addresses;
pub mod cmdline;
pub mod compute;
pub mod images;
pub mod keys;
pub mod network_interfaces;
pub mod placement;
pub mod roles;
pub mod security_groups;
pub mod tags;
pub mod templates;
pub mod volumes;
pub mod vpc;

use clap::{Args, Parser, Subcommand};

use crate::conn::DEFAULT_ENDPOINT;
use crate::output::Format;
use crate::query::Query;

/// Command-line client for strato, a self-hosted EC2-style cloud.
#[derive(Debug, Parser)]
#[command(name = "strato", version, propagate_version = true)]
pub struct Cli {
    /// Daemon address: unix:/path/to/socket, https://host:port or http://host:port
    /// (default: $STRATO_ENDPOINT, else the socket below).
    #[arg(long, global = true, default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,

    /// CA certificates (PEM) to verify an https:// endpoint with, instead of the system's
    /// (the daemon's own CA is <data-dir>/tls/ca.pem; default: $STRATO_CA_BUNDLE).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_bundle: Option<std::path::PathBuf>,

    /// Bearer token sent with every request (default: $STRATO_TOKEN).
    #[arg(long, global = true)]
    pub token: Option<String>,

    /// Output format (default: $STRATO_OUTPUT, else table).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,

    /// Print only this part of the JSON result: a JMESPath expression, as the AWS CLI's,
    /// e.g. Reservations[].Instances[].[InstanceId, State.Name].
    #[arg(long, global = true, value_parser = crate::query::parse)]
    pub query: Option<Query>,

    /// The operation to perform.
    #[command(subcommand)]
    pub command: Command,
}

/// Every operation, grouped by service.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch instances from an image.
    RunInstances(Box<compute::RunInstances>),
    /// List instances.
    DescribeInstances(compute::DescribeInstances),
    /// Show instance state and status checks.
    DescribeInstanceStatus(compute::DescribeInstanceStatus),
    /// Stop running instances.
    StopInstances(compute::StopInstances),
    /// Start stopped instances.
    StartInstances(compute::InstancesWithWait),
    /// Reboot instances.
    RebootInstances(compute::Instances),
    /// Terminate instances.
    TerminateInstances(compute::InstancesWithWait),
    /// Change an instance's termination protection, shutdown behavior or security groups.
    ModifyInstanceAttribute(compute::ModifyInstanceAttribute),
    /// Change how the instance metadata service answers an instance.
    ModifyInstanceMetadataOptions(compute::ModifyInstanceMetadataOptions),
    /// List instance types.
    DescribeInstanceTypes(compute::DescribeInstanceTypes),
    /// Print the latest console output of an instance.
    GetConsoleOutput(compute::GetConsoleOutput),
    /// Open an instance's serial console: output live, keyboard input to the guest.
    /// Ctrl-] detaches; `~B` at the start of a line sends a BREAK; `~?` lists the escapes.
    Console(compute::Console),

    /// Register an image from a bundle or a kernel and root volume.
    RegisterImage(images::RegisterImage),
    /// List images.
    DescribeImages(images::DescribeImages),
    /// Deregister an image.
    DeregisterImage(images::ImageId),
    /// Create an image from an instance.
    CreateImage(images::CreateImage),
    /// Copy an image from another region into this one.
    CopyImage(images::CopyImage),
    /// Change who may launch an image.
    ModifyImageAttribute(images::ModifyImageAttribute),
    /// Show who may launch an image.
    DescribeImageAttribute(images::DescribeImageAttribute),

    /// Create a volume.
    CreateVolume(volumes::CreateVolume),
    /// Attach a volume to an instance.
    AttachVolume(volumes::AttachVolume),
    /// Detach a volume from its instance.
    DetachVolume(volumes::DetachVolume),
    /// Delete a volume.
    DeleteVolume(volumes::VolumeId),
    /// List volumes.
    DescribeVolumes(volumes::DescribeVolumes),
    /// Snapshot a volume.
    CreateSnapshot(volumes::CreateSnapshot),
    /// List snapshots.
    DescribeSnapshots(volumes::DescribeSnapshots),
    /// Delete a snapshot.
    DeleteSnapshot(volumes::SnapshotId),

    /// List this region and its peers, with their endpoints.
    DescribeRegions(placement::DescribeRegions),
    /// List the hosts of this region (config `cluster`): state, capacity, instances.
    DescribeHosts(placement::DescribeHosts),
    /// List the availability zones of this region.
    DescribeAvailabilityZones(placement::DescribeAvailabilityZones),
    /// Create a placement group (cluster, spread or partition).
    CreatePlacementGroup(placement::CreatePlacementGroup),
    /// List placement groups.
    DescribePlacementGroups(placement::DescribePlacementGroups),
    /// Delete a placement group that no instance uses.
    DeletePlacementGroup(placement::DeletePlacementGroup),
    /// Move a stopped instance into or out of a placement group.
    ModifyInstancePlacement(placement::ModifyInstancePlacement),

    /// Create a launch template with its version 1.
    CreateLaunchTemplate(templates::CreateLaunchTemplate),
    /// Add a version to a launch template.
    CreateLaunchTemplateVersion(templates::CreateLaunchTemplateVersion),
    /// Set a launch template's default version.
    ModifyLaunchTemplate(templates::ModifyLaunchTemplate),
    /// List launch templates.
    DescribeLaunchTemplates(templates::DescribeLaunchTemplates),
    /// List the versions of a launch template.
    DescribeLaunchTemplateVersions(templates::DescribeLaunchTemplateVersions),
    /// Delete a launch template and all its versions.
    DeleteLaunchTemplate(templates::DeleteLaunchTemplate),

    /// Create a key pair (rsa or ed25519); prints the private key (shown only this once).
    CreateKeyPair(keys::CreateKeyPair),
    /// Import an OpenSSH public key.
    ImportKeyPair(keys::ImportKeyPair),
    /// List key pairs.
    DescribeKeyPairs(keys::DescribeKeyPairs),
    /// Delete a key pair (succeeds if there is none).
    DeleteKeyPair(keys::DeleteKeyPair),

    /// Create an access key for the EC2 Query API (aws CLI, boto3, Terraform); prints the
    /// secret (shown only this once).
    CreateAccessKey(keys::CreateAccessKey),
    /// List access keys (never their secrets).
    DescribeAccessKeys(keys::DescribeAccessKeys),
    /// Delete an access key.
    DeleteAccessKey(keys::DeleteAccessKey),

    /// Create an instance role: a list of allowed actions (e.g. `ec2:Describe*`).
    CreateRole(roles::CreateRole),
    /// List the account's instance roles.
    DescribeRoles,
    /// Delete an instance role no profile names.
    DeleteRole(roles::DeleteRole),
    /// Create an instance profile naming a role (RunInstances' IamInstanceProfile).
    CreateInstanceProfile(roles::CreateInstanceProfile),
    /// List the account's instance profiles.
    DescribeInstanceProfiles,
    /// Delete an instance profile.
    DeleteInstanceProfile(roles::DeleteInstanceProfile),
    /// Give a running or stopped instance an instance profile.
    AssociateIamInstanceProfile(roles::AssociateIamInstanceProfile),
    /// Swap an instance's profile (the old role's credentials are revoked).
    ReplaceIamInstanceProfileAssociation(roles::ReplaceIamInstanceProfileAssociation),
    /// Take an instance's profile away (its credentials are revoked).
    DisassociateIamInstanceProfile(roles::DisassociateIamInstanceProfile),
    /// List which instances have which profiles.
    DescribeIamInstanceProfileAssociations(roles::DescribeIamInstanceProfileAssociations),

    /// Create a VPC (a bridge of its own on the host).
    CreateVpc(vpc::CreateVpc),
    /// List VPCs.
    DescribeVpcs(vpc::DescribeVpcs),
    /// Delete a VPC that has no subnets.
    DeleteVpc(vpc::DeleteVpc),
    /// Create a subnet in a VPC.
    CreateSubnet(vpc::CreateSubnet),
    /// List subnets.
    DescribeSubnets(vpc::DescribeSubnets),
    /// Delete a subnet that no network interface uses.
    DeleteSubnet(vpc::DeleteSubnet),
    /// Change whether a subnet gives launched instances a public IPv4 address.
    ModifySubnetAttribute(vpc::ModifySubnetAttribute),
    /// Give a VPC an IPv6 /56 (from the host's pool, or one the operator names).
    AssociateVpcCidrBlock(vpc::AssociateVpcCidrBlock),
    /// Take a VPC's IPv6 /56 away (none of its subnets may have a /64 of it).
    DisassociateVpcCidrBlock(vpc::DisassociateCidrBlock),
    /// Give a subnet an IPv6 /64 of its VPC's /56.
    AssociateSubnetCidrBlock(vpc::AssociateSubnetCidrBlock),
    /// Take a subnet's IPv6 /64 away (no interface may hold an address of it).
    DisassociateSubnetCidrBlock(vpc::DisassociateCidrBlock),

    /// Allocate an Elastic IP address from the host's public pool.
    AllocateAddress(addresses::AllocateAddress),
    /// Associate an Elastic IP with an instance or a network interface.
    AssociateAddress(addresses::AssociateAddress),
    /// End an Elastic IP's association (the address stays allocated).
    DisassociateAddress(addresses::DisassociateAddress),
    /// Release an Elastic IP that is not associated.
    ReleaseAddress(addresses::ReleaseAddress),
    /// List Elastic IPs.
    DescribeAddresses(addresses::DescribeAddresses),

    /// Add or overwrite tags on resources.
    CreateTags(tags::CreateTags),
    /// Remove tags from resources.
    DeleteTags(tags::DeleteTags),
    /// List the tags of your resources.
    DescribeTags(tags::DescribeTags),

    /// Create a security group (all outbound traffic allowed, nothing inbound).
    CreateSecurityGroup(security_groups::CreateSecurityGroup),
    /// List security groups and their rules.
    DescribeSecurityGroups(security_groups::DescribeSecurityGroups),
    /// Delete a security group nothing uses.
    DeleteSecurityGroup(security_groups::DeleteSecurityGroup),
    /// Allow inbound traffic.
    AuthorizeSecurityGroupIngress(security_groups::SecurityGroupRules),
    /// Allow outbound traffic.
    AuthorizeSecurityGroupEgress(security_groups::SecurityGroupRules),
    /// Remove inbound rules.
    RevokeSecurityGroupIngress(security_groups::SecurityGroupRules),
    /// Remove outbound rules.
    RevokeSecurityGroupEgress(security_groups::SecurityGroupRules),
    /// Create a network interface (ENI) in a subnet.
    CreateNetworkInterface(network_interfaces::CreateNetworkInterface),
    /// List network interfaces.
    DescribeNetworkInterfaces(network_interfaces::DescribeNetworkInterfaces),
    /// Attach a network interface to a stopped instance.
    AttachNetworkInterface(network_interfaces::AttachNetworkInterface),
    /// Detach a network interface (not the primary) from a stopped instance.
    DetachNetworkInterface(network_interfaces::DetachNetworkInterface),
    /// Delete a network interface that is not attached.
    DeleteNetworkInterface(network_interfaces::NetworkInterfaceId),
    /// Add secondary private IPv4 addresses to a network interface.
    AssignPrivateIpAddresses(network_interfaces::AssignPrivateIpAddresses),
    /// Remove secondary private IPv4 addresses from a network interface.
    UnassignPrivateIpAddresses(network_interfaces::UnassignPrivateIpAddresses),
    /// Add IPv6 addresses to a network interface.
    AssignIpv6Addresses(network_interfaces::AssignIpv6Addresses),
    /// Remove IPv6 addresses from a network interface.
    UnassignIpv6Addresses(network_interfaces::UnassignIpv6Addresses),
    /// Change a network interface's description, source/destination check or attachment.
    ModifyNetworkInterfaceAttribute(network_interfaces::ModifyNetworkInterfaceAttribute),

    /// Show metered instance time and volume GiB-seconds.
    #[command(visible_alias = "describe-usage")]
    Usage(Usage),
}

/// `--wait` and its timeout, shared by the commands that start long operations.
#[derive(Debug, Clone, Copy, Args)]
pub struct Wait {
    /// Wait until the operation has finished.
    #[arg(long)]
    pub wait: bool,

    /// Give up waiting after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, requires = "wait")]
    pub wait_timeout: u64,
}

/// Arguments of `usage`.
#[derive(Debug, Args)]
pub struct Usage {
    /// Start of the period: Unix seconds or RFC 3339 (default: the beginning).
    #[arg(long, value_parser = crate::time::parse_time)]
    pub start: Option<i64>,

    /// End of the period: Unix seconds or RFC 3339 (default: now).
    #[arg(long, value_parser = crate::time::parse_time)]
    pub end: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "strato",
            "describe-instances",
            "--output",
            "json",
            "--endpoint",
            "http://127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(cli.output, Format::Json);
        assert_eq!(cli.endpoint, "http://127.0.0.1:1");
    }

    #[test]
    fn usage_alias_and_times() {
        let cli = Cli::try_parse_from([
            "strato",
            "describe-usage",
            "--start",
            "2024-05-01T00:00:00Z",
            "--end",
            "1714600000",
        ])
        .unwrap();
        let Command::Usage(usage) = cli.command else {
            panic!("not usage");
        };
        assert_eq!(
            (usage.start, usage.end),
            (Some(1_714_521_600), Some(1_714_600_000))
        );
        assert!(Cli::try_parse_from(["strato", "usage", "--start", "soon"]).is_err());
    }

    #[test]
    fn new_commands_parse() {
        let cli = Cli::try_parse_from([
            "strato",
            "create-key-pair",
            "--key-name",
            "k",
            "--query",
            "KeyMaterial",
            "--output",
            "text",
        ])
        .unwrap();
        assert_eq!(cli.output, Format::Text);
        assert_eq!(cli.query.unwrap().to_string(), "KeyMaterial");
        for args in [
            &["describe-regions"][..],
            &["describe-availability-zones", "--zone-names", "home-1a"],
            &[
                "create-placement-group",
                "--group-name",
                "g",
                "--strategy",
                "spread",
            ],
            &[
                "modify-instance-placement",
                "--instance-id",
                "i-1",
                "--group-name",
                "",
            ],
            &[
                "create-launch-template",
                "--launch-template-name",
                "web",
                "--launch-template-data",
                r#"{"ImageId":"ami-1"}"#,
            ],
            &[
                "modify-launch-template",
                "--launch-template-name",
                "web",
                "--default-version",
                "2",
            ],
            &[
                "describe-launch-template-versions",
                "--launch-template-id",
                "lt-1",
                "--versions",
                "$Latest",
            ],
            &["delete-key-pair", "--key-name", "k"],
            &["allocate-address", "--domain", "vpc"],
            &[
                "associate-address",
                "--allocation-id",
                "eipalloc-1",
                "--instance-id",
                "i-1",
                "--allow-reassociation",
            ],
            &[
                "associate-address",
                "--allocation-id",
                "eipalloc-1",
                "--network-interface-id",
                "eni-1",
                "--private-ip-address",
                "10.0.0.4",
            ],
            &["describe-addresses", "--public-ips", "198.51.100.17"],
            &[
                "modify-subnet-attribute",
                "--subnet-id",
                "subnet-1",
                "--no-map-public-ip-on-launch",
            ],
            &[
                "run-instances",
                "--image-id",
                "ami-1",
                "--associate-public-ip-address",
            ],
            &[
                "run-instances",
                "--launch-template",
                "LaunchTemplateName=web,Version=2",
            ],
        ] {
            let mut argv = vec!["strato"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        for args in [
            &["modify-instance-placement", "--instance-id", "i-1"][..],
            &["delete-launch-template"],
            &["delete-key-pair"],
            &["run-instances"],
            &["associate-address", "--allocation-id", "eipalloc-1"],
            &[
                "associate-address",
                "--allocation-id",
                "eipalloc-1",
                "--instance-id",
                "i-1",
                "--network-interface-id",
                "eni-1",
            ],
            &["modify-subnet-attribute", "--subnet-id", "subnet-1"],
            &[
                "run-instances",
                "--image-id",
                "ami-1",
                "--associate-public-ip-address",
                "--no-associate-public-ip-address",
            ],
            &["describe-regions", "--query", "a..b"],
            &[
                "describe-launch-templates",
                "--launch-template-names",
                "a",
                "--query",
                "x[",
            ],
        ] {
            let mut argv = vec!["strato"];
            argv.extend_from_slice(args);
            assert_eq!(
                Cli::try_parse_from(argv).unwrap_err().exit_code(),
                2,
                "{args:?}"
            );
        }
    }

    #[test]
    fn wait_timeout_needs_wait() {
        let err = Cli::try_parse_from([
            "strato",
            "start-instances",
            "--instance-ids",
            "i-1",
            "--wait-timeout",
            "5",
        ]);
        assert!(err.is_err());
    }
}
