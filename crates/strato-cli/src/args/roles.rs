//! Arguments of the instance role and instance profile commands.

use clap::Args;

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
