//! Arguments of the region, availability zone and placement group commands.

use clap::{ArgGroup, Args};
use strato_proto::v1::Filter;

use crate::parse::{self, Many, TagSpecification};

/// Arguments of `describe-regions`.
#[derive(Debug, Args)]
pub struct DescribeRegions {
    /// Only these regions.
    #[arg(long, num_args = 1..)]
    pub region_names: Vec<String>,

    /// Filters, e.g. Name=region-name,Values=home-*.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,

    /// Accepted for compatibility; every known region is always listed.
    #[arg(long)]
    pub all_regions: bool,
}

/// Arguments of `describe-hosts`.
#[derive(Debug, Args)]
pub struct DescribeHosts {
    /// Only these hosts, by name.
    #[arg(long, num_args = 1..)]
    pub host_ids: Vec<String>,
}

/// Arguments of `describe-availability-zones`.
#[derive(Debug, Args)]
pub struct DescribeAvailabilityZones {
    /// Only these zones, by name.
    #[arg(long, num_args = 1..)]
    pub zone_names: Vec<String>,

    /// Only these zones, by ID (e.g. home-1-az1).
    #[arg(long, num_args = 1..)]
    pub zone_ids: Vec<String>,

    /// Filters, e.g. Name=zone-name,Values=home-1a.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,

    /// Accepted for compatibility; every zone is always listed.
    #[arg(long)]
    pub all_availability_zones: bool,
}

/// Arguments of `create-placement-group`.
#[derive(Debug, Args)]
pub struct CreatePlacementGroup {
    /// The group's name, unique in the account.
    #[arg(long)]
    pub group_name: String,

    /// cluster, spread or partition.
    #[arg(long)]
    pub strategy: Option<String>,

    /// Partition groups: 1 to 7 partitions (default 2).
    #[arg(long)]
    pub partition_count: Option<i32>,

    /// Spread groups: rack (the only level on this host).
    #[arg(long)]
    pub spread_level: Option<String>,

    /// ResourceType=placement-group,Tags=[{Key=k,Value=v}].
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,
}

/// Arguments of `describe-placement-groups`.
#[derive(Debug, Args)]
pub struct DescribePlacementGroups {
    /// Only these groups, by name.
    #[arg(long, num_args = 1..)]
    pub group_names: Vec<String>,

    /// Only these groups, by ID.
    #[arg(long, num_args = 1..)]
    pub group_ids: Vec<String>,

    /// Filters, e.g. Name=strategy,Values=spread.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,
}

/// Arguments of `delete-placement-group`.
#[derive(Debug, Args)]
pub struct DeletePlacementGroup {
    /// The group to delete.
    #[arg(long)]
    pub group_name: String,
}

/// Arguments of `modify-instance-placement`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("group").required(true).args(["group_name", "group_id"])))]
pub struct ModifyInstancePlacement {
    /// The instance (it must be stopped).
    #[arg(long)]
    pub instance_id: String,

    /// The group to move it into; "" takes it out of its group.
    #[arg(long)]
    pub group_name: Option<String>,

    /// The group to move it into, by ID.
    #[arg(long)]
    pub group_id: Option<String>,

    /// Partition groups: the partition (default: the least-loaded one).
    #[arg(long)]
    pub partition_number: Option<i32>,
}
