//! The control API's server side: a Unix stream socket carrying one JSON request per line
//! and one JSON reply per line. The requests and replies are the contract in
//! `strato_vmm_api::control`; this module reads lines from nonblocking connections and hands
//! each parsed [`Request`] to the VMM's [`Handler`].
//!
//! A request may carry descriptors as `SCM_RIGHTS` ancillary data, sent with its bytes:
//! `attach-drive` without a `path` takes the drive's image that way, which is how a jailed
//! monitor (it opens no paths) gets one. Descriptors a request does not use are closed.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use strato_vmm_api::control::error_line;
pub use strato_vmm_api::control::{Reply, Request, MAX_REQUEST};

/// Most descriptors one message may carry; the kernel closes any beyond them.
pub const MAX_FDS_PER_MESSAGE: usize = 4;

/// Most received descriptors a connection holds for requests still to come.
const MAX_PENDING_FDS: usize = 8;

/// Carries out requests; implemented by the VMM (and by fakes in tests).
pub trait Handler {
    /// Handles one request with the descriptors that came with it; the reply, or the
    /// sentence saying why it was refused.
    fn handle(&mut self, req: Request, fds: Vec<OwnedFd>) -> Result<Reply, String>;
}

/// Parses one request line and produces the reply line (without the newline).
pub fn dispatch(line: &[u8], fds: Vec<OwnedFd>, handler: &mut dyn Handler) -> String {
    match serde_json::from_slice::<Request>(line) {
        Err(e) => error_line(&format!("bad request: {e}")),
        Ok(req) => match handler.handle(req, fds) {
            Ok(reply) => reply.encode(),
            Err(e) => error_line(&e),
        },
    }
}

/// One client connection: buffers partial lines from a nonblocking stream.
pub struct Connection {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Descriptors received and not yet handed to a request.
    fds: Vec<OwnedFd>,
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
            fds: Vec::new(),
        })
    }

    /// One `recvmsg`: the bytes go into `chunk`, descriptors onto the pending list.
    fn receive(&mut self, chunk: &mut [u8]) -> io::Result<usize> {
        // Room for MAX_FDS_PER_MESSAGE descriptors, aligned as cmsghdr needs.
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: chunk.len(),
        };
        // SAFETY: msghdr is plain data; every pointer set below outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE((MAX_FDS_PER_MESSAGE * 4) as u32) } as usize;
        debug_assert!(msg.msg_controllen <= std::mem::size_of_val(&control));
        // SAFETY: `msg` describes `chunk` and `control`, both valid for writes of the given
        // lengths; received descriptors are close-on-exec.
        let n = unsafe {
            libc::recvmsg(
                self.stream.as_raw_fd(),
                &mut msg,
                libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel filled `msg`'s control area; the CMSG macros walk it within
        // `msg_controllen`.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: `cmsg` points at a header inside the control area.
            let hdr = unsafe { &*cmsg };
            if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
                // SAFETY: as above; the data of an SCM_RIGHTS message is an int array.
                let data = unsafe { libc::CMSG_DATA(cmsg) };
                // SAFETY: CMSG_LEN(0) is the header's size.
                let len = hdr.cmsg_len as usize - unsafe { libc::CMSG_LEN(0) } as usize;
                for i in 0..len / 4 {
                    // SAFETY: `i` indexes within the array; it may be unaligned.
                    let fd = unsafe { data.cast::<libc::c_int>().add(i).read_unaligned() };
                    // SAFETY: the kernel just installed this descriptor for us; we own it.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    if self.fds.len() < MAX_PENDING_FDS {
                        self.fds.push(fd);
                    }
                }
            }
            // SAFETY: walks to the next header or null, within the control area.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        Ok(n as usize)
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
            match self.receive(&mut chunk) {
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
            // The descriptors that arrived so far came with this line or before it.
            let reply = dispatch(line, std::mem::take(&mut self.fds), handler);
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
                let reply = dispatch(&line, std::mem::take(&mut self.fds), handler);
                let _ = self.send(&reply);
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
        // One write per reply: half the system calls, and the socket buffer holds twice as
        // many unread replies as with the newline sent on its own.
        let mut line = Vec::with_capacity(reply.len() + 1);
        line.extend_from_slice(reply.as_bytes());
        line.push(b'\n');
        let r = self.stream.write_all(&line);
        self.stream.set_nonblocking(true)?;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use strato_vmm_api::control::{StateOnly, VmState};

    use std::io::Read;

    struct Fake(Vec<Request>, Vec<usize>);
    impl Handler for Fake {
        fn handle(&mut self, req: Request, fds: Vec<OwnedFd>) -> Result<Reply, String> {
            self.0.push(req.clone());
            self.1.push(fds.len());
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
        let mut f = Fake(vec![], vec![]);
        let r: Value =
            serde_json::from_str(&dispatch(br#"{"op":"state"}"#, vec![], &mut f)).unwrap();
        assert_eq!(r, json!({"ok": true, "state": "running"}));
        let r: Value =
            serde_json::from_str(&dispatch(br#"{"op":"stop"}"#, vec![], &mut f)).unwrap();
        assert_eq!(r, json!({"ok": false, "error": "cannot stop"}));
        dispatch(
            br#"{"op":"attach-drive","id":"d1","path":"/x"}"#,
            vec![],
            &mut f,
        );
        assert_eq!(
            f.0.last(),
            Some(&Request::AttachDrive {
                id: "d1".into(),
                path: Some("/x".into()),
                readonly: false
            })
        );
    }

    #[test]
    fn refuses_bad_requests() {
        let mut f = Fake(vec![], vec![]);
        for bad in [
            &b"not json"[..],
            br#"{"op":"explode"}"#,
            br#"{"op":"state","extra":1}"#,
            br#"{"op":"detach-drive"}"#,
            br#"{"op":"attach-drive","id":5,"path":"/x"}"#,
        ] {
            let r: Value = serde_json::from_str(&dispatch(bad, vec![], &mut f)).unwrap();
            assert_eq!(r["ok"], false, "{}", String::from_utf8_lossy(bad));
            assert!(r["error"].as_str().unwrap().starts_with("bad request"));
        }
        assert!(f.0.is_empty());
    }

    #[test]
    fn connection_handles_split_and_multiple_lines() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut conn = Connection::new(a).unwrap();
        let mut f = Fake(vec![], vec![]);
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
        let mut f = Fake(vec![], vec![]);
        b.write_all(b"{\"op\":\"state\"}").unwrap();
        b.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(conn.service(&mut f), ConnState::Closed);
        drop(conn);
        let mut reply = String::new();
        b.read_to_string(&mut reply).unwrap();
        assert!(reply.contains("running"), "{reply}");
    }

    /// Sends `line` with `fds` as SCM_RIGHTS in one message.
    fn send_with_fds(s: &UnixStream, line: &[u8], fds: &[i32]) {
        let mut control = [0u64; 8];
        let mut iov = libc::iovec {
            iov_base: line.as_ptr() as *mut libc::c_void,
            iov_len: line.len(),
        };
        // SAFETY: plain data; the pointers outlive the sendmsg below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            // SAFETY: size computations and writes inside `control`.
            unsafe {
                msg.msg_controllen = libc::CMSG_SPACE((fds.len() * 4) as u32) as usize;
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as usize;
                std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
            }
        }
        // SAFETY: `msg` is valid for the call.
        let n = unsafe { libc::sendmsg(s.as_raw_fd(), &msg, 0) };
        assert_eq!(n, line.len() as isize);
    }

    #[test]
    fn descriptors_go_to_the_request_they_came_with() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut conn = Connection::new(a).unwrap();
        let mut f = Fake(vec![], vec![]);
        let file = std::fs::File::open("/dev/null").unwrap();
        send_with_fds(
            &b,
            b"{\"op\":\"attach-drive\",\"id\":\"d\"}\n",
            &[file.as_raw_fd(), file.as_raw_fd()],
        );
        assert_eq!(conn.service(&mut f), ConnState::Open);
        send_with_fds(&b, b"{\"op\":\"state\"}\n", &[]);
        assert_eq!(conn.service(&mut f), ConnState::Open);
        assert_eq!(f.1, vec![2, 0]);
        assert_eq!(
            f.0[0],
            Request::AttachDrive {
                id: "d".into(),
                path: None,
                readonly: false
            }
        );
    }

    #[test]
    fn oversized_request_closes() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut conn = Connection::new(a).unwrap();
        let mut f = Fake(vec![], vec![]);
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
