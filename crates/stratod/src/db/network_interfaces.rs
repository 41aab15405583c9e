//! Network-interface queries beyond an instance's primary ENI: lookups, attachments,
//! secondary addresses, attributes, and the address a DHCP client gets on a bridge. Every
//! check-then-change runs under one lock of the connection, in one transaction.

use rusqlite::{params, OptionalExtension};

use super::network::{eni_row, used_in, Eni, ENI_COLUMNS};
use super::{Db, DbResult};
use crate::lifecycle::State;

/// What became of an attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// Attached.
    Done,
    /// The ENI is attached already (or gone).
    InUse,
    /// The instance is not stopped (its state now).
    NotStopped(String),
    /// Another ENI has that device index.
    IndexTaken,
    /// The instance has the most ENIs it may have.
    Full,
}

/// What became of adding secondary addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddAddresses {
    /// Recorded.
    Done,
    /// One of them is in use in the subnet.
    Taken(String),
    /// The ENI is gone.
    Gone,
}

/// What a DHCP server hands a client: its ENI's primary address and subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The ENI's primary private IPv4.
    pub ip: String,
    /// Its subnet's range, `a.b.c.d/n`.
    pub cidr: String,
}

impl Db {
    /// One ENI.
    pub fn eni(&self, id: &str) -> DbResult<Option<Eni>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {ENI_COLUMNS} FROM network_interfaces WHERE id = ?1"),
                [id],
                eni_row,
            )
            .optional()?)
    }

    /// The ENI of an attachment.
    pub fn eni_by_attachment(&self, attachment_id: &str) -> DbResult<Option<Eni>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {ENI_COLUMNS} FROM network_interfaces WHERE attachment_id = ?1"),
                [attachment_id],
                eni_row,
            )
            .optional()?)
    }

    /// `(ID, account)` of every ENI in this database.
    pub fn eni_owners(&self) -> DbResult<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, owner FROM network_interfaces ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every ENI of an account, oldest first.
    pub fn account_enis(&self, owner: &str) -> DbResult<Vec<Eni>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ENI_COLUMNS} FROM network_interfaces WHERE owner = ?1 ORDER BY created, id"
        ))?;
        let rows = stmt.query_map([owner], eni_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The secondary private addresses of an ENI, in the order they were assigned.
    pub fn secondary_ips(&self, eni_id: &str) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT private_ip FROM network_interface_addresses WHERE eni_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([eni_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Attaches an available ENI to a stopped instance at `device_index`, unless the instance
    /// has `max` ENIs already.
    pub fn attach_eni(
        &self,
        eni_id: &str,
        instance_id: &str,
        device_index: i32,
        attachment_id: &str,
        max: usize,
        now: i64,
    ) -> DbResult<Attach> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let free: Option<bool> = tx
            .query_row(
                "SELECT instance_id IS NULL FROM network_interfaces WHERE id = ?1",
                [eni_id],
                |r| r.get(0),
            )
            .optional()?;
        if free != Some(true) {
            return Ok(Attach::InUse);
        }
        let state: Option<String> = tx
            .query_row(
                "SELECT state FROM instances WHERE id = ?1",
                [instance_id],
                |r| r.get(0),
            )
            .optional()?;
        match state.as_deref() {
            Some("stopped") => {}
            other => {
                return Ok(Attach::NotStopped(
                    other.unwrap_or("terminated").to_string(),
                ))
            }
        }
        let indexes: Vec<i32> = {
            let mut stmt =
                tx.prepare("SELECT device_index FROM network_interfaces WHERE instance_id = ?1")?;
            let rows = stmt.query_map([instance_id], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        if indexes.contains(&device_index) {
            return Ok(Attach::IndexTaken);
        }
        if indexes.len() >= max {
            return Ok(Attach::Full);
        }
        tx.execute(
            "UPDATE network_interfaces SET instance_id = ?2, device_index = ?3, \
             attachment_id = ?4, attach_time = ?5, delete_on_termination = 0 WHERE id = ?1",
            params![eni_id, instance_id, device_index, attachment_id, now],
        )?;
        tx.commit()?;
        Ok(Attach::Done)
    }

    /// Detaches an ENI if its instance is in one of `states` (any state if empty); false if
    /// it is not attached or the instance is in another state.
    pub fn detach_eni(&self, eni_id: &str, states: &[State]) -> DbResult<bool> {
        let states: Vec<&str> = states.iter().map(|s| s.name()).collect();
        let states = serde_json::to_string(&states)?;
        let n = self.conn().execute(
            "UPDATE network_interfaces SET instance_id = NULL, device_index = 0, \
             attachment_id = NULL, attach_time = NULL, delete_on_termination = 0 \
             WHERE id = ?1 AND instance_id IS NOT NULL AND (json_array_length(?2) = 0 \
             OR (SELECT state FROM instances WHERE id = instance_id) \
                IN (SELECT value FROM json_each(?2)))",
            params![eni_id, states],
        )?;
        Ok(n > 0)
    }

    /// Deletes an ENI (and its secondary addresses) unless it is attached; false if it is.
    pub fn delete_eni_if_available(&self, id: &str) -> DbResult<bool> {
        let n = self.conn().execute(
            "DELETE FROM network_interfaces WHERE id = ?1 AND instance_id IS NULL",
            [id],
        )?;
        Ok(n > 0)
    }

    /// Adds secondary addresses to an ENI, all or none.
    pub fn add_secondary_ips(&self, eni_id: &str, ips: &[String]) -> DbResult<AddAddresses> {
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
        let used = used_in(&tx, &subnet)?;
        for (k, ip) in ips.iter().enumerate() {
            if used.contains(ip) || ips[..k].contains(ip) {
                return Ok(AddAddresses::Taken(ip.clone()));
            }
            tx.execute(
                "INSERT INTO network_interface_addresses (eni_id, subnet_id, private_ip) \
                 VALUES (?1, ?2, ?3)",
                params![eni_id, subnet, ip],
            )?;
        }
        tx.commit()?;
        Ok(AddAddresses::Done)
    }

    /// Removes secondary addresses of an ENI.
    pub fn remove_secondary_ips(&self, eni_id: &str, ips: &[String]) -> DbResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for ip in ips {
            tx.execute(
                "DELETE FROM network_interface_addresses WHERE eni_id = ?1 AND private_ip = ?2",
                params![eni_id, ip],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets an ENI's description, source/destination check and attachment's
    /// DeleteOnTermination, each if given.
    pub fn modify_eni(
        &self,
        id: &str,
        description: Option<&str>,
        source_dest_check: Option<bool>,
        delete_on_termination: Option<bool>,
    ) -> DbResult<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE network_interfaces SET description = COALESCE(?2, description), \
             source_dest_check = COALESCE(?3, source_dest_check), \
             delete_on_termination = COALESCE(?4, delete_on_termination) WHERE id = ?1",
            params![id, description, source_dest_check, delete_on_termination],
        )?;
        Ok(())
    }

    /// The lease of the attached ENI with MAC `mac` in a subnet on `bridge`.
    pub fn dhcp_lease(&self, bridge: &str, mac: &str) -> DbResult<Option<Lease>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT n.private_ip, s.cidr FROM network_interfaces n \
                 JOIN subnets s ON s.id = n.subnet_id \
                 WHERE s.bridge = ?1 AND lower(n.mac) = lower(?2) AND n.instance_id IS NOT NULL",
                params![bridge, mac],
                |r| {
                    Ok(Lease {
                        ip: r.get(0)?,
                        cidr: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::instances::tests::sample;
    use crate::db::network::{EniInsert, Subnet};

    fn eni(id: &str, ip: &str, mac: &str) -> Eni {
        Eni {
            mac: mac.into(),
            ..Eni::sample(id, ip)
        }
    }

    fn db() -> Db {
        let db = Db::open_in_memory().unwrap();
        db.insert_subnet(&Subnet::sample()).unwrap();
        db
    }

    #[test]
    fn primary_and_secondary_addresses_share_the_subnet() {
        let db = db();
        let a = eni("eni-0000000000000000a", "10.0.0.4", "02:00:00:00:00:01");
        let sec = vec!["10.0.0.5".to_string()];
        assert_eq!(db.insert_eni_with(&a, &sec).unwrap(), EniInsert::Inserted);
        let b = eni("eni-0000000000000000b", "10.0.0.5", "02:00:00:00:00:02");
        assert_eq!(db.insert_eni(&b).unwrap(), EniInsert::AddressTaken);
        let b = eni("eni-0000000000000000b", "10.0.0.6", "02:00:00:00:00:02");
        let dup = vec!["10.0.0.7".to_string(), "10.0.0.7".to_string()];
        assert_eq!(
            db.insert_eni_with(&b, &dup).unwrap(),
            EniInsert::AddressTaken
        );
        assert!(db.eni(&b.id).unwrap().is_none(), "all or nothing");
        assert_eq!(db.insert_eni(&b).unwrap(), EniInsert::Inserted);
        assert_eq!(
            db.add_secondary_ips(&b.id, &["10.0.0.4".into()]).unwrap(),
            AddAddresses::Taken("10.0.0.4".into())
        );
        assert_eq!(
            db.add_secondary_ips(&b.id, &["10.0.0.8".into(), "10.0.0.9".into()])
                .unwrap(),
            AddAddresses::Done
        );
        assert_eq!(db.secondary_ips(&b.id).unwrap(), ["10.0.0.8", "10.0.0.9"]);
        db.remove_secondary_ips(&b.id, &["10.0.0.8".into()])
            .unwrap();
        assert_eq!(db.secondary_ips(&b.id).unwrap(), ["10.0.0.9"]);
        let mut used = db.used_ips("subnet-0000000000000000a").unwrap();
        used.sort();
        assert_eq!(used, ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.9"]);
        // Deleting the ENI frees its secondary addresses too.
        assert!(db.delete_eni_if_available(&b.id).unwrap());
        assert_eq!(db.used_ips("subnet-0000000000000000a").unwrap().len(), 2);
    }

    #[test]
    fn attachments_follow_the_rules() {
        let db = db();
        let mut inst = sample("i-0000000000000000a", "111111111111");
        inst.state = State::Running;
        db.insert_instance(&inst).unwrap();
        let mut primary = eni("eni-0000000000000000a", "10.0.0.4", "02:00:00:00:00:01");
        primary.instance_id = Some(inst.id.clone());
        primary.attachment_id = Some("eni-attach-0000000000000000a".into());
        db.insert_eni(&primary).unwrap();
        let second = eni("eni-0000000000000000b", "10.0.0.5", "02:00:00:00:00:0B");
        db.insert_eni(&second).unwrap();
        let att = "eni-attach-0000000000000000b";
        assert_eq!(
            db.attach_eni(&second.id, &inst.id, 1, att, 4, 5).unwrap(),
            Attach::NotStopped("running".into())
        );
        db.set_state(&inst.id, &[State::Running], State::Stopped, "")
            .unwrap();
        assert_eq!(
            db.attach_eni(&second.id, &inst.id, 0, att, 4, 5).unwrap(),
            Attach::IndexTaken
        );
        assert_eq!(
            db.attach_eni(&second.id, &inst.id, 1, att, 1, 5).unwrap(),
            Attach::Full
        );
        assert_eq!(
            db.attach_eni(&second.id, &inst.id, 1, att, 4, 5).unwrap(),
            Attach::Done
        );
        assert_eq!(
            db.attach_eni(&second.id, &inst.id, 2, att, 4, 5).unwrap(),
            Attach::InUse
        );
        let got = db.eni_by_attachment(att).unwrap().unwrap();
        assert_eq!((got.id.as_str(), got.device_index), (second.id.as_str(), 1));
        assert_eq!(db.instance_enis(&inst.id).unwrap().len(), 2);
        assert!(!db.delete_eni_if_available(&second.id).unwrap());
        // DHCP finds attached ENIs by MAC, in any case, on their subnet's bridge only.
        let lease = db.dhcp_lease("br0", "02:00:00:00:00:0b").unwrap().unwrap();
        assert_eq!(lease.ip, "10.0.0.5");
        assert!(db.dhcp_lease("br1", "02:00:00:00:00:0b").unwrap().is_none());
        db.set_state(&inst.id, &[State::Stopped], State::Pending, "")
            .unwrap();
        assert!(!db.detach_eni(&second.id, &[State::Stopped]).unwrap());
        assert!(db.detach_eni(&second.id, &[]).unwrap());
        assert!(db.dhcp_lease("br0", "02:00:00:00:00:0b").unwrap().is_none());
        assert!(db.delete_eni_if_available(&second.id).unwrap());
    }
}
