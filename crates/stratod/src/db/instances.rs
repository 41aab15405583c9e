//! Instance rows.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::{now_s, Db, DbResult};
use crate::lifecycle::State;

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// An instance-store volume (a file in the instance's folder, emptied on stop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStore {
    /// Device name, e.g. `/dev/vdc`.
    pub device: String,
    /// `ephemeralN`.
    pub virtual_name: String,
    /// Size in GiB.
    pub gib: u32,
}

/// Whether IMDSv2 session tokens are optional or required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpTokens {
    /// IMDSv1 requests (without a token) are answered too.
    #[default]
    Optional,
    /// Requests without a valid token get 401.
    Required,
}

/// On or off, as EC2 spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    /// On.
    Enabled,
    /// Off.
    Disabled,
}

/// An instance's metadata service settings (EC2's InstanceMetadataOptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetadataOptions {
    /// IMDSv2 only, or v1 too.
    pub http_tokens: HttpTokens,
    /// IP TTL of the token response (1-64): 1 keeps tokens from leaving the guest.
    pub http_put_response_hop_limit: u8,
    /// Whether the service answers this instance at all.
    pub http_endpoint: Toggle,
    /// Whether the instance's tags are under `meta-data/tags/instance`.
    pub instance_metadata_tags: Toggle,
    /// Whether the service also answers on `[fd00:ec2::254]` (EC2's HttpProtocolIpv6,
    /// off by default; rows from before it read as off through `serde(default)`).
    pub http_protocol_ipv6: Toggle,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            http_tokens: HttpTokens::Optional,
            http_put_response_hop_limit: 1,
            http_endpoint: Toggle::Enabled,
            instance_metadata_tags: Toggle::Disabled,
            http_protocol_ipv6: Toggle::Disabled,
        }
    }
}

/// One instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// `i-…`
    pub id: String,
    /// Owning account.
    pub owner: String,
    /// `r-…`
    pub reservation_id: String,
    /// Index within its launch.
    pub launch_index: i32,
    /// AMI it was launched from.
    pub image_id: String,
    /// Instance type name.
    pub instance_type: String,
    /// vCPUs.
    pub vcpus: u8,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Lifecycle state.
    pub state: State,
    /// Why it is in that state (EC2's StateReason / StateTransitionReason).
    pub state_reason: String,
    /// Unix seconds of the last launch or start.
    pub launch_time: i64,
    /// Availability zone.
    pub az: String,
    /// Subnet.
    pub subnet_id: String,
    /// Security group IDs.
    pub security_groups: Vec<String>,
    /// Key pair name.
    pub key_name: String,
    /// Raw user data.
    pub user_data: Vec<u8>,
    /// `stop` or `terminate`.
    pub shutdown_behavior: String,
    /// Termination protection.
    pub disable_api_termination: bool,
    /// Root device name.
    pub root_device_name: String,
    /// Kernel file (in the AMI's folder).
    pub kernel: String,
    /// Initrd file, if any.
    pub initrd: Option<String>,
    /// The AMI's kernel command line.
    pub boot_args: String,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Instance-store volumes.
    pub instance_store: Vec<InstanceStore>,
    /// PID of the monitor process, while one runs.
    pub vmm_pid: Option<i32>,
    /// Start time of that process (clock ticks after boot, /proc/PID/stat field 22), so that a
    /// reused PID is not mistaken for it.
    pub vmm_start: Option<i64>,
    /// Unix seconds when it reached `terminated`.
    pub terminated_at: Option<i64>,
    /// The RunInstances idempotency token.
    pub client_token: String,
    /// Placement group ID (`pg-…`); empty outside groups.
    pub placement_group: String,
    /// Partition of a partition group (1-7); 0 otherwise.
    pub partition_number: i32,
    /// The rack the scheduler chose (config `racks`); empty outside groups.
    pub rack: String,
    /// The OpenSSH public key of the key pair it was launched with; empty without one.
    /// Kept with the instance, as EC2 keeps it in the guest, so that deleting the key pair
    /// changes nothing for instances already launched.
    pub public_key: String,
    /// Metadata service settings.
    pub metadata_options: MetadataOptions,
    /// EnaSupport: enhanced networking (the enhanced, multiqueue virtio-net device),
    /// inherited from the image at launch.
    pub ena_support: bool,
}

const COLUMNS: &str = "id, owner, reservation_id, launch_index, image_id, instance_type, vcpus, \
    memory_mib, state, state_reason, launch_time, az, subnet_id, security_groups, key_name, \
    user_data, shutdown_behavior, disable_api_termination, root_device_name, kernel, initrd, \
    boot_args, tags, instance_store, vmm_pid, vmm_start, terminated_at, client_token, \
    placement_group, partition_number, rack, public_key, metadata_options, ena_support";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Instance> {
    let state: String = r.get(8)?;
    Ok(Instance {
        id: r.get(0)?,
        owner: r.get(1)?,
        reservation_id: r.get(2)?,
        launch_index: r.get(3)?,
        image_id: r.get(4)?,
        instance_type: r.get(5)?,
        vcpus: r.get(6)?,
        memory_mib: r.get(7)?,
        state: state.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, Box::new(e))
        })?,
        state_reason: r.get(9)?,
        launch_time: r.get(10)?,
        az: r.get(11)?,
        subnet_id: r.get(12)?,
        security_groups: super::json_col(r, 13)?,
        key_name: r.get(14)?,
        user_data: r.get(15)?,
        shutdown_behavior: r.get(16)?,
        disable_api_termination: r.get(17)?,
        root_device_name: r.get(18)?,
        kernel: r.get(19)?,
        initrd: r.get(20)?,
        boot_args: r.get(21)?,
        tags: super::json_col(r, 22)?,
        instance_store: super::json_col(r, 23)?,
        vmm_pid: r.get(24)?,
        vmm_start: r.get(25)?,
        terminated_at: r.get(26)?,
        client_token: r.get(27)?,
        placement_group: r.get(28)?,
        partition_number: r.get(29)?,
        rack: r.get(30)?,
        public_key: r.get(31)?,
        metadata_options: super::json_col(r, 32)?,
        ena_support: r.get(33)?,
    })
}

impl Db {
    /// Records a new instance.
    pub fn insert_instance(&self, i: &Instance) -> DbResult<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO instances ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
                 ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, \
                 ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)"
            ),
            params![
                i.id,
                i.owner,
                i.reservation_id,
                i.launch_index,
                i.image_id,
                i.instance_type,
                i.vcpus,
                i.memory_mib,
                i.state.name(),
                i.state_reason,
                i.launch_time,
                i.az,
                i.subnet_id,
                serde_json::to_string(&i.security_groups)?,
                i.key_name,
                i.user_data,
                i.shutdown_behavior,
                i.disable_api_termination,
                i.root_device_name,
                i.kernel,
                i.initrd,
                i.boot_args,
                serde_json::to_string(&i.tags)?,
                serde_json::to_string(&i.instance_store)?,
                i.vmm_pid,
                i.vmm_start,
                i.terminated_at,
                i.client_token,
                i.placement_group,
                i.partition_number,
                i.rack,
                i.public_key,
                serde_json::to_string(&i.metadata_options)?,
                i.ena_support,
            ],
        )?;
        Ok(())
    }

    /// One instance, whoever owns it.
    pub fn instance(&self, id: &str) -> DbResult<Option<Instance>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// An account's instances (all accounts' with `None`), oldest first.
    pub fn instances(&self, owner: Option<&str>) -> DbResult<Vec<Instance>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM instances WHERE ?1 IS NULL OR owner = ?1 \
             ORDER BY launch_time, reservation_id, launch_index"
        ))?;
        let rows = stmt.query_map([owner], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The instances of a placement group, terminated ones included, oldest first.
    pub fn instances_in_group(&self, group_id: &str) -> DbResult<Vec<Instance>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM instances WHERE placement_group = ?1 \
             ORDER BY launch_time, reservation_id, launch_index"
        ))?;
        let rows = stmt.query_map([group_id], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records where an instance is placed.
    pub fn set_placement(
        &self,
        id: &str,
        group_id: &str,
        partition_number: i32,
        rack: &str,
    ) -> DbResult<()> {
        self.conn().execute(
            "UPDATE instances SET placement_group = ?2, partition_number = ?3, rack = ?4 \
             WHERE id = ?1",
            params![id, group_id, partition_number, rack],
        )?;
        Ok(())
    }

    /// Sets DisableApiTermination and the shutdown behaviour, each if given.
    pub fn set_instance_attributes(
        &self,
        id: &str,
        disable_api_termination: Option<bool>,
        shutdown_behavior: Option<&str>,
    ) -> DbResult<()> {
        let conn = self.conn();
        if let Some(d) = disable_api_termination {
            conn.execute(
                "UPDATE instances SET disable_api_termination = ?2 WHERE id = ?1",
                params![id, d],
            )?;
        }
        if let Some(b) = shutdown_behavior {
            conn.execute(
                "UPDATE instances SET shutdown_behavior = ?2 WHERE id = ?1",
                params![id, b],
            )?;
        }
        Ok(())
    }

    /// Sets EnaSupport of a stopped instance; false (nothing changed) if it is not stopped.
    /// One statement, so that a StartInstances racing with it sees the old or the new value,
    /// never a change after its boot read the row.
    pub fn set_stopped_instance_ena_support(&self, id: &str, ena_support: bool) -> DbResult<bool> {
        let n = self.conn().execute(
            "UPDATE instances SET ena_support = ?2 WHERE id = ?1 AND state = 'stopped'",
            params![id, ena_support],
        )?;
        Ok(n == 1)
    }

    /// Instances of an account launched with this client token.
    pub fn instances_by_token(&self, owner: &str, token: &str) -> DbResult<Vec<Instance>> {
        Ok(self
            .instances(Some(owner))?
            .into_iter()
            .filter(|i| i.client_token == token)
            .collect())
    }

    /// Moves an instance to `to` if it is in one of `from`; returns whether it moved. Doing
    /// the check and the write in one statement makes concurrent requests safe.
    pub fn set_state(&self, id: &str, from: &[State], to: State, reason: &str) -> DbResult<bool> {
        let from: Vec<&str> = from.iter().map(|s| s.name()).collect();
        let from = serde_json::to_string(&from)?;
        let terminated_at = (to == State::Terminated).then(now_s);
        let n = self.conn().execute(
            "UPDATE instances SET state = ?2, state_reason = ?3, \
             terminated_at = COALESCE(?4, terminated_at) \
             WHERE id = ?1 AND state IN (SELECT value FROM json_each(?5))",
            params![id, to.name(), reason, terminated_at, from],
        )?;
        Ok(n == 1)
    }

    /// Records the launch time of a (re)start.
    pub fn set_launch_time(&self, id: &str, t: i64) -> DbResult<()> {
        self.conn().execute(
            "UPDATE instances SET launch_time = ?2 WHERE id = ?1",
            params![id, t],
        )?;
        Ok(())
    }

    /// The uid (and gid) the jailed monitor of instance `id` runs as: the one it already
    /// holds, or the lowest in `first..=last` that no instance short of terminated holds.
    /// An instance keeps its ID until it is terminated, across stops, starts and daemon
    /// restarts, so two VMs that may run at once never share one. `None` when every ID of
    /// the range is taken.
    pub fn jail_id(&self, id: &str, first: u32, last: u32) -> DbResult<Option<u32>> {
        let conn = self.conn();
        let held: Option<u32> = conn
            .query_row(
                "SELECT uid FROM jail_ids WHERE instance_id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(uid) = held.filter(|u| (first..=last).contains(u)) {
            return Ok(Some(uid));
        }
        conn.execute(
            "DELETE FROM jail_ids WHERE instance_id = ?1 OR instance_id NOT IN \
             (SELECT id FROM instances WHERE state != ?2)",
            params![id, State::Terminated.name()],
        )?;
        let mut stmt =
            conn.prepare("SELECT uid FROM jail_ids WHERE uid BETWEEN ?1 AND ?2 ORDER BY uid")?;
        let taken = stmt
            .query_map(params![first, last], |r| r.get::<_, u32>(0))?
            .collect::<Result<Vec<u32>, _>>()?;
        drop(stmt);
        // The lowest gap: the taken IDs are sorted, so the first one out of step marks it.
        let mut uid = first;
        for t in taken {
            if t != uid {
                break;
            }
            uid = match uid.checked_add(1) {
                Some(u) => u,
                None => return Ok(None),
            };
        }
        if uid > last {
            return Ok(None);
        }
        conn.execute(
            "INSERT INTO jail_ids (uid, instance_id) VALUES (?1, ?2)",
            params![uid, id],
        )?;
        Ok(Some(uid))
    }

    /// Records (or clears) the monitor process of an instance.
    pub fn set_vmm(&self, id: &str, pid: Option<i32>, start: Option<i64>) -> DbResult<()> {
        self.conn().execute(
            "UPDATE instances SET vmm_pid = ?2, vmm_start = ?3 WHERE id = ?1",
            params![id, pid, start],
        )?;
        Ok(())
    }

    /// Records an instance's metadata service settings.
    pub fn set_metadata_options(&self, id: &str, o: &MetadataOptions) -> DbResult<()> {
        self.conn().execute(
            "UPDATE instances SET metadata_options = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(o)?],
        )?;
        Ok(())
    }

    /// Updates the state reason alone.
    pub fn set_state_reason(&self, id: &str, reason: &str) -> DbResult<()> {
        self.conn().execute(
            "UPDATE instances SET state_reason = ?2 WHERE id = ?1",
            params![id, reason],
        )?;
        Ok(())
    }

    /// Removes terminated instances older than `before` (Unix seconds); returns their IDs.
    pub fn purge_terminated(&self, before: i64) -> DbResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "DELETE FROM instances WHERE state = 'terminated' AND terminated_at < ?1 RETURNING id",
        )?;
        let ids = stmt.query_map([before], |r| r.get(0))?;
        Ok(ids.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample(id: &str, owner: &str) -> Instance {
        Instance {
            id: id.into(),
            owner: owner.into(),
            reservation_id: "r-0000000000000000a".into(),
            launch_index: 0,
            image_id: "ami-0000000000000000a".into(),
            instance_type: "custom-1-64".into(),
            vcpus: 1,
            memory_mib: 64,
            state: State::Pending,
            state_reason: String::new(),
            launch_time: 1,
            az: "home-1a".into(),
            subnet_id: "subnet-0000000000000000a".into(),
            security_groups: vec!["sg-0000000000000000a".into()],
            key_name: String::new(),
            user_data: b"echo hi".to_vec(),
            shutdown_behavior: "stop".into(),
            disable_api_termination: false,
            root_device_name: "/dev/vda".into(),
            kernel: "/k".into(),
            initrd: None,
            boot_args: "console=ttyS0".into(),
            tags: vec![Tag {
                key: "Name".into(),
                value: "x".into(),
            }],
            instance_store: vec![],
            vmm_pid: None,
            vmm_start: None,
            terminated_at: None,
            client_token: String::new(),
            placement_group: String::new(),
            partition_number: 0,
            rack: String::new(),
            public_key: String::new(),
            metadata_options: MetadataOptions::default(),
            ena_support: true,
        }
    }

    #[test]
    fn ena_support_round_trips_and_changes_only_while_stopped() {
        let db = Db::open_in_memory().unwrap();
        let id = "i-0000000000000000a";
        let mut i = sample(id, "111111111111");
        i.ena_support = false;
        db.insert_instance(&i).unwrap();
        assert!(!db.instance(id).unwrap().unwrap().ena_support);
        assert!(
            !db.set_stopped_instance_ena_support(id, true).unwrap(),
            "pending"
        );
        assert!(!db.instance(id).unwrap().unwrap().ena_support);
        db.set_state(id, &[State::Pending], State::Stopped, "")
            .unwrap();
        assert!(db.set_stopped_instance_ena_support(id, true).unwrap());
        assert!(db.instance(id).unwrap().unwrap().ena_support);
        assert!(!db
            .set_stopped_instance_ena_support("i-0000000000000000b", true)
            .unwrap());
    }

    #[test]
    fn jail_ids_are_held_until_termination_and_never_shared() {
        let db = Db::open_in_memory().unwrap();
        let ids: Vec<String> = (0..4).map(|k| format!("i-000000000000000{k}a")).collect();
        for id in &ids {
            db.insert_instance(&sample(id, "111111111111")).unwrap();
        }
        let a = db.jail_id(&ids[0], 100, 102).unwrap();
        let b = db.jail_id(&ids[1], 100, 102).unwrap();
        assert_eq!((a, b), (Some(100), Some(101)));
        // The same instance keeps its ID (a stop and a start, a daemon restart).
        assert_eq!(db.jail_id(&ids[0], 100, 102).unwrap(), Some(100));
        assert_eq!(db.jail_id(&ids[2], 100, 102).unwrap(), Some(102));
        assert_eq!(db.jail_id(&ids[3], 100, 102).unwrap(), None, "range full");
        // A terminated instance gives its ID back; the lowest free one goes next.
        db.set_state(&ids[0], &[State::Pending], State::Terminated, "")
            .unwrap();
        assert_eq!(db.jail_id(&ids[3], 100, 102).unwrap(), Some(100));
        assert_eq!(db.jail_id(&ids[1], 100, 102).unwrap(), Some(101));
        // A range that moved: the instance gets one from the new range.
        assert_eq!(db.jail_id(&ids[1], 500, 600).unwrap(), Some(500));
    }

    #[test]
    fn round_trip_and_conditional_transitions() {
        let db = Db::open_in_memory().unwrap();
        let i = sample("i-0000000000000000a", "111111111111");
        db.insert_instance(&i).unwrap();
        assert_eq!(db.instance(&i.id).unwrap().unwrap(), i);
        assert!(db
            .set_state(&i.id, &[State::Pending], State::Running, "")
            .unwrap());
        assert!(!db
            .set_state(&i.id, &[State::Pending], State::Running, "")
            .unwrap());
        assert!(db
            .set_state(&i.id, &[State::Running], State::Terminated, "x")
            .unwrap());
        let got = db.instance(&i.id).unwrap().unwrap();
        assert_eq!(got.state, State::Terminated);
        assert!(got.terminated_at.is_some());
        assert!(db.instances(Some("222222222222")).unwrap().is_empty());
        assert_eq!(db.purge_terminated(0).unwrap().len(), 0);
        assert_eq!(db.purge_terminated(i64::MAX).unwrap(), vec![i.id.clone()]);
    }
}
