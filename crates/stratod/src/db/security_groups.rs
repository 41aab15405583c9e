//! Security group rows: the groups, their rules (one row per protocol, port range and
//! peer, as EC2's security group rules), and which groups each network interface has.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::instances::Tag;
use super::{Db, DbResult};

/// One security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    /// `sg-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// `vpc-…`
    pub vpc_id: String,
    /// Name, unique per owner and VPC.
    pub name: String,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Unix seconds.
    pub created: i64,
}

/// One rule: traffic of a protocol and port range from (ingress) or to (egress) a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SgRule {
    /// Outbound (true) or inbound.
    pub egress: bool,
    /// `tcp`, `udp`, `icmp`, `-1` (all) or another protocol number.
    pub protocol: String,
    /// First port (ICMP: the type); -1 where it does not apply.
    pub from_port: i32,
    /// Last port (ICMP: the code); -1 where it does not apply.
    pub to_port: i32,
    /// The peer block, or empty.
    pub cidr: String,
    /// The peer group, or empty.
    pub peer_group: String,
}

/// A network interface as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniHost {
    /// `eni-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Tap device.
    pub tap: String,
    /// MAC.
    pub mac: String,
    /// Primary private IPv4.
    pub private_ip: String,
    /// Its subnet's bridge.
    pub bridge: String,
    /// Its subnet's VPC.
    pub vpc_id: String,
    /// EC2's source/destination check.
    pub source_dest_check: bool,
}

/// What became of a rules insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesInsert {
    /// All recorded.
    Done,
    /// This one exists already (nothing was recorded).
    Duplicate(SgRule),
    /// The group would pass its per-direction limit (nothing was recorded).
    Limit,
}

/// What became of a group deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupDelete {
    /// Gone.
    Deleted,
    /// A network interface has it, or another group's rule names it.
    InUse,
}

const COLUMNS: &str = "id, owner, vpc_id, name, description, tags, created";
const RULE_COLUMNS: &str = "egress, protocol, from_port, to_port, cidr, peer_group";

fn group_row(r: &Row<'_>) -> rusqlite::Result<SecurityGroup> {
    Ok(SecurityGroup {
        id: r.get(0)?,
        owner: r.get(1)?,
        vpc_id: r.get(2)?,
        name: r.get(3)?,
        description: r.get(4)?,
        tags: super::json_col(r, 5)?,
        created: r.get(6)?,
    })
}

fn rule_row(r: &Row<'_>) -> rusqlite::Result<SgRule> {
    Ok(SgRule {
        egress: r.get(0)?,
        protocol: r.get(1)?,
        from_port: r.get(2)?,
        to_port: r.get(3)?,
        cidr: r.get(4)?,
        peer_group: r.get(5)?,
    })
}

impl Db {
    /// Records a group; `false` when the owner has a group of that name in the VPC.
    pub fn insert_security_group(&self, g: &SecurityGroup) -> DbResult<bool> {
        let n = self.conn().execute(
            &format!(
                "INSERT INTO security_groups ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (owner, vpc_id, name) DO NOTHING"
            ),
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
        Ok(n == 1)
    }

    /// Groups, of one owner or all, oldest first.
    pub fn security_groups(&self, owner: Option<&str>) -> DbResult<Vec<SecurityGroup>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM security_groups WHERE ?1 IS NULL OR owner = ?1 \
             ORDER BY created, id"
        ))?;
        let rows = stmt.query_map([owner], group_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One group by ID, whoever owns it.
    pub fn security_group(&self, id: &str) -> DbResult<Option<SecurityGroup>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM security_groups WHERE id = ?1"),
                [id],
                group_row,
            )
            .optional()?)
    }

    /// One of an owner's groups in a VPC by name.
    pub fn security_group_named(
        &self,
        owner: &str,
        vpc_id: &str,
        name: &str,
    ) -> DbResult<Option<SecurityGroup>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM security_groups \
                     WHERE owner = ?1 AND vpc_id = ?2 AND name = ?3"
                ),
                [owner, vpc_id, name],
                group_row,
            )
            .optional()?)
    }

    /// Deletes a group and its rules unless an ENI has it or another group's rule names it;
    /// the checks and the delete are one transaction.
    pub fn delete_security_group_if_unused(&self, id: &str) -> DbResult<GroupDelete> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let used: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM network_interface_groups WHERE group_id = ?1) \
             OR EXISTS (SELECT 1 FROM security_group_rules \
                        WHERE peer_group = ?1 AND group_id != ?1)",
            [id],
            |r| r.get(0),
        )?;
        if used {
            return Ok(GroupDelete::InUse);
        }
        tx.execute("DELETE FROM security_group_rules WHERE group_id = ?1", [id])?;
        tx.execute("DELETE FROM security_groups WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(GroupDelete::Deleted)
    }

    /// A group's rules in the order they were added.
    pub fn security_group_rules(&self, group_id: &str) -> DbResult<Vec<SgRule>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RULE_COLUMNS} FROM security_group_rules WHERE group_id = ?1 ORDER BY seq"
        ))?;
        let rows = stmt.query_map([group_id], rule_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds rules to a group: all or none, refusing a duplicate and more than `limit` rules
    /// in the rules' direction.
    pub fn insert_security_group_rules(
        &self,
        group_id: &str,
        rules: &[SgRule],
        limit: usize,
    ) -> DbResult<RulesInsert> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for egress in [false, true] {
            let adding = rules.iter().filter(|r| r.egress == egress).count();
            if adding == 0 {
                continue;
            }
            let have: i64 = tx.query_row(
                "SELECT COUNT(*) FROM security_group_rules WHERE group_id = ?1 AND egress = ?2",
                params![group_id, egress],
                |r| r.get(0),
            )?;
            if have as usize + adding > limit {
                return Ok(RulesInsert::Limit);
            }
        }
        for r in rules {
            let res = tx.execute(
                &format!(
                    "INSERT INTO security_group_rules (group_id, {RULE_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    group_id,
                    r.egress,
                    r.protocol,
                    r.from_port,
                    r.to_port,
                    r.cidr,
                    r.peer_group
                ],
            );
            match res {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    return Ok(RulesInsert::Duplicate(r.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit()?;
        Ok(RulesInsert::Done)
    }

    /// Removes rules from a group, all or none: the first rule that is not there, or `None`
    /// when all were removed.
    pub fn delete_security_group_rules(
        &self,
        group_id: &str,
        rules: &[SgRule],
    ) -> DbResult<Option<SgRule>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for r in rules {
            let n = tx.execute(
                "DELETE FROM security_group_rules WHERE group_id = ?1 AND egress = ?2 \
                 AND protocol = ?3 AND from_port = ?4 AND to_port = ?5 AND cidr = ?6 \
                 AND peer_group = ?7",
                params![
                    group_id,
                    r.egress,
                    r.protocol,
                    r.from_port,
                    r.to_port,
                    r.cidr,
                    r.peer_group
                ],
            )?;
            if n == 0 {
                return Ok(Some(r.clone()));
            }
        }
        tx.commit()?;
        Ok(None)
    }

    /// The groups of a network interface, in the order they were given.
    pub fn eni_groups(&self, eni_id: &str) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT group_id FROM network_interface_groups WHERE eni_id = ?1 ORDER BY position",
        )?;
        let rows = stmt.query_map([eni_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces the groups of a network interface; `false` if the interface is gone.
    pub fn set_eni_groups(&self, eni_id: &str, groups: &[String]) -> DbResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM network_interfaces WHERE id = ?1)",
            [eni_id],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(false);
        }
        tx.execute(
            "DELETE FROM network_interface_groups WHERE eni_id = ?1",
            [eni_id],
        )?;
        for (i, g) in groups.iter().enumerate() {
            tx.execute(
                "INSERT INTO network_interface_groups (eni_id, group_id, position) \
                 VALUES (?1, ?2, ?3)",
                params![eni_id, g, i as i64],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// Records the groups an instance shows (those of its primary interface).
    pub fn set_instance_groups(&self, instance_id: &str, groups: &[String]) -> DbResult<()> {
        self.conn().execute(
            "UPDATE instances SET security_groups = ?2 WHERE id = ?1",
            params![instance_id, serde_json::to_string(groups)?],
        )?;
        Ok(())
    }

    /// Every (interface, group) pair.
    pub fn eni_memberships(&self) -> DbResult<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT eni_id, group_id FROM network_interface_groups ORDER BY eni_id, position",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every rule of every group, with its group.
    pub fn all_security_group_rules(&self) -> DbResult<Vec<(String, SgRule)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT group_id, {RULE_COLUMNS} FROM security_group_rules ORDER BY group_id, seq"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                SgRule {
                    egress: r.get(1)?,
                    protocol: r.get(2)?,
                    from_port: r.get(3)?,
                    to_port: r.get(4)?,
                    cidr: r.get(5)?,
                    peer_group: r.get(6)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every network interface with its bridge and VPC.
    pub fn eni_hosts(&self) -> DbResult<Vec<EniHost>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT e.id, e.owner, e.tap, e.mac, e.private_ip, s.bridge, s.vpc_id, \
             e.source_dest_check \
             FROM network_interfaces e JOIN subnets s ON s.id = e.subnet_id ORDER BY e.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(EniHost {
                id: r.get(0)?,
                owner: r.get(1)?,
                tap: r.get(2)?,
                mac: r.get(3)?,
                private_ip: r.get(4)?,
                bridge: r.get(5)?,
                vpc_id: r.get(6)?,
                source_dest_check: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, name: &str) -> SecurityGroup {
        SecurityGroup {
            id: id.into(),
            owner: "111111111111".into(),
            vpc_id: "vpc-1".into(),
            name: name.into(),
            description: "d".into(),
            tags: vec![],
            created: 1,
        }
    }

    fn tcp(port: i32, cidr: &str) -> SgRule {
        SgRule {
            egress: false,
            protocol: "tcp".into(),
            from_port: port,
            to_port: port,
            cidr: cidr.into(),
            peer_group: String::new(),
        }
    }

    #[test]
    fn groups_rules_and_members() {
        let db = Db::open_in_memory().unwrap();
        assert!(db.insert_security_group(&group("sg-a", "web")).unwrap());
        assert!(!db.insert_security_group(&group("sg-b", "web")).unwrap());
        assert!(db.insert_security_group(&group("sg-b", "db")).unwrap());

        let r22 = tcp(22, "10.0.0.0/8");
        assert_eq!(
            db.insert_security_group_rules("sg-a", std::slice::from_ref(&r22), 60)
                .unwrap(),
            RulesInsert::Done
        );
        // A duplicate refuses the whole call.
        assert_eq!(
            db.insert_security_group_rules("sg-a", &[tcp(80, ""), r22.clone()], 60)
                .unwrap(),
            RulesInsert::Duplicate(r22.clone())
        );
        assert_eq!(db.security_group_rules("sg-a").unwrap(), vec![r22.clone()]);
        assert_eq!(
            db.insert_security_group_rules("sg-a", &[tcp(80, ""), tcp(81, "")], 2)
                .unwrap(),
            RulesInsert::Limit
        );
        assert_eq!(
            db.delete_security_group_rules("sg-a", &[tcp(23, "10.0.0.0/8")])
                .unwrap(),
            Some(tcp(23, "10.0.0.0/8"))
        );

        // sg-b's rule names sg-a: sg-a is in use until the rule goes.
        let from_a = SgRule {
            cidr: String::new(),
            peer_group: "sg-a".into(),
            ..tcp(5432, "")
        };
        db.insert_security_group_rules("sg-b", std::slice::from_ref(&from_a), 60)
            .unwrap();
        assert_eq!(
            db.delete_security_group_if_unused("sg-a").unwrap(),
            GroupDelete::InUse
        );
        assert_eq!(
            db.delete_security_group_rules("sg-b", &[from_a]).unwrap(),
            None
        );

        // A member interface keeps it in use; deleting the interface releases it.
        db.insert_subnet(&crate::db::network::Subnet {
            id: "subnet-1".into(),
            vpc_id: "vpc-1".into(),
            az: "home-1a".into(),
            cidr: "10.0.0.0/24".into(),
            bridge: "br0".into(),
            is_default: false,
        })
        .unwrap();
        db.insert_eni(&crate::db::network::Eni {
            id: "eni-1".into(),
            owner: "111111111111".into(),
            subnet_id: "subnet-1".into(),
            instance_id: None,
            device_index: 0,
            private_ip: "10.0.0.4".into(),
            mac: "02:00:00:00:00:01".into(),
            tap: "tap1".into(),
            description: String::new(),
            attachment_id: None,
            attach_time: None,
            delete_on_termination: false,
            source_dest_check: true,
            tags: vec![],
            created: 0,
        })
        .unwrap();
        assert!(db
            .set_eni_groups("eni-1", &["sg-b".into(), "sg-a".into()])
            .unwrap());
        assert!(!db.set_eni_groups("eni-2", &["sg-a".into()]).unwrap());
        assert_eq!(db.eni_groups("eni-1").unwrap(), ["sg-b", "sg-a"]);
        assert_eq!(db.eni_hosts().unwrap()[0].bridge, "br0");
        assert_eq!(
            db.delete_security_group_if_unused("sg-a").unwrap(),
            GroupDelete::InUse
        );
        db.delete_eni("eni-1").unwrap();
        assert!(db.eni_memberships().unwrap().is_empty());
        assert_eq!(
            db.delete_security_group_if_unused("sg-a").unwrap(),
            GroupDelete::Deleted
        );
        assert!(db.security_group_rules("sg-a").unwrap().is_empty());
        assert_eq!(db.security_groups(None).unwrap().len(), 1);
    }
}
