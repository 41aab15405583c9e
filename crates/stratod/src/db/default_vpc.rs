//! A host's default VPC becoming its region's (`cloud::network::region_default`): the rows
//! of the host's own default VPC replaced by the region's, under the region's IDs and on
//! the host's own bridge, and the mark that makes the default VPC one of the region's
//! mirrored VPCs from then on.

use rusqlite::{params, OptionalExtension, Transaction};

use super::network::Vpc;
use super::{Db, DbResult};

/// The region's default VPC as a host adopts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultLayout {
    /// The region's ID of the default VPC.
    pub vpc_id: String,
    /// Its range.
    pub cidr: String,
    /// Its VNI.
    pub vni: u32,
    /// Its default subnets: `(az, id, cidr)`.
    pub subnets: Vec<(String, String, String)>,
}

/// What [`Db::adopt_default_vpc`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// The host's default VPC is the region's now.
    Adopted,
    /// The host's own default VPC is in use (what uses it): it stays the host's own.
    InUse(&'static str),
}

fn count(tx: &Transaction<'_>, sql: &str, id: &str) -> DbResult<i64> {
    Ok(tx.query_row(sql, [id], |r| r.get(0))?)
}

/// What in this host's database keeps its default VPC `id` from being replaced.
fn in_use(tx: &Transaction<'_>, id: &str) -> DbResult<Option<&'static str>> {
    let checks: [(&'static str, &str); 5] = [
        (
            "network interfaces",
            "SELECT COUNT(*) FROM network_interfaces n JOIN subnets s ON s.id = n.subnet_id \
             WHERE s.vpc_id = ?1",
        ),
        (
            "an IPv6 block",
            "SELECT COUNT(*) FROM vpc_ipv6_blocks WHERE vpc_id = ?1",
        ),
        // A group in it that a group elsewhere (or an interface) names.
        (
            "security groups other groups name",
            "SELECT COUNT(*) FROM security_group_rules r JOIN security_groups g \
             ON g.id = r.peer_group WHERE g.vpc_id = ?1 AND r.group_id NOT IN \
             (SELECT id FROM security_groups WHERE vpc_id = ?1)",
        ),
        // The accounts' default groups are made again under the region's ID; a group a
        // user made is not dropped.
        (
            "security groups made there",
            "SELECT COUNT(*) FROM security_groups WHERE vpc_id = ?1 AND name != 'default'",
        ),
        (
            "security groups of interfaces",
            "SELECT COUNT(*) FROM network_interface_groups i JOIN security_groups g \
             ON g.id = i.group_id WHERE g.vpc_id = ?1",
        ),
    ];
    for (what, sql) in checks {
        if count(tx, sql, id)? > 0 {
            return Ok(Some(what));
        }
    }
    Ok(None)
}

impl Db {
    /// Whether VPC `id` is one the region holds: any VPC but a host's own default one.
    pub fn vpc_is_regional(&self, id: &str) -> DbResult<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM vpcs WHERE id = ?1 AND (is_default = 0 OR region_default = 1)",
                [id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Makes `local` (this host's default VPC) the region's `region` default VPC, in one
    /// transaction: its own ID marked when the region's is its own; else, when nothing uses
    /// it, its rows (and its groups, unused) replaced by the region's under the region's
    /// IDs, on its bridge. A default subnet of an AZ the region's lacks stays (in the
    /// region's VPC) unless its range `overlaps` one of the region's.
    pub fn adopt_default_vpc(
        &self,
        local: &Vpc,
        region: &DefaultLayout,
        overlaps: impl Fn(&str, &str) -> bool,
    ) -> DbResult<Adoption> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if local.id == region.vpc_id {
            tx.execute(
                "UPDATE vpcs SET region_default = 1 WHERE id = ?1",
                [&local.id],
            )?;
            set_vni(&tx, &local.id, region.vni)?;
            tx.commit()?;
            return Ok(Adoption::Adopted);
        }
        if let Some(what) = in_use(&tx, &local.id)? {
            return Ok(Adoption::InUse(what));
        }
        let kept: Vec<(String, String, String)> = {
            let mut stmt = tx.prepare("SELECT id, az, cidr FROM subnets WHERE vpc_id = ?1")?;
            let rows = stmt.query_map([&local.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<Vec<(String, String, String)>, _>>()?
                .into_iter()
                .filter(|(_, az, cidr)| {
                    !region
                        .subnets
                        .iter()
                        .any(|(raz, _, rcidr)| raz == az || overlaps(cidr, rcidr))
                })
                .collect()
        };
        tx.execute("DELETE FROM security_groups WHERE vpc_id = ?1", [&local.id])?;
        let all: Vec<String> = {
            let mut stmt = tx.prepare("SELECT id FROM subnets WHERE vpc_id = ?1")?;
            let rows = stmt.query_map([&local.id], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in all.iter().filter(|id| !kept.iter().any(|k| &k.0 == *id)) {
            tx.execute("DELETE FROM subnets WHERE id = ?1", [id])?;
        }
        tx.execute("DELETE FROM vpc_vnis WHERE vpc_id = ?1", [&local.id])?;
        tx.execute("DELETE FROM vpcs WHERE id = ?1", [&local.id])?;
        tx.execute(
            "INSERT INTO vpcs (id, owner, cidr, is_default, bridge, state, tags, created, \
             region_default) VALUES (?1, '', ?2, 1, ?3, 'available', '[]', ?4, 1)",
            params![region.vpc_id, region.cidr, local.bridge, local.created],
        )?;
        tx.execute(
            "UPDATE subnets SET vpc_id = ?1 WHERE vpc_id = ?2",
            params![region.vpc_id, local.id],
        )?;
        for (az, id, cidr) in &region.subnets {
            tx.execute(
                "INSERT INTO subnets (id, vpc_id, az, cidr, bridge, is_default) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 1)",
                params![id, region.vpc_id, az, cidr, local.bridge],
            )?;
        }
        set_vni(&tx, &region.vpc_id, region.vni)?;
        tx.commit()?;
        Ok(Adoption::Adopted)
    }
}

fn set_vni(tx: &Transaction<'_>, vpc_id: &str, vni: u32) -> DbResult<()> {
    tx.execute(
        "INSERT INTO vpc_vnis (vpc_id, vni) VALUES (?1, ?2) \
         ON CONFLICT (vpc_id) DO UPDATE SET vni = excluded.vni",
        params![vpc_id, vni],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::network::Subnet;
    use crate::db::security_groups::SecurityGroup;

    /// The daemon's test (`cloud::network::region_default`).
    fn overlap(a: &str, b: &str) -> bool {
        crate::cloud::network::region_default::cidrs_overlap(a, b)
    }

    fn host_default(db: &Db, id: &str, azs: &[(&str, &str, &str)]) -> Vpc {
        let v = Vpc {
            id: id.into(),
            owner: String::new(),
            cidr: "172.31.0.0/16".into(),
            is_default: true,
            bridge: "strato0".into(),
            state: "available".into(),
            tags: vec![],
            created: 7,
        };
        db.insert_vpc(&v).unwrap();
        for (sid, az, cidr) in azs {
            db.insert_subnet(&Subnet {
                id: sid.to_string(),
                vpc_id: id.into(),
                az: az.to_string(),
                cidr: cidr.to_string(),
                bridge: "strato0".into(),
                is_default: true,
            })
            .unwrap();
        }
        v
    }

    fn layout() -> DefaultLayout {
        DefaultLayout {
            vpc_id: "vpc-r".into(),
            cidr: "172.31.0.0/16".into(),
            vni: 4242,
            subnets: vec![("home-1a".into(), "subnet-ra".into(), "172.31.0.0/20".into())],
        }
    }

    #[test]
    fn an_unused_default_vpc_takes_the_regions_ids() {
        let db = Db::open_in_memory().unwrap();
        let local = host_default(
            &db,
            "vpc-l",
            &[
                ("subnet-la", "home-1a", "172.31.0.0/20"),
                ("subnet-lc", "home-1c", "172.31.32.0/20"),
            ],
        );
        db.insert_security_group(&SecurityGroup {
            id: "sg-l".into(),
            owner: "1".into(),
            vpc_id: "vpc-l".into(),
            name: "default".into(),
            description: "d".into(),
            tags: vec![],
            created: 1,
        })
        .unwrap();
        assert!(!db.vpc_is_regional("vpc-l").unwrap(), "a host's own");
        assert_eq!(
            db.adopt_default_vpc(&local, &layout(), overlap).unwrap(),
            Adoption::Adopted
        );
        let vpcs = db.vpcs().unwrap();
        assert_eq!(vpcs.len(), 1);
        assert_eq!(
            (
                vpcs[0].id.as_str(),
                vpcs[0].bridge.as_str(),
                vpcs[0].is_default
            ),
            ("vpc-r", "strato0", true)
        );
        assert!(db.vpc_is_regional("vpc-r").unwrap());
        assert_eq!(db.vpc_vni("vpc-r").unwrap(), Some(4242));
        assert_eq!(db.vpc_vni("vpc-l").unwrap(), None);
        let subnets: Vec<(String, String, String)> = db
            .subnets()
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.vpc_id, s.bridge))
            .collect();
        // The region's subnet of home-1a replaces the host's; home-1c's stays, moved.
        assert_eq!(
            subnets,
            [
                ("subnet-ra".into(), "vpc-r".into(), "strato0".into()),
                ("subnet-lc".into(), "vpc-r".into(), "strato0".into()),
            ]
        );
        assert!(
            db.security_groups(None).unwrap().is_empty(),
            "its groups go"
        );
        assert!(db.region_vpc_ids().unwrap().contains(&"vpc-r".to_string()));
        assert_eq!(db.region_subnet_ids().unwrap().len(), 2);
    }

    #[test]
    fn a_default_vpc_in_use_stays_the_hosts() {
        let db = Db::open_in_memory().unwrap();
        let local = host_default(&db, "vpc-l", &[("subnet-la", "home-1a", "172.31.0.0/20")]);
        db.conn()
            .execute(
                "INSERT INTO network_interfaces (id, owner, subnet_id, instance_id, \
                 device_index, private_ip, mac, tap, delete_on_termination) VALUES \
                 ('eni-1', '1', 'subnet-la', 'i-1', 0, '172.31.0.4', \
                 '02:00:00:00:00:01', 'stap1', 1)",
                [],
            )
            .unwrap();
        assert_eq!(
            db.adopt_default_vpc(&local, &layout(), overlap).unwrap(),
            Adoption::InUse("network interfaces")
        );
        assert_eq!(db.vpcs().unwrap()[0].id, "vpc-l");
        assert!(db.region_vpc_ids().unwrap().is_empty());
        assert!(db.region_subnet_ids().unwrap().is_empty());
    }

    #[test]
    fn the_regions_own_default_is_marked() {
        let db = Db::open_in_memory().unwrap();
        let mut l = layout();
        let local = host_default(&db, "vpc-r", &[("subnet-ra", "home-1a", "172.31.0.0/20")]);
        l.vni = 7;
        assert_eq!(
            db.adopt_default_vpc(&local, &l, overlap).unwrap(),
            Adoption::Adopted
        );
        assert!(db.vpc_is_regional("vpc-r").unwrap());
        assert_eq!(db.vpc_vni("vpc-r").unwrap(), Some(7));
        assert_eq!(db.subnets().unwrap()[0].id, "subnet-ra");
    }
}
