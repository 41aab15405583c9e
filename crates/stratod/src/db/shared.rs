//! Which rows of region-scoped kinds (key pairs, placement groups, ...) mirror a record in
//! the region's etcd, and at which revision (`cluster::mirror`). A row of such a kind that
//! is not listed here was made on this host alone (before it joined a region); a listed row
//! whose record is gone from etcd was deleted on another host.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{Db, DbResult};

impl Db {
    /// The mirrored rows of `kind`: ID → revision of the record last applied or published.
    pub fn mirrored(&self, kind: &str) -> DbResult<BTreeMap<String, i64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, revision FROM shared_mirror WHERE kind = ?1")?;
        let rows = stmt.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Notes that row `id` of `kind` mirrors the record at `revision`.
    pub fn set_mirrored(&self, kind: &str, id: &str, revision: i64) -> DbResult<()> {
        self.conn().execute(
            "INSERT INTO shared_mirror (kind, id, revision) VALUES (?1, ?2, ?3) \
             ON CONFLICT (kind, id) DO UPDATE SET revision = excluded.revision",
            params![kind, id, revision],
        )?;
        Ok(())
    }

    /// Forgets that row `id` of `kind` mirrors a record.
    pub fn drop_mirrored(&self, kind: &str, id: &str) -> DbResult<()> {
        self.conn().execute(
            "DELETE FROM shared_mirror WHERE kind = ?1 AND id = ?2",
            [kind, id],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_rows_by_kind() {
        let db = Db::open_in_memory().unwrap();
        db.set_mirrored("key-pair", "key-1", 5).unwrap();
        db.set_mirrored("key-pair", "key-1", 9).unwrap();
        db.set_mirrored("placement-group", "pg-1", 3).unwrap();
        assert_eq!(
            db.mirrored("key-pair")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [("key-1".to_string(), 9)]
        );
        db.drop_mirrored("key-pair", "key-1").unwrap();
        assert!(db.mirrored("key-pair").unwrap().is_empty());
        assert_eq!(db.mirrored("placement-group").unwrap().len(), 1);
    }
}
