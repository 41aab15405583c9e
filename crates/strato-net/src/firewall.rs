//! Security groups as nftables rulesets, rendered as text by pure functions (applied with
//! [`crate::nft::apply`]).
//!
//! Two tables, each replaced whole in one `nft -f` transaction:
//!
//! - `table bridge strato_guard`: anti-spoofing. Every frame entering the bridge from an
//!   ENI's tap must carry the ENI's MAC; its IPv4 packets one of the ENI's addresses (or
//!   0.0.0.0 to the DHCP server port), its ARP the ENI's address (or 0.0.0.0 for RFC 5227
//!   probes). Its IPv6 packets one of the ENI's IPv6 addresses or its link-local address,
//!   which is the one the MAC derives (modified EUI-64, a kernel's default): a guest that
//!   could send from any `fe80::` address could claim the host's router address in its
//!   neighbour solicitations. Neighbour advertisements must name one of those addresses
//!   as their target (the IPv6 form of a gratuitous ARP for someone else's address);
//!   router advertisements and redirects from a guest are dropped (the host is the only
//!   router); `::` may send only what duplicate address detection sends (a neighbour
//!   solicitation, an MLDv2 report); DHCPv6 clients reach `ff02::1:2` from any link-local
//!   source (DHCPv6 hands out addresses by DUID and MAC, so which `fe80::` a client picked
//!   does not matter). A solicitation's target is the address being looked up, someone
//!   else's by nature, so it is not checked. Anything else from a tap (VLAN tags, other
//!   ethertypes) is dropped.
//! - `table inet strato_filter`: the groups themselves, on the forward hook, which bridged
//!   IPv4 traverses through `br_netfilter` (bridge-family conntrack is not available on
//!   every kernel; the inet family's is). There both `iifname` and `oifname` of a bridged
//!   packet are the bridge, so an ENI is known by `bridge . address`, which the guard
//!   makes trustworthy. Replies of tracked connections pass first; then the source ENI's
//!   egress chain (a match returns, the chain ends in a drop), then the destination ENI's
//!   ingress chain (a match accepts, the chain ends in a drop). Traffic of addresses that
//!   are no ENI's (the host, the outside world) meets only the ENI side's chain. IPv6 has
//!   its own maps (`eni_out6`, `eni_in6`) and each group set an IPv6 twin (`<group>_v6`);
//!   an IPv4 block never matches IPv6 and an IPv6 block never IPv4 (EC2: `0.0.0.0/0` does
//!   not cover `::/0`). Neighbour discovery and MLD pass the forward hook before any group
//!   (EC2 does not filter them; the guard has vetted what guests send).
//!
//!
//! The same inet table guards the host itself: its `input` chain sends everything that
//! arrives on a VPC bridge (guests, and anything else plugged into one) to `from_guests`,
//! which accepts replies of the host's own connections, DHCP, the metadata service and
//! ICMP echo to the bridge's gateways, and drops the rest, so that no guest reaches the
//! host's other listeners (the API, `/metrics`, sshd...) through its gateway address.
//! For IPv6 the same: neighbour discovery and router solicitations, DHCPv6, the IPv6
//! metadata address and echo to the bridge's IPv6 gateways.
//!
//! A host whose VPCs span hosts ([`Overlay`], [`crate::vxlan`]) has one more kind of bridge
//! port, the VXLAN device, which is no tap: the guard sends what comes in on it to
//! `from_overlay` (no posing as a local interface or as the host), keeps the host's own
//! frames and the guests' DHCP from going out on it, and the filter table drops guests'
//! traffic to the underlay and VXLAN from anyone but the peers.
//!
//! No conntrack zones: all VPC bridges share one namespace, and the daemon refuses
//! overlapping subnets, so an ENI address identifies one flow end on the whole host.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use crate::{validate_ifname, MacAddr, NetError};

/// The filter table's name (inet family).
pub const FILTER_TABLE: &str = "strato_filter";
/// The anti-spoofing table's name (bridge family).
pub const GUARD_TABLE: &str = "strato_guard";

/// What a rule matches besides its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Every protocol.
    All,
    /// TCP destination ports `from..=to`.
    Tcp(u16, u16),
    /// UDP destination ports `from..=to`.
    Udp(u16, u16),
    /// ICMP, of one type (`None`: all) and one code (`None`: all).
    Icmp(Option<u8>, Option<u8>),
    /// ICMPv6 (protocol 58), of one type (`None`: all) and one code (`None`: all).
    Icmpv6(Option<u8>, Option<u8>),
    /// Another IP protocol number, whole.
    Other(u8),
}

/// The other end of the traffic a rule allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// An IPv4 block.
    Cidr(Ipv4Addr, u8),
    /// An IPv6 block.
    Cidr6(Ipv6Addr, u8),
    /// The member ENIs of a security group (its ID, which names a [`GroupSet`]).
    Group(String),
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Protocol and ports.
    pub proto: Proto,
    /// Source (ingress) or destination (egress).
    pub peer: Peer,
}

/// A network interface and the rules of all its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniRules {
    /// `eni-…` (names its chains).
    pub id: String,
    /// Its tap device.
    pub tap: String,
    /// The bridge the tap is a port of.
    pub bridge: String,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its IPv4 addresses, primary first.
    pub addrs: Vec<Ipv4Addr>,
    /// Its IPv6 addresses (its link-local one, from the MAC, is implied).
    pub addrs6: Vec<Ipv6Addr>,
    /// EC2's source/destination check: off, the interface may send from any address that
    /// is no other interface's (a NAT or router instance).
    pub source_dest_check: bool,
    /// Allowed inbound traffic.
    pub ingress: Vec<Rule>,
    /// Allowed outbound traffic.
    pub egress: Vec<Rule>,
}

/// The members of a group that rules name as a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSet {
    /// `sg-…` (names the set).
    pub id: String,
    /// Member ENIs as (bridge, address).
    pub members: Vec<(String, Ipv4Addr)>,
    /// Member ENIs' IPv6 addresses as (bridge, address).
    pub members6: Vec<(String, Ipv6Addr)>,
}

/// A VPC bridge, whose traffic to the host itself is limited to the guest services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBridge {
    /// The bridge device.
    pub name: String,
    /// Its subnets' gateway addresses (ICMP echo to them is answered).
    pub gateways: Vec<Ipv4Addr>,
    /// Its subnets' IPv6 gateway addresses (ICMPv6 echo to them is answered).
    pub gateways6: Vec<Ipv6Addr>,
}

/// Everything the host's firewall holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// ENIs, each with its rules.
    pub enis: Vec<EniRules>,
    /// Groups named as peers.
    pub groups: Vec<GroupSet>,
    /// VPC bridges: what arrives on them for the host is limited to DHCP, the metadata
    /// service and ICMP echo to a gateway.
    pub bridges: Vec<HostBridge>,
    /// The metadata service's address (TCP); `None`: not accepted from guests.
    pub metadata: Option<SocketAddrV4>,
    /// The EC2 Query API's port, when guests may reach it on their gateway addresses
    /// (an interface endpoint, as a VPC gets for EC2 in AWS); `None`: not from guests.
    pub api_port: Option<u16>,
    /// The metadata service's IPv6 address (TCP); `None`: not accepted from guests.
    pub metadata6: Option<SocketAddrV6>,
    /// VPCs joined to other hosts' by VXLAN; `None`: this host is alone.
    pub overlay: Option<Overlay>,
}

/// The VXLAN side of the firewall (see [`crate::vxlan`]): what comes in on a VPC bridge's
/// VXLAN port is from outside this host's taps, so it may not claim to be a local
/// interface (MAC or address) nor a gateway, and meets the destination interface's
/// ingress rules like traffic from anywhere else; what this host itself sends on a VPC
/// bridge (its gateways' ARP, DHCP, router advertisements, the metadata service's replies)
/// never leaves through a VXLAN port, since every host serves its own instances; guests
/// reach no underlay address; and only peers may send VXLAN to this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    /// The VXLAN devices (bridge ports).
    pub ports: Vec<String>,
    /// This host's underlay address and its peers': guests reach none of them.
    pub underlay: Vec<Ipv4Addr>,
    /// The peers: the only sources VXLAN is taken from.
    pub peers: Vec<Ipv4Addr>,
    /// The VXLAN UDP port.
    pub port: u16,
}

/// Neighbour discovery and multicast listener messages: the link's plumbing, which passes
/// before any group (what guests send of it the guard has checked).
const ND_TYPES: &str = "{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, \
     nd-neighbor-advert, mld-listener-query, mld-listener-report, mld-listener-done, \
     mld2-listener-report }";

/// An ID as an nft identifier: `-` becomes `_`; anything but ASCII letters, digits and
/// `-` is refused, so that nothing from the database can break out of the script.
fn ident(prefix: &str, id: &str) -> Result<String, NetError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(NetError::InvalidIdentifier(id.to_string()));
    }
    let out = format!("{prefix}{}", id.replace('-', "_"));
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(NetError::InvalidIdentifier(id.to_string()));
    }
    Ok(out)
}

/// An interface name, checked as the kernel would and for nft's quoted strings.
fn ifname(name: &str) -> Result<String, NetError> {
    validate_ifname(name)?;
    if name.bytes().any(|b| b == b'"' || b == b'\\') {
        return Err(NetError::InvalidName {
            name: name.to_string(),
            reason: "contains a quote or backslash",
        });
    }
    Ok(format!("\"{name}\""))
}

/// The protocol part of a rule, empty for all traffic.
fn proto_match(p: Proto) -> String {
    let ports = |l4: &str, from: u16, to: u16| match (from, to) {
        (0, 65535) => format!("meta l4proto {l4} "),
        (f, t) if f == t => format!("{l4} dport {f} "),
        (f, t) => format!("{l4} dport {f}-{t} "),
    };
    match p {
        Proto::All => String::new(),
        Proto::Tcp(f, t) => ports("tcp", f, t),
        Proto::Udp(f, t) => ports("udp", f, t),
        Proto::Icmp(None, _) => "meta l4proto icmp ".into(),
        Proto::Icmp(Some(ty), None) => format!("icmp type {ty} "),
        Proto::Icmp(Some(ty), Some(code)) => format!("icmp type {ty} icmp code {code} "),
        Proto::Icmpv6(None, _) => "meta l4proto ipv6-icmp ".into(),
        Proto::Icmpv6(Some(ty), None) => format!("icmpv6 type {ty} "),
        Proto::Icmpv6(Some(ty), Some(code)) => {
            format!("icmpv6 type {ty} icmpv6 code {code} ")
        }
        Proto::Other(n) => format!("meta l4proto {n} "),
    }
}

/// The peer part of a rule, one alternative per line it needs (a group has members of
/// both families): `ingress` matches the source, else the destination.
fn peer_matches(peer: &Peer, ingress: bool) -> Result<Vec<String>, NetError> {
    let (dev, addr, addr6) = if ingress {
        ("iifname", "ip saddr", "ip6 saddr")
    } else {
        ("oifname", "ip daddr", "ip6 daddr")
    };
    Ok(match peer {
        // Not empty: `0.0.0.0/0` must not let IPv6 through.
        Peer::Cidr(_, 0) => vec!["meta nfproto ipv4 ".into()],
        Peer::Cidr(a, 32) => vec![format!("{addr} {a} ")],
        Peer::Cidr(a, n) if *n < 32 => {
            let net = u32::from(*a) & (u32::MAX << (32 - u32::from(*n)));
            vec![format!("{addr} {}/{n} ", Ipv4Addr::from(net))]
        }
        Peer::Cidr(_, n) => return Err(NetError::InvalidPrefix(*n)),
        Peer::Cidr6(_, 0) => vec!["meta nfproto ipv6 ".into()],
        Peer::Cidr6(a, 128) => vec![format!("{addr6} {a} ")],
        Peer::Cidr6(a, n) if *n < 128 => {
            let net = u128::from(*a) & (u128::MAX << (128 - u32::from(*n)));
            vec![format!("{addr6} {}/{n} ", Ipv6Addr::from(net))]
        }
        Peer::Cidr6(_, n) => return Err(NetError::InvalidPrefix6(*n)),
        Peer::Group(g) => {
            let set = ident("", g)?;
            vec![
                format!("{dev} . {addr} @{set} "),
                format!("{dev} . {addr6} @{set}_v6 "),
            ]
        }
    })
}

/// The family a peer match line is about: `ip ` or `ip6 ` (what [`peer_matches`] wrote).
fn family_of(line: &str) -> &'static str {
    if line.contains("ip6 ") || line.contains("ipv6") {
        "ip6 "
    } else {
        "ip "
    }
}

/// An IPv6 address as the 128-bit integer a raw payload match compares.
fn hex128(a: Ipv6Addr) -> String {
    format!("0x{:032x}", u128::from(a))
}

/// The guard's IPv6 lines of one ENI (before its final drop).
fn guard_v6(e: &EniRules, s: &mut String) {
    let mut own: Vec<Ipv6Addr> = e.addrs6.clone();
    own.push(e.mac.eui64_link_local());
    let list = |f: fn(Ipv6Addr) -> String| own.iter().map(|a| f(*a)).collect::<Vec<_>>().join(", ");
    let _ = write!(
        s,
        "\t\ticmpv6 type {{ nd-router-advert, nd-redirect }} counter drop\n\
         \t\ticmpv6 type nd-neighbor-advert @th,64,128 != {{ {targets} }} counter drop\n\
         \t\tip6 saddr {{ {addrs} }} return\n\
         \t\tip6 saddr :: icmpv6 type {{ nd-neighbor-solicit, mld2-listener-report }} return\n\
         \t\tip6 saddr fe80::/10 ip6 daddr ff02::1:2 udp sport 546 udp dport 547 return\n",
        targets = list(hex128),
        addrs = list(|a| a.to_string()),
    );
}

/// The `table bridge strato_guard` body.
pub fn render_guard(enis: &[EniRules]) -> Result<String, NetError> {
    guard_table(enis, None)
}

/// The guard table, with the VXLAN ports' chains when the host has an overlay.
fn guard_table(
    enis: &[EniRules],
    overlay: Option<(&Overlay, &Ruleset)>,
) -> Result<String, NetError> {
    let mut s = format!("table bridge {GUARD_TABLE} {{\n");
    s.push_str("\tmap taps {\n\t\ttype ifname : verdict\n");
    let mut entries = Vec::new();
    for e in enis {
        entries.push(format!(
            "{} : jump {}",
            ifname(&e.tap)?,
            ident("guard_", &e.id)?
        ));
    }
    if !entries.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", entries.join(", "));
    }
    s.push_str("\t}\n\n");
    // Every interface's address: those that interfaces without the source/destination
    // check may still not send from.
    s.push_str("\tset eni_addrs {\n\t\ttype ipv4_addr\n");
    let all: Vec<String> = enis
        .iter()
        .flat_map(|e| e.addrs.iter().map(Ipv4Addr::to_string))
        .collect();
    if !all.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", all.join(", "));
    }
    s.push_str("\t}\n\n");
    // The same for IPv6, link-local addresses included.
    s.push_str("\tset eni_addrs6 {\n\t\ttype ipv6_addr\n");
    let all6: Vec<String> = enis
        .iter()
        .flat_map(|e| {
            e.addrs6
                .iter()
                .copied()
                .chain([e.mac.eui64_link_local()])
                .map(|a| a.to_string())
        })
        .collect();
    if !all6.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", all6.join(", "));
    }
    s.push_str("\t}\n\n");
    s.push_str(
        "\tchain prerouting {\n\t\ttype filter hook prerouting priority -300; policy accept;\n",
    );
    s.push_str("\t\tiifname vmap @taps\n");
    if let Some((o, rs)) = overlay {
        s.push_str("\t\tiifname @overlay_ports jump from_overlay\n\t}\n");
        guard_overlay(enis, o, rs, &mut s)?;
    } else {
        s.push_str("\t}\n");
    }
    for e in enis {
        if e.addrs.is_empty() {
            // `{ }` is no valid set: an ENI without addresses may send nothing.
            return Err(NetError::Firewall(format!("{} has no address", e.id)));
        }
        let addrs = e
            .addrs
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            s,
            "\n\tchain {} {{\n\
             \t\tether saddr != {mac} counter drop\n\
             \t\tarp saddr ether {mac} arp saddr ip {{ {addrs}, 0.0.0.0 }} return\n\
             \t\tip saddr {{ {addrs} }} return\n\
             \t\tip saddr 0.0.0.0 udp dport 67 return\n{unchecked}",
            ident("guard_", &e.id)?,
            mac = e.mac,
            unchecked = if e.source_dest_check {
                ""
            } else {
                "\t\tip saddr != @eni_addrs return\n"
            },
        );
        guard_v6(e, &mut s);
        if !e.source_dest_check {
            // A router instance forwards others' traffic, but never from a link-local
            // address (its own is already allowed) nor another interface's.
            s.push_str("\t\tip6 saddr != fe80::/10 ip6 saddr != @eni_addrs6 return\n");
        }
        s.push_str("\t\tcounter drop\n\t}\n");
    }
    s.push_str("}\n");
    Ok(s)
}

/// Guest services: DHCP and DHCPv6 (each host serves its own instances).
const DHCP_PORTS: &str = "{ 67, 68, 546, 547 }";

/// The guard's VXLAN part: its sets, what comes in (`from_overlay`), what goes out.
fn guard_overlay(
    enis: &[EniRules],
    o: &Overlay,
    rs: &Ruleset,
    s: &mut String,
) -> Result<(), NetError> {
    let bridges = &rs.bridges;
    let ports = o
        .ports
        .iter()
        .map(|p| ifname(p))
        .collect::<Result<Vec<_>, _>>()?;
    let macs: Vec<String> = enis.iter().map(|e| e.mac.to_string()).collect();
    // The host's own addresses on VPC bridges: gateways and the metadata service.
    let gws: Vec<String> = bridges
        .iter()
        .flat_map(|b| b.gateways.iter().map(Ipv4Addr::to_string))
        .chain(rs.metadata.map(|m| m.ip().to_string()))
        .collect();
    let gws6: Vec<String> = bridges
        .iter()
        .flat_map(|b| b.gateways6.iter().map(Ipv6Addr::to_string))
        .chain(rs.metadata6.map(|m| m.ip().to_string()))
        .collect();
    for (name, ty, elems) in [
        ("overlay_ports", "ifname", &ports),
        ("eni_macs", "ether_addr", &macs),
        ("host_gws", "ipv4_addr", &gws),
        ("host_gws6", "ipv6_addr", &gws6),
    ] {
        let _ = writeln!(s, "\n\tset {name} {{\n\t\ttype {ty}");
        if !elems.is_empty() {
            let mut uniq = elems.clone();
            uniq.sort();
            uniq.dedup();
            let _ = writeln!(s, "\t\telements = {{ {} }}", uniq.join(", "));
        }
        s.push_str("\t}\n");
    }
    // In: nothing may pose as a local interface or a gateway (a remote host's guard
    // checked its own taps, but the underlay is only as trusted as its least careful
    // host); another host's DHCP, router advertisements and ARP for the gateways stay
    // out (the gateway addresses are the same on every host of a VPC).
    let _ = write!(
        s,
        "\n\tchain from_overlay {{\n\
         \t\tether saddr @eni_macs counter drop\n\
         \t\tarp saddr ip @eni_addrs counter drop\n\
         \t\tarp saddr ip @host_gws counter drop\n\
         \t\tarp daddr ip @host_gws counter drop\n\
         \t\tip saddr @eni_addrs counter drop\n\
         \t\tip saddr @host_gws counter drop\n\
         \t\tip6 saddr @eni_addrs6 counter drop\n\
         \t\tip6 saddr @host_gws6 counter drop\n\
         \t\tudp dport {DHCP_PORTS} counter drop\n\
         \t\ticmpv6 type {{ nd-router-advert, nd-redirect }} counter drop\n\
         \t\ticmpv6 type nd-neighbor-solicit @th,64,128 {{ {targets} }} counter drop\n\
         \t}}\n\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority 0; policy accept;\n\
         \t\toifname @overlay_ports counter drop\n\
         \t}}\n\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority 0; policy accept;\n\
         \t\toifname @overlay_ports udp dport {DHCP_PORTS} counter drop\n\
         \t\toifname @overlay_ports arp daddr ip @host_gws counter drop\n\
         \t\toifname @overlay_ports icmpv6 type nd-router-solicit counter drop\n\
         \t}}\n",
        // No raw match on an empty list: `::` is nobody's gateway.
        targets = if bridges.iter().all(|b| b.gateways6.is_empty()) {
            hex128(Ipv6Addr::UNSPECIFIED)
        } else {
            bridges
                .iter()
                .flat_map(|b| b.gateways6.iter().map(|g| hex128(*g)))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    Ok(())
}

/// The `table inet strato_filter` body.
pub fn render_filter(rs: &Ruleset) -> Result<String, NetError> {
    let mut s = format!("table inet {FILTER_TABLE} {{\n");
    for g in &rs.groups {
        let _ = write!(
            s,
            "\tset {} {{\n\t\ttype ifname . ipv4_addr\n",
            ident("", &g.id)?
        );
        if !g.members.is_empty() {
            let members = g
                .members
                .iter()
                .map(|(br, a)| Ok(format!("{} . {a}", ifname(br)?)))
                .collect::<Result<Vec<_>, NetError>>()?;
            let _ = writeln!(s, "\t\telements = {{ {} }}", members.join(", "));
        }
        s.push_str("\t}\n\n");
        let _ = write!(
            s,
            "\tset {}_v6 {{\n\t\ttype ifname . ipv6_addr\n",
            ident("", &g.id)?
        );
        if !g.members6.is_empty() {
            let members = g
                .members6
                .iter()
                .map(|(br, a)| Ok(format!("{} . {a}", ifname(br)?)))
                .collect::<Result<Vec<_>, NetError>>()?;
            let _ = writeln!(s, "\t\telements = {{ {} }}", members.join(", "));
        }
        s.push_str("\t}\n\n");
    }
    for (map, ingress) in [("eni_out", false), ("eni_in", true)] {
        let _ = write!(s, "\tmap {map} {{\n\t\ttype ifname . ipv4_addr : verdict\n");
        let mut entries = Vec::new();
        for e in &rs.enis {
            let chain = ident(if ingress { "in_" } else { "out_" }, &e.id)?;
            for a in &e.addrs {
                entries.push(format!("{} . {a} : jump {chain}", ifname(&e.bridge)?));
            }
        }
        if !entries.is_empty() {
            let _ = writeln!(s, "\t\telements = {{ {} }}", entries.join(", "));
        }
        s.push_str("\t}\n\n");
    }
    for (map, ingress) in [("eni_out6", false), ("eni_in6", true)] {
        let _ = write!(s, "\tmap {map} {{\n\t\ttype ifname . ipv6_addr : verdict\n");
        let mut entries = Vec::new();
        for e in &rs.enis {
            let chain = ident(if ingress { "in_" } else { "out_" }, &e.id)?;
            for a in &e.addrs6 {
                entries.push(format!("{} . {a} : jump {chain}", ifname(&e.bridge)?));
            }
        }
        if !entries.is_empty() {
            let _ = writeln!(s, "\t\telements = {{ {} }}", entries.join(", "));
        }
        s.push_str("\t}\n\n");
    }
    render_host_input(rs, &mut s)?;
    let _ = write!(
        s,
        "\tchain forward {{\n\
         \t\ttype filter hook forward priority 0; policy accept;\n{underlay}\
         \t\tct state established,related accept\n\
         \t\ticmpv6 type {ND_TYPES} accept\n\
         \t\tct state invalid drop\n\
         \t\tiifname . ip saddr vmap @eni_out\n\
         \t\toifname . ip daddr vmap @eni_in\n\
         \t\tiifname . ip6 saddr vmap @eni_out6\n\
         \t\toifname . ip6 daddr vmap @eni_in6\n\
         \t}}\n",
        // Guests reach no underlay address, and send no VXLAN off their VPC (a packet a
        // peer took for its own would be decapsulated onto a VPC bridge there).
        underlay = match &rs.overlay {
            Some(o) => format!(
                "\t\tiifname @vpc_bridges ip daddr @underlay counter drop\n\
                 \t\tiifname @vpc_bridges oifname != @vpc_bridges udp dport {} counter drop\n",
                o.port
            ),
            None => String::new(),
        },
    );
    for e in &rs.enis {
        for (ingress, rules, verdict) in
            [(false, &e.egress, "return"), (true, &e.ingress, "accept")]
        {
            let chain = ident(if ingress { "in_" } else { "out_" }, &e.id)?;
            let _ = writeln!(s, "\n\tchain {chain} {{");
            for r in rules.iter() {
                // An ICMP rule matches only its own family (nft refuses `ip6 saddr …
                // icmp type …`), whatever its peer's other family holds.
                let family = match r.proto {
                    Proto::Icmp(..) => Some("ip "),
                    Proto::Icmpv6(..) => Some("ip6 "),
                    _ => None,
                };
                for peer in peer_matches(&r.peer, ingress)? {
                    if family.is_some_and(|f| !family_of(&peer).starts_with(f)) {
                        continue;
                    }
                    let _ = writeln!(s, "\t\t{peer}{}counter {verdict}", proto_match(r.proto));
                }
            }
            s.push_str("\t\tcounter drop\n\t}\n");
        }
    }
    s.push_str("}\n");
    Ok(s)
}

/// The host's own input from VPC bridges (part of the filter table).
fn render_host_input(rs: &Ruleset, s: &mut String) -> Result<(), NetError> {
    s.push_str("\tset vpc_bridges {\n\t\ttype ifname\n");
    let names = rs
        .bridges
        .iter()
        .map(|b| ifname(&b.name))
        .collect::<Result<Vec<_>, _>>()?;
    if !names.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", names.join(", "));
    }
    s.push_str("\t}\n\n\tset gateways {\n\t\ttype ifname . ipv4_addr\n");
    let mut gws = Vec::new();
    for b in &rs.bridges {
        for g in &b.gateways {
            gws.push(format!("{} . {g}", ifname(&b.name)?));
        }
    }
    if !gws.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", gws.join(", "));
    }
    s.push_str("\t}\n\n\tset gateways6 {\n\t\ttype ifname . ipv6_addr\n");
    let mut gws6 = Vec::new();
    for b in &rs.bridges {
        for g in &b.gateways6 {
            gws6.push(format!("{} . {g}", ifname(&b.name)?));
        }
    }
    if !gws6.is_empty() {
        let _ = writeln!(s, "\t\telements = {{ {} }}", gws6.join(", "));
    }
    if let Some(o) = &rs.overlay {
        s.push_str("\t}\n\n\tset underlay {\n\t\ttype ipv4_addr\n");
        let mut all = o.underlay.clone();
        all.extend(o.peers.iter().copied());
        all.sort();
        all.dedup();
        if !all.is_empty() {
            let list: Vec<String> = all.iter().map(Ipv4Addr::to_string).collect();
            let _ = writeln!(s, "\t\telements = {{ {} }}", list.join(", "));
        }
        s.push_str("\t}\n\n\tset overlay_peers {\n\t\ttype ipv4_addr\n");
        if !o.peers.is_empty() {
            let list: Vec<String> = o.peers.iter().map(Ipv4Addr::to_string).collect();
            let _ = writeln!(s, "\t\telements = {{ {} }}", list.join(", "));
        }
    }
    let _ = write!(
        s,
        "\t}}\n\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority 0; policy accept;\n{vxlan}\
         \t\tiifname @vpc_bridges jump from_guests\n\
         \t}}\n\n\
         \tchain from_guests {{\n\
         \t\tct state established,related accept\n\
         \t\tudp sport 68 udp dport 67 accept\n\
         \t\ticmpv6 type {ND_TYPES} accept\n\
         \t\tudp sport 546 udp dport 547 accept\n",
        // VXLAN only from the peers: anyone else could put frames on a VPC bridge.
        vxlan = match &rs.overlay {
            Some(o) => format!(
                "\t\tudp dport {} ip saddr != @overlay_peers counter drop\n",
                o.port
            ),
            None => String::new(),
        },
    );
    if let Some(m) = rs.metadata {
        let _ = writeln!(s, "\t\tip daddr {} tcp dport {} accept", m.ip(), m.port());
    }
    if let Some(p) = rs.api_port {
        let _ = writeln!(s, "\t\ttcp dport {p} iifname . ip daddr @gateways accept");
    }
    if let Some(m) = rs.metadata6 {
        let _ = writeln!(s, "\t\tip6 daddr {} tcp dport {} accept", m.ip(), m.port());
    }
    s.push_str(
        "\t\ticmp type echo-request iifname . ip daddr @gateways accept\n\
         \t\ticmpv6 type echo-request iifname . ip6 daddr @gateways6 accept\n\
         \t\tcounter drop\n\
         \t}\n\n",
    );
    Ok(())
}

/// The whole script: both tables replaced in one transaction (the empty declaration makes
/// the delete valid when the table does not exist yet).
pub fn render(rs: &Ruleset) -> Result<String, NetError> {
    Ok(format!(
        "table inet {FILTER_TABLE} {{}}\ndelete table inet {FILTER_TABLE}\n{}\
         table bridge {GUARD_TABLE} {{}}\ndelete table bridge {GUARD_TABLE}\n{}",
        render_filter(rs)?,
        guard_table(&rs.enis, rs.overlay.as_ref().map(|o| (o, rs)))?
    ))
}

/// A script that removes both tables (idempotent).
pub fn render_flush() -> String {
    format!(
        "table inet {FILTER_TABLE} {{}}\ndelete table inet {FILTER_TABLE}\n\
         table bridge {GUARD_TABLE} {{}}\ndelete table bridge {GUARD_TABLE}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eni(id: &str, tap: &str, ip: [u8; 4]) -> EniRules {
        EniRules {
            id: id.into(),
            tap: tap.into(),
            bridge: "strato0".into(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            addrs: vec![Ipv4Addr::from(ip)],
            addrs6: vec![],
            source_dest_check: true,
            ingress: vec![],
            egress: vec![],
        }
    }

    #[test]
    fn protocols_and_peers() {
        assert_eq!(proto_match(Proto::All), "");
        assert_eq!(proto_match(Proto::Tcp(22, 22)), "tcp dport 22 ");
        assert_eq!(proto_match(Proto::Udp(1000, 2000)), "udp dport 1000-2000 ");
        assert_eq!(proto_match(Proto::Tcp(0, 65535)), "meta l4proto tcp ");
        assert_eq!(proto_match(Proto::Icmp(None, None)), "meta l4proto icmp ");
        assert_eq!(proto_match(Proto::Icmp(Some(8), None)), "icmp type 8 ");
        assert_eq!(
            proto_match(Proto::Icmp(Some(3), Some(4))),
            "icmp type 3 icmp code 4 "
        );
        assert_eq!(proto_match(Proto::Other(47)), "meta l4proto 47 ");
        assert_eq!(
            proto_match(Proto::Icmpv6(None, None)),
            "meta l4proto ipv6-icmp "
        );
        assert_eq!(
            proto_match(Proto::Icmpv6(Some(128), None)),
            "icmpv6 type 128 "
        );
        assert_eq!(
            proto_match(Proto::Icmpv6(Some(1), Some(4))),
            "icmpv6 type 1 icmpv6 code 4 "
        );
        let one_line = |p: &Peer, ingress: bool| {
            let v = peer_matches(p, ingress).unwrap();
            assert_eq!(v.len(), 1, "{v:?}");
            v[0].clone()
        };
        // `0.0.0.0/0` is every IPv4 source, and no IPv6 one; `::/0` the other way round.
        let any = Peer::Cidr(Ipv4Addr::UNSPECIFIED, 0);
        assert_eq!(one_line(&any, true), "meta nfproto ipv4 ");
        let any6 = Peer::Cidr6(Ipv6Addr::UNSPECIFIED, 0);
        assert_eq!(one_line(&any6, true), "meta nfproto ipv6 ");
        let net = Peer::Cidr(Ipv4Addr::new(10, 1, 2, 3), 8);
        assert_eq!(one_line(&net, true), "ip saddr 10.0.0.0/8 ");
        let one = Peer::Cidr(Ipv4Addr::new(10, 1, 2, 3), 32);
        assert_eq!(one_line(&one, false), "ip daddr 10.1.2.3 ");
        let net6 = Peer::Cidr6("2001:db8:1:2::5".parse().unwrap(), 56);
        assert_eq!(one_line(&net6, true), "ip6 saddr 2001:db8:1::/56 ");
        let one6 = Peer::Cidr6("2001:db8::5".parse().unwrap(), 128);
        assert_eq!(one_line(&one6, false), "ip6 daddr 2001:db8::5 ");
        let g = Peer::Group("sg-0123456789abcdef0".into());
        assert_eq!(
            peer_matches(&g, true).unwrap(),
            [
                "iifname . ip saddr @sg_0123456789abcdef0 ",
                "iifname . ip6 saddr @sg_0123456789abcdef0_v6 "
            ]
        );
        assert_eq!(
            peer_matches(&g, false).unwrap(),
            [
                "oifname . ip daddr @sg_0123456789abcdef0 ",
                "oifname . ip6 daddr @sg_0123456789abcdef0_v6 "
            ]
        );
        assert!(peer_matches(&Peer::Cidr(Ipv4Addr::UNSPECIFIED, 33), true).is_err());
        assert!(peer_matches(&Peer::Cidr6(Ipv6Addr::UNSPECIFIED, 129), true).is_err());
    }

    #[test]
    fn hostile_names_are_refused() {
        assert!(ident("x_", "eni-1; flush ruleset").is_err());
        assert!(ident("x_", "").is_err());
        assert!(ifname("a\"b").is_err());
        let mut e = eni("eni-1", "tap1", [10, 0, 0, 4]);
        e.tap = "tap\" }".into();
        assert!(render_guard(&[e]).is_err());
        let g = Peer::Group("sg-x } flush".into());
        assert!(peer_matches(&g, true).is_err());
    }

    #[test]
    fn guard_golden() {
        let got = render_guard(&[eni("eni-0a", "tap0a", [172, 31, 0, 4])]).unwrap();
        let want = "table bridge strato_guard {
\tmap taps {
\t\ttype ifname : verdict
\t\telements = { \"tap0a\" : jump guard_eni_0a }
\t}

\tset eni_addrs {
\t\ttype ipv4_addr
\t\telements = { 172.31.0.4 }
\t}

\tset eni_addrs6 {
\t\ttype ipv6_addr
\t\telements = { fe80::ff:fe00:1 }
\t}

\tchain prerouting {
\t\ttype filter hook prerouting priority -300; policy accept;
\t\tiifname vmap @taps
\t}

\tchain guard_eni_0a {
\t\tether saddr != 02:00:00:00:00:01 counter drop
\t\tarp saddr ether 02:00:00:00:00:01 arp saddr ip { 172.31.0.4, 0.0.0.0 } return
\t\tip saddr { 172.31.0.4 } return
\t\tip saddr 0.0.0.0 udp dport 67 return
\t\ticmpv6 type { nd-router-advert, nd-redirect } counter drop
\t\ticmpv6 type nd-neighbor-advert @th,64,128 != { 0xfe80000000000000000000fffe000001 } counter drop
\t\tip6 saddr { fe80::ff:fe00:1 } return
\t\tip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld2-listener-report } return
\t\tip6 saddr fe80::/10 ip6 daddr ff02::1:2 udp sport 546 udp dport 547 return
\t\tcounter drop
\t}
}
";
        assert_eq!(got, want);
        // No ENIs: an empty map, no elements line.
        let empty = render_guard(&[]).unwrap();
        assert!(!empty.contains("elements"), "{empty}");
        // Without the source/destination check: any source but another interface's.
        let mut nat = eni("eni-0c", "tap0c", [172, 31, 0, 6]);
        nat.source_dest_check = false;
        let got = render_guard(&[nat]).unwrap();
        assert!(
            got.contains(
                "\t\tip saddr 0.0.0.0 udp dport 67 return\n\t\tip saddr != @eni_addrs return\n\t\ticmpv6"
            ),
            "{got}"
        );
        assert!(
            got.contains(
                "\t\tip6 saddr != fe80::/10 ip6 saddr != @eni_addrs6 return\n\t\tcounter drop\n"
            ),
            "{got}"
        );
        let mut none = eni("eni-0b", "tap0b", [172, 31, 0, 5]);
        none.addrs.clear();
        assert!(render_guard(&[none]).is_err());
    }

    #[test]
    fn filter_golden() {
        let mut a = eni("eni-0a", "tap0a", [172, 31, 0, 4]);
        a.egress.push(Rule {
            proto: Proto::All,
            peer: Peer::Cidr(Ipv4Addr::UNSPECIFIED, 0),
        });
        a.ingress.push(Rule {
            proto: Proto::Tcp(22, 22),
            peer: Peer::Cidr(Ipv4Addr::new(10, 0, 0, 0), 8),
        });
        a.ingress.push(Rule {
            proto: Proto::All,
            peer: Peer::Group("sg-0c".into()),
        });
        let rs = Ruleset {
            enis: vec![a],
            groups: vec![GroupSet {
                id: "sg-0c".into(),
                members: vec![("strato0".into(), Ipv4Addr::new(172, 31, 0, 4))],
                members6: vec![],
            }],
            bridges: vec![HostBridge {
                name: "strato0".into(),
                gateways: vec![Ipv4Addr::new(172, 31, 0, 1)],
                gateways6: vec![],
            }],
            metadata: Some(SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 254), 80)),
            api_port: None,
            metadata6: None,
            overlay: None,
        };
        let got = render_filter(&rs).unwrap();
        let want = "table inet strato_filter {
\tset sg_0c {
\t\ttype ifname . ipv4_addr
\t\telements = { \"strato0\" . 172.31.0.4 }
\t}

\tset sg_0c_v6 {
\t\ttype ifname . ipv6_addr
\t}

\tmap eni_out {
\t\ttype ifname . ipv4_addr : verdict
\t\telements = { \"strato0\" . 172.31.0.4 : jump out_eni_0a }
\t}

\tmap eni_in {
\t\ttype ifname . ipv4_addr : verdict
\t\telements = { \"strato0\" . 172.31.0.4 : jump in_eni_0a }
\t}

\tmap eni_out6 {
\t\ttype ifname . ipv6_addr : verdict
\t}

\tmap eni_in6 {
\t\ttype ifname . ipv6_addr : verdict
\t}

\tset vpc_bridges {
\t\ttype ifname
\t\telements = { \"strato0\" }
\t}

\tset gateways {
\t\ttype ifname . ipv4_addr
\t\telements = { \"strato0\" . 172.31.0.1 }
\t}

\tset gateways6 {
\t\ttype ifname . ipv6_addr
\t}

\tchain input {
\t\ttype filter hook input priority 0; policy accept;
\t\tiifname @vpc_bridges jump from_guests
\t}

\tchain from_guests {
\t\tct state established,related accept
\t\tudp sport 68 udp dport 67 accept
\t\ticmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } accept
\t\tudp sport 546 udp dport 547 accept
\t\tip daddr 169.254.169.254 tcp dport 80 accept
\t\ticmp type echo-request iifname . ip daddr @gateways accept
\t\ticmpv6 type echo-request iifname . ip6 daddr @gateways6 accept
\t\tcounter drop
\t}

\tchain forward {
\t\ttype filter hook forward priority 0; policy accept;
\t\tct state established,related accept
\t\ticmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } accept
\t\tct state invalid drop
\t\tiifname . ip saddr vmap @eni_out
\t\toifname . ip daddr vmap @eni_in
\t\tiifname . ip6 saddr vmap @eni_out6
\t\toifname . ip6 daddr vmap @eni_in6
\t}

\tchain out_eni_0a {
\t\tmeta nfproto ipv4 counter return
\t\tcounter drop
\t}

\tchain in_eni_0a {
\t\tip saddr 10.0.0.0/8 tcp dport 22 counter accept
\t\tiifname . ip saddr @sg_0c counter accept
\t\tiifname . ip6 saddr @sg_0c_v6 counter accept
\t\tcounter drop
\t}
}
";
        assert_eq!(got, want);
        let script = render(&rs).unwrap();
        assert!(script.starts_with(
            "table inet strato_filter {}\ndelete table inet strato_filter\ntable inet"
        ));
        assert!(script.contains("table bridge strato_guard {}\ndelete table bridge strato_guard\n"));
    }

    /// With no bridges the host input chain still exists (empty sets, nothing jumps to the
    /// guest chain); without a metadata address nothing is let through to it; a bridge name
    /// that could break out of the script is refused.
    #[test]
    fn host_input_without_bridges_or_metadata() {
        let got = render_filter(&Ruleset::default()).unwrap();
        assert!(
            got.contains("\tset vpc_bridges {\n\t\ttype ifname\n\t}\n"),
            "{got}"
        );
        assert!(
            got.contains("iifname @vpc_bridges jump from_guests"),
            "{got}"
        );
        assert!(!got.contains("tcp dport 80"), "{got}");
        assert!(!got.contains("tcp dport 8773"), "{got}");
        let endpoint = Ruleset {
            api_port: Some(8773),
            ..Ruleset::default()
        };
        assert!(render_filter(&endpoint)
            .unwrap()
            .contains("\t\ttcp dport 8773 iifname . ip daddr @gateways accept\n"));
        let rs = Ruleset {
            bridges: vec![HostBridge {
                name: "br\" }".into(),
                gateways: vec![],
                gateways6: vec![],
            }],
            ..Ruleset::default()
        };
        assert!(render_filter(&rs).is_err());
    }

    /// IPv6: the guard lets a tap send from its own addresses and its MAC's link-local one
    /// only, advertise only those, never route; the filter has IPv6 maps and group sets and
    /// keeps each family's blocks to that family.
    #[test]
    fn ipv6_guard_and_filter() {
        let mut a = eni("eni-0a", "tap0a", [172, 31, 0, 4]);
        a.addrs6 = vec!["2001:db8:0:1::10".parse().unwrap()];
        a.ingress.push(Rule {
            proto: Proto::Tcp(22, 22),
            peer: Peer::Cidr6(Ipv6Addr::UNSPECIFIED, 0),
        });
        a.ingress.push(Rule {
            proto: Proto::Icmpv6(Some(128), None),
            peer: Peer::Group("sg-0c".into()),
        });
        a.egress.push(Rule {
            proto: Proto::All,
            peer: Peer::Cidr6(Ipv6Addr::UNSPECIFIED, 0),
        });
        let guard = render_guard(std::slice::from_ref(&a)).unwrap();
        assert!(
            guard.contains("\t\tip6 saddr { 2001:db8:0:1::10, fe80::ff:fe00:1 } return\n"),
            "{guard}"
        );
        assert!(
            guard.contains(
                "@th,64,128 != { 0x20010db8000000010000000000000010, \
                 0xfe80000000000000000000fffe000001 } counter drop\n"
            ),
            "{guard}"
        );
        assert!(
            guard.contains("elements = { 2001:db8:0:1::10, fe80::ff:fe00:1 }"),
            "{guard}"
        );
        // Router advertisements and redirects are dropped before any source is accepted.
        let ra = guard.find("nd-router-advert, nd-redirect").unwrap();
        let ok = guard.find("ip6 saddr { 2001").unwrap();
        assert!(ra < ok, "{guard}");
        assert!(!guard.contains("ip6 saddr != fe80::/10"), "{guard}");

        let rs = Ruleset {
            enis: vec![a],
            groups: vec![GroupSet {
                id: "sg-0c".into(),
                members: vec![("strato0".into(), Ipv4Addr::new(172, 31, 0, 4))],
                members6: vec![("strato0".into(), "2001:db8:0:1::10".parse().unwrap())],
            }],
            bridges: vec![HostBridge {
                name: "strato0".into(),
                gateways: vec![Ipv4Addr::new(172, 31, 0, 1)],
                gateways6: vec!["2001:db8:0:1::1".parse().unwrap()],
            }],
            metadata: None,
            api_port: None,
            metadata6: Some(SocketAddrV6::new(
                "fd00:ec2::254".parse().unwrap(),
                80,
                0,
                0,
            )),
            overlay: None,
        };
        let got = render_filter(&rs).unwrap();
        for want in [
            "\tset sg_0c_v6 {\n\t\ttype ifname . ipv6_addr\n\t\telements = { \"strato0\" . 2001:db8:0:1::10 }\n\t}\n",
            "\tmap eni_in6 {\n\t\ttype ifname . ipv6_addr : verdict\n\t\telements = { \"strato0\" . 2001:db8:0:1::10 : jump in_eni_0a }\n",
            "\tset gateways6 {\n\t\ttype ifname . ipv6_addr\n\t\telements = { \"strato0\" . 2001:db8:0:1::1 }\n",
            "\t\tip6 daddr fd00:ec2::254 tcp dport 80 accept\n",
            "\t\tudp sport 546 udp dport 547 accept\n",
            "\t\ticmpv6 type echo-request iifname . ip6 daddr @gateways6 accept\n",
            "\t\toifname . ip6 daddr vmap @eni_in6\n",
            "\tchain in_eni_0a {\n\
             \t\tmeta nfproto ipv6 tcp dport 22 counter accept\n\
             \t\tiifname . ip6 saddr @sg_0c_v6 icmpv6 type 128 counter accept\n\
             \t\tcounter drop\n",
            "\tchain out_eni_0a {\n\t\tmeta nfproto ipv6 counter return\n\t\tcounter drop\n",
        ] {
            assert!(got.contains(want), "missing {want:?} in\n{got}");
        }
        // Neighbour discovery passes the forward hook before the invalid-state drop.
        let nd = got.find("\t\ticmpv6 type { nd-router-solicit").unwrap();
        let inv = got.find("ct state invalid drop").unwrap();
        assert!(nd < inv, "{got}");
        assert!(peer_matches(&Peer::Cidr6(Ipv6Addr::UNSPECIFIED, 200), true).is_err());
    }

    #[test]
    fn overlay_ports_are_outside_the_taps() {
        let rs = Ruleset {
            enis: vec![eni("eni-0a", "tap0", [10, 77, 1, 10])],
            bridges: vec![HostBridge {
                name: "svpc0".into(),
                gateways: vec![Ipv4Addr::new(10, 77, 1, 1)],
                gateways6: vec![],
            }],
            overlay: Some(Overlay {
                ports: vec!["svx0".into()],
                underlay: vec![Ipv4Addr::new(10, 250, 0, 11)],
                peers: vec![Ipv4Addr::new(10, 250, 0, 12)],
                port: 4789,
            }),
            ..Ruleset::default()
        };
        let guard = guard_table(&rs.enis, Some((rs.overlay.as_ref().unwrap(), &rs))).unwrap();
        // The VXLAN port is no tap: it is not in the taps map, it has a chain of its own.
        assert!(!guard.contains("\"svx0\" : jump"), "{guard}");
        assert!(
            guard.contains("iifname @overlay_ports jump from_overlay"),
            "{guard}"
        );
        assert!(
            guard.contains("elements = { 02:00:00:00:00:01 }"),
            "{guard}"
        );
        assert!(guard.contains("elements = { 10.77.1.1 }"), "{guard}");
        assert!(
            guard.contains("ip saddr @eni_addrs counter drop"),
            "{guard}"
        );
        let filter = render_filter(&rs).unwrap();
        // The underlay drop comes before replies are let through.
        let ul = filter.find("ip daddr @underlay counter drop").unwrap();
        let est = filter.find("ct state established,related accept").unwrap();
        let fwd = filter.find("chain forward").unwrap();
        assert!(
            fwd < ul && ul < filter[fwd..].find("ct state").unwrap() + fwd,
            "{filter}"
        );
        assert!(est < fwd, "from_guests' own comes first");
        assert!(
            filter.contains("elements = { 10.250.0.11, 10.250.0.12 }"),
            "{filter}"
        );
        assert!(filter.contains("udp dport 4789 ip saddr != @overlay_peers counter drop"));
        // Without an overlay, none of it.
        let alone = render(&Ruleset {
            overlay: None,
            ..rs
        })
        .unwrap();
        assert!(!alone.contains("overlay"), "{alone}");
        assert!(!alone.contains("underlay"), "{alone}");
    }
}
