//! Arguments of the Volumes commands.

use clap::Args;
use strato_proto::v1::{Filter, Tag};

use super::Wait;
use crate::parse::{self, Many, TagSpecification};

/// Arguments of `create-volume`.
#[derive(Debug, Args)]
pub struct CreateVolume {
    /// Size in GiB (defaults to the snapshot's size with --snapshot-id).
    #[arg(long, value_name = "GIB", required_unless_present = "snapshot_id",
          value_parser = clap::value_parser!(i64).range(1..))]
    pub size: Option<i64>,

    /// The volume type, e.g. gp3.
    #[arg(long)]
    pub volume_type: Option<String>,

    /// The availability zone.
    #[arg(long)]
    pub availability_zone: Option<String>,

    /// Create the volume from this snapshot.
    #[arg(long)]
    pub snapshot_id: Option<String>,

    /// ResourceType=volume,Tags=[{Key=k,Value=v}].
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,

    /// Volume tags, e.g. Key=Name,Value=data.
    #[arg(long, num_args = 1.., value_parser = parse::tags)]
    pub tags: Vec<Many<Tag>>,
}

/// Arguments of `attach-volume`.
#[derive(Debug, Args)]
pub struct AttachVolume {
    /// The volume.
    #[arg(long)]
    pub volume_id: String,

    /// The instance to attach it to.
    #[arg(long)]
    pub instance_id: String,

    /// The device name in the guest, e.g. /dev/vdb.
    #[arg(long)]
    pub device: String,
}

/// Arguments of `detach-volume`.
#[derive(Debug, Args)]
pub struct DetachVolume {
    /// The volume.
    #[arg(long)]
    pub volume_id: String,

    /// The instance it is attached to (checked when given).
    #[arg(long)]
    pub instance_id: Option<String>,

    /// Detach even if the guest has not released the device.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of commands that act on one volume.
#[derive(Debug, Args)]
pub struct VolumeId {
    /// The volume.
    #[arg(long)]
    pub volume_id: String,
}

/// Arguments of `describe-volumes`.
#[derive(Debug, Args)]
pub struct DescribeVolumes {
    /// Only these volumes.
    #[arg(long, num_args = 1..)]
    pub volume_ids: Vec<String>,

    /// Filters, e.g. Name=status,Values=available.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,

    /// Items per API call, 5 to 1000 (the CLI follows every page).
    #[arg(long, value_parser = clap::value_parser!(i32).range(5..=1000))]
    pub page_size: Option<i32>,
}

/// Arguments of `create-snapshot`.
#[derive(Debug, Args)]
pub struct CreateSnapshot {
    /// The volume to snapshot.
    #[arg(long)]
    pub volume_id: String,

    /// A description.
    #[arg(long)]
    pub description: Option<String>,

    /// ResourceType=snapshot,Tags=[{Key=k,Value=v}].
    #[arg(long, num_args = 1.., value_parser = parse::tag_specifications)]
    pub tag_specifications: Vec<Many<TagSpecification>>,

    /// Snapshot tags, e.g. Key=Name,Value=nightly.
    #[arg(long, num_args = 1.., value_parser = parse::tags)]
    pub tags: Vec<Many<Tag>>,

    /// Wait until the snapshot is completed, showing its progress.
    #[command(flatten)]
    pub wait: Wait,
}

/// Arguments of `describe-snapshots`.
#[derive(Debug, Args)]
pub struct DescribeSnapshots {
    /// Only these snapshots.
    #[arg(long, num_args = 1..)]
    pub snapshot_ids: Vec<String>,

    /// Only snapshots owned by these accounts.
    #[arg(long, num_args = 1..)]
    pub owner_ids: Vec<String>,

    /// Filters, e.g. Name=volume-id,Values=vol-1.
    #[arg(long, num_args = 1.., value_parser = parse::filters)]
    pub filters: Vec<Many<Filter>>,

    /// Items per API call, 5 to 1000 (the CLI follows every page).
    #[arg(long, value_parser = clap::value_parser!(i32).range(5..=1000))]
    pub page_size: Option<i32>,
}

/// Arguments of commands that act on one snapshot.
#[derive(Debug, Args)]
pub struct SnapshotId {
    /// The snapshot.
    #[arg(long)]
    pub snapshot_id: String,
}

#[cfg(test)]
mod tests {
    use crate::args::Cli;
    use clap::Parser;

    #[test]
    fn create_volume_needs_a_size_or_a_snapshot() {
        let ok = |args: &[&str]| {
            Cli::try_parse_from(["strato", "create-volume"].iter().chain(args)).is_ok()
        };
        assert!(ok(&["--size", "8"]));
        assert!(ok(&["--snapshot-id", "snap-1"]));
        assert!(!ok(&[]));
        assert!(!ok(&["--size", "0"]));
        assert!(!ok(&["--size", "big"]));
    }
}
