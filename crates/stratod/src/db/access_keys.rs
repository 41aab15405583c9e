//! Access key rows: the EC2 Query API's long-term credentials, one account each. SigV4
//! signs with the secret itself, so the secret is stored (the database file is owner-only)
//! and never leaves the daemon after CreateAccessKey.

use rusqlite::{params, OptionalExtension, Row};

use super::{Db, DbResult};

/// One access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// `AKIA…`
    pub id: String,
    /// The account it speaks for.
    pub owner: String,
    /// The secret access key.
    pub secret: String,
    /// Unix seconds.
    pub created: i64,
}

const COLUMNS: &str = "id, owner, secret, created";

fn from_row(r: &Row<'_>) -> rusqlite::Result<AccessKey> {
    Ok(AccessKey {
        id: r.get(0)?,
        owner: r.get(1)?,
        secret: r.get(2)?,
        created: r.get(3)?,
    })
}

impl Db {
    /// Records an access key unless its owner already has `limit`; `false` when it has.
    pub fn insert_access_key(&self, k: &AccessKey, limit: u32) -> DbResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n: u32 = tx.query_row(
            "SELECT COUNT(*) FROM access_keys WHERE owner = ?1",
            [&k.owner],
            |r| r.get(0),
        )?;
        if n >= limit {
            return Ok(false);
        }
        tx.execute(
            &format!("INSERT INTO access_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4)"),
            params![k.id, k.owner, k.secret, k.created],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// One access key.
    pub fn access_key(&self, id: &str) -> DbResult<Option<AccessKey>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM access_keys WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// The access keys of one account, or of every account, oldest first.
    pub fn access_keys(&self, owner: Option<&str>) -> DbResult<Vec<AccessKey>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM access_keys WHERE ?1 IS NULL OR owner = ?1 \
             ORDER BY created, id"
        ))?;
        let rows = stmt.query_map([owner], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes an access key; `false` when there was none.
    pub fn delete_access_key(&self, id: &str) -> DbResult<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM access_keys WHERE id = ?1", [id])?
            == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_per_account_up_to_a_limit() {
        let db = Db::open_in_memory().unwrap();
        let key = |id: &str, owner: &str| AccessKey {
            id: id.into(),
            owner: owner.into(),
            secret: format!("secret-{id}"),
            created: 1,
        };
        assert!(db
            .insert_access_key(&key("AKIA1", "111111111111"), 2)
            .unwrap());
        assert!(db
            .insert_access_key(&key("AKIA2", "111111111111"), 2)
            .unwrap());
        assert!(!db
            .insert_access_key(&key("AKIA3", "111111111111"), 2)
            .unwrap());
        assert!(db
            .insert_access_key(&key("AKIA4", "222222222222"), 2)
            .unwrap());
        assert_eq!(db.access_keys(Some("111111111111")).unwrap().len(), 2);
        assert_eq!(db.access_keys(None).unwrap().len(), 3);
        assert_eq!(
            db.access_key("AKIA4").unwrap().unwrap().secret,
            "secret-AKIA4"
        );
        assert!(db.delete_access_key("AKIA1").unwrap());
        assert!(!db.delete_access_key("AKIA1").unwrap());
        assert!(db.access_key("AKIA1").unwrap().is_none());
    }
}
