//! AMI rows and their launch permissions.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::{Db, DbResult};
use crate::states::ImageState;

/// One entry of a block device mapping, as stored for an AMI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Mapping {
    /// `/dev/vda`, …
    pub device_name: String,
    /// Snapshot the volume is cloned from (empty: a blank volume).
    #[serde(default)]
    pub snapshot_id: String,
    /// Size in GiB.
    #[serde(default)]
    pub volume_size: i64,
    /// Volume type label.
    #[serde(default)]
    pub volume_type: String,
    /// Delete the volume when the instance terminates.
    #[serde(default)]
    pub delete_on_termination: bool,
    /// `ephemeralN` for instance store.
    #[serde(default)]
    pub virtual_name: String,
    /// Suppresses the device.
    #[serde(default)]
    pub no_device: bool,
}

/// One AMI.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `ami-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Name, unique per owner.
    pub name: String,
    /// Description.
    pub description: String,
    /// Its state.
    pub state: ImageState,
    /// Why it failed.
    pub state_reason: String,
    /// Copy progress, 0-100.
    pub progress: i32,
    /// `x86_64`.
    pub architecture: String,
    /// Kernel file.
    pub kernel: String,
    /// Initrd file.
    pub initrd: Option<String>,
    /// Kernel command line.
    pub boot_args: String,
    /// Root device name.
    pub root_device_name: String,
    /// Block device mapping.
    pub mappings: Vec<Mapping>,
    /// Unix seconds.
    pub created: i64,
    /// Tags.
    pub tags: Vec<crate::db::instances::Tag>,
    /// EnaSupport: instances launched from it get enhanced networking.
    pub ena_support: bool,
}

const COLUMNS: &str = "id, owner, name, description, state, state_reason, progress, \
    architecture, kernel, initrd, boot_args, root_device_name, bdm, created, tags, ena_support";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Image> {
    Ok(Image {
        id: r.get(0)?,
        owner: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        state: r.get(4)?,
        state_reason: r.get(5)?,
        progress: r.get(6)?,
        architecture: r.get(7)?,
        kernel: r.get(8)?,
        initrd: r.get(9)?,
        boot_args: r.get(10)?,
        root_device_name: r.get(11)?,
        mappings: super::json_col(r, 12)?,
        created: r.get(13)?,
        tags: super::json_col(r, 14)?,
        ena_support: r.get(15)?,
    })
}

/// The grantee that makes an image public.
pub const PUBLIC: &str = "all";

impl Db {
    /// Records a new image; false if the owner already has an image of that name.
    pub fn insert_image(&self, i: &Image) -> DbResult<bool> {
        self.write_image(i, "")
    }

    /// Writes an image as the region's record has it: inserted, or its row replaced (its
    /// launch permissions kept); false if the owner has another image of that name here.
    pub fn upsert_image(&self, i: &Image) -> DbResult<bool> {
        self.write_image(
            i,
            " ON CONFLICT (id) DO UPDATE SET \
             owner = excluded.owner, name = excluded.name, \
             description = excluded.description, state = excluded.state, \
             state_reason = excluded.state_reason, progress = excluded.progress, \
             architecture = excluded.architecture, kernel = excluded.kernel, \
             initrd = excluded.initrd, boot_args = excluded.boot_args, \
             root_device_name = excluded.root_device_name, bdm = excluded.bdm, \
             created = excluded.created, tags = excluded.tags, \
             ena_support = excluded.ena_support",
        )
    }

    /// Inserts an image's row, `on_conflict` saying what a row of its ID already there
    /// becomes; false if the owner has another image of that name.
    fn write_image(&self, i: &Image, on_conflict: &str) -> DbResult<bool> {
        let res = self.conn().execute(
            &format!(
                "INSERT INTO images ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
                 ?10, ?11, ?12, ?13, ?14, ?15, ?16){on_conflict}"
            ),
            params![
                i.id,
                i.owner,
                i.name,
                i.description,
                i.state,
                i.state_reason,
                i.progress,
                i.architecture,
                i.kernel,
                i.initrd,
                i.boot_args,
                i.root_device_name,
                serde_json::to_string(&i.mappings)?,
                i.created,
                serde_json::to_string(&i.tags)?,
                i.ena_support,
            ],
        );
        match res {
            Ok(_) => Ok(true),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The ID of every image.
    pub fn image_ids(&self) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM images ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces an image's launch permissions.
    pub fn set_launch_permissions(&self, id: &str, grantees: &[String]) -> DbResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM launch_permissions WHERE image_id = ?1", [id])?;
        for g in grantees {
            tx.execute(
                "INSERT OR IGNORE INTO launch_permissions (image_id, grantee) VALUES (?1, ?2)",
                params![id, g],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One image.
    pub fn image(&self, id: &str) -> DbResult<Option<Image>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM images WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Every image, oldest first.
    pub fn images(&self) -> DbResult<Vec<Image>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM images ORDER BY created, id"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets an image's state, reason and progress.
    pub fn set_image_state(
        &self,
        id: &str,
        state: ImageState,
        reason: &str,
        progress: i32,
    ) -> DbResult<()> {
        self.conn().execute(
            "UPDATE images SET state = ?2, state_reason = ?3, progress = ?4 WHERE id = ?1",
            params![id, state, reason, progress],
        )?;
        Ok(())
    }

    /// Replaces an image's block device mapping.
    pub fn set_image_mappings(&self, id: &str, mappings: &[Mapping]) -> DbResult<()> {
        self.conn().execute(
            "UPDATE images SET bdm = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(mappings)?],
        )?;
        Ok(())
    }

    /// Removes an image and its launch permissions.
    pub fn delete_image(&self, id: &str) -> DbResult<()> {
        self.conn()
            .execute("DELETE FROM images WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Accounts (and `all`) allowed to launch an image besides its owner.
    pub fn launch_permissions(&self, id: &str) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT grantee FROM launch_permissions WHERE image_id = ?1 ORDER BY grantee",
        )?;
        let rows = stmt.query_map([id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds and removes launch permissions in one transaction.
    pub fn modify_launch_permissions(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> DbResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for g in add {
            tx.execute(
                "INSERT OR IGNORE INTO launch_permissions (image_id, grantee) VALUES (?1, ?2)",
                params![id, g],
            )?;
        }
        for g in remove {
            tx.execute(
                "DELETE FROM launch_permissions WHERE image_id = ?1 AND grantee = ?2",
                params![id, g],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
