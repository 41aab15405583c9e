//! The control socket as a hostile client drives it: request lines from
//! `strato_vmm_api::fuzzgen` (valid, rarely mangled, rarely raw bytes, blank lines, a last
//! line without its newline, more than [`MAX_REQUEST`] bytes), written into a real Unix
//! stream socket and served by [`Connection::service`].
//!
//! Checks: every valid request line reaches the handler as the request it encodes, in order;
//! every reply line is a JSON object with a boolean `ok`; there are never more replies than
//! lines; what the connection holds stays bounded.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use serde_json::Value;
use strato_fuzzgen::{alloc, Source};
use strato_vmm_api::control::{Reply, Request, MAX_REQUEST};
use strato_vmm_api::fuzzgen::request_line;

use crate::api::{ConnState, Connection, Handler};

/// The most one case may hold beyond its start: the connection's buffer (a line of at most
/// 64 KiB plus one read), the lines and replies the harness keeps.
pub const MEMORY_BOUND: usize = 1 << 20;

struct Recorder(Vec<Request>, bool);

impl Handler for Recorder {
    fn handle(&mut self, req: Request, _fds: Vec<OwnedFd>) -> Result<Reply, String> {
        self.0.push(req);
        if self.1 {
            Err("refused by the harness".into())
        } else {
            Ok(Reply::Done)
        }
    }
}

/// Runs one case.
pub fn control_socket(data: &[u8]) {
    alloc::bounded("control socket", MEMORY_BOUND, || {
        case(&mut Source::new(data))
    });
}

fn case(src: &mut Source<'_>) {
    let (mut client, server) = UnixStream::pair().unwrap_or_else(|e| panic!("socketpair: {e}"));
    let mut conn = Connection::new(server).unwrap_or_else(|e| panic!("connection: {e}"));
    let mut sent = Vec::new();
    let mut valid = Vec::new();
    let mut lines = 0usize;
    for _ in 0..1 + src.below(6) {
        let (line, want) = request_line(src);
        if line.contains(&b'\n') {
            // A line with a newline inside is several lines: none of them is checked.
            lines += line.iter().filter(|&&b| b == b'\n').count();
        } else if let Some(w) = want {
            valid.push(w);
        }
        sent.extend_from_slice(&line);
        lines += 1;
        if src.rarely() {
            sent.extend_from_slice(b"\n \r\t\n");
        }
        sent.push(b'\n');
    }
    if src.rarely() {
        // Past the longest line.
        sent.resize(
            sent.len() + MAX_REQUEST + 1 + src.below(4096) as usize,
            b'x',
        );
        lines += 1;
    }
    let last_unterminated = src.rarely();
    if last_unterminated {
        sent.pop();
    }
    // Replies are read as they come, as a client that waits for its answers does: a client
    // that stops reading is dropped once the socket's buffer is full (a second's write
    // timeout), and a few hundred lines of refusals fill it.
    let mut reader = client
        .try_clone()
        .unwrap_or_else(|e| panic!("cloning the client: {e}"));
    let replies = std::thread::spawn(move || {
        let mut replies = String::new();
        let _ = reader.read_to_string(&mut replies);
        replies
    });
    client
        .write_all(&sent)
        .unwrap_or_else(|e| panic!("writing the request: {e}"));
    if last_unterminated || src.bool() {
        let _ = client.shutdown(std::net::Shutdown::Write);
    }
    let mut handler = Recorder(Vec::new(), src.rarely());
    // Each call answers what arrived; the peer may already be gone.
    for _ in 0..3 {
        if conn.service(&mut handler) == ConnState::Closed {
            break;
        }
    }
    drop(conn);
    let replies = replies
        .join()
        .unwrap_or_else(|_| panic!("the reply reader panicked"));
    let count = replies.lines().count();
    assert!(count <= lines + 1, "{count} replies to {lines} lines");
    for r in replies.lines() {
        let v: Value = serde_json::from_str(r).unwrap_or_else(|e| panic!("reply {r:?}: {e}"));
        assert!(
            v.get("ok").is_some_and(Value::is_boolean),
            "reply without ok: {r}"
        );
    }
    // Valid requests reach the handler as they were, in order (others may come between).
    let mut got = handler.0.iter();
    for want in &valid {
        if sent.len() > MAX_REQUEST {
            break;
        }
        assert!(got.any(|g| g == want), "{want:?} never reached the handler");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_socket_properties() {
        strato_fuzzgen::property("control-socket", 300, 1024, super::control_socket);
    }

    #[test]
    fn replays_inputs_the_fuzzers_found() {
        // 138 refusals in a row, their replies unread by the harness, filled the socket
        // buffer: the connection dropped the client, as it should one that stops reading,
        // and the valid requests after them were never handled. The harness now reads.
        super::control_socket(include_bytes!(
            "../../../fuzz/found/control/state-never-handled"
        ));
    }
}
