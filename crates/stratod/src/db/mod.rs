//! The state store: one SQLite database under the data directory, in WAL mode with
//! synchronous writes, its schema created and upgraded by numbered migrations
//! (`PRAGMA user_version`). Each table has its own module with its rows and queries.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

pub mod access_keys;
pub mod addresses;
pub mod client_tokens;
pub mod default_vpc;
pub mod images;
pub mod instances;
pub mod ipv6;
pub mod key_pairs;
pub mod launch_templates;
pub mod network;
pub mod network_interfaces;
pub mod placement;
pub mod region_net;
pub mod roles;
pub mod security_groups;
pub mod sessions;
pub mod shared;
pub mod tags;
pub mod usage;
pub mod volumes;

/// A state-store failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused or failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON column could not be read or written.
    #[error("corrupt stored value")]
    Json(#[from] serde_json::Error),
    /// The database file's permissions could not be set.
    #[error("cannot make the database file owner-only")]
    File(#[source] std::io::Error),
    /// The database was written by a newer stratod.
    #[error("database schema version {0} is newer than this stratod knows ({1})")]
    TooNew(u32, u32),
}

/// Result of a state-store operation.
pub type DbResult<T> = Result<T, DbError>;

/// The migrations, in order; entry `n` brings the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: instances, images, volumes, snapshots, subnets, ENIs and metering.
    r#"
    CREATE TABLE subnets (
        id TEXT PRIMARY KEY,
        vpc_id TEXT NOT NULL,
        az TEXT NOT NULL,
        cidr TEXT NOT NULL,
        bridge TEXT NOT NULL,
        is_default INTEGER NOT NULL
    );
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        state TEXT NOT NULL,
        state_reason TEXT NOT NULL DEFAULT '',
        progress INTEGER NOT NULL DEFAULT 0,
        architecture TEXT NOT NULL,
        kernel TEXT NOT NULL,
        initrd TEXT,
        boot_args TEXT NOT NULL,
        root_device_name TEXT NOT NULL,
        bdm TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX images_owner_name ON images(owner, name);
    CREATE TABLE launch_permissions (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        grantee TEXT NOT NULL,
        PRIMARY KEY (image_id, grantee)
    );
    CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        volume_id TEXT NOT NULL,
        size_gib INTEGER NOT NULL,
        state TEXT NOT NULL,
        progress INTEGER NOT NULL DEFAULT 0,
        description TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE TABLE volumes (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        size_gib INTEGER NOT NULL,
        volume_type TEXT NOT NULL,
        az TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        state TEXT NOT NULL,
        created INTEGER NOT NULL,
        instance_id TEXT,
        device TEXT,
        attach_state TEXT,
        slot TEXT,
        delete_on_termination INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        reservation_id TEXT NOT NULL,
        launch_index INTEGER NOT NULL,
        image_id TEXT NOT NULL,
        instance_type TEXT NOT NULL,
        vcpus INTEGER NOT NULL,
        memory_mib INTEGER NOT NULL,
        state TEXT NOT NULL,
        state_reason TEXT NOT NULL DEFAULT '',
        launch_time INTEGER NOT NULL,
        az TEXT NOT NULL,
        subnet_id TEXT NOT NULL,
        security_groups TEXT NOT NULL,
        key_name TEXT NOT NULL,
        user_data BLOB NOT NULL,
        shutdown_behavior TEXT NOT NULL,
        disable_api_termination INTEGER NOT NULL,
        root_device_name TEXT NOT NULL,
        kernel TEXT NOT NULL,
        initrd TEXT,
        boot_args TEXT NOT NULL,
        tags TEXT NOT NULL,
        instance_store TEXT NOT NULL,
        vmm_pid INTEGER,
        vmm_start INTEGER,
        terminated_at INTEGER,
        client_token TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE network_interfaces (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        subnet_id TEXT NOT NULL,
        instance_id TEXT,
        device_index INTEGER NOT NULL DEFAULT 0,
        private_ip TEXT NOT NULL,
        mac TEXT NOT NULL,
        tap TEXT NOT NULL,
        UNIQUE (subnet_id, private_ip)
    );
    CREATE TABLE usage (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        kind TEXT NOT NULL,
        gib INTEGER NOT NULL DEFAULT 0,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER
    );
    CREATE INDEX usage_open ON usage(resource_id, end_ms);
    "#,
    // 2: placement groups, and where each instance is placed (group ID, partition, rack).
    r#"
    CREATE TABLE placement_groups (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        strategy TEXT NOT NULL,
        partition_count INTEGER NOT NULL DEFAULT 0,
        spread_level TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX placement_groups_owner_name ON placement_groups(owner, name);
    ALTER TABLE instances ADD COLUMN placement_group TEXT NOT NULL DEFAULT '';
    ALTER TABLE instances ADD COLUMN partition_number INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN rack TEXT NOT NULL DEFAULT '';
    CREATE INDEX instances_placement_group ON instances(placement_group);
    "#,
    // 3: launch templates and their immutable versions.
    r#"
    CREATE TABLE launch_templates (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        default_version INTEGER NOT NULL,
        latest_version INTEGER NOT NULL,
        tags TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX launch_templates_owner_name ON launch_templates(owner, name);
    CREATE TABLE launch_template_versions (
        template_id TEXT NOT NULL REFERENCES launch_templates(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        description TEXT NOT NULL,
        data TEXT NOT NULL,
        user_data BLOB NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (template_id, version)
    );
    "#,
    // 4: key pairs (public keys only), and the public key each instance was launched with.
    r#"
    CREATE TABLE key_pairs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        key_type TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        public_key TEXT NOT NULL,
        tags TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX key_pairs_owner_name ON key_pairs(owner, name);
    ALTER TABLE instances ADD COLUMN public_key TEXT NOT NULL DEFAULT '';
    "#,
    // 5: VPCs, one bridge each. The default VPC of an existing database is the one its
    // default subnets name; it keeps their bridge. Its owner is '' (shared by all accounts).
    r#"
    CREATE TABLE vpcs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        cidr TEXT NOT NULL,
        is_default INTEGER NOT NULL,
        bridge TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT 'available',
        tags TEXT NOT NULL DEFAULT '[]',
        created INTEGER NOT NULL
    );
    INSERT INTO vpcs (id, owner, cidr, is_default, bridge, created)
        SELECT vpc_id, '', '172.31.0.0/16', 1, MIN(bridge), 0
        FROM subnets WHERE is_default = 1 GROUP BY vpc_id;
    CREATE INDEX subnets_vpc ON subnets(vpc_id);
    "#,
    // 6: network interfaces of their own (CreateNetworkInterface): a description, an
    // attachment, flags and tags on each, and secondary private addresses. Existing ENIs are
    // their instances' primaries: attached (an attachment ID derived from the ENI's) and
    // deleted on termination.
    r#"
    ALTER TABLE network_interfaces ADD COLUMN description TEXT NOT NULL DEFAULT '';
    ALTER TABLE network_interfaces ADD COLUMN attachment_id TEXT;
    ALTER TABLE network_interfaces ADD COLUMN attach_time INTEGER;
    ALTER TABLE network_interfaces ADD COLUMN delete_on_termination INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE network_interfaces ADD COLUMN source_dest_check INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE network_interfaces ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE network_interfaces ADD COLUMN created INTEGER NOT NULL DEFAULT 0;
    UPDATE network_interfaces
        SET attachment_id = 'eni-attach-' || substr(id, 5), attach_time = 0,
            delete_on_termination = 1
        WHERE instance_id IS NOT NULL;
    CREATE UNIQUE INDEX network_interfaces_attachment ON network_interfaces(attachment_id);
    CREATE UNIQUE INDEX network_interfaces_slot ON network_interfaces(instance_id, device_index)
        WHERE instance_id IS NOT NULL;
    CREATE TABLE network_interface_addresses (
        eni_id TEXT NOT NULL REFERENCES network_interfaces(id) ON DELETE CASCADE,
        subnet_id TEXT NOT NULL,
        private_ip TEXT NOT NULL,
        PRIMARY KEY (eni_id, private_ip),
        UNIQUE (subnet_id, private_ip)
    );
    "#,
    // 7: each instance's metadata service settings (JSON; '{}' is EC2's defaults).
    r#"
    ALTER TABLE instances ADD COLUMN metadata_options TEXT NOT NULL DEFAULT '{}';
    "#,
    // 8: public IPv4 addresses (Elastic IPs and instances' pool addresses) and where each
    // is mapped; the pool's last allocated address (allocation goes round the pool, so a
    // restarted instance gets a new address, as in EC2); whether a subnet maps public
    // addresses on launch (NULL: its default) and whether a network interface gets one
    // while its instance runs.
    r#"
    CREATE TABLE public_ips (
        public_ip TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        allocation_id TEXT UNIQUE,
        association_id TEXT UNIQUE,
        eni_id TEXT,
        private_ip TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        created INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX public_ips_target ON public_ips(eni_id, private_ip)
        WHERE eni_id IS NOT NULL;
    CREATE INDEX public_ips_owner ON public_ips(owner);
    CREATE TABLE public_ip_cursor (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last TEXT NOT NULL
    );
    ALTER TABLE subnets ADD COLUMN map_public_ip INTEGER;
    ALTER TABLE network_interfaces ADD COLUMN map_public_ip INTEGER NOT NULL DEFAULT 0;
    "#,
    // 9: security groups, their rules, and the groups of each network interface (a row
    // goes with its interface).
    r#"
    CREATE TABLE security_groups (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        vpc_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        created INTEGER NOT NULL,
        UNIQUE (owner, vpc_id, name)
    );
    CREATE TABLE security_group_rules (
        seq INTEGER PRIMARY KEY,
        group_id TEXT NOT NULL REFERENCES security_groups(id) ON DELETE CASCADE,
        egress INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        from_port INTEGER NOT NULL,
        to_port INTEGER NOT NULL,
        cidr TEXT NOT NULL,
        peer_group TEXT NOT NULL,
        UNIQUE (group_id, egress, protocol, from_port, to_port, cidr, peer_group)
    );
    CREATE INDEX security_group_rules_peer ON security_group_rules(peer_group);
    CREATE TABLE network_interface_groups (
        eni_id TEXT NOT NULL REFERENCES network_interfaces(id) ON DELETE CASCADE,
        group_id TEXT NOT NULL REFERENCES security_groups(id),
        position INTEGER NOT NULL,
        PRIMARY KEY (eni_id, group_id)
    );
    CREATE INDEX network_interface_groups_group ON network_interface_groups(group_id);
    "#,
    // 10: tags on images, volumes, snapshots and subnets (CreateTags reaches every resource).
    r#"
    ALTER TABLE images ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE volumes ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE snapshots ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE subnets ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    "#,
    // 11: access keys of the EC2 Query API (SigV4 needs the secret itself, so it is stored;
    // the database file is owner-only).
    r#"
    CREATE TABLE access_keys (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        secret TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE INDEX access_keys_owner ON access_keys(owner);
    "#,
    // 12: the uid (and gid) each instance's jailed monitor runs as, held until termination.
    r#"
    CREATE TABLE jail_ids (
        uid INTEGER PRIMARY KEY,
        instance_id TEXT NOT NULL UNIQUE
    );
    "#,
    // 13: ClientTokens of the Query API (a retry gets the first call's answer, even after a
    // restart): claimed before the call runs, the answer kept once it succeeded.
    r#"
    CREATE TABLE client_tokens (
        account TEXT NOT NULL,
        action TEXT NOT NULL,
        token TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL,
        response TEXT NOT NULL DEFAULT '',
        request_id TEXT NOT NULL DEFAULT '',
        boot TEXT NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (account, action, token)
    );
    CREATE INDEX client_tokens_created ON client_tokens(created);
    "#,
    // 14: instance roles (a list of allowed actions), the instance profiles naming them, per
    // account, and which instance has which profile.
    r#"
    CREATE TABLE roles (
        account TEXT NOT NULL,
        name TEXT NOT NULL,
        actions TEXT NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (account, name)
    );
    CREATE TABLE instance_profiles (
        account TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY (account, name),
        FOREIGN KEY (account, role) REFERENCES roles(account, name)
    );
    CREATE TABLE iam_associations (
        id TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL UNIQUE,
        account TEXT NOT NULL,
        profile TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE INDEX iam_associations_profile ON iam_associations(account, profile);
    "#,
    // 15: IPv6: each VPC's /56 and each subnet's /64 (at most one each, as EC2 allows one
    // Amazon-provided block), the IPv6 addresses of each network interface (unique in their
    // subnet; a row goes with its interface), and each subnet's AssignIpv6AddressOnCreation.
    r#"
    CREATE TABLE vpc_ipv6_blocks (
        association_id TEXT PRIMARY KEY,
        vpc_id TEXT NOT NULL UNIQUE REFERENCES vpcs(id) ON DELETE CASCADE,
        cidr TEXT NOT NULL UNIQUE,
        pool TEXT NOT NULL
    );
    CREATE TABLE subnet_ipv6_blocks (
        association_id TEXT PRIMARY KEY,
        subnet_id TEXT NOT NULL UNIQUE REFERENCES subnets(id) ON DELETE CASCADE,
        vpc_id TEXT NOT NULL,
        cidr TEXT NOT NULL UNIQUE
    );
    CREATE INDEX subnet_ipv6_blocks_vpc ON subnet_ipv6_blocks(vpc_id);
    CREATE TABLE network_interface_ipv6 (
        eni_id TEXT NOT NULL REFERENCES network_interfaces(id) ON DELETE CASCADE,
        subnet_id TEXT NOT NULL,
        address TEXT NOT NULL,
        PRIMARY KEY (subnet_id, address)
    );
    CREATE INDEX network_interface_ipv6_eni ON network_interface_ipv6(eni_id);
    ALTER TABLE subnets ADD COLUMN assign_ipv6_on_creation INTEGER NOT NULL DEFAULT 0;
    "#,
    // 16: the temporary credentials of instance roles, served by the metadata service: one
    // row per issued key, kept until it expires or its instance loses the profile.
    r#"
    CREATE TABLE session_credentials (
        access_key TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        token TEXT NOT NULL,
        instance_id TEXT NOT NULL,
        account TEXT NOT NULL,
        role TEXT NOT NULL,
        issued INTEGER NOT NULL,
        expires INTEGER NOT NULL
    );
    CREATE INDEX session_credentials_instance ON session_credentials(instance_id, expires);
    "#,
    // 17: EnaSupport of images and instances. Rows from before it keep what the API showed
    // for them then (true); RegisterImage without --ena-support gives false, as in EC2.
    r#"
    ALTER TABLE images ADD COLUMN ena_support INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE instances ADD COLUMN ena_support INTEGER NOT NULL DEFAULT 1;
    "#,
    // 18: which rows of region-scoped kinds mirror a record in the region's etcd, and the
    // record's revision this host last applied or published.
    r#"
    CREATE TABLE shared_mirror (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    );
    "#,
    // 19: AMIs in a region: a snapshot this host pulled from another host for a region's
    // AMI is a replica (same ID as the holder's, kept out of the owner index and describe).
    r#"
    ALTER TABLE snapshots ADD COLUMN replica INTEGER NOT NULL DEFAULT 0;
    "#,
    // 20: the VNI the region allocated to each VPC (a VPC without a row uses the VNI its
    // ID folds to).
    r#"
    CREATE TABLE vpc_vnis (
        vpc_id TEXT PRIMARY KEY,
        vni INTEGER NOT NULL
    );
    "#,
    // 21: Elastic IPs in a region: a row mirrored from the region's record whose
    // association is another host's names that host, with the instance and owner of the
    // interface there (this host has no row of that interface to join).
    r#"
    ALTER TABLE public_ips ADD COLUMN assoc_host TEXT;
    ALTER TABLE public_ips ADD COLUMN instance_hint TEXT;
    ALTER TABLE public_ips ADD COLUMN eni_owner_hint TEXT;
    "#,
    // 22: a host's default VPC that is its region's (same ID on every host, mirrored like
    // any VPC of the region) rather than the host's own.
    r#"
    ALTER TABLE vpcs ADD COLUMN region_default INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// The database handle. SQLite calls are short, so callers hold the lock only for one query
/// or one transaction and never across an `.await`.
pub struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> DbResult<Db> {
        owner_only(path)?;
        let conn = Connection::open(path)?;
        Self::setup(conn)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> DbResult<Db> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> DbResult<Db> {
        // WAL lets readers run beside the writer; synchronous=FULL makes every committed
        // transaction durable before the API answers.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    /// The connection, locked.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back on drop), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The schema version.
    pub fn version(&self) -> DbResult<u32> {
        Ok(self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

/// Creates the database file owner-only, or makes it so (it holds access key secrets);
/// SQLite gives its WAL and shared-memory files the database file's mode.
fn owner_only(path: &Path) -> DbResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(DbError::File)?;
    for p in [
        path.to_path_buf(),
        wal_file(path, "-wal"),
        wal_file(path, "-shm"),
    ] {
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(DbError::File(e)),
            _ => {}
        }
    }
    Ok(())
}

fn wal_file(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

fn migrate(conn: &mut Connection) -> DbResult<()> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = MIGRATIONS.len() as u32;
    if current > latest {
        return Err(DbError::TooNew(current, latest));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database migrated");
    }
    Ok(())
}

/// A JSON-encoded column of a row, decoded.
pub(crate) fn json_col<T: serde::de::DeserializeOwned>(
    r: &rusqlite::Row<'_>,
    i: usize,
) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Stores a state enum as its EC2 name in a text column and reads it back, so that rows
/// carry the enum and the schema keeps its text.
macro_rules! text_state_column {
    ($($t:ty),+) => {$(
        impl rusqlite::types::ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.name()))
            }
        }

        impl rusqlite::types::FromSql for $t {
            fn column_result(
                v: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                v.as_str()?
                    .parse()
                    .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    )+};
}

text_state_column!(
    crate::states::VolumeState,
    crate::states::AttachState,
    crate::states::SnapshotState,
    crate::states::ImageState
);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_s() -> i64 {
    now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strato.db");
        let db = Db::open(&path).unwrap();
        assert_eq!(db.version().unwrap(), MIGRATIONS.len() as u32);
        let mode: String = db
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        use std::os::unix::fs::PermissionsExt;
        for f in ["strato.db", "strato.db-wal"] {
            let m = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600, "{f}");
        }
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.version().unwrap(), MIGRATIONS.len() as u32);
    }

    #[test]
    fn a_version_1_database_keeps_its_instances() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strato.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO instances (id, owner, reservation_id, launch_index, image_id, \
                 instance_type, vcpus, memory_mib, state, launch_time, az, subnet_id, \
                 security_groups, key_name, user_data, shutdown_behavior, \
                 disable_api_termination, root_device_name, kernel, boot_args, tags, \
                 instance_store) VALUES ('i-0000000000000000a', '111111111111', 'r-1', 0, \
                 'ami-1', 't3.micro', 1, 64, 'stopped', 1, 'home-1a', 'subnet-1', '[]', '', \
                 x'', 'stop', 0, '/dev/vda', '/k', '', '[]', '[]')",
                [],
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.version().unwrap(), MIGRATIONS.len() as u32);
        let i = db.instance("i-0000000000000000a").unwrap().unwrap();
        assert_eq!(
            (
                i.placement_group.as_str(),
                i.partition_number,
                i.rack.as_str()
            ),
            ("", 0, "")
        );
        assert_eq!(i.public_key, "");
    }

    #[test]
    fn a_version_4_database_gets_its_default_vpc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strato.db");
        {
            let c = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..4] {
                c.execute_batch(m).unwrap();
            }
            c.pragma_update(None, "user_version", 4).unwrap();
            for (id, az, cidr) in [
                ("subnet-1", "home-1a", "172.31.0.0/20"),
                ("subnet-2", "home-1b", "172.31.16.0/20"),
            ] {
                c.execute(
                    "INSERT INTO subnets (id, vpc_id, az, cidr, bridge, is_default) \
                     VALUES (?1, 'vpc-0000000000000000a', ?2, ?3, 'strato0', 1)",
                    [id, az, cidr],
                )
                .unwrap();
            }
        }
        let db = Db::open(&path).unwrap();
        let vpcs = db.vpcs().unwrap();
        assert_eq!(vpcs.len(), 1);
        let v = &vpcs[0];
        assert_eq!(
            (
                v.id.as_str(),
                v.owner.as_str(),
                v.cidr.as_str(),
                v.bridge.as_str()
            ),
            ("vpc-0000000000000000a", "", "172.31.0.0/16", "strato0")
        );
        assert!(v.is_default);
        assert_eq!(v.state, "available");
    }

    #[test]
    fn a_version_5_database_keeps_its_enis_as_attached_primaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strato.db");
        {
            let c = Connection::open(&path).unwrap();
            for m in &MIGRATIONS[..5] {
                c.execute_batch(m).unwrap();
            }
            c.pragma_update(None, "user_version", 5).unwrap();
            c.execute(
                "INSERT INTO network_interfaces (id, owner, subnet_id, instance_id, \
                 device_index, private_ip, mac, tap) VALUES ('eni-0123456789abcdef0', \
                 '111111111111', 'subnet-1', 'i-0000000000000000a', 0, '172.31.0.4', \
                 '02:00:00:00:00:01', 'tap0123456789ab')",
                [],
            )
            .unwrap();
        }
        let db = Db::open(&path).unwrap();
        let e = db.eni("eni-0123456789abcdef0").unwrap().unwrap();
        assert_eq!(
            e.attachment_id.as_deref(),
            Some("eni-attach-0123456789abcdef0")
        );
        crate::ids::check(
            crate::ids::Kind::NetworkInterfaceAttachment,
            e.attachment_id.as_deref().unwrap(),
        )
        .unwrap();
        assert!(e.delete_on_termination && e.source_dest_check);
        assert_eq!((e.description.as_str(), e.tags.len()), ("", 0));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strato.db");
        drop(Db::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(Db::open(&path), Err(DbError::TooNew(99, _))));
    }
}
