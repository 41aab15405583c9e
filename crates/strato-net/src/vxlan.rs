//! VXLAN between hosts: one VXLAN device per VPC, a port of the VPC's bridge, so that the
//! bridges of one VPC on several hosts form one layer-2 segment over the underlay.
//!
//! Each device has its VPC's VNI, the host's underlay address as its local address, UDP
//! port 4789 (IANA's), and learning off: which host is behind a MAC is never taken from
//! the traffic (anyone on the underlay could claim any MAC), only from what the daemon
//! writes. The daemon writes two kinds of FDB entries on the device (`NTF_SELF`):
//!
//! - the peer set: one all-zeros entry per other host ([`set_peers`]); broadcast, unknown
//!   unicast and multicast (BUM) frames go to each of them (head-end replication, no
//!   multicast needed on the underlay);
//! - where the daemon knows them, static entries for remote interfaces' MACs
//!   ([`set_remote_macs`]), so that unicast to them goes to their host only.
//!
//! MTU: encapsulation adds 50 bytes over an IPv4 underlay (outer Ethernet 14, IPv4 20,
//! UDP 8, VXLAN 8). The device's MTU is the underlay's less 50 ([`overlay_mtu`]); the
//! bridge, whose MTU follows its smallest port, takes it too. A frame above it is dropped
//! by the bridge, never fragmented, so guests must use it as theirs (or the underlay must
//! carry jumbo frames: a 1550-byte underlay MTU keeps 1500 in the VPC).
//!
//! Every operation is idempotent, as in [`crate::link`]: the daemon replays them on start.

use std::io;
use std::net::Ipv4Addr;

use crate::link::{check_kind, lookup, open_socket, set_up, Selector};
use crate::netlink::{
    read_u16, read_u32, Attrs, Message, Socket, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND,
    IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU, NDMSG_LEN, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_EXCL, NLM_F_REPLACE, RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWLINK, RTM_NEWNEIGH,
};
use crate::{validate_ifname, MacAddr, NetError};

/// The UDP port of VXLAN (IANA).
pub const VXLAN_PORT: u16 = 4789;
/// Bytes encapsulation adds over an IPv4 underlay: outer Ethernet, IPv4, UDP, VXLAN.
pub const OVERHEAD: u32 = 50;
/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

const KIND_VXLAN: &str = "vxlan";
// linux/if_link.h, IFLA_VXLAN_*.
const IFLA_VXLAN_ID: u16 = 1;
const IFLA_VXLAN_LOCAL: u16 = 4;
const IFLA_VXLAN_LEARNING: u16 = 7;
const IFLA_VXLAN_PORT: u16 = 15;
// linux/neighbour.h.
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NUD_PERMANENT: u16 = 0x80;
const NTF_SELF: u8 = 0x02;

/// The MTU of a VXLAN device over an underlay of MTU `underlay_mtu`.
pub fn overlay_mtu(underlay_mtu: u32) -> u32 {
    underlay_mtu.saturating_sub(OVERHEAD)
}

/// What a VPC's VXLAN device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// The device's name.
    pub name: String,
    /// The VPC's VNI, 1 to [`MAX_VNI`].
    pub vni: u32,
    /// This host's underlay address (the outer source of what it sends).
    pub local: Ipv4Addr,
    /// The VPC's bridge, which the device joins as a port.
    pub bridge: String,
    /// The device's MTU (see [`overlay_mtu`]).
    pub mtu: u32,
}

/// A VXLAN device as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanInfo {
    /// Its VNI.
    pub vni: Option<u32>,
    /// Its local address.
    pub local: Option<Ipv4Addr>,
    /// Its UDP destination port.
    pub port: Option<u16>,
    /// Whether it learns remote MACs from traffic.
    pub learning: Option<bool>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// The bridge it is a port of (its index).
    pub master_index: Option<u32>,
    /// Whether it is up.
    pub admin_up: bool,
}

/// One FDB entry of a VXLAN device: frames to `mac` (all zeros: every BUM frame) go to
/// the host at `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FdbEntry {
    /// The MAC (all zeros: the default destination).
    pub mac: [u8; 6],
    /// The remote host's underlay address.
    pub dst: Ipv4Addr,
}

/// Creates the VXLAN device of `spec` if absent, or re-creates one that has another VNI,
/// local address, port or learning on; then gives it its MTU, makes it a port of its
/// bridge and sets it up. A link of another kind under the name, or a missing bridge, is
/// an error.
pub fn ensure_vxlan(spec: &VxlanSpec) -> Result<(), NetError> {
    validate_ifname(&spec.name)?;
    validate_ifname(&spec.bridge)?;
    if spec.vni == 0 || spec.vni > MAX_VNI {
        return Err(NetError::InvalidVni(spec.vni));
    }
    let name = spec.name.as_str();
    let mut sock = open_socket()?;
    let br = lookup(&mut sock, Selector::Name(&spec.bridge))?
        .ok_or_else(|| NetError::NoSuchLink(spec.bridge.clone()))?;
    check_kind(&br.status, "bridge")?;

    if let Some(link) = lookup(&mut sock, Selector::Name(name))? {
        check_kind(&link.status, KIND_VXLAN)?;
        let info = parse_info(&link.info_data);
        let same = info.vni == Some(spec.vni)
            && info.local == Some(spec.local)
            && info.port == Some(VXLAN_PORT)
            && info.learning == Some(false);
        if !same {
            // The VNI and addresses of a VXLAN device cannot all be changed in place;
            // its FDB goes with it and the daemon writes the peers again.
            crate::link::delete_link(name)?;
        }
    }
    let link = match lookup(&mut sock, Selector::Name(name))? {
        Some(link) => link,
        None => {
            create(&mut sock, spec)?;
            lookup(&mut sock, Selector::Name(name))?
                .ok_or_else(|| NetError::NoSuchLink(name.to_owned()))?
        }
    };
    let index = link.status.index;
    if link.status.mtu != Some(spec.mtu) {
        let mut msg = Message::new(RTM_NEWLINK, 0);
        msg.ifinfomsg(index, 0, 0).attr_u32(IFLA_MTU, spec.mtu);
        sock.request(msg)
            .map_err(|e| NetError::netlink(format!("set MTU of {name} to {}", spec.mtu), e))?;
    }
    if link.status.master_index != Some(br.status.index) {
        let mut msg = Message::new(RTM_NEWLINK, 0);
        msg.ifinfomsg(index, 0, 0)
            .attr_u32(IFLA_MASTER, br.status.index);
        sock.request(msg)
            .map_err(|e| NetError::netlink(format!("add {name} to bridge {}", spec.bridge), e))?;
    }
    if !link.status.admin_up {
        set_up(&mut sock, index).map_err(|e| NetError::netlink(format!("set {name} up"), e))?;
    }
    Ok(())
}

fn create(sock: &mut Socket, spec: &VxlanSpec) -> Result<(), NetError> {
    let mut msg = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    msg.ifinfomsg(0, 0, 0)
        .attr_str(IFLA_IFNAME, &spec.name)
        .attr_u32(IFLA_MTU, spec.mtu);
    let info = msg.begin_nest(IFLA_LINKINFO);
    msg.attr_str(IFLA_INFO_KIND, KIND_VXLAN);
    let data = msg.begin_nest(IFLA_INFO_DATA);
    msg.attr_u32(IFLA_VXLAN_ID, spec.vni)
        .attr(IFLA_VXLAN_LOCAL, &spec.local.octets())
        .attr(IFLA_VXLAN_PORT, &VXLAN_PORT.to_be_bytes())
        .attr(IFLA_VXLAN_LEARNING, &[0]);
    msg.end_nest(data).end_nest(info);
    match sock.request(msg) {
        Ok(_) => Ok(()),
        // Made meanwhile by someone else: the caller's lookup checks it.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) && lookup_exists(sock, &spec.name) => {
            Ok(())
        }
        Err(e) => Err(NetError::netlink(
            format!("create VXLAN {} (VNI {})", spec.name, spec.vni),
            e,
        )),
    }
}

/// Whether a link `name` exists (EEXIST also means "another device has this VNI").
fn lookup_exists(sock: &mut Socket, name: &str) -> bool {
    matches!(lookup(sock, Selector::Name(name)), Ok(Some(_)))
}

/// Parses a vxlan link's `IFLA_INFO_DATA`.
fn parse_info(data: &[u8]) -> VxlanInfo {
    let mut info = VxlanInfo {
        vni: None,
        local: None,
        port: None,
        learning: None,
        mtu: None,
        master_index: None,
        admin_up: false,
    };
    for (ty, d) in Attrs::new(data) {
        match ty {
            IFLA_VXLAN_ID => info.vni = read_u32(d, 0),
            IFLA_VXLAN_LOCAL => info.local = <[u8; 4]>::try_from(d).ok().map(Ipv4Addr::from),
            IFLA_VXLAN_PORT => info.port = read_u16(d, 0).map(u16::from_be),
            IFLA_VXLAN_LEARNING => info.learning = d.first().map(|&b| b != 0),
            _ => {}
        }
    }
    info
}

/// The VXLAN device `name`, or `None` if there is no link of that name; a link of another
/// kind is an error.
pub fn vxlan_info(name: &str) -> Result<Option<VxlanInfo>, NetError> {
    validate_ifname(name)?;
    let mut sock = open_socket()?;
    let Some(link) = lookup(&mut sock, Selector::Name(name))? else {
        return Ok(None);
    };
    check_kind(&link.status, KIND_VXLAN)?;
    let mut info = parse_info(&link.info_data);
    info.mtu = link.status.mtu;
    info.master_index = link.status.master_index;
    info.admin_up = link.status.admin_up;
    Ok(Some(info))
}

/// The FDB entries with a remote destination of VXLAN device `name`, sorted.
pub fn fdb(name: &str) -> Result<Vec<FdbEntry>, NetError> {
    validate_ifname(name)?;
    let mut sock = open_socket()?;
    let index = vxlan_index(&mut sock, name)?;
    dump_fdb(&mut sock, index).map_err(|e| NetError::netlink(format!("list the FDB of {name}"), e))
}

/// Makes the all-zeros entries of VXLAN device `name` exactly `peers`: BUM frames go to
/// each peer (this host's own address among them is skipped).
pub fn set_peers(name: &str, peers: &[Ipv4Addr]) -> Result<(), NetError> {
    let want: Vec<FdbEntry> = peers
        .iter()
        .map(|&dst| FdbEntry { mac: [0; 6], dst })
        .collect();
    sync(name, &want, |e| e.mac == [0; 6])
}

/// Makes the static entries for remote MACs of VXLAN device `name` exactly `macs`
/// (MAC, host): unicast to each goes to its host only. Multicast MACs are refused.
pub fn set_remote_macs(name: &str, macs: &[(MacAddr, Ipv4Addr)]) -> Result<(), NetError> {
    if let Some((m, _)) = macs.iter().find(|(m, _)| !m.is_unicast() || m.0 == [0; 6]) {
        return Err(NetError::InvalidMac(m.to_string()));
    }
    let want: Vec<FdbEntry> = macs
        .iter()
        .map(|&(m, dst)| FdbEntry { mac: m.0, dst })
        .collect();
    sync(name, &want, |e| e.mac != [0; 6])
}

/// Adds the entries of `want` that are missing and removes those that `ours` selects and
/// `want` lacks.
fn sync(name: &str, want: &[FdbEntry], ours: impl Fn(&FdbEntry) -> bool) -> Result<(), NetError> {
    validate_ifname(name)?;
    let mut sock = open_socket()?;
    let index = vxlan_index(&mut sock, name)?;
    let have = dump_fdb(&mut sock, index)
        .map_err(|e| NetError::netlink(format!("list the FDB of {name}"), e))?;
    let local = lookup(&mut sock, Selector::Name(name))?
        .map(|l| parse_info(&l.info_data).local)
        .unwrap_or_default();
    for e in have.iter().filter(|e| ours(e) && !want.contains(e)) {
        let mut msg = Message::new(RTM_DELNEIGH, 0);
        msg.ndmsg(libc::AF_BRIDGE as u8, index, NUD_PERMANENT, NTF_SELF)
            .attr(NDA_LLADDR, &e.mac)
            .attr(NDA_DST, &e.dst.octets());
        match sock.request(msg) {
            Ok(_) => {}
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
            Err(err) => {
                return Err(NetError::netlink(
                    format!("remove {} from the FDB of {name}", e.dst),
                    err,
                ))
            }
        }
    }
    for e in want.iter().filter(|e| !have.contains(e)) {
        // Sending to ourselves would loop every broadcast back in.
        if Some(e.dst) == local || e.dst.is_unspecified() {
            continue;
        }
        // All-zeros entries add up (one per peer); a unicast MAC has one host.
        let how = if e.mac == [0; 6] {
            NLM_F_APPEND
        } else {
            NLM_F_REPLACE
        };
        let mut msg = Message::new(RTM_NEWNEIGH, NLM_F_CREATE | how);
        msg.ndmsg(libc::AF_BRIDGE as u8, index, NUD_PERMANENT, NTF_SELF)
            .attr(NDA_LLADDR, &e.mac)
            .attr(NDA_DST, &e.dst.octets());
        match sock.request(msg) {
            Ok(_) => {}
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {}
            Err(err) => {
                return Err(NetError::netlink(
                    format!("add {} to the FDB of {name}", e.dst),
                    err,
                ))
            }
        }
    }
    Ok(())
}

fn vxlan_index(sock: &mut Socket, name: &str) -> Result<u32, NetError> {
    let link =
        lookup(sock, Selector::Name(name))?.ok_or_else(|| NetError::NoSuchLink(name.to_owned()))?;
    check_kind(&link.status, KIND_VXLAN)?;
    Ok(link.status.index)
}

/// Every bridge-family FDB entry of link `index` that has a remote IPv4 destination.
fn dump_fdb(sock: &mut Socket, index: u32) -> io::Result<Vec<FdbEntry>> {
    let mut msg = Message::new(RTM_GETNEIGH, NLM_F_DUMP);
    // Exactly a `struct ndmsg`: the kernel then dumps every entry (a longer message is
    // read as an `ifinfomsg` filter); the replies are filtered here.
    msg.ndmsg(libc::AF_BRIDGE as u8, 0, 0, 0);
    let mut out: Vec<FdbEntry> = sock
        .request(msg)?
        .iter()
        .filter(|r| r.ty == RTM_NEWNEIGH)
        .filter_map(|r| parse_fdb(&r.payload, index))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// An `RTM_NEWNEIGH` payload of link `index` with a MAC and an IPv4 destination.
fn parse_fdb(p: &[u8], index: u32) -> Option<FdbEntry> {
    if i32::from(*p.first()?) != libc::AF_BRIDGE || read_u32(p, 4)? != index {
        return None;
    }
    let mut mac = None;
    let mut dst = None;
    for (ty, d) in Attrs::new(p.get(NDMSG_LEN..)?) {
        match ty {
            NDA_LLADDR => mac = <[u8; 6]>::try_from(d).ok(),
            NDA_DST => dst = <[u8; 4]>::try_from(d).ok().map(Ipv4Addr::from),
            _ => {}
        }
    }
    Some(FdbEntry {
        mac: mac?,
        dst: dst?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{create_tap, delete_link, ensure_bridge_only, link_status, testutil};
    use crate::testns::in_netns;

    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 11);
    const P1: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 12);
    const P2: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 13);

    fn spec(vni: u32) -> VxlanSpec {
        VxlanSpec {
            name: "svx0".into(),
            vni,
            local: LOCAL,
            bridge: "svpc0".into(),
            mtu: overlay_mtu(1500),
        }
    }

    fn zero(dst: Ipv4Addr) -> FdbEntry {
        FdbEntry { mac: [0; 6], dst }
    }

    #[test]
    fn device_lifecycle_and_peers() {
        in_netns(|| {
            testutil::veth_pair("ul0", "ul1", LOCAL, 24);
            ensure_bridge_only("svpc0").expect("bridge");
            ensure_vxlan(&spec(4242)).expect("vxlan");
            ensure_vxlan(&spec(4242)).expect("vxlan again");
            let info = vxlan_info("svx0").expect("info").expect("exists");
            let br = link_status("svpc0").expect("status").expect("bridge");
            assert_eq!(info.vni, Some(4242));
            assert_eq!(info.local, Some(LOCAL));
            assert_eq!(info.port, Some(VXLAN_PORT));
            assert_eq!(info.learning, Some(false));
            assert_eq!(info.mtu, Some(1450));
            assert_eq!(info.master_index, Some(br.index));
            assert!(info.admin_up);
            // The bridge follows its smallest port.
            assert_eq!(br.mtu, Some(1450));

            set_peers("svx0", &[P1, P2, LOCAL]).expect("peers");
            set_peers("svx0", &[P2, P1]).expect("peers again");
            assert_eq!(fdb("svx0").expect("fdb"), vec![zero(P1), zero(P2)]);
            let m: MacAddr = "02:00:00:00:00:07".parse().expect("mac");
            set_remote_macs("svx0", &[(m, P2)]).expect("remote mac");
            set_remote_macs("svx0", &[(m, P1)]).expect("remote mac moves");
            let mut want = vec![zero(P1), zero(P2), FdbEntry { mac: m.0, dst: P1 }];
            want.sort();
            assert_eq!(fdb("svx0").expect("fdb"), want);
            // A peer leaves; the MAC entry is untouched by peer changes.
            set_peers("svx0", &[P2]).expect("one peer");
            let mut want = vec![zero(P2), FdbEntry { mac: m.0, dst: P1 }];
            want.sort();
            assert_eq!(fdb("svx0").expect("fdb"), want);
            set_remote_macs("svx0", &[]).expect("no macs");
            assert_eq!(fdb("svx0").expect("fdb"), vec![zero(P2)]);
            let bad: MacAddr = "01:00:5e:00:00:01".parse().expect("mac");
            assert!(set_remote_macs("svx0", &[(bad, P1)]).is_err());

            // Another VNI re-creates the device (and its FDB is gone with it).
            ensure_vxlan(&spec(77)).expect("new vni");
            let info = vxlan_info("svx0").expect("info").expect("exists");
            assert_eq!(info.vni, Some(77));
            assert_eq!(info.master_index, Some(br.index));
            assert!(fdb("svx0").expect("fdb").is_empty());

            // Wrong kinds and missing pieces.
            create_tap("tap0", "svpc0", None).expect("tap");
            let mut s = spec(5);
            s.name = "tap0".into();
            let err = ensure_vxlan(&s).expect_err("a tap is no vxlan");
            assert!(matches!(err, NetError::WrongKind { .. }), "{err}");
            let err = set_peers("tap0", &[P1]).expect_err("a tap has no peers");
            assert!(matches!(err, NetError::WrongKind { .. }), "{err}");
            let mut s = spec(5);
            s.bridge = "nobr".into();
            assert!(matches!(ensure_vxlan(&s), Err(NetError::NoSuchLink(_))));
            assert!(ensure_vxlan(&spec(0)).is_err());
            assert!(ensure_vxlan(&spec(MAX_VNI + 1)).is_err());
            assert!(matches!(
                set_peers("nodev", &[P1]),
                Err(NetError::NoSuchLink(_))
            ));

            delete_link("svx0").expect("remove");
            delete_link("svx0").expect("remove again");
            assert_eq!(vxlan_info("svx0").expect("info"), None);
        });
    }

    #[test]
    fn parsers_tolerate_garbage() {
        assert_eq!(parse_info(&[0xff; 3]).vni, None);
        assert!(parse_fdb(&[], 1).is_none());
        assert!(parse_fdb(&[7, 0, 0], 1).is_none());
        let mut p = vec![libc::AF_BRIDGE as u8, 0, 0, 0];
        p.extend_from_slice(&3u32.to_ne_bytes());
        p.extend_from_slice(&[0; 4]);
        assert!(parse_fdb(&p, 3).is_none(), "no MAC nor destination");
        assert!(parse_fdb(&p, 4).is_none(), "another link");
        assert_eq!(overlay_mtu(1500), 1450);
        assert_eq!(overlay_mtu(20), 0);
    }
}
