//! Structured fuzz input for the IPv6 codecs: DHCPv6 messages ([`dhcp6`]) and router
//! solicitations and advertisements ([`ndp`]). A message is built valid from random parts
//! and broken only rarely; a valid one must parse to exactly what was built, and every
//! answer the server decides on must encode to what parses back.

use std::net::Ipv6Addr;

use strato_fuzzgen::{alloc, Source};

use super::{mangle, MEMORY_BOUND};
use crate::dhcp6::{self, IaAddr, IaNa, Lease, Message, MessageType, Status};
use crate::ndp::{self, Advertisement, Prefix, Solicitation};
use crate::neighbour;

/// Runs one DHCPv6 case.
pub fn dhcp6(data: &[u8]) {
    alloc::bounded("DHCPv6", MEMORY_BOUND, || {
        dhcp6_case(&mut Source::new(data))
    });
}

/// Runs one router solicitation/advertisement case.
pub fn ndp(data: &[u8]) {
    alloc::bounded("NDP", MEMORY_BOUND, || ndp_case(&mut Source::new(data)));
}

fn addr(src: &mut Source<'_>) -> Ipv6Addr {
    if src.bool() {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, u16::from(src.u8() & 3))
    } else {
        let mut a = [0u8; 16];
        src.fill(&mut a);
        Ipv6Addr::from(a)
    }
}

fn status(src: &mut Source<'_>) -> Option<Status> {
    src.rarely().then(|| {
        let n = src.below(8) as usize;
        Status {
            code: src.u16() & 7,
            message: String::from_utf8_lossy(src.bytes(n)).into_owned(),
        }
    })
}

fn duid(src: &mut Source<'_>) -> Vec<u8> {
    // `fill`, not `bytes`: a DUID keeps its length when the input runs out.
    let mut d = vec![0u8; src.range_usize(2, 20)];
    src.fill(&mut d);
    d
}

fn message(src: &mut Source<'_>) -> Message {
    let kind = MessageType::from_u8(src.range(1, 11) as u8).unwrap_or(MessageType::Solicit);
    let mut m = Message::new(kind, src.u32());
    if !src.rarely() {
        m.client_id = Some(duid(src));
    }
    if src.bool() {
        m.server_id = Some(if src.bool() {
            dhcp6::server_duid("br0")
        } else {
            duid(src)
        });
    }
    for _ in 0..src.below(3) {
        let mut ia = IaNa {
            iaid: src.u32(),
            t1: src.u32(),
            t2: src.u32(),
            addrs: Vec::new(),
            status: status(src),
        };
        for _ in 0..src.below(4) {
            ia.addrs.push(IaAddr {
                addr: addr(src),
                preferred: src.u32(),
                valid: src.u32(),
            });
        }
        m.ias.push(ia);
    }
    m.status = status(src);
    m.rapid_commit = src.bool();
    m
}

fn dhcp6_case(src: &mut Source<'_>) {
    let lease = Lease {
        addrs: (0..src.below(4)).map(|_| addr(src)).collect(),
        on_link: vec![(
            "2001:db8:0:1::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
            64,
        )],
        lifetime: src.u32(),
    };
    if src.rarely() {
        let _ = check(src.rest(), &lease);
        return;
    }
    let m = message(src);
    let mut b = dhcp6::encode(&m);
    // An unknown option somewhere after the header: skipped by the parser.
    if src.rarely() {
        b.extend_from_slice(&[0, 99, 0, 1, src.u8()]);
    }
    let mangled = mangle(src, &mut b);
    let parsed = check(&b, &lease);
    if mangled {
        return;
    }
    let got = parsed.unwrap_or_else(|e| panic!("a valid message refused: {e}"));
    assert_eq!(got, m);
}

/// Parses `b`, decides and encodes an answer, and checks the answer is well formed and
/// names this client and server.
fn check(b: &[u8], lease: &Lease) -> Result<Message, dhcp6::PacketError> {
    let req = dhcp6::parse(b)?;
    let duid = dhcp6::server_duid("br0");
    let Some(reply) = dhcp6::decide(&req, &duid, lease) else {
        return Ok(req);
    };
    assert!(
        matches!(reply.kind, MessageType::Advertise | MessageType::Reply),
        "answered with {:?}",
        reply.kind
    );
    assert_eq!(reply.xid, req.xid);
    assert_eq!(reply.client_id, req.client_id);
    assert_eq!(reply.server_id.as_deref(), Some(duid.as_slice()));
    let back = dhcp6::parse(&dhcp6::encode(&reply))
        .unwrap_or_else(|e| panic!("the server's answer does not parse: {e}"));
    assert_eq!(back, reply);
    // Only the ENI's addresses live; any other address is there to be killed.
    for ia in &reply.ias {
        for a in &ia.addrs {
            assert!(
                lease.addrs.contains(&a.addr) || a.valid == 0,
                "{} handed out",
                a.addr
            );
        }
    }
    Ok(req)
}

fn ndp_case(src: &mut Source<'_>) {
    if src.rarely() {
        let target = addr(src);
        let rest = src.rest();
        let _ = ndp::parse_solicitation(rest);
        let _ = ndp::parse_advertisement(rest);
        // The status check's neighbour probe reads whole frames from the guest.
        let _ = neighbour::parse_advertisement_frame(rest, target);
        return;
    }
    if src.rarely() {
        // A solicitation frame (ours) is no advertisement, mangled or not.
        let mut m = [0u8; 6];
        src.fill(&mut m);
        let target = addr(src);
        let mut f = neighbour::solicitation_frame(m, target);
        mangle(src, &mut f);
        let _ = neighbour::parse_advertisement_frame(&f, target);
        return;
    }
    if src.bool() {
        let s = Solicitation {
            source_mac: src.bool().then(|| {
                let mut m = [0u8; 6];
                src.fill(&mut m);
                m
            }),
        };
        let mut b = ndp::encode_solicitation(&s);
        if mangle(src, &mut b) {
            let _ = ndp::parse_solicitation(&b);
        } else {
            assert_eq!(ndp::parse_solicitation(&b), Ok(s));
        }
        return;
    }
    let mut ra = Advertisement {
        hop_limit: src.u8(),
        managed: src.bool(),
        other: src.bool(),
        lifetime: src.u16(),
        source_mac: None,
        mtu: src.bool().then(|| src.u32()),
        prefixes: Vec::new(),
    };
    if src.bool() {
        let mut m = [0u8; 6];
        src.fill(&mut m);
        ra.source_mac = Some(m);
    }
    for _ in 0..src.below(4) {
        ra.prefixes.push(Prefix {
            // A /128 keeps every bit, so what was built comes back.
            prefix: addr(src),
            len: 128,
            on_link: src.bool(),
            autonomous: src.bool(),
            valid: src.u32(),
            preferred: src.u32(),
        });
    }
    let mut b = ndp::encode_advertisement(&ra);
    if mangle(src, &mut b) {
        let _ = ndp::parse_advertisement(&b);
    } else {
        assert_eq!(ndp::parse_advertisement(&b), Ok(ra));
    }
}

#[cfg(test)]
mod tests {
    use strato_fuzzgen::property;

    #[test]
    fn dhcp6_properties() {
        property("dhcp6", 600, 1024, super::dhcp6);
    }

    #[test]
    fn ndp_properties() {
        property("ndp", 600, 1024, super::ndp);
    }
}
