//! ClientToken idempotency, as EC2 has it: a call retried with the same token and the same
//! parameters gets the first call's answer; the same token with other parameters is
//! `IdempotentParameterMismatch`. The record is claimed in the database before the call
//! runs and holds the answer once it succeeded, so a retry after a daemon restart is
//! answered too. A failed (or abandoned) call releases its claim: its retry runs again.

use std::fmt::Write;
use std::future::Future;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::sigv4::hex;
use super::value::Value;
use crate::cloud::identity::client_tokens::{Claim, TokenKey};
use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How long a token is remembered.
pub const TOKEN_TTL_S: i64 = 7 * 24 * 3600;
/// How long a retry waits for a call with its token that is still running.
const WAIT_FOR_RUNNING: Duration = Duration::from_secs(60);
/// EC2's limit on a token's length.
const MAX_TOKEN: usize = 64;

/// The request's ClientToken, if the action takes one and it is given (empty counts as
/// absent, as EC2 has it).
pub fn token(input: &Value) -> ApiResult<Option<&str>> {
    let Some(t) = input.opt_str("ClientToken").filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t.len() > MAX_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ApiError::invalid(format!(
            "The ClientToken must be at most {MAX_TOKEN} ASCII characters."
        )));
    }
    Ok(Some(t))
}

/// A digest of the request's parameters, leaving out the token itself (and DryRun, which
/// never reaches here).
pub fn fingerprint(input: &Value) -> String {
    let mut s = String::new();
    match input {
        Value::Struct(m) => {
            s.push('{');
            for (k, v) in m {
                if k != "ClientToken" && k != "DryRun" {
                    let _ = write!(s, "{}:{k}=", k.len());
                    canonical(v, &mut s);
                }
            }
            s.push('}');
        }
        v => canonical(v, &mut s),
    }
    hex(&Sha256::digest(s.as_bytes()))
}

/// An unambiguous text of a value: every item tagged and length-prefixed.
fn canonical(v: &Value, s: &mut String) {
    match v {
        Value::Null => s.push('n'),
        Value::Bool(b) => {
            let _ = write!(s, "b{b};");
        }
        Value::Int(i) => {
            let _ = write!(s, "i{i};");
        }
        Value::Float(f) => {
            let _ = write!(s, "f{};", f.to_bits());
        }
        Value::Str(t) => {
            let _ = write!(s, "s{}:{t}", t.len());
        }
        Value::Blob(b) => {
            let _ = write!(s, "x{}:{}", b.len(), hex(b));
        }
        Value::Time(t) => {
            let _ = write!(s, "t{t};");
        }
        Value::List(l) => {
            let _ = write!(s, "[{}:", l.len());
            for i in l {
                canonical(i, s);
            }
            s.push(']');
        }
        Value::Struct(m) => {
            let _ = write!(s, "{{{}:", m.len());
            for (k, v) in m {
                let _ = write!(s, "{}:{k}=", k.len());
                canonical(v, s);
            }
            s.push('}');
        }
    }
}

fn mismatch(token: &str) -> ApiError {
    ApiError::new(
        ErrorCode::IdempotentParameterMismatch,
        format!(
            "The client token '{token}' was used before with different parameters; use a new token."
        ),
    )
}

/// Releases a claim unless the call finished: a call dropped midway (its client went
/// away) leaves its token free for the retry.
struct ClaimGuard<'a> {
    cloud: &'a Cloud,
    key: TokenKey<'a>,
    armed: bool,
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.cloud.release_client_token(self.key) {
                tracing::warn!(error = %crate::error::chain(&e), "a client token claim could not be released");
            }
        }
    }
}

/// The answer of the call `run` with `key`'s token: run it once, or replay the first
/// answer (its request ID replaced by `request_id`).
pub async fn answer<F>(
    cloud: &Cloud,
    boot: &str,
    key: TokenKey<'_>,
    input: &Value,
    request_id: &str,
    run: F,
) -> ApiResult<String>
where
    F: Future<Output = ApiResult<String>>,
{
    let fp = fingerprint(input);
    let deadline = Instant::now() + WAIT_FOR_RUNNING;
    loop {
        let now = crate::db::now_s();
        match cloud.claim_client_token(key, &fp, boot, now, now - TOKEN_TTL_S)? {
            Claim::Claimed => break,
            Claim::Done {
                fingerprint,
                response,
                request_id: first,
            } => {
                if fingerprint != fp {
                    return Err(mismatch(key.token));
                }
                return Ok(response.replacen(
                    &format!("<requestId>{first}</requestId>"),
                    &format!("<requestId>{request_id}</requestId>"),
                    1,
                ));
            }
            Claim::Pending {
                fingerprint,
                boot: holder,
            } => {
                if fingerprint != fp {
                    return Err(mismatch(key.token));
                }
                if holder != boot {
                    // The daemon stopped while the first call ran. RunInstances finds
                    // the instances it made by their token, so it may run again; another
                    // action's outcome is unknown.
                    if key.action != "RunInstances" {
                        return Err(ApiError::internal(format!(
                            "A {} request with the client token '{}' was interrupted by a daemon restart and its outcome is unknown: look for what it made, then retry with a new token.",
                            key.action, key.token
                        )));
                    }
                    if cloud.take_over_client_token(key, boot)? {
                        break;
                    }
                    continue;
                }
                if Instant::now() >= deadline {
                    return Err(ApiError::new(
                        ErrorCode::IncorrectState,
                        format!(
                            "A request with the client token '{}' is still in progress; retry later.",
                            key.token
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut guard = ClaimGuard {
        cloud,
        key,
        armed: true,
    };
    let doc = run.await?;
    guard.armed = false;
    cloud.finish_client_token(key, &doc, request_id)?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_the_token_and_see_every_parameter() {
        let a = Value::obj([
            ("ClientToken", "t1".into()),
            ("Size", 1i64.into()),
            ("AvailabilityZone", "home-1a".into()),
        ]);
        let b = Value::obj([
            ("ClientToken", "t2".into()),
            ("AvailabilityZone", "home-1a".into()),
            ("Size", 1i64.into()),
        ]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let c = Value::obj([
            ("AvailabilityZone", "home-1a".into()),
            ("Size", 2i64.into()),
        ]);
        assert_ne!(fingerprint(&a), fingerprint(&c));
        // Text and numbers, and list boundaries, are told apart.
        let l1 = Value::obj([("X", Value::list(["ab", "c"]))]);
        let l2 = Value::obj([("X", Value::list(["a", "bc"]))]);
        assert_ne!(fingerprint(&l1), fingerprint(&l2));
        assert_ne!(
            fingerprint(&Value::obj([("X", "1".into())])),
            fingerprint(&Value::obj([("X", 1i64.into())]))
        );
    }

    #[test]
    fn tokens_are_short_ascii() {
        let ok = Value::obj([("ClientToken", "abc-123".into())]);
        assert_eq!(token(&ok).unwrap(), Some("abc-123"));
        assert_eq!(
            token(&Value::obj([("ClientToken", "".into())])).unwrap(),
            None
        );
        let long = Value::obj([("ClientToken", "x".repeat(65).into())]);
        assert!(token(&long).is_err());
        let odd = Value::obj([("ClientToken", "é".into())]);
        assert!(token(&odd).is_err());
    }
}
