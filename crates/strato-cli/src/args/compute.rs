//! Arguments of the Compute commands.

use clap::{ArgGroup, Args};
use strato_proto::v1::{
    BlockDeviceMapping, Filter, InstanceMetadataOptions, LaunchTemplateSpecification, Placement,
    Tag,
};

use super::Wait;
use crate::parse::{self, Count, Many, TagSpecification, UserData};

/// Arguments of `run-instances`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).multiple(true)
    .args(["image_id", "launch_template"])))]
pub struct RunInstances {
    /// The image to launch (optional with --launch-template).
    #[arg(long)]
    pub image_id: Option<String>,

    /// LaunchTemplateName=NAME,Version=V or LaunchTemplateId=ID,Version=V (V: a number,
    /// $Latest or $Default, the default); the other options override its parameters.
    #[arg(long, value_parser = parse::launch_template)]
    pub launch_template: Option<LaunchTemplateSpecification>,

    /// The instance type (the daemon's default when left out).
    #[arg(long)]
    pub instance_type: Option<String>,

    /// How many instances: N, or MIN:MAX to accept fewer when capacity is short.
    #[arg(long, value_parser = parse::count, default_value = "1")]
    pub count: Count,

    /// The subnet to place the instances in.
    #[arg(long)]
    pub subnet_id: Option<String>,

    /// Security groups for the instances (at most 5; none: the VPC's default group).
    #[arg(long, num_args = 1..)]
    pub security_group_ids: Vec<String>,

    /// Security groups by name, in the subnet's VPC.
    #[arg(long, num_args = 1..)]
    pub security_groups: Vec<String>,

    /// User data: file://PATH or fileb://PATH reads a file, anything else is the data.
    #[arg(long, value_parser = parse::user_data)]
    pub user_data: Option<UserData>,

    /// Block device mappings: the AWS CLI's JSON list, shorthand, or file://PATH.
    #[arg(long, num_args = 1.., value_parser = parse::block_device_mappings)]
    pub block_device_mappings: Vec<Many<BlockDeviceMapping>>,

    /// The key pair to install.
    #[arg(long)]
    pub key_name: Option<String>,

    /// An instance profile of the account, by name or ARN (its role's credentials reach the
    /// instance through the metadata service).
    #[arg(long)]
    pub iam_instance_profile: Option<String>,

    /// AvailabilityZone=..,GroupName=..,PartitionNumber=..
    #[arg(long, value_parser = parse::placement)]
    pub placement: Option<Placement>,

    /// HttpTokens=optional|required,HttpPutResponseHopLimit=N,HttpEndpoint=enabled|disabled,
    /// InstanceMetadataTags=enabled|disabled,HttpProtocolIpv6=enabled|disabled (shorthand or JSON).
    #[arg(long, value_parser = parse::metadata_options)]
    pub metadata_options: Option<InstanceMetadataOptions>,

    /// What an OS-initiated shutdown does.
    #[arg(long, value_parser = ["stop", "terminate"])]
    pub instance_initiated_shutdown_behavior: Option<String>,

    /// Protect the instances from terminate-instances.
    #[arg(long, conflicts_with = "enable_api_termination")]
    pub disable_api_termination: bool,

    /// Allow terminate-instances (the default).
    #[arg(long)]
    pub enable_api_termination: bool,

    /// ResourceType=instance|volume,Tags=[{Key=k,Value=v}]: tags for the instance, or for the
    /// volumes the launch creates.
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,

    /// Instance tags, e.g. Key=Name,Value=web.
    #[arg(long, num_args = 1.., value_parser = parse::tags)]
    pub tags: Vec<Many<Tag>>,

    /// Idempotency token: repeating a call with it launches nothing new.
    #[arg(long)]
    pub client_token: Option<String>,

    /// Give the instances a public IPv4 address whatever the subnet's setting.
    #[arg(long, conflicts_with = "no_associate_public_ip_address")]
    pub associate_public_ip_address: bool,

    /// Give the instances no public IPv4 address whatever the subnet's setting.
    #[arg(long)]
    pub no_associate_public_ip_address: bool,

    /// How many IPv6 addresses the primary interface gets from the subnet's /64
    /// (default: one if the subnet's AssignIpv6AddressOnCreation is on, else none).
    #[arg(long, conflicts_with = "ipv6_addresses")]
    pub ipv6_address_count: Option<i32>,

    /// IPv6 addresses of the primary interface (one instance only): Ipv6Address=addr, or
    /// the address.
    #[arg(long, num_args = 1.., value_parser = crate::args::network_interfaces::ipv6_spec)]
    pub ipv6_addresses: Vec<String>,

    /// Wait until the instances are running.
    #[command(flatten)]
    pub wait: Wait,
}

/// Arguments of `describe-instances`.
#[derive(Debug, Args)]
pub struct DescribeInstances {
    /// Only these instances.
    #[arg(long, num_args = 1..)]
    pub instance_ids: Vec<String>,

    /// Filters, e.g. Name=instance-state-name,Values=running,stopped.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,

    /// Items per API call, 5 to 1000 (the CLI follows every page).
    #[arg(long, value_parser = clap::value_parser!(i32).range(5..=1000))]
    pub page_size: Option<i32>,
}

/// Arguments of `describe-instance-status`.
#[derive(Debug, Args)]
pub struct DescribeInstanceStatus {
    /// Only these instances.
    #[arg(long, num_args = 1..)]
    pub instance_ids: Vec<String>,

    /// Include instances that are not running.
    #[arg(long)]
    pub include_all_instances: bool,

    /// Filters, e.g. Name=instance-status.status,Values=impaired.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,
}

/// Arguments of commands that act on a list of instances.
#[derive(Debug, Args)]
pub struct Instances {
    /// The instances.
    #[arg(long, num_args = 1.., required = true)]
    pub instance_ids: Vec<String>,
}

/// Arguments of `start-instances` and `terminate-instances`.
#[derive(Debug, Args)]
pub struct InstancesWithWait {
    /// The instances.
    #[arg(long, num_args = 1.., required = true)]
    pub instance_ids: Vec<String>,

    /// Wait until the instances reach the target state.
    #[command(flatten)]
    pub wait: Wait,
}

/// Arguments of `stop-instances`.
#[derive(Debug, Args)]
pub struct StopInstances {
    /// The instances.
    #[arg(long, num_args = 1.., required = true)]
    pub instance_ids: Vec<String>,

    /// Skip the graceful shutdown and stop the VMs at once.
    #[arg(long)]
    pub force: bool,

    /// Wait until the instances are stopped.
    #[command(flatten)]
    pub wait: Wait,
}

/// Arguments of `modify-instance-attribute`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("attribute")
        .required(true)
        .multiple(true)
        .args(["disable_api_termination", "no_disable_api_termination",
               "instance_initiated_shutdown_behavior", "groups",
               "ena_support", "no_ena_support"])
))]
pub struct ModifyInstanceAttribute {
    /// The instance.
    #[arg(long)]
    pub instance_id: String,

    /// Protect the instance from terminate-instances.
    #[arg(long, conflicts_with = "no_disable_api_termination")]
    pub disable_api_termination: bool,

    /// Allow terminate-instances again.
    #[arg(long)]
    pub no_disable_api_termination: bool,

    /// What an OS-initiated shutdown does.
    #[arg(long, value_parser = ["stop", "terminate"])]
    pub instance_initiated_shutdown_behavior: Option<String>,

    /// Replace the security groups of the instance's primary interface (1 to 5).
    #[arg(long, num_args = 1..)]
    pub groups: Vec<String>,

    /// Enable enhanced networking (only while the instance is stopped; from its next start).
    #[arg(long, conflicts_with = "no_ena_support")]
    pub ena_support: bool,

    /// Disable enhanced networking (only while the instance is stopped).
    #[arg(long)]
    pub no_ena_support: bool,
}

/// Arguments of `modify-instance-metadata-options`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("option")
        .required(true)
        .multiple(true)
        .args(["http_tokens", "http_put_response_hop_limit", "http_endpoint",
               "instance_metadata_tags", "http_protocol_ipv6"])
))]
pub struct ModifyInstanceMetadataOptions {
    /// The instance.
    #[arg(long)]
    pub instance_id: String,

    /// Whether IMDSv2 session tokens are required.
    #[arg(long, value_parser = ["optional", "required"])]
    pub http_tokens: Option<String>,

    /// IP hop limit of the token response (1-64).
    #[arg(long)]
    pub http_put_response_hop_limit: Option<i32>,

    /// Turn the metadata service on or off for the instance.
    #[arg(long, value_parser = ["enabled", "disabled"])]
    pub http_endpoint: Option<String>,

    /// Whether the instance's tags show in the metadata.
    #[arg(long, value_parser = ["enabled", "disabled"])]
    pub instance_metadata_tags: Option<String>,

    /// Whether the metadata service also answers on [fd00:ec2::254].
    #[arg(long, value_parser = ["enabled", "disabled"])]
    pub http_protocol_ipv6: Option<String>,
}

/// Arguments of `describe-instance-types`.
#[derive(Debug, Args)]
pub struct DescribeInstanceTypes {
    /// Only these types.
    #[arg(long, num_args = 1..)]
    pub instance_types: Vec<String>,
}

/// Arguments of `get-console-output`.
#[derive(Debug, Args)]
pub struct GetConsoleOutput {
    /// The instance.
    #[arg(long)]
    pub instance_id: String,
}

/// Arguments of `console`.
#[derive(Debug, Args)]
pub struct Console {
    /// The instance whose console to open.
    #[arg(
        value_name = "INSTANCE_ID",
        required_unless_present = "instance_id",
        conflicts_with = "instance_id"
    )]
    pub instance: Option<String>,
    /// The instance, as a flag (the same as the positional argument).
    #[arg(long)]
    pub instance_id: Option<String>,
}

impl Console {
    /// The instance named either way.
    pub fn id(&self) -> String {
        self.instance
            .clone()
            .or_else(|| self.instance_id.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("strato").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn run_instances_with_everything() {
        let command = parse(&[
            "run-instances",
            "--image-id",
            "ami-1",
            "--count",
            "2:3",
            "--security-group-ids",
            "sg-1",
            "sg-2",
            "--placement",
            "AvailabilityZone=az1",
            "--block-device-mappings",
            r#"[{"DeviceName":"/dev/vdb","Ebs":{"VolumeSize":1}}]"#,
            "--tags",
            "Key=a,Value=b",
            "Key=c,Value=d",
            "--disable-api-termination",
            "--wait",
        ])
        .unwrap();
        let Command::RunInstances(run) = command else {
            panic!("wrong command");
        };
        assert_eq!((run.count.min, run.count.max), (2, 3));
        assert_eq!(run.security_group_ids, ["sg-1", "sg-2"]);
        assert_eq!(crate::parse::flatten(run.tags).len(), 2);
        assert!(run.disable_api_termination && run.wait.wait);
        assert_eq!(run.wait.wait_timeout, 600);
    }

    #[test]
    fn modify_instance_attribute_sets_only_what_is_given() {
        let command = parse(&[
            "modify-instance-attribute",
            "--instance-id",
            "i-1",
            "--no-disable-api-termination",
        ])
        .unwrap();
        let Command::ModifyInstanceAttribute(modify) = command else {
            panic!("wrong command");
        };
        assert!(modify.no_disable_api_termination && !modify.disable_api_termination);
        assert_eq!(modify.instance_initiated_shutdown_behavior, None);
    }

    #[test]
    fn console_takes_the_instance_either_way() {
        for args in [
            &["console", "i-1"][..],
            &["console", "--instance-id", "i-1"],
        ] {
            let Command::Console(c) = parse(args).unwrap() else {
                panic!("wrong command");
            };
            assert_eq!(c.id(), "i-1");
        }
        assert!(parse(&["console"]).is_err());
        assert!(parse(&["console", "i-1", "--instance-id", "i-2"]).is_err());
    }

    #[test]
    fn malformed_arguments_are_usage_errors() {
        for args in [
            &["run-instances", "--image-id", "a", "--count", "0"][..],
            &["run-instances", "--image-id", "a", "--placement", "Zone=x"],
            &[
                "run-instances",
                "--image-id",
                "a",
                "--block-device-mappings",
                "[{",
            ],
            &[
                "run-instances",
                "--image-id",
                "a",
                "--instance-initiated-shutdown-behavior",
                "x",
            ],
            &[
                "run-instances",
                "--image-id",
                "a",
                "--disable-api-termination",
                "--enable-api-termination",
            ],
            &["describe-instances", "--filters", "Name=x"],
            &["stop-instances"],
            &["modify-instance-attribute", "--instance-id", "i-1"],
            &[
                "modify-instance-attribute",
                "--instance-id",
                "i-1",
                "--disable-api-termination",
                "--no-disable-api-termination",
            ],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
