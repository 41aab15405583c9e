//! Placement groups: CreatePlacementGroup, DescribePlacementGroups, DeletePlacementGroup and
//! ModifyInstancePlacement, and the scheduler's inputs (`super::scheduler`) for launches
//! and starts. Every decision is made under the cloud's placement lock.

use super::scheduler::{self, Group, Member, Slot, Strategy};
use crate::cloud::filters::{self, Filter};
use crate::cloud::Cloud;
use crate::db::instances::{Instance, Tag};
use crate::db::placement::PlacementGroup;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};
use crate::lifecycle::State;

/// Groups per account (EC2: 500 per region).
pub const MAX_GROUPS: usize = 500;
/// Longest group or key pair name (EC2: 255 ASCII characters).
pub const MAX_NAME: usize = 255;

/// Filter names of DescribePlacementGroups.
pub const FILTERS: &[&str] = &[
    "group-name",
    "group-id",
    "strategy",
    "state",
    "spread-level",
    "partition-count",
    "tag-key",
];

/// Checks a user-chosen name: 1 to 255 printable ASCII characters.
pub fn check_name(what: &str, name: &str) -> ApiResult<()> {
    if name.is_empty() {
        return Err(ApiError::missing(what));
    }
    if name.len() > MAX_NAME || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ApiError::invalid(format!(
            "Invalid {what} '{}': use 1 to {MAX_NAME} printable ASCII characters.",
            name.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// `InvalidPlacementGroup.Unknown` for a name.
pub fn unknown(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidPlacementGroupUnknown,
        format!(
            "The Placement Group '{}' is unknown.",
            name.chars().take(64).collect::<String>()
        ),
    )
}

/// The scheduler's view of a stored group.
pub fn view(g: &PlacementGroup) -> Group<'_> {
    Group {
        name: &g.name,
        strategy: Strategy::parse(&g.strategy).unwrap_or(Strategy::Spread),
        partition_count: g.partition_count,
    }
}

/// Whether an instance in this state is on the hardware (holds a rack).
pub fn is_active(state: State) -> bool {
    matches!(
        state,
        State::Pending | State::Running | State::Stopping | State::ShuttingDown
    )
}

fn member(i: &Instance) -> Member {
    Member {
        az: i.az.clone(),
        rack: i.rack.clone(),
        partition: i.partition_number,
        active: is_active(i.state),
    }
}

impl Cloud {
    /// CreatePlacementGroup.
    pub fn create_placement_group(
        &self,
        account: &str,
        name: &str,
        strategy: &str,
        partition_count: i32,
        spread_level: &str,
        tags: Vec<Tag>,
    ) -> ApiResult<PlacementGroup> {
        check_name("GroupName", name)?;
        if strategy.is_empty() {
            return Err(ApiError::missing("Strategy"));
        }
        let strategy = Strategy::parse(strategy)?;
        let partition_count = match (strategy, partition_count) {
            (Strategy::Partition, 0) => scheduler::DEFAULT_PARTITIONS,
            (Strategy::Partition, n) if (1..=scheduler::MAX_PARTITIONS).contains(&n) => n,
            (Strategy::Partition, n) => {
                return Err(ApiError::invalid(format!(
                    "PartitionCount {n} is out of range: use 1 to {}.",
                    scheduler::MAX_PARTITIONS
                )))
            }
            (_, 0) => 0,
            (s, _) => {
                return Err(ApiError::invalid(format!(
                    "PartitionCount is valid only for the partition strategy, not {}.",
                    s.name()
                )))
            }
        };
        // Partitions own disjoint racks, so there can be no more of them than racks. In a
        // region of hosts the racks are the region's, which come and go: a partition with no
        // rack of its own then refuses the launch (InsufficientInstanceCapacity) instead.
        if self.cluster.is_none() && partition_count as usize > self.cfg.racks.len() {
            return Err(ApiError::invalid(format!(
                "PartitionCount {partition_count} exceeds the {} racks of this host (config racks).",
                self.cfg.racks.len()
            )));
        }
        let spread_level = match (strategy, spread_level) {
            (Strategy::Spread, "" | "rack") => "rack",
            (Strategy::Spread, other) => {
                return Err(ApiError::invalid(format!(
                    "SpreadLevel '{}' is not supported: this host spreads over racks.",
                    other.chars().take(32).collect::<String>()
                )))
            }
            (_, "") => "",
            (s, _) => {
                return Err(ApiError::invalid(format!(
                    "SpreadLevel is valid only for the spread strategy, not {}.",
                    s.name()
                )))
            }
        };
        let _placement = self.placement_lock();
        if self.db.placement_groups(account)?.len() >= MAX_GROUPS {
            return Err(ApiError::new(
                ErrorCode::PlacementGroupLimitExceeded,
                format!("An account may have at most {MAX_GROUPS} placement groups."),
            ));
        }
        let g = PlacementGroup {
            id: ids::new_id(Kind::PlacementGroup),
            owner: account.to_string(),
            name: name.to_string(),
            strategy: strategy.name().to_string(),
            partition_count,
            spread_level: spread_level.to_string(),
            tags,
            created: crate::db::now_s(),
        };
        if !self.db.insert_placement_group(&g)? {
            return Err(ApiError::new(
                ErrorCode::InvalidPlacementGroupDuplicate,
                format!("The Placement Group '{name}' already exists."),
            ));
        }
        Ok(g)
    }

    /// DescribePlacementGroups: the named ones (each must exist) or all, filtered.
    pub fn describe_placement_groups(
        &self,
        account: &str,
        names: &[String],
        group_ids: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<PlacementGroup>> {
        filters::check_names(f, FILTERS)?;
        ids::check_all(Kind::PlacementGroup, group_ids)?;
        let all = self.db.placement_groups(account)?;
        if let Some(n) = names.iter().find(|n| !all.iter().any(|g| &g.name == *n)) {
            return Err(unknown(n));
        }
        if let Some(id) = group_ids
            .iter()
            .find(|id| !all.iter().any(|g| &g.id == *id))
        {
            return Err(Kind::PlacementGroup.not_found(id));
        }
        let mut out = Vec::new();
        for g in all {
            if (!names.is_empty() || !group_ids.is_empty())
                && !names.contains(&g.name)
                && !group_ids.contains(&g.id)
            {
                continue;
            }
            let ok = filters::matches(f, |name| {
                let one = |s: &str| Some(vec![s.to_string()]);
                match name {
                    "group-name" => one(&g.name),
                    "group-id" => one(&g.id),
                    "strategy" => one(&g.strategy),
                    "state" => one("available"),
                    "spread-level" => one(&g.spread_level),
                    "partition-count" => one(&g.partition_count.to_string()),
                    n => filters::tag_values(&g.tags, n),
                }
            })?;
            if ok {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// DeletePlacementGroup: refused while an instance that is not terminated is in it.
    pub fn delete_placement_group(&self, account: &str, name: &str) -> ApiResult<()> {
        check_name("GroupName", name)?;
        let _placement = self.placement_lock();
        let g = self.placement_group_named(account, name)?;
        if !self.db.delete_placement_group(&g.id)? {
            return Err(ApiError::new(
                ErrorCode::InvalidPlacementGroupInUse,
                format!("The placement group '{name}' is in use and may not be deleted."),
            ));
        }
        Ok(())
    }

    /// One of an account's groups by name, or `InvalidPlacementGroup.Unknown`.
    pub fn placement_group_named(&self, account: &str, name: &str) -> ApiResult<PlacementGroup> {
        self.db
            .placement_group_by_name(account, name)?
            .ok_or_else(|| unknown(name))
    }

    /// The members of a group (instances that are not terminated), less `except`.
    pub fn group_members(&self, group_id: &str, except: Option<&str>) -> ApiResult<Vec<Member>> {
        Ok(self
            .db
            .instances_in_group(group_id)?
            .iter()
            .filter(|i| i.state != State::Terminated && Some(i.id.as_str()) != except)
            .map(member)
            .collect())
    }

    /// ModifyInstancePlacement: moves a stopped instance into a group (`group_name` or
    /// `group_id`), to another partition, or out of its group (both empty). Its rack is
    /// chosen when it starts.
    pub fn modify_instance_placement(
        &self,
        account: &str,
        instance_id: &str,
        group_name: &str,
        group_id: &str,
        partition: i32,
    ) -> ApiResult<()> {
        let inst = self.owned_instance(account, instance_id)?;
        let _placement = self.placement_lock();
        // Re-read under the lock: a start may have begun since.
        let inst = self.db.instance(&inst.id)?.unwrap_or(inst);
        if inst.state != State::Stopped {
            return Err(ApiError::incorrect_state(
                &inst.id,
                inst.state.name(),
                "moved into or out of a placement group (it must be stopped)",
            ));
        }
        if group_name.is_empty() && group_id.is_empty() {
            if partition != 0 {
                return Err(ApiError::invalid("PartitionNumber needs a GroupName."));
            }
            self.db.set_placement(&inst.id, "", 0, "")?;
            return Ok(());
        }
        let g = if group_id.is_empty() {
            self.placement_group_named(account, group_name)?
        } else {
            ids::check(Kind::PlacementGroup, group_id)?;
            match self.db.placement_group(group_id)? {
                Some(g)
                    if g.owner == account && (group_name.is_empty() || g.name == group_name) =>
                {
                    g
                }
                _ => return Err(Kind::PlacementGroup.not_found(group_id)),
            }
        };
        let group = view(&g);
        scheduler::check_partition(&group, partition)?;
        let members = self.group_members(&g.id, Some(&inst.id))?;
        scheduler::check_cluster_zone(&group, &members, &inst.az)?;
        let partition = match group.strategy {
            Strategy::Partition if partition != 0 => partition,
            // Staying in the same group keeps the partition it has.
            Strategy::Partition if inst.placement_group == g.id && inst.partition_number > 0 => {
                inst.partition_number
            }
            Strategy::Partition => {
                scheduler::place(&group, &self.cfg.racks, &members, &inst.az, 0, 1, 1)?
                    .first()
                    .map_or(1, |s| s.partition)
            }
            _ => 0,
        };
        self.db.set_placement(&inst.id, &g.id, partition, "")?;
        Ok(())
    }

    /// Places instances of groups that are about to start (a rack each, kept where the rules
    /// allow); `InsufficientInstanceCapacity` when a spread group is full. The caller holds
    /// the placement lock until the instances are pending.
    pub fn place_for_start(&self, instances: &[Instance]) -> ApiResult<()> {
        // Instances placed by this call count as active, where they now are, for the ones
        // after them.
        let mut placed: std::collections::HashMap<String, Member> = Default::default();
        let mut updates = Vec::new();
        for inst in instances {
            if inst.placement_group.is_empty() || inst.state != State::Stopped {
                continue;
            }
            let Some(g) = self.db.placement_group(&inst.placement_group)? else {
                continue;
            };
            let others: Vec<Member> = self
                .db
                .instances_in_group(&g.id)?
                .iter()
                .filter(|i| i.state != State::Terminated && i.id != inst.id)
                .map(|i| placed.get(&i.id).cloned().unwrap_or_else(|| member(i)))
                .collect();
            let current = Slot {
                rack: inst.rack.clone(),
                partition: inst.partition_number,
            };
            let slot = scheduler::replace(&view(&g), &self.cfg.racks, &others, &inst.az, &current)?;
            placed.insert(
                inst.id.clone(),
                Member {
                    az: inst.az.clone(),
                    rack: slot.rack.clone(),
                    partition: slot.partition,
                    active: true,
                },
            );
            updates.push((inst.id.clone(), g.id.clone(), slot));
        }
        // Record only once every instance has a place, so a refused start changes nothing.
        for (id, gid, slot) in updates {
            self.db
                .set_placement(&id, &gid, slot.partition, &slot.rack)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "111111111111";

    fn instance(c: &Cloud, id: &str, state: State, group: &str, rack: &str) -> Instance {
        let mut i = crate::db::instances::tests::sample(id, A);
        i.state = state;
        i.placement_group = group.into();
        i.rack = rack.into();
        c.db.insert_instance(&i).unwrap();
        i
    }

    #[test]
    fn groups_through_the_cloud() {
        let (_dir, c) = crate::cloud::test_cloud();
        let g = c
            .create_placement_group(A, "web", "spread", 0, "", vec![])
            .unwrap();
        assert_eq!(g.spread_level, "rack");
        let e = c
            .create_placement_group(A, "web", "cluster", 0, "", vec![])
            .unwrap_err();
        assert_eq!(e.code, "InvalidPlacementGroup.Duplicate");
        let p = c
            .create_placement_group(A, "hdfs", "partition", 0, "", vec![])
            .unwrap();
        assert_eq!(p.partition_count, scheduler::DEFAULT_PARTITIONS);
        for (strategy, count) in [("partition", 8), ("spread", 2), ("mesh", 0)] {
            let e = c
                .create_placement_group(A, "x", strategy, count, "", vec![])
                .unwrap_err();
            assert_eq!(e.code, "InvalidParameterValue", "{strategy} {count}");
        }
        let listed = c
            .describe_placement_groups(
                A,
                &[],
                &[],
                &[Filter {
                    name: "strategy".into(),
                    values: vec!["partition".into()],
                }],
            )
            .unwrap();
        assert_eq!(listed, vec![p.clone()]);
        assert_eq!(
            c.describe_placement_groups(A, &["nope".into()], &[], &[])
                .unwrap_err()
                .code,
            "InvalidPlacementGroup.Unknown"
        );

        // A running member blocks deletion and moves; a stopped one may move.
        let run = instance(&c, "i-0000000000000000a", State::Running, &g.id, "rack-1");
        let stop = instance(&c, "i-0000000000000000b", State::Stopped, "", "");
        assert_eq!(
            c.delete_placement_group(A, "web").unwrap_err().code,
            "InvalidPlacementGroup.InUse"
        );
        assert_eq!(
            c.modify_instance_placement(A, &run.id, "", "", 0)
                .unwrap_err()
                .code,
            "IncorrectInstanceState"
        );
        c.modify_instance_placement(A, &stop.id, "hdfs", "", 2)
            .unwrap();
        let moved = c.db.instance(&stop.id).unwrap().unwrap();
        assert_eq!(
            (moved.placement_group.as_str(), moved.partition_number),
            (p.id.as_str(), 2)
        );
        assert_eq!(
            c.modify_instance_placement(A, &stop.id, "hdfs", "", 3)
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
        // Starting places it on a rack of partition 2.
        c.place_for_start(std::slice::from_ref(&moved)).unwrap();
        let placed = c.db.instance(&stop.id).unwrap().unwrap();
        assert_eq!(placed.rack, "rack-2");
        c.modify_instance_placement(A, &stop.id, "", "", 0).unwrap();
        assert_eq!(
            c.db.instance(&stop.id).unwrap().unwrap().placement_group,
            ""
        );
        c.db.set_state(&run.id, &[State::Running], State::Terminated, "")
            .unwrap();
        c.delete_placement_group(A, "web").unwrap();
        assert_eq!(
            c.delete_placement_group(A, "web").unwrap_err().code,
            "InvalidPlacementGroup.Unknown"
        );
    }

    #[test]
    fn names() {
        assert!(check_name("GroupName", "web-1 (prod)").is_ok());
        assert_eq!(
            check_name("GroupName", "").unwrap_err().code,
            "MissingParameter"
        );
        for bad in [
            "x".repeat(256),
            "naïve".to_string(),
            "tab\there".to_string(),
        ] {
            assert_eq!(
                check_name("GroupName", &bad).unwrap_err().code,
                "InvalidParameterValue"
            );
        }
    }
}
