//! The daemon's DHCP server: one UDP socket per VPC bridge, bound to 0.0.0.0:67 on that
//! bridge alone (`SO_BINDTODEVICE`), answering each client whose MAC is an attached ENI's
//! in a subnet on that bridge with the ENI's primary private address, the subnet's mask and
//! gateway (router and server identifier), a lease time, the host name `ip-a-b-c-d` and the
//! MTU. Unknown MACs get no answer. Replies are broadcast to 255.255.255.255:68 on the
//! bridge, except to clients that have an address already. Servers start with the daemon
//! and with CreateVpc, and stop with DeleteVpc. Guests may also use the kernel's `ip=`.
//!
//! Everything a guest sends is hostile: bad packets are counted and logged at most once per
//! [`LOG_EVERY`] per bridge, with the count of those not logged.

pub use strato_wire::dhcp as packet;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::ApiResult;
use crate::metrics::{inc, Metrics};
use packet::{Lease, MessageType};

/// Lease time handed out. Addresses never change, so a long lease costs nothing.
pub const LEASE_SECS: u32 = 86_400;
/// Interface MTU handed out (the taps' and bridges').
pub const MTU: u16 = 1500;
/// Least interval between two log lines about bad packets on one bridge.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// At most one log line per [`LOG_EVERY`] for what a guest can make happen at will (bad
/// packets), counting the ones it held back.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// `Some(lines held back since the last one)` when a line may be logged now.
    pub fn allow(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.held += 1;
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.held))
    }
}

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;

/// The address a client gets: an attached ENI's primary private address in its subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The ENI's primary private address.
    pub ip: Ipv4Addr,
    /// The subnet's network address.
    pub net: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The interface MTU for the client: [`MTU`], or less on a VPC joined to other hosts
    /// by VXLAN (its bridge carries 50 bytes less than the underlay).
    pub mtu: u16,
}

/// What a lease lookup may read: the binding of a MAC on a bridge. The domain implements
/// it over the state store; the server never sees more.
pub trait LeaseBook: Send + Sync + 'static {
    /// The binding of the attached ENI with `mac` (any case) in a subnet on `bridge`.
    fn binding(&self, bridge: &str, mac: &str) -> ApiResult<Option<Binding>>;

    /// An ACK for `ip` went out on `bridge`: the client holds its lease.
    fn acked(&self, _bridge: &str, _ip: Ipv4Addr) {}
}

/// The running servers, by bridge.
#[derive(Debug, Default)]
pub struct Servers {
    tasks: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
}

impl Servers {
    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the server of `bridge` over `book` unless it runs. A failure is logged:
    /// guests still have `ip=` on their command line.
    pub fn serve(&self, bridge: &str, book: Arc<dyn LeaseBook>, metrics: Arc<Metrics>) {
        let mut tasks = self.tasks();
        if tasks.get(bridge).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let sock = match open_socket(bridge).and_then(tokio::net::UdpSocket::from_std) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(bridge, error = %e, "cannot start the DHCP server");
                return;
            }
        };
        tracing::info!(bridge, "DHCP server listening");
        let name = bridge.to_string();
        tasks.insert(
            name.clone(),
            tokio::spawn(async move { serve_loop(&*book, &metrics, &name, sock).await }),
        );
    }

    /// Stops the server of `bridge`.
    pub fn stop(&self, bridge: &str) {
        if let Some(t) = self.tasks().remove(bridge) {
            t.abort();
        }
    }
}

/// Opens a UDP socket on 0.0.0.0:67 that sees only `bridge`'s traffic and may broadcast.
pub fn open_socket(bridge: &str) -> std::io::Result<std::net::UdpSocket> {
    let err = std::io::Error::last_os_error;
    // SAFETY: socket(2) with constant arguments; the result is checked and owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(err());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for opt in [libc::SO_REUSEADDR, libc::SO_BROADCAST] {
        // SAFETY: `one` is a valid c_int for the option's length; `sock` is open.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(err());
        }
    }
    strato_net::validate_ifname(bridge)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    // SAFETY: the name's bytes are valid for their length; `sock` is open.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bridge.as_ptr().cast(),
            bridge.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(err());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: SERVER_PORT.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in of the given length; `sock` is open.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(err());
    }
    Ok(std::net::UdpSocket::from(sock))
}

/// What became of one packet.
enum Outcome {
    /// Answer with this packet to this address.
    Send(Vec<u8>, SocketAddrV4, MessageType),
    /// Not a packet the server reads (malformed): worth a (rate-limited) log line.
    Bad(String),
    /// Nothing to say (an unknown MAC, a RELEASE, a REQUEST for another server).
    Silent,
}

/// Answers the packets of one bridge's socket for as long as the task lives.
async fn serve_loop(
    book: &dyn LeaseBook,
    metrics: &Metrics,
    bridge: &str,
    sock: tokio::net::UdpSocket,
) {
    let mut buf = vec![0u8; 2048];
    let mut throttle = Throttle::default();
    loop {
        let n = match sock.recv_from(&mut buf).await {
            Ok((n, _)) => n,
            Err(e) => {
                tracing::warn!(bridge, error = %e, "DHCP receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        inc(&metrics.dhcp_requests_total);
        match answer(book, bridge, &buf[..n]) {
            Outcome::Send(reply, to, kind) => {
                if let Err(e) = sock.send_to(&reply, to).await {
                    tracing::warn!(bridge, %to, error = %e, "cannot send a DHCP reply");
                    inc(&metrics.dhcp_drops_total);
                    continue;
                }
                if kind == MessageType::Ack {
                    // BOOTP's yiaddr: the address the client now holds.
                    if let Some(ip) = reply.get(16..20).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                        book.acked(bridge, Ipv4Addr::from(ip));
                    }
                }
                inc(match kind {
                    MessageType::Offer => &metrics.dhcp_offers_total,
                    MessageType::Nak => &metrics.dhcp_naks_total,
                    _ => &metrics.dhcp_acks_total,
                });
            }
            Outcome::Silent => inc(&metrics.dhcp_drops_total),
            Outcome::Bad(why) => {
                inc(&metrics.dhcp_drops_total);
                if let Some(unlogged) = throttle.allow() {
                    tracing::warn!(bridge, reason = %why, unlogged, "bad DHCP packet");
                }
            }
        }
    }
}

/// What to do with one packet that arrived on `bridge`.
fn answer(book: &dyn LeaseBook, bridge: &str, pkt: &[u8]) -> Outcome {
    let req = match packet::parse(pkt) {
        Ok(r) => r,
        Err(e) => return Outcome::Bad(e.to_string()),
    };
    let mac = req.mac();
    let binding = match book.binding(bridge, &mac) {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::debug!(bridge, %mac, "DHCP from an unknown MAC");
            return Outcome::Silent;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot look up a DHCP lease");
            return Outcome::Silent;
        }
    };
    let lease = Lease {
        ip: binding.ip,
        prefix: binding.prefix,
        gateway: Ipv4Addr::from(u32::from(binding.net) + 1),
        lease_secs: LEASE_SECS,
        mtu: binding.mtu,
    };
    match packet::decide(&req, &lease) {
        Some(reply) => {
            tracing::debug!(bridge, %mac, kind = ?reply.kind, ip = %lease.ip, "DHCP reply");
            let bytes = packet::encode(&req, &reply, &lease);
            Outcome::Send(bytes, SocketAddrV4::new(reply.to, CLIENT_PORT), reply.kind)
        }
        None => Outcome::Silent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_lets_one_line_through_and_counts_the_rest() {
        let mut t = Throttle::default();
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        // Once the interval has passed, the next line carries the count held back.
        t.last = t.last.and_then(|at| at.checked_sub(LOG_EVERY));
        assert_eq!(t.allow(), Some(2));
        assert_eq!(t.allow(), None);
    }

    /// A lease book held in memory: one attached ENI, 02:00:00:00:00:0b on br0 with
    /// 10.0.2.9 in 10.0.2.0/28; every other MAC and bridge is unknown.
    struct Fake;

    impl LeaseBook for Fake {
        fn binding(&self, bridge: &str, mac: &str) -> ApiResult<Option<Binding>> {
            Ok(
                (bridge == "br0" && mac.eq_ignore_ascii_case("02:00:00:00:00:0b")).then_some(
                    Binding {
                        ip: Ipv4Addr::new(10, 0, 2, 9),
                        net: Ipv4Addr::new(10, 0, 2, 0),
                        prefix: 28,
                        mtu: MTU,
                    },
                ),
            )
        }
    }

    /// A lease book whose store fails.
    struct Broken;

    impl LeaseBook for Broken {
        fn binding(&self, _: &str, _: &str) -> ApiResult<Option<Binding>> {
            Err(crate::error::ApiError::internal("the store is gone"))
        }
    }

    /// A DISCOVER or REQUEST from `mac`.
    fn client(kind: u8, mac: [u8; 6], requested: Option<[u8; 4]>) -> Vec<u8> {
        let mut b = vec![0u8; 240];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&7u32.to_be_bytes());
        b[28..34].copy_from_slice(&mac);
        b[236..240].copy_from_slice(&[99, 130, 83, 99]);
        b.extend_from_slice(&[53, 1, kind]);
        if let Some(ip) = requested {
            b.extend_from_slice(&[50, 4]);
            b.extend_from_slice(&ip);
        }
        b.push(255);
        b
    }

    #[test]
    fn answers_come_from_the_binding_of_the_mac_on_the_bridge() {
        let mac_b = [2, 0, 0, 0, 0, 0x0b];
        let Outcome::Send(reply, to, kind) = answer(&Fake, "br0", &client(1, mac_b, None)) else {
            panic!("no offer");
        };
        assert_eq!(kind, MessageType::Offer);
        assert_eq!(to, SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT));
        assert_eq!(&reply[16..20], &[10, 0, 2, 9]);
        // The server identifier and router are the subnet's gateway, the mask its /28;
        // the lease time and MTU are the server's.
        let opts = &reply[240..];
        assert!(opts.windows(6).any(|w| w == [54, 4, 10, 0, 2, 1]));
        assert!(opts.windows(6).any(|w| w == [3, 4, 10, 0, 2, 1]));
        assert!(opts.windows(6).any(|w| w == [1, 4, 255, 255, 255, 240]));
        let mut lease = vec![51, 4];
        lease.extend_from_slice(&LEASE_SECS.to_be_bytes());
        assert!(opts.windows(6).any(|w| w == lease.as_slice()));
        let ack = answer(&Fake, "br0", &client(3, mac_b, Some([10, 0, 2, 9])));
        assert!(matches!(ack, Outcome::Send(_, _, MessageType::Ack)));
        let nak = answer(&Fake, "br0", &client(3, mac_b, Some([10, 0, 2, 10])));
        assert!(matches!(nak, Outcome::Send(_, _, MessageType::Nak)));
        // Another bridge, a stranger, a failing store: silence. Garbage: a bad packet.
        assert!(matches!(
            answer(&Fake, "br1", &client(1, mac_b, None)),
            Outcome::Silent
        ));
        assert!(matches!(
            answer(&Fake, "br0", &client(1, [2, 9, 9, 9, 9, 9], None)),
            Outcome::Silent
        ));
        assert!(matches!(
            answer(&Broken, "br0", &client(1, mac_b, None)),
            Outcome::Silent
        ));
        assert!(matches!(answer(&Fake, "br0", &[1, 2, 3]), Outcome::Bad(_)));
    }
}
