//! IMDSv2 session tokens: random strings bound to the instance that asked for them and to
//! its running period (the launch time of its current start), with a lifetime of 1 to
//! 21600 seconds. A stop or a termination ends the period: tokens issued before it are
//! refused afterwards whatever their lifetime, as EC2 revokes them. Kept in memory only: after a daemon restart guests get
//! 401 and ask again, as SDKs and cloud-init do when a token expires.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;

/// The longest token lifetime EC2 allows, in seconds.
pub const MAX_TTL_SECS: u64 = 21600;

/// Live tokens one instance may hold; a guest asking for more loses its oldest, so a guest
/// that loops on PUT cannot grow the daemon's memory.
pub const MAX_PER_INSTANCE: usize = 1024;

#[derive(Debug, Clone)]
struct Token {
    instance: String,
    session: i64,
    expires: Instant,
    issued: Instant,
}

/// The token store.
#[derive(Debug, Default)]
pub struct Tokens {
    live: HashMap<String, Token>,
}

/// Parses the `X-aws-ec2-metadata-token-ttl-seconds` header: whole seconds from 1 to 21600.
pub fn parse_ttl(header: Option<&str>) -> Option<Duration> {
    let s: u64 = header?.trim().parse().ok()?;
    (1..=MAX_TTL_SECS)
        .contains(&s)
        .then(|| Duration::from_secs(s))
}

impl Tokens {
    /// A new token for `instance` in its running period `session`, valid for `ttl` from
    /// `now`.
    pub fn issue(&mut self, instance: &str, session: i64, ttl: Duration, now: Instant) -> String {
        self.live.retain(|_, t| t.expires > now);
        let mine: Vec<(String, Instant)> = self
            .live
            .iter()
            .filter(|(_, t)| t.instance == instance)
            .map(|(k, t)| (k.clone(), t.issued))
            .collect();
        if mine.len() >= MAX_PER_INSTANCE {
            if let Some((oldest, _)) = mine.iter().min_by_key(|(_, issued)| *issued) {
                self.live.remove(oldest);
            }
        }
        let mut raw = [0u8; 32];
        crate::ids::fill_random(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        self.live.insert(
            token.clone(),
            Token {
                instance: instance.to_string(),
                session,
                expires: now + ttl,
                issued: now,
            },
        );
        token
    }

    /// Whether `token` is live at `now` and was issued to `instance` in its running period
    /// `session`.
    pub fn valid(&self, token: &str, instance: &str, session: i64, now: Instant) -> bool {
        self.live
            .get(token)
            .is_some_and(|t| t.instance == instance && t.session == session && t.expires > now)
    }

    /// Live tokens (for tests and metrics).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no token is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_header_bounds() {
        assert_eq!(parse_ttl(Some("1")), Some(Duration::from_secs(1)));
        assert_eq!(parse_ttl(Some(" 21600 ")), Some(Duration::from_secs(21600)));
        for bad in ["0", "21601", "-5", "1.5", "", "abc"] {
            assert_eq!(parse_ttl(Some(bad)), None, "{bad}");
        }
        assert_eq!(parse_ttl(None), None);
    }

    #[test]
    fn tokens_are_bound_to_their_instance_and_expire() {
        let mut t = Tokens::default();
        let now = Instant::now();
        let a = t.issue("i-a", 7, Duration::from_secs(10), now);
        let b = t.issue("i-b", 7, Duration::from_secs(10), now);
        assert_ne!(a, b);
        assert!(a.len() >= 40);
        assert!(t.valid(&a, "i-a", 7, now));
        assert!(
            !t.valid(&a, "i-b", 7, now),
            "a token works only for its instance"
        );
        assert!(!t.valid("forged", "i-a", 7, now));
        assert!(!t.valid(&a, "i-a", 7, now + Duration::from_secs(10)));
        // The instance stopped and started again: a new running period.
        assert!(!t.valid(&b, "i-b", 8, now));
        // Expired tokens are dropped when the next one is issued.
        t.issue(
            "i-c",
            7,
            Duration::from_secs(1),
            now + Duration::from_secs(11),
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_guest_cannot_hold_unbounded_tokens() {
        let mut t = Tokens::default();
        let now = Instant::now();
        let first = t.issue("i-a", 0, Duration::from_secs(100), now);
        for k in 1..=MAX_PER_INSTANCE as u64 {
            t.issue(
                "i-a",
                0,
                Duration::from_secs(100),
                now + Duration::from_millis(k),
            );
        }
        assert_eq!(t.len(), MAX_PER_INSTANCE);
        assert!(
            !t.valid(&first, "i-a", 0, now),
            "the oldest token made room"
        );
    }
}
