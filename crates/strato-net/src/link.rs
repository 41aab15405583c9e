//! Links and addresses over rtnetlink: the subnet bridge, the taps of network interfaces,
//! and the link state the daemon's system status checks read.
//!
//! Every operation is idempotent so the daemon can replay it after a crash or restart:
//! creating what exists (with the right shape) is a no-op, deleting what is gone is `Ok`.
//! Objects that exist with the wrong shape (a tap where the bridge should be, the gateway
//! with another prefix) are errors rather than silently replaced.

use std::io;
use std::net::Ipv4Addr;

use crate::netlink::{
    read_u32, Attrs, Message, Socket, IFADDRMSG_LEN, IFA_ADDRESS, IFA_LOCAL, IFINFOMSG_LEN,
    IFLA_ADDRESS, IFLA_EXT_MASK, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO,
    IFLA_MASTER, IFLA_MTU, IFLA_TUN_TYPE, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    RTEXT_FILTER_SKIP_STATS, RTM_DELADDR, RTM_DELLINK, RTM_GETADDR, RTM_GETLINK, RTM_NEWADDR,
    RTM_NEWLINK,
};
use crate::{tun, validate_ifname, NetError};

const IFF_UP: u32 = libc::IFF_UP as u32;
const IFF_LOWER_UP: u32 = libc::IFF_LOWER_UP as u32;
const KIND_BRIDGE: &str = "bridge";
const KIND_TUN: &str = "tun";

/// The state of one network interface, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind (`bridge`, `tun`, `veth`, ...); `None` for physical devices.
    pub kind: Option<String>,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Carrier (`IFF_LOWER_UP`): for a tap, true while a process holds it open.
    pub lower_up: bool,
    /// MTU.
    pub mtu: Option<u32>,
    /// Index of the bridge (or other master) the link is enslaved to.
    pub master_index: Option<u32>,
    /// Name of that master, when it could be resolved.
    pub master: Option<String>,
    /// Hardware address (all zero for links without an Ethernet address).
    pub mac: [u8; 6],
}

/// What [`get_link`] parses from an `RTM_NEWLINK` reply.
pub(crate) struct LinkInfo {
    pub(crate) status: LinkStatus,
    /// `IFLA_TUN_TYPE` for tun/tap links (`IFF_TUN` or `IFF_TAP`), when reported.
    tun_type: Option<u8>,
    /// The kind's own attributes (`IFLA_INFO_DATA`), for the kinds that read them (vxlan).
    pub(crate) info_data: Vec<u8>,
}

pub(crate) enum Selector<'a> {
    Name(&'a str),
    Index(u32),
}

/// Creates bridge `name` if absent, gives it `gateway/prefix_len` if it lacks it, and sets
/// it up.
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix_len: u8) -> Result<(), NetError> {
    validate_ifname(name)?;
    if prefix_len > 32 {
        return Err(NetError::InvalidPrefix(prefix_len));
    }
    let mut sock = open_socket()?;
    let link = bridge_link(&mut sock, name)?;
    let index = link.status.index;

    let addrs = addresses(&mut sock, index)
        .map_err(|e| NetError::netlink(format!("list addresses of {name}"), e))?;
    match addrs.iter().find(|(addr, _)| *addr == gateway) {
        Some(&(_, existing)) if existing == prefix_len => {}
        Some(&(_, existing)) => {
            return Err(NetError::AddressConflict {
                name: name.to_owned(),
                addr: gateway,
                existing,
                wanted: prefix_len,
            })
        }
        None => add_address(&mut sock, index, gateway, prefix_len)
            .map_err(|e| NetError::netlink(format!("add {gateway}/{prefix_len} to {name}"), e))?,
    }

    if !link.status.admin_up {
        set_up(&mut sock, index).map_err(|e| NetError::netlink(format!("set {name} up"), e))?;
    }
    Ok(())
}

/// Creates bridge `name` if absent and sets it up, without giving it any address: a VPC's
/// bridge exists from CreateVpc on, and gets a gateway address per subnet later.
pub fn ensure_bridge_only(name: &str) -> Result<(), NetError> {
    validate_ifname(name)?;
    let mut sock = open_socket()?;
    let link = bridge_link(&mut sock, name)?;
    if !link.status.admin_up {
        set_up(&mut sock, link.status.index)
            .map_err(|e| NetError::netlink(format!("set {name} up"), e))?;
    }
    Ok(())
}

/// Removes `addr/prefix_len` from link `name`; an address (or a link) that is already gone
/// is `Ok`.
pub fn delete_address(name: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<(), NetError> {
    validate_ifname(name)?;
    if prefix_len > 32 {
        return Err(NetError::InvalidPrefix(prefix_len));
    }
    let mut sock = open_socket()?;
    let Some(link) = lookup(&mut sock, Selector::Name(name))? else {
        return Ok(());
    };
    let mut msg = Message::new(RTM_DELADDR, 0);
    msg.ifaddrmsg(prefix_len, link.status.index)
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets());
    match sock.request(msg) {
        Ok(_) => Ok(()),
        // EADDRNOTAVAIL: the link does not have this address (any more).
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
        Err(e) => Err(NetError::netlink(
            format!("delete {addr}/{prefix_len} from {name}"),
            e,
        )),
    }
}

/// Gives link `name` the address `addr/prefix_len` unless it has it already (with any
/// prefix length); a missing link is an error.
pub fn ensure_address(name: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<(), NetError> {
    validate_ifname(name)?;
    if prefix_len > 32 {
        return Err(NetError::InvalidPrefix(prefix_len));
    }
    let mut sock = open_socket()?;
    let link = lookup(&mut sock, Selector::Name(name))?
        .ok_or_else(|| NetError::NoSuchLink(name.to_owned()))?;
    add_address(&mut sock, link.status.index, addr, prefix_len)
        .map_err(|e| NetError::netlink(format!("add {addr}/{prefix_len} to {name}"), e))
}

/// The bridge `name`, created if absent; a link of another kind under that name is an error.
/// A bridge with no address of its own takes the lowest MAC of its ports, so every tap
/// that joins with a lower one would change the gateway's MAC under the guests' ARP caches
/// and cut them off until those expire. Bridges here get a fixed MAC: a random one at
/// creation, and an existing bridge keeps the one it has.
fn bridge_link(sock: &mut Socket, name: &str) -> Result<LinkInfo, NetError> {
    let link = match lookup(sock, Selector::Name(name))? {
        Some(link) => {
            set_mac(sock, link.status.index, link.status.mac)
                .map_err(|e| NetError::netlink(format!("pin the MAC of {name}"), e))?;
            link
        }
        None => {
            let mut msg = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
            msg.ifinfomsg(0, 0, 0)
                .attr_str(IFLA_IFNAME, name)
                .attr(IFLA_ADDRESS, &crate::MacAddr::random().octets());
            let nest = msg.begin_nest(IFLA_LINKINFO);
            msg.attr_str(IFLA_INFO_KIND, KIND_BRIDGE).end_nest(nest);
            match sock.request(msg) {
                Ok(_) => {}
                // Someone else created it meanwhile; its kind is checked below.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(NetError::netlink(format!("create bridge {name}"), e)),
            }
            lookup(sock, Selector::Name(name))?
                .ok_or_else(|| NetError::NoSuchLink(name.to_owned()))?
        }
    };
    check_kind(&link.status, KIND_BRIDGE)?;
    Ok(link)
}

/// Opens a queue of the existing tap `name` (flags `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`),
/// close-on-exec: the daemon hands the descriptor to a jailed monitor, which opens nothing
/// by name. Must be called in the tap's network namespace.
pub fn open_tap(name: &str) -> Result<std::fs::File, NetError> {
    validate_ifname(name)?;
    tun::open_tap(name).map_err(|e| NetError::io(format!("open tap {name}"), e))
}

/// Opens up to `queues` queues of the existing tap `name` (one per queue pair of an
/// enhanced device), as [`open_tap`] does one: all of them on a multiqueue tap (every tap
/// [`create_tap`] makes), one on an older single-queue tap.
pub fn open_tap_queues(name: &str, queues: usize) -> Result<Vec<std::fs::File>, NetError> {
    validate_ifname(name)?;
    tun::open_tap_queues(name, queues).map_err(|e| NetError::io(format!("open tap {name}"), e))
}

/// Creates persistent tap `name` (flags `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR |
/// IFF_MULTI_QUEUE`) if absent,
/// sets its MTU if given, enslaves it to `bridge` and sets it up.
///
/// An existing tap is reused (and moved to `bridge` if it is elsewhere); an existing link
/// of another kind is an error, as is a missing bridge.
pub fn create_tap(name: &str, bridge: &str, mtu: Option<u32>) -> Result<(), NetError> {
    validate_ifname(name)?;
    validate_ifname(bridge)?;
    let mut sock = open_socket()?;
    let br = lookup(&mut sock, Selector::Name(bridge))?
        .ok_or_else(|| NetError::NoSuchLink(bridge.to_owned()))?;
    check_kind(&br.status, KIND_BRIDGE)?;

    let link = match lookup(&mut sock, Selector::Name(name))? {
        Some(link) => link,
        None => {
            tun::create_persistent_tap(name)
                .map_err(|e| NetError::io(format!("create tap {name}"), e))?;
            lookup(&mut sock, Selector::Name(name))?
                .ok_or_else(|| NetError::NoSuchLink(name.to_owned()))?
        }
    };
    check_kind(&link.status, KIND_TUN)?;
    if link.tun_type.is_some_and(|t| i32::from(t) != libc::IFF_TAP) {
        return Err(NetError::WrongKind {
            name: name.to_owned(),
            expected: "tap",
            found: "tun device in layer 3 mode".to_owned(),
        });
    }
    let index = link.status.index;

    if let Some(mtu) = mtu.filter(|&m| link.status.mtu != Some(m)) {
        let mut msg = Message::new(RTM_NEWLINK, 0);
        msg.ifinfomsg(index, 0, 0).attr_u32(IFLA_MTU, mtu);
        sock.request(msg)
            .map_err(|e| NetError::netlink(format!("set MTU of {name} to {mtu}"), e))?;
    }
    if link.status.master_index != Some(br.status.index) {
        let mut msg = Message::new(RTM_NEWLINK, 0);
        msg.ifinfomsg(index, 0, 0)
            .attr_u32(IFLA_MASTER, br.status.index);
        sock.request(msg)
            .map_err(|e| NetError::netlink(format!("add {name} to bridge {bridge}"), e))?;
    }
    if !link.status.admin_up {
        set_up(&mut sock, index).map_err(|e| NetError::netlink(format!("set {name} up"), e))?;
    }
    Ok(())
}

/// Deletes link `name` (a tap, a bridge, ...); a link that does not exist is `Ok`.
pub fn delete_link(name: &str) -> Result<(), NetError> {
    validate_ifname(name)?;
    let mut sock = open_socket()?;
    let mut msg = Message::new(RTM_DELLINK, 0);
    msg.ifinfomsg(0, 0, 0).attr_str(IFLA_IFNAME, name);
    match sock.request(msg) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(NetError::netlink(format!("delete link {name}"), e)),
    }
}

/// The state of link `name`, or `None` if there is no such link.
///
/// A tap is healthy when it exists, is `admin_up`, and has `lower_up` (carrier) while a
/// monitor holds it open.
pub fn link_status(name: &str) -> Result<Option<LinkStatus>, NetError> {
    validate_ifname(name)?;
    let mut sock = open_socket()?;
    let Some(mut link) = lookup(&mut sock, Selector::Name(name))? else {
        return Ok(None);
    };
    if let Some(master) = link.status.master_index {
        link.status.master = lookup(&mut sock, Selector::Index(master))?.map(|m| m.status.name);
    }
    Ok(Some(link.status))
}

/// The hardware address of link `name`, or `None` if there is no such link.
pub fn link_mac(name: &str) -> Result<Option<[u8; 6]>, NetError> {
    validate_ifname(name)?;
    let mut sock = open_socket()?;
    Ok(lookup(&mut sock, Selector::Name(name))?.map(|l| l.status.mac))
}

/// The IPv4 addresses of link `name` with their prefix lengths.
pub fn link_addresses(name: &str) -> Result<Vec<(Ipv4Addr, u8)>, NetError> {
    validate_ifname(name)?;
    let mut sock = open_socket()?;
    let link = lookup(&mut sock, Selector::Name(name))?
        .ok_or_else(|| NetError::NoSuchLink(name.to_owned()))?;
    addresses(&mut sock, link.status.index)
        .map_err(|e| NetError::netlink(format!("list addresses of {name}"), e))
}

pub(crate) fn open_socket() -> Result<Socket, NetError> {
    Socket::open().map_err(|e| NetError::io("open netlink socket", e))
}

pub(crate) fn check_kind(status: &LinkStatus, expected: &'static str) -> Result<(), NetError> {
    if status.kind.as_deref() == Some(expected) {
        return Ok(());
    }
    Err(NetError::WrongKind {
        name: status.name.clone(),
        expected: if expected == KIND_TUN {
            "tap"
        } else {
            expected
        },
        found: status.kind.clone().unwrap_or_else(|| "device".to_owned()),
    })
}

/// Looks a link up by name or index; `None` when the kernel says `ENODEV`.
pub(crate) fn lookup(sock: &mut Socket, sel: Selector<'_>) -> Result<Option<LinkInfo>, NetError> {
    let mut msg = Message::new(RTM_GETLINK, 0);
    let what = match sel {
        Selector::Name(name) => {
            msg.ifinfomsg(0, 0, 0).attr_str(IFLA_IFNAME, name);
            format!("look up link {name}")
        }
        Selector::Index(index) => {
            msg.ifinfomsg(index, 0, 0);
            format!("look up link {index}")
        }
    };
    msg.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    let replies = match sock.request(msg) {
        Ok(replies) => replies,
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
        Err(e) => return Err(NetError::netlink(what, e)),
    };
    let link = replies
        .iter()
        .filter(|r| r.ty == RTM_NEWLINK)
        .find_map(|r| parse_link(&r.payload));
    match link {
        Some(link) => Ok(Some(link)),
        None => Err(NetError::netlink(
            what,
            io::Error::new(io::ErrorKind::InvalidData, "no usable link in reply"),
        )),
    }
}

/// Parses an `RTM_NEWLINK` payload (`struct ifinfomsg` and attributes).
fn parse_link(payload: &[u8]) -> Option<LinkInfo> {
    let index = read_u32(payload, 4)?;
    let flags = read_u32(payload, 8)?;
    let mut status = LinkStatus {
        index,
        name: String::new(),
        kind: None,
        admin_up: flags & IFF_UP != 0,
        lower_up: flags & IFF_LOWER_UP != 0,
        mtu: None,
        master_index: None,
        master: None,
        mac: [0; 6],
    };
    let mut tun_type = None;
    let mut info_data = Vec::new();
    for (ty, data) in Attrs::new(payload.get(IFINFOMSG_LEN..)?) {
        match ty {
            IFLA_IFNAME => status.name = c_string(data),
            IFLA_ADDRESS => {
                if let Ok(mac) = <[u8; 6]>::try_from(data) {
                    status.mac = mac;
                }
            }
            IFLA_MTU => status.mtu = read_u32(data, 0),
            IFLA_MASTER => status.master_index = read_u32(data, 0).filter(|&m| m != 0),
            IFLA_LINKINFO => {
                for (ty, data) in Attrs::new(data) {
                    match ty {
                        IFLA_INFO_KIND => status.kind = Some(c_string(data)),
                        IFLA_INFO_DATA => {
                            info_data = data.to_vec();
                            tun_type = Attrs::new(data)
                                .find(|&(t, _)| t == IFLA_TUN_TYPE)
                                .and_then(|(_, d)| d.first().copied());
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if status.kind.as_deref() != Some(KIND_TUN) {
        tun_type = None;
    }
    Some(LinkInfo {
        status,
        tun_type,
        info_data,
    })
}

/// A NUL-terminated (or not) attribute string.
pub(crate) fn c_string(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(data.get(..end).unwrap_or_default()).into_owned()
}

/// Sets the MAC of link `index`; the kernel then keeps it (a bridge no longer follows its
/// ports).
fn set_mac(sock: &mut Socket, index: u32, mac: [u8; 6]) -> io::Result<()> {
    let mut msg = Message::new(RTM_NEWLINK, 0);
    msg.ifinfomsg(index, 0, 0).attr(IFLA_ADDRESS, &mac);
    sock.request(msg).map(drop)
}

pub(crate) fn set_up(sock: &mut Socket, index: u32) -> io::Result<()> {
    let mut msg = Message::new(RTM_NEWLINK, 0);
    msg.ifinfomsg(index, IFF_UP, IFF_UP);
    sock.request(msg).map(drop)
}

/// Adds `addr/prefix_len` to link `index`; an existing identical address is `Ok`.
pub(crate) fn add_address(
    sock: &mut Socket,
    index: u32,
    addr: Ipv4Addr,
    prefix_len: u8,
) -> io::Result<()> {
    let mut msg = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    msg.ifaddrmsg(prefix_len, index)
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets());
    match sock.request(msg) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other.map(drop),
    }
}

/// IPv4 addresses (local address and prefix length) of link `index`.
fn addresses(sock: &mut Socket, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
    let mut msg = Message::new(RTM_GETADDR, NLM_F_DUMP);
    msg.ifaddrmsg(0, 0);
    let replies = sock.request(msg)?;
    let mut out = Vec::new();
    for reply in replies.iter().filter(|r| r.ty == RTM_NEWADDR) {
        let p = &reply.payload;
        let (Some(&family), Some(&prefix), Some(ifindex)) = (p.first(), p.get(1), read_u32(p, 4))
        else {
            continue;
        };
        if i32::from(family) != libc::AF_INET || ifindex != index {
            continue;
        }
        let mut local = None;
        let mut address = None;
        for (ty, data) in Attrs::new(p.get(IFADDRMSG_LEN..).unwrap_or_default()) {
            let Ok(octets) = <[u8; 4]>::try_from(data) else {
                continue;
            };
            match ty {
                IFA_LOCAL => local = Some(Ipv4Addr::from(octets)),
                IFA_ADDRESS => address = Some(Ipv4Addr::from(octets)),
                _ => {}
            }
        }
        if let Some(addr) = local.or(address) {
            out.push((addr, prefix));
        }
    }
    Ok(out)
}

/// Test helpers that create objects the daemon never needs.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::netlink::VETH_INFO_PEER;

    /// Creates veth pair `a`/`b`, gives `a` the address `addr/prefix_len`, sets both up.
    pub(crate) fn veth_pair(a: &str, b: &str, addr: Ipv4Addr, prefix_len: u8) {
        let mut sock = Socket::open().expect("netlink socket");
        let mut msg = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        msg.ifinfomsg(0, 0, 0).attr_str(IFLA_IFNAME, a);
        let info = msg.begin_nest(IFLA_LINKINFO);
        msg.attr_str(IFLA_INFO_KIND, "veth");
        let data = msg.begin_nest(IFLA_INFO_DATA);
        let peer = msg.begin_nest(VETH_INFO_PEER);
        msg.ifinfomsg(0, 0, 0).attr_str(IFLA_IFNAME, b);
        msg.end_nest(peer).end_nest(data).end_nest(info);
        sock.request(msg).expect("create veth pair");
        let ia = lookup(&mut sock, Selector::Name(a))
            .expect("lookup")
            .expect("a");
        let ib = lookup(&mut sock, Selector::Name(b))
            .expect("lookup")
            .expect("b");
        add_address(&mut sock, ia.status.index, addr, prefix_len).expect("add address");
        set_up(&mut sock, ia.status.index).expect("a up");
        set_up(&mut sock, ib.status.index).expect("b up");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testns::in_netns;

    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    #[test]
    fn bridge_and_tap_lifecycle() {
        in_netns(|| {
            ensure_bridge("br0", GW, 24).expect("create bridge");
            ensure_bridge("br0", GW, 24).expect("bridge again");
            assert_eq!(link_addresses("br0").expect("addrs"), vec![(GW, 24)]);
            let br = link_status("br0").expect("status").expect("bridge exists");
            assert_eq!(br.kind.as_deref(), Some("bridge"));
            assert!(br.admin_up);

            let err = ensure_bridge("br0", GW, 16).expect_err("prefix conflict");
            assert!(
                matches!(err, NetError::AddressConflict { existing: 24, .. }),
                "{err}"
            );

            create_tap("tap0", "br0", Some(1400)).expect("create tap");
            create_tap("tap0", "br0", Some(1400)).expect("tap again");
            let tap = link_status("tap0").expect("status").expect("tap exists");
            assert_eq!(tap.kind.as_deref(), Some("tun"));
            assert_eq!(tap.master.as_deref(), Some("br0"));
            assert_eq!(tap.master_index, Some(br.index));
            assert_eq!(tap.mtu, Some(1400));
            assert!(tap.admin_up);
            assert!(!tap.lower_up, "nobody holds the tap open");
            assert_eq!(link_mac("tap0").expect("mac"), Some(tap.mac));
            assert_eq!(tap.mac[0] & 1, 0, "unicast MAC");

            // A port with a lower MAC does not take over the bridge's.
            let mut sock = open_socket().expect("socket");
            set_mac(&mut sock, tap.index, [2, 0, 0, 0, 0, 1]).expect("tap MAC");
            assert_eq!(link_mac("br0").expect("mac"), Some(br.mac));

            // While a process holds the tap open it has carrier.
            let fd = tun::open_tap("tap0").expect("open tap");
            assert!(link_status("tap0").expect("status").expect("tap").lower_up);
            drop(fd);

            // The tap is multiqueue: an enhanced device gets a queue per vCPU.
            let queues = open_tap_queues("tap0", 4).expect("four queues");
            assert_eq!(queues.len(), 4);
            drop(queues);
            // A single-queue tap made elsewhere still opens, with one queue.
            let old = tun::open_tap_with("oldtap0", tun::TAP_FLAGS).expect("single-queue tap");
            // SAFETY: TUNSETPERSIST takes its argument by value and touches no memory.
            let ret = unsafe {
                libc::ioctl(
                    std::os::fd::AsRawFd::as_raw_fd(&old),
                    libc::TUNSETPERSIST,
                    1 as libc::c_ulong,
                )
            };
            assert_eq!(ret, 0, "persist the single-queue tap");
            drop(old);
            assert_eq!(open_tap_queues("oldtap0", 4).expect("one queue").len(), 1);

            // A bridge name taken by the tap, a tap onto a non-bridge, a missing bridge.
            let err = ensure_bridge("tap0", GW, 24).expect_err("tap is not a bridge");
            assert!(matches!(err, NetError::WrongKind { .. }), "{err}");
            let err = create_tap("tap1", "tap0", None).expect_err("tap0 is not a bridge");
            assert!(matches!(err, NetError::WrongKind { .. }), "{err}");
            let err = create_tap("tap1", "nobr", None).expect_err("missing bridge");
            assert!(matches!(err, NetError::NoSuchLink(_)), "{err}");
            let err = create_tap("br0", "br0", None).expect_err("bridge is not a tap");
            assert_eq!(err.to_string(), "Link br0 is a bridge, not a tap");

            delete_link("tap0").expect("delete tap");
            assert_eq!(link_status("tap0").expect("status"), None);
            delete_link("tap0").expect("delete absent tap");
            delete_link("br0").expect("delete bridge");
            assert_eq!(link_status("br0").expect("status"), None);
            assert_eq!(link_mac("br0").expect("mac"), None);
        });
    }

    #[test]
    fn bridge_without_address_then_gateways_come_and_go() {
        in_netns(|| {
            let gw2 = Ipv4Addr::new(10, 0, 1, 1);
            ensure_bridge_only("vbr0").expect("bare bridge");
            ensure_bridge_only("vbr0").expect("bare bridge again");
            let br = link_status("vbr0").expect("status").expect("bridge");
            assert_eq!(br.kind.as_deref(), Some("bridge"));
            assert!(br.admin_up);
            assert!(link_addresses("vbr0").expect("addrs").is_empty());

            ensure_bridge("vbr0", GW, 24).expect("first gateway");
            ensure_bridge("vbr0", gw2, 28).expect("second gateway");
            let mut addrs = link_addresses("vbr0").expect("addrs");
            addrs.sort();
            assert_eq!(addrs, vec![(GW, 24), (gw2, 28)]);

            delete_address("vbr0", GW, 24).expect("delete first");
            delete_address("vbr0", GW, 24).expect("delete absent address");
            assert_eq!(link_addresses("vbr0").expect("addrs"), vec![(gw2, 28)]);
            delete_address("nolink", GW, 24).expect("absent link");

            create_tap("vtap0", "vbr0", None).expect("tap");
            let err = ensure_bridge_only("vtap0").expect_err("tap is not a bridge");
            assert!(matches!(err, NetError::WrongKind { .. }), "{err}");
            for name in ["vtap0", "vbr0"] {
                delete_link(name).expect("delete");
            }
            assert_eq!(link_status("vbr0").expect("status"), None);
        });
    }

    #[test]
    fn tap_moves_to_new_bridge() {
        in_netns(|| {
            ensure_bridge("br0", GW, 24).expect("br0");
            ensure_bridge("br1", Ipv4Addr::new(10, 0, 1, 1), 24).expect("br1");
            create_tap("tap0", "br0", None).expect("tap on br0");
            create_tap("tap0", "br1", None).expect("tap on br1");
            let tap = link_status("tap0").expect("status").expect("tap");
            assert_eq!(tap.master.as_deref(), Some("br1"));
            for name in ["tap0", "br0", "br1"] {
                delete_link(name).expect("delete");
            }
        });
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(matches!(
            ensure_bridge("br0", GW, 33),
            Err(NetError::InvalidPrefix(33))
        ));
        assert!(matches!(
            create_tap("this-name-is-too-long", "br0", None),
            Err(NetError::InvalidName { .. })
        ));
        assert!(matches!(delete_link(""), Err(NetError::InvalidName { .. })));
        assert!(matches!(
            delete_address("br0", GW, 40),
            Err(NetError::InvalidPrefix(40))
        ));
        assert!(matches!(
            ensure_bridge_only("a b"),
            Err(NetError::InvalidName { .. })
        ));
        assert!(matches!(
            link_status("a/b"),
            Err(NetError::InvalidName { .. })
        ));
    }

    #[test]
    fn parse_link_tolerates_garbage() {
        assert!(parse_link(&[]).is_none());
        assert!(parse_link(&[0; 8]).is_none());
        let mut payload = vec![0u8; IFINFOMSG_LEN];
        payload[4..8].copy_from_slice(&5u32.to_ne_bytes());
        payload.extend_from_slice(&[0xff; 7]);
        let link = parse_link(&payload).expect("header is enough");
        assert_eq!(link.status.index, 5);
        assert_eq!(link.status.name, "");
    }
}
