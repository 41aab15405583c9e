//! The rows the region's network records (`cloud::network::region`) are mirrored into:
//! upserts of VPCs, subnets and security groups with their rules, and each VPC's VNI as the
//! region allocated it.

use rusqlite::{params, OptionalExtension};

use super::network::{Subnet, SubnetInsert, Vpc};
use super::security_groups::{SecurityGroup, SgRule};
use super::{Db, DbResult};

impl Db {
    /// The IDs of every security group.
    pub fn security_group_ids(&self) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM security_groups ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes a group and makes `rules` its rules, in one transaction; whether its rules
    /// changed (the firewall must follow then).
    pub fn upsert_security_group(&self, g: &SecurityGroup, rules: &[SgRule]) -> DbResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO security_groups (id, owner, vpc_id, name, description, tags, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, vpc_id = excluded.vpc_id, \
             name = excluded.name, description = excluded.description, tags = excluded.tags",
            params![
                g.id,
                g.owner,
                g.vpc_id,
                g.name,
                g.description,
                serde_json::to_string(&g.tags)?,
                g.created
            ],
        )?;
        let have: Vec<SgRule> = {
            let mut stmt = tx.prepare(
                "SELECT egress, protocol, from_port, to_port, cidr, peer_group \
                 FROM security_group_rules WHERE group_id = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map([&g.id], |r| {
                Ok(SgRule {
                    egress: r.get(0)?,
                    protocol: r.get(1)?,
                    from_port: r.get(2)?,
                    to_port: r.get(3)?,
                    cidr: r.get(4)?,
                    peer_group: r.get(5)?,
                })
            })?;
            rows.collect::<Result<_, _>>()?
        };
        if have == rules {
            tx.commit()?;
            return Ok(false);
        }
        tx.execute(
            "DELETE FROM security_group_rules WHERE group_id = ?1",
            [&g.id],
        )?;
        for r in rules {
            tx.execute(
                "INSERT OR IGNORE INTO security_group_rules \
                 (group_id, egress, protocol, from_port, to_port, cidr, peer_group) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    g.id,
                    r.egress,
                    r.protocol,
                    r.from_port,
                    r.to_port,
                    r.cidr,
                    r.peer_group
                ],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// The IDs of the VPCs the region holds: all but a host's own default VPC.
    pub fn region_vpc_ids(&self) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id FROM vpcs WHERE is_default = 0 OR region_default = 1 ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The IDs of the subnets of the VPCs the region holds.
    pub fn region_subnet_ids(&self) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.id FROM subnets s JOIN vpcs v ON v.id = s.vpc_id \
             WHERE v.is_default = 0 OR v.region_default = 1 ORDER BY s.id",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes a VPC (its ID's row replaced, tags and all).
    pub fn upsert_vpc(&self, v: &Vpc) -> DbResult<()> {
        self.conn().execute(
            "INSERT INTO vpcs (id, owner, cidr, is_default, bridge, state, tags, created) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, cidr = excluded.cidr, \
             state = excluded.state, tags = excluded.tags",
            params![
                v.id,
                v.owner,
                v.cidr,
                v.is_default,
                v.bridge,
                v.state,
                serde_json::to_string(&v.tags)?,
                v.created
            ],
        )?;
        Ok(())
    }

    /// Writes a subnet unless its VPC is missing or another subnet (`conflicts`) is in the
    /// way; a row of the same ID is left as it is (a subnet's range never changes).
    pub fn upsert_subnet_unless(
        &self,
        s: &Subnet,
        conflicts: impl Fn(&Subnet) -> bool,
    ) -> DbResult<SubnetInsert> {
        if self.subnet(&s.id)?.is_some() {
            return Ok(SubnetInsert::Done);
        }
        self.insert_subnet_unless(s, |o| o.id != s.id && conflicts(o))
    }

    /// The VNI the region allocated to a VPC.
    pub fn vpc_vni(&self, vpc_id: &str) -> DbResult<Option<u32>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT vni FROM vpc_vnis WHERE vpc_id = ?1",
                [vpc_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records the VNI the region allocated to a VPC.
    pub fn set_vpc_vni(&self, vpc_id: &str, vni: u32) -> DbResult<()> {
        self.conn().execute(
            "INSERT INTO vpc_vnis (vpc_id, vni) VALUES (?1, ?2) \
             ON CONFLICT (vpc_id) DO UPDATE SET vni = excluded.vni",
            params![vpc_id, vni],
        )?;
        Ok(())
    }

    /// Forgets a VPC's VNI (the VPC is gone).
    pub fn drop_vpc_vni(&self, vpc_id: &str) -> DbResult<()> {
        self.conn()
            .execute("DELETE FROM vpc_vnis WHERE vpc_id = ?1", [vpc_id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_upsert_with_their_rules() {
        let db = Db::open_in_memory().unwrap();
        let g = SecurityGroup {
            id: "sg-1".into(),
            owner: "1".into(),
            vpc_id: "vpc-1".into(),
            name: "web".into(),
            description: "d".into(),
            tags: vec![],
            created: 1,
        };
        let icmp = SgRule {
            egress: false,
            protocol: "icmp".into(),
            from_port: -1,
            to_port: -1,
            cidr: "10.0.0.0/24".into(),
            peer_group: String::new(),
        };
        assert!(!db.upsert_security_group(&g, &[]).unwrap(), "no rules yet");
        assert!(db
            .upsert_security_group(&g, std::slice::from_ref(&icmp))
            .unwrap());
        assert!(!db
            .upsert_security_group(&g, std::slice::from_ref(&icmp))
            .unwrap());
        assert_eq!(db.security_group_rules("sg-1").unwrap(), [icmp]);
        assert!(db.upsert_security_group(&g, &[]).unwrap());
        assert!(db.security_group_rules("sg-1").unwrap().is_empty());
        assert_eq!(db.security_group_ids().unwrap(), ["sg-1"]);
        db.set_vpc_vni("vpc-1", 7).unwrap();
        db.set_vpc_vni("vpc-1", 9).unwrap();
        assert_eq!(db.vpc_vni("vpc-1").unwrap(), Some(9));
        db.drop_vpc_vni("vpc-1").unwrap();
        assert_eq!(db.vpc_vni("vpc-1").unwrap(), None);
    }
}
