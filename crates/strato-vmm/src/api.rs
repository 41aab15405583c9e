//! The control API's server side: a Unix stream socket carrying one JSON request per line
//! and one JSON reply per line. The requests and replies are the contract in
//! `strato_vmm_api::control`; this module reads lines from nonblocking connections and hands
//! each parsed [`Request`] to the VMM's [`Handler`].

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use strato_vmm_api::control::error_line;
pub use strato_vmm_api::control::{Reply, Request, MAX_REQUEST};

/// Carries out requests; implemented by the VMM (and by fakes in tests).
pub trait Handler {
    /// Handles one request; the reply, or the sentence saying why it was refused.
    fn handle(&mut self, req: Request) -> Result<Reply, String>;
}

/// Parses one request line and produces the reply line (without the newline).
pub fn dispatch(line: &[u8], handler: &mut dyn Handler) -> String {
    match serde_json::from_slice::<Request>(line) {
        Err(e) => error_line(&format!("bad request: {e}")),
        Ok(req) => match handler.handle(req) {
            Ok(reply) => reply.encode(),
            Err(e) => error_line(&e),
        },
    }
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
            let _ = self.send(&error_line("request too long"));
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
    use serde_json::{json, Value};
    use strato_vmm_api::control::{StateOnly, VmState};

    struct Fake(Vec<Request>);
    impl Handler for Fake {
        fn handle(&mut self, req: Request) -> Result<Reply, String> {
            self.0.push(req.clone());
            match req {
                Request::State {} => Ok(Reply::StateOnly(StateOnly {
                    state: VmState::Running,
                })),
                Request::Stop {} => Err("cannot stop".into()),
                _ => Ok(Reply::Done),
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
