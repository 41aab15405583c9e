//! The placement scheduler: which rack (fault domain, from the config's `racks`) and which
//! partition each instance of a placement group gets. Pure functions over the group's
//! members, so that every rule is tested without a daemon.
//!
//! - **spread**: every active instance of the group in an AZ on a rack of its own; at most
//!   seven per AZ per group (EC2's limit) and never more than the host has racks.
//! - **partition**: partition `k` of `n` owns the racks `k, k+n, k+2n, …` (1-based), so no
//!   two partitions share a rack; an instance goes to the partition asked for, else to the
//!   least-loaded one, and within it to its least-loaded rack.
//! - **cluster**: one AZ for the whole group (a launch into another is refused with
//!   `InvalidParameterValue`) and one rack, that of its active instances.
//!
//! "Active" means on the hardware: pending, running, stopping or shutting-down. Stopped
//! instances hold no rack (as in EC2, where they leave their host); they keep their
//! partition and their AZ.

use std::collections::{HashMap, HashSet};

use crate::error::{ApiError, ApiResult, ErrorCode};

/// EC2's limit of running instances per AZ in a spread group.
pub const MAX_SPREAD_PER_AZ: usize = 7;
/// EC2's limit of partitions per partition group.
pub const MAX_PARTITIONS: i32 = 7;
/// The partition count when a partition group is created without one.
pub const DEFAULT_PARTITIONS: i32 = 2;

/// A placement strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One AZ, one rack.
    Cluster,
    /// One rack per instance.
    Spread,
    /// Partitions on disjoint racks.
    Partition,
}

impl Strategy {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Cluster => "cluster",
            Strategy::Spread => "spread",
            Strategy::Partition => "partition",
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> ApiResult<Strategy> {
        match s {
            "cluster" => Ok(Strategy::Cluster),
            "spread" => Ok(Strategy::Spread),
            "partition" => Ok(Strategy::Partition),
            other => Err(ApiError::invalid(format!(
                "Invalid placement strategy '{}': use cluster, spread or partition.",
                other.chars().take(64).collect::<String>()
            ))),
        }
    }
}

/// What the scheduler knows of a group.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// Name, for messages.
    pub name: &'a str,
    /// Strategy.
    pub strategy: Strategy,
    /// Partitions (partition groups).
    pub partition_count: i32,
}

/// A member of the group: an instance that is not terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its AZ.
    pub az: String,
    /// Its rack (empty while it has none).
    pub rack: String,
    /// Its partition (0 outside partition groups).
    pub partition: i32,
    /// Whether it is on the hardware (pending, running, stopping, shutting-down).
    pub active: bool,
}

/// Where one instance goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The rack.
    pub rack: String,
    /// The partition (0 outside partition groups).
    pub partition: i32,
}

/// The racks of partition `k` (1-based) of `n`: indices `k-1, k-1+n, …`. If the host has
/// fewer racks than partitions (the config shrank after the group was made), partitions
/// wrap around so that each still has one.
pub fn partition_racks(racks: &[String], n: i32, k: i32) -> Vec<String> {
    if racks.is_empty() || n < 1 || k < 1 {
        return Vec::new();
    }
    let (n, k) = (n as usize, k as usize);
    let own: Vec<String> = racks.iter().skip(k - 1).step_by(n).cloned().collect();
    if own.is_empty() {
        vec![racks[(k - 1) % racks.len()].clone()]
    } else {
        own
    }
}

/// Checks an explicit partition number against a group.
pub fn check_partition(group: &Group<'_>, partition: i32) -> ApiResult<()> {
    if partition == 0 {
        return Ok(());
    }
    if group.strategy != Strategy::Partition {
        return Err(ApiError::invalid(format!(
            "A partition number is valid only for a partition placement group; '{}' is a {} group.",
            group.name,
            group.strategy.name()
        )));
    }
    if !(1..=group.partition_count).contains(&partition) {
        return Err(ApiError::invalid(format!(
            "Partition number {partition} is out of range for placement group '{}': use 1 to {}.",
            group.name, group.partition_count
        )));
    }
    Ok(())
}

/// For a cluster group: refuses an AZ other than that of its members.
pub fn check_cluster_zone(group: &Group<'_>, members: &[Member], az: &str) -> ApiResult<()> {
    if group.strategy != Strategy::Cluster {
        return Ok(());
    }
    match members.iter().find(|m| m.az != az) {
        Some(m) => Err(ApiError::invalid(format!(
            "The cluster placement group '{}' has instances in {}; its instances must all be in \
             that availability zone, not {az}.",
            group.name, m.az
        ))),
        None => Ok(()),
    }
}

/// The AZ a cluster group's instances are in, if it has any.
pub fn cluster_zone<'m>(group: &Group<'_>, members: &'m [Member]) -> Option<&'m str> {
    (group.strategy == Strategy::Cluster)
        .then(|| members.first().map(|m| m.az.as_str()))
        .flatten()
}

/// Places between `min` and `max` new instances of `group` in `az`: as many as fit, or
/// `InsufficientInstanceCapacity` when fewer than `min` do. `partition` 0 lets the
/// scheduler choose.
pub fn place(
    group: &Group<'_>,
    racks: &[String],
    members: &[Member],
    az: &str,
    partition: i32,
    min: usize,
    max: usize,
) -> ApiResult<Vec<Slot>> {
    check_partition(group, partition)?;
    check_cluster_zone(group, members, az)?;
    match group.strategy {
        Strategy::Spread => spread(group, racks, members, az, min, max),
        Strategy::Partition => Ok(partitioned(group, racks, members, partition, max)),
        Strategy::Cluster => {
            let rack = members
                .iter()
                .find(|m| m.active && !m.rack.is_empty())
                .or_else(|| members.iter().find(|m| !m.rack.is_empty()))
                .map(|m| m.rack.clone())
                .or_else(|| racks.first().cloned())
                .unwrap_or_default();
            Ok(vec![Slot { rack, partition: 0 }; max])
        }
    }
}

/// Places an instance that is starting again, keeping its rack when the rules allow.
pub fn replace(
    group: &Group<'_>,
    racks: &[String],
    others: &[Member],
    az: &str,
    current: &Slot,
) -> ApiResult<Slot> {
    let keep = match group.strategy {
        Strategy::Spread => {
            let free = !current.rack.is_empty()
                && racks.contains(&current.rack)
                && !others
                    .iter()
                    .any(|m| m.active && m.az == az && m.rack == current.rack);
            free && spread_capacity(racks, others, az) > 0
        }
        Strategy::Partition => {
            current.partition >= 1
                && partition_racks(racks, group.partition_count, current.partition)
                    .contains(&current.rack)
        }
        // A cluster's instances follow its active ones.
        Strategy::Cluster => !others.iter().any(|m| m.active) && !current.rack.is_empty(),
    };
    if keep {
        return Ok(current.clone());
    }
    let partition = if group.strategy == Strategy::Partition {
        current.partition.clamp(0, group.partition_count)
    } else {
        0
    };
    let mut slots = place(group, racks, others, az, partition, 1, 1)?;
    slots
        .pop()
        .ok_or_else(|| ApiError::internal("the scheduler placed nothing"))
}

/// How many more instances a spread group takes in `az`.
fn spread_capacity(racks: &[String], members: &[Member], az: &str) -> usize {
    let active: Vec<&Member> = members.iter().filter(|m| m.active && m.az == az).collect();
    let used: HashSet<&str> = active.iter().map(|m| m.rack.as_str()).collect();
    let free = racks.iter().filter(|r| !used.contains(r.as_str())).count();
    MAX_SPREAD_PER_AZ
        .min(racks.len())
        .saturating_sub(active.len())
        .min(free)
}

fn spread(
    group: &Group<'_>,
    racks: &[String],
    members: &[Member],
    az: &str,
    min: usize,
    max: usize,
) -> ApiResult<Vec<Slot>> {
    let capacity = spread_capacity(racks, members, az);
    if capacity < min {
        let active = members.iter().filter(|m| m.active && m.az == az).count();
        return Err(ApiError::new(
            ErrorCode::InsufficientInstanceCapacity,
            format!(
                "There is not enough capacity in spread placement group '{}' for {min} more \
                 instance(s) in {az}: it has {active} running there, and a spread group puts \
                 each instance on a rack of its own, at most {} per availability zone \
                 (this host has {} racks).",
                group.name,
                MAX_SPREAD_PER_AZ.min(racks.len()),
                racks.len()
            ),
        ));
    }
    let used: HashSet<&str> = members
        .iter()
        .filter(|m| m.active && m.az == az)
        .map(|m| m.rack.as_str())
        .collect();
    Ok(racks
        .iter()
        .filter(|r| !used.contains(r.as_str()))
        .take(capacity.min(max))
        .map(|r| Slot {
            rack: r.clone(),
            partition: 0,
        })
        .collect())
}

fn partitioned(
    group: &Group<'_>,
    racks: &[String],
    members: &[Member],
    partition: i32,
    count: usize,
) -> Vec<Slot> {
    // Partition loads count every member (a stopped one keeps its partition); rack loads
    // only the active ones.
    let mut part_load: HashMap<i32, usize> = HashMap::new();
    let mut rack_load: HashMap<String, usize> = HashMap::new();
    for m in members {
        *part_load.entry(m.partition).or_default() += 1;
        if m.active {
            *rack_load.entry(m.rack.clone()).or_default() += 1;
        }
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let p = if partition != 0 {
            partition
        } else {
            (1..=group.partition_count.max(1))
                .min_by_key(|p| (part_load.get(p).copied().unwrap_or(0), *p))
                .unwrap_or(1)
        };
        let candidates = partition_racks(racks, group.partition_count, p);
        let rack = candidates
            .iter()
            .enumerate()
            .min_by_key(|(i, r)| (rack_load.get(*r).copied().unwrap_or(0), *i))
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        *part_load.entry(p).or_default() += 1;
        *rack_load.entry(rack.clone()).or_default() += 1;
        out.push(Slot { rack, partition: p });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn racks(n: usize) -> Vec<String> {
        (1..=n).map(|k| format!("rack-{k}")).collect()
    }

    fn group(strategy: Strategy, partitions: i32) -> Group<'static> {
        Group {
            name: "g",
            strategy,
            partition_count: partitions,
        }
    }

    fn member(az: &str, rack: &str, partition: i32, active: bool) -> Member {
        Member {
            az: az.into(),
            rack: rack.into(),
            partition,
            active,
        }
    }

    #[test]
    fn partitions_own_disjoint_racks() {
        let r = racks(7);
        assert_eq!(
            partition_racks(&r, 2, 1),
            ["rack-1", "rack-3", "rack-5", "rack-7"]
        );
        assert_eq!(partition_racks(&r, 2, 2), ["rack-2", "rack-4", "rack-6"]);
        let all: Vec<String> = (1..=3).flat_map(|k| partition_racks(&r, 3, k)).collect();
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!((all.len(), distinct.len()), (7, 7));
        // More partitions than racks (a shrunken config) still gives each one a rack.
        assert_eq!(partition_racks(&racks(2), 3, 3), ["rack-1"]);
    }

    #[test]
    fn spread_puts_each_instance_on_its_own_rack_up_to_the_limit() {
        let g = group(Strategy::Spread, 0);
        let r = racks(3);
        let slots = place(&g, &r, &[], "a", 0, 2, 2).unwrap();
        assert_eq!(
            slots.iter().map(|s| s.rack.as_str()).collect::<Vec<_>>(),
            ["rack-1", "rack-2"]
        );
        let members = vec![
            member("a", "rack-1", 0, true),
            member("a", "rack-2", 0, true),
        ];
        assert_eq!(
            place(&g, &r, &members, "a", 0, 1, 1).unwrap()[0].rack,
            "rack-3"
        );
        // Min/max: as many as fit.
        assert_eq!(place(&g, &r, &members, "a", 0, 1, 5).unwrap().len(), 1);
        let full = vec![
            member("a", "rack-1", 0, true),
            member("a", "rack-2", 0, true),
            member("a", "rack-3", 0, true),
        ];
        let e = place(&g, &r, &full, "a", 0, 1, 1).unwrap_err();
        assert_eq!(e.code, "InsufficientInstanceCapacity");
        assert!(e.message.contains("3 racks"), "{}", e.message);
        // Another AZ has its own seven; stopped members hold no rack.
        assert_eq!(place(&g, &r, &full, "b", 0, 3, 3).unwrap().len(), 3);
        let stopped = vec![member("a", "rack-1", 0, false)];
        assert_eq!(place(&g, &r, &stopped, "a", 0, 3, 3).unwrap().len(), 3);
        // Seven per AZ even on a host with more racks.
        let many = racks(10);
        let seven: Vec<Member> = many[..7].iter().map(|r| member("a", r, 0, true)).collect();
        assert_eq!(
            place(&g, &many, &seven, "a", 0, 1, 1).unwrap_err().code,
            "InsufficientInstanceCapacity"
        );
    }

    #[test]
    fn partition_numbers_are_honoured_or_balanced() {
        let g = group(Strategy::Partition, 3);
        let r = racks(7);
        let slots = place(&g, &r, &[], "a", 0, 4, 4).unwrap();
        assert_eq!(
            slots.iter().map(|s| s.partition).collect::<Vec<_>>(),
            [1, 2, 3, 1]
        );
        for s in &slots {
            assert!(
                partition_racks(&r, 3, s.partition).contains(&s.rack),
                "{s:?}"
            );
        }
        // Partition 1's two instances are on different racks of its own.
        assert_ne!(slots[0].rack, slots[3].rack);
        let slots = place(&g, &r, &[], "a", 2, 2, 2).unwrap();
        assert!(slots.iter().all(|s| s.partition == 2));
        let members = vec![
            member("a", "rack-1", 1, false),
            member("a", "rack-2", 2, true),
        ];
        assert_eq!(
            place(&g, &r, &members, "a", 0, 1, 1).unwrap()[0].partition,
            3
        );
        for bad in [4, -1] {
            assert_eq!(
                place(&g, &r, &[], "a", bad, 1, 1).unwrap_err().code,
                "InvalidParameterValue"
            );
        }
        let spread = group(Strategy::Spread, 0);
        assert!(place(&spread, &r, &[], "a", 1, 1, 1).is_err());
    }

    #[test]
    fn cluster_groups_keep_one_zone_and_one_rack() {
        let g = group(Strategy::Cluster, 0);
        let r = racks(7);
        assert!(place(&g, &r, &[], "a", 0, 3, 3)
            .unwrap()
            .iter()
            .all(|s| s.rack == "rack-1"));
        let members = vec![member("a", "rack-4", 0, true)];
        assert_eq!(
            place(&g, &r, &members, "a", 0, 1, 1).unwrap()[0].rack,
            "rack-4"
        );
        let e = place(&g, &r, &members, "b", 0, 1, 1).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(
            e.message.contains("in a;") || e.message.contains("instances in a"),
            "{}",
            e.message
        );
        assert_eq!(cluster_zone(&g, &members), Some("a"));
    }

    #[test]
    fn restarts_keep_their_rack_when_they_can() {
        let r = racks(3);
        let spread = group(Strategy::Spread, 0);
        let mine = Slot {
            rack: "rack-2".into(),
            partition: 0,
        };
        assert_eq!(replace(&spread, &r, &[], "a", &mine).unwrap(), mine);
        let taken = vec![member("a", "rack-2", 0, true)];
        assert_eq!(
            replace(&spread, &r, &taken, "a", &mine).unwrap().rack,
            "rack-1"
        );
        let full = vec![
            member("a", "rack-1", 0, true),
            member("a", "rack-2", 0, true),
            member("a", "rack-3", 0, true),
        ];
        assert_eq!(
            replace(&spread, &r, &full, "a", &mine).unwrap_err().code,
            "InsufficientInstanceCapacity"
        );
        let part = group(Strategy::Partition, 2);
        let p = Slot {
            rack: String::new(),
            partition: 2,
        };
        assert_eq!(
            replace(&part, &r, &[], "a", &p).unwrap(),
            Slot {
                rack: "rack-2".into(),
                partition: 2
            }
        );
    }
}
