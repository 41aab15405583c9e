//! Neighbour solicitations and advertisements (RFC 4861 4.3, 4.4) as whole Ethernet frames:
//! what the instance status check sends into a tap through a packet socket ("who has this
//! IPv6 address?") and reads back from the guest. The frames carry their own IPv6 header
//! and ICMPv6 checksum (a packet socket adds neither). What comes back from the guest is
//! hostile input: [`parse_advertisement_frame`] checks every length, the hop limit and
//! the checksum, and ignores anything that is not an advertisement for the target.

use std::net::Ipv6Addr;

/// ICMPv6 type of a neighbour solicitation.
pub const NEIGHBOUR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
pub const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// The Ethernet type of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

const ETH_HLEN: usize = 14;
const IP6_HLEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// Neighbour discovery travels one link only (RFC 4861 7.1.1: receivers drop less).
const HOP_LIMIT: u8 = 255;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// Solicitation: type, code, checksum, reserved, target (24) + source link-layer option (8).
const NS_LEN: usize = 32;

/// The link-local address of `mac` (fe80::/64 with the modified EUI-64 identifier).
pub fn eui64_link_local(mac: [u8; 6]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13..16].copy_from_slice(&mac[3..6]);
    Ipv6Addr::from(a)
}

/// The solicited-node multicast group of `a` (ff02::1:ffXX:XXXX).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    let mut g = [0u8; 16];
    g[0] = 0xff;
    g[1] = 0x02;
    g[11] = 0x01;
    g[12] = 0xff;
    g[13..16].copy_from_slice(&o[13..16]);
    Ipv6Addr::from(g)
}

/// The ICMPv6 checksum of `msg` (its checksum field taken as zero) between `src` and `dst`.
fn checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let hi = u64::from(c[0]) << 8;
            sum += hi | c.get(1).map_or(0, |&l| u64::from(l));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    let mut m = msg.to_vec();
    if let Some(c) = m.get_mut(2..4) {
        c.fill(0);
    }
    add(&m);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds a solicitation for `target` from `src_mac` and its link-local address, to the
/// target's solicited-node group, as a whole Ethernet frame.
pub fn solicitation_frame(src_mac: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
    let src = eui64_link_local(src_mac);
    let dst = solicited_node(target);
    let mut msg = vec![0u8; NS_LEN];
    msg[0] = NEIGHBOUR_SOLICITATION;
    msg[8..24].copy_from_slice(&target.octets());
    msg[24] = OPT_SOURCE_LL;
    msg[25] = 1;
    msg[26..32].copy_from_slice(&src_mac);
    let ck = checksum(src, dst, &msg);
    msg[2..4].copy_from_slice(&ck.to_be_bytes());

    let mut f = Vec::with_capacity(ETH_HLEN + IP6_HLEN + NS_LEN);
    // 33:33 and the group's last four bytes (RFC 2464 7).
    f.extend_from_slice(&[0x33, 0x33]);
    f.extend_from_slice(&dst.octets()[12..16]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(NS_LEN as u16).to_be_bytes());
    f.extend_from_slice(&[NEXT_HEADER_ICMPV6, HOP_LIMIT]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&msg);
    f
}

/// If `frame` is an Ethernet/IPv6 neighbour advertisement for `target` (hop limit 255,
/// code 0, a right checksum), returns the MAC it gives (its target link-layer option, else
/// the frame's source); a multicast or zero MAC gives `None`, as does anything else.
pub fn parse_advertisement_frame(frame: &[u8], target: Ipv6Addr) -> Option<[u8; 6]> {
    let eth = frame.get(..ETH_HLEN)?;
    if u16::from_be_bytes([eth[12], eth[13]]) != ETHERTYPE_IPV6 {
        return None;
    }
    let ip = frame.get(ETH_HLEN..ETH_HLEN + IP6_HLEN)?;
    let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if ip[0] >> 4 != 6 || ip[6] != NEXT_HEADER_ICMPV6 || ip[7] != HOP_LIMIT {
        return None;
    }
    let at = ETH_HLEN + IP6_HLEN;
    let msg = frame.get(at..at + plen)?;
    if msg.len() < 24 || msg[0] != NEIGHBOUR_ADVERTISEMENT || msg[1] != 0 {
        return None;
    }
    let octets =
        |b: &[u8]| -> Option<Ipv6Addr> { Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?)) };
    let (src, dst) = (octets(&ip[8..24])?, octets(&ip[24..40])?);
    if checksum(src, dst, msg) != u16::from_be_bytes([msg[2], msg[3]]) {
        return None;
    }
    if octets(&msg[8..24])? != target {
        return None;
    }
    let mut mac: [u8; 6] = eth[6..12].try_into().ok()?;
    let mut i = 24;
    while let Some(&[kind, len]) = msg.get(i..i + 2) {
        let len = usize::from(len) * 8;
        let opt = msg.get(i..i + len).filter(|_| len > 0)?;
        if kind == OPT_TARGET_LL && len == 8 {
            mac.copy_from_slice(&opt[2..8]);
        }
        i += len;
    }
    (mac[0] & 1 == 0 && mac != [0; 6]).then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const GUEST: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];

    fn target() -> Ipv6Addr {
        "2001:db8:40::10".parse().unwrap()
    }

    /// What a guest answers: an advertisement from `target` to the asker, S and O set,
    /// with a target link-layer option naming `mac`.
    fn advertisement(target: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
        let src = target;
        let dst = eui64_link_local(HOST);
        let mut msg = vec![0u8; 32];
        msg[0] = NEIGHBOUR_ADVERTISEMENT;
        msg[4] = 0x60;
        msg[8..24].copy_from_slice(&target.octets());
        msg[24] = OPT_TARGET_LL;
        msg[25] = 1;
        msg[26..32].copy_from_slice(&mac);
        let ck = checksum(src, dst, &msg);
        msg[2..4].copy_from_slice(&ck.to_be_bytes());
        let mut f = Vec::new();
        f.extend_from_slice(&HOST);
        f.extend_from_slice(&GUEST);
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&msg);
        f
    }

    #[test]
    fn link_local_and_solicited_node_addresses() {
        assert_eq!(
            eui64_link_local([0x02, 0, 0, 0, 0, 0x0b]),
            "fe80::ff:fe00:b".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            solicited_node("2001:db8::12:3456".parse().unwrap()),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn a_solicitation_is_a_whole_frame_to_the_solicited_node_group() {
        let f = solicitation_frame(HOST, target());
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0, 0, 0x10]);
        assert_eq!(&f[6..12], &HOST);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14] >> 4, 6);
        assert_eq!(
            &f[18..22],
            &[0, 32, 58, 255],
            "payload length, ICMPv6, hop limit"
        );
        assert_eq!(&f[22..38], &eui64_link_local(HOST).octets());
        assert_eq!(&f[38..54], &solicited_node(target()).octets());
        assert_eq!(f[54], NEIGHBOUR_SOLICITATION);
        assert_eq!(&f[62..78], &target().octets());
        assert_eq!(&f[78..80], &[OPT_SOURCE_LL, 1]);
        assert_eq!(&f[80..86], &HOST);
        // Summing the message with its checksum gives 0xffff (a receiver's check).
        let src = eui64_link_local(HOST);
        let dst = solicited_node(target());
        let ck = checksum(src, dst, &f[54..]);
        assert_eq!(ck.to_be_bytes(), [f[56], f[57]]);
        // The checksum field itself is not summed (a receiver sums it in).
        let mut g = f.clone();
        g[56] ^= 0xff;
        assert_eq!(
            checksum(src, dst, &g[54..]),
            ck,
            "the field itself is not summed"
        );
    }

    #[test]
    fn advertisements_for_the_target_are_read_and_all_else_ignored() {
        let good = advertisement(target(), GUEST);
        assert_eq!(parse_advertisement_frame(&good, target()), Some(GUEST));
        // Padding past the payload (a 60-byte minimum frame, or more) is fine.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(parse_advertisement_frame(&padded, target()), Some(GUEST));
        // Another target, a bad checksum, a hop limit of 64, a solicitation, not IPv6.
        assert_eq!(
            parse_advertisement_frame(&good, "2001:db8:40::11".parse().unwrap()),
            None
        );
        let mut bad = good.clone();
        bad[57] ^= 1;
        assert_eq!(parse_advertisement_frame(&bad, target()), None);
        let mut hop = good.clone();
        hop[21] = 64;
        assert_eq!(parse_advertisement_frame(&hop, target()), None);
        let ns = solicitation_frame(GUEST, target());
        assert_eq!(parse_advertisement_frame(&ns, target()), None);
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse_advertisement_frame(&arp, target()), None);
        // A multicast MAC in the option is no answer.
        let multi = advertisement(target(), [0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(parse_advertisement_frame(&multi, target()), None);
        // Without the option, the frame's source MAC.
        let mut bare = advertisement(target(), GUEST);
        bare.truncate(14 + 40 + 24);
        bare[19] = 24;
        let src = target();
        let dst = eui64_link_local(HOST);
        let ck = checksum(src, dst, &bare[54..]);
        bare[56..58].copy_from_slice(&ck.to_be_bytes());
        assert_eq!(parse_advertisement_frame(&bare, target()), Some(GUEST));
        // Every truncation, and an option of length 0, is refused without a panic.
        for n in 0..good.len() {
            assert_eq!(parse_advertisement_frame(&good[..n], target()), None, "{n}");
        }
        let mut zero = good.clone();
        zero[79] = 0;
        let ck = checksum(target(), dst, &zero[54..]);
        zero[56..58].copy_from_slice(&ck.to_be_bytes());
        assert_eq!(parse_advertisement_frame(&zero, target()), None);
    }
}
