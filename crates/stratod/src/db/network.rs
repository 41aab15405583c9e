//! VPC, subnet and network-interface rows.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::{Db, DbResult};
use crate::db::instances::Tag;

/// A VPC: an address range with a bridge of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    /// `vpc-…`
    pub id: String,
    /// Owning account; empty for the default VPC, which every account of the host shares.
    pub owner: String,
    /// `a.b.c.d/n`.
    pub cidr: String,
    /// The default VPC.
    pub is_default: bool,
    /// The host bridge device.
    pub bridge: String,
    /// `available`.
    pub state: String,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Unix seconds.
    pub created: i64,
}

/// A subnet: an address range on its VPC's bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// `subnet-…`
    pub id: String,
    /// `vpc-…`
    pub vpc_id: String,
    /// Availability zone.
    pub az: String,
    /// `a.b.c.d/n`.
    pub cidr: String,
    /// The VPC's bridge device.
    pub bridge: String,
    /// The AZ's default subnet.
    pub is_default: bool,
}

/// What [`Db::insert_subnet_unless`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubnetInsert {
    /// The subnet is recorded.
    Done,
    /// This subnet is in the way.
    Conflict(Subnet),
    /// The VPC is gone.
    NoVpc,
}

/// A network interface (ENI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eni {
    /// `eni-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// Subnet.
    pub subnet_id: String,
    /// Instance it is attached to.
    pub instance_id: Option<String>,
    /// 0 for the primary interface.
    pub device_index: i32,
    /// Primary private IPv4.
    pub private_ip: String,
    /// MAC address.
    pub mac: String,
    /// Host tap device.
    pub tap: String,
    /// Description.
    pub description: String,
    /// `eni-attach-…` while attached.
    pub attachment_id: Option<String>,
    /// When it was attached (Unix seconds).
    pub attach_time: Option<i64>,
    /// Deleted when its instance terminates (true for primaries).
    pub delete_on_termination: bool,
    /// Source/destination checking (stored; the host does not route).
    pub source_dest_check: bool,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Unix seconds.
    pub created: i64,
}

#[cfg(test)]
impl Subnet {
    /// `subnet-0000000000000000a` (10.0.0.0/24 on `br0`) in `vpc-0000000000000000a`, for tests.
    pub(crate) fn sample() -> Subnet {
        Subnet {
            id: "subnet-0000000000000000a".into(),
            vpc_id: "vpc-0000000000000000a".into(),
            az: "home-1a".into(),
            cidr: "10.0.0.0/24".into(),
            bridge: "br0".into(),
            is_default: false,
        }
    }
}

#[cfg(test)]
impl Eni {
    /// A detached ENI in `subnet-0000000000000000a` for tests; struct update syntax fills
    /// in what a test cares about.
    pub(crate) fn sample(id: &str, ip: &str) -> Eni {
        Eni {
            id: id.into(),
            owner: "111111111111".into(),
            subnet_id: "subnet-0000000000000000a".into(),
            instance_id: None,
            device_index: 0,
            private_ip: ip.into(),
            mac: "02:00:00:00:00:01".into(),
            tap: "tap0".into(),
            description: String::new(),
            attachment_id: None,
            attach_time: None,
            delete_on_termination: false,
            source_dest_check: true,
            tags: vec![],
            created: 0,
        }
    }
}

/// What became of an ENI insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EniInsert {
    /// Recorded.
    Inserted,
    /// Its address was taken meanwhile (pick another).
    AddressTaken,
    /// Its subnet was deleted meanwhile.
    SubnetGone,
}

/// The private addresses in use in a subnet, through `conn` (a transaction or not).
pub(crate) fn used_in(conn: &rusqlite::Connection, subnet_id: &str) -> DbResult<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT private_ip FROM network_interfaces WHERE subnet_id = ?1 \
         UNION ALL SELECT private_ip FROM network_interface_addresses WHERE subnet_id = ?1",
    )?;
    let rows = stmt.query_map([subnet_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn subnet_row(r: &Row<'_>) -> rusqlite::Result<Subnet> {
    Ok(Subnet {
        id: r.get(0)?,
        vpc_id: r.get(1)?,
        az: r.get(2)?,
        cidr: r.get(3)?,
        bridge: r.get(4)?,
        is_default: r.get(5)?,
    })
}

const VPC_COLUMNS: &str = "id, owner, cidr, is_default, bridge, state, tags, created";

fn vpc_row(r: &Row<'_>) -> rusqlite::Result<Vpc> {
    Ok(Vpc {
        id: r.get(0)?,
        owner: r.get(1)?,
        cidr: r.get(2)?,
        is_default: r.get(3)?,
        bridge: r.get(4)?,
        state: r.get(5)?,
        tags: super::json_col(r, 6)?,
        created: r.get(7)?,
    })
}

pub(crate) fn eni_row(r: &Row<'_>) -> rusqlite::Result<Eni> {
    Ok(Eni {
        id: r.get(0)?,
        owner: r.get(1)?,
        subnet_id: r.get(2)?,
        instance_id: r.get(3)?,
        device_index: r.get(4)?,
        private_ip: r.get(5)?,
        mac: r.get(6)?,
        tap: r.get(7)?,
        description: r.get(8)?,
        attachment_id: r.get(9)?,
        attach_time: r.get(10)?,
        delete_on_termination: r.get(11)?,
        source_dest_check: r.get(12)?,
        tags: super::json_col(r, 13)?,
        created: r.get(14)?,
    })
}

pub(crate) const ENI_COLUMNS: &str =
    "id, owner, subnet_id, instance_id, device_index, private_ip, \
     mac, tap, description, attachment_id, attach_time, delete_on_termination, \
     source_dest_check, tags, created";

impl Db {
    /// Records a VPC.
    pub fn insert_vpc(&self, v: &Vpc) -> DbResult<()> {
        self.conn().execute(
            &format!("INSERT INTO vpcs ({VPC_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
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

    /// Every VPC, the default first.
    pub fn vpcs(&self) -> DbResult<Vec<Vpc>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {VPC_COLUMNS} FROM vpcs ORDER BY is_default DESC, created, id"
        ))?;
        let rows = stmt.query_map([], vpc_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One VPC.
    pub fn vpc(&self, id: &str) -> DbResult<Option<Vpc>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {VPC_COLUMNS} FROM vpcs WHERE id = ?1"),
                [id],
                vpc_row,
            )
            .optional()?)
    }

    /// Deletes a VPC unless a subnet or a security group other than a default one is in
    /// it (false then); its default groups go with it.
    pub fn delete_vpc_if_empty(&self, id: &str) -> DbResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM vpcs WHERE id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM subnets WHERE vpc_id = ?1) \
             AND NOT EXISTS (SELECT 1 FROM security_groups \
                             WHERE vpc_id = ?1 AND name != 'default')",
            [id],
        )?;
        if n > 0 {
            // Rules go with their groups (ON DELETE CASCADE).
            tx.execute("DELETE FROM security_groups WHERE vpc_id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// Records a subnet unless its VPC is gone or `conflicts` says an existing subnet is
    /// in the way. Checks and insert happen under one lock of the connection, so two
    /// concurrent CreateSubnets cannot both take a range, nor a DeleteVpc slip in between.
    pub fn insert_subnet_unless(
        &self,
        s: &Subnet,
        conflicts: impl Fn(&Subnet) -> bool,
    ) -> DbResult<SubnetInsert> {
        let conn = self.conn();
        let vpc: Option<String> = conn
            .query_row("SELECT id FROM vpcs WHERE id = ?1", [&s.vpc_id], |r| {
                r.get(0)
            })
            .optional()?;
        if vpc.is_none() {
            return Ok(SubnetInsert::NoVpc);
        }
        let existing = {
            let mut stmt =
                conn.prepare("SELECT id, vpc_id, az, cidr, bridge, is_default FROM subnets")?;
            let rows = stmt.query_map([], subnet_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        if let Some(other) = existing.into_iter().find(|o| conflicts(o)) {
            return Ok(SubnetInsert::Conflict(other));
        }
        conn.execute(
            "INSERT INTO subnets (id, vpc_id, az, cidr, bridge, is_default) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![s.id, s.vpc_id, s.az, s.cidr, s.bridge, s.is_default],
        )?;
        Ok(SubnetInsert::Done)
    }

    /// Deletes a subnet unless a network interface is in it; false if one is.
    pub fn delete_subnet_if_unused(&self, id: &str) -> DbResult<bool> {
        let n = self.conn().execute(
            "DELETE FROM subnets WHERE id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM network_interfaces WHERE subnet_id = ?1)",
            [id],
        )?;
        Ok(n > 0)
    }

    /// Records a subnet.
    pub fn insert_subnet(&self, s: &Subnet) -> DbResult<()> {
        self.conn().execute(
            "INSERT INTO subnets (id, vpc_id, az, cidr, bridge, is_default) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![s.id, s.vpc_id, s.az, s.cidr, s.bridge, s.is_default],
        )?;
        Ok(())
    }

    /// Every subnet.
    pub fn subnets(&self) -> DbResult<Vec<Subnet>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, vpc_id, az, cidr, bridge, is_default FROM subnets ORDER BY az, id",
        )?;
        let rows = stmt.query_map([], subnet_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One subnet.
    pub fn subnet(&self, id: &str) -> DbResult<Option<Subnet>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, vpc_id, az, cidr, bridge, is_default FROM subnets WHERE id = ?1",
                [id],
                subnet_row,
            )
            .optional()?)
    }

    /// Records an ENI, unless its address was taken in the subnet meanwhile (a concurrent
    /// launch won it: the caller picks another) or the subnet is gone.
    pub fn insert_eni(&self, e: &Eni) -> DbResult<EniInsert> {
        self.insert_eni_with(e, &[])
    }

    /// Records an ENI with secondary addresses. The subnet check, the address checks (primary
    /// and secondary addresses share one space per subnet) and the inserts happen in one
    /// transaction under the connection's lock, so that a DeleteSubnet or another ENI cannot
    /// slip in between.
    pub fn insert_eni_with(&self, e: &Eni, secondary: &[String]) -> DbResult<EniInsert> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let subnet: Option<String> = tx
            .query_row(
                "SELECT id FROM subnets WHERE id = ?1",
                [&e.subnet_id],
                |r| r.get(0),
            )
            .optional()?;
        if subnet.is_none() {
            return Ok(EniInsert::SubnetGone);
        }
        let used = used_in(&tx, &e.subnet_id)?;
        let mut wanted = vec![&e.private_ip];
        wanted.extend(secondary);
        for (k, ip) in wanted.iter().enumerate() {
            if used.contains(ip) || wanted[..k].contains(ip) {
                return Ok(EniInsert::AddressTaken);
            }
        }
        let res = tx.execute(
            &format!(
                "INSERT INTO network_interfaces ({ENI_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ),
            params![
                e.id,
                e.owner,
                e.subnet_id,
                e.instance_id,
                e.device_index,
                e.private_ip,
                e.mac,
                e.tap,
                e.description,
                e.attachment_id,
                e.attach_time,
                e.delete_on_termination,
                e.source_dest_check,
                serde_json::to_string(&e.tags)?,
                e.created
            ],
        );
        match res {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Ok(EniInsert::AddressTaken);
            }
            Err(err) => return Err(err.into()),
        }
        for ip in secondary {
            tx.execute(
                "INSERT INTO network_interface_addresses (eni_id, subnet_id, private_ip) \
                 VALUES (?1, ?2, ?3)",
                params![e.id, e.subnet_id, ip],
            )?;
        }
        tx.commit()?;
        Ok(EniInsert::Inserted)
    }

    /// The private addresses in use in a subnet, primary and secondary.
    pub fn used_ips(&self, subnet_id: &str) -> DbResult<Vec<String>> {
        used_in(&self.conn(), subnet_id)
    }

    /// An instance's ENIs, primary first.
    pub fn instance_enis(&self, instance_id: &str) -> DbResult<Vec<Eni>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ENI_COLUMNS} FROM network_interfaces WHERE instance_id = ?1 \
             ORDER BY device_index"
        ))?;
        let rows = stmt.query_map([instance_id], eni_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The ENI whose address `ip` (primary or secondary) is on a subnet of `bridge`: who is
    /// calling the metadata service (anti-spoofing rules keep a guest to its own addresses).
    pub fn eni_on_bridge(&self, bridge: &str, ip: &str) -> DbResult<Option<Eni>> {
        let cols = ENI_COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {cols} FROM network_interfaces e JOIN subnets s ON s.id = e.subnet_id \
                     WHERE s.bridge = ?1 AND (e.private_ip = ?2 OR EXISTS (SELECT 1 FROM \
                     network_interface_addresses a WHERE a.eni_id = e.id AND a.private_ip = ?2))"
                ),
                [bridge, ip],
                eni_row,
            )
            .optional()?)
    }

    /// Removes an ENI row.
    pub fn delete_eni(&self, id: &str) -> DbResult<()> {
        self.conn()
            .execute("DELETE FROM network_interfaces WHERE id = ?1", [id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eni_inserts_race_safely_with_addresses_and_subnet_deletion() {
        let db = Db::open_in_memory().unwrap();
        db.insert_subnet(&Subnet::sample()).unwrap();
        let eni = Eni::sample;
        let a = eni("eni-0000000000000000a", "10.0.0.4");
        assert_eq!(db.insert_eni(&a).unwrap(), EniInsert::Inserted);
        let b = eni("eni-0000000000000000b", "10.0.0.4");
        assert_eq!(db.insert_eni(&b).unwrap(), EniInsert::AddressTaken);
        db.conn()
            .execute(
                "DELETE FROM subnets WHERE id = 'subnet-0000000000000000a'",
                [],
            )
            .unwrap();
        let c = eni("eni-0000000000000000c", "10.0.0.5");
        assert_eq!(db.insert_eni(&c).unwrap(), EniInsert::SubnetGone);
    }
}
