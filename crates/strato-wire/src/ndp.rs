//! Router solicitations and advertisements (RFC 4861 4.1, 4.2) as pure functions over
//! ICMPv6 messages (what a raw ICMPv6 socket reads and writes: no IPv6 header; the kernel
//! fills and checks the checksum). Solicitations come from guests and are hostile input.
//!
//! The advertisements say what EC2's do: addresses come from DHCPv6 (M=1), and each
//! subnet's /64 is on-link but not for SLAAC (prefix information with L=1, A=0).

use std::net::Ipv6Addr;

/// ICMPv6 type of a router solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a router advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// The most prefixes one advertisement carries (and the parser keeps).
pub const MAX_PREFIXES: usize = 16;

const OPT_SOURCE_LL: u8 = 1;
const OPT_PREFIX: u8 = 3;
const OPT_MTU: u8 = 5;
const FLAG_MANAGED: u8 = 0x80;
const FLAG_OTHER: u8 = 0x40;
const PREFIX_ON_LINK: u8 = 0x80;
const PREFIX_AUTONOMOUS: u8 = 0x40;

/// Why bytes were not a router solicitation or advertisement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NdpError {
    /// Shorter than the message's fixed part.
    #[error("message too short ({0} bytes)")]
    Short(usize),
    /// Another ICMPv6 type, or a code other than 0.
    #[error("ICMPv6 type {0} code {1} is not the one expected")]
    Type(u8, u8),
    /// An option of length 0 (RFC 4861 4.6: such a packet is dropped) or past the end.
    #[error("option {0} has a bad length")]
    Length(u8),
}

/// A router solicitation, as far as the daemon reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solicitation {
    /// The source link-layer address option, if it is an Ethernet one.
    pub source_mac: Option<[u8; 6]>,
}

/// An on-link prefix of an advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The prefix (bits past `len` are zero when encoded).
    pub prefix: Ipv6Addr,
    /// Its length.
    pub len: u8,
    /// The on-link flag (L).
    pub on_link: bool,
    /// The autonomous flag (A: SLAAC allowed).
    pub autonomous: bool,
    /// Valid lifetime in seconds.
    pub valid: u32,
    /// Preferred lifetime in seconds.
    pub preferred: u32,
}

/// A router advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// The hop limit hosts should use (0: unspecified).
    pub hop_limit: u8,
    /// Managed address configuration: get addresses by DHCPv6.
    pub managed: bool,
    /// Other configuration by DHCPv6.
    pub other: bool,
    /// Router lifetime in seconds (0: not a default router).
    pub lifetime: u16,
    /// The router's link-layer address.
    pub source_mac: Option<[u8; 6]>,
    /// The link MTU.
    pub mtu: Option<u32>,
    /// On-link prefixes.
    pub prefixes: Vec<Prefix>,
}

/// Splits `b` into `(type, whole option)` items, refusing lengths of 0 or past the end.
fn options(b: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), NdpError>> {
    let mut i = 0usize;
    std::iter::from_fn(move || {
        let kind = *b.get(i)?;
        let len = usize::from(*b.get(i + 1).unwrap_or(&0)) * 8;
        let Some(opt) = b.get(i..i + len).filter(|_| len > 0) else {
            i = b.len();
            return Some(Err(NdpError::Length(kind)));
        };
        i += len;
        Some(Ok((kind, opt)))
    })
}

fn mac_of(opt: &[u8]) -> Option<[u8; 6]> {
    // Ethernet's option is exactly 8 bytes: type, length 1, six address bytes.
    (opt.len() == 8).then(|| [opt[2], opt[3], opt[4], opt[5], opt[6], opt[7]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses a router solicitation.
pub fn parse_solicitation(b: &[u8]) -> Result<Solicitation, NdpError> {
    if b.len() < 8 {
        return Err(NdpError::Short(b.len()));
    }
    if b[0] != ROUTER_SOLICITATION || b[1] != 0 {
        return Err(NdpError::Type(b[0], b[1]));
    }
    let mut source_mac = None;
    for opt in options(&b[8..]) {
        let (kind, opt) = opt?;
        if kind == OPT_SOURCE_LL {
            source_mac = mac_of(opt);
        }
    }
    Ok(Solicitation { source_mac })
}

/// Encodes a router solicitation (what a host sends; the tests play one).
pub fn encode_solicitation(s: &Solicitation) -> Vec<u8> {
    let mut b = vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    if let Some(m) = s.source_mac {
        b.extend_from_slice(&[OPT_SOURCE_LL, 1]);
        b.extend_from_slice(&m);
    }
    b
}

fn mask(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let m = u128::MAX
        .checked_shl(128u32.saturating_sub(len.into()))
        .unwrap_or(0);
    Ipv6Addr::from(u128::from(a) & m)
}

/// Encodes an advertisement (checksum 0: the kernel fills it). At most [`MAX_PREFIXES`]
/// prefixes are written; prefix lengths above 128 are written as 128.
pub fn encode_advertisement(ra: &Advertisement) -> Vec<u8> {
    let mut flags = 0;
    if ra.managed {
        flags |= FLAG_MANAGED;
    }
    if ra.other {
        flags |= FLAG_OTHER;
    }
    let mut b = vec![ROUTER_ADVERTISEMENT, 0, 0, 0, ra.hop_limit, flags];
    b.extend_from_slice(&ra.lifetime.to_be_bytes());
    // Reachable time and retransmission timer: unspecified, the hosts' defaults.
    b.extend_from_slice(&[0; 8]);
    if let Some(m) = ra.source_mac {
        b.extend_from_slice(&[OPT_SOURCE_LL, 1]);
        b.extend_from_slice(&m);
    }
    if let Some(mtu) = ra.mtu {
        b.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
        b.extend_from_slice(&mtu.to_be_bytes());
    }
    for p in ra.prefixes.iter().take(MAX_PREFIXES) {
        let len = p.len.min(128);
        let mut pf = 0;
        if p.on_link {
            pf |= PREFIX_ON_LINK;
        }
        if p.autonomous {
            pf |= PREFIX_AUTONOMOUS;
        }
        b.extend_from_slice(&[OPT_PREFIX, 4, len, pf]);
        b.extend_from_slice(&p.valid.to_be_bytes());
        b.extend_from_slice(&p.preferred.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&mask(p.prefix, len).octets());
    }
    b
}

/// Parses a router advertisement (the tests read the daemon's; the fuzz target checks the
/// round trip). Prefix options past [`MAX_PREFIXES`] are skipped.
pub fn parse_advertisement(b: &[u8]) -> Result<Advertisement, NdpError> {
    if b.len() < 16 {
        return Err(NdpError::Short(b.len()));
    }
    if b[0] != ROUTER_ADVERTISEMENT || b[1] != 0 {
        return Err(NdpError::Type(b[0], b[1]));
    }
    let mut ra = Advertisement {
        hop_limit: b[4],
        managed: b[5] & FLAG_MANAGED != 0,
        other: b[5] & FLAG_OTHER != 0,
        lifetime: u16::from_be_bytes([b[6], b[7]]),
        source_mac: None,
        mtu: None,
        prefixes: Vec::new(),
    };
    for opt in options(&b[16..]) {
        let (kind, opt) = opt?;
        match kind {
            OPT_SOURCE_LL => ra.source_mac = mac_of(opt),
            OPT_MTU if opt.len() == 8 => ra.mtu = Some(be32(opt, 4)),
            OPT_PREFIX if opt.len() == 32 && ra.prefixes.len() < MAX_PREFIXES => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&opt[16..32]);
                ra.prefixes.push(Prefix {
                    prefix: Ipv6Addr::from(a),
                    len: opt[2],
                    on_link: opt[3] & PREFIX_ON_LINK != 0,
                    autonomous: opt[3] & PREFIX_AUTONOMOUS != 0,
                    valid: be32(opt, 4),
                    preferred: be32(opt, 8),
                });
            }
            _ => {}
        }
    }
    Ok(ra)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

    fn ra() -> Advertisement {
        Advertisement {
            hop_limit: 64,
            managed: true,
            other: false,
            lifetime: 1800,
            source_mac: Some(MAC),
            mtu: Some(1500),
            prefixes: vec![Prefix {
                prefix: "2001:db8:0:1::".parse().unwrap(),
                len: 64,
                on_link: true,
                autonomous: false,
                valid: 86400,
                preferred: 14400,
            }],
        }
    }

    #[test]
    fn advertisements_round_trip_with_the_managed_flag_and_no_slaac() {
        let b = encode_advertisement(&ra());
        assert_eq!(b.len(), 16 + 8 + 8 + 32);
        assert_eq!(b[5], 0x80, "M=1, O=0");
        assert_eq!(b[b.len() - 32 + 3], 0x80, "L=1, A=0");
        assert_eq!(parse_advertisement(&b).unwrap(), ra());
        // Bits past the prefix length are cleared.
        let mut r = ra();
        r.prefixes[0].prefix = "2001:db8:0:1::77".parse().unwrap();
        assert_eq!(
            parse_advertisement(&encode_advertisement(&r)).unwrap(),
            ra()
        );
    }

    #[test]
    fn solicitations_round_trip() {
        for s in [
            Solicitation {
                source_mac: Some(MAC),
            },
            Solicitation { source_mac: None },
        ] {
            assert_eq!(parse_solicitation(&encode_solicitation(&s)).unwrap(), s);
        }
    }

    #[test]
    fn malformed_messages_are_refused_not_panicked_on() {
        assert_eq!(parse_solicitation(&[]), Err(NdpError::Short(0)));
        assert_eq!(parse_solicitation(&[133, 0, 0]), Err(NdpError::Short(3)));
        assert_eq!(parse_solicitation(&[134; 8]), Err(NdpError::Type(134, 134)));
        assert_eq!(
            parse_solicitation(&[133, 1, 0, 0, 0, 0, 0, 0]),
            Err(NdpError::Type(133, 1))
        );
        let rs = |opts: &[u8]| [&[133u8, 0, 0, 0, 0, 0, 0, 0][..], opts].concat();
        // Length 0, past the end, a type with no length byte.
        assert_eq!(
            parse_solicitation(&rs(&[1, 0, 0, 0, 0, 0, 0, 0])),
            Err(NdpError::Length(1))
        );
        assert_eq!(
            parse_solicitation(&rs(&[1, 2, 0, 0, 0, 0, 0, 0])),
            Err(NdpError::Length(1))
        );
        assert_eq!(parse_solicitation(&rs(&[9])), Err(NdpError::Length(9)));
        // A link-layer option of another size is no Ethernet address; unknown options pass.
        let s = parse_solicitation(&rs(&[1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(s.unwrap().source_mac, None);
        assert!(parse_solicitation(&rs(&[200, 1, 0, 0, 0, 0, 0, 0])).is_ok());
        assert_eq!(parse_advertisement(&[134; 15]), Err(NdpError::Short(15)));
        let full = encode_advertisement(&ra());
        for n in 0..full.len() {
            let _ = parse_advertisement(&full[..n]);
            let _ = parse_solicitation(&full[..n]);
        }
    }
}
