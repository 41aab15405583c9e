//! Instance roles and instance profiles, per account. A role is a list of allowed actions
//! (strato's small policy form, checked in `cloud::identity::roles`); a profile names the
//! role an instance launched with it gets credentials for.

use rusqlite::{params, OptionalExtension, Row};

use super::{Db, DbResult};

/// One instance role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The account that owns it.
    pub account: String,
    /// Its name, unique in the account.
    pub name: String,
    /// Allowed actions, e.g. `ec2:Describe*`.
    pub actions: Vec<String>,
    /// Unix seconds.
    pub created: i64,
}

/// One instance profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceProfile {
    /// The account that owns it.
    pub account: String,
    /// Its name, unique in the account.
    pub name: String,
    /// The role it names (of the same account).
    pub role: String,
    /// Unix seconds.
    pub created: i64,
}

/// An instance's instance profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamAssociation {
    /// `iip-assoc-…`
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// The instance's (and the profile's) account.
    pub account: String,
    /// The profile's name.
    pub profile: String,
    /// Unix seconds.
    pub created: i64,
}

const ASSOC_COLUMNS: &str = "id, instance_id, account, profile, created";

fn assoc_from_row(r: &Row<'_>) -> rusqlite::Result<IamAssociation> {
    Ok(IamAssociation {
        id: r.get(0)?,
        instance_id: r.get(1)?,
        account: r.get(2)?,
        profile: r.get(3)?,
        created: r.get(4)?,
    })
}

fn role_from_row(r: &Row<'_>) -> rusqlite::Result<Role> {
    let actions: String = r.get(2)?;
    let actions = serde_json::from_str(&actions).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Role {
        account: r.get(0)?,
        name: r.get(1)?,
        actions,
        created: r.get(3)?,
    })
}

fn profile_from_row(r: &Row<'_>) -> rusqlite::Result<InstanceProfile> {
    Ok(InstanceProfile {
        account: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        created: r.get(3)?,
    })
}

impl Db {
    /// Records a role; `false` when the account has one of that name.
    pub fn insert_role(&self, role: &Role) -> DbResult<bool> {
        let actions = serde_json::to_string(&role.actions)?;
        Ok(self.conn().execute(
            "INSERT OR IGNORE INTO roles (account, name, actions, created) \
             VALUES (?1, ?2, ?3, ?4)",
            params![role.account, role.name, actions, role.created],
        )? == 1)
    }

    /// One role.
    pub fn role(&self, account: &str, name: &str) -> DbResult<Option<Role>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT account, name, actions, created FROM roles \
                 WHERE account = ?1 AND name = ?2",
                [account, name],
                role_from_row,
            )
            .optional()?)
    }

    /// The roles of one account, by name.
    pub fn roles(&self, account: &str) -> DbResult<Vec<Role>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account, name, actions, created FROM roles WHERE account = ?1 \
             ORDER BY name",
        )?;
        let rows = stmt.query_map([account], role_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a role no profile names; `None` when there was no such role, `Some(false)`
    /// when a profile still names it.
    pub fn delete_role(&self, account: &str, name: &str) -> DbResult<Option<bool>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT COUNT(*) FROM roles WHERE account = ?1 AND name = ?2",
            [account, name],
            |r| r.get::<_, u32>(0).map(|n| n > 0),
        )?;
        if !exists {
            return Ok(None);
        }
        let used: u32 = tx.query_row(
            "SELECT COUNT(*) FROM instance_profiles WHERE account = ?1 AND role = ?2",
            [account, name],
            |r| r.get(0),
        )?;
        if used > 0 {
            return Ok(Some(false));
        }
        tx.execute(
            "DELETE FROM roles WHERE account = ?1 AND name = ?2",
            [account, name],
        )?;
        tx.commit()?;
        Ok(Some(true))
    }

    /// Records a profile; `false` when the account has one of that name. The role must exist
    /// (the foreign key refuses it otherwise).
    pub fn insert_instance_profile(&self, p: &InstanceProfile) -> DbResult<bool> {
        Ok(self.conn().execute(
            "INSERT OR IGNORE INTO instance_profiles (account, name, role, created) \
             VALUES (?1, ?2, ?3, ?4)",
            params![p.account, p.name, p.role, p.created],
        )? == 1)
    }

    /// One profile.
    pub fn instance_profile(&self, account: &str, name: &str) -> DbResult<Option<InstanceProfile>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT account, name, role, created FROM instance_profiles \
                 WHERE account = ?1 AND name = ?2",
                [account, name],
                profile_from_row,
            )
            .optional()?)
    }

    /// The profiles of one account, by name.
    pub fn instance_profiles(&self, account: &str) -> DbResult<Vec<InstanceProfile>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account, name, role, created FROM instance_profiles WHERE account = ?1 \
             ORDER BY name",
        )?;
        let rows = stmt.query_map([account], profile_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a profile no instance has; `None` when there was no such profile,
    /// `Some(false)` when an instance still has it.
    pub fn delete_instance_profile(&self, account: &str, name: &str) -> DbResult<Option<bool>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let used: u32 = tx.query_row(
            "SELECT COUNT(*) FROM iam_associations WHERE account = ?1 AND profile = ?2",
            [account, name],
            |r| r.get(0),
        )?;
        let n = tx.execute(
            "DELETE FROM instance_profiles WHERE account = ?1 AND name = ?2",
            [account, name],
        )?;
        if n == 0 {
            return Ok(None);
        }
        if used > 0 {
            return Ok(Some(false));
        }
        tx.commit()?;
        Ok(Some(true))
    }

    /// Records that an instance has a profile (one at most).
    pub fn insert_iam_association(&self, a: &IamAssociation) -> DbResult<()> {
        self.conn().execute(
            "INSERT INTO iam_associations (id, instance_id, account, profile, created) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.id, a.instance_id, a.account, a.profile, a.created],
        )?;
        Ok(())
    }

    /// The profile association of an instance.
    pub fn iam_association_of(&self, instance_id: &str) -> DbResult<Option<IamAssociation>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {ASSOC_COLUMNS} FROM iam_associations WHERE instance_id = ?1"),
                [instance_id],
                assoc_from_row,
            )
            .optional()?)
    }

    /// One association by its ID.
    pub fn iam_association(&self, id: &str) -> DbResult<Option<IamAssociation>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {ASSOC_COLUMNS} FROM iam_associations WHERE id = ?1"),
                [id],
                assoc_from_row,
            )
            .optional()?)
    }

    /// The associations of an account, oldest first.
    pub fn iam_associations(&self, account: &str) -> DbResult<Vec<IamAssociation>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ASSOC_COLUMNS} FROM iam_associations WHERE account = ?1 ORDER BY created, id"
        ))?;
        let rows = stmt.query_map([account], assoc_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Points an association at another profile under a new ID, and revokes the
    /// instance's credentials (they were for the old role); `false` when it is gone.
    pub fn replace_iam_association(&self, id: &str, new: &IamAssociation) -> DbResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute("DELETE FROM iam_associations WHERE id = ?1", [id])?;
        if n == 0 {
            return Ok(false);
        }
        tx.execute(
            "DELETE FROM session_credentials WHERE instance_id = ?1",
            [&new.instance_id],
        )?;
        tx.execute(
            &format!("INSERT INTO iam_associations ({ASSOC_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
            params![
                new.id,
                new.instance_id,
                new.account,
                new.profile,
                new.created
            ],
        )?;
        tx.commit()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "111111111111";

    fn role(name: &str) -> Role {
        Role {
            account: A.into(),
            name: name.into(),
            actions: vec!["ec2:Describe*".into()],
            created: 1,
        }
    }

    #[test]
    fn roles_and_profiles_round_trip_and_protect_their_roles() {
        let db = Db::open_in_memory().unwrap();
        assert!(db.insert_role(&role("reader")).unwrap());
        assert!(!db.insert_role(&role("reader")).unwrap());
        assert_eq!(db.role(A, "reader").unwrap().unwrap(), role("reader"));
        assert!(db.role("222222222222", "reader").unwrap().is_none());
        let p = InstanceProfile {
            account: A.into(),
            name: "web".into(),
            role: "reader".into(),
            created: 2,
        };
        assert!(db.insert_instance_profile(&p).unwrap());
        assert!(!db.insert_instance_profile(&p).unwrap());
        // A profile naming a missing role is refused by the foreign key.
        let orphan = InstanceProfile {
            role: "nobody".into(),
            name: "x".into(),
            ..p.clone()
        };
        assert!(db.insert_instance_profile(&orphan).is_err());
        assert_eq!(db.instance_profiles(A).unwrap(), vec![p.clone()]);
        assert_eq!(db.delete_role(A, "reader").unwrap(), Some(false));
        let assoc = IamAssociation {
            id: "iip-assoc-1".into(),
            instance_id: "i-1".into(),
            account: A.into(),
            profile: "web".into(),
            created: 3,
        };
        db.insert_iam_association(&assoc).unwrap();
        assert_eq!(db.iam_association_of("i-1").unwrap(), Some(assoc));
        assert!(db.iam_association_of("i-2").unwrap().is_none());
        // A profile an instance has stays.
        assert_eq!(db.delete_instance_profile(A, "web").unwrap(), Some(false));
        assert!(db.instance_profile(A, "web").unwrap().is_some());
        db.conn()
            .execute("DELETE FROM iam_associations", [])
            .unwrap();
        assert_eq!(db.delete_instance_profile(A, "web").unwrap(), Some(true));
        assert_eq!(db.delete_instance_profile(A, "web").unwrap(), None);
        assert_eq!(db.delete_role(A, "reader").unwrap(), Some(true));
        assert_eq!(db.delete_role(A, "reader").unwrap(), None);
        assert!(db.roles(A).unwrap().is_empty());
    }
}
