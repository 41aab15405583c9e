//! The daemon's IPv6 router services on each VPC bridge, as EC2's VPC router offers them:
//! router advertisements ([`ra`]: managed flag set, each subnet's /64 on-link but not for
//! SLAAC) and a stateful DHCPv6 server (here) that hands each attached ENI exactly its
//! IPv6 addresses.
//!
//! The DHCPv6 server is one UDP socket per VPC bridge on `[::]:547`, bound to that bridge
//! alone (`SO_BINDTODEVICE`) and joined to `ff02::1:2` there. A client is known by its MAC:
//! the link-layer address in its DUID (DUID-LLT or DUID-LL), else the one in the EUI-64
//! interface identifier of its link-local source address. Only an attached ENI with that
//! MAC in a subnet on the bridge gets an answer; the firewall's anti-spoofing keeps a tap to
//! its ENI's MAC. The server's DUID depends only on the bridge's name, so it is the same
//! after a restart ([`packet::server_duid`]). Replies go back to the client's link-local
//! address and port.
//!
//! Everything a guest sends is hostile: bad messages are counted and logged at most once
//! per [`crate::dhcp::LOG_EVERY`] per bridge.

pub mod ra;

pub use strato_wire::dhcp6 as packet;

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dhcp::{Throttle, LEASE_SECS};
use crate::error::ApiResult;
use crate::metrics::{inc, Metrics};

const SERVER_PORT: u16 = 547;
/// All DHCP relay agents and servers (RFC 8415 7.1).
const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// What the IPv6 router services may read. The domain implements it over the state store.
pub trait RouterBook: Send + Sync + 'static {
    /// The IPv6 blocks (`/64`s) of the subnets on `bridge`; none: no IPv6 there.
    fn prefixes(&self, bridge: &str) -> ApiResult<Vec<(Ipv6Addr, u8)>>;
    /// The IPv6 addresses of the attached ENI with `mac` (any case) in a subnet on
    /// `bridge`; `None` when there is no such ENI.
    fn addresses(&self, bridge: &str, mac: &str) -> ApiResult<Option<Vec<Ipv6Addr>>>;
}

/// The running services, by bridge.
#[derive(Debug, Default)]
pub struct Servers {
    tasks: Mutex<HashMap<String, Vec<tokio::task::JoinHandle<()>>>>,
}

impl Servers {
    fn tasks(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Vec<tokio::task::JoinHandle<()>>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the DHCPv6 server and the router advertisements of `bridge` over `book`
    /// unless they run. A failure is logged: IPv6 is an addition, IPv4 still works.
    pub fn serve(&self, bridge: &str, book: Arc<dyn RouterBook>, metrics: Arc<Metrics>) {
        let mut tasks = self.tasks();
        if tasks
            .get(bridge)
            .is_some_and(|t| t.iter().all(|h| !h.is_finished()))
        {
            return;
        }
        if let Some(old) = tasks.remove(bridge) {
            old.iter().for_each(|h| h.abort());
        }
        let mut handles = Vec::new();
        match open_socket(bridge).and_then(tokio::net::UdpSocket::from_std) {
            Ok(sock) => {
                let (name, book, metrics) =
                    (bridge.to_string(), Arc::clone(&book), Arc::clone(&metrics));
                handles.push(tokio::spawn(async move {
                    serve_loop(&*book, &metrics, &name, sock).await
                }));
            }
            Err(e) => tracing::warn!(bridge, error = %e, "cannot start the DHCPv6 server"),
        }
        match ra::open_socket(bridge) {
            Ok((sock, index)) => {
                let name = bridge.to_string();
                handles.push(tokio::spawn(async move {
                    ra::advertise_loop(&*book, &metrics, &name, index, sock).await
                }));
            }
            Err(e) => tracing::warn!(bridge, error = %e, "cannot start router advertisements"),
        }
        tracing::info!(bridge, "IPv6 router services started");
        tasks.insert(bridge.to_string(), handles);
    }

    /// Stops the services of `bridge`.
    pub fn stop(&self, bridge: &str) {
        if let Some(t) = self.tasks().remove(bridge) {
            t.iter().for_each(|h| h.abort());
        }
    }
}

/// The index of link `bridge`.
pub(crate) fn if_index(bridge: &str) -> std::io::Result<u32> {
    strato_net::validate_ifname(bridge)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let c = std::ffi::CString::new(bridge)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(index)
}

/// Opens a UDP socket on `[::]:547` that sees only `bridge`'s traffic, joined to the
/// all-servers group there.
pub fn open_socket(bridge: &str) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let index = if_index(bridge)?;
    let sock = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_only_v6(true)?;
    sock.set_reuse_address(true)?;
    sock.bind_device(Some(bridge.as_bytes()))?;
    sock.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT, 0, 0).into())?;
    sock.join_multicast_v6(&ALL_SERVERS, index)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// The MAC in the EUI-64 interface identifier of `a` (`…:xxff:fexx:…`, universal bit
/// flipped back), if it has one.
pub fn mac_of_eui64(a: Ipv6Addr) -> Option<[u8; 6]> {
    let o = a.octets();
    (o[11] == 0xff && o[12] == 0xfe).then_some([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]])
}

fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// What became of one message.
enum Outcome {
    /// Answer with this message.
    Send(Vec<u8>),
    /// Not a message the server reads (malformed): worth a (rate-limited) log line.
    Bad(String),
    /// Nothing to say (an unknown client, a message for another server).
    Silent,
}

async fn serve_loop(
    book: &dyn RouterBook,
    metrics: &Metrics,
    bridge: &str,
    sock: tokio::net::UdpSocket,
) {
    let mut buf = vec![0u8; 2048];
    let mut throttle = Throttle::default();
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok((n, SocketAddr::V6(from))) => (n, from),
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(bridge, error = %e, "DHCPv6 receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        inc(&metrics.dhcp6_requests_total);
        match answer(book, bridge, *from.ip(), &buf[..n]) {
            Outcome::Send(reply) => {
                if let Err(e) = sock.send_to(&reply, from).await {
                    tracing::warn!(bridge, %from, error = %e, "cannot send a DHCPv6 reply");
                    inc(&metrics.dhcp6_drops_total);
                    continue;
                }
                inc(&metrics.dhcp6_replies_total);
            }
            Outcome::Silent => inc(&metrics.dhcp6_drops_total),
            Outcome::Bad(why) => {
                inc(&metrics.dhcp6_drops_total);
                if let Some(unlogged) = throttle.allow() {
                    tracing::warn!(bridge, reason = %why, unlogged, "bad DHCPv6 message");
                }
            }
        }
    }
}

/// What to do with one message from `from` on `bridge`.
fn answer(book: &dyn RouterBook, bridge: &str, from: Ipv6Addr, pkt: &[u8]) -> Outcome {
    let req = match packet::parse(pkt) {
        Ok(r) => r,
        Err(e) => return Outcome::Bad(e.to_string()),
    };
    let Some(mac) = req.client_mac().or_else(|| mac_of_eui64(from)) else {
        tracing::debug!(bridge, %from, "DHCPv6 from a client with no MAC to go by");
        return Outcome::Silent;
    };
    let mac = mac_text(mac);
    let (addrs, on_link) = match (book.addresses(bridge, &mac), book.prefixes(bridge)) {
        (Ok(Some(a)), Ok(p)) => (a, p),
        (Ok(None), _) => {
            tracing::debug!(bridge, %mac, "DHCPv6 from an unknown MAC");
            return Outcome::Silent;
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot look up a DHCPv6 lease");
            return Outcome::Silent;
        }
    };
    let lease = packet::Lease {
        addrs,
        on_link,
        lifetime: LEASE_SECS,
    };
    let duid = packet::server_duid(bridge);
    match packet::decide(&req, &duid, &lease) {
        Some(reply) => {
            tracing::debug!(bridge, %mac, kind = ?reply.kind, "DHCPv6 reply");
            Outcome::Send(packet::encode(&reply))
        }
        None => Outcome::Silent,
    }
}

#[cfg(test)]
mod tests {
    use super::packet::{IaNa, Message, MessageType};
    use super::*;

    /// One attached ENI, 02:00:00:00:00:0b on br0 with two addresses of 2001:db8:0:1::/64.
    struct Fake;

    impl RouterBook for Fake {
        fn prefixes(&self, bridge: &str) -> ApiResult<Vec<(Ipv6Addr, u8)>> {
            Ok(if bridge == "br0" {
                vec![("2001:db8:0:1::".parse().unwrap(), 64)]
            } else {
                vec![]
            })
        }

        fn addresses(&self, bridge: &str, mac: &str) -> ApiResult<Option<Vec<Ipv6Addr>>> {
            Ok(
                (bridge == "br0" && mac.eq_ignore_ascii_case("02:00:00:00:00:0b")).then(|| {
                    vec![
                        "2001:db8:0:1::10".parse().unwrap(),
                        "2001:db8:0:1::11".parse().unwrap(),
                    ]
                }),
            )
        }
    }

    fn solicit(duid: Vec<u8>) -> Vec<u8> {
        packet::encode(&Message {
            client_id: Some(duid),
            ias: vec![IaNa {
                iaid: 1,
                t1: 0,
                t2: 0,
                addrs: vec![],
                status: None,
            }],
            ..Message::new(MessageType::Solicit, 42)
        })
    }

    #[test]
    fn clients_are_known_by_the_mac_in_their_duid_or_link_local_address() {
        let ll: Ipv6Addr = "fe80::ff:fe00:b".parse().unwrap();
        assert_eq!(mac_of_eui64(ll), Some([2, 0, 0, 0, 0, 0x0b]));
        assert_eq!(mac_of_eui64("fe80::1".parse().unwrap()), None);
        let duid_ll = vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0x0b];
        let Outcome::Send(b) = answer(&Fake, "br0", "fe80::1".parse().unwrap(), &solicit(duid_ll))
        else {
            panic!("no advertise");
        };
        let adv = packet::parse(&b).unwrap();
        assert_eq!(adv.kind, MessageType::Advertise);
        assert_eq!(adv.ias[0].addrs.len(), 2);
        assert_eq!(adv.ias[0].addrs[0].valid, LEASE_SECS);
        assert_eq!(adv.server_id, Some(packet::server_duid("br0")));
        // A DUID-EN says nothing of the MAC: the EUI-64 source address does.
        let duid_en = vec![0, 2, 0, 0, 0, 9, 1];
        assert!(matches!(
            answer(&Fake, "br0", ll, &solicit(duid_en.clone())),
            Outcome::Send(_)
        ));
        assert!(matches!(
            answer(&Fake, "br0", "fe80::1".parse().unwrap(), &solicit(duid_en)),
            Outcome::Silent
        ));
        // A stranger, another bridge, garbage.
        let other = vec![0, 3, 0, 1, 2, 9, 9, 9, 9, 9];
        assert!(matches!(
            answer(&Fake, "br0", ll, &solicit(other)),
            Outcome::Silent
        ));
        let duid_ll = vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0x0b];
        assert!(matches!(
            answer(&Fake, "br1", ll, &solicit(duid_ll)),
            Outcome::Silent
        ));
        assert!(matches!(answer(&Fake, "br0", ll, &[1, 2]), Outcome::Bad(_)));
    }
}
