//! Launch template rows and their immutable, numbered versions. A version's parameters are
//! one JSON column (their shape is the daemon's own, [`TemplateData`]) plus the user data
//! as a blob.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::images::Mapping;
use super::instances::Tag;
use super::{Db, DbResult};

/// One launch template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// `lt-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Name, unique per owner.
    pub name: String,
    /// The version RunInstances uses by default.
    pub default_version: i64,
    /// The highest version number.
    pub latest_version: i64,
    /// Tags of the template.
    pub tags: Vec<Tag>,
    /// Unix seconds.
    pub created: i64,
}

/// One block device mapping entry of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TemplateMapping {
    /// The entry (its `delete_on_termination` counts only when `delete_on_termination` is
    /// set).
    pub mapping: Mapping,
    /// DeleteOnTermination if the template gives it.
    #[serde(default)]
    pub delete_on_termination: Option<bool>,
}

/// The RunInstances parameters of a version; empty fields are not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TemplateData {
    /// AMI.
    pub image_id: String,
    /// Instance type.
    pub instance_type: String,
    /// Raw user data (stored in a column of its own).
    #[serde(skip)]
    pub user_data: Vec<u8>,
    /// Block device mappings.
    pub mappings: Vec<TemplateMapping>,
    /// Key pair name.
    pub key_name: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Placement group name.
    pub group_name: String,
    /// Partition number.
    pub partition_number: i32,
    /// Security group IDs.
    pub security_group_ids: Vec<String>,
    /// `stop` or `terminate`.
    pub shutdown_behavior: String,
    /// Termination protection, if the version sets it.
    pub disable_api_termination: Option<bool>,
    /// Instance tags.
    pub tags: Vec<Tag>,
    /// Instance profile, by name or ARN (checked at launch, as EC2 does).
    pub iam_instance_profile: String,
}

/// One version of a template (its user data travels beside it in a record, as it is
/// kept beside it in a column of its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The template.
    pub template_id: String,
    /// 1, 2, …
    pub version: i64,
    /// VersionDescription.
    pub description: String,
    /// Its parameters.
    pub data: TemplateData,
    /// Unix seconds.
    pub created: i64,
}

/// What an insert that is bounded by a limit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Recorded; the number of the new version.
    Done(i64),
    /// The name is taken.
    Duplicate,
    /// The limit is reached.
    Limit,
    /// The template is gone.
    Gone,
}

const COLUMNS: &str = "id, owner, name, default_version, latest_version, tags, created";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Template> {
    Ok(Template {
        id: r.get(0)?,
        owner: r.get(1)?,
        name: r.get(2)?,
        default_version: r.get(3)?,
        latest_version: r.get(4)?,
        tags: super::json_col(r, 5)?,
        created: r.get(6)?,
    })
}

fn version_from_row(r: &Row<'_>) -> rusqlite::Result<Version> {
    let mut data: TemplateData = super::json_col(r, 3)?;
    data.user_data = r.get(4)?;
    Ok(Version {
        template_id: r.get(0)?,
        version: r.get(1)?,
        description: r.get(2)?,
        data,
        created: r.get(5)?,
    })
}

fn insert_version(tx: &rusqlite::Transaction<'_>, v: &Version) -> DbResult<()> {
    tx.execute(
        "INSERT INTO launch_template_versions \
         (template_id, version, description, data, user_data, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            v.template_id,
            v.version,
            v.description,
            serde_json::to_string(&v.data)?,
            v.data.user_data,
            v.created,
        ],
    )?;
    Ok(())
}

impl Db {
    /// Records a template with its version 1, unless the owner has `limit` templates or one
    /// of that name. Count, check and insert are one transaction.
    pub fn insert_template(&self, t: &Template, first: &Version, limit: usize) -> DbResult<Added> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let count: i64 = tx.query_row(
            "SELECT COUNT(*) FROM launch_templates WHERE owner = ?1",
            [&t.owner],
            |r| r.get(0),
        )?;
        let taken: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM launch_templates WHERE owner = ?1 AND name = ?2)",
            [&t.owner, &t.name],
            |r| r.get(0),
        )?;
        if taken {
            return Ok(Added::Duplicate);
        }
        if count as usize >= limit {
            return Ok(Added::Limit);
        }
        tx.execute(
            &format!(
                "INSERT INTO launch_templates ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ),
            params![
                t.id,
                t.owner,
                t.name,
                t.default_version,
                t.latest_version,
                serde_json::to_string(&t.tags)?,
                t.created,
            ],
        )?;
        insert_version(&tx, first)?;
        tx.commit()?;
        Ok(Added::Done(first.version))
    }

    /// Adds the next version of a template (its number is one past the latest), unless it
    /// has `limit` versions already.
    pub fn add_template_version(
        &self,
        template_id: &str,
        description: &str,
        data: &TemplateData,
        created: i64,
        limit: i64,
    ) -> DbResult<Added> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let latest: Option<i64> = tx
            .query_row(
                "SELECT latest_version FROM launch_templates WHERE id = ?1",
                [template_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(latest) = latest else {
            return Ok(Added::Gone);
        };
        if latest >= limit {
            return Ok(Added::Limit);
        }
        let version = Version {
            template_id: template_id.to_string(),
            version: latest + 1,
            description: description.to_string(),
            data: data.clone(),
            created,
        };
        insert_version(&tx, &version)?;
        tx.execute(
            "UPDATE launch_templates SET latest_version = ?2 WHERE id = ?1",
            params![template_id, version.version],
        )?;
        tx.commit()?;
        Ok(Added::Done(version.version))
    }

    /// Sets the default version.
    pub fn set_default_version(&self, template_id: &str, version: i64) -> DbResult<()> {
        self.conn().execute(
            "UPDATE launch_templates SET default_version = ?2 WHERE id = ?1",
            params![template_id, version],
        )?;
        Ok(())
    }

    /// An account's templates, oldest first.
    pub fn templates(&self, owner: &str) -> DbResult<Vec<Template>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM launch_templates WHERE owner = ?1 ORDER BY created, name"
        ))?;
        let rows = stmt.query_map([owner], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One template by ID, whoever owns it.
    pub fn template(&self, id: &str) -> DbResult<Option<Template>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM launch_templates WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// One of an account's templates by name.
    pub fn template_by_name(&self, owner: &str, name: &str) -> DbResult<Option<Template>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM launch_templates WHERE owner = ?1 AND name = ?2"),
                [owner, name],
                from_row,
            )
            .optional()?)
    }

    /// Every version of a template, lowest number first.
    pub fn template_versions(&self, template_id: &str) -> DbResult<Vec<Version>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT template_id, version, description, data, user_data, created \
             FROM launch_template_versions WHERE template_id = ?1 ORDER BY version",
        )?;
        let rows = stmt.query_map([template_id], version_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One version of a template.
    pub fn template_version(&self, template_id: &str, version: i64) -> DbResult<Option<Version>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT template_id, version, description, data, user_data, created \
                 FROM launch_template_versions WHERE template_id = ?1 AND version = ?2",
                params![template_id, version],
                version_from_row,
            )
            .optional()?)
    }

    /// The IDs of every template, whoever owns it.
    pub fn template_ids(&self) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM launch_templates ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes a template and exactly `versions` as its versions (a copy of another host's
    /// record), in one transaction.
    pub fn upsert_template(&self, t: &Template, versions: &[Version]) -> DbResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            &format!(
                "INSERT INTO launch_templates ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, name = excluded.name, \
                 default_version = excluded.default_version, \
                 latest_version = excluded.latest_version, tags = excluded.tags, \
                 created = excluded.created"
            ),
            params![
                t.id,
                t.owner,
                t.name,
                t.default_version,
                t.latest_version,
                serde_json::to_string(&t.tags)?,
                t.created,
            ],
        )?;
        tx.execute(
            "DELETE FROM launch_template_versions WHERE template_id = ?1",
            [&t.id],
        )?;
        for v in versions {
            insert_version(&tx, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes a template and its versions; returns whether it existed.
    pub fn delete_template(&self, id: &str) -> DbResult<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM launch_templates WHERE id = ?1", [id])?
            == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(id: &str, name: &str) -> (Template, Version) {
        let t = Template {
            id: id.into(),
            owner: "111111111111".into(),
            name: name.into(),
            default_version: 1,
            latest_version: 1,
            tags: vec![],
            created: 1,
        };
        let v = Version {
            template_id: id.into(),
            version: 1,
            description: "first".into(),
            data: TemplateData {
                instance_type: "t3.micro".into(),
                user_data: b"echo hi".to_vec(),
                disable_api_termination: Some(true),
                ..Default::default()
            },
            created: 1,
        };
        (t, v)
    }

    #[test]
    fn versions_are_numbered_and_bounded() {
        let db = Db::open_in_memory().unwrap();
        let (t, v) = template("lt-0000000000000000a", "web");
        assert_eq!(db.insert_template(&t, &v, 2).unwrap(), Added::Done(1));
        let (dup, dv) = template("lt-0000000000000000b", "web");
        assert_eq!(db.insert_template(&dup, &dv, 2).unwrap(), Added::Duplicate);
        let (second, sv) = template("lt-0000000000000000c", "db");
        assert_eq!(db.insert_template(&second, &sv, 2).unwrap(), Added::Done(1));
        let (third, tv) = template("lt-0000000000000000d", "cache");
        assert_eq!(db.insert_template(&third, &tv, 2).unwrap(), Added::Limit);

        let data = TemplateData {
            image_id: "ami-0000000000000000a".into(),
            ..Default::default()
        };
        assert_eq!(
            db.add_template_version(&t.id, "second", &data, 2, 3)
                .unwrap(),
            Added::Done(2)
        );
        assert_eq!(
            db.add_template_version(&t.id, "third", &data, 3, 3)
                .unwrap(),
            Added::Done(3)
        );
        assert_eq!(
            db.add_template_version(&t.id, "fourth", &data, 4, 3)
                .unwrap(),
            Added::Limit
        );
        assert_eq!(
            db.add_template_version("lt-0000000000000000f", "x", &data, 4, 3)
                .unwrap(),
            Added::Gone
        );
        let versions = db.template_versions(&t.id).unwrap();
        assert_eq!(versions.len(), 3);
        assert_eq!(versions[0], v);
        assert_eq!(db.template(&t.id).unwrap().unwrap().latest_version, 3);
        db.set_default_version(&t.id, 2).unwrap();
        assert_eq!(
            db.template_by_name(&t.owner, "web")
                .unwrap()
                .unwrap()
                .default_version,
            2
        );
        assert!(db.delete_template(&t.id).unwrap());
        assert!(db.template_versions(&t.id).unwrap().is_empty());
        assert!(!db.delete_template(&t.id).unwrap());
    }

    #[test]
    fn upsert_replaces_the_row_and_exactly_its_versions() {
        let db = Db::open_in_memory().unwrap();
        let (t, v1) = template("lt-0123456789abcdef0", "web");
        db.insert_template(&t, &v1, 10).unwrap();
        db.add_template_version(&t.id, "second", &v1.data, 2, 10)
            .unwrap();
        // Another host's record: three versions, the default moved, a tag.
        let mut t2 = t.clone();
        t2.default_version = 3;
        t2.latest_version = 3;
        t2.tags = vec![Tag {
            key: "team".into(),
            value: "lab".into(),
        }];
        let versions: Vec<Version> = (1..=3)
            .map(|n| Version {
                version: n,
                description: format!("v{n}"),
                ..v1.clone()
            })
            .collect();
        db.upsert_template(&t2, &versions).unwrap();
        assert_eq!(db.template(&t.id).unwrap(), Some(t2.clone()));
        let got = db.template_versions(&t.id).unwrap();
        assert_eq!(got, versions);
        assert_eq!(got[0].data.user_data, b"echo hi");
        // Fewer versions in a newer record: the extra row goes.
        db.upsert_template(&t2, &versions[..1]).unwrap();
        assert_eq!(db.template_versions(&t.id).unwrap().len(), 1);
        assert_eq!(db.template_ids().unwrap(), vec![t.id.clone()]);
    }
}
