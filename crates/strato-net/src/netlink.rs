//! A minimal blocking rtnetlink client: build one request, send it on a `NETLINK_ROUTE`
//! socket, collect the replies up to the kernel's acknowledgement or end of dump.
//!
//! Hand-rolled over `libc` rather than a netlink crate because strato needs a handful of
//! messages (links and IPv4 addresses), wants no async runtime underneath, and must run in
//! the network namespace of the calling thread (each [`Socket`] is created, and so bound,
//! in that namespace). Replies are parsed defensively: lengths are checked, and messages
//! from anyone but the kernel or for another request are dropped.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// Message types and flags (linux/netlink.h, linux/rtnetlink.h).
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
/// Dump every object (`NLM_F_ROOT | NLM_F_MATCH`).
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// With [`NLM_F_CREATE`]: fail with `EEXIST` if the object exists.
pub(crate) const NLM_F_EXCL: u16 = 0x200;
/// Create the object if it does not exist.
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
pub(crate) const RTM_GETNEIGH: u16 = 30;
/// With [`NLM_F_CREATE`]: replace an existing object.
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
/// With [`NLM_F_CREATE`]: add to the objects under the same key (a second FDB
/// destination for one MAC).
pub(crate) const NLM_F_APPEND: u16 = 0x800;

// Attributes (linux/if_link.h, linux/if_addr.h, linux/veth.h).
pub(crate) const IFLA_ADDRESS: u16 = 1;
pub(crate) const IFLA_IFNAME: u16 = 3;
pub(crate) const IFLA_MTU: u16 = 4;
pub(crate) const IFLA_MASTER: u16 = 10;
pub(crate) const IFLA_LINKINFO: u16 = 18;
pub(crate) const IFLA_EXT_MASK: u16 = 29;
pub(crate) const IFLA_INFO_KIND: u16 = 1;
pub(crate) const IFLA_INFO_DATA: u16 = 2;
pub(crate) const IFLA_TUN_TYPE: u16 = 3;
#[cfg(test)]
pub(crate) const VETH_INFO_PEER: u16 = 1;
pub(crate) const IFA_ADDRESS: u16 = 1;
pub(crate) const IFA_LOCAL: u16 = 2;
/// `RTEXT_FILTER_SKIP_STATS`: leave the (large) statistics out of link replies.
pub(crate) const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Size of `struct ifinfomsg`.
pub(crate) const IFINFOMSG_LEN: usize = 16;
/// Size of `struct ndmsg`.
pub(crate) const NDMSG_LEN: usize = 12;
/// Size of `struct ifaddrmsg`.
pub(crate) const IFADDRMSG_LEN: usize = 8;

/// How long to wait for the kernel before giving up on a request.
const RECV_TIMEOUT_S: libc::time_t = 5;
const RECV_BUF_LEN: usize = 64 * 1024;

const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// An rtnetlink request under construction: header, fixed part, attributes.
pub(crate) struct Message {
    buf: Vec<u8>,
}

impl Message {
    /// Starts a request of type `ty`; `flags` are added to `NLM_F_REQUEST | NLM_F_ACK`
    /// (dumps end with `NLMSG_DONE` instead of an acknowledgement).
    pub(crate) fn new(ty: u16, flags: u16) -> Self {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | flags).to_ne_bytes());
        Message { buf }
    }

    fn pad(&mut self) {
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// Appends a `struct ifinfomsg`.
    pub(crate) fn ifinfomsg(&mut self, index: u32, flags: u32, change: u32) -> &mut Self {
        self.buf.push(libc::AF_UNSPEC as u8);
        self.buf.push(0);
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
        self
    }

    /// Appends a `struct ifaddrmsg` for IPv4.
    pub(crate) fn ifaddrmsg(&mut self, prefix_len: u8, index: u32) -> &mut Self {
        self.buf.push(libc::AF_INET as u8);
        self.buf.push(prefix_len);
        self.buf.push(0); // flags
        self.buf.push(0); // scope: RT_SCOPE_UNIVERSE
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self
    }

    /// Appends a `struct ifaddrmsg` for IPv6 with address flags `flags` (`IFA_F_*`).
    pub(crate) fn ifaddrmsg6(&mut self, prefix_len: u8, flags: u8, index: u32) -> &mut Self {
        self.buf.push(libc::AF_INET6 as u8);
        self.buf.push(prefix_len);
        self.buf.push(flags);
        self.buf.push(0); // scope: RT_SCOPE_UNIVERSE
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self
    }

    /// Appends a `struct ndmsg` (neighbour and FDB entries).
    pub(crate) fn ndmsg(&mut self, family: u8, index: u32, state: u16, flags: u8) -> &mut Self {
        self.buf.push(family);
        self.buf.extend_from_slice(&[0, 0, 0]); // pad1, pad2
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&state.to_ne_bytes());
        self.buf.push(flags);
        self.buf.push(0); // type
        self
    }

    /// Appends an attribute.
    pub(crate) fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        self.pad();
        // Attributes here are a few bytes long; a u16 length always suffices.
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    /// Appends a `u32` attribute.
    pub(crate) fn attr_u32(&mut self, ty: u16, value: u32) -> &mut Self {
        self.attr(ty, &value.to_ne_bytes())
    }

    /// Appends a NUL-terminated string attribute.
    pub(crate) fn attr_str(&mut self, ty: u16, value: &str) -> &mut Self {
        let mut data = Vec::with_capacity(value.len() + 1);
        data.extend_from_slice(value.as_bytes());
        data.push(0);
        self.attr(ty, &data)
    }

    /// Opens a nested attribute; close it with [`Message::end_nest`].
    pub(crate) fn begin_nest(&mut self, ty: u16) -> usize {
        self.pad();
        let start = self.buf.len();
        self.attr(ty | NLA_F_NESTED, &[]);
        start
    }

    /// Closes the nested attribute opened at `start`.
    pub(crate) fn end_nest(&mut self, start: usize) -> &mut Self {
        self.pad();
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// One reply message: its type and payload (after the netlink header).
pub(crate) struct Reply {
    /// `nlmsg_type`, e.g. [`RTM_NEWLINK`].
    pub(crate) ty: u16,
    /// Everything after the header.
    pub(crate) payload: Vec<u8>,
}

/// Iterates over the attributes in `data`, yielding `(type, payload)`; stops at the first
/// malformed attribute.
pub(crate) struct Attrs<'a> {
    data: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Attributes in `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Attrs { data }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let len = usize::from(read_u16(self.data, 0)?);
        let ty = read_u16(self.data, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > self.data.len() {
            self.data = &[];
            return None;
        }
        let payload = self.data.get(4..len)?;
        self.data = self.data.get(align4(len)..).unwrap_or_default();
        Some((ty, payload))
    }
}

/// Reads a native-endian `u16` at `off`, if the bytes are there.
pub(crate) fn read_u16(data: &[u8], off: usize) -> Option<u16> {
    let b = data.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([b[0], b[1]]))
}

/// Reads a native-endian `u32` at `off`, if the bytes are there.
pub(crate) fn read_u32(data: &[u8], off: usize) -> Option<u32> {
    let b = data.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A `NETLINK_ROUTE` socket in the calling thread's network namespace.
pub(crate) struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    /// Opens and binds a socket.
    pub(crate) fn open() -> io::Result<Self> {
        // SAFETY: plain system call with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor we just opened and nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a valid sockaddr_nl and the length passed is its size.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        let timeout = libc::timeval {
            tv_sec: RECV_TIMEOUT_S,
            tv_usec: 0,
        };
        // SAFETY: SO_RCVTIMEO reads one timeval, which `timeout` is.
        let ret = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket { fd, seq: 0 })
    }

    /// Sends `msg` and returns the replies before the acknowledgement (or `NLMSG_DONE`);
    /// a negative acknowledgement becomes the `io::Error` of its errno.
    pub(crate) fn request(&mut self, mut msg: Message) -> io::Result<Vec<Reply>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let data = msg.finish(seq);
        // SAFETY: `data` is a valid buffer of the length passed; the kernel only reads it.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        if sent as usize != data.len() {
            return Err(invalid("short netlink send"));
        }
        let mut replies = Vec::new();
        let mut buf = vec![0u8; RECV_BUF_LEN];
        loop {
            let n = self.recv(&mut buf)?;
            let Some(mut rest) = n.and_then(|n| buf.get(..n)) else {
                continue;
            };
            while !rest.is_empty() {
                let len = read_u32(rest, 0).ok_or_else(|| invalid("short netlink header"))?;
                let len = len as usize;
                if len < NLMSG_HDRLEN || len > rest.len() {
                    return Err(invalid("bad netlink message length"));
                }
                let ty = read_u16(rest, 4).unwrap_or_default();
                let msg_seq = read_u32(rest, 8).unwrap_or_default();
                let payload = rest.get(NLMSG_HDRLEN..len).unwrap_or_default();
                rest = rest.get(align4(len)..).unwrap_or_default();
                if msg_seq != seq {
                    continue;
                }
                match ty {
                    NLMSG_ERROR | NLMSG_DONE => {
                        let code = read_u32(payload, 0).map_or(0, |c| c as i32);
                        if code < 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        if ty == NLMSG_ERROR && payload.len() < 4 {
                            return Err(invalid("short netlink error message"));
                        }
                        return Ok(replies);
                    }
                    _ => replies.push(Reply {
                        ty,
                        payload: payload.to_vec(),
                    }),
                }
            }
        }
    }

    /// Receives one datagram; `None` when it did not come from the kernel.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
            let mut from: libc::sockaddr_nl = unsafe { mem::zeroed() };
            let mut from_len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: `buf` is writable for its length, `from` for `from_len` bytes.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let n = n as usize;
            if n > buf.len() {
                return Err(invalid("netlink reply truncated"));
            }
            return Ok((from.nl_pid == 0).then_some(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout() {
        let mut msg = Message::new(RTM_NEWLINK, NLM_F_CREATE);
        msg.ifinfomsg(7, 1, 1);
        let nest = msg.begin_nest(IFLA_LINKINFO);
        msg.attr_str(IFLA_INFO_KIND, "bridge");
        msg.end_nest(nest);
        let data = msg.finish(42).to_vec();
        assert_eq!(read_u32(&data, 0), Some(data.len() as u32));
        assert_eq!(read_u16(&data, 4), Some(RTM_NEWLINK));
        assert_eq!(
            read_u16(&data, 6),
            Some(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
        );
        assert_eq!(read_u32(&data, 8), Some(42));
        assert_eq!(read_u32(&data, 20), Some(7));
        let attrs: Vec<_> = Attrs::new(&data[NLMSG_HDRLEN + IFINFOMSG_LEN..]).collect();
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].0, IFLA_LINKINFO);
        let inner: Vec<_> = Attrs::new(attrs[0].1).collect();
        assert_eq!(inner, vec![(IFLA_INFO_KIND, &b"bridge\0"[..])]);
    }

    #[test]
    fn attrs_stop_at_malformed() {
        // A good u32 attribute, then one claiming more bytes than there are.
        let mut data = Vec::new();
        for half in [8u16, 4, 0x0201, 0x0403, 200, 3] {
            data.extend_from_slice(&half.to_ne_bytes());
        }
        data.push(0);
        let got: Vec<_> = Attrs::new(&data).collect();
        assert_eq!(got, vec![(4, &data[4..8])]);
        assert_eq!(
            Attrs::new(&[3u16.to_ne_bytes(), 1u16.to_ne_bytes()].concat()).count(),
            0
        );
        assert_eq!(Attrs::new(&[4]).count(), 0);
        assert_eq!(Attrs::new(&[]).count(), 0);
    }
}
