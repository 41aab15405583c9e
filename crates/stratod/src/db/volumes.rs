//! Volume and snapshot rows.

use rusqlite::{params, OptionalExtension, Row};

use super::{Db, DbResult};
use crate::db::instances::Tag;
use crate::states::{AttachState, SnapshotState, VolumeState};

/// One EBS-style volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// `vol-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Size in GiB.
    pub size_gib: i64,
    /// Type label (gp3, …).
    pub volume_type: String,
    /// Availability zone.
    pub az: String,
    /// Snapshot it was made from, or empty.
    pub snapshot_id: String,
    /// Its state.
    pub state: VolumeState,
    /// Unix seconds.
    pub created: i64,
    /// Instance it is attached to.
    pub instance_id: Option<String>,
    /// Device name on that instance.
    pub device: Option<String>,
    /// The state of its attachment, while it has one.
    pub attach_state: Option<AttachState>,
    /// Deleted with its instance.
    pub delete_on_termination: bool,
    /// The monitor drive it occupies while its instance runs.
    pub slot: Option<String>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// One snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `snap-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Volume it was taken from.
    pub volume_id: String,
    /// Size in GiB.
    pub size_gib: i64,
    /// Its state.
    pub state: SnapshotState,
    /// 0-100.
    pub progress: i32,
    /// Description.
    pub description: String,
    /// Unix seconds.
    pub created: i64,
    /// Tags.
    pub tags: Vec<Tag>,
}

const VOL_COLUMNS: &str = "id, owner, size_gib, volume_type, az, snapshot_id, state, created, \
    instance_id, device, attach_state, delete_on_termination, slot, tags";

fn volume_row(r: &Row<'_>) -> rusqlite::Result<Volume> {
    Ok(Volume {
        id: r.get(0)?,
        owner: r.get(1)?,
        size_gib: r.get(2)?,
        volume_type: r.get(3)?,
        az: r.get(4)?,
        snapshot_id: r.get(5)?,
        state: r.get(6)?,
        created: r.get(7)?,
        instance_id: r.get(8)?,
        device: r.get(9)?,
        attach_state: r.get(10)?,
        delete_on_termination: r.get(11)?,
        slot: r.get(12)?,
        tags: super::json_col(r, 13)?,
    })
}

const SNAP_COLUMNS: &str =
    "id, owner, volume_id, size_gib, state, progress, description, created, tags";

fn snapshot_row(r: &Row<'_>) -> rusqlite::Result<Snapshot> {
    Ok(Snapshot {
        id: r.get(0)?,
        owner: r.get(1)?,
        volume_id: r.get(2)?,
        size_gib: r.get(3)?,
        state: r.get(4)?,
        progress: r.get(5)?,
        description: r.get(6)?,
        created: r.get(7)?,
        tags: super::json_col(r, 8)?,
    })
}

impl Db {
    /// Records a new volume.
    pub fn insert_volume(&self, v: &Volume) -> DbResult<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO volumes ({VOL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
                 ?10, ?11, ?12, ?13, ?14)"
            ),
            params![
                v.id,
                v.owner,
                v.size_gib,
                v.volume_type,
                v.az,
                v.snapshot_id,
                v.state,
                v.created,
                v.instance_id,
                v.device,
                v.attach_state,
                v.delete_on_termination,
                v.slot,
                serde_json::to_string(&v.tags)?,
            ],
        )?;
        Ok(())
    }

    /// One volume.
    pub fn volume(&self, id: &str) -> DbResult<Option<Volume>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {VOL_COLUMNS} FROM volumes WHERE id = ?1"),
                [id],
                volume_row,
            )
            .optional()?)
    }

    /// An account's volumes (all with `None`).
    pub fn volumes(&self, owner: Option<&str>) -> DbResult<Vec<Volume>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {VOL_COLUMNS} FROM volumes WHERE ?1 IS NULL OR owner = ?1 ORDER BY created, id"
        ))?;
        let rows = stmt.query_map([owner], volume_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The volumes attached to an instance, by device name.
    pub fn instance_volumes(&self, instance_id: &str) -> DbResult<Vec<Volume>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {VOL_COLUMNS} FROM volumes WHERE instance_id = ?1 ORDER BY device"
        ))?;
        let rows = stmt.query_map([instance_id], volume_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets a volume's state.
    pub fn set_volume_state(&self, id: &str, state: VolumeState) -> DbResult<()> {
        self.conn().execute(
            "UPDATE volumes SET state = ?2 WHERE id = ?1",
            params![id, state],
        )?;
        Ok(())
    }

    /// Attaches an available volume to an instance at `device`, if it is still available
    /// and the device is still free; returns whether it did.
    pub fn attach_volume(
        &self,
        id: &str,
        instance_id: &str,
        device: &str,
        attach_state: AttachState,
        delete_on_termination: bool,
    ) -> DbResult<bool> {
        let n = self.conn().execute(
            "UPDATE volumes SET state = 'in-use', instance_id = ?2, device = ?3, \
             attach_state = ?4, delete_on_termination = ?5 \
             WHERE id = ?1 AND state = 'available' AND NOT EXISTS \
             (SELECT 1 FROM volumes WHERE instance_id = ?2 AND device = ?3)",
            params![id, instance_id, device, attach_state, delete_on_termination],
        )?;
        Ok(n == 1)
    }

    /// Sets the attachment state of an attached volume.
    pub fn set_attach_state(&self, id: &str, attach_state: AttachState) -> DbResult<()> {
        self.conn().execute(
            "UPDATE volumes SET attach_state = ?2 WHERE id = ?1",
            params![id, attach_state],
        )?;
        Ok(())
    }

    /// Detaches a volume: it becomes available.
    pub fn detach_volume(&self, id: &str) -> DbResult<()> {
        self.conn().execute(
            "UPDATE volumes SET state = 'available', instance_id = NULL, device = NULL, \
             attach_state = NULL, delete_on_termination = 0, slot = NULL WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Records the monitor drive a volume occupies.
    pub fn set_volume_slot(&self, id: &str, slot: Option<&str>) -> DbResult<()> {
        self.conn().execute(
            "UPDATE volumes SET slot = ?2 WHERE id = ?1",
            params![id, slot],
        )?;
        Ok(())
    }

    /// Removes a volume row.
    pub fn delete_volume_row(&self, id: &str) -> DbResult<()> {
        self.conn()
            .execute("DELETE FROM volumes WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Deletes a volume that is available, detached and has no snapshot taken of it (a
    /// blank volume moving to another host); false when it is not, or is gone.
    pub fn delete_free_volume(&self, id: &str) -> DbResult<bool> {
        Ok(self.conn().execute(
            "DELETE FROM volumes WHERE id = ?1 AND state = 'available' AND instance_id IS NULL \
             AND snapshot_id = '' AND NOT EXISTS (SELECT 1 FROM snapshots WHERE volume_id = ?1)",
            [id],
        )? == 1)
    }

    /// Records a new snapshot.
    pub fn insert_snapshot(&self, s: &Snapshot) -> DbResult<()> {
        self.write_snapshot(s, "INSERT", false)
    }

    /// Inserts a snapshot's row (`verb`: `INSERT` or `INSERT OR IGNORE`), marked a replica
    /// or not.
    fn write_snapshot(&self, s: &Snapshot, verb: &str, replica: bool) -> DbResult<()> {
        self.conn().execute(
            &format!(
                "{verb} INTO snapshots ({SNAP_COLUMNS}, replica) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ),
            params![
                s.id,
                s.owner,
                s.volume_id,
                s.size_gib,
                s.state,
                s.progress,
                s.description,
                s.created,
                serde_json::to_string(&s.tags)?,
                replica,
            ],
        )?;
        Ok(())
    }

    /// One snapshot.
    pub fn snapshot(&self, id: &str) -> DbResult<Option<Snapshot>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {SNAP_COLUMNS} FROM snapshots WHERE id = ?1"),
                [id],
                snapshot_row,
            )
            .optional()?)
    }

    /// Every snapshot of this host's own (replicas of other hosts' are left out).
    pub fn snapshots(&self) -> DbResult<Vec<Snapshot>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SNAP_COLUMNS} FROM snapshots WHERE replica = 0 ORDER BY created, id"
        ))?;
        let rows = stmt.query_map([], snapshot_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a replica: a snapshot of a region's AMI pulled from the host that holds it,
    /// under the same ID (a row that exists already is kept).
    pub fn insert_replica_snapshot(&self, s: &Snapshot) -> DbResult<()> {
        self.write_snapshot(s, "INSERT OR IGNORE", true)
    }

    /// Whether snapshot `id` is a replica pulled from another host.
    pub fn is_replica(&self, id: &str) -> DbResult<bool> {
        Ok(self
            .conn()
            .query_row("SELECT replica FROM snapshots WHERE id = ?1", [id], |r| {
                r.get::<_, bool>(0)
            })
            .optional()?
            .unwrap_or(false))
    }

    /// The IDs of every snapshot row, replicas included (whose files are kept).
    pub fn all_snapshot_ids(&self) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM snapshots")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets a snapshot's state and progress.
    pub fn set_snapshot_state(
        &self,
        id: &str,
        state: SnapshotState,
        progress: i32,
    ) -> DbResult<()> {
        self.conn().execute(
            "UPDATE snapshots SET state = ?2, progress = ?3 WHERE id = ?1",
            params![id, state, progress],
        )?;
        Ok(())
    }

    /// Removes a snapshot row.
    pub fn delete_snapshot_row(&self, id: &str) -> DbResult<()> {
        self.conn()
            .execute("DELETE FROM snapshots WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Whether any image's block device mapping names the snapshot.
    pub fn snapshot_in_image(&self, id: &str) -> DbResult<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT images.id FROM images, json_each(images.bdm) AS m \
                 WHERE json_extract(m.value, '$.snapshot_id') = ?1 LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()?)
    }
}
