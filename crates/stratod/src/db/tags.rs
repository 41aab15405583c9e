//! Tags of every taggable resource, each kept in its own table's `tags` column (JSON), read
//! and changed here by resource kind for CreateTags, DeleteTags and DescribeTags.

use rusqlite::{params, OptionalExtension};

use super::{Db, DbResult};
use crate::db::instances::Tag;
use crate::ids::Kind;

/// Where one kind of resource keeps its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tagged {
    /// The table.
    table: &'static str,
    /// Its ID column.
    id_column: &'static str,
    /// SQL for the owning account of a row (subnets have theirs through the VPC; the default
    /// VPC's is '').
    owner: &'static str,
}

const fn owned(table: &'static str) -> Tagged {
    Tagged {
        table,
        id_column: "id",
        owner: "owner",
    }
}

/// Where a kind of resource keeps its tags; `None` for kinds without tags.
fn tagged(kind: Kind) -> Option<Tagged> {
    Some(match kind {
        Kind::Instance => owned("instances"),
        Kind::Image => owned("images"),
        Kind::Volume => owned("volumes"),
        Kind::Snapshot => owned("snapshots"),
        Kind::Vpc => owned("vpcs"),
        Kind::Subnet => Tagged {
            table: "subnets",
            id_column: "id",
            owner: "(SELECT owner FROM vpcs WHERE vpcs.id = subnets.vpc_id)",
        },
        Kind::NetworkInterface => owned("network_interfaces"),
        Kind::SecurityGroup => owned("security_groups"),
        Kind::Allocation => Tagged {
            table: "public_ips",
            id_column: "allocation_id",
            owner: "owner",
        },
        Kind::KeyPair => owned("key_pairs"),
        Kind::PlacementGroup => owned("placement_groups"),
        Kind::LaunchTemplate => owned("launch_templates"),
        Kind::Reservation
        | Kind::NetworkInterfaceAttachment
        | Kind::Association
        | Kind::VpcCidrAssociation
        | Kind::SubnetCidrAssociation => return None,
    })
}

/// One resource's tags and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTags {
    /// The resource ID.
    pub id: String,
    /// Owning account ('' for resources every account shares).
    pub owner: String,
    /// Its tags.
    pub tags: Vec<Tag>,
}

/// What a tag change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    /// Every resource changed.
    Done,
    /// This resource does not exist, or the account cannot tag it: nothing changed.
    NotFound(String),
    /// The change would leave this resource with too many tags: nothing changed.
    TooMany(String),
}

/// Most tags a resource may carry (EC2's limit).
pub const MAX_TAGS: usize = 50;

impl Db {
    /// Every resource of one kind with its tags (none for a kind without tags).
    pub fn all_tags(&self, kind: Kind) -> DbResult<Vec<ResourceTags>> {
        let Some(t) = tagged(kind) else {
            return Ok(Vec::new());
        };
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {id}, {owner}, tags FROM {table} WHERE {id} IS NOT NULL ORDER BY {id}",
            id = t.id_column,
            owner = t.owner,
            table = t.table
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(ResourceTags {
                id: r.get(0)?,
                owner: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                tags: super::json_col(r, 2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Changes the tags of several resources in one transaction: `change` edits each list;
    /// `may_tag` says whether the caller may tag a resource of that owner. All or nothing; a
    /// resource of a kind without tags is not found.
    pub fn change_tags(
        &self,
        targets: &[(Kind, String)],
        may_tag: impl Fn(&str) -> bool,
        change: impl Fn(&mut Vec<Tag>),
    ) -> DbResult<TagChange> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (kind, id) in targets {
            let Some(t) = tagged(*kind) else {
                return Ok(TagChange::NotFound(id.clone()));
            };
            let row: Option<(Option<String>, String)> = tx
                .query_row(
                    &format!(
                        "SELECT {owner}, tags FROM {table} WHERE {idc} = ?1",
                        owner = t.owner,
                        table = t.table,
                        idc = t.id_column
                    ),
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((owner, tags)) = row else {
                return Ok(TagChange::NotFound(id.clone()));
            };
            if !may_tag(&owner.unwrap_or_default()) {
                return Ok(TagChange::NotFound(id.clone()));
            }
            let mut tags: Vec<Tag> = serde_json::from_str(&tags)?;
            change(&mut tags);
            if tags.len() > MAX_TAGS {
                return Ok(TagChange::TooMany(id.clone()));
            }
            tx.execute(
                &format!(
                    "UPDATE {table} SET tags = ?2 WHERE {idc} = ?1",
                    table = t.table,
                    idc = t.id_column
                ),
                params![id, serde_json::to_string(&tags)?],
            )?;
        }
        tx.commit()?;
        Ok(TagChange::Done)
    }
}
