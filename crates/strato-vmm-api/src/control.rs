//! The monitor's control socket: a Unix stream socket carrying one JSON request per line and
//! one JSON reply per line. A request is a [`Request`] (`{"op": "pause"}`); a reply is
//! `{"ok": true, ...fields of the op's reply}` or `{"ok": false, "error": "sentence"}`.
//!
//! | op | arguments | reply |
//! |---|---|---|
//! | `state` | | [`StateReply`] |
//! | `counters` | | [`Counters`] |
//! | `lab` | | [`Lab`] |
//! | `pause`, `resume`, `stop` | | [`StateOnly`] |
//! | `ctrl-alt-del` | | nothing |
//! | `attach-drive` | `id`, `path` or a descriptor, `readonly` | nothing |
//! | `detach-drive` | `id` | nothing |
//! | `console` | `from` (byte position, optional) | [`ConsoleChunk`] |
//! | `console-input` | `data` (base64 bytes) | [`InputAccepted`] |
//! | `console-break` | | nothing |
//! | `power-button` | | nothing |

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest request line the monitor accepts.
pub const MAX_REQUEST: usize = 64 * 1024;

/// One control request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// VM state and uptime.
    State {},
    /// Exit and device counters.
    Counters {},
    /// What a teaching lab shows: the guest physical memory map, the accesses each bus
    /// window served, each virtqueue's indexes and the monitor's boot milestones.
    Lab {},
    /// Park the vCPUs.
    Pause {},
    /// Unpark them.
    Resume {},
    /// Press Ctrl-Alt-Del on the guest's keyboard.
    CtrlAltDel {},
    /// End the VM now.
    Stop {},
    /// Put a file into an empty drive slot.
    AttachDrive {
        /// Slot ID.
        id: String,
        /// Backing file. Without it, the image is the descriptor sent with the request as
        /// `SCM_RIGHTS` ancillary data: a jailed monitor opens no paths.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
        /// Read-only.
        #[serde(default)]
        readonly: bool,
    },
    /// Empty a drive slot.
    DetachDrive {
        /// Slot ID.
        id: String,
    },
    /// Console output from byte position `from` (default: what is still buffered).
    Console {
        /// Position in the console's byte stream.
        #[serde(default)]
        from: Option<u64>,
    },
    /// Bytes for the guest's serial console, as if typed on its line.
    ConsoleInput {
        /// The bytes (base64 on the wire: terminal input need not be UTF-8).
        #[serde(with = "base64_bytes")]
        data: Vec<u8>,
    },
    /// A BREAK condition on the serial line, behind the input already queued (Linux's
    /// magic SysRq prefix on a serial console).
    ConsoleBreak {},
    /// Press the ACPI power button (a graceful shutdown request).
    PowerButton {},
}

/// Bytes as a base64 string (standard alphabet, padded).
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("data is not base64: {e}")))
    }
}

impl Request {
    /// The op's name on the wire, for messages.
    pub fn op(&self) -> &'static str {
        match self {
            Request::State {} => "state",
            Request::Counters {} => "counters",
            Request::Lab {} => "lab",
            Request::Pause {} => "pause",
            Request::Resume {} => "resume",
            Request::CtrlAltDel {} => "ctrl-alt-del",
            Request::Stop {} => "stop",
            Request::AttachDrive { .. } => "attach-drive",
            Request::DetachDrive { .. } => "detach-drive",
            Request::Console { .. } => "console",
            Request::ConsoleInput { .. } => "console-input",
            Request::ConsoleBreak {} => "console-break",
            Request::PowerButton {} => "power-button",
        }
    }

    /// The request as one line (without the newline).
    pub fn encode(&self) -> String {
        // A Request holds only strings, paths, numbers and booleans: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where the VM is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmState {
    /// Built, vCPUs not started.
    Created,
    /// vCPUs running guest code.
    Running,
    /// vCPUs parked; devices keep their state.
    Paused,
    /// Finished; the process is about to exit.
    Exited,
}

impl VmState {
    /// Lower-case name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            VmState::Created => "created",
            VmState::Running => "running",
            VmState::Paused => "paused",
            VmState::Exited => "exited",
        }
    }
}

/// Reply to `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReply {
    /// The VM's state.
    pub state: VmState,
    /// Milliseconds since the vCPUs started.
    pub uptime_ms: u64,
    /// vCPUs.
    pub vcpus: u8,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// CLOCK_MONOTONIC (ns) when the boot vCPU first entered KVM_RUN, once it has.
    #[serde(default)]
    pub first_kvm_run_monotonic_ns: Option<u64>,
}

/// Reply to `pause`, `resume` and `stop`: the state after the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateOnly {
    /// The VM's state.
    pub state: VmState,
}

/// Named counters of one vCPU or device.
pub type CounterSet = BTreeMap<String, u64>;

/// Reply to `counters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Exit counters per vCPU, in vCPU order.
    pub vcpus: Vec<CounterSet>,
    /// Counters per device, by device ID (`serial`, `i8042`, drive and interface IDs).
    pub devices: BTreeMap<String, CounterSet>,
}

/// One region of the guest physical address space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemRegion {
    /// `ram`, `mmio`, `acpi`, `smbios`, `mptable`, `boot`.
    pub kind: String,
    /// What is there (`RAM`, a device ID, `ACPI tables`...).
    pub name: String,
    /// First address.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
}

/// One window of the port-I/O or MMIO bus and the accesses (vCPU exits) it served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusWindow {
    /// `pio` or `mmio`.
    pub bus: String,
    /// The device's ID.
    pub device: String,
    /// First port or address.
    pub base: u64,
    /// Length.
    pub len: u64,
    /// Accesses served since the VM started.
    pub accesses: u64,
}

/// One virtqueue's live state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Virtqueue {
    /// The device's ID.
    pub device: String,
    /// Queue index.
    pub queue: u16,
    /// Size (descriptors).
    pub size: u16,
    /// Whether the driver set it up.
    pub ready: bool,
    /// The available ring's index: buffers the driver offered (mod 2^16).
    pub avail_idx: Option<u16>,
    /// The used ring's index: buffers the device returned (mod 2^16).
    pub used_idx: Option<u16>,
}

/// The monitor's boot milestones, CLOCK_MONOTONIC in ns (comparable across processes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootMarks {
    /// The monitor began building the VM (its configuration read, its files open).
    pub build_start_ns: Option<u64>,
    /// KVM_CREATE_VM returned.
    pub vm_created_ns: Option<u64>,
    /// Guest memory was mapped and handed to KVM.
    pub memory_mapped_ns: Option<u64>,
    /// The boot vCPU first entered KVM_RUN (the first guest instruction).
    pub first_kvm_run_ns: Option<u64>,
    /// The guest wrote its first console byte.
    pub first_console_byte_ns: Option<u64>,
}

/// Reply to `lab`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lab {
    /// The guest physical memory map, in address order.
    pub memory_map: Vec<MemRegion>,
    /// Every bus window with its access count.
    pub bus: Vec<BusWindow>,
    /// Every virtqueue.
    pub virtqueues: Vec<Virtqueue>,
    /// Boot milestones.
    pub boot: BootMarks,
}

/// Reply to `console`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleChunk {
    /// Output from the requested position on (UTF-8, invalid bytes replaced).
    pub data: String,
    /// The position after `data`, to ask from next time.
    pub next: u64,
}

/// Reply to `console-input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputAccepted {
    /// Bytes queued for the guest; the rest did not fit the input queue and were dropped.
    pub accepted: u64,
}

/// Reply to requests that answer nothing but success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// A successful reply, as the monitor's handler produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// To `state`.
    State(StateReply),
    /// To `pause`, `resume`, `stop`.
    StateOnly(StateOnly),
    /// To `counters`.
    Counters(Counters),
    /// To `lab`.
    Lab(Lab),
    /// To `console`.
    Console(ConsoleChunk),
    /// To `console-input`.
    InputAccepted(InputAccepted),
    /// To the rest.
    Done,
}

/// Why a reply line could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The monitor refused the request; its sentence.
    #[error("{0}")]
    Refused(String),
    /// The line is not a reply of the expected shape.
    #[error("malformed reply")]
    Malformed(#[source] serde_json::Error),
}

fn ok_line<T: Serialize>(fields: &T) -> String {
    let mut v = serde_json::to_value(fields).unwrap_or(Value::Null);
    match &mut v {
        Value::Object(map) => {
            map.insert("ok".into(), Value::Bool(true));
        }
        _ => v = serde_json::json!({"ok": true}),
    }
    v.to_string()
}

impl Reply {
    /// The reply line (without the newline).
    pub fn encode(&self) -> String {
        match self {
            Reply::State(r) => ok_line(r),
            Reply::StateOnly(r) => ok_line(r),
            Reply::Counters(r) => ok_line(r),
            Reply::Lab(r) => ok_line(r),
            Reply::Console(r) => ok_line(r),
            Reply::InputAccepted(r) => ok_line(r),
            Reply::Done => ok_line(&Done {}),
        }
    }
}

/// The reply line for a refused request.
pub fn error_line(message: &str) -> String {
    serde_json::json!({"ok": false, "error": message}).to_string()
}

/// Reads a reply line as `T`, or the monitor's refusal.
pub fn decode_reply<T: DeserializeOwned>(line: &str) -> Result<T, ReplyError> {
    let v: Value = serde_json::from_str(line).map_err(ReplyError::Malformed)?;
    if v.get("ok").and_then(Value::as_bool) != Some(true) {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(ReplyError::Refused(msg.to_string()));
    }
    serde_json::from_value(v).map_err(ReplyError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_on_the_wire() {
        let all = [
            Request::State {},
            Request::Counters {},
            Request::Lab {},
            Request::Pause {},
            Request::Resume {},
            Request::CtrlAltDel {},
            Request::Stop {},
            Request::AttachDrive {
                id: "slot0".into(),
                path: Some("/v/a.img".into()),
                readonly: true,
            },
            Request::DetachDrive { id: "slot0".into() },
            Request::Console { from: Some(7) },
            Request::ConsoleInput {
                data: vec![b'r', 0, 0xff, b'\n'],
            },
            Request::ConsoleBreak {},
            Request::PowerButton {},
        ];
        for r in all {
            let line = r.encode();
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["op"], r.op(), "{line}");
            let back: Request = serde_json::from_str(&line).unwrap();
            assert_eq!(back, r);
        }
        assert_eq!(Request::State {}.encode(), r#"{"op":"state"}"#);
        assert_eq!(
            Request::ConsoleInput {
                data: b"ls\n".to_vec()
            }
            .encode(),
            r#"{"op":"console-input","data":"bHMK"}"#
        );
        let bad = serde_json::from_str::<Request>(r#"{"op":"console-input","data":"%%"}"#);
        assert!(bad.unwrap_err().to_string().contains("not base64"));
        let accepted: InputAccepted =
            decode_reply(&Reply::InputAccepted(InputAccepted { accepted: 3 }).encode()).unwrap();
        assert_eq!(accepted.accepted, 3);
    }

    #[test]
    fn replies_carry_ok_and_decode_to_their_type() {
        let line = Reply::State(StateReply {
            state: VmState::Running,
            uptime_ms: 5,
            vcpus: 2,
            memory_mib: 64,
            first_kvm_run_monotonic_ns: Some(9),
        })
        .encode();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["state"], "running");
        let s: StateReply = decode_reply(&line).unwrap();
        assert_eq!((s.state, s.vcpus), (VmState::Running, 2));
        assert_eq!(Reply::Done.encode(), r#"{"ok":true}"#);
        let _: Done = decode_reply(&Reply::Done.encode()).unwrap();
        let mut c = Counters::default();
        c.devices.insert(
            "serial".into(),
            [("tx".to_string(), 3)].into_iter().collect(),
        );
        let back: Counters = decode_reply(&Reply::Counters(c.clone()).encode()).unwrap();
        assert_eq!(back, c);
        let lab = Lab {
            memory_map: vec![MemRegion {
                kind: "ram".into(),
                name: "RAM".into(),
                base: 0,
                len: 64 << 20,
            }],
            bus: vec![BusWindow {
                bus: "pio".into(),
                device: "serial".into(),
                base: 0x3f8,
                len: 8,
                accesses: 12,
            }],
            virtqueues: vec![Virtqueue {
                device: "net0".into(),
                queue: 1,
                size: 256,
                ready: true,
                avail_idx: Some(3),
                used_idx: Some(2),
            }],
            boot: BootMarks {
                vm_created_ns: Some(5),
                ..Default::default()
            },
        };
        let back: Lab = decode_reply(&Reply::Lab(lab.clone()).encode()).unwrap();
        assert_eq!(back, lab);
    }

    #[test]
    fn refusals_and_garbage_are_errors() {
        match decode_reply::<Done>(&error_line("no drive slot x")) {
            Err(ReplyError::Refused(m)) => assert_eq!(m, "no drive slot x"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_reply::<StateReply>(r#"{"ok":true}"#),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            decode_reply::<Done>("not json"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            decode_reply::<Done>(r#"{"ok":false}"#),
            Err(ReplyError::Refused(_))
        ));
    }
}
