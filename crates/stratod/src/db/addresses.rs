//! Public IPv4 address rows: Elastic IPs (with an allocation ID, kept until released) and
//! the addresses instances get from the pool while they run (without one), each mapped to
//! at most one private address of one network interface; plus the map-public-IP settings
//! of subnets and network interfaces.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use rusqlite::{params, OptionalExtension, Row};

use super::{now_s, Db, DbResult};
use crate::db::instances::Tag;

/// A public address and what it is mapped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIp {
    /// The address.
    pub public_ip: String,
    /// Owning account.
    pub owner: String,
    /// `eipalloc-…` for an Elastic IP; `None` for an instance's pool address.
    pub allocation_id: Option<String>,
    /// `eipassoc-…` while an Elastic IP is associated.
    pub association_id: Option<String>,
    /// The network interface it is mapped to.
    pub eni_id: Option<String>,
    /// The private address it is mapped to.
    pub private_ip: Option<String>,
    /// The instance that network interface is attached to (from its row).
    pub instance_id: Option<String>,
    /// The owner of that network interface.
    pub eni_owner: Option<String>,
    /// Tags (Elastic IPs).
    pub tags: Vec<Tag>,
    /// In a region: the other host whose interface has the association (`None`: this
    /// host's, or not associated).
    pub assoc_host: Option<String>,
}

/// What an allocation from the pool did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// This address is now recorded.
    Done(Ipv4Addr),
    /// The target already has this address (pool addresses only).
    Existing(Ipv4Addr),
    /// Every address of the pool is taken.
    PoolEmpty,
    /// The account holds its quota of Elastic IPs.
    QuotaReached,
}

/// What an association did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Association {
    /// Associated; the pool address the target held before, if any, is released.
    Done {
        /// The released pool address.
        released: Option<String>,
    },
    /// The Elastic IP is associated elsewhere and reassociation was not allowed.
    AlreadyAssociated,
    /// The Elastic IP or the network interface is gone.
    Gone,
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Released.
    Done,
    /// Still associated.
    InUse,
    /// No such allocation.
    Gone,
}

const COLUMNS: &str = "p.public_ip, p.owner, p.allocation_id, p.association_id, p.eni_id, \
    p.private_ip, COALESCE(n.instance_id, p.instance_hint), COALESCE(n.owner, p.eni_owner_hint), \
    p.tags, p.assoc_host";

const FROM: &str = "public_ips p LEFT JOIN network_interfaces n ON n.id = p.eni_id";

fn row(r: &Row<'_>) -> rusqlite::Result<PublicIp> {
    Ok(PublicIp {
        public_ip: r.get(0)?,
        owner: r.get(1)?,
        allocation_id: r.get(2)?,
        association_id: r.get(3)?,
        eni_id: r.get(4)?,
        private_ip: r.get(5)?,
        instance_id: r.get(6)?,
        eni_owner: r.get(7)?,
        tags: super::json_col(r, 8)?,
        assoc_host: r.get(9)?,
    })
}

/// The first address of `pool` after `last` (going round) that is not in `used`.
fn next_free(
    pool: impl Iterator<Item = Ipv4Addr>,
    used: &HashSet<String>,
    last: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let pool: Vec<Ipv4Addr> = pool.collect();
    let start = last
        .and_then(|l| pool.iter().position(|ip| *ip == l))
        .map_or(0, |k| k + 1);
    let (before, after) = pool.split_at(start.min(pool.len()));
    after
        .iter()
        .chain(before)
        .copied()
        .find(|ip| !used.contains(&ip.to_string()))
}

impl Db {
    fn used_public_ips(conn: &rusqlite::Connection) -> DbResult<HashSet<String>> {
        let mut stmt = conn.prepare("SELECT public_ip FROM public_ips")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Picks the next free address of the pool and moves the cursor to it.
    fn pick_public_ip(
        conn: &rusqlite::Connection,
        pool: impl Iterator<Item = Ipv4Addr>,
    ) -> DbResult<Option<Ipv4Addr>> {
        let last: Option<String> = conn
            .query_row("SELECT last FROM public_ip_cursor WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        let used = Self::used_public_ips(conn)?;
        let ip = next_free(pool, &used, last.and_then(|l| l.parse().ok()));
        if let Some(ip) = ip {
            conn.execute(
                "INSERT INTO public_ip_cursor (id, last) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET last = excluded.last",
                [ip.to_string()],
            )?;
        }
        Ok(ip)
    }

    /// Allocates an Elastic IP: the next free address of `pool`, unless `owner` already
    /// holds `quota` of them. Count, pick and insert happen under one lock of the
    /// connection, so concurrent allocations can neither exceed the quota nor share an
    /// address.
    pub fn allocate_eip(
        &self,
        pool: impl Iterator<Item = Ipv4Addr>,
        owner: &str,
        allocation_id: &str,
        quota: u32,
        tags: &[Tag],
    ) -> DbResult<Allocation> {
        let conn = self.conn();
        let held: i64 = conn.query_row(
            "SELECT COUNT(*) FROM public_ips WHERE owner = ?1 AND allocation_id IS NOT NULL",
            [owner],
            |r| r.get(0),
        )?;
        if held >= i64::from(quota) {
            return Ok(Allocation::QuotaReached);
        }
        let Some(ip) = Self::pick_public_ip(&conn, pool)? else {
            return Ok(Allocation::PoolEmpty);
        };
        conn.execute(
            "INSERT INTO public_ips (public_ip, owner, allocation_id, tags, created) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                ip.to_string(),
                owner,
                allocation_id,
                serde_json::to_string(tags)?,
                now_s()
            ],
        )?;
        Ok(Allocation::Done(ip))
    }

    /// Gives `eni_id`'s `private_ip` the next free address of `pool`, unless it already
    /// has a public address (a pool one or an Elastic IP).
    pub fn assign_pool_ip(
        &self,
        pool: impl Iterator<Item = Ipv4Addr>,
        owner: &str,
        eni_id: &str,
        private_ip: &str,
    ) -> DbResult<Allocation> {
        let conn = self.conn();
        let existing: Option<String> = conn
            .query_row(
                "SELECT public_ip FROM public_ips WHERE eni_id = ?1 AND private_ip = ?2",
                [eni_id, private_ip],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(ip) = existing.and_then(|s| s.parse().ok()) {
            return Ok(Allocation::Existing(ip));
        }
        let Some(ip) = Self::pick_public_ip(&conn, pool)? else {
            return Ok(Allocation::PoolEmpty);
        };
        conn.execute(
            "INSERT INTO public_ips (public_ip, owner, eni_id, private_ip, created) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![ip.to_string(), owner, eni_id, private_ip, now_s()],
        )?;
        Ok(Allocation::Done(ip))
    }

    /// How many addresses of `pool` are free.
    pub fn free_public_ips(&self, pool: impl Iterator<Item = Ipv4Addr>) -> DbResult<usize> {
        let used = Self::used_public_ips(&self.conn())?;
        Ok(pool.filter(|ip| !used.contains(&ip.to_string())).count())
    }

    /// The Elastic IPs of `owner`.
    pub fn eips(&self, owner: &str) -> DbResult<Vec<PublicIp>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE p.owner = ?1 AND p.allocation_id IS NOT NULL \
             ORDER BY p.created, p.public_ip"
        ))?;
        let rows = stmt.query_map([owner], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One Elastic IP by allocation ID.
    pub fn eip(&self, allocation_id: &str) -> DbResult<Option<PublicIp>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM {FROM} WHERE p.allocation_id = ?1"),
                [allocation_id],
                row,
            )
            .optional()?)
    }

    /// The Elastic IP of an association.
    pub fn eip_by_association(&self, association_id: &str) -> DbResult<Option<PublicIp>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM {FROM} WHERE p.association_id = ?1"),
                [association_id],
                row,
            )
            .optional()?)
    }

    /// The public address of a network interface's private address, if it has one.
    pub fn public_ip_of(&self, eni_id: &str, private_ip: &str) -> DbResult<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT public_ip FROM public_ips WHERE eni_id = ?1 AND private_ip = ?2",
                [eni_id, private_ip],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Every (public, private) pair mapped to a network interface.
    pub fn public_mappings(&self) -> DbResult<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT p.public_ip, p.private_ip FROM public_ips p \
             JOIN network_interfaces n ON n.id = p.eni_id \
             WHERE p.private_ip IS NOT NULL AND p.assoc_host IS NULL ORDER BY p.public_ip",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Associates an Elastic IP with `eni_id`'s `private_ip` in one transaction: the pool
    /// address the target holds is released and another Elastic IP there is disassociated.
    pub fn associate_eip(
        &self,
        allocation_id: &str,
        association_id: &str,
        eni_id: &str,
        private_ip: &str,
        allow_reassociation: bool,
    ) -> DbResult<Association> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<(Option<String>, Option<String>)> = tx
            .query_row(
                "SELECT eni_id, private_ip FROM public_ips WHERE allocation_id = ?1",
                [allocation_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((cur_eni, cur_ip)) = current else {
            return Ok(Association::Gone);
        };
        let same = cur_eni.as_deref() == Some(eni_id) && cur_ip.as_deref() == Some(private_ip);
        if cur_eni.is_some() && !same && !allow_reassociation {
            return Ok(Association::AlreadyAssociated);
        }
        let eni: Option<String> = tx
            .query_row(
                "SELECT id FROM network_interfaces WHERE id = ?1",
                [eni_id],
                |r| r.get(0),
            )
            .optional()?;
        if eni.is_none() {
            return Ok(Association::Gone);
        }
        let released: Option<String> = tx
            .query_row(
                "SELECT public_ip FROM public_ips WHERE eni_id = ?1 AND private_ip = ?2 \
                 AND allocation_id IS NULL",
                [eni_id, private_ip],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "DELETE FROM public_ips WHERE eni_id = ?1 AND private_ip = ?2 \
             AND allocation_id IS NULL",
            [eni_id, private_ip],
        )?;
        tx.execute(
            "UPDATE public_ips SET association_id = NULL, eni_id = NULL, private_ip = NULL, \
             assoc_host = NULL, instance_hint = NULL, eni_owner_hint = NULL \
             WHERE eni_id = ?1 AND private_ip = ?2 AND allocation_id != ?3",
            [eni_id, private_ip, allocation_id],
        )?;
        tx.execute(
            "UPDATE public_ips SET association_id = ?2, eni_id = ?3, private_ip = ?4, \
             assoc_host = NULL, instance_hint = NULL, eni_owner_hint = NULL \
             WHERE allocation_id = ?1",
            [allocation_id, association_id, eni_id, private_ip],
        )?;
        tx.commit()?;
        Ok(Association::Done { released })
    }

    /// Ends an association; false if there is none with this ID.
    pub fn disassociate_eip(&self, association_id: &str) -> DbResult<bool> {
        let n = self.conn().execute(
            "UPDATE public_ips SET association_id = NULL, eni_id = NULL, private_ip = NULL, \
             assoc_host = NULL, instance_hint = NULL, eni_owner_hint = NULL \
             WHERE association_id = ?1",
            [association_id],
        )?;
        Ok(n > 0)
    }

    /// Ends what maps public addresses to an ENI's private addresses (all of them, or only
    /// `ips`): pool addresses are released, Elastic IPs disassociated. Returns how many.
    pub fn unmap_eni(&self, eni_id: &str, ips: Option<&[String]>) -> DbResult<usize> {
        let conn = self.conn();
        let mut n = 0;
        let targets: Vec<Option<&String>> = match ips {
            None => vec![None],
            Some(l) => l.iter().map(Some).collect(),
        };
        for ip in targets {
            n += conn.execute(
                "DELETE FROM public_ips WHERE allocation_id IS NULL AND eni_id = ?1 \
                 AND (?2 IS NULL OR private_ip = ?2)",
                params![eni_id, ip],
            )?;
            n += conn.execute(
                "UPDATE public_ips SET association_id = NULL, eni_id = NULL, private_ip = NULL, \
             assoc_host = NULL, instance_hint = NULL, eni_owner_hint = NULL \
                 WHERE eni_id = ?1 AND (?2 IS NULL OR private_ip = ?2)",
                params![eni_id, ip],
            )?;
        }
        Ok(n)
    }

    /// Releases an Elastic IP unless it is associated.
    pub fn release_eip(&self, allocation_id: &str) -> DbResult<Release> {
        let conn = self.conn();
        let n = conn.execute(
            "DELETE FROM public_ips WHERE allocation_id = ?1 AND eni_id IS NULL",
            [allocation_id],
        )?;
        if n > 0 {
            return Ok(Release::Done);
        }
        let exists: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM public_ips WHERE allocation_id = ?1",
                [allocation_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(if exists.is_some() {
            Release::InUse
        } else {
            Release::Gone
        })
    }

    /// Releases the pool addresses of an instance's network interfaces, and with
    /// `disassociate` ends the associations of its Elastic IPs too (terminate). Returns how
    /// many rows changed, and the pool addresses released.
    pub fn release_instance_public_ips(
        &self,
        instance_id: &str,
        disassociate: bool,
    ) -> DbResult<(usize, Vec<String>)> {
        let conn = self.conn();
        const POOL: &str = "FROM public_ips WHERE allocation_id IS NULL AND eni_id IN \
             (SELECT id FROM network_interfaces WHERE instance_id = ?1)";
        let freed: Vec<String> = {
            let mut stmt = conn.prepare(&format!("SELECT public_ip {POOL}"))?;
            let rows = stmt.query_map([instance_id], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut n = conn.execute(&format!("DELETE {POOL}"), [instance_id])?;
        if disassociate {
            n += conn.execute(
                "UPDATE public_ips SET association_id = NULL, eni_id = NULL, private_ip = NULL, \
             assoc_host = NULL, instance_hint = NULL, eni_owner_hint = NULL \
                 WHERE allocation_id IS NOT NULL AND eni_id IN \
                 (SELECT id FROM network_interfaces WHERE instance_id = ?1)",
                [instance_id],
            )?;
        }
        Ok((n, freed))
    }

    /// After a crash: releases pool addresses of network interfaces that are gone or whose
    /// instance is neither pending nor running, and ends associations with network
    /// interfaces that are gone. Returns how many rows changed.
    pub fn release_stale_public_ips(&self) -> DbResult<usize> {
        let conn = self.conn();
        let mut n = conn.execute(
            "DELETE FROM public_ips WHERE allocation_id IS NULL AND (eni_id IS NULL \
             OR eni_id NOT IN (SELECT n.id FROM network_interfaces n \
                JOIN instances i ON i.id = n.instance_id \
                WHERE i.state IN ('pending', 'running')))",
            [],
        )?;
        n += conn.execute(
            "UPDATE public_ips SET association_id = NULL, eni_id = NULL, private_ip = NULL, \
             assoc_host = NULL, instance_hint = NULL, eni_owner_hint = NULL \
             WHERE eni_id IS NOT NULL AND assoc_host IS NULL \
             AND eni_id NOT IN (SELECT id FROM network_interfaces)",
            [],
        )?;
        Ok(n)
    }

    /// `(account, allocation ID)` of every Elastic IP, by allocation ID.
    pub fn eip_owners(&self) -> DbResult<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT owner, allocation_id FROM public_ips WHERE allocation_id IS NOT NULL \
             ORDER BY allocation_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The allocation ID of every Elastic IP here (in a region: the region's, mirrored).
    pub fn eip_ids(&self) -> DbResult<Vec<String>> {
        Ok(self.eip_owners()?.into_iter().map(|(_, id)| id).collect())
    }

    /// Writes an Elastic IP as the region's record has it. An association on another host
    /// (`assoc_host`) keeps that interface's instance and owner beside it; whatever else
    /// here maps the same target gives way (the region's record is newer).
    pub fn upsert_eip(&self, e: &PublicIp) -> DbResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let allocation = e.allocation_id.as_deref().unwrap_or_default();
        if let (Some(eni), Some(ip)) = (&e.eni_id, &e.private_ip) {
            tx.execute(
                "DELETE FROM public_ips WHERE allocation_id IS NULL AND eni_id = ?1 \
                 AND private_ip = ?2",
                [eni, ip],
            )?;
            tx.execute(
                "UPDATE public_ips SET association_id = NULL, eni_id = NULL, \
                 private_ip = NULL, assoc_host = NULL, instance_hint = NULL, \
                 eni_owner_hint = NULL \
                 WHERE eni_id = ?1 AND private_ip = ?2 AND allocation_id != ?3",
                [eni, ip, allocation],
            )?;
        }
        let remote = e.assoc_host.is_some();
        tx.execute(
            "INSERT INTO public_ips (public_ip, owner, allocation_id, association_id, eni_id, \
             private_ip, tags, created, assoc_host, instance_hint, eni_owner_hint) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (public_ip) DO UPDATE SET owner = excluded.owner, \
             allocation_id = excluded.allocation_id, association_id = excluded.association_id, \
             eni_id = excluded.eni_id, private_ip = excluded.private_ip, tags = excluded.tags, \
             assoc_host = excluded.assoc_host, instance_hint = excluded.instance_hint, \
             eni_owner_hint = excluded.eni_owner_hint",
            params![
                e.public_ip,
                e.owner,
                allocation,
                e.association_id,
                e.eni_id,
                e.private_ip,
                serde_json::to_string(&e.tags)?,
                now_s(),
                e.assoc_host,
                e.instance_id.as_ref().filter(|_| remote),
                e.eni_owner.as_ref().filter(|_| remote),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes an Elastic IP's row whatever it maps (the region released it).
    pub fn delete_eip(&self, allocation_id: &str) -> DbResult<()> {
        self.conn().execute(
            "DELETE FROM public_ips WHERE allocation_id = ?1",
            [allocation_id],
        )?;
        Ok(())
    }

    /// Deletes the pool address `public_ip` (one another host of the region claimed first).
    pub fn drop_pool_ip(&self, public_ip: &str) -> DbResult<()> {
        self.conn().execute(
            "DELETE FROM public_ips WHERE allocation_id IS NULL AND public_ip = ?1",
            [public_ip],
        )?;
        Ok(())
    }

    /// Every public address here, with its owner: the pool's and (in a region, every
    /// host's) Elastic IPs.
    pub fn public_ips_held(&self) -> DbResult<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT public_ip, owner FROM public_ips ORDER BY public_ip")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The explicit map-public-IP setting of a subnet (`None`: its default).
    pub fn subnet_map_public_ip(&self, subnet_id: &str) -> DbResult<Option<bool>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT map_public_ip FROM subnets WHERE id = ?1",
                [subnet_id],
                |r| r.get::<_, Option<bool>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Sets a subnet's map-public-IP setting; false if the subnet is gone.
    pub fn set_subnet_map_public_ip(&self, subnet_id: &str, map: bool) -> DbResult<bool> {
        let n = self.conn().execute(
            "UPDATE subnets SET map_public_ip = ?2 WHERE id = ?1",
            params![subnet_id, map],
        )?;
        Ok(n > 0)
    }

    /// Records whether a network interface gets a pool address while its instance runs.
    pub fn set_eni_map_public_ip(&self, eni_id: &str, map: bool) -> DbResult<()> {
        self.conn().execute(
            "UPDATE network_interfaces SET map_public_ip = ?2 WHERE id = ?1",
            params![eni_id, map],
        )?;
        Ok(())
    }

    /// The (ENI, private address) pairs of an instance that get a pool address.
    pub fn instance_public_targets(&self, instance_id: &str) -> DbResult<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, private_ip FROM network_interfaces \
             WHERE instance_id = ?1 AND map_public_ip = 1 ORDER BY device_index",
        )?;
        let rows = stmt.query_map([instance_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::network::{Eni, Subnet};

    fn pool() -> impl Iterator<Item = Ipv4Addr> {
        (17u8..=19).map(|k| Ipv4Addr::new(198, 51, 100, k))
    }

    fn setup() -> Db {
        let db = Db::open_in_memory().unwrap();
        db.insert_subnet(&Subnet::sample()).unwrap();
        for (id, ip) in [
            ("eni-0000000000000000a", "10.0.0.4"),
            ("eni-0000000000000000b", "10.0.0.5"),
        ] {
            db.insert_eni(&Eni {
                instance_id: Some(format!("i-{}", &id[4..])),
                ..Eni::sample(id, ip)
            })
            .unwrap();
        }
        db
    }

    const A: &str = "eni-0000000000000000a";
    const B: &str = "eni-0000000000000000b";

    /// An Elastic IP mirrored from the region whose association is another host's: listed
    /// with that host's instance, never mapped here, untouched by this host's crash
    /// cleanup; a newer record moving it to an interface here takes the target from this
    /// host's pool address.
    #[test]
    fn mirrored_elastic_ips_map_on_their_host_only() {
        let db = setup();
        let remote = PublicIp {
            public_ip: "198.51.100.30".into(),
            owner: "111111111111".into(),
            allocation_id: Some("eipalloc-0000000000000000a".into()),
            association_id: Some("eipassoc-0000000000000000a".into()),
            eni_id: Some("eni-000000000000000ff".into()),
            private_ip: Some("10.0.0.9".into()),
            instance_id: Some("i-000000000000000ff".into()),
            eni_owner: Some("111111111111".into()),
            tags: vec![],
            assoc_host: Some("h2".into()),
        };
        db.upsert_eip(&remote).unwrap();
        assert_eq!(
            db.eip("eipalloc-0000000000000000a").unwrap(),
            Some(remote.clone())
        );
        assert!(db.public_mappings().unwrap().is_empty());
        assert_eq!(db.release_stale_public_ips().unwrap(), 0);
        assert_eq!(db.eip_ids().unwrap(), ["eipalloc-0000000000000000a"]);
        assert_eq!(
            db.release_eip("eipalloc-0000000000000000a").unwrap(),
            Release::InUse
        );

        // A's pool address gives way to the Elastic IP moved to A (a record of this host's).
        db.assign_pool_ip(pool(), "111111111111", A, "10.0.0.4")
            .unwrap();
        let here = PublicIp {
            eni_id: Some(A.into()),
            private_ip: Some("10.0.0.4".into()),
            instance_id: None,
            eni_owner: None,
            assoc_host: None,
            ..remote
        };
        db.upsert_eip(&here).unwrap();
        assert_eq!(
            db.public_mappings().unwrap(),
            [("198.51.100.30".to_string(), "10.0.0.4".to_string())]
        );
        let got = db.eip("eipalloc-0000000000000000a").unwrap().unwrap();
        assert_eq!(got.instance_id.as_deref(), Some("i-0000000000000000a"));
        assert_eq!(db.public_ips_held().unwrap().len(), 1);
        db.delete_eip("eipalloc-0000000000000000a").unwrap();
        assert!(db.eip_ids().unwrap().is_empty());
    }

    #[test]
    fn allocation_goes_round_the_pool() {
        let ip = |k| Ipv4Addr::new(198, 51, 100, k);
        let used: HashSet<String> = ["198.51.100.18".to_string()].into();
        assert_eq!(next_free(pool(), &used, None), Some(ip(17)));
        assert_eq!(next_free(pool(), &used, Some(ip(17))), Some(ip(19)));
        assert_eq!(next_free(pool(), &used, Some(ip(19))), Some(ip(17)));
        // A cursor outside the pool (the config changed) starts from the beginning.
        assert_eq!(next_free(pool(), &used, Some(ip(99))), Some(ip(17)));
        let all: HashSet<String> = pool().map(|i| i.to_string()).collect();
        assert_eq!(next_free(pool(), &all, Some(ip(17))), None);
        let db = setup();
        db.assign_pool_ip(pool(), "111111111111", A, "10.0.0.4")
            .unwrap();
        db.release_instance_public_ips("i-0000000000000000a", false)
            .unwrap();
        // Released and assigned again: a new address.
        assert_eq!(
            db.assign_pool_ip(pool(), "111111111111", A, "10.0.0.4")
                .unwrap(),
            Allocation::Done(ip(18))
        );
    }

    #[test]
    fn unmapping_an_eni_releases_and_disassociates() {
        let db = setup();
        db.allocate_eip(pool(), "111111111111", "eipalloc-1", 5, &[])
            .unwrap();
        db.allocate_eip(pool(), "111111111111", "eipalloc-2", 5, &[])
            .unwrap();
        db.associate_eip("eipalloc-1", "eipassoc-1", A, "10.0.0.4", false)
            .unwrap();
        db.associate_eip("eipalloc-2", "eipassoc-2", A, "10.0.0.9", false)
            .unwrap();
        // Only the named address: one association ends.
        assert_eq!(db.unmap_eni(A, Some(&["10.0.0.9".to_string()])).unwrap(), 1);
        assert!(db.public_ip_of(A, "10.0.0.9").unwrap().is_none());
        assert!(db.public_ip_of(A, "10.0.0.4").unwrap().is_some());
        // The whole interface: the rest; both stay allocated.
        assert_eq!(db.unmap_eni(A, None).unwrap(), 1);
        assert!(db.public_mappings().unwrap().is_empty());
        assert_eq!(db.eips("111111111111").unwrap().len(), 2);
    }

    #[test]
    fn quota_pool_and_pool_addresses() {
        let db = setup();
        let ip = |k| Ipv4Addr::new(198, 51, 100, k);
        assert_eq!(
            db.allocate_eip(pool(), "111111111111", "eipalloc-1", 1, &[])
                .unwrap(),
            Allocation::Done(ip(17))
        );
        assert_eq!(
            db.allocate_eip(pool(), "111111111111", "eipalloc-2", 1, &[])
                .unwrap(),
            Allocation::QuotaReached
        );
        assert_eq!(
            db.assign_pool_ip(pool(), "111111111111", A, "10.0.0.4")
                .unwrap(),
            Allocation::Done(ip(18))
        );
        assert_eq!(
            db.assign_pool_ip(pool(), "111111111111", A, "10.0.0.4")
                .unwrap(),
            Allocation::Existing(ip(18))
        );
        assert_eq!(db.free_public_ips(pool()).unwrap(), 1);
        assert_eq!(
            db.allocate_eip(pool(), "222222222222", "eipalloc-3", 5, &[])
                .unwrap(),
            Allocation::Done(ip(19))
        );
        assert_eq!(
            db.assign_pool_ip(pool(), "111111111111", B, "10.0.0.5")
                .unwrap(),
            Allocation::PoolEmpty
        );
        assert_eq!(
            db.public_mappings().unwrap(),
            vec![("198.51.100.18".to_string(), "10.0.0.4".to_string())]
        );
    }

    #[test]
    fn associate_replaces_the_pool_address_and_release_waits() {
        let db = setup();
        db.assign_pool_ip(pool(), "111111111111", A, "10.0.0.4")
            .unwrap();
        db.allocate_eip(pool(), "111111111111", "eipalloc-1", 5, &[])
            .unwrap();
        db.allocate_eip(pool(), "111111111111", "eipalloc-2", 5, &[])
            .unwrap();
        assert_eq!(
            db.associate_eip("eipalloc-1", "eipassoc-1", A, "10.0.0.4", false)
                .unwrap(),
            Association::Done {
                released: Some("198.51.100.17".into())
            }
        );
        let e = db.eip("eipalloc-1").unwrap().unwrap();
        assert_eq!(e.instance_id.as_deref(), Some("i-0000000000000000a"));
        assert_eq!(
            db.public_ip_of(A, "10.0.0.4").unwrap().as_deref(),
            Some("198.51.100.18")
        );
        assert_eq!(
            db.associate_eip("eipalloc-1", "eipassoc-2", B, "10.0.0.5", false)
                .unwrap(),
            Association::AlreadyAssociated
        );
        assert_eq!(db.release_eip("eipalloc-1").unwrap(), Release::InUse);
        // A second Elastic IP on the same target takes over; the first stays allocated.
        db.associate_eip("eipalloc-2", "eipassoc-3", A, "10.0.0.4", false)
            .unwrap();
        assert_eq!(db.eip("eipalloc-1").unwrap().unwrap().eni_id, None);
        assert!(db.eip_by_association("eipassoc-3").unwrap().is_some());
        assert!(db.disassociate_eip("eipassoc-3").unwrap());
        assert!(!db.disassociate_eip("eipassoc-3").unwrap());
        assert_eq!(db.release_eip("eipalloc-2").unwrap(), Release::Done);
        assert_eq!(db.release_eip("eipalloc-2").unwrap(), Release::Gone);
        assert_eq!(
            db.associate_eip("eipalloc-2", "eipassoc-4", A, "10.0.0.4", true)
                .unwrap(),
            Association::Gone
        );
        assert_eq!(db.eips("111111111111").unwrap().len(), 1);
    }

    #[test]
    fn instance_release_and_crash_cleanup() {
        let db = setup();
        db.assign_pool_ip(pool(), "111111111111", A, "10.0.0.4")
            .unwrap();
        db.allocate_eip(pool(), "111111111111", "eipalloc-1", 5, &[])
            .unwrap();
        db.associate_eip("eipalloc-1", "eipassoc-1", B, "10.0.0.5", false)
            .unwrap();
        assert_eq!(
            db.release_instance_public_ips("i-0000000000000000a", false)
                .unwrap(),
            (1, vec!["198.51.100.17".to_string()])
        );
        assert_eq!(
            db.release_instance_public_ips("i-0000000000000000b", false)
                .unwrap()
                .0,
            0
        );
        assert_eq!(
            db.release_instance_public_ips("i-0000000000000000b", true)
                .unwrap(),
            (1, Vec::new())
        );
        assert_eq!(db.eip("eipalloc-1").unwrap().unwrap().association_id, None);
        // No instance rows exist, so a pool address left behind is stale.
        db.assign_pool_ip(pool(), "111111111111", A, "10.0.0.4")
            .unwrap();
        assert_eq!(db.release_stale_public_ips().unwrap(), 1);
        assert!(db.public_mappings().unwrap().is_empty());

        assert_eq!(
            db.subnet_map_public_ip("subnet-0000000000000000a").unwrap(),
            None
        );
        assert!(db
            .set_subnet_map_public_ip("subnet-0000000000000000a", true)
            .unwrap());
        assert_eq!(
            db.subnet_map_public_ip("subnet-0000000000000000a").unwrap(),
            Some(true)
        );
        assert!(!db
            .set_subnet_map_public_ip("subnet-0000000000000000f", true)
            .unwrap());
        db.set_eni_map_public_ip(B, true).unwrap();
        assert_eq!(
            db.instance_public_targets("i-0000000000000000b").unwrap(),
            vec![(B.to_string(), "10.0.0.5".to_string())]
        );
        assert!(db
            .instance_public_targets("i-0000000000000000a")
            .unwrap()
            .is_empty());
    }
}
