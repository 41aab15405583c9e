//! Security group members across hosts: a rule whose source is a group matches the
//! addresses of that group's interfaces on every host of the region, not only the
//! enforcing host's.
//!
//! `members/<host>/<group>` lists the addresses (with their subnets) of `host`'s interfaces
//! in `group`, for groups of region subnets. Each host's reconciler writes its own keys
//! when they differ from its database and reads the other hosts' keys every pass; when
//! those changed it applies its firewall again, so a member that comes or goes on one host
//! is matched or dropped on the others within a few seconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::etcd::EtcdError;
use super::Region;

/// Key prefix of the member lists.
pub const MEMBERS: &str = "members/";

/// One host's members of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// The group's account.
    pub account: String,
    /// `(subnet, address)` of each address (IPv4 or IPv6) of the host's interfaces in the
    /// group, sorted.
    pub addrs: Vec<(String, String)>,
}

/// Group → the other hosts' members of it, `(subnet, address)`.
pub type Remote = BTreeMap<String, Vec<(String, String)>>;

/// The key of `host`'s members of `group`.
pub fn member_key(host: &str, group: &str) -> String {
    format!("{MEMBERS}{host}/{group}")
}

/// What a host writes: its lists that differ from `indexed`, and its keys to delete.
pub fn plan(
    indexed: &BTreeMap<String, Members>,
    held: &BTreeMap<String, Members>,
) -> (Vec<String>, Vec<String>) {
    let put = held
        .iter()
        .filter(|(g, m)| indexed.get(*g) != Some(*m))
        .map(|(g, _)| g.clone())
        .collect();
    let drop = indexed
        .keys()
        .filter(|g| !held.contains_key(*g))
        .cloned()
        .collect();
    (put, drop)
}

/// The other hosts' members of each group among `entries` (`host/group` → members).
pub fn others(me: &str, entries: &[(String, Members)]) -> Remote {
    let mut out = Remote::new();
    for (key, m) in entries {
        let Some((host, group)) = key.split_once('/') else {
            continue;
        };
        if host == me {
            continue;
        }
        let list = out.entry(group.to_string()).or_default();
        list.extend(m.addrs.iter().cloned());
        list.sort();
        list.dedup();
    }
    out
}

impl Region {
    async fn member_entries(&self, prefix: &str) -> Result<Vec<(String, Members)>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(&format!("{MEMBERS}{prefix}")).await;
        let (_, entries) = self.note(r).await?;
        Ok(entries
            .iter()
            .filter_map(|e| {
                let key = e.key.strip_prefix(MEMBERS)?.to_string();
                Some((key, serde_json::from_slice::<Members>(&e.value).ok()?))
            })
            .collect())
    }

    /// Brings this host's member lists in step with `held` (group → members here).
    pub async fn repair_members(
        &self,
        held: impl FnOnce() -> crate::error::ApiResult<BTreeMap<String, Members>>,
    ) {
        let me = self.host().to_string();
        let Ok(mine) = self.member_entries(&format!("{me}/")).await else {
            return;
        };
        let Ok(held) = held() else {
            return;
        };
        let indexed: BTreeMap<String, Members> = mine
            .into_iter()
            .filter_map(|(k, m)| Some((k.split_once('/')?.1.to_string(), m)))
            .collect();
        let (put, drop) = plan(&indexed, &held);
        let Ok(mut c) = self.etcd().await else {
            return;
        };
        for g in &put {
            let Ok(v) = serde_json::to_vec(&held[g]) else {
                return;
            };
            let r = c.put(&member_key(&me, g), v, None).await;
            if self.note(r).await.is_err() {
                return;
            }
        }
        for g in &drop {
            let r = c.delete(&member_key(&me, g)).await;
            if self.note(r).await.is_err() {
                return;
            }
        }
    }

    /// Reads the other hosts' members; whether they changed since the last read.
    pub async fn refresh_remote_members(&self) -> bool {
        let Ok(entries) = self.member_entries("").await else {
            return false;
        };
        let now = others(self.host(), &entries);
        let mut seen = self
            .remote_members
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *seen == now {
            return false;
        }
        *seen = now;
        true
    }

    /// The other hosts' members of each group, as last read.
    pub fn remote_members(&self) -> Remote {
        self.remote_members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(addrs: &[(&str, &str)]) -> Members {
        Members {
            account: "1".into(),
            addrs: addrs
                .iter()
                .map(|(s, a)| (s.to_string(), a.to_string()))
                .collect(),
        }
    }

    #[test]
    fn each_host_writes_its_own_and_reads_the_others() {
        let indexed: BTreeMap<String, Members> = [
            ("sg-same".to_string(), m(&[("subnet-1", "10.0.0.4")])),
            ("sg-moved".to_string(), m(&[("subnet-1", "10.0.0.5")])),
            ("sg-gone".to_string(), m(&[("subnet-1", "10.0.0.6")])),
        ]
        .into();
        let held: BTreeMap<String, Members> = [
            ("sg-same".to_string(), m(&[("subnet-1", "10.0.0.4")])),
            ("sg-moved".to_string(), m(&[("subnet-1", "10.0.0.7")])),
            ("sg-new".to_string(), m(&[("subnet-1", "10.0.0.8")])),
        ]
        .into();
        let (put, drop) = plan(&indexed, &held);
        assert_eq!(put, ["sg-moved", "sg-new"]);
        assert_eq!(drop, ["sg-gone"]);

        let entries = vec![
            ("h1/sg-a".to_string(), m(&[("subnet-1", "10.0.0.4")])),
            ("h2/sg-a".to_string(), m(&[("subnet-1", "10.0.0.9")])),
            ("h3/sg-a".to_string(), m(&[("subnet-1", "10.0.0.5")])),
            ("h3/sg-b".to_string(), m(&[("subnet-2", "fd00::5")])),
            ("broken".to_string(), m(&[])),
        ];
        let o = others("h1", &entries);
        assert_eq!(
            o["sg-a"],
            [
                ("subnet-1".to_string(), "10.0.0.5".to_string()),
                ("subnet-1".to_string(), "10.0.0.9".to_string())
            ]
        );
        assert_eq!(o["sg-b"].len(), 1);
        assert_eq!(o.len(), 2);
        assert_eq!(member_key("h1", "sg-a"), "members/h1/sg-a");
    }
}
