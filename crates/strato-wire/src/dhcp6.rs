//! The DHCPv6 (RFC 8415) message codec and the stateful server's decisions, as pure
//! functions: parsing any client/server message (hostile input: every length is checked,
//! every list is bounded), choosing the answer for an ENI's addresses, and encoding.
//!
//! One codec serves both directions so that the tests (and the e2e client) speak to the
//! server with the same parser the server uses on them, and the fuzz target checks that
//! encoding what was parsed gives it back.

use std::net::Ipv6Addr;

/// The most IA_NA options one message may carry; a client needs one per interface.
pub const MAX_IAS: usize = 8;
/// The most addresses one IA_NA may carry (an ENI's addresses are far fewer in practice).
pub const MAX_ADDRS: usize = 32;
/// The longest DUID (RFC 8415 11.1: 128 octets after the 2-octet type).
pub const MAX_DUID: usize = 130;
/// The longest status message kept; the rest is dropped.
pub const MAX_STATUS_TEXT: usize = 128;

const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_STATUS_CODE: u16 = 13;
const OPT_RAPID_COMMIT: u16 = 14;

/// Status codes (RFC 8415 21.13).
pub mod status {
    /// Success.
    pub const SUCCESS: u16 = 0;
    /// No addresses for the IA.
    pub const NO_ADDRS_AVAIL: u16 = 2;
    /// The addresses are not on the client's link.
    pub const NOT_ON_LINK: u16 = 4;
}

/// DHCPv6 message types; relay messages (12, 13) are not read (no relays on a VPC bridge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 1
    Solicit,
    /// 2
    Advertise,
    /// 3
    Request,
    /// 4
    Confirm,
    /// 5
    Renew,
    /// 6
    Rebind,
    /// 7
    Reply,
    /// 8
    Release,
    /// 9
    Decline,
    /// 10
    Reconfigure,
    /// 11
    InformationRequest,
}

impl MessageType {
    /// The type of code `v`.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Solicit,
            2 => Self::Advertise,
            3 => Self::Request,
            4 => Self::Confirm,
            5 => Self::Renew,
            6 => Self::Rebind,
            7 => Self::Reply,
            8 => Self::Release,
            9 => Self::Decline,
            10 => Self::Reconfigure,
            11 => Self::InformationRequest,
            _ => return None,
        })
    }

    /// The type's code.
    pub fn code(self) -> u8 {
        match self {
            Self::Solicit => 1,
            Self::Advertise => 2,
            Self::Request => 3,
            Self::Confirm => 4,
            Self::Renew => 5,
            Self::Rebind => 6,
            Self::Reply => 7,
            Self::Release => 8,
            Self::Decline => 9,
            Self::Reconfigure => 10,
            Self::InformationRequest => 11,
        }
    }
}

/// Why bytes were not a DHCPv6 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the 4-byte header.
    #[error("message too short ({0} bytes)")]
    Short(usize),
    /// A message type that is unknown or a relay's.
    #[error("message type {0} is not read")]
    Type(u8),
    /// An option runs past the end of what holds it.
    #[error("option {0} runs past the end")]
    Truncated(u16),
    /// An option whose length does not fit its kind.
    #[error("option {0} has a bad length {1}")]
    Length(u16, usize),
    /// An option that may appear once appears twice.
    #[error("option {0} appears twice")]
    Duplicate(u16),
    /// More IA_NAs or addresses than the server reads.
    #[error("more than {0} of option {1}")]
    TooMany(usize, u16),
}

/// A status code option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The code ([`status`]).
    pub code: u16,
    /// Its message (lossy UTF-8, at most [`MAX_STATUS_TEXT`] bytes kept).
    pub message: String,
}

/// An address of an IA_NA, with its lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IaAddr {
    /// The address.
    pub addr: Ipv6Addr,
    /// Preferred lifetime in seconds.
    pub preferred: u32,
    /// Valid lifetime in seconds.
    pub valid: u32,
}

/// An identity association for non-temporary addresses (IA_NA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaNa {
    /// The client's identifier of the IA.
    pub iaid: u32,
    /// When to renew, in seconds.
    pub t1: u32,
    /// When to rebind, in seconds.
    pub t2: u32,
    /// Its addresses.
    pub addrs: Vec<IaAddr>,
    /// Its status, if any.
    pub status: Option<Status>,
}

/// A DHCPv6 message, as far as the server reads or writes it (other options are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Message type.
    pub kind: MessageType,
    /// Transaction ID (24 bits).
    pub xid: u32,
    /// The client's DUID.
    pub client_id: Option<Vec<u8>>,
    /// The server's DUID.
    pub server_id: Option<Vec<u8>>,
    /// IA_NA options, in order.
    pub ias: Vec<IaNa>,
    /// The message's status, if any.
    pub status: Option<Status>,
    /// Whether the rapid-commit option is present.
    pub rapid_commit: bool,
}

impl Message {
    /// An empty message of `kind` and `xid` (the low 24 bits are kept).
    pub fn new(kind: MessageType, xid: u32) -> Message {
        Message {
            kind,
            xid: xid & 0x00ff_ffff,
            client_id: None,
            server_id: None,
            ias: Vec::new(),
            status: None,
            rapid_commit: false,
        }
    }

    /// The client's MAC from its DUID, when the DUID is link-layer based (DUID-LLT or
    /// DUID-LL) over Ethernet.
    pub fn client_mac(&self) -> Option<[u8; 6]> {
        let d = self.client_id.as_deref()?;
        let ll = match d.get(..2)? {
            [0, 1] => d.get(8..)?,
            [0, 3] => d.get(4..)?,
            _ => return None,
        };
        // Hardware type 1 (Ethernet) at bytes 2-3 in both kinds.
        if d.get(2..4)? != [0, 1] {
            return None;
        }
        ll.try_into().ok()
    }
}

/// Splits `b` into options: `(code, value)`, or the option that runs past the end.
fn options(b: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), PacketError>> {
    let mut i = 0usize;
    std::iter::from_fn(move || {
        if i >= b.len() {
            return None;
        }
        let Some(h) = b.get(i..i + 4) else {
            i = b.len();
            return Some(Err(PacketError::Truncated(0)));
        };
        let code = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let Some(val) = b.get(i + 4..i + 4 + len) else {
            i = b.len();
            return Some(Err(PacketError::Truncated(code)));
        };
        i += 4 + len;
        Some(Ok((code, val)))
    })
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_status(val: &[u8]) -> Result<Status, PacketError> {
    if val.len() < 2 {
        return Err(PacketError::Length(OPT_STATUS_CODE, val.len()));
    }
    let text = &val[2..val.len().min(2 + MAX_STATUS_TEXT)];
    Ok(Status {
        code: u16::from_be_bytes([val[0], val[1]]),
        message: String::from_utf8_lossy(text).into_owned(),
    })
}

fn set_once<T>(slot: &mut Option<T>, v: T, code: u16) -> Result<(), PacketError> {
    if slot.is_some() {
        return Err(PacketError::Duplicate(code));
    }
    *slot = Some(v);
    Ok(())
}

fn parse_ia(val: &[u8]) -> Result<IaNa, PacketError> {
    if val.len() < 12 {
        return Err(PacketError::Length(OPT_IA_NA, val.len()));
    }
    let mut ia = IaNa {
        iaid: be32(val, 0),
        t1: be32(val, 4),
        t2: be32(val, 8),
        addrs: Vec::new(),
        status: None,
    };
    for opt in options(&val[12..]) {
        let (code, v) = opt?;
        match code {
            OPT_IAADDR => {
                if v.len() < 24 {
                    return Err(PacketError::Length(code, v.len()));
                }
                if ia.addrs.len() == MAX_ADDRS {
                    return Err(PacketError::TooMany(MAX_ADDRS, code));
                }
                let mut a = [0u8; 16];
                a.copy_from_slice(&v[..16]);
                ia.addrs.push(IaAddr {
                    addr: Ipv6Addr::from(a),
                    preferred: be32(v, 16),
                    valid: be32(v, 20),
                });
            }
            OPT_STATUS_CODE => set_once(&mut ia.status, parse_status(v)?, code)?,
            _ => {}
        }
    }
    Ok(ia)
}

/// Parses a DHCPv6 message (not a relay message).
pub fn parse(b: &[u8]) -> Result<Message, PacketError> {
    if b.len() < 4 {
        return Err(PacketError::Short(b.len()));
    }
    let kind = MessageType::from_u8(b[0]).ok_or(PacketError::Type(b[0]))?;
    let mut m = Message::new(kind, u32::from_be_bytes([0, b[1], b[2], b[3]]));
    for opt in options(&b[4..]) {
        let (code, val) = opt?;
        match code {
            OPT_CLIENTID | OPT_SERVERID => {
                if val.len() < 2 || val.len() > MAX_DUID {
                    return Err(PacketError::Length(code, val.len()));
                }
                let slot = if code == OPT_CLIENTID {
                    &mut m.client_id
                } else {
                    &mut m.server_id
                };
                set_once(slot, val.to_vec(), code)?;
            }
            OPT_IA_NA => {
                if m.ias.len() == MAX_IAS {
                    return Err(PacketError::TooMany(MAX_IAS, code));
                }
                m.ias.push(parse_ia(val)?);
            }
            OPT_STATUS_CODE => set_once(&mut m.status, parse_status(val)?, code)?,
            OPT_RAPID_COMMIT => {
                if !val.is_empty() {
                    return Err(PacketError::Length(code, val.len()));
                }
                if m.rapid_commit {
                    return Err(PacketError::Duplicate(code));
                }
                m.rapid_commit = true;
            }
            _ => {}
        }
    }
    Ok(m)
}

fn put(out: &mut Vec<u8>, code: u16, val: &[u8]) {
    out.extend_from_slice(&code.to_be_bytes());
    // Every value written here is bounded far below 64 KiB (see the MAX_ constants).
    out.extend_from_slice(&(val.len() as u16).to_be_bytes());
    out.extend_from_slice(val);
}

fn status_bytes(s: &Status) -> Vec<u8> {
    let mut v = s.code.to_be_bytes().to_vec();
    let text = s.message.as_bytes();
    v.extend_from_slice(&text[..text.len().min(MAX_STATUS_TEXT)]);
    v
}

/// Encodes `m`: header, client and server IDs, IA_NAs with their addresses and status,
/// the message's status, rapid commit. Lists past the `MAX_` bounds are cut there, so
/// everything encoded parses back.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = vec![m.kind.code()];
    out.extend_from_slice(&m.xid.to_be_bytes()[1..]);
    if let Some(c) = &m.client_id {
        put(&mut out, OPT_CLIENTID, &c[..c.len().min(MAX_DUID)]);
    }
    if let Some(s) = &m.server_id {
        put(&mut out, OPT_SERVERID, &s[..s.len().min(MAX_DUID)]);
    }
    for ia in m.ias.iter().take(MAX_IAS) {
        let mut v = Vec::with_capacity(12 + 28 * ia.addrs.len());
        v.extend_from_slice(&ia.iaid.to_be_bytes());
        v.extend_from_slice(&ia.t1.to_be_bytes());
        v.extend_from_slice(&ia.t2.to_be_bytes());
        for a in ia.addrs.iter().take(MAX_ADDRS) {
            let mut av = a.addr.octets().to_vec();
            av.extend_from_slice(&a.preferred.to_be_bytes());
            av.extend_from_slice(&a.valid.to_be_bytes());
            put(&mut v, OPT_IAADDR, &av);
        }
        if let Some(s) = &ia.status {
            put(&mut v, OPT_STATUS_CODE, &status_bytes(s));
        }
        put(&mut out, OPT_IA_NA, &v);
    }
    if let Some(s) = &m.status {
        put(&mut out, OPT_STATUS_CODE, &status_bytes(s));
    }
    if m.rapid_commit {
        put(&mut out, OPT_RAPID_COMMIT, &[]);
    }
    out
}

/// The server's stable DUID for a bridge: DUID-EN (type 2) under enterprise number 32473
/// (RFC 5612's example number; strato has none of its own) with `strato:` and the bridge's
/// name as identifier. It depends on nothing but the name, so it survives restarts and a
/// client's Renew still names this server.
pub fn server_duid(bridge: &str) -> Vec<u8> {
    let mut d = vec![0, 2];
    d.extend_from_slice(&32473u32.to_be_bytes());
    d.extend_from_slice(b"strato:");
    let name = bridge.as_bytes();
    d.extend_from_slice(&name[..name.len().min(MAX_DUID - d.len())]);
    d
}

/// What the server knows about the client's ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The ENI's IPv6 addresses.
    pub addrs: Vec<Ipv6Addr>,
    /// The on-link prefixes of the bridge (the subnets' /64s), for Confirm.
    pub on_link: Vec<(Ipv6Addr, u8)>,
    /// Preferred and valid lifetime handed out, in seconds.
    pub lifetime: u32,
}

fn in_prefix(a: Ipv6Addr, (net, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX
        .checked_shl(128u32.saturating_sub(len.into()))
        .unwrap_or(0);
    u128::from(a) & mask == u128::from(net) & mask
}

fn status(code: u16, message: &str) -> Option<Status> {
    Some(Status {
        code,
        message: message.into(),
    })
}

/// The IA_NAs of an answer: the client's first IA gets every address of the ENI (an ENI's
/// addresses all belong to one interface); addresses the client lists that are not the
/// ENI's get lifetimes 0 (RFC 8415 18.3.4), and further IAs get NoAddrsAvail.
fn grant(req: &Message, lease: &Lease) -> Vec<IaNa> {
    let t1 = lease.lifetime / 2;
    let t2 = lease.lifetime / 5 * 4;
    req.ias
        .iter()
        .enumerate()
        .map(|(i, ia)| {
            let mut out = IaNa {
                iaid: ia.iaid,
                t1: 0,
                t2: 0,
                addrs: Vec::new(),
                status: None,
            };
            let granted = i == 0 && !lease.addrs.is_empty();
            if granted {
                out.t1 = t1;
                out.t2 = t2;
                out.addrs = lease
                    .addrs
                    .iter()
                    .take(MAX_ADDRS)
                    .map(|&addr| IaAddr {
                        addr,
                        preferred: lease.lifetime,
                        valid: lease.lifetime,
                    })
                    .collect();
            }
            for a in &ia.addrs {
                if out.addrs.len() < MAX_ADDRS && !out.addrs.iter().any(|o| o.addr == a.addr) {
                    out.addrs.push(IaAddr {
                        addr: a.addr,
                        preferred: 0,
                        valid: 0,
                    });
                }
            }
            if !granted {
                out.status = status(status::NO_ADDRS_AVAIL, "no addresses for this IA");
            }
            out
        })
        .collect()
}

/// The server's answer to `req` from a client whose ENI has `lease`, as the server whose
/// DUID is `duid`: Advertise for Solicit (Reply with rapid commit when asked), Reply for
/// Request, Renew, Rebind, Release, Decline, Confirm and Information-request. Nothing for
/// server messages, messages without the client ID they need or with a server ID that is
/// not ours (or one where none belongs), and a Confirm without addresses (RFC 8415 16, 18.3).
pub fn decide(req: &Message, duid: &[u8], lease: &Lease) -> Option<Message> {
    use MessageType as T;
    let ours = req.server_id.as_deref() == Some(duid);
    let needs_server = matches!(req.kind, T::Request | T::Renew | T::Release | T::Decline);
    let no_server = matches!(req.kind, T::Solicit | T::Rebind | T::Confirm);
    match req.kind {
        T::Advertise | T::Reply | T::Reconfigure => return None,
        T::InformationRequest => {
            if req.server_id.is_some() && !ours {
                return None;
            }
        }
        _ => {
            if req.client_id.is_none()
                || (needs_server && !ours)
                || (no_server && req.server_id.is_some())
            {
                return None;
            }
        }
    }
    let kind = if req.kind == T::Solicit && !req.rapid_commit {
        T::Advertise
    } else {
        T::Reply
    };
    let mut m = Message::new(kind, req.xid);
    m.client_id = req.client_id.clone();
    m.server_id = Some(duid.to_vec());
    match req.kind {
        T::Solicit | T::Request | T::Renew | T::Rebind => {
            m.rapid_commit = req.kind == T::Solicit && req.rapid_commit;
            if req.ias.is_empty() {
                m.status = status(status::NO_ADDRS_AVAIL, "no IA_NA in the request");
            } else {
                m.ias = grant(req, lease);
            }
        }
        T::Release | T::Decline => {
            // Addresses never move between ENIs: nothing to free or to quarantine.
            m.status = status(status::SUCCESS, "done");
        }
        T::Confirm => {
            let addrs: Vec<Ipv6Addr> = req
                .ias
                .iter()
                .flat_map(|ia| ia.addrs.iter().map(|a| a.addr))
                .collect();
            if addrs.is_empty() {
                return None;
            }
            let on_link = addrs
                .iter()
                .all(|&a| lease.on_link.iter().any(|&p| in_prefix(a, p)));
            m.status = if on_link {
                status(status::SUCCESS, "on link")
            } else {
                status(status::NOT_ON_LINK, "not on this link")
            };
        }
        _ => {}
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01];

    fn duid_ll() -> Vec<u8> {
        let mut d = vec![0, 3, 0, 1];
        d.extend_from_slice(&MAC);
        d
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn lease() -> Lease {
        Lease {
            addrs: vec![a("2001:db8:0:1::10"), a("2001:db8:0:1::11")],
            on_link: vec![(a("2001:db8:0:1::"), 64)],
            lifetime: 3600,
        }
    }

    fn client(kind: MessageType, server: Option<Vec<u8>>, ias: Vec<IaNa>) -> Message {
        Message {
            client_id: Some(duid_ll()),
            server_id: server,
            ias,
            ..Message::new(kind, 0xabcdef)
        }
    }

    fn ia(iaid: u32, addrs: &[&str]) -> IaNa {
        IaNa {
            iaid,
            t1: 0,
            t2: 0,
            addrs: addrs
                .iter()
                .map(|s| IaAddr {
                    addr: a(s),
                    preferred: 0,
                    valid: 0,
                })
                .collect(),
            status: None,
        }
    }

    /// Encodes, parses back, and asks the server.
    fn ask(m: &Message) -> Option<Message> {
        let wire = encode(m);
        let back = parse(&wire).unwrap();
        assert_eq!(&back, m);
        let r = decide(&back, &server_duid("br0"), &lease())?;
        let rb = parse(&encode(&r)).unwrap();
        assert_eq!(rb, r);
        Some(r)
    }

    #[test]
    fn solicit_request_renew_rebind_hand_out_the_enis_addresses() {
        let duid = server_duid("br0");
        let adv = ask(&client(MessageType::Solicit, None, vec![ia(7, &[])])).unwrap();
        assert_eq!(adv.kind, MessageType::Advertise);
        assert_eq!(adv.xid, 0xabcdef);
        assert_eq!(adv.client_id, Some(duid_ll()));
        assert_eq!(adv.server_id.as_deref(), Some(duid.as_slice()));
        assert_eq!(adv.ias.len(), 1);
        let got: Vec<_> = adv.ias[0].addrs.iter().map(|x| x.addr).collect();
        assert_eq!(got, lease().addrs);
        assert_eq!(
            (adv.ias[0].iaid, adv.ias[0].t1, adv.ias[0].t2),
            (7, 1800, 2880)
        );
        assert!(adv.ias[0].addrs.iter().all(|x| x.valid == 3600));
        for kind in [MessageType::Request, MessageType::Renew] {
            let r = ask(&client(kind, Some(duid.clone()), vec![ia(7, &[])])).unwrap();
            assert_eq!(r.kind, MessageType::Reply);
            assert_eq!(r.ias[0].addrs.len(), 2);
        }
        // A Rebind listing an address that is not the ENI's: it comes back dead.
        let r = ask(&client(
            MessageType::Rebind,
            None,
            vec![ia(7, &["2001:db8:0:1::10", "2001:db8:0:9::1"])],
        ))
        .unwrap();
        let dead: Vec<_> = r.ias[0].addrs.iter().filter(|x| x.valid == 0).collect();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].addr, a("2001:db8:0:9::1"));
        assert_eq!(r.ias[0].addrs.len(), 3);
        // Rapid commit: a Reply at once.
        let mut s = client(MessageType::Solicit, None, vec![ia(1, &[]), ia(2, &[])]);
        s.rapid_commit = true;
        let r = ask(&s).unwrap();
        assert_eq!(r.kind, MessageType::Reply);
        assert!(r.rapid_commit);
        // The second IA gets nothing.
        assert_eq!(
            r.ias[1].status.as_ref().unwrap().code,
            status::NO_ADDRS_AVAIL
        );
        assert!(r.ias[1].addrs.is_empty());
        // No IA at all, an ENI with no addresses.
        let r = ask(&client(MessageType::Solicit, None, vec![])).unwrap();
        assert_eq!(r.status.unwrap().code, status::NO_ADDRS_AVAIL);
        let empty = Lease {
            addrs: vec![],
            ..lease()
        };
        let r = decide(
            &client(MessageType::Solicit, None, vec![ia(1, &[])]),
            &duid,
            &empty,
        )
        .unwrap();
        assert_eq!(
            r.ias[0].status.as_ref().unwrap().code,
            status::NO_ADDRS_AVAIL
        );
    }

    #[test]
    fn server_ids_are_checked() {
        let other = server_duid("br1");
        assert_ne!(other, server_duid("br0"));
        assert_eq!(server_duid("br0"), server_duid("br0"));
        for kind in [
            MessageType::Request,
            MessageType::Renew,
            MessageType::Release,
            MessageType::Decline,
        ] {
            assert!(
                ask(&client(kind, None, vec![ia(1, &[])])).is_none(),
                "{kind:?}"
            );
            assert!(ask(&client(kind, Some(other.clone()), vec![])).is_none());
        }
        for kind in [
            MessageType::Solicit,
            MessageType::Rebind,
            MessageType::Confirm,
        ] {
            let m = client(
                kind,
                Some(server_duid("br0")),
                vec![ia(1, &["2001:db8:0:1::10"])],
            );
            assert!(ask(&m).is_none(), "{kind:?}");
        }
        // No client ID, server messages: silence.
        let mut m = client(MessageType::Solicit, None, vec![]);
        m.client_id = None;
        assert!(ask(&m).is_none());
        for kind in [
            MessageType::Advertise,
            MessageType::Reply,
            MessageType::Reconfigure,
        ] {
            assert!(ask(&client(kind, None, vec![])).is_none());
        }
    }

    #[test]
    fn release_decline_confirm_and_information_request() {
        let duid = server_duid("br0");
        for kind in [MessageType::Release, MessageType::Decline] {
            let r = ask(&client(
                kind,
                Some(duid.clone()),
                vec![ia(1, &["2001:db8:0:1::10"])],
            ))
            .unwrap();
            assert_eq!(r.kind, MessageType::Reply);
            assert_eq!(r.status.unwrap().code, status::SUCCESS);
            assert!(r.ias.is_empty());
        }
        let ok = ask(&client(
            MessageType::Confirm,
            None,
            vec![ia(1, &["2001:db8:0:1::99"])],
        ))
        .unwrap();
        assert_eq!(ok.status.unwrap().code, status::SUCCESS);
        let moved = ask(&client(
            MessageType::Confirm,
            None,
            vec![ia(1, &["2001:db8:5::1"])],
        ))
        .unwrap();
        assert_eq!(moved.status.unwrap().code, status::NOT_ON_LINK);
        assert!(ask(&client(MessageType::Confirm, None, vec![ia(1, &[])])).is_none());
        // Information-request: with or without a client ID, with our server ID or none.
        let mut info = client(MessageType::InformationRequest, None, vec![]);
        info.client_id = None;
        let r = ask(&info).unwrap();
        assert_eq!((r.kind, r.client_id.as_ref()), (MessageType::Reply, None));
        info.server_id = Some(duid.clone());
        assert!(ask(&info).is_some());
        info.server_id = Some(server_duid("br1"));
        assert!(ask(&info).is_none());
    }

    #[test]
    fn client_macs_come_from_link_layer_duids() {
        let m = client(MessageType::Solicit, None, vec![]);
        assert_eq!(m.client_mac(), Some(MAC));
        let mut llt = vec![0, 1, 0, 1, 1, 2, 3, 4];
        llt.extend_from_slice(&MAC);
        let m = Message {
            client_id: Some(llt),
            ..m
        };
        assert_eq!(m.client_mac(), Some(MAC));
        for d in [
            vec![0, 3, 0, 6, 1, 2, 3, 4, 5, 6],    // not Ethernet
            vec![0, 3, 0, 1, 1, 2, 3],             // short
            vec![0, 2, 0, 0, 0, 9, 1, 2, 3, 4, 5], // DUID-EN
            vec![0, 4],
        ] {
            let m = Message {
                client_id: Some(d.clone()),
                ..Message::new(MessageType::Solicit, 1)
            };
            assert_eq!(m.client_mac(), None, "{d:?}");
        }
        assert_eq!(Message::new(MessageType::Solicit, 1).client_mac(), None);
    }

    #[test]
    fn malformed_messages_are_refused_not_panicked_on() {
        assert_eq!(parse(&[]), Err(PacketError::Short(0)));
        assert_eq!(parse(&[1, 2, 3]), Err(PacketError::Short(3)));
        assert_eq!(parse(&[12, 0, 0, 0]), Err(PacketError::Type(12)));
        assert_eq!(parse(&[0, 0, 0, 0]), Err(PacketError::Type(0)));
        let hdr = [1u8, 0, 0, 1];
        let with = |opts: &[u8]| [&hdr[..], opts].concat();
        // An option header cut, an option value past the end.
        assert_eq!(parse(&with(&[0, 1, 0])), Err(PacketError::Truncated(0)));
        assert_eq!(
            parse(&with(&[0, 1, 0, 9, 0, 3])),
            Err(PacketError::Truncated(1))
        );
        // DUIDs too short or too long, twice.
        assert_eq!(
            parse(&with(&[0, 1, 0, 1, 0])),
            Err(PacketError::Length(1, 1))
        );
        let mut long = vec![0, 2, 0, 131];
        long.extend_from_slice(&[0; 131]);
        assert_eq!(parse(&with(&long)), Err(PacketError::Length(2, 131)));
        assert_eq!(
            parse(&with(&[0, 1, 0, 2, 0, 4, 0, 1, 0, 2, 0, 4])),
            Err(PacketError::Duplicate(1))
        );
        // An IA_NA shorter than its header, an IAADDR shorter than its fields, an IA whose
        // inner option runs past the IA (though not past the message).
        assert_eq!(
            parse(&with(&[0, 3, 0, 4, 0, 0, 0, 1])),
            Err(PacketError::Length(3, 4))
        );
        let mut raw = vec![0, 3, 0, 20];
        raw.extend_from_slice(&[0; 12]);
        raw.extend_from_slice(&[0, 5, 0, 4, 0, 0, 0, 0]);
        assert_eq!(parse(&with(&raw)), Err(PacketError::Length(5, 4)));
        let mut raw = vec![0, 3, 0, 16];
        raw.extend_from_slice(&[0; 12]);
        raw.extend_from_slice(&[0, 5, 0, 24]);
        raw.extend_from_slice(&[0; 24]);
        assert_eq!(parse(&with(&raw)), Err(PacketError::Truncated(5)));
        // Too many IAs; rapid commit with a value or twice; a status too short.
        let one = encode(&Message {
            ias: vec![ia_of(0)],
            ..Message::new(MessageType::Solicit, 1)
        });
        let mut many = hdr.to_vec();
        for _ in 0..=MAX_IAS {
            many.extend_from_slice(&one[4..]);
        }
        assert_eq!(parse(&many), Err(PacketError::TooMany(MAX_IAS, 3)));
        assert_eq!(
            parse(&with(&[0, 14, 0, 1, 0])),
            Err(PacketError::Length(14, 1))
        );
        assert_eq!(
            parse(&with(&[0, 14, 0, 0, 0, 14, 0, 0])),
            Err(PacketError::Duplicate(14))
        );
        assert_eq!(
            parse(&with(&[0, 13, 0, 1, 0])),
            Err(PacketError::Length(13, 1))
        );
        // Unknown options are skipped; a status message that is not UTF-8 is kept lossily.
        let m = parse(&with(&[0, 99, 0, 2, 1, 2, 0, 13, 0, 3, 0, 0, 0xff])).unwrap();
        assert_eq!(m.status.unwrap().message, "\u{fffd}");
        // Every cut of a valid message parses or fails cleanly.
        let full = encode(&client(
            MessageType::Request,
            Some(server_duid("br0")),
            vec![ia(1, &["2001:db8::1", "2001:db8::2"])],
        ));
        for n in 0..full.len() {
            let _ = parse(&full[..n]);
        }
    }

    fn ia_of(iaid: u32) -> IaNa {
        ia(iaid, &[])
    }
}
