//! Router advertisements on a VPC bridge: a raw ICMPv6 socket bound to the bridge that
//! reads router solicitations (a kernel filter passes nothing else) and sends
//! advertisements to all nodes (`ff02::1`) every [`INTERVAL`] and at most every
//! [`MIN_GAP`] in answer to solicitations (RFC 4861 6.2.6 allows a multicast answer).
//!
//! An advertisement says: addresses come from DHCPv6 (M=1, as on EC2), this router is the
//! default one, and each subnet's /64 is on-link but not for SLAAC (A=0). A bridge with no
//! IPv6 subnet gets none. Advertisements need the bridge's link-local address as their
//! source, which exists once the bridge has a port with carrier; until then none is sent.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use strato_wire::ndp::{self, Advertisement, Prefix};

use super::RouterBook;
use crate::cloud::network::plumbing::blocking;
use crate::dhcp::{Throttle, LEASE_SECS, MTU};
use crate::metrics::{inc, Metrics};

/// Unsolicited advertisements go out this often (RFC 4861's MaxRtrAdvInterval may be 4 s
/// to 1800 s; a short one lets a guest that missed a solicitation's answer catch up).
pub const INTERVAL: Duration = Duration::from_secs(30);
/// The least time between two advertisements sent in answer to solicitations
/// (MIN_DELAY_BETWEEN_RAS), so a guest's flood of solicitations is not multiplied.
pub const MIN_GAP: Duration = Duration::from_secs(3);
/// How long guests may use this router as their default one (RFC 4861's default).
pub const ROUTER_LIFETIME: u16 = 1800;

/// All nodes on the link.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All routers on the link, where solicitations go.
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// `ICMP6_FILTER` (linux/icmpv6.h), at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;

/// Opens the raw ICMPv6 socket of `bridge`: bound to it, hop limit 255 both ways (RFC
/// 4861 requires it of neighbour discovery), joined to all-routers, passing only router
/// solicitations. Returns it with the bridge's index.
pub fn open_socket(bridge: &str) -> std::io::Result<(tokio::net::UdpSocket, u32)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let index = super::if_index(bridge)?;
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    sock.bind_device(Some(bridge.as_bytes()))?;
    sock.set_multicast_if_v6(index)?;
    sock.set_multicast_hops_v6(255)?;
    sock.set_unicast_hops_v6(255)?;
    sock.set_multicast_loop_v6(false)?;
    sock.join_multicast_v6(&ALL_ROUTERS, index)?;
    // struct icmp6_filter: a set bit blocks that type; all blocked but solicitations.
    let mut filter = [u32::MAX; 8];
    let t = usize::from(ndp::ROUTER_SOLICITATION);
    filter[t >> 5] &= !(1u32 << (t & 31));
    // SAFETY: `filter` is a valid 32-byte icmp6_filter for the given length; `sock` is open.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    sock.set_nonblocking(true)?;
    // A datagram socket in all but name: tokio's UDP socket only calls recvfrom/sendto on
    // it, which raw sockets answer the same way (the port of an address is 0).
    let std: std::net::UdpSocket = sock.into();
    Ok((tokio::net::UdpSocket::from_std(std)?, index))
}

/// The advertisement of `bridge` with `prefixes` on-link, from the bridge's `mac`.
pub fn advertisement(prefixes: &[(Ipv6Addr, u8)], mac: Option<[u8; 6]>) -> Advertisement {
    Advertisement {
        hop_limit: 64,
        managed: true,
        other: false,
        lifetime: ROUTER_LIFETIME,
        source_mac: mac,
        mtu: Some(u32::from(MTU)),
        prefixes: prefixes
            .iter()
            .map(|&(prefix, len)| Prefix {
                prefix,
                len,
                on_link: true,
                autonomous: false,
                valid: LEASE_SECS,
                preferred: LEASE_SECS,
            })
            .collect(),
    }
}

/// Sends and answers for as long as the task lives.
pub async fn advertise_loop(
    book: &dyn RouterBook,
    metrics: &Metrics,
    bridge: &str,
    index: u32,
    sock: tokio::net::UdpSocket,
) {
    let mut buf = vec![0u8; 1500];
    let mut last_sent: Option<Instant> = None;
    let mut throttle = Throttle::default();
    let mut next = tokio::time::Instant::now();
    loop {
        let solicited = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, _)) => {
                    inc(&metrics.router_solicitations_total);
                    if let Err(e) = ndp::parse_solicitation(&buf[..n]) {
                        if let Some(unlogged) = throttle.allow() {
                            tracing::info!(bridge, error = %e, unlogged, "bad router solicitation");
                        }
                        continue;
                    }
                    if last_sent.is_some_and(|t| t.elapsed() < MIN_GAP) {
                        continue;
                    }
                    true
                }
                Err(e) => {
                    tracing::warn!(bridge, error = %e, "router solicitation receive failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            _ = tokio::time::sleep_until(next) => false,
        };
        if !solicited {
            next = tokio::time::Instant::now() + INTERVAL;
        }
        match send(book, bridge, index, &sock).await {
            Ok(true) => {
                inc(&metrics.router_advertisements_total);
                last_sent = Some(Instant::now());
            }
            Ok(false) => {}
            Err(e) => {
                if let Some(unlogged) = throttle.allow() {
                    tracing::warn!(bridge, error = %e, unlogged, "cannot send a router advertisement");
                }
            }
        }
    }
}

/// Sends one advertisement if the bridge has IPv6 subnets and a link-local address;
/// whether it did.
async fn send(
    book: &dyn RouterBook,
    bridge: &str,
    index: u32,
    sock: &tokio::net::UdpSocket,
) -> Result<bool, String> {
    let prefixes = book.prefixes(bridge).map_err(|e| e.message)?;
    if prefixes.is_empty() {
        return Ok(false);
    }
    let b = bridge.to_string();
    let (addrs, mac) = blocking(move || {
        let addrs = strato_net::link6::addresses6(&b)?;
        let mac = strato_net::link::link_mac(&b)?;
        Ok::<_, strato_net::NetError>((addrs, mac))
    })
    .await?;
    if !addrs.iter().any(|(a, _)| a.is_unicast_link_local()) {
        return Ok(false);
    }
    let ra = ndp::encode_advertisement(&advertisement(&prefixes, mac));
    sock.send_to(&ra, SocketAddrV6::new(ALL_NODES, 0, 0, index))
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisements_are_managed_with_on_link_prefixes_and_no_slaac() {
        let p: Ipv6Addr = "2001:db8:0:1::".parse().unwrap();
        let ra = advertisement(&[(p, 64)], Some([2, 0, 0, 0, 0, 1]));
        let back = ndp::parse_advertisement(&ndp::encode_advertisement(&ra)).unwrap();
        assert!(back.managed && !back.other);
        assert_eq!(back.lifetime, ROUTER_LIFETIME);
        assert_eq!(back.mtu, Some(1500));
        assert_eq!(back.prefixes.len(), 1);
        assert!(back.prefixes[0].on_link && !back.prefixes[0].autonomous);
        assert_eq!((back.prefixes[0].prefix, back.prefixes[0].len), (p, 64));
    }
}
