//! The control API: a Unix stream socket carrying one JSON request per line and one JSON
//! reply per line. Requests look like `{"op": "pause"}`; every reply has `"ok"`, and
//! failures carry `"error"` with a sentence.
//!
//! | op | arguments | reply |
//! |---|---|---|
//! | `state` | | `state`, `uptime_ms`, `vcpus` |
//! | `counters` | | per-vCPU exit counts and per-device counters |
//! | `pause`, `resume`, `stop` | | `state` |
//! | `ctrl-alt-del` | | |
//! | `attach-drive` | `id`, `path`, `readonly` | |
//! | `detach-drive` | `id` | |
//! | `console` | `from` (byte position, optional) | `data` (UTF-8, lossy), `next` |

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;

/// One API request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// VM state and uptime.
    State {},
    /// Exit and device counters.
    Counters {},
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
        /// Backing file.
        path: PathBuf,
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
}

/// Carries out requests; implemented by the VMM (and by fakes in tests).
pub trait Handler {
    /// Handles one request; `Ok` values are merged into `{"ok": true, ...}`.
    fn handle(&mut self, req: Request) -> Result<Value, String>;
}

/// Parses one request line and produces the reply line (without the newline).
pub fn dispatch(line: &[u8], handler: &mut dyn Handler) -> String {
    let reply = match serde_json::from_slice::<Request>(line) {
        Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        Ok(req) => match handler.handle(req) {
            Ok(Value::Object(mut fields)) => {
                fields.insert("ok".into(), Value::Bool(true));
                Value::Object(fields)
            }
            Ok(Value::Null) => json!({"ok": true}),
            Ok(other) => json!({"ok": true, "result": other}),
            Err(e) => json!({"ok": false, "error": e}),
        },
    };
    reply.to_string()
}

/// One client connection: buffers partial lines from a nonblocking stream.
pub struct Connection {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// What reading a connection led to.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Keep it.
    Open,
    /// The peer closed it, or it broke the protocol: drop it.
    Closed,
}

impl Connection {
    /// Wraps an accepted stream (made nonblocking).
    pub fn new(stream: UnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// The stream, for epoll registration.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Reads what is available and answers every complete line.
    pub fn service(&mut self, handler: &mut dyn Handler) -> ConnState {
        let mut chunk = [0u8; 4096];
        // A client may send its request and shut down its write side at once: answer
        // what it sent before treating the end of input as a close.
        let mut eof = false;
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ConnState::Closed,
            }
            if self.buf.len() > MAX_REQUEST {
                break;
            }
        }
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let reply = dispatch(line, handler);
            if self.send(&reply).is_err() {
                return ConnState::Closed;
            }
        }
        if self.buf.len() > MAX_REQUEST {
            let _ = self.send(&json!({"ok": false, "error": "request too long"}).to_string());
            return ConnState::Closed;
        }
        if eof {
            // A last request without its newline still gets an answer.
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                let line = std::mem::take(&mut self.buf);
                let _ = self.send(&dispatch(&line, handler));
            }
            return ConnState::Closed;
        }
        ConnState::Open
    }

    fn send(&mut self, reply: &str) -> io::Result<()> {
        // Replies are small; a client that stops reading is dropped rather than waited for.
        self.stream.set_nonblocking(false)?;
        self.stream
            .set_write_timeout(Some(std::time::Duration::from_secs(1)))?;
        let r = self
            .stream
            .write_all(reply.as_bytes())
            .and_then(|_| self.stream.write_all(b"\n"));
        self.stream.set_nonblocking(true)?;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<Request>);
    impl Handler for Fake {
        fn handle(&mut self, req: Request) -> Result<Value, String> {
            self.0.push(req.clone());
            match req {
                Request::State {} => Ok(json!({"state": "running"})),
                Request::Stop {} => Err("cannot stop".into()),
                _ => Ok(Value::Null),
            }
        }
    }

    #[test]
    fn parses_and_replies() {
        let mut f = Fake(vec![]);
        let r: Value = serde_json::from_str(&dispatch(br#"{"op":"state"}"#, &mut f)).unwrap();
        assert_eq!(r, json!({"ok": true, "state": "running"}));
        let r: Value = serde_json::from_str(&dispatch(br#"{"op":"stop"}"#, &mut f)).unwrap();
        assert_eq!(r, json!({"ok": false, "error": "cannot stop"}));
        dispatch(br#"{"op":"attach-drive","id":"d1","path":"/x"}"#, &mut f);
        assert_eq!(
            f.0.last(),
            Some(&Request::AttachDrive {
                id: "d1".into(),
                path: "/x".into(),
                readonly: false
            })
        );
    }

    #[test]
    fn refuses_bad_requests() {
        let mut f = Fake(vec![]);
        for bad in [
            &b"not json"[..],
            br#"{"op":"explode"}"#,
            br#"{"op":"state","extra":1}"#,
            br#"{"op":"detach-drive"}"#,
            br#"{"op":"attach-drive","id":5,"path":"/x"}"#,
        ] {
            let r: Value = serde_json::from_str(&dispatch(bad, &mut f)).unwrap();
            assert_eq!(r["ok"], false, "{}", String::from_utf8_lossy(bad));
            assert!(r["error"].as_str().unwrap().starts_with("bad request"));
        }
        assert!(f.0.is_empty());
    }

    #[test]
    fn connection_handles_split_and_multiple_lines() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut conn = Connection::new(a).unwrap();
        let mut f = Fake(vec![]);
        b.write_all(b"{\"op\":\"pa").unwrap();
        assert_eq!(conn.service(&mut f), ConnState::Open);
        assert!(f.0.is_empty());
        b.write_all(b"use\"}\n\n{\"op\":\"resume\"}\n").unwrap();
        assert_eq!(conn.service(&mut f), ConnState::Open);
        assert_eq!(f.0, vec![Request::Pause {}, Request::Resume {}]);
        let mut out = String::new();
        b.set_read_timeout(Some(std::time::Duration::from_secs(1)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = b.read(&mut buf).unwrap();
        out.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        assert_eq!(out.lines().count(), 2);
        drop(b);
        assert_eq!(conn.service(&mut f), ConnState::Closed);
    }

    #[test]
    fn request_followed_by_shutdown_is_answered() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut conn = Connection::new(a).unwrap();
        let mut f = Fake(vec![]);
        b.write_all(b"{\"op\":\"state\"}").unwrap();
        b.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(conn.service(&mut f), ConnState::Closed);
        drop(conn);
        let mut reply = String::new();
        b.read_to_string(&mut reply).unwrap();
        assert!(reply.contains("running"), "{reply}");
    }

    #[test]
    fn oversized_request_closes() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut conn = Connection::new(a).unwrap();
        let mut f = Fake(vec![]);
        let big = vec![b'x'; MAX_REQUEST + 10];
        let writer = std::thread::spawn(move || {
            let _ = b.write_all(&big);
            b
        });
        let mut state = ConnState::Open;
        for _ in 0..200 {
            state = conn.service(&mut f);
            if state == ConnState::Closed {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(state, ConnState::Closed);
        drop(writer.join());
    }
}
