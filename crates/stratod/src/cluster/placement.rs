//! Region placement: which host each new instance goes to. A pure function over a snapshot
//! of the hosts and the region's reservations; the rack rules are the single-host
//! scheduler's (`cloud::placement::scheduler`), run over the region's racks instead of one
//! host's, and each rack it picks is then mapped to a host of that rack with room.
//!
//! Reservations live in etcd under `reservations/<host>/<instance-id>`; a launch takes
//! capacity with one transaction that also bumps `hostrev/<host>` of every host it uses
//! (and `grouprev/<account>/<group>`), on the condition that none of those moved since the
//! snapshot was read: two launches that read the same snapshot cannot both commit.
//! A launch with a client token records it (`tokens/<account>/<hash>`) in the same
//! transaction, on the condition that no launch recorded it first: a retry on any host
//! answers the first launch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::Capacity;
use super::membership::{HostState, HostView};
use crate::cloud::placement::scheduler::{self, Group, Member, Slot};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Key prefix of the reservations.
pub const RESERVATIONS: &str = "reservations/";
/// Key prefix of the per-host revision keys.
pub const HOSTREV: &str = "hostrev/";
/// Key prefix of the per-group revision keys.
pub const GROUPREV: &str = "grouprev/";

/// Key prefix of the client tokens of the region's launches.
pub const TOKENS: &str = "tokens/";

/// What a launch with a client token recorded: a retry with the same token, sent to any
/// host of the region, answers this launch instead of launching again (EC2's
/// idempotency is per account and region).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The launch's instances: those reserved, then those launched.
    pub instance_ids: Vec<String>,
    /// Its reservation ID (empty while it launches).
    pub reservation_id: String,
    /// When the launch reserved its capacity (ms).
    pub reserved_at_ms: i64,
}

/// The key of `account`'s client `token`: hashed, since a token is whatever text the
/// caller chose, and keys should be short and plain.
pub fn token_key(account: &str, token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{TOKENS}{account}/{hex}")
}

/// One instance's claim on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The instance.
    pub instance_id: String,
    /// The host.
    pub host: String,
    /// Its account.
    pub account: String,
    /// Its instance type.
    pub instance_type: String,
    /// What it takes.
    pub use_: Capacity,
    /// Its AZ.
    pub az: String,
    /// `<account>/<group name>` of its placement group, or empty.
    pub group: String,
    /// Its rack (empty outside groups).
    pub rack: String,
    /// Its partition (0 outside partition groups).
    pub partition: i32,
    /// When it was made (ms), so that a host can tell a stale claim from one in flight.
    pub reserved_at_ms: i64,
}

/// The key of a reservation.
pub fn reservation_key(host: &str, instance_id: &str) -> String {
    format!("{RESERVATIONS}{host}/{instance_id}")
}

/// The key of a group's revision.
pub fn group_key(group: &str) -> String {
    format!("{GROUPREV}{group}")
}

/// The key of a host's revision.
pub fn host_key(host: &str) -> String {
    format!("{HOSTREV}{host}")
}

/// What placement reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The hosts.
    pub hosts: BTreeMap<String, HostView>,
    /// Every reservation.
    pub reservations: Vec<Reservation>,
    /// Revisions of `hostrev/` and `grouprev/` keys read (0: absent).
    pub revisions: BTreeMap<String, i64>,
}

impl Snapshot {
    /// What `host` has left.
    pub fn free(&self, host: &str) -> Capacity {
        let Some(h) = self.hosts.get(host) else {
            return Capacity::default();
        };
        let (mut v, mut m) = (h.record.capacity.vcpus, h.record.capacity.memory_mib);
        for r in self.reservations.iter().filter(|r| r.host == host) {
            v = v.saturating_sub(r.use_.vcpus);
            m = m.saturating_sub(r.use_.memory_mib);
        }
        Capacity {
            vcpus: v,
            memory_mib: m,
        }
    }
}

/// What a launch asks for.
#[derive(Debug, Clone)]
pub struct Demand<'a> {
    /// Per instance.
    pub each: Capacity,
    /// Least number.
    pub min: usize,
    /// Most.
    pub max: usize,
    /// AZ.
    pub az: &'a str,
    /// Placement group and its region key (`<account>/<name>`).
    pub group: Option<(Group<'a>, String)>,
    /// Partition asked for (0: any).
    pub partition: i32,
}

/// Where one instance goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The host.
    pub host: String,
    /// Its rack and partition (empty rack outside groups).
    pub slot: Slot,
}

fn fits(free: Capacity, each: Capacity) -> bool {
    free.vcpus >= each.vcpus && free.memory_mib >= each.memory_mib
}

fn take(free: &mut Capacity, each: Capacity) {
    free.vcpus -= each.vcpus;
    free.memory_mib -= each.memory_mib;
}

fn insufficient(msg: String) -> ApiError {
    ApiError::new(ErrorCode::InsufficientInstanceCapacity, msg)
}

/// The region's racks, in host-name order: every rack of every available host.
pub fn region_racks(snap: &Snapshot) -> Vec<String> {
    let mut racks: Vec<String> = Vec::new();
    for h in snap.hosts.values() {
        if h.state() == HostState::Available {
            for r in &h.record.racks {
                if !racks.contains(r) {
                    racks.push(r.clone());
                }
            }
        }
    }
    racks
}

/// Chooses hosts for up to `max` instances (at least `min`, else
/// `InsufficientInstanceCapacity`); `local` wins ties, so that a launch stays on the host
/// that got it when it may.
pub fn plan(snap: &Snapshot, d: &Demand<'_>, local: &str) -> ApiResult<Vec<Placed>> {
    let mut free: BTreeMap<&str, Capacity> = snap
        .hosts
        .iter()
        .filter(|(_, h)| h.state() == HostState::Available)
        .map(|(n, _)| (n.as_str(), snap.free(n)))
        .collect();
    let Some((group, key)) = &d.group else {
        // Fill the host that takes the most of what is left to place (the local one first
        // among equals), so that a launch lands on as few hosts as it can.
        let mut out = Vec::new();
        while out.len() < d.max {
            let left = (d.max - out.len()) as u64;
            let best = free
                .iter()
                .map(|(n, f)| (*n, how_many(*f, d.each).min(left)))
                .filter(|(_, k)| *k > 0)
                .max_by_key(|(n, k)| (*k, *n == local, std::cmp::Reverse(*n)))
                .map(|(n, k)| (n.to_string(), k));
            let Some((host, k)) = best else { break };
            for _ in 0..k {
                if let Some(f) = free.get_mut(host.as_str()) {
                    take(f, d.each);
                }
                out.push(Placed {
                    host: host.clone(),
                    slot: Slot {
                        rack: String::new(),
                        partition: 0,
                    },
                });
            }
        }
        if out.len() < d.min {
            return Err(insufficient(format!(
                "The region has room for {} more instance(s) of {} vCPU and {} MiB; {} asked for.",
                out.len(),
                d.each.vcpus,
                d.each.memory_mib,
                d.min
            )));
        }
        return Ok(out);
    };
    let racks = region_racks(snap);
    let members: Vec<Member> = snap
        .reservations
        .iter()
        .filter(|r| &r.group == key)
        .map(|r| Member {
            az: r.az.clone(),
            rack: r.rack.clone(),
            partition: r.partition,
            active: true,
        })
        .collect();
    let slots = scheduler::place(group, &racks, &members, d.az, d.partition, d.min, d.max)?;
    let mut out = Vec::new();
    for slot in slots {
        let mut owners: Vec<&str> = snap
            .hosts
            .iter()
            .filter(|(n, h)| {
                h.state() == HostState::Available
                    && h.record.racks.contains(&slot.rack)
                    && free.get(n.as_str()).is_some_and(|f| fits(*f, d.each))
            })
            .map(|(n, _)| n.as_str())
            .collect();
        owners.sort_by_key(|n| *n != local);
        let Some(host) = owners.first().map(|h| h.to_string()) else {
            break;
        };
        if let Some(f) = free.get_mut(host.as_str()) {
            take(f, d.each);
        }
        out.push(Placed { host, slot });
    }
    if out.len() < d.min {
        return Err(insufficient(format!(
            "The hosts of the racks that placement group '{}' may use have room for {} more \
             instance(s) of {} vCPU and {} MiB; {} asked for.",
            group.name,
            out.len(),
            d.each.vcpus,
            d.each.memory_mib,
            d.min
        )));
    }
    Ok(out)
}

fn how_many(free: Capacity, each: Capacity) -> u64 {
    let v = free
        .vcpus
        .checked_div(each.vcpus)
        .map_or(u64::MAX, u64::from);
    let m = free
        .memory_mib
        .checked_div(each.memory_mib)
        .unwrap_or(u64::MAX);
    v.min(m)
}

#[cfg(test)]
mod tests {
    use super::super::membership::HostRecord;
    use super::*;

    #[test]
    fn token_keys_are_per_account_and_plain() {
        let a = token_key("111122223333", "my token/with slashes");
        assert!(a.starts_with("tokens/111122223333/"), "{a}");
        assert_eq!(a.len(), "tokens/111122223333/".len() + 64);
        assert!(!a["tokens/111122223333/".len()..].contains('/'));
        assert_eq!(a, token_key("111122223333", "my token/with slashes"));
        assert_ne!(a, token_key("444455556666", "my token/with slashes"));
        assert_ne!(a, token_key("111122223333", "my token/with slashes2"));
    }
    use crate::cloud::placement::scheduler::Strategy;

    fn host(name: &str, vcpus: u32, racks: &[&str], leased: bool) -> (String, HostView) {
        (
            name.to_string(),
            HostView {
                record: HostRecord {
                    name: name.into(),
                    underlay: String::new(),
                    api: String::new(),
                    capacity: Capacity {
                        vcpus,
                        memory_mib: 8192,
                    },
                    racks: racks.iter().map(|r| r.to_string()).collect(),
                    started_at: 0,
                },
                leased,
                probe_ok: None,
            },
        )
    }

    fn three() -> Snapshot {
        Snapshot {
            hosts: [
                host("a", 4, &["a"], true),
                host("b", 4, &["b"], true),
                host("c", 4, &["c"], true),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        }
    }

    const EACH: Capacity = Capacity {
        vcpus: 2,
        memory_mib: 1024,
    };

    fn demand<'a>(group: Option<(Group<'a>, String)>, min: usize, max: usize) -> Demand<'a> {
        Demand {
            each: EACH,
            min,
            max,
            az: "home-1a",
            group,
            partition: 0,
        }
    }

    /// Commits a plan into the snapshot as the transaction would.
    fn commit(snap: &mut Snapshot, placed: &[Placed], group: &str) {
        for (i, p) in placed.iter().enumerate() {
            snap.reservations.push(Reservation {
                instance_id: format!("i-{}{i}", snap.reservations.len()),
                host: p.host.clone(),
                account: "1".into(),
                instance_type: "t3.small".into(),
                use_: EACH,
                az: "home-1a".into(),
                group: group.into(),
                rack: p.slot.rack.clone(),
                partition: p.slot.partition,
                reserved_at_ms: 0,
            });
        }
    }

    #[test]
    fn ungrouped_stays_local_until_full() {
        let mut snap = three();
        let p = plan(&snap, &demand(None, 1, 1), "b").unwrap();
        assert_eq!(p[0].host, "b");
        commit(&mut snap, &p, "");
        // b has 2 vCPUs left, a and c 4: the emptier host wins over the local one.
        let p = plan(&snap, &demand(None, 2, 2), "b").unwrap();
        assert!(p.iter().all(|x| x.host == "a"), "{p:?}");
        commit(&mut snap, &p, "");
        let p = plan(&snap, &demand(None, 3, 3), "b").unwrap();
        assert_eq!(p.len(), 3);
        commit(&mut snap, &p, "");
        let e = plan(&snap, &demand(None, 1, 1), "b").unwrap_err();
        assert_eq!(e.code, ErrorCode::InsufficientInstanceCapacity);
        assert_eq!(snap.free("a").vcpus, 0);
    }

    #[test]
    fn spread_takes_one_host_per_instance_then_refuses() {
        let g = Group {
            name: "sp",
            strategy: Strategy::Spread,
            partition_count: 0,
        };
        let mut snap = three();
        let mut hosts = Vec::new();
        for _ in 0..3 {
            let p = plan(&snap, &demand(Some((g.clone(), "1/sp".into())), 1, 1), "a").unwrap();
            hosts.push(p[0].host.clone());
            commit(&mut snap, &p, "1/sp");
        }
        hosts.sort();
        assert_eq!(hosts, ["a", "b", "c"]);
        let e = plan(&snap, &demand(Some((g.clone(), "1/sp".into())), 1, 1), "a").unwrap_err();
        assert_eq!(e.code, ErrorCode::InsufficientInstanceCapacity);
        // Another group is not bound by this one's racks.
        assert!(plan(&snap, &demand(Some((g, "1/other".into())), 1, 1), "a").is_ok());
    }

    #[test]
    fn an_unavailable_host_is_no_rack() {
        let g = Group {
            name: "sp",
            strategy: Strategy::Spread,
            partition_count: 0,
        };
        let mut snap = three();
        snap.hosts.get_mut("c").unwrap().leased = false;
        let p = plan(&snap, &demand(Some((g.clone(), "1/sp".into())), 3, 3), "a");
        assert!(p.is_err());
        let p = plan(&snap, &demand(Some((g, "1/sp".into())), 1, 3), "a").unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|x| x.host != "c"));
    }

    #[test]
    fn partitions_sit_on_disjoint_hosts() {
        let g = Group {
            name: "pt",
            strategy: Strategy::Partition,
            partition_count: 3,
        };
        let mut snap = three();
        for h in ["a", "b", "c"] {
            snap.hosts.get_mut(h).unwrap().record.capacity.vcpus = 64;
        }
        for _ in 0..6 {
            let p = plan(&snap, &demand(Some((g.clone(), "1/pt".into())), 1, 1), "a").unwrap();
            commit(&mut snap, &p, "1/pt");
        }
        let mut by_partition: BTreeMap<i32, std::collections::BTreeSet<String>> = BTreeMap::new();
        for r in &snap.reservations {
            by_partition
                .entry(r.partition)
                .or_default()
                .insert(r.host.clone());
        }
        assert_eq!(by_partition.len(), 3);
        let mut seen = std::collections::BTreeSet::new();
        for hosts in by_partition.values() {
            assert_eq!(hosts.len(), 1, "{by_partition:?}");
            assert!(seen.insert(hosts.iter().next().unwrap().clone()));
        }
    }

    #[test]
    fn cluster_groups_stay_on_one_rack_and_racks_may_be_declared() {
        let g = Group {
            name: "cl",
            strategy: Strategy::Cluster,
            partition_count: 0,
        };
        let mut snap = three();
        // Host a declares two racks: a spread group may use both.
        snap.hosts.get_mut("a").unwrap().record.racks = vec!["a1".into(), "a2".into()];
        snap.hosts.get_mut("a").unwrap().record.capacity.vcpus = 8;
        let p = plan(&snap, &demand(Some((g.clone(), "1/cl".into())), 2, 2), "c").unwrap();
        assert_eq!(p[0].host, p[1].host);
        commit(&mut snap, &p, "1/cl");
        let again = plan(&snap, &demand(Some((g, "1/cl".into())), 1, 1), "c").unwrap();
        assert_eq!(again[0].host, p[0].host);
        let sp = Group {
            name: "sp",
            strategy: Strategy::Spread,
            partition_count: 0,
        };
        let p = plan(&snap, &demand(Some((sp, "1/sp".into())), 4, 4), "c").unwrap();
        let racks: std::collections::BTreeSet<&str> =
            p.iter().map(|x| x.slot.rack.as_str()).collect();
        assert_eq!(racks.len(), 4);
    }
}
