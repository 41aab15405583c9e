//! Plain aligned tables: a header row and one row per resource, columns padded to their
//! widest cell and separated by two spaces. Empty cells show as `-` so that columns
//! stay easy to read and to split with `awk`.

use strato_proto::v1::{InstanceState, StatusSummary, Tag, Volume};

use super::View;
use crate::time::format_rfc3339;

/// A table under construction.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and no rows.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; empty cells print as `-`.
    pub fn row(&mut self, cells: Vec<String>) {
        let cells = cells
            .into_iter()
            .map(|c| if c.is_empty() { "-".to_owned() } else { c })
            .collect();
        self.rows.push(cells);
    }

    /// The table as text, one line per row, without trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header = self
            .headers
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().take(columns).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(&" ".repeat(pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Renders `view` as a table (or a bare ID for commands that return one).
pub fn render(view: &View) -> String {
    match view {
        View::Empty => String::new(),
        View::Reservation(r) => instances(&r.instances),
        View::Instances(list) => instances(list),
        View::StateChanges(_, changes) => {
            let mut t = Table::new(&["INSTANCE", "PREVIOUS", "CURRENT"]);
            for c in changes {
                t.row(vec![
                    c.instance_id.clone(),
                    state(c.previous_state.as_ref()),
                    state(c.current_state.as_ref()),
                ]);
            }
            t.render()
        }
        View::InstanceStatuses(statuses) => {
            let mut t = Table::new(&["INSTANCE", "AZ", "STATE", "SYSTEM", "INSTANCE STATUS"]);
            for s in statuses {
                t.row(vec![
                    s.instance_id.clone(),
                    s.availability_zone.clone(),
                    state(s.instance_state.as_ref()),
                    summary(s.system_status.as_ref()),
                    summary(s.instance_status.as_ref()),
                ]);
            }
            t.render()
        }
        View::InstanceTypes(types) => {
            let mut t = Table::new(&["TYPE", "VCPUS", "MEMORY MIB", "INSTANCE STORE GIB"]);
            for it in types {
                t.row(vec![
                    it.instance_type.clone(),
                    it.vcpus.to_string(),
                    it.memory_mib.to_string(),
                    it.instance_store_gib.to_string(),
                ]);
            }
            // Any other shape is a custom size (the daemon's limits: 1-8 vCPUs, 32 MiB to
            // 64 GiB); the JSON keeps EC2's shape, a list of real types only.
            t.row(vec![
                "custom-<vcpus>-<MiB>".into(),
                "1-8".into(),
                "32-65536".into(),
                "0".into(),
            ]);
            t.render()
        }
        View::ConsoleOutput(c) => String::from_utf8_lossy(&c.output).into_owned(),
        View::ImageId(id) => format!("{id}\n"),
        View::Images(images) => {
            let mut t = Table::new(&["IMAGE", "NAME", "STATE", "OWNER", "PUBLIC", "CREATED"]);
            for i in images {
                let state = if i.state == "pending" {
                    format!("pending ({}%)", i.progress)
                } else {
                    i.state.clone()
                };
                t.row(vec![
                    i.image_id.clone(),
                    i.name.clone(),
                    state,
                    i.owner_id.clone(),
                    i.public.to_string(),
                    time(i.creation_time_unix),
                ]);
            }
            t.render()
        }
        View::LaunchPermissions(a) => {
            let mut t = Table::new(&["IMAGE", "PERMISSION", "VALUE"]);
            for p in &a.launch_permissions {
                let (kind, value) = if p.group.is_empty() {
                    ("user", &p.user_id)
                } else {
                    ("group", &p.group)
                };
                t.row(vec![a.image_id.clone(), kind.to_owned(), value.clone()]);
            }
            t.render()
        }
        View::Volume(v) => volumes(std::slice::from_ref(v)),
        View::Volumes(list) => volumes(list),
        View::Attachment(a) => {
            let mut t = Table::new(&["VOLUME", "INSTANCE", "DEVICE", "STATE"]);
            t.row(vec![
                a.volume_id.clone(),
                a.instance_id.clone(),
                a.device.clone(),
                a.state.clone(),
            ]);
            t.render()
        }
        View::Snapshot(s) => snapshots(std::slice::from_ref(s)),
        View::Snapshots(list) => snapshots(list),
        View::Control(v) => super::control::table(v),
        View::Network(v) => super::network::table(v),
        View::SecurityGroups(v) => super::security_groups::table(v),
        View::Usage(records) => {
            let mut t = Table::new(&["RESOURCE", "TYPE", "KIND", "SECONDS", "GIB-SECONDS"]);
            for r in records {
                t.row(vec![
                    r.resource_id.clone(),
                    r.resource_type.clone(),
                    r.kind.clone(),
                    r.seconds.to_string(),
                    r.gib_seconds.to_string(),
                ]);
            }
            t.render()
        }
    }
}

fn instances(list: &[strato_proto::v1::Instance]) -> String {
    let mut t = Table::new(&[
        "INSTANCE",
        "NAME",
        "STATE",
        "TYPE",
        "PRIVATE IP",
        "AMI",
        "AZ",
        "LAUNCHED",
    ]);
    for i in list {
        t.row(vec![
            i.instance_id.clone(),
            name_tag(&i.tags),
            state(i.state.as_ref()),
            i.instance_type.clone(),
            i.private_ip_address.clone(),
            i.image_id.clone(),
            i.placement
                .as_ref()
                .map(|p| p.availability_zone.clone())
                .unwrap_or_default(),
            time(i.launch_time_unix),
        ]);
    }
    t.render()
}

fn volumes(list: &[Volume]) -> String {
    let mut t = Table::new(&[
        "VOLUME", "SIZE", "TYPE", "STATE", "AZ", "SNAPSHOT", "ATTACHED", "CREATED",
    ]);
    for v in list {
        let attached = v
            .attachments
            .iter()
            .map(|a| format!("{}:{}", a.instance_id, a.device))
            .collect::<Vec<_>>()
            .join(",");
        t.row(vec![
            v.volume_id.clone(),
            format!("{} GiB", v.size),
            v.volume_type.clone(),
            v.state.clone(),
            v.availability_zone.clone(),
            v.snapshot_id.clone(),
            attached,
            time(v.create_time_unix),
        ]);
    }
    t.render()
}

fn snapshots(list: &[strato_proto::v1::Snapshot]) -> String {
    let mut t = Table::new(&[
        "SNAPSHOT",
        "VOLUME",
        "SIZE",
        "STATE",
        "PROGRESS",
        "STARTED",
        "DESCRIPTION",
    ]);
    for s in list {
        t.row(vec![
            s.snapshot_id.clone(),
            s.volume_id.clone(),
            format!("{} GiB", s.volume_size),
            s.state.clone(),
            s.progress.clone(),
            time(s.start_time_unix),
            s.description.clone(),
        ]);
    }
    t.render()
}

fn state(s: Option<&InstanceState>) -> String {
    s.map(|s| s.name.clone()).unwrap_or_default()
}

fn summary(s: Option<&StatusSummary>) -> String {
    s.map(|s| s.status.clone()).unwrap_or_default()
}

fn name_tag(tags: &[Tag]) -> String {
    tags.iter()
        .find(|t| t.key == "Name")
        .map(|t| t.value.clone())
        .unwrap_or_default()
}

pub(super) fn time(unix: i64) -> String {
    if unix == 0 {
        String::new()
    } else {
        format_rfc3339(unix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strato_proto::v1::{Instance, Placement, VolumeAttachment};

    #[test]
    fn aligns_columns_and_marks_empty_cells() {
        let mut t = Table::new(&["ID", "STATE", "NOTE"]);
        t.row(vec!["i-1".into(), "running".into(), "x".into()]);
        t.row(vec!["i-000002".into(), String::new(), String::new()]);
        assert_eq!(
            t.render(),
            "ID        STATE    NOTE\n\
             i-1       running  x\n\
             i-000002  -        -\n"
        );
    }

    #[test]
    fn aligns_by_characters_not_bytes() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["héllo".into(), "1".into()]);
        t.row(vec!["x".into(), "2".into()]);
        assert_eq!(t.render(), "A      B\nhéllo  1\nx      2\n");
    }

    #[test]
    fn instance_types_end_with_the_custom_form() {
        let out = render(&View::InstanceTypes(vec![
            strato_proto::v1::InstanceTypeInfo {
                instance_type: "t3.micro".into(),
                vcpus: 2,
                memory_mib: 1024,
                instance_store_gib: 0,
            },
        ]));
        let last = out.lines().last().unwrap();
        assert!(last.starts_with("custom-<vcpus>-<MiB>"), "{out}");
        assert!(last.contains("1-8") && last.contains("32-65536"), "{out}");
    }

    #[test]
    fn header_only_when_empty() {
        assert_eq!(render(&View::Instances(Vec::new())).lines().count(), 1);
    }

    #[test]
    fn instance_rows() {
        let out = render(&View::Instances(vec![Instance {
            instance_id: "i-0123456789abcdef0".into(),
            state: Some(InstanceState {
                code: 16,
                name: "running".into(),
            }),
            instance_type: "t3.micro".into(),
            private_ip_address: "10.0.0.5".into(),
            image_id: "ami-1".into(),
            placement: Some(Placement {
                availability_zone: "strato-1a".into(),
                ..Default::default()
            }),
            launch_time_unix: 1_714_564_800,
            ..Default::default()
        }]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "i-0123456789abcdef0",
                "-",
                "running",
                "t3.micro",
                "10.0.0.5",
                "ami-1",
                "strato-1a",
                "2024-05-01T12:00:00Z"
            ]
        );
        // The STATE column starts at the same offset in the header and the row.
        assert_eq!(lines[0].find("STATE"), lines[1].find("running"));
    }

    #[test]
    fn volume_attachments_in_one_cell() {
        let out = render(&View::Volume(Volume {
            volume_id: "vol-1".into(),
            size: 8,
            state: "in-use".into(),
            attachments: vec![VolumeAttachment {
                instance_id: "i-1".into(),
                device: "/dev/vdb".into(),
                ..Default::default()
            }],
            ..Default::default()
        }));
        assert!(
            out.lines().nth(1).unwrap().contains("i-1:/dev/vdb"),
            "{out}"
        );
    }
}
