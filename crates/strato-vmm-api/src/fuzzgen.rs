//! Structured fuzz input for the monitor's control socket and configuration, and the checks
//! a case makes beyond "no panic". The `fuzz/` targets call [`control`] and [`config`] with
//! libFuzzer's bytes; the unit tests call them with seeded random bytes.
//!
//! - [`control`]: request lines built from every op with random arguments, encoded as the
//!   daemon encodes them and rarely mangled; a valid line decodes to the request it came
//!   from. Reply lines (as a compromised monitor might send the daemon) decode or are
//!   refused, never panic.
//! - [`config`]: a full configuration (drives, interfaces, jail, SMBIOS) as JSON, with
//!   random values swapped into random fields, keys dropped or unknown ones added; whatever
//!   [`VmConfig::from_json`] accepts passes [`VmConfig::validate`] and survives a round trip.

use serde_json::{json, Value};
use strato_fuzzgen::{alloc, Source};

use crate::config::VmConfig;
use crate::control::{
    decode_reply, ConsoleChunk, Counters, InputAccepted, Lab, Request, StateOnly, StateReply,
    MAX_REQUEST,
};

/// The most one case may hold beyond its start: a line is at most 64 KiB; its JSON tree
/// and the harness's copies a few times that.
pub const MEMORY_BOUND: usize = 2 << 20;

fn text(src: &mut Source<'_>, max: usize) -> String {
    let n = src.below(max as u64 + 1) as usize;
    if src.rarely() {
        return String::from_utf8_lossy(src.bytes(n)).into_owned();
    }
    (0..n)
        .map(|_| {
            char::from(
                *src.pick(b"abcdefghijklmnopqrstuvwxyz0123456789-_/.")
                    .unwrap_or(&b'a'),
            )
        })
        .collect()
}

fn request(src: &mut Source<'_>) -> Request {
    match src.below(13) {
        0 => Request::State {},
        1 => Request::Counters {},
        2 => Request::Pause {},
        3 => Request::Resume {},
        4 => Request::CtrlAltDel {},
        5 => Request::Stop {},
        6 => Request::AttachDrive {
            id: text(src, 24),
            path: if src.bool() {
                Some(text(src, 64).into())
            } else {
                None
            },
            readonly: src.bool(),
        },
        7 => Request::DetachDrive { id: text(src, 24) },
        8 => Request::Console {
            from: if src.bool() { Some(src.u64()) } else { None },
        },
        9 => {
            let max = if src.rarely() { 4096 } else { 64 };
            let n = src.below(max) as usize;
            Request::ConsoleInput {
                data: src.bytes(n).to_vec(),
            }
        }
        10 => Request::ConsoleBreak {},
        11 => Request::Lab {},
        _ => Request::PowerButton {},
    }
}

/// Rarely breaks `buf`: flips a byte, cuts it, inserts one.
fn mangle(src: &mut Source<'_>, buf: &mut Vec<u8>) -> bool {
    if !src.rarely() || buf.is_empty() {
        return false;
    }
    let at = src.below(buf.len() as u64) as usize;
    match src.below(3) {
        0 => buf[at] ^= src.u8() | 1,
        1 => buf.truncate(at),
        _ => buf.insert(at, src.u8()),
    }
    true
}

/// Runs one control-socket case: request lines as the monitor parses them, reply lines as
/// the daemon reads them.
pub fn control(data: &[u8]) {
    alloc::bounded("control lines", MEMORY_BOUND, || {
        control_case(&mut Source::new(data))
    });
}

fn control_case(src: &mut Source<'_>) {
    for _ in 0..1 + src.below(4) {
        let (line, want) = request_line(src);
        let got = serde_json::from_slice::<Request>(&line);
        if let Some(want) = want {
            assert_eq!(got.ok().as_ref(), Some(&want), "a valid request line");
        }
        reply_line(src);
    }
}

/// A request line and, when it was left valid, the request it encodes.
pub fn request_line(src: &mut Source<'_>) -> (Vec<u8>, Option<Request>) {
    if src.rarely() {
        let n = src.below(MAX_REQUEST as u64) as usize;
        return (src.bytes(n).to_vec(), None);
    }
    let req = request(src);
    let mut line = req.encode().into_bytes();
    if src.rarely() {
        // An unknown field or op.
        let extra = if src.bool() {
            r#","extra":1}"#
        } else {
            r#","op":"reboot"}"#
        };
        line.pop();
        line.extend_from_slice(extra.as_bytes());
        return (line, None);
    }
    let mangled = mangle(src, &mut line);
    (line, (!mangled).then_some(req))
}

fn reply_line(src: &mut Source<'_>) {
    let ok = !src.rarely();
    let mut v = match src.below(5) {
        0 => {
            json!({"state": *src.pick(&["created", "running", "paused", "exited", "gone"]).unwrap_or(&"running"),
                    "uptime_ms": src.u64(), "vcpus": src.u8(), "memory_mib": src.u32()})
        }
        1 => json!({"state": "paused"}),
        2 => json!({"exits": {text(src, 8): src.u64()}, "devices": {}}),
        3 => json!({"data": text(src, 32), "start": src.u64(), "next": src.u64()}),
        _ => json!({"accepted": src.u32()}),
    };
    if let Value::Object(m) = &mut v {
        m.insert("ok".into(), Value::Bool(ok));
        if !ok {
            m.insert("error".into(), Value::String(text(src, 40)));
        }
    }
    let mut line = v.to_string().into_bytes();
    mangle(src, &mut line);
    let line = String::from_utf8_lossy(&line);
    let _ = decode_reply::<StateReply>(&line);
    let _ = decode_reply::<StateOnly>(&line);
    let _ = decode_reply::<Counters>(&line);
    let _ = decode_reply::<Lab>(&line);
    let _ = decode_reply::<ConsoleChunk>(&line);
    let _ = decode_reply::<InputAccepted>(&line);
}

/// A full, valid configuration as JSON.
fn base_config(src: &mut Source<'_>) -> Value {
    let mut disks = Vec::new();
    for i in 0..src.below(4) {
        disks.push(
            json!({"id": format!("vol{i}"), "path": format!("/d/{i}.img"), "readonly": src.bool()}),
        );
    }
    let mut nets = Vec::new();
    for i in 0..src.below(3) {
        let mut net = json!({"id": format!("eni{i}"), "fd": 10 + i, "mac": format!("02:00:00:00:00:{i:02x}")});
        // Enhanced, with a descriptor per further queue pair of a multiqueue tap.
        if src.bool() {
            let queue_fds: Vec<u64> = (0..src.below(4)).map(|k| 20 + 10 * i + k).collect();
            net["enhanced"] = json!(true);
            net["queue_pairs"] = json!(1 + queue_fds.len());
            net["queue_fds"] = json!(queue_fds);
        }
        nets.push(net);
    }
    json!({
        "kernel": "/boot/vmlinux",
        "cmdline": "console=ttyS0",
        "cpus": src.range(1, 4),
        "memory_mib": 128,
        "disks": disks,
        "nets": nets,
        "rng": src.bool(),
        "console_fd": 5,
        "api_socket_fd": 6,
        "kvm_fd": 7,
        "exit_status_fd": 8,
        "smbios": {"product": "strato", "serial": "i-0123456789abcdef0",
                   "uuid": "12345678-1234-5678-9abc-123456789abc"},
        "jail": {"uid": 100000, "gid": 100000, "max_open_files": 2048, "mount_ns_fd": 9},
    })
}

fn random_value(src: &mut Source<'_>) -> Value {
    match src.below(7) {
        0 => Value::Null,
        1 => Value::Bool(src.bool()),
        2 => json!(src.u64() >> src.below(64)),
        3 => json!(-(src.u32() as i64)),
        4 => Value::String(text(src, 40)),
        5 => json!([random_leaf(src)]),
        _ => json!({text(src, 8): random_leaf(src)}),
    }
}

fn random_leaf(src: &mut Source<'_>) -> Value {
    match src.below(3) {
        0 => Value::Null,
        1 => json!(src.u32()),
        _ => Value::String(text(src, 16)),
    }
}

/// Swaps a random value into a random place of the tree (or drops or adds a key there).
fn mutate(src: &mut Source<'_>, v: &mut Value) {
    match v {
        Value::Object(map) if !map.is_empty() && !src.rarely() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = src.pick(&keys).cloned().unwrap_or_default();
            match src.below(6) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(text(src, 12), random_value(src));
                }
                2 | 3 => {
                    if let Some(child) = map.get_mut(&key) {
                        mutate(src, child);
                    }
                }
                _ => {
                    map.insert(key, random_value(src));
                }
            }
        }
        Value::Array(items) if !items.is_empty() && !src.rarely() => {
            let i = src.below(items.len() as u64) as usize;
            if src.bool() {
                mutate(src, &mut items[i]);
            } else {
                let copy = items[i].clone();
                items.push(copy);
            }
        }
        _ => *v = random_value(src),
    }
}

/// Runs one configuration case.
pub fn config(data: &[u8]) {
    alloc::bounded("config", MEMORY_BOUND, || {
        config_case(&mut Source::new(data))
    });
}

fn config_case(src: &mut Source<'_>) {
    let text = if src.rarely() {
        String::from_utf8_lossy(src.rest()).into_owned()
    } else {
        let mut v = base_config(src);
        for _ in 0..src.below(4) {
            mutate(src, &mut v);
        }
        v.to_string()
    };
    let Ok(cfg) = VmConfig::from_json(&text) else {
        return;
    };
    if let Err(e) = cfg.validate() {
        panic!("an accepted configuration fails its checks: {e}");
    }
    let _ = cfg.named_fds();
    let again = serde_json::to_string(&cfg).unwrap_or_else(|e| panic!("serialising: {e}"));
    match VmConfig::from_json(&again) {
        Ok(back) => assert_eq!(back, cfg, "the configuration changed in a round trip"),
        Err(e) => panic!("an accepted configuration is refused once serialised: {e}"),
    }
}

/// Parses exit records as the daemon reads them from a monitor's file.
pub fn exit_record(src: &mut Source<'_>) {
    let v = json!({"code": src.u32() as i32, "reason": text(src, 40)});
    let mut line = v.to_string().into_bytes();
    mangle(src, &mut line);
    if let Ok(r) = serde_json::from_slice::<crate::exit::ExitRecord>(&line) {
        let _ = r.status();
    }
}

#[cfg(test)]
mod tests {
    use strato_fuzzgen::{property, Source};

    #[test]
    fn control_line_properties() {
        property("control", 400, 1024, super::control);
    }

    #[test]
    fn config_properties() {
        property("config", 400, 512, super::config);
        property("exit-record", 200, 64, |b| {
            super::exit_record(&mut Source::new(b))
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        let cfg = r#"{"kernel":"/k","surprise":1}"#;
        assert!(crate::config::VmConfig::from_json(cfg).is_err());
    }
}
