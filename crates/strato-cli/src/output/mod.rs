//! What a command prints: each command returns a [`View`] of its result, and this module
//! renders it as an aligned table or as the AWS CLI's JSON shape.

mod json;
mod table;

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
}

/// Writes `view` to `out` in `format`.
pub fn write(view: &View, format: Format, out: &mut impl Write) -> io::Result<()> {
    match (format, view) {
        (_, View::Empty) => Ok(()),
        // As the AWS CLI does, the text form of console output is the raw console bytes.
        (Format::Table, View::ConsoleOutput(console)) => out.write_all(&console.output),
        (Format::Table, view) => out.write_all(table::render(view).as_bytes()),
        (Format::Json, view) => {
            let value = json::render(view);
            // Four-space indentation, as the AWS CLI prints.
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
            serde::Serialize::serialize(&value, &mut serializer).map_err(io::Error::from)?;
            out.write_all(b"\n")
        }
    }
}
