//! The DHCP (RFC 2131/2132) packet codec and the server's decisions, as pure functions:
//! parsing a guest's request (hostile input: every length is checked), choosing the answer
//! for an ENI's lease, and encoding the reply.

use std::net::Ipv4Addr;

/// Least size of a BOOTP message: the fixed header and the magic cookie.
const HEADER: usize = 240;
/// The magic cookie before the options.
const COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The broadcast bit of `flags`.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 1
    Discover,
    /// 2
    Offer,
    /// 3
    Request,
    /// 4
    Decline,
    /// 5
    Ack,
    /// 6
    Nak,
    /// 7
    Release,
    /// 8
    Inform,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            _ => return None,
        })
    }

    fn code(self) -> u8 {
        match self {
            Self::Discover => 1,
            Self::Offer => 2,
            Self::Request => 3,
            Self::Decline => 4,
            Self::Ack => 5,
            Self::Nak => 6,
            Self::Release => 7,
            Self::Inform => 8,
        }
    }
}

/// Why a packet was not a DHCP request the server can answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the fixed header and cookie.
    #[error("packet too short ({0} bytes)")]
    Short(usize),
    /// Not a BOOTREQUEST.
    #[error("not a BOOTREQUEST (op {0})")]
    NotRequest(u8),
    /// Not Ethernet with 6-byte addresses.
    #[error("hardware type {0} length {1} is not Ethernet")]
    NotEthernet(u8, u8),
    /// No magic cookie.
    #[error("no DHCP magic cookie")]
    NoCookie,
    /// An option runs past the end.
    #[error("option {0} runs past the end of the packet")]
    Truncated(u8),
    /// No message type option, or an unknown one.
    #[error("no valid DHCP message type")]
    NoType,
}

/// A client's request, as far as the server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Message type.
    pub kind: MessageType,
    /// Transaction ID.
    pub xid: u32,
    /// Flags (the broadcast bit).
    pub flags: u16,
    /// Client address (set when the client has one: INFORM, renewals).
    pub ciaddr: Ipv4Addr,
    /// Relay agent address.
    pub giaddr: Ipv4Addr,
    /// Client hardware address.
    pub chaddr: [u8; 6],
    /// Option 50: the address asked for.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54: the server the client chose.
    pub server_id: Option<Ipv4Addr>,
}

impl Request {
    /// The client's MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac(&self) -> String {
        let m = self.chaddr;
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// The netmask of a prefix length (0 to 32).
fn netmask(prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(
        u32::MAX
            .checked_shl(32u32.saturating_sub(prefix.into()))
            .unwrap_or(0),
    )
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Parses a client's DHCP message.
pub fn parse(b: &[u8]) -> Result<Request, PacketError> {
    if b.len() < HEADER {
        return Err(PacketError::Short(b.len()));
    }
    if b[0] != 1 {
        return Err(PacketError::NotRequest(b[0]));
    }
    if b[1] != 1 || b[2] != 6 {
        return Err(PacketError::NotEthernet(b[1], b[2]));
    }
    if b[236..240] != COOKIE {
        return Err(PacketError::NoCookie);
    }
    let mut kind = None;
    let mut requested_ip = None;
    let mut server_id = None;
    let mut i = HEADER;
    while i < b.len() {
        let code = b[i];
        match code {
            0 => {
                i += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = *b.get(i + 1).ok_or(PacketError::Truncated(code))? as usize;
        let val = b
            .get(i + 2..i + 2 + len)
            .ok_or(PacketError::Truncated(code))?;
        match (code, len) {
            (53, 1) => kind = MessageType::from_u8(val[0]),
            (50, 4) => requested_ip = Some(ip_at(val, 0)),
            (54, 4) => server_id = Some(ip_at(val, 0)),
            _ => {}
        }
        i += 2 + len;
    }
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&b[28..34]);
    Ok(Request {
        kind: kind.ok_or(PacketError::NoType)?,
        xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        flags: u16::from_be_bytes([b[10], b[11]]),
        ciaddr: ip_at(b, 12),
        giaddr: ip_at(b, 24),
        chaddr,
        requested_ip,
        server_id,
    })
}

/// What the server knows about the client's ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The ENI's primary private address.
    pub ip: Ipv4Addr,
    /// Its subnet's prefix length.
    pub prefix: u8,
    /// The subnet's gateway, also the server identifier.
    pub gateway: Ipv4Addr,
    /// Lease time in seconds.
    pub lease_secs: u32,
    /// Interface MTU.
    pub mtu: u16,
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// OFFER, ACK or NAK.
    pub kind: MessageType,
    /// The address handed out (0 for NAK and for an INFORM's ACK).
    pub yiaddr: Ipv4Addr,
    /// Where to send it: the client's address, or the limited broadcast address.
    pub to: Ipv4Addr,
}

/// The server's answer to `req` from a client whose ENI has `lease`: OFFER for DISCOVER,
/// ACK or NAK for REQUEST, ACK for INFORM; nothing for RELEASE, DECLINE, replies, relayed
/// requests and REQUESTs meant for another server.
pub fn decide(req: &Request, lease: &Lease) -> Option<Reply> {
    if !req.giaddr.is_unspecified() {
        // No relays on a VPC bridge.
        return None;
    }
    let reply = |kind, yiaddr| {
        // A client with an address gets a unicast; one without cannot answer ARP yet, so
        // it gets a broadcast, whatever its broadcast flag says (RFC 2131 4.1 allows it).
        let to = if kind != MessageType::Nak && !req.ciaddr.is_unspecified() {
            req.ciaddr
        } else {
            Ipv4Addr::BROADCAST
        };
        Some(Reply { kind, yiaddr, to })
    };
    match req.kind {
        MessageType::Discover => reply(MessageType::Offer, lease.ip),
        MessageType::Request => {
            if req.server_id.is_some_and(|s| s != lease.gateway) {
                return None;
            }
            let asked = req.requested_ip.unwrap_or(req.ciaddr);
            if asked == lease.ip {
                reply(MessageType::Ack, lease.ip)
            } else {
                reply(MessageType::Nak, Ipv4Addr::UNSPECIFIED)
            }
        }
        MessageType::Inform => reply(MessageType::Ack, Ipv4Addr::UNSPECIFIED),
        _ => None,
    }
}

fn option(out: &mut Vec<u8>, code: u8, val: &[u8]) {
    out.push(code);
    out.push(val.len() as u8);
    out.extend_from_slice(val);
}

/// Encodes the reply to `req`: the header echoed (xid, flags, giaddr, chaddr), the address,
/// and the options: type, server identifier, and (except in a NAK) subnet mask, router,
/// host name `ip-a-b-c-d` and interface MTU, with the lease times except for an INFORM.
pub fn encode(req: &Request, reply: &Reply, lease: &Lease) -> Vec<u8> {
    let mut b = vec![0u8; HEADER];
    b[0] = 2;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&req.xid.to_be_bytes());
    b[10..12].copy_from_slice(&req.flags.to_be_bytes());
    if req.kind == MessageType::Inform || reply.kind == MessageType::Ack {
        b[12..16].copy_from_slice(&req.ciaddr.octets());
    }
    b[16..20].copy_from_slice(&reply.yiaddr.octets());
    b[24..28].copy_from_slice(&req.giaddr.octets());
    b[28..34].copy_from_slice(&req.chaddr);
    b[236..240].copy_from_slice(&COOKIE);
    option(&mut b, 53, &[reply.kind.code()]);
    option(&mut b, 54, &lease.gateway.octets());
    if reply.kind != MessageType::Nak {
        let mask = netmask(lease.prefix);
        option(&mut b, 1, &mask.octets());
        option(&mut b, 3, &lease.gateway.octets());
        let host = format!("ip-{}", lease.ip.to_string().replace('.', "-"));
        option(&mut b, 12, host.as_bytes());
        option(&mut b, 26, &lease.mtu.to_be_bytes());
        if req.kind != MessageType::Inform {
            option(&mut b, 51, &lease.lease_secs.to_be_bytes());
            option(&mut b, 58, &(lease.lease_secs / 2).to_be_bytes());
            option(&mut b, 59, &(lease.lease_secs / 8 * 7).to_be_bytes());
        }
    }
    b.push(255);
    // Old BOOTP clients drop messages shorter than 300 bytes.
    if b.len() < 300 {
        b.resize(300, 0);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01];

    /// A client message of `kind` with extra options.
    fn client(kind: u8, extra: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b[28..34].copy_from_slice(&MAC);
        b[236..240].copy_from_slice(&COOKIE);
        option(&mut b, 53, &[kind]);
        for (c, v) in extra {
            option(&mut b, *c, v);
        }
        b.push(255);
        b
    }

    fn lease() -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 0, 1, 4),
            prefix: 24,
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            lease_secs: 3600,
            mtu: 1500,
        }
    }

    /// The options of an encoded reply, by code.
    fn options(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = HEADER;
        while b[i] != 255 {
            let len = b[i + 1] as usize;
            out.push((b[i], b[i + 2..i + 2 + len].to_vec()));
            i += 2 + len;
        }
        out
    }

    fn get(opts: &[(u8, Vec<u8>)], code: u8) -> Option<Vec<u8>> {
        opts.iter().find(|o| o.0 == code).map(|o| o.1.clone())
    }

    #[test]
    fn discover_gets_an_offer_with_everything() {
        let req = parse(&client(1, &[(12, b"guest"), (55, &[1, 3, 6])])).unwrap();
        assert_eq!(req.kind, MessageType::Discover);
        assert_eq!(req.xid, 0x1234_5678);
        assert_eq!(req.mac(), "02:aa:bb:cc:dd:01");
        let r = decide(&req, &lease()).unwrap();
        assert_eq!(r.kind, MessageType::Offer);
        assert_eq!(r.to, Ipv4Addr::BROADCAST);
        let b = encode(&req, &r, &lease());
        assert!(b.len() >= 300);
        assert_eq!(b[0], 2);
        assert_eq!(&b[4..8], &0x1234_5678u32.to_be_bytes());
        assert_eq!(&b[16..20], &[10, 0, 1, 4]);
        assert_eq!(&b[28..34], &MAC);
        let o = options(&b);
        assert_eq!(get(&o, 53).unwrap(), [2]);
        assert_eq!(get(&o, 54).unwrap(), [10, 0, 1, 1]);
        assert_eq!(get(&o, 1).unwrap(), [255, 255, 255, 0]);
        assert_eq!(get(&o, 3).unwrap(), [10, 0, 1, 1]);
        assert_eq!(get(&o, 12).unwrap(), b"ip-10-0-1-4");
        assert_eq!(get(&o, 26).unwrap(), 1500u16.to_be_bytes());
        assert_eq!(get(&o, 51).unwrap(), 3600u32.to_be_bytes());
    }

    #[test]
    fn request_is_acked_for_its_address_and_naked_otherwise() {
        let ok = parse(&client(3, &[(50, &[10, 0, 1, 4]), (54, &[10, 0, 1, 1])])).unwrap();
        let r = decide(&ok, &lease()).unwrap();
        assert_eq!((r.kind, r.yiaddr), (MessageType::Ack, lease().ip));
        let wrong = parse(&client(3, &[(50, &[10, 0, 1, 9])])).unwrap();
        let r = decide(&wrong, &lease()).unwrap();
        assert_eq!(r.kind, MessageType::Nak);
        assert_eq!(r.to, Ipv4Addr::BROADCAST);
        let o = options(&encode(&wrong, &r, &lease()));
        assert_eq!(get(&o, 53).unwrap(), [6]);
        assert!(get(&o, 51).is_none() && get(&o, 3).is_none());
        // Meant for another server: silence.
        let other = parse(&client(3, &[(50, &[10, 0, 1, 4]), (54, &[10, 9, 9, 9])])).unwrap();
        assert!(decide(&other, &lease()).is_none());
        // A renewal: ciaddr, no option 50, a unicast answer.
        let mut renew = client(3, &[]);
        renew[12..16].copy_from_slice(&[10, 0, 1, 4]);
        let renew = parse(&renew).unwrap();
        let r = decide(&renew, &lease()).unwrap();
        assert_eq!((r.kind, r.to), (MessageType::Ack, lease().ip));
    }

    #[test]
    fn inform_release_decline_and_relays() {
        let mut inform = client(8, &[]);
        inform[12..16].copy_from_slice(&[10, 0, 1, 4]);
        let inform = parse(&inform).unwrap();
        let r = decide(&inform, &lease()).unwrap();
        assert_eq!(r.kind, MessageType::Ack);
        assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
        let o = options(&encode(&inform, &r, &lease()));
        assert!(get(&o, 51).is_none(), "no lease time in an INFORM's ACK");
        assert!(get(&o, 1).is_some());
        for kind in [4, 7, 2, 5] {
            let req = parse(&client(kind, &[])).unwrap();
            assert!(decide(&req, &lease()).is_none(), "type {kind}");
        }
        let mut relayed = client(1, &[]);
        relayed[24..28].copy_from_slice(&[10, 0, 0, 1]);
        assert!(decide(&parse(&relayed).unwrap(), &lease()).is_none());
    }

    #[test]
    fn malformed_packets_are_refused_not_panicked_on() {
        assert_eq!(parse(&[]), Err(PacketError::Short(0)));
        assert_eq!(parse(&[1; 239]), Err(PacketError::Short(239)));
        let mut b = client(1, &[]);
        b[0] = 2;
        assert_eq!(parse(&b), Err(PacketError::NotRequest(2)));
        let mut b = client(1, &[]);
        b[2] = 16;
        assert_eq!(parse(&b), Err(PacketError::NotEthernet(1, 16)));
        let mut b = client(1, &[]);
        b[236] = 0;
        assert_eq!(parse(&b), Err(PacketError::NoCookie));
        // An option whose length runs past the end.
        let mut b = client(1, &[]);
        b.pop();
        b.extend_from_slice(&[12, 200, b'x']);
        assert_eq!(parse(&b), Err(PacketError::Truncated(12)));
        // A code with no length byte.
        let mut b = client(1, &[]);
        b.pop();
        b.push(61);
        assert_eq!(parse(&b), Err(PacketError::Truncated(61)));
        // No type, an unknown type, a type of the wrong length.
        let mut b = vec![0u8; HEADER];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[236..240].copy_from_slice(&COOKIE);
        assert_eq!(parse(&b), Err(PacketError::NoType));
        assert_eq!(parse(&client(99, &[])), Err(PacketError::NoType));
        let mut b = client(1, &[]);
        b[HEADER + 1] = 2;
        b.insert(HEADER + 3, 0);
        assert_eq!(parse(&b), Err(PacketError::NoType));
        // Without an end option the options simply stop; pads are skipped; a requested
        // address of the wrong length is ignored.
        let mut b = client(3, &[(0, &[]), (50, &[1, 2, 3])]);
        b.pop();
        let r = parse(&b).unwrap();
        assert_eq!(r.requested_ip, None);
        // Every truncation of a valid packet parses or fails cleanly.
        let full = client(3, &[(50, &[10, 0, 1, 4]), (54, &[10, 0, 1, 1]), (12, b"h")]);
        for n in 0..full.len() {
            let _ = parse(&full[..n]);
        }
    }
}
