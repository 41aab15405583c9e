//! Signature Version 4 (AWS4-HMAC-SHA256) verification, as botocore's `SigV4Auth` signs:
//! the canonical request is rebuilt from the headers the `Authorization` header lists (and
//! only those), the path normalised and quoted as botocore does, the query's pairs sorted
//! as sent, the body hashed; the signing key is the HMAC chain over the credential scope's
//! date, region and service; signatures are compared in constant time. A request dated more
//! than 15 minutes from the daemon's clock is refused, as AWS does.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult, ErrorCode};

/// How far a request's date may be from the daemon's clock.
pub const MAX_SKEW_SECS: i64 = 15 * 60;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What a request carries to be checked: its method, raw path and query, headers (names in
/// any case) and body.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `POST` or `GET`.
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    /// Every header as sent.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key ID.
    pub access_key: String,
    /// The scope's date, `YYYYMMDD`.
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service (`ec2`, `sts`).
    pub service: String,
    /// Signed header names, lowercase, as listed.
    pub signed_headers: Vec<String>,
    /// The signature, lowercase hex.
    pub signature: String,
}

fn incomplete(why: &str) -> ApiError {
    ApiError::new(ErrorCode::IncompleteSignature, why)
}

/// The failure EC2 answers a signature that does not verify with.
pub fn auth_failure(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AuthFailure,
        format!("AWS was not able to validate the provided access credentials: {why}"),
    )
}

impl<'a> SignedRequest<'a> {
    /// Every value of a header, in order.
    fn header_values(&self, name: &str) -> Vec<&'a str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.header_values(name).into_iter().next()
    }

    /// The `Authorization` header, parsed; `None` when the request carries none.
    pub fn authorization(&self) -> ApiResult<Option<Authorization>> {
        let Some(h) = self.header("authorization") else {
            return Ok(None);
        };
        parse_authorization(h).map(Some)
    }
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request,
/// SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(h: &str) -> ApiResult<Authorization> {
    let rest = h
        .trim()
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| {
            incomplete(
                "Only the AWS4-HMAC-SHA256 signature algorithm (Signature Version 4) is supported.",
            )
        })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| incomplete("Authorization header requires key=value pairs."))?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let credential = credential
        .ok_or_else(|| incomplete("Authorization header requires 'Credential' parameter."))?;
    let signed = signed
        .ok_or_else(|| incomplete("Authorization header requires 'SignedHeaders' parameter."))?;
    let signature = signature
        .ok_or_else(|| incomplete("Authorization header requires 'Signature' parameter."))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminal] = scope[..] else {
        return Err(incomplete(
            "Credential must have the form ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request.",
        ));
    };
    if terminal != "aws4_request"
        || key.is_empty()
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(incomplete(
            "Credential must have the form ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request.",
        ));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(incomplete(
            "SignedHeaders must list header names separated by ';'.",
        ));
    }
    Ok(Authorization {
        access_key: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// Parses `X-Amz-Date` (`20261202T050823Z`) into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    super::value::parse_time(&iso)
}

/// Checks the request's date against the clock and the scope, and its signature against
/// `secret`. `now` is the daemon's clock in Unix seconds.
pub fn verify(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    secret: &str,
    now: i64,
) -> ApiResult<()> {
    let amz_date = req.header("x-amz-date").ok_or_else(|| {
        incomplete("Authorization header requires existence of the 'X-Amz-Date' header.")
    })?;
    let when = parse_amz_date(amz_date)
        .ok_or_else(|| incomplete("The X-Amz-Date header must have the form YYYYMMDDTHHMMSSZ."))?;
    if (now - when).abs() > MAX_SKEW_SECS {
        return Err(ApiError::new(
            ErrorCode::RequestExpired,
            format!(
                "Request has expired: its date {amz_date} is more than 15 minutes from the server's time {}.",
                super::value::iso8601(now)
            ),
        ));
    }
    if amz_date[..8] != auth.date {
        return Err(auth_failure(
            "the credential scope's date is not the request's X-Amz-Date.",
        ));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(auth_failure("the Host header must be signed."));
    }
    let body_hash = hex(&Sha256::digest(req.body));
    if let Some(declared) = req.header("x-amz-content-sha256") {
        if !declared.eq_ignore_ascii_case(&body_hash) {
            return Err(auth_failure(
                "the X-Amz-Content-SHA256 header is not the SHA-256 of the body.",
            ));
        }
    }
    let canonical = canonical_request(req, &auth.signed_headers, &body_hash)?;
    let expected = signature(secret, amz_date, auth, &canonical);
    if expected.as_bytes().ct_eq(auth.signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(auth_failure("the request signature does not match."))
    }
}

/// The canonical request, as botocore builds it.
pub fn canonical_request(
    req: &SignedRequest<'_>,
    signed: &[String],
    body_hash: &str,
) -> ApiResult<String> {
    let mut headers = String::new();
    for name in sorted_unique(signed) {
        let values = req.header_values(name);
        if values.is_empty() {
            return Err(auth_failure(&format!(
                "the signed header {name} is not in the request."
            )));
        }
        let joined: Vec<String> = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&joined.join(","));
        headers.push('\n');
    }
    let signed_list = sorted_unique(signed).join(";");
    // botocore's body hash is the X-Amz-Content-SHA256 header when one is sent (checked
    // against the body by the caller).
    let payload = req.header("x-amz-content-sha256").unwrap_or(body_hash);
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{signed_list}\n{payload}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query(req.query),
    ))
}

fn sorted_unique(names: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = names.iter().map(|s| s.trim()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// botocore's `quote(normalize_url_path(path), safe='/~')`: dot segments and empty
/// segments removed, then every byte but unreserved ones and `/` percent-encoded (a `%`
/// already there is encoded again, as botocore does for every service but S3).
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut norm = String::new();
    if path.starts_with('/') {
        norm.push('/');
    }
    norm.push_str(&out.join("/"));
    if path.ends_with('/') && !out.is_empty() {
        norm.push('/');
    }
    let mut quoted = String::with_capacity(norm.len());
    for b in norm.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            quoted.push(b as char);
        } else {
            quoted.push_str(&format!("%{b:02X}"));
        }
    }
    quoted
}

/// botocore's canonical query string of a URL: its `key=value` pairs as sent, sorted.
pub fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let mut m = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// The hex signature of a canonical request.
pub fn signature(secret: &str, amz_date: &str, auth: &Authorization, canonical: &str) -> String {
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    let k_region = hmac(&k_date, auth.region.as_bytes());
    let k_service = hmac(&k_region, auth.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex(&hmac(&k_signing, to_sign.as_bytes()))
}

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        access_key: String,
        secret: String,
        now: i64,
        vectors: Vec<Vector>,
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: String,
        region: String,
        service: String,
    }

    fn vectors() -> Vectors {
        serde_json::from_str(include_str!("testdata/sigv4-vectors.json")).unwrap()
    }

    fn check(v: &Vector, secret: &str, now: i64) -> ApiResult<Authorization> {
        let req = SignedRequest {
            method: &v.method,
            path: &v.path,
            query: &v.query,
            headers: &v.headers,
            body: v.body.as_bytes(),
        };
        let auth = req.authorization()?.expect("signed");
        verify(&req, &auth, secret, now)?;
        Ok(auth)
    }

    #[test]
    fn botocores_signatures_verify() {
        let all = vectors();
        assert_eq!(all.vectors.len(), 5);
        for v in &all.vectors {
            let auth = check(v, &all.secret, all.now).unwrap_or_else(|e| panic!("{}: {e}", v.name));
            assert_eq!(auth.access_key, all.access_key);
            assert_eq!(
                (auth.region.as_str(), auth.service.as_str()),
                (v.region.as_str(), v.service.as_str())
            );
        }
    }

    #[test]
    fn any_change_fails() {
        let all = vectors();
        for v in &all.vectors {
            // Another secret.
            assert_eq!(
                check(v, "wrong", all.now).unwrap_err().code,
                ErrorCode::AuthFailure,
                "{}",
                v.name
            );
            // Another body.
            let mut w = Vector {
                body: format!("{}&X=1", v.body),
                ..clone(v)
            };
            assert_eq!(
                check(&w, &all.secret, all.now).unwrap_err().code,
                ErrorCode::AuthFailure,
                "{}",
                v.name
            );
            // Another signed header value (the host).
            w = clone(v);
            for h in &mut w.headers {
                if h.0 == "Host" {
                    h.1.push('9');
                }
            }
            assert_eq!(
                check(&w, &all.secret, all.now).unwrap_err().code,
                ErrorCode::AuthFailure,
                "{}",
                v.name
            );
            // An unsigned header changes nothing.
            w = clone(v);
            w.headers.push(("User-Agent".into(), "aws-cli/1.45".into()));
            check(&w, &all.secret, all.now).unwrap();
        }
    }

    fn clone(v: &Vector) -> Vector {
        Vector {
            name: v.name.clone(),
            method: v.method.clone(),
            path: v.path.clone(),
            query: v.query.clone(),
            headers: v.headers.clone(),
            body: v.body.clone(),
            region: v.region.clone(),
            service: v.service.clone(),
        }
    }

    #[test]
    fn the_clock_allows_fifteen_minutes() {
        let all = vectors();
        let v = &all.vectors[0];
        check(v, &all.secret, all.now + MAX_SKEW_SECS).unwrap();
        check(v, &all.secret, all.now - MAX_SKEW_SECS).unwrap();
        for now in [all.now + MAX_SKEW_SECS + 1, all.now - MAX_SKEW_SECS - 1] {
            assert_eq!(
                check(v, &all.secret, now).unwrap_err().code,
                ErrorCode::RequestExpired
            );
        }
    }

    #[test]
    fn malformed_authorizations_are_incomplete() {
        for h in [
            "AWS AKID:sig",
            "AWS4-HMAC-SHA256 Credential=AKID/20261202/home-1/ec2/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=AKID/2026/home-1/ec2/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKID/20261202/home-1/ec2, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256Credential=AKID/20261202/home-1/ec2/aws4_request, SignedHeaders=host, Signature=00",
        ] {
            assert_eq!(parse_authorization(h).unwrap_err().code, ErrorCode::IncompleteSignature, "{h}");
        }
    }

    #[test]
    fn botocores_path_and_query_rules() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(canonical_uri("/a b/%41/"), "/a%20b/%2541/");
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(parse_amz_date("20261202T050823Z"), Some(1_796_188_103));
        assert_eq!(parse_amz_date("2026-12-02"), None);
    }
}
