//! Metering periods: one row per span of time a resource is billable (an instance while
//! running, a volume while it exists).

use rusqlite::{params, Row};

use super::{Db, DbResult};

/// One billable period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Owning account.
    pub owner: String,
    /// Instance or volume ID.
    pub resource_id: String,
    /// `instance` or `volume`.
    pub resource_type: String,
    /// Instance type or volume type.
    pub kind: String,
    /// Volume size in GiB (0 for instances).
    pub gib: i64,
    /// Start, Unix milliseconds.
    pub start_ms: i64,
    /// End, Unix milliseconds; `None` while open.
    pub end_ms: Option<i64>,
}

fn row(r: &Row<'_>) -> rusqlite::Result<Period> {
    Ok(Period {
        owner: r.get(0)?,
        resource_id: r.get(1)?,
        resource_type: r.get(2)?,
        kind: r.get(3)?,
        gib: r.get(4)?,
        start_ms: r.get(5)?,
        end_ms: r.get(6)?,
    })
}

impl Db {
    /// Opens a period for a resource unless one is open already.
    pub fn open_period(&self, p: &Period) -> DbResult<()> {
        self.conn().execute(
            "INSERT INTO usage (owner, resource_id, resource_type, kind, gib, start_ms) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS \
             (SELECT 1 FROM usage WHERE resource_id = ?2 AND end_ms IS NULL)",
            params![
                p.owner,
                p.resource_id,
                p.resource_type,
                p.kind,
                p.gib,
                p.start_ms
            ],
        )?;
        Ok(())
    }

    /// Closes the open period of a resource, if any.
    pub fn close_period(&self, resource_id: &str, end_ms: i64) -> DbResult<()> {
        self.conn().execute(
            "UPDATE usage SET end_ms = ?2 WHERE resource_id = ?1 AND end_ms IS NULL",
            params![resource_id, end_ms],
        )?;
        Ok(())
    }

    /// An account's periods that overlap `[start_ms, end_ms]`.
    pub fn periods(&self, owner: &str, start_ms: i64, end_ms: i64) -> DbResult<Vec<Period>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT owner, resource_id, resource_type, kind, gib, start_ms, end_ms FROM usage \
             WHERE owner = ?1 AND start_ms <= ?3 AND (end_ms IS NULL OR end_ms >= ?2) \
             ORDER BY resource_type, resource_id, start_ms",
        )?;
        let rows = stmt.query_map(params![owner, start_ms, end_ms], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
