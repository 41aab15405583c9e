//! Arguments of the instance role and instance profile commands.

use clap::Args;
use strato_proto::v1::Filter;

use crate::parse::{self, Many};

/// Arguments of `create-role`.
#[derive(Debug, Args)]
pub struct CreateRole {
    /// The role's name (1 to 64 of letters, digits and +=,.@_-).
    #[arg(long)]
    pub role_name: String,

    /// Allowed actions, e.g. `ec2:Describe*` (`*` wildcards; `*` alone allows everything).
    #[arg(long, required = true, num_args = 1..)]
    pub actions: Vec<String>,
}

/// Arguments of `delete-role`.
#[derive(Debug, Args)]
pub struct DeleteRole {
    /// The role's name.
    #[arg(long)]
    pub role_name: String,
}

/// Arguments of `create-instance-profile`.
#[derive(Debug, Args)]
pub struct CreateInstanceProfile {
    /// The profile's name.
    #[arg(long)]
    pub instance_profile_name: String,

    /// The role it names (of the same account).
    #[arg(long)]
    pub role_name: String,
}

/// Arguments of `delete-instance-profile`.
#[derive(Debug, Args)]
pub struct DeleteInstanceProfile {
    /// The profile's name.
    #[arg(long)]
    pub instance_profile_name: String,
}

/// Arguments of `associate-iam-instance-profile`.
#[derive(Debug, Args)]
pub struct AssociateIamInstanceProfile {
    /// The instance (running or stopped, without a profile).
    #[arg(long)]
    pub instance_id: String,

    /// A profile of the account: its name, its ARN, or `Name=…` / `Arn=…` as the aws CLI
    /// writes it.
    #[arg(long)]
    pub iam_instance_profile: String,
}

/// Arguments of `replace-iam-instance-profile-association`.
#[derive(Debug, Args)]
pub struct ReplaceIamInstanceProfileAssociation {
    /// The association (`iip-assoc-…`).
    #[arg(long)]
    pub association_id: String,

    /// The new profile: its name, its ARN, or `Name=…` / `Arn=…`.
    #[arg(long)]
    pub iam_instance_profile: String,
}

/// Arguments of `disassociate-iam-instance-profile`.
#[derive(Debug, Args)]
pub struct DisassociateIamInstanceProfile {
    /// The association (`iip-assoc-…`).
    #[arg(long)]
    pub association_id: String,
}

/// Arguments of `describe-iam-instance-profile-associations`.
#[derive(Debug, Args)]
pub struct DescribeIamInstanceProfileAssociations {
    /// Only these associations.
    #[arg(long, num_args = 1..)]
    pub association_ids: Vec<String>,

    /// Filters: instance-id, state.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,
}

/// The profile an `--iam-instance-profile` names: `Name=x` and `Arn=y` (the aws CLI's
/// shorthand) or the bare name or ARN.
pub fn profile_spec(s: &str) -> String {
    s.strip_prefix("Name=")
        .or_else(|| s.strip_prefix("Arn="))
        .unwrap_or(s)
        .to_string()
}
