//! What a command prints: each command returns a [`View`] of its result, and this module
//! renders it as an aligned table, as the AWS CLI's JSON shape, or (with `--query`) the
//! selected part of that JSON.

mod control;
mod json;
mod network;
mod security_groups;
mod table;

pub use control::ControlView;
pub use network::NetworkView;
pub use security_groups::SecurityGroupView;

use std::io::{self, Write};

use strato_proto::v1::{
    DescribeImageAttributeResponse, GetConsoleOutputResponse, Image, Instance, InstanceStateChange,
    InstanceStatus, InstanceTypeInfo, RunInstancesResponse, Snapshot, UsageRecord, Volume,
    VolumeAttachment,
};

/// The `--output` format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table, one row per resource.
    Table,
    /// The AWS CLI's JSON shapes.
    Json,
    /// Text: with `--query`, the selected values as the AWS CLI prints them (strings bare,
    /// lists tab-separated); without, the table (create-key-pair: the private key alone).
    Text,
}

/// Which state transition a set of [`InstanceStateChange`]s reports; names the JSON list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// stop-instances
    Stopping,
    /// start-instances
    Starting,
    /// terminate-instances
    Terminating,
}

/// The result of a command, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub enum View {
    /// Nothing to print (e.g. delete-volume).
    Empty,
    /// run-instances
    Reservation(RunInstancesResponse),
    /// describe-instances
    Instances(Vec<Instance>),
    /// stop-, start- and terminate-instances
    StateChanges(Transition, Vec<InstanceStateChange>),
    /// describe-instance-status
    InstanceStatuses(Vec<InstanceStatus>),
    /// describe-instance-types
    InstanceTypes(Vec<InstanceTypeInfo>),
    /// get-console-output
    ConsoleOutput(GetConsoleOutputResponse),
    /// register-image and create-image
    ImageId(String),
    /// describe-images
    Images(Vec<Image>),
    /// describe-image-attribute
    LaunchPermissions(DescribeImageAttributeResponse),
    /// create-volume
    Volume(Volume),
    /// describe-volumes
    Volumes(Vec<Volume>),
    /// attach-volume and detach-volume
    Attachment(VolumeAttachment),
    /// create-snapshot
    Snapshot(Snapshot),
    /// describe-snapshots
    Snapshots(Vec<Snapshot>),
    /// usage
    Usage(Vec<UsageRecord>),
    /// Regions, zones, placement groups, launch templates and key pairs.
    Control(ControlView),
    /// VPCs and subnets.
    Network(NetworkView),
    /// Security groups.
    SecurityGroups(SecurityGroupView),
}

/// Writes `view` to `out` in `format`, or only the part `query` selects.
pub fn write(
    view: &View,
    format: Format,
    query: Option<&crate::query::Query>,
    out: &mut impl Write,
) -> io::Result<()> {
    if let Some(q) = query {
        if matches!(view, View::Empty) {
            return Ok(());
        }
        let selected = q.select(&json::render(view));
        return match format {
            Format::Json => write_json(&selected, out),
            Format::Table | Format::Text => out.write_all(crate::query::text(&selected).as_bytes()),
        };
    }
    match (format, view) {
        (_, View::Empty) => Ok(()),
        // As the AWS CLI does, the text form of console output is the raw console bytes.
        (Format::Table | Format::Text, View::ConsoleOutput(console)) => {
            out.write_all(&console.output)
        }
        (Format::Table | Format::Text, view) => out.write_all(table::render(view).as_bytes()),
        (Format::Json, view) => write_json(&json::render(view), out),
    }
}

fn write_json(value: &serde_json::Value, out: &mut impl Write) -> io::Result<()> {
    // Four-space indentation, as the AWS CLI prints.
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
    serde::Serialize::serialize(value, &mut serializer).map_err(io::Error::from)?;
    out.write_all(b"\n")
}
