//! Placement group rows. Which instance sits in which group (and on which partition and
//! rack) is kept in the instance's row (`db::instances`).

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::instances::Tag;
use super::{Db, DbResult};

/// One placement group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementGroup {
    /// `pg-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Name, unique per owner.
    pub name: String,
    /// `cluster`, `spread` or `partition`.
    pub strategy: String,
    /// Partition groups: 1-7; else 0.
    pub partition_count: i32,
    /// Spread groups: `rack`; else empty.
    pub spread_level: String,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Unix seconds.
    pub created: i64,
}

const COLUMNS: &str = "id, owner, name, strategy, partition_count, spread_level, tags, created";

fn from_row(r: &Row<'_>) -> rusqlite::Result<PlacementGroup> {
    Ok(PlacementGroup {
        id: r.get(0)?,
        owner: r.get(1)?,
        name: r.get(2)?,
        strategy: r.get(3)?,
        partition_count: r.get(4)?,
        spread_level: r.get(5)?,
        tags: super::json_col(r, 6)?,
        created: r.get(7)?,
    })
}

impl Db {
    /// Records a new group; `false` when the owner already has a group of that name.
    pub fn insert_placement_group(&self, g: &PlacementGroup) -> DbResult<bool> {
        let n = self.conn().execute(
            &format!(
                "INSERT INTO placement_groups ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (owner, name) DO NOTHING"
            ),
            params![
                g.id,
                g.owner,
                g.name,
                g.strategy,
                g.partition_count,
                g.spread_level,
                serde_json::to_string(&g.tags)?,
                g.created,
            ],
        )?;
        Ok(n == 1)
    }

    /// Writes a group as the region's record has it (a mirror's insert or update).
    pub fn upsert_placement_group(&self, g: &PlacementGroup) -> DbResult<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO placement_groups ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, name = excluded.name, \
                 strategy = excluded.strategy, partition_count = excluded.partition_count, \
                 spread_level = excluded.spread_level, tags = excluded.tags, \
                 created = excluded.created"
            ),
            params![
                g.id,
                g.owner,
                g.name,
                g.strategy,
                g.partition_count,
                g.spread_level,
                serde_json::to_string(&g.tags)?,
                g.created,
            ],
        )?;
        Ok(())
    }

    /// The ID of every group of every account.
    pub fn placement_group_ids(&self) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM placement_groups ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An account's groups, oldest first.
    pub fn placement_groups(&self, owner: &str) -> DbResult<Vec<PlacementGroup>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM placement_groups WHERE owner = ?1 ORDER BY created, name"
        ))?;
        let rows = stmt.query_map([owner], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One group by ID, whoever owns it.
    pub fn placement_group(&self, id: &str) -> DbResult<Option<PlacementGroup>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM placement_groups WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// One of an account's groups by name.
    pub fn placement_group_by_name(
        &self,
        owner: &str,
        name: &str,
    ) -> DbResult<Option<PlacementGroup>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM placement_groups WHERE owner = ?1 AND name = ?2"),
                [owner, name],
                from_row,
            )
            .optional()?)
    }

    /// Deletes a group unless an instance that is not terminated is still in it; returns
    /// whether it was deleted. One statement, so a launch cannot slip in between the check
    /// and the delete.
    pub fn delete_placement_group(&self, id: &str) -> DbResult<bool> {
        let n = self.conn().execute(
            "DELETE FROM placement_groups WHERE id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM instances WHERE placement_group = ?1 AND state != 'terminated')",
            [id],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::State;

    fn group(id: &str, name: &str) -> PlacementGroup {
        PlacementGroup {
            id: id.into(),
            owner: "111111111111".into(),
            name: name.into(),
            strategy: "spread".into(),
            partition_count: 0,
            spread_level: "rack".into(),
            tags: vec![],
            created: 1,
        }
    }

    #[test]
    fn names_are_unique_per_owner_and_members_block_deletion() {
        let db = Db::open_in_memory().unwrap();
        let g = group("pg-0000000000000000a", "web");
        assert!(db.insert_placement_group(&g).unwrap());
        assert!(!db
            .insert_placement_group(&group("pg-0000000000000000b", "web"))
            .unwrap());
        let mut other = group("pg-0000000000000000c", "web");
        other.owner = "222222222222".into();
        assert!(db.insert_placement_group(&other).unwrap());
        assert_eq!(
            db.placement_group_by_name("111111111111", "web").unwrap(),
            Some(g.clone())
        );

        let mut i = crate::db::instances::tests::sample("i-0000000000000000a", "111111111111");
        i.placement_group = g.id.clone();
        i.rack = "rack-1".into();
        db.insert_instance(&i).unwrap();
        assert_eq!(db.instances_in_group(&g.id).unwrap().len(), 1);
        assert!(!db.delete_placement_group(&g.id).unwrap());
        db.set_state(&i.id, &[State::Pending], State::Terminated, "")
            .unwrap();
        assert!(db.delete_placement_group(&g.id).unwrap());
        assert!(db.placement_group(&g.id).unwrap().is_none());
    }
}
