//! Key pair rows: public keys and their fingerprints (private keys are never stored).

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::instances::Tag;
use super::{Db, DbResult};

/// One key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPair {
    /// `key-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Name, unique per owner.
    pub name: String,
    /// `ed25519`, `rsa` or `ecdsa`.
    pub key_type: String,
    /// `SHA256:…`
    pub fingerprint: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Unix seconds.
    pub created: i64,
}

const COLUMNS: &str = "id, owner, name, key_type, fingerprint, public_key, tags, created";

fn from_row(r: &Row<'_>) -> rusqlite::Result<KeyPair> {
    Ok(KeyPair {
        id: r.get(0)?,
        owner: r.get(1)?,
        name: r.get(2)?,
        key_type: r.get(3)?,
        fingerprint: r.get(4)?,
        public_key: r.get(5)?,
        tags: super::json_col(r, 6)?,
        created: r.get(7)?,
    })
}

impl Db {
    /// Records a key pair; `false` when the owner already has one of that name.
    pub fn insert_key_pair(&self, k: &KeyPair) -> DbResult<bool> {
        let n = self.conn().execute(
            &format!(
                "INSERT INTO key_pairs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (owner, name) DO NOTHING"
            ),
            params![
                k.id,
                k.owner,
                k.name,
                k.key_type,
                k.fingerprint,
                k.public_key,
                serde_json::to_string(&k.tags)?,
                k.created,
            ],
        )?;
        Ok(n == 1)
    }

    /// Writes a key pair as the region's record has it (a mirror's insert or update).
    pub fn upsert_key_pair(&self, k: &KeyPair) -> DbResult<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO key_pairs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, name = excluded.name, \
                 key_type = excluded.key_type, fingerprint = excluded.fingerprint, \
                 public_key = excluded.public_key, tags = excluded.tags, created = excluded.created"
            ),
            params![
                k.id,
                k.owner,
                k.name,
                k.key_type,
                k.fingerprint,
                k.public_key,
                serde_json::to_string(&k.tags)?,
                k.created,
            ],
        )?;
        Ok(())
    }

    /// One key pair by ID, whoever owns it.
    pub fn key_pair(&self, id: &str) -> DbResult<Option<KeyPair>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM key_pairs WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// The ID of every key pair of every account.
    pub fn key_pair_ids(&self) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM key_pairs ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An account's key pairs, by name.
    pub fn key_pairs(&self, owner: &str) -> DbResult<Vec<KeyPair>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM key_pairs WHERE owner = ?1 ORDER BY name"
        ))?;
        let rows = stmt.query_map([owner], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One of an account's key pairs by name.
    pub fn key_pair_by_name(&self, owner: &str, name: &str) -> DbResult<Option<KeyPair>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM key_pairs WHERE owner = ?1 AND name = ?2"),
                [owner, name],
                from_row,
            )
            .optional()?)
    }

    /// Deletes one of an account's key pairs, named by name or ID; returns the deleted
    /// pair's ID, if there was one.
    pub fn delete_key_pair(&self, owner: &str, name: &str, id: &str) -> DbResult<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "DELETE FROM key_pairs WHERE owner = ?1 AND \
                 ((?2 != '' AND name = ?2) OR (?3 != '' AND id = ?3)) RETURNING id",
                [owner, name, id],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_and_deletion_by_name_or_id() {
        let db = Db::open_in_memory().unwrap();
        let k = KeyPair {
            id: "key-0000000000000000a".into(),
            owner: "111111111111".into(),
            name: "laptop".into(),
            key_type: "ed25519".into(),
            fingerprint: "SHA256:x".into(),
            public_key: "ssh-ed25519 AAAA laptop".into(),
            tags: vec![],
            created: 1,
        };
        assert!(db.insert_key_pair(&k).unwrap());
        let mut dup = k.clone();
        dup.id = "key-0000000000000000b".into();
        assert!(!db.insert_key_pair(&dup).unwrap());
        assert_eq!(
            db.key_pair_by_name(&k.owner, "laptop").unwrap(),
            Some(k.clone())
        );
        assert!(db
            .key_pair_by_name("222222222222", "laptop")
            .unwrap()
            .is_none());
        assert_eq!(
            db.delete_key_pair("222222222222", "laptop", "").unwrap(),
            None
        );
        assert_eq!(db.delete_key_pair(&k.owner, "", "").unwrap(), None);
        assert_eq!(
            db.delete_key_pair(&k.owner, "", &k.id).unwrap(),
            Some(k.id.clone())
        );
        assert!(db.key_pairs(&k.owner).unwrap().is_empty());
    }
}
