//! Arguments of the tag commands.

use clap::Args;
use strato_proto::v1::{DeleteTag, Filter, Tag};

use crate::parse::{self, Many};

/// Arguments of `create-tags`.
#[derive(Debug, Args)]
pub struct CreateTags {
    /// The resources: instance, image, volume, snapshot, VPC, subnet, network interface,
    /// security group, Elastic IP allocation, key pair, placement group or launch template IDs.
    #[arg(long, num_args = 1.., required = true)]
    pub resources: Vec<String>,

    /// Key=k,Value=v … (shorthand or JSON).
    #[arg(long, num_args = 1.., required = true, value_parser = parse::tags)]
    pub tags: Vec<Many<Tag>>,
}

/// Arguments of `delete-tags`.
#[derive(Debug, Args)]
pub struct DeleteTags {
    /// The resources.
    #[arg(long, num_args = 1.., required = true)]
    pub resources: Vec<String>,

    /// Key=k (any value) or Key=k,Value=v (only with that value); none: every tag.
    #[arg(long, num_args = 1.., value_parser = parse::delete_tags)]
    pub tags: Vec<Many<DeleteTag>>,
}

/// Arguments of `describe-tags`.
#[derive(Debug, Args)]
pub struct DescribeTags {
    /// Filters: key, value, resource-id, resource-type.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,

    /// Items per API call, 5 to 1000 (the CLI follows every page).
    #[arg(long, value_parser = clap::value_parser!(i32).range(5..=1000))]
    pub page_size: Option<i32>,
}
