//! The metadata service's HTTP/1.x: request heads parsed from bytes and responses encoded
//! to bytes, both pure. Guests write these requests, so parsing is strict and bounded.

/// The largest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// The largest request body accepted (token PUTs carry none).
pub const MAX_BODY: usize = 1024;

/// One parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, `PUT`, …
    pub method: String,
    /// The path, without any query string.
    pub path: String,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Bytes of body that follow the head.
    pub content_length: usize,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The head did not end within [`MAX_HEAD`] bytes.
    #[error("request head too large")]
    TooLarge,
    /// The request line is not `METHOD PATH HTTP/1.x`.
    #[error("malformed request line")]
    RequestLine,
    /// A header line has no colon or is not text.
    #[error("malformed header")]
    Header,
    /// Not HTTP/1.0 or HTTP/1.1.
    #[error("unsupported HTTP version")]
    Version,
    /// Content-Length is not a number, too large, or the body is chunked.
    #[error("unsupported request body")]
    Body,
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete, else the request
/// and the number of bytes the head took.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, ParseError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= MAX_HEAD {
            Err(ParseError::TooLarge)
        } else {
            Ok(None)
        };
    };
    if end + 4 > MAX_HEAD {
        return Err(ParseError::TooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| ParseError::RequestLine)?;
    let mut lines = head.split("\r\n");
    let line = lines.next().ok_or(ParseError::RequestLine)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::RequestLine);
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Err(ParseError::RequestLine);
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ParseError::Version),
    };
    let mut headers = Vec::new();
    for l in lines {
        let (name, value) = l.split_once(':').ok_or(ParseError::Header)?;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ParseError::Header);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or(target).to_string(),
        headers,
        keep_alive: http11,
        content_length: 0,
    };
    if let Some(c) = req.header("connection") {
        if c.eq_ignore_ascii_case("close") {
            req.keep_alive = false;
        } else if c.eq_ignore_ascii_case("keep-alive") {
            req.keep_alive = true;
        }
    }
    if req.header("transfer-encoding").is_some() {
        return Err(ParseError::Body);
    }
    if let Some(n) = req.header("content-length") {
        let n: usize = n.parse().map_err(|_| ParseError::Body)?;
        if n > MAX_BODY {
            return Err(ParseError::Body);
        }
        req.content_length = n;
    }
    Ok(Some((req, end + 4)))
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content type of the body.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: "text/plain",
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// An error response whose body is the status line's reason.
    pub fn error(status: u16) -> Response {
        Response::text(status, reason(status))
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

/// The bytes of a response; `head_only` leaves the body out (HEAD requests).
pub fn encode(r: &Response, keep_alive: bool, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nServer: stratod\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (n, v) in &r.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(&r.body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_token_put_and_a_get() {
        let buf = b"PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\nGET /";
        let (r, n) = parse(buf).unwrap().unwrap();
        assert_eq!(r.method, "PUT");
        assert_eq!(r.path, "/latest/api/token");
        assert_eq!(
            r.header("X-AWS-EC2-Metadata-Token-TTL-Seconds"),
            Some("21600")
        );
        assert!(r.keep_alive);
        assert_eq!(&buf[n..], b"GET /");

        let (r, _) = parse(b"GET /latest/meta-data/?x=1 HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.path, "/latest/meta-data/");
        assert!(!r.keep_alive);
        let (r, _) = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!r.keep_alive);
    }

    #[test]
    fn incomplete_heads_wait_and_hostile_ones_are_refused() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(parse(&[b'a'; MAX_HEAD]), Err(ParseError::TooLarge));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&long), Err(ParseError::TooLarge));
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse(bad), Err(ParseError::RequestLine), "{bad:?}");
        }
        assert_eq!(parse(b"GET / HTTP/2\r\n\r\n"), Err(ParseError::Version));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"),
            Err(ParseError::Header)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            Err(ParseError::Header)
        );
        assert_eq!(
            parse(b"PUT / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n"),
            Err(ParseError::Body)
        );
        assert_eq!(
            parse(b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(ParseError::Body)
        );
        assert_eq!(
            parse(b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(ParseError::Body)
        );
    }

    #[test]
    fn encodes_responses() {
        let mut r = Response::text(200, "i-0123");
        r.headers
            .push(("X-aws-ec2-metadata-token-ttl-seconds", "60".into()));
        let out = String::from_utf8(encode(&r, true, false)).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(out.contains("Content-Length: 6\r\nConnection: keep-alive\r\n"));
        assert!(out.contains("X-aws-ec2-metadata-token-ttl-seconds: 60\r\n"));
        assert!(out.ends_with("\r\n\r\ni-0123"));
        let head = String::from_utf8(encode(&Response::error(404), false, true)).unwrap();
        assert!(head.contains("Content-Length: 9\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
    }
}
