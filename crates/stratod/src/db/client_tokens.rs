//! Client tokens of the EC2 Query API: a retried call (same account, action and
//! `ClientToken`) gets the first call's answer, across daemon restarts. A row is claimed
//! before the call runs (`pending`) and holds the answer once it succeeded (`done`); a
//! failed call releases its claim so that a retry runs again.

use rusqlite::{params, OptionalExtension};

use super::{Db, DbResult};

/// What claiming a token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The token is new: this request holds it now.
    Claimed,
    /// A call with this token succeeded; its parameters' fingerprint and answer.
    Done {
        /// Fingerprint of the first call's parameters.
        fingerprint: String,
        /// The answer's document.
        response: String,
        /// The request ID inside that document.
        request_id: String,
    },
    /// A call with this token is running, or was running when a daemon stopped.
    Pending {
        /// Fingerprint of that call's parameters.
        fingerprint: String,
        /// The daemon run that holds it.
        boot: String,
    },
}

/// The key of a token: who, which action, the token.
#[derive(Debug, Clone, Copy)]
pub struct TokenKey<'a> {
    /// The account.
    pub account: &'a str,
    /// The action.
    pub action: &'a str,
    /// The client's token.
    pub token: &'a str,
}

impl Db {
    /// Claims a token for a call with `fingerprint` by daemon run `boot`, unless a row has
    /// it; rows older than `expire_before` are dropped first (their tokens are new again).
    pub fn claim_client_token(
        &self,
        k: TokenKey<'_>,
        fingerprint: &str,
        boot: &str,
        now: i64,
        expire_before: i64,
    ) -> DbResult<Claim> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM client_tokens WHERE created < ?1",
            [expire_before],
        )?;
        let row: Option<(String, String, String, String, String)> = tx
            .query_row(
                "SELECT fingerprint, state, response, request_id, boot FROM client_tokens \
                 WHERE account = ?1 AND action = ?2 AND token = ?3",
                params![k.account, k.action, k.token],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let claim = match row {
            Some((fingerprint, state, response, request_id, _)) if state == "done" => Claim::Done {
                fingerprint,
                response,
                request_id,
            },
            Some((fingerprint, _, _, _, boot)) => Claim::Pending { fingerprint, boot },
            None => {
                tx.execute(
                    "INSERT INTO client_tokens (account, action, token, fingerprint, state, \
                     boot, created) VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)",
                    params![k.account, k.action, k.token, fingerprint, boot, now],
                )?;
                Claim::Claimed
            }
        };
        tx.commit()?;
        Ok(claim)
    }

    /// Takes over a pending claim left by another daemon run.
    pub fn take_over_client_token(&self, k: TokenKey<'_>, boot: &str) -> DbResult<bool> {
        Ok(self.conn().execute(
            "UPDATE client_tokens SET boot = ?4 \
             WHERE account = ?1 AND action = ?2 AND token = ?3 AND state = 'pending' AND boot != ?4",
            params![k.account, k.action, k.token, boot],
        )? == 1)
    }

    /// Records the answer of the call holding a token.
    pub fn finish_client_token(
        &self,
        k: TokenKey<'_>,
        response: &str,
        request_id: &str,
    ) -> DbResult<()> {
        self.conn().execute(
            "UPDATE client_tokens SET state = 'done', response = ?4, request_id = ?5 \
             WHERE account = ?1 AND action = ?2 AND token = ?3",
            params![k.account, k.action, k.token, response, request_id],
        )?;
        Ok(())
    }

    /// Releases a claim whose call failed.
    pub fn release_client_token(&self, k: TokenKey<'_>) -> DbResult<()> {
        self.conn().execute(
            "DELETE FROM client_tokens WHERE account = ?1 AND action = ?2 AND token = ?3 \
             AND state = 'pending'",
            params![k.account, k.action, k.token],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: TokenKey<'static> = TokenKey {
        account: "111111111111",
        action: "CreateVolume",
        token: "t-1",
    };

    #[test]
    fn a_token_is_claimed_once_answered_and_released_on_failure() {
        let db = Db::open_in_memory().unwrap();
        assert_eq!(
            db.claim_client_token(K, "f1", "b1", 100, 0).unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            db.claim_client_token(K, "f2", "b1", 101, 0).unwrap(),
            Claim::Pending {
                fingerprint: "f1".into(),
                boot: "b1".into()
            }
        );
        // Another action, another account: other tokens.
        let other = TokenKey {
            action: "RunInstances",
            ..K
        };
        assert_eq!(
            db.claim_client_token(other, "f1", "b1", 100, 0).unwrap(),
            Claim::Claimed
        );
        db.release_client_token(other).unwrap();
        assert_eq!(
            db.claim_client_token(other, "f3", "b1", 100, 0).unwrap(),
            Claim::Claimed
        );
        // A new run takes over a claim left behind, once.
        assert!(db.take_over_client_token(K, "b2").unwrap());
        assert!(!db.take_over_client_token(K, "b2").unwrap());
        db.finish_client_token(K, "<doc/>", "rid").unwrap();
        assert_eq!(
            db.claim_client_token(K, "f9", "b3", 102, 0).unwrap(),
            Claim::Done {
                fingerprint: "f1".into(),
                response: "<doc/>".into(),
                request_id: "rid".into()
            }
        );
        // A done row is not released by a later failure, and expires.
        db.release_client_token(K).unwrap();
        assert!(matches!(
            db.claim_client_token(K, "f1", "b3", 103, 0).unwrap(),
            Claim::Done { .. }
        ));
        assert_eq!(
            db.claim_client_token(K, "f4", "b3", 200, 150).unwrap(),
            Claim::Claimed
        );
    }
}
