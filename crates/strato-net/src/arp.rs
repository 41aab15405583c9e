//! ARP probes: the instance status check ("does the guest answer an ARP request on its
//! network interface?").
//!
//! [`arp_probe`] sends a broadcast who-has on one interface through an `AF_PACKET`
//! socket and waits for the reply. On a tap, frames sent on the socket go *to* the guest
//! and frames the guest sends arrive on the socket, so probing the tap talks to the guest
//! alone, without a host address on the tap. Received frames come from the guest and are
//! hostile input: [`parse_arp_reply`] checks every length and field and ignores anything
//! that is not an Ethernet/IPv4 ARP reply from the target.
//!
//! The socket is bound for every protocol (`ETH_P_ALL`) with a classic BPF filter that
//! keeps ARP only: a tap is a bridge port, and the bridge consumes the frames of its ports
//! before protocol-specific (`ETH_P_ARP`) packet sockets see them, while `ETH_P_ALL`
//! sockets see them first.
//!
//! [`frame_probe_retrying`] is the same exchange for any one ethertype: the status check's
//! IPv6 neighbour solicitations (built and read by `strato_wire::neighbour`) go through it.

use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::{validate_ifname, NetError};

/// Length of an ARP frame without padding: Ethernet header (14) + ARP for IPv4 (28).
pub const ARP_FRAME_LEN: usize = 42;

const ETH_HLEN: usize = 14;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ARPHRD_ETHER: u16 = 1;
const ARPOP_REQUEST: u16 = 1;
const ARPOP_REPLY: u16 = 2;
/// `sll_pkttype` of frames this host sent (seen on packet sockets too).
const PACKET_OUTGOING: u8 = 4;
const RECV_BUF_LEN: usize = 2048;
/// `SO_ATTACH_FILTER` (asm-generic/socket.h; the same on x86 and arm), absent from `libc`
/// for glibc targets.
const SO_ATTACH_FILTER: libc::c_int = 26;
/// Bytes of each frame the filter passes (ARP frames are 42, or 60 with padding; a
/// neighbour advertisement with its options fits too).
const FILTER_SNAPLEN: u32 = 128;

/// Classic BPF: accept the first [`FILTER_SNAPLEN`] bytes of frames of `ethertype`, drop
/// everything else.
const fn ethertype_filter(ethertype: u16) -> [libc::sock_filter; 4] {
    [
        // ldh [12]: the ethertype.
        bpf(0x28, 0, 0, 12),
        // jeq #ethertype: next instruction, else skip one.
        bpf(0x15, 0, 1, ethertype as u32),
        // ret #FILTER_SNAPLEN
        bpf(0x06, 0, 0, FILTER_SNAPLEN),
        // ret #0: drop.
        bpf(0x06, 0, 0, 0),
    ]
}

const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Builds a broadcast ARP request "who has `target_ip`? tell `src_ip`" from `src_mac`.
pub fn build_arp_request(src_mac: [u8; 6], src_ip: Ipv4Addr, target_ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; ARP_FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
    f[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&ARPOP_REQUEST.to_be_bytes());
    f[22..28].copy_from_slice(&src_mac);
    f[28..32].copy_from_slice(&src_ip.octets());
    // Target hardware address (32..38) stays zero: that is the question.
    f[38..42].copy_from_slice(&target_ip.octets());
    f
}

/// Builds a gratuitous ARP: a broadcast request from `mac` for `ip` itself, which makes
/// the neighbours that have `ip` in their caches point it at `mac` (an address that moved
/// to this host).
pub fn build_gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    build_arp_request(mac, ip, ip)
}

/// Announces that `ip` is on `ifname` now (a gratuitous ARP from the interface's MAC), so
/// that the LAN stops sending it to the host that had it before.
pub fn announce(ifname: &str, ip: Ipv4Addr) -> Result<(), NetError> {
    validate_ifname(ifname)?;
    let mac = crate::link::link_mac(ifname)?.ok_or_else(|| NetError::NoSuchLink(ifname.into()))?;
    let sock = PacketSocket::bind(ifname, ETHERTYPE_ARP)?;
    sock.send(&build_gratuitous_arp(mac, ip))
        .map_err(|e| NetError::io(format!("announce {ip} on {ifname}"), e))
}

/// If `frame` is an Ethernet ARP reply for IPv4 whose sender is `target_ip`, returns the
/// sender's MAC address. Anything else (short, other ethertype or opcode, other sender,
/// a multicast or zero sender MAC) gives `None`.
pub fn parse_arp_reply(frame: &[u8], target_ip: Ipv4Addr) -> Option<[u8; 6]> {
    let f = frame.get(..ARP_FRAME_LEN)?;
    let be16 = |off: usize| u16::from_be_bytes([f[off], f[off + 1]]);
    if be16(12) != ETHERTYPE_ARP
        || be16(ETH_HLEN) != ARPHRD_ETHER
        || be16(ETH_HLEN + 2) != ETHERTYPE_IPV4
        || f[ETH_HLEN + 4] != 6
        || f[ETH_HLEN + 5] != 4
        || be16(ETH_HLEN + 6) != ARPOP_REPLY
    {
        return None;
    }
    let sha: [u8; 6] = f[22..28].try_into().ok()?;
    let spa = Ipv4Addr::new(f[28], f[29], f[30], f[31]);
    if spa != target_ip || sha[0] & 1 != 0 || sha == [0; 6] {
        return None;
    }
    Some(sha)
}

/// Asks `target_ip` for its MAC address on interface `ifname`: sends a broadcast ARP
/// request from `src_mac`/`src_ip` and waits up to `timeout` for a reply from
/// `target_ip`. Returns the replying MAC, or `None` when no reply came in time.
pub fn arp_probe(
    ifname: &str,
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
    timeout: Duration,
) -> Result<Option<[u8; 6]>, NetError> {
    arp_probe_retrying(ifname, src_mac, src_ip, target_ip, timeout, 1)
}

/// As [`arp_probe`], with `tries` requests spread over `window` on one socket: a reply to
/// any of them counts, so a guest slow to answer the first request is not taken for a
/// silent one when it answers after the next was sent.
pub fn arp_probe_retrying(
    ifname: &str,
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
    window: Duration,
    tries: u32,
) -> Result<Option<[u8; 6]>, NetError> {
    let request = build_arp_request(src_mac, src_ip, target_ip);
    frame_probe_retrying(ifname, ETHERTYPE_ARP, &request, window, tries, |f| {
        parse_arp_reply(f, target_ip)
    })
}

/// Sends `request` (a whole Ethernet frame) on `ifname` `tries` times spread over `window`
/// and returns what `answer` makes of the first received frame of `ethertype` it accepts,
/// or `None` when none came in time. On a tap this asks the guest alone; the received
/// frames are the guest's and `answer` must treat them as hostile.
pub fn frame_probe_retrying<T>(
    ifname: &str,
    ethertype: u16,
    request: &[u8],
    window: Duration,
    tries: u32,
    mut answer: impl FnMut(&[u8]) -> Option<T>,
) -> Result<Option<T>, NetError> {
    validate_ifname(ifname)?;
    let start = Instant::now();
    let deadline = start + window;
    let step = window / tries.max(1);
    let sock = PacketSocket::bind(ifname, ethertype)?;
    let mut sent = 0;
    let mut buf = [0u8; RECV_BUF_LEN];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        if sent < tries.max(1) && now >= start + step * sent {
            sock.send(request)
                .map_err(|e| NetError::io(format!("send a probe on {ifname}"), e))?;
            sent += 1;
        }
        let next_send = if sent < tries.max(1) {
            start + step * sent
        } else {
            deadline
        };
        let wait = next_send
            .min(deadline)
            .saturating_duration_since(Instant::now());
        let readable = poll_readable(&sock.fd, wait)
            .map_err(|e| NetError::io(format!("wait for a probe's answer on {ifname}"), e))?;
        if !readable {
            continue;
        }
        let frame = match sock.recv(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(NetError::io(format!("receive on {ifname}"), e)),
        };
        if let Some(got) = answer(frame) {
            return Ok(Some(got));
        }
    }
}

/// An `AF_PACKET` raw socket receiving the frames of one ethertype (and only those) of
/// one interface.
struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    ethertype: u16,
}

impl PacketSocket {
    fn bind(ifname: &str, ethertype: u16) -> Result<Self, NetError> {
        let cname = std::ffi::CString::new(ifname).map_err(|_| NetError::InvalidName {
            name: ifname.to_owned(),
            reason: "contains NUL",
        })?;
        // SAFETY: `cname` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(NetError::NoSuchLink(ifname.to_owned()));
        }
        let op = || format!("open packet socket on {ifname}");
        // Protocol 0: receive nothing until bound, so no frame of another interface slips
        // in between socket() and bind().
        // SAFETY: plain system call with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(NetError::io(op(), io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a descriptor we just opened and nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sock = PacketSocket {
            fd,
            ifindex: ifindex as i32,
            ethertype,
        };
        let mut filter = ethertype_filter(ethertype);
        let prog = libc::sock_fprog {
            len: filter.len() as libc::c_ushort,
            filter: filter.as_mut_ptr(),
        };
        // SAFETY: SO_ATTACH_FILTER reads one sock_fprog, whose program `filter` outlives
        // the call (the kernel copies it).
        let ret = unsafe {
            libc::setsockopt(
                sock.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_ATTACH_FILTER,
                (&prog as *const libc::sock_fprog).cast(),
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(NetError::io(op(), io::Error::last_os_error()));
        }
        let mut addr = sock.sockaddr();
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let ret = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(NetError::io(op(), io::Error::last_os_error()));
        }
        Ok(sock)
    }

    /// The broadcast destination on the interface (a raw socket's frames carry their own
    /// destination; the address names the interface).
    fn sockaddr(&self) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = self.ethertype.to_be();
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        addr
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        let addr = self.sockaddr();
        // SAFETY: `frame` is readable for its length and `addr` is a valid sockaddr_ll of
        // the size passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short probe send"));
        }
        Ok(())
    }

    /// Receives one frame without blocking; `None` for frames this host sent.
    fn recv<'a>(&self, buf: &'a mut [u8]) -> io::Result<Option<&'a [u8]>> {
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut from_len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is writable for its length and `from` for `from_len` bytes.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        }
        if from.sll_pkttype == PACKET_OUTGOING {
            return Ok(None);
        }
        // A truncated datagram returns at most the buffer's length.
        Ok(buf.get(..n as usize))
    }
}

/// Waits until `fd` is readable or `timeout` passes; false on timeout or interruption.
fn poll_readable(fd: &OwnedFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Round up so a sub-millisecond remainder still waits rather than spinning.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one valid pollfd and the count passed is 1.
    let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(ret > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{create_tap, delete_link, ensure_bridge, link_mac, testutil::veth_pair};
    use crate::testns::in_netns;
    use crate::tun;
    use std::io::{Read, Write};
    use std::thread;

    const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const GUEST_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
    const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    /// `sizeof(struct virtio_net_hdr)`, a tap's default vnet header size.
    const VNET_HDR: usize = 10;

    /// The reply `sender` (with `sender_mac`) gives to `request`.
    fn reply_to(request: &[u8], sender_mac: [u8; 6]) -> [u8; 42] {
        let mut f = [0u8; ARP_FRAME_LEN];
        f.copy_from_slice(&request[..ARP_FRAME_LEN]);
        f[0..6].copy_from_slice(&request[6..12]);
        f[6..12].copy_from_slice(&sender_mac);
        f[20..22].copy_from_slice(&ARPOP_REPLY.to_be_bytes());
        f[22..28].copy_from_slice(&sender_mac);
        f[28..32].copy_from_slice(&request[38..42]);
        f[32..38].copy_from_slice(&request[22..28]);
        f[38..42].copy_from_slice(&request[28..32]);
        f
    }

    /// A gratuitous ARP is a broadcast request whose sender and target are the announced
    /// address: what neighbours take to update their cache entry of it.
    #[test]
    fn gratuitous_arp_layout() {
        let mac = [2, 0, 0, 0, 0, 9];
        let ip = Ipv4Addr::new(198, 51, 100, 70);
        let f = build_gratuitous_arp(mac, ip);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[20..22], &ARPOP_REQUEST.to_be_bytes());
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &ip.octets());
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &ip.octets());
        // Not a reply: a status check never takes it for the guest's answer.
        assert_eq!(parse_arp_reply(&f, ip), None);
        assert!(announce("no such if", ip).is_err());
    }

    #[test]
    fn request_layout() {
        let f = build_arp_request(HOST_MAC, HOST_IP, GUEST_IP);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &HOST_MAC);
        assert_eq!(&f[12..22], &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        assert_eq!(&f[22..28], &HOST_MAC);
        assert_eq!(&f[28..32], &HOST_IP.octets());
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &GUEST_IP.octets());
        // A request is not a reply, even from the right address.
        assert_eq!(parse_arp_reply(&f, HOST_IP), None);
    }

    #[test]
    fn parses_reply_with_and_without_padding() {
        let reply = reply_to(&build_arp_request(HOST_MAC, HOST_IP, GUEST_IP), GUEST_MAC);
        assert_eq!(parse_arp_reply(&reply, GUEST_IP), Some(GUEST_MAC));
        let mut padded = reply.to_vec();
        padded.resize(60, 0);
        assert_eq!(parse_arp_reply(&padded, GUEST_IP), Some(GUEST_MAC));
    }

    #[test]
    fn rejects_malformed_and_unrelated_frames() {
        let reply = reply_to(&build_arp_request(HOST_MAC, HOST_IP, GUEST_IP), GUEST_MAC);
        for len in 0..ARP_FRAME_LEN {
            assert_eq!(
                parse_arp_reply(&reply[..len], GUEST_IP),
                None,
                "length {len}"
            );
        }
        assert_eq!(parse_arp_reply(&reply, Ipv4Addr::new(10, 0, 0, 3)), None);
        let patched = |off: usize, bytes: &[u8]| {
            let mut f = reply;
            f[off..off + bytes.len()].copy_from_slice(bytes);
            parse_arp_reply(&f, GUEST_IP)
        };
        assert_eq!(patched(12, &[0x08, 0x00]), None, "IPv4 ethertype");
        assert_eq!(patched(12, &[0x81, 0x00]), None, "VLAN tag");
        assert_eq!(patched(14, &[0, 6]), None, "IEEE 802 hardware type");
        assert_eq!(patched(16, &[0x86, 0xdd]), None, "IPv6 protocol type");
        assert_eq!(patched(18, &[8]), None, "hardware length");
        assert_eq!(patched(19, &[16]), None, "protocol length");
        assert_eq!(patched(20, &[0, 1]), None, "request opcode");
        assert_eq!(patched(20, &[0, 3]), None, "RARP opcode");
        assert_eq!(
            patched(22, &[0x01, 0, 0x5e, 0, 0, 1]),
            None,
            "multicast sender"
        );
        assert_eq!(patched(22, &[0; 6]), None, "zero sender");
        assert_eq!(parse_arp_reply(&[0xff; 1500], GUEST_IP), None);
    }

    #[test]
    fn probe_over_veth() {
        in_netns(|| {
            veth_pair("veth0", "veth1", HOST_IP, 24);
            let peer = link_mac("veth0").expect("mac").expect("veth0");
            let mine = link_mac("veth1").expect("mac").expect("veth1");
            let timeout = Duration::from_secs(2);
            let got = arp_probe("veth1", mine, GUEST_IP, HOST_IP, timeout).expect("probe");
            assert_eq!(got, Some(peer));

            let unused = Ipv4Addr::new(10, 0, 0, 3);
            let timeout = Duration::from_millis(300);
            let start = Instant::now();
            let got = arp_probe("veth1", mine, GUEST_IP, unused, timeout).expect("probe");
            let elapsed = start.elapsed();
            assert_eq!(got, None);
            assert!(
                elapsed >= timeout && elapsed < Duration::from_secs(2),
                "{elapsed:?}"
            );

            let err = arp_probe("nosuch0", mine, GUEST_IP, HOST_IP, timeout);
            assert!(matches!(err, Err(NetError::NoSuchLink(_))));
            delete_link("veth0").expect("delete veth");
        });
    }

    /// The test plays the guest: it holds the tap open as a VMM would, reads the probe the
    /// host sent, and writes the answer.
    #[test]
    fn probe_reaches_guest_behind_tap() {
        in_netns(|| {
            ensure_bridge("br0", HOST_IP, 24).expect("bridge");
            create_tap("tap0", "br0", None).expect("tap");
            let mut guest = tun::open_tap("tap0").expect("open tap");
            // A tap that has just been opened may drop what is sent before the kernel has
            // attached its queue (link-watch work, up to a second later): probe again, as
            // the prober does every interval.
            let probe = thread::spawn(|| -> Result<Option<[u8; 6]>, NetError> {
                for _ in 0..5 {
                    let got =
                        arp_probe("tap0", HOST_MAC, HOST_IP, GUEST_IP, Duration::from_secs(1))?;
                    if got.is_some() {
                        return Ok(got);
                    }
                }
                Ok(None)
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut buf = [0u8; 2048];
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "the guest never saw the ARP request");
                let fd = guest.try_clone().expect("dup").into();
                if !poll_readable(&fd, left).expect("poll") {
                    continue;
                }
                let n = guest.read(&mut buf).expect("read tap");
                let Some(frame) = buf.get(VNET_HDR..n) else {
                    continue;
                };
                if frame.len() >= ARP_FRAME_LEN
                    && frame[12..14] == [0x08, 0x06]
                    && frame[20..22] == [0, 1]
                    && frame[38..42] == GUEST_IP.octets()
                {
                    assert_eq!(
                        &frame[..ARP_FRAME_LEN],
                        &build_arp_request(HOST_MAC, HOST_IP, GUEST_IP)
                    );
                    let mut out = vec![0u8; VNET_HDR];
                    out.extend_from_slice(&reply_to(frame, GUEST_MAC));
                    guest.write_all(&out).expect("write tap");
                    break;
                }
            }
            let got = probe.join().expect("probe thread").expect("probe");
            assert_eq!(got, Some(GUEST_MAC));
            drop(guest);
            delete_link("tap0").expect("delete tap");
            delete_link("br0").expect("delete bridge");
        });
    }
}
