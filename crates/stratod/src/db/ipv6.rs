//! IPv6 rows: each VPC's /56, each subnet's /64, the IPv6 addresses of network interfaces,
//! and subnets' AssignIpv6AddressOnCreation. Every check-then-insert runs under one lock of
//! the connection, in one transaction, so two concurrent calls cannot take the same block
//! or address.

use rusqlite::{params, OptionalExtension};

use super::network_interfaces::AddAddresses;
use super::{Db, DbResult};

/// A VPC's IPv6 block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcIpv6Block {
    /// `vpc-cidr-assoc-…`
    pub association_id: String,
    /// `vpc-…`
    pub vpc_id: String,
    /// The /56, in canonical form (`2001:db8:0:100::/56`).
    pub cidr: String,
    /// `Amazon` for a block from the host's pool, else the pool the operator named.
    pub pool: String,
}

/// A subnet's IPv6 block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetIpv6Block {
    /// `subnet-cidr-assoc-…`
    pub association_id: String,
    /// `subnet-…`
    pub subnet_id: String,
    /// `vpc-…`
    pub vpc_id: String,
    /// The /64, in canonical form.
    pub cidr: String,
}

/// What became of a block insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockInsert {
    /// Recorded, with this block.
    Done(String),
    /// The VPC or subnet has a block already.
    HasOne,
    /// The VPC or subnet is gone (or, for a subnet, its VPC's block).
    Gone,
    /// The chooser refused: the block is taken or none is free.
    Refused(String),
}

fn vpc_block_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VpcIpv6Block> {
    Ok(VpcIpv6Block {
        association_id: r.get(0)?,
        vpc_id: r.get(1)?,
        cidr: r.get(2)?,
        pool: r.get(3)?,
    })
}

fn subnet_block_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SubnetIpv6Block> {
    Ok(SubnetIpv6Block {
        association_id: r.get(0)?,
        subnet_id: r.get(1)?,
        vpc_id: r.get(2)?,
        cidr: r.get(3)?,
    })
}

const VPC_BLOCK: &str = "SELECT association_id, vpc_id, cidr, pool FROM vpc_ipv6_blocks";
const SUBNET_BLOCK: &str = "SELECT association_id, subnet_id, vpc_id, cidr FROM subnet_ipv6_blocks";

impl Db {
    /// Every VPC's IPv6 block.
    pub fn vpc_ipv6_blocks(&self) -> DbResult<Vec<VpcIpv6Block>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("{VPC_BLOCK} ORDER BY cidr"))?;
        let rows = stmt.query_map([], vpc_block_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The IPv6 block of a VPC.
    pub fn vpc_ipv6_block(&self, vpc_id: &str) -> DbResult<Option<VpcIpv6Block>> {
        Ok(self
            .conn()
            .query_row(
                &format!("{VPC_BLOCK} WHERE vpc_id = ?1"),
                [vpc_id],
                vpc_block_row,
            )
            .optional()?)
    }

    /// A VPC block by its association ID.
    pub fn vpc_ipv6_association(&self, association_id: &str) -> DbResult<Option<VpcIpv6Block>> {
        Ok(self
            .conn()
            .query_row(
                &format!("{VPC_BLOCK} WHERE association_id = ?1"),
                [association_id],
                vpc_block_row,
            )
            .optional()?)
    }

    /// Gives a VPC the block `choose` picks from every block recorded (it refuses with its
    /// reason), unless the VPC has one or is gone.
    pub fn insert_vpc_ipv6_block(
        &self,
        vpc_id: &str,
        association_id: &str,
        pool: &str,
        choose: impl FnOnce(&[String]) -> Result<String, String>,
    ) -> DbResult<BlockInsert> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: Option<String> = tx
            .query_row("SELECT id FROM vpcs WHERE id = ?1", [vpc_id], |r| r.get(0))
            .optional()?;
        if exists.is_none() {
            return Ok(BlockInsert::Gone);
        }
        let has: Option<String> = tx
            .query_row(
                "SELECT cidr FROM vpc_ipv6_blocks WHERE vpc_id = ?1",
                [vpc_id],
                |r| r.get(0),
            )
            .optional()?;
        if has.is_some() {
            return Ok(BlockInsert::HasOne);
        }
        let taken: Vec<String> = {
            let mut stmt = tx.prepare("SELECT cidr FROM vpc_ipv6_blocks")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let cidr = match choose(&taken) {
            Ok(c) => c,
            Err(why) => return Ok(BlockInsert::Refused(why)),
        };
        tx.execute(
            "INSERT INTO vpc_ipv6_blocks (association_id, vpc_id, cidr, pool) \
             VALUES (?1, ?2, ?3, ?4)",
            params![association_id, vpc_id, cidr, pool],
        )?;
        tx.commit()?;
        Ok(BlockInsert::Done(cidr))
    }

    /// Removes a VPC's block unless one of its subnets still has a block; false then.
    pub fn delete_vpc_ipv6_block(&self, association_id: &str) -> DbResult<bool> {
        let n = self.conn().execute(
            "DELETE FROM vpc_ipv6_blocks WHERE association_id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM subnet_ipv6_blocks s WHERE s.vpc_id = vpc_ipv6_blocks.vpc_id)",
            [association_id],
        )?;
        Ok(n > 0)
    }

    /// Every subnet's IPv6 block.
    pub fn subnet_ipv6_blocks(&self) -> DbResult<Vec<SubnetIpv6Block>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("{SUBNET_BLOCK} ORDER BY cidr"))?;
        let rows = stmt.query_map([], subnet_block_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The IPv6 block of a subnet.
    pub fn subnet_ipv6_block(&self, subnet_id: &str) -> DbResult<Option<SubnetIpv6Block>> {
        Ok(self
            .conn()
            .query_row(
                &format!("{SUBNET_BLOCK} WHERE subnet_id = ?1"),
                [subnet_id],
                subnet_block_row,
            )
            .optional()?)
    }

    /// A subnet block by its association ID.
    pub fn subnet_ipv6_association(
        &self,
        association_id: &str,
    ) -> DbResult<Option<SubnetIpv6Block>> {
        Ok(self
            .conn()
            .query_row(
                &format!("{SUBNET_BLOCK} WHERE association_id = ?1"),
                [association_id],
                subnet_block_row,
            )
            .optional()?)
    }

    /// Gives a subnet the /64 `cidr` unless the subnet has one, the subnet or its VPC's
    /// block is gone (or is no longer `vpc_cidr`), or another subnet has it.
    pub fn insert_subnet_ipv6_block(
        &self,
        block: &SubnetIpv6Block,
        vpc_cidr: &str,
    ) -> DbResult<BlockInsert> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let subnet: Option<String> = tx
            .query_row(
                "SELECT vpc_id FROM subnets WHERE id = ?1",
                [&block.subnet_id],
                |r| r.get(0),
            )
            .optional()?;
        let parent: Option<String> = tx
            .query_row(
                "SELECT cidr FROM vpc_ipv6_blocks WHERE vpc_id = ?1",
                [&block.vpc_id],
                |r| r.get(0),
            )
            .optional()?;
        if subnet.as_deref() != Some(&block.vpc_id) || parent.as_deref() != Some(vpc_cidr) {
            return Ok(BlockInsert::Gone);
        }
        let has: Option<String> = tx
            .query_row(
                "SELECT cidr FROM subnet_ipv6_blocks WHERE subnet_id = ?1",
                [&block.subnet_id],
                |r| r.get(0),
            )
            .optional()?;
        if has.is_some() {
            return Ok(BlockInsert::HasOne);
        }
        let other: Option<String> = tx
            .query_row(
                "SELECT subnet_id FROM subnet_ipv6_blocks WHERE cidr = ?1",
                [&block.cidr],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(o) = other {
            return Ok(BlockInsert::Refused(o));
        }
        tx.execute(
            "INSERT INTO subnet_ipv6_blocks (association_id, subnet_id, vpc_id, cidr) \
             VALUES (?1, ?2, ?3, ?4)",
            params![
                block.association_id,
                block.subnet_id,
                block.vpc_id,
                block.cidr
            ],
        )?;
        tx.commit()?;
        Ok(BlockInsert::Done(block.cidr.clone()))
    }

    /// Removes a subnet's block unless an interface holds an address of it; false then.
    pub fn delete_subnet_ipv6_block(&self, association_id: &str) -> DbResult<bool> {
        let n = self.conn().execute(
            "DELETE FROM subnet_ipv6_blocks WHERE association_id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM network_interface_ipv6 a \
              WHERE a.subnet_id = subnet_ipv6_blocks.subnet_id)",
            [association_id],
        )?;
        Ok(n > 0)
    }

    /// Whether launches into a subnet get an IPv6 address by default.
    pub fn subnet_assigns_ipv6(&self, subnet_id: &str) -> DbResult<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT assign_ipv6_on_creation FROM subnets WHERE id = ?1",
                [subnet_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Sets a subnet's AssignIpv6AddressOnCreation.
    pub fn set_subnet_assigns_ipv6(&self, subnet_id: &str, on: bool) -> DbResult<()> {
        self.conn().execute(
            "UPDATE subnets SET assign_ipv6_on_creation = ?2 WHERE id = ?1",
            params![subnet_id, on],
        )?;
        Ok(())
    }

    /// The IPv6 addresses of an ENI, in the order they were assigned.
    pub fn eni_ipv6(&self, eni_id: &str) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT address FROM network_interface_ipv6 WHERE eni_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([eni_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The IPv6 addresses in use in a subnet.
    pub fn used_ipv6(&self, subnet_id: &str) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT address FROM network_interface_ipv6 WHERE subnet_id = ?1")?;
        let rows = stmt.query_map([subnet_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds IPv6 addresses to an ENI, all or none, unless it would then have more than
    /// `max` (`Taken` with an empty address then).
    pub fn add_eni_ipv6(
        &self,
        eni_id: &str,
        addrs: &[String],
        max: usize,
    ) -> DbResult<AddAddresses> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let subnet: Option<String> = tx
            .query_row(
                "SELECT subnet_id FROM network_interfaces WHERE id = ?1",
                [eni_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(subnet) = subnet else {
            return Ok(AddAddresses::Gone);
        };
        let have: i64 = tx.query_row(
            "SELECT count(*) FROM network_interface_ipv6 WHERE eni_id = ?1",
            [eni_id],
            |r| r.get(0),
        )?;
        if usize::try_from(have)
            .unwrap_or(usize::MAX)
            .saturating_add(addrs.len())
            > max
        {
            return Ok(AddAddresses::Taken(String::new()));
        }
        for a in addrs {
            let taken: Option<String> = tx
                .query_row(
                    "SELECT eni_id FROM network_interface_ipv6 WHERE subnet_id = ?1 AND address = ?2",
                    params![subnet, a],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Ok(AddAddresses::Taken(a.clone()));
            }
            tx.execute(
                "INSERT INTO network_interface_ipv6 (eni_id, subnet_id, address) \
                 VALUES (?1, ?2, ?3)",
                params![eni_id, subnet, a],
            )?;
        }
        tx.commit()?;
        Ok(AddAddresses::Done)
    }

    /// Removes IPv6 addresses of an ENI.
    pub fn remove_eni_ipv6(&self, eni_id: &str, addrs: &[String]) -> DbResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for a in addrs {
            tx.execute(
                "DELETE FROM network_interface_ipv6 WHERE eni_id = ?1 AND address = ?2",
                params![eni_id, a],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The IPv6 blocks of the subnets on `bridge` (what the router advertises on it).
    pub fn bridge_ipv6_blocks(&self, bridge: &str) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT b.cidr FROM subnet_ipv6_blocks b JOIN subnets s ON s.id = b.subnet_id \
             WHERE s.bridge = ?1 ORDER BY b.cidr",
        )?;
        let rows = stmt.query_map([bridge], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The attached ENI with MAC `mac` (any case) in a subnet on `bridge`: its ID, its
    /// instance's, and its IPv6 addresses (what DHCPv6 hands out).
    pub fn dhcp6_lease(&self, bridge: &str, mac: &str) -> DbResult<Option<Ipv6Lease>> {
        let found: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT n.id, n.instance_id FROM network_interfaces n \
                 JOIN subnets s ON s.id = n.subnet_id \
                 WHERE s.bridge = ?1 AND lower(n.mac) = lower(?2) AND n.instance_id IS NOT NULL",
                params![bridge, mac],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((eni_id, instance_id)) = found else {
            return Ok(None);
        };
        let addrs = self.eni_ipv6(&eni_id)?;
        Ok(Some(Ipv6Lease {
            eni_id,
            instance_id,
            addrs,
        }))
    }

    /// The instance whose ENI holds IPv6 address `addr` (canonical form) in a subnet on
    /// `bridge`, if the ENI is attached.
    pub fn instance_at_ipv6(&self, bridge: &str, addr: &str) -> DbResult<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT n.instance_id FROM network_interface_ipv6 a \
                 JOIN network_interfaces n ON n.id = a.eni_id \
                 JOIN subnets s ON s.id = a.subnet_id \
                 WHERE s.bridge = ?1 AND a.address = ?2 AND n.instance_id IS NOT NULL",
                params![bridge, addr],
                |r| r.get(0),
            )
            .optional()?)
    }
}

/// What DHCPv6 reads about a client: [`Db::dhcp6_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Lease {
    /// `eni-…`
    pub eni_id: String,
    /// `i-…`
    pub instance_id: String,
    /// Its IPv6 addresses, in the order they were assigned.
    pub addrs: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::network::{Eni, Subnet, Vpc};

    fn db() -> Db {
        let db = Db::open_in_memory().unwrap();
        db.insert_vpc(&Vpc {
            id: "vpc-0000000000000000a".into(),
            owner: "111111111111".into(),
            cidr: "10.0.0.0/16".into(),
            is_default: false,
            bridge: "br0".into(),
            state: "available".into(),
            tags: vec![],
            created: 0,
        })
        .unwrap();
        db.insert_subnet(&Subnet::sample()).unwrap();
        db
    }

    #[test]
    fn blocks_are_one_per_vpc_and_subnet_and_go_in_order() {
        let db = db();
        let vpc = "vpc-0000000000000000a";
        let ok = |c: &str| {
            let c = c.to_string();
            move |_: &[String]| Ok::<_, String>(c)
        };
        assert_eq!(
            db.insert_vpc_ipv6_block(
                "vpc-0000000000000000f",
                "vpc-cidr-assoc-1",
                "Amazon",
                ok("2001:db8::/56")
            )
            .unwrap(),
            BlockInsert::Gone
        );
        let refused = db
            .insert_vpc_ipv6_block(vpc, "vpc-cidr-assoc-1", "Amazon", |_| Err("full".into()))
            .unwrap();
        assert_eq!(refused, BlockInsert::Refused("full".into()));
        assert_eq!(
            db.insert_vpc_ipv6_block(vpc, "vpc-cidr-assoc-1", "Amazon", ok("2001:db8::/56"))
                .unwrap(),
            BlockInsert::Done("2001:db8::/56".into())
        );
        assert_eq!(
            db.insert_vpc_ipv6_block(vpc, "vpc-cidr-assoc-2", "Amazon", ok("2001:db8:0:100::/56"))
                .unwrap(),
            BlockInsert::HasOne
        );
        let mut sb = SubnetIpv6Block {
            association_id: "subnet-cidr-assoc-1".into(),
            subnet_id: "subnet-0000000000000000a".into(),
            vpc_id: vpc.into(),
            cidr: "2001:db8::/64".into(),
        };
        // The parent block must be the one the caller checked against.
        assert_eq!(
            db.insert_subnet_ipv6_block(&sb, "2001:db8:0:100::/56")
                .unwrap(),
            BlockInsert::Gone
        );
        assert_eq!(
            db.insert_subnet_ipv6_block(&sb, "2001:db8::/56").unwrap(),
            BlockInsert::Done("2001:db8::/64".into())
        );
        sb.association_id = "subnet-cidr-assoc-2".into();
        assert_eq!(
            db.insert_subnet_ipv6_block(&sb, "2001:db8::/56").unwrap(),
            BlockInsert::HasOne
        );
        // The VPC's block stays while a subnet has one.
        assert!(!db.delete_vpc_ipv6_block("vpc-cidr-assoc-1").unwrap());

        let eni = Eni::sample("eni-0000000000000000a", "10.0.0.4");
        db.insert_eni(&eni).unwrap();
        let a = vec!["2001:db8::10".to_string(), "2001:db8::11".to_string()];
        assert_eq!(
            db.add_eni_ipv6(&eni.id, &a, 10).unwrap(),
            AddAddresses::Done
        );
        assert_eq!(
            db.add_eni_ipv6(&eni.id, &a[..1], 10).unwrap(),
            AddAddresses::Taken("2001:db8::10".into())
        );
        assert_eq!(
            db.add_eni_ipv6(&eni.id, &["2001:db8::12".into()], 2)
                .unwrap(),
            AddAddresses::Taken(String::new()),
            "over the limit"
        );
        assert_eq!(db.eni_ipv6(&eni.id).unwrap(), a);
        // What the router and DHCPv6 read: the bridge's /64s; a detached ENI gets nothing.
        assert_eq!(db.bridge_ipv6_blocks("br0").unwrap(), ["2001:db8::/64"]);
        assert!(db.bridge_ipv6_blocks("br1").unwrap().is_empty());
        assert_eq!(db.dhcp6_lease("br0", "02:00:00:00:00:01").unwrap(), None);
        assert_eq!(db.instance_at_ipv6("br0", "2001:db8::10").unwrap(), None);
        assert_eq!(db.used_ipv6("subnet-0000000000000000a").unwrap().len(), 2);
        // The subnet's block stays while addresses of it are in use.
        assert!(!db.delete_subnet_ipv6_block("subnet-cidr-assoc-1").unwrap());
        db.remove_eni_ipv6(&eni.id, &a[..1]).unwrap();
        assert_eq!(db.eni_ipv6(&eni.id).unwrap(), a[1..]);
        // Deleting the ENI frees its addresses.
        assert!(db.delete_eni_if_available(&eni.id).unwrap());
        assert!(db.used_ipv6("subnet-0000000000000000a").unwrap().is_empty());
        assert!(db.delete_subnet_ipv6_block("subnet-cidr-assoc-1").unwrap());
        assert!(db.delete_vpc_ipv6_block("vpc-cidr-assoc-1").unwrap());
        assert!(db.vpc_ipv6_block(vpc).unwrap().is_none());

        assert!(!db.subnet_assigns_ipv6("subnet-0000000000000000a").unwrap());
        db.set_subnet_assigns_ipv6("subnet-0000000000000000a", true)
            .unwrap();
        assert!(db.subnet_assigns_ipv6("subnet-0000000000000000a").unwrap());
    }
}
