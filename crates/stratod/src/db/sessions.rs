//! Session credential rows: the temporary keys of instance roles. Like access keys, the
//! secret is stored (SigV4 signs with it); each row names the instance and the role it was
//! issued for, so that a key dies with its instance's profile.

use rusqlite::{params, OptionalExtension, Row};

use super::{Db, DbResult};

/// One temporary credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCredential {
    /// `ASIA…`
    pub access_key: String,
    /// The secret access key.
    pub secret: String,
    /// The session token the client sends as `X-Amz-Security-Token`.
    pub token: String,
    /// The instance it was issued to.
    pub instance_id: String,
    /// The instance's account.
    pub account: String,
    /// The role whose actions it may call.
    pub role: String,
    /// Unix seconds it was issued.
    pub issued: i64,
    /// Unix seconds it stops being accepted.
    pub expires: i64,
}

const COLUMNS: &str = "access_key, secret, token, instance_id, account, role, issued, expires";

fn from_row(r: &Row<'_>) -> rusqlite::Result<SessionCredential> {
    Ok(SessionCredential {
        access_key: r.get(0)?,
        secret: r.get(1)?,
        token: r.get(2)?,
        instance_id: r.get(3)?,
        account: r.get(4)?,
        role: r.get(5)?,
        issued: r.get(6)?,
        expires: r.get(7)?,
    })
}

impl Db {
    /// Records a newly issued credential and forgets the instance's expired ones.
    pub fn insert_session_credential(&self, c: &SessionCredential, now: i64) -> DbResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM session_credentials WHERE instance_id = ?1 AND expires <= ?2",
            params![c.instance_id, now],
        )?;
        tx.execute(
            &format!(
                "INSERT INTO session_credentials ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                c.access_key,
                c.secret,
                c.token,
                c.instance_id,
                c.account,
                c.role,
                c.issued,
                c.expires
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The newest credential of an instance for `role` that is still valid at `now`.
    pub fn newest_session_credential(
        &self,
        instance_id: &str,
        role: &str,
        now: i64,
    ) -> DbResult<Option<SessionCredential>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM session_credentials \
                     WHERE instance_id = ?1 AND role = ?2 AND expires > ?3 \
                     ORDER BY expires DESC LIMIT 1"
                ),
                params![instance_id, role, now],
                from_row,
            )
            .optional()?)
    }

    /// One credential by its access key ID.
    pub fn session_credential(&self, access_key: &str) -> DbResult<Option<SessionCredential>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM session_credentials WHERE access_key = ?1"),
                [access_key],
                from_row,
            )
            .optional()?)
    }

    /// Revokes every credential of an instance; how many there were.
    pub fn delete_session_credentials(&self, instance_id: &str) -> DbResult<usize> {
        Ok(self.conn().execute(
            "DELETE FROM session_credentials WHERE instance_id = ?1",
            [instance_id],
        )?)
    }

    /// Removes an instance's profile association (and so its credentials); `false` when
    /// it had none.
    pub fn delete_iam_association(&self, instance_id: &str) -> DbResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM session_credentials WHERE instance_id = ?1",
            [instance_id],
        )?;
        let n = tx.execute(
            "DELETE FROM iam_associations WHERE instance_id = ?1",
            [instance_id],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(key: &str, expires: i64) -> SessionCredential {
        SessionCredential {
            access_key: key.into(),
            secret: "s".into(),
            token: "t".into(),
            instance_id: "i-0000000000000000a".into(),
            account: "111111111111".into(),
            role: "reader".into(),
            issued: expires - 100,
            expires,
        }
    }

    #[test]
    fn the_newest_valid_credential_is_found_and_expired_ones_are_dropped() {
        let db = Db::open_in_memory().unwrap();
        db.insert_session_credential(&cred("ASIAOLD", 1_000), 0)
            .unwrap();
        db.insert_session_credential(&cred("ASIANEW", 2_000), 500)
            .unwrap();
        let id = "i-0000000000000000a";
        let at = |now| {
            db.newest_session_credential(id, "reader", now)
                .unwrap()
                .map(|c| c.access_key)
        };
        assert_eq!(at(600).as_deref(), Some("ASIANEW"));
        assert_eq!(at(2_000), None, "expired at its expiry");
        assert_eq!(
            db.newest_session_credential(id, "other", 600).unwrap(),
            None
        );
        // Issuing at 1500 forgets the key that expired at 1000.
        db.insert_session_credential(&cred("ASIATHIRD", 3_000), 1_500)
            .unwrap();
        assert_eq!(db.session_credential("ASIAOLD").unwrap(), None);
        assert!(db.session_credential("ASIANEW").unwrap().is_some());
        assert_eq!(db.delete_session_credentials(id).unwrap(), 2);
        assert_eq!(db.session_credential("ASIATHIRD").unwrap(), None);
    }
}
