//! Structured fuzz input for the guest-facing codecs, and the checks a case makes beyond
//! "no panic". The `fuzz/` targets call [`imds_http`] and [`dhcp`] with libFuzzer's bytes;
//! the unit tests call them with seeded random bytes.
//!
//! Requests are built valid (a request line, known and random headers, the blank line; a
//! BOOTREQUEST with its cookie and options) and broken only rarely (a flipped byte, a cut,
//! a bad length, raw bytes). A valid one must parse to exactly what was built; anything that
//! parses must satisfy the parser's promises.

mod v6;

use std::net::Ipv4Addr;

use strato_fuzzgen::{alloc, Source};

use crate::dhcp::{self, Lease, MessageType};
use crate::imds_http::{self, Response, MAX_BODY, MAX_HEAD};
pub use v6::{dhcp6, ndp};

/// The most one case may hold beyond its start (a head is at most 8 KiB; the copies the
/// harness makes of it).
pub const MEMORY_BOUND: usize = 256 << 10;

/// Rarely breaks `buf`: flips a byte, cuts it, or inserts one.
fn mangle(src: &mut Source<'_>, buf: &mut Vec<u8>) -> bool {
    if !src.rarely() || buf.is_empty() {
        return false;
    }
    let at = src.below(buf.len() as u64) as usize;
    match src.below(3) {
        0 => buf[at] ^= src.u8() | 1,
        1 => buf.truncate(at),
        _ => buf.insert(at, src.u8()),
    }
    true
}

fn token(src: &mut Source<'_>, alphabet: &[u8], max: usize) -> String {
    let n = 1 + src.below(max as u64) as usize;
    (0..n)
        .map(|_| char::from(*src.pick(alphabet).unwrap_or(&b'a')))
        .collect()
}

const PATH_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_./";

/// Runs one IMDS HTTP case.
pub fn imds_http(data: &[u8]) {
    alloc::bounded("IMDS HTTP", MEMORY_BOUND, || {
        http_case(&mut Source::new(data))
    });
}

fn http_case(src: &mut Source<'_>) {
    if src.rarely() {
        let _ = check_head(src.rest());
        return;
    }
    let method = if src.rarely() {
        token(src, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 8)
    } else {
        (*src.pick(&["GET", "PUT", "HEAD", "POST"]).unwrap_or(&"GET")).to_string()
    };
    let path = match src.below(4) {
        0 => "/latest/api/token".to_string(),
        1 => "/latest/meta-data/".to_string(),
        _ => format!("/{}", token(src, PATH_CHARS, 40)),
    };
    let query = if src.rarely() {
        format!("?{}", token(src, PATH_CHARS, 8))
    } else {
        String::new()
    };
    let version = if src.rarely() {
        "HTTP/2.0"
    } else {
        *src.pick(&["HTTP/1.1", "HTTP/1.0"]).unwrap_or(&"HTTP/1.1")
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for _ in 0..src.below(6) {
        let (name, value) = match src.below(7) {
            0 => ("Host".to_string(), "169.254.169.254".to_string()),
            1 => (
                "X-aws-ec2-metadata-token".to_string(),
                token(src, PATH_CHARS, 56),
            ),
            2 => (
                "X-aws-ec2-metadata-token-ttl-seconds".to_string(),
                src.below(30000).to_string(),
            ),
            3 => (
                "Connection".to_string(),
                (*src.pick(&["close", "keep-alive", "x"]).unwrap_or(&"close")).to_string(),
            ),
            4 => (
                "Content-Length".to_string(),
                src.below(2 * MAX_BODY as u64).to_string(),
            ),
            5 if src.rarely() => ("Transfer-Encoding".to_string(), "chunked".to_string()),
            _ => (
                token(src, b"abcdefghijklmnopqrstuvwxyz-", 16),
                token(src, PATH_CHARS, 32),
            ),
        };
        headers.push((name, value));
    }
    let padding = if src.rarely() {
        src.below(2 * MAX_HEAD as u64) as usize
    } else {
        0
    };
    if padding > 0 {
        headers.push(("X-Pad".to_string(), "p".repeat(padding)));
    }
    let mut text = format!("{method} {path}{query} {version}\r\n");
    for (n, v) in &headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str("\r\n");
    let mut buf = text.into_bytes();
    let head_len = buf.len();
    buf.extend_from_slice(src.bytes(64));
    let mangled = mangle(src, &mut buf);
    let parsed = check_head(&buf);
    if mangled {
        return;
    }
    // A valid head parses to what was built, whatever follows it.
    let lower: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    // The first Content-Length counts; any Transfer-Encoding is refused.
    let length = lower.iter().find(|(n, _)| n == "content-length");
    let bad_body = lower.iter().any(|(n, _)| n == "transfer-encoding")
        || length.is_some_and(|(_, v)| v.parse::<usize>().map_or(true, |l| l > MAX_BODY));
    let too_large = head_len > MAX_HEAD;
    match parsed {
        Err(imds_http::ParseError::Version) => assert_eq!(version, "HTTP/2.0"),
        Err(imds_http::ParseError::Body) => assert!(bad_body, "a valid body refused"),
        Err(imds_http::ParseError::TooLarge) => {
            assert!(too_large, "a {head_len}-byte head refused as too large")
        }
        Err(e) => panic!("a valid head refused: {e}"),
        Ok(None) => panic!("a complete head of {head_len} bytes reads as incomplete"),
        Ok(Some((req, n))) => {
            assert!(version != "HTTP/2.0" && !bad_body && !too_large);
            assert_eq!(n, head_len);
            assert_eq!(
                (req.method.as_str(), req.path.as_str()),
                (method.as_str(), path.as_str())
            );
            assert_eq!(req.headers.len(), lower.len());
            for ((n, v), (gn, gv)) in lower.iter().zip(&req.headers) {
                assert_eq!((n, v.trim()), (gn, gv.as_str()));
            }
            // Every strict prefix is incomplete.
            let cut = src.below(head_len as u64) as usize;
            assert_eq!(
                imds_http::parse(&buf[..cut]),
                Ok(None),
                "a {cut}-byte prefix"
            );
        }
    }
    // The answer encodes with its own length.
    let n = src.below(256) as usize;
    let body = src.bytes(n).to_vec();
    let status = *src
        .pick(&[200u16, 400, 401, 403, 404, 405, 500])
        .unwrap_or(&200);
    let out = imds_http::encode(&Response::text(status, body.clone()), src.bool(), false);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert!(out.ends_with(&body));
}

/// Parses `buf` and checks what the parser promises of anything it accepts.
fn check_head(buf: &[u8]) -> Result<Option<(imds_http::Request, usize)>, imds_http::ParseError> {
    let r = imds_http::parse(buf);
    match &r {
        Ok(Some((req, n))) => {
            assert!(*n <= buf.len() && *n <= MAX_HEAD, "head of {n} bytes");
            assert!(buf[..*n].ends_with(b"\r\n\r\n"));
            assert!(!req.method.is_empty() && req.method.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(req.path.starts_with('/') && !req.path.contains('?'));
            assert!(req.content_length <= MAX_BODY);
            for (name, _) in &req.headers {
                assert!(
                    !name.is_empty()
                        && !name
                            .bytes()
                            .any(|b| b.is_ascii_whitespace() || b.is_ascii_uppercase())
                );
            }
        }
        Ok(None) => assert!(buf.len() < MAX_HEAD, "{} bytes still incomplete", buf.len()),
        Err(_) => {}
    }
    r
}

const HEADER: usize = 240;
const COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Runs one DHCP case.
pub fn dhcp(data: &[u8]) {
    alloc::bounded("DHCP", MEMORY_BOUND, || dhcp_case(&mut Source::new(data)));
}

fn ip(src: &mut Source<'_>) -> Ipv4Addr {
    if src.bool() {
        Ipv4Addr::UNSPECIFIED
    } else {
        Ipv4Addr::new(10, 0, src.u8() & 1, src.u8())
    }
}

fn dhcp_case(src: &mut Source<'_>) {
    let lease = Lease {
        ip: Ipv4Addr::new(10, 0, 0, 5 + (src.u8() & 1)),
        prefix: src.range(0, 32) as u8,
        gateway: Ipv4Addr::new(10, 0, 0, 1),
        lease_secs: src.u32(),
        mtu: src.u16(),
    };
    if src.rarely() {
        let _ = check_request(src.rest(), &lease);
        return;
    }
    let kind = src.range(1, 8) as u8;
    let xid = src.u32();
    let flags = src.u16();
    let (ciaddr, giaddr) = (
        ip(src),
        if src.rarely() {
            ip(src)
        } else {
            Ipv4Addr::UNSPECIFIED
        },
    );
    let mut chaddr = [0u8; 6];
    src.fill(&mut chaddr);
    let mut b = vec![0u8; HEADER];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[10..12].copy_from_slice(&flags.to_be_bytes());
    b[12..16].copy_from_slice(&ciaddr.octets());
    b[24..28].copy_from_slice(&giaddr.octets());
    b[28..34].copy_from_slice(&chaddr);
    b[236..240].copy_from_slice(&COOKIE);
    let requested = if src.bool() { Some(ip(src)) } else { None };
    let server = if src.bool() {
        Some(if src.bool() { lease.gateway } else { ip(src) })
    } else {
        None
    };
    let mut options: Vec<(u8, Vec<u8>)> = vec![(53, vec![kind])];
    if let Some(r) = requested {
        options.push((50, r.octets().to_vec()));
    }
    if let Some(s) = server {
        options.push((54, s.octets().to_vec()));
    }
    for _ in 0..src.below(4) {
        let code = src.range(1, 254) as u8;
        if [50, 53, 54].contains(&code) {
            continue;
        }
        let n = src.below(16) as usize;
        options.push((code, src.bytes(n).to_vec()));
    }
    // Any order, with pads between.
    for i in (1..options.len()).rev() {
        options.swap(i, src.below(i as u64 + 1) as usize);
    }
    for (code, val) in &options {
        if src.rarely() {
            b.push(0);
        }
        b.push(*code);
        b.push(val.len() as u8);
        b.extend_from_slice(val);
    }
    b.push(255);
    b.extend_from_slice(src.bytes(16));
    let mangled = mangle(src, &mut b);
    let parsed = check_request(&b, &lease);
    if mangled {
        return;
    }
    let req = parsed.unwrap_or_else(|e| panic!("a valid request refused: {e}"));
    assert_eq!(
        (req.xid, req.flags, req.ciaddr, req.giaddr, req.chaddr),
        (xid, flags, ciaddr, giaddr, chaddr)
    );
    assert_eq!((req.requested_ip, req.server_id), (requested, server));
    let want = [
        MessageType::Discover,
        MessageType::Offer,
        MessageType::Request,
        MessageType::Decline,
        MessageType::Ack,
        MessageType::Nak,
        MessageType::Release,
        MessageType::Inform,
    ];
    assert_eq!(Some(&req.kind), want.get(usize::from(kind) - 1));
}

/// Parses `b`, decides and encodes an answer, and checks the answer is a well-formed
/// BOOTREPLY for this client.
fn check_request(b: &[u8], lease: &Lease) -> Result<dhcp::Request, dhcp::PacketError> {
    let req = dhcp::parse(b)?;
    let Some(reply) = dhcp::decide(&req, lease) else {
        return Ok(req);
    };
    assert!(req.giaddr.is_unspecified(), "answered a relayed request");
    let out = dhcp::encode(&req, &reply, lease);
    assert!(
        out.len() >= 300 && out.len() <= 576,
        "a {}-byte reply",
        out.len()
    );
    assert_eq!(out[0], 2, "not a BOOTREPLY");
    assert_eq!(out[4..8], req.xid.to_be_bytes());
    assert_eq!(out[28..34], req.chaddr);
    assert_eq!(out[236..240], COOKIE);
    // The options are well-formed up to the end option.
    let mut i = HEADER;
    let mut kind = None;
    loop {
        let code = *out.get(i).unwrap_or_else(|| panic!("no end option"));
        if code == 255 {
            break;
        }
        let len = usize::from(
            *out.get(i + 1)
                .unwrap_or_else(|| panic!("option {code} cut")),
        );
        let val = out
            .get(i + 2..i + 2 + len)
            .unwrap_or_else(|| panic!("option {code} cut"));
        if code == 53 {
            kind = val.first().copied();
        }
        i += 2 + len;
    }
    let code = match reply.kind {
        MessageType::Offer => 2,
        MessageType::Ack => 5,
        MessageType::Nak => 6,
        other => panic!("replied with {other:?}"),
    };
    assert_eq!(kind, Some(code));
    Ok(req)
}

#[cfg(test)]
mod tests {
    use strato_fuzzgen::property;

    #[test]
    fn imds_http_properties() {
        property("imds-http", 600, 1024, super::imds_http);
    }

    #[test]
    fn dhcp_properties() {
        property("dhcp", 600, 1024, super::dhcp);
    }
}
