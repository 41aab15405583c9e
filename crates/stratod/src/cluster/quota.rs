//! Exact per-account quotas across the region's hosts: each unit of a quota is a numbered
//! slot, `quota/<what>/<account>/<n>` for `n` below the quota, and a resource counts once it
//! holds one. A host claims the lowest free slot in a transaction that fails if another host
//! took it first (it then tries the next), so two hosts allocating for one account at the
//! same moment cannot together pass the quota, as counting mirrored records could.
//!
//! Elastic IPs use it (`what` = `address`, the slot holding the allocation ID). The slot goes
//! with ReleaseAddress; each host's reconciler drops its own slots whose allocation is gone
//! (a failed allocation, a release that could not reach etcd) and claims one back for an
//! allocation that has none (made before the region had slots, or etcd lost its data). An
//! allocation found holding two slots (two hosts put it back at once) keeps the lowest.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::etcd::{Cond, EtcdError, Op};
use super::Region;

/// Key prefix of the quota slots.
pub const QUOTA: &str = "quota/";
/// The quota of Elastic IPs.
pub const ADDRESS: &str = "address";
/// How old a slot with no resource behind it must be before its host drops it (an
/// allocation between its claim and its row is far younger).
const SLOT_STALE_MS: i64 = 30_000;

/// What a slot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The resource that holds it (`eipalloc-…`).
    pub id: String,
    /// The host that claimed it.
    pub host: String,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// A slot as listed: the account, its number, what it holds and its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The account.
    pub account: String,
    /// The slot's number.
    pub n: u32,
    /// What it holds.
    pub slot: Slot,
    /// Its key's mod revision (for a delete that must not remove a newer claim).
    pub rev: i64,
}

/// The key of `account`'s slot `n` of quota `what`.
pub fn slot_key(what: &str, account: &str, n: u32) -> String {
    format!("{QUOTA}{what}/{account}/{n}")
}

fn listed(what: &str, e: &super::etcd::Entry) -> Option<Listed> {
    let rest = e
        .key
        .strip_prefix(QUOTA)?
        .strip_prefix(what)?
        .strip_prefix('/')?;
    let (account, n) = rest.split_once('/')?;
    Some(Listed {
        account: account.to_string(),
        n: n.parse().ok()?,
        slot: serde_json::from_slice(&e.value).ok()?,
        rev: e.mod_revision,
    })
}

/// The slots a claim may try, lowest first, given the numbers `taken`: none once the
/// account holds `quota` slots (a slot above a lowered quota still counts), else every free
/// number below the quota.
pub fn free_slots(taken: &BTreeSet<u32>, quota: u32) -> Vec<u32> {
    if taken.len() >= quota as usize {
        return Vec::new();
    }
    (0..quota).filter(|n| !taken.contains(n)).collect()
}

/// What a host's reconciler changes in the slots of one quota.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SlotRepair {
    /// `(account, resource ID)` to claim a slot for (held here, in no slot).
    pub claim: Vec<(String, String)>,
    /// This host's slots to drop: their resource is gone, or holds a lower slot too.
    pub drop: Vec<Listed>,
}

/// Compares the slots of one quota (`slots`, read before `held`) with the resources this
/// host's database has (`held`: account, resource ID).
pub fn repair_slots(
    me: &str,
    slots: &[Listed],
    held: &[(String, String)],
    now_ms: i64,
) -> SlotRepair {
    let mut out = SlotRepair::default();
    // Each resource's lowest slot is the one it keeps.
    let mut kept: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for s in slots {
        let k = kept
            .entry((s.account.as_str(), s.slot.id.as_str()))
            .or_insert(s.n);
        *k = (*k).min(s.n);
    }
    for (account, id) in held {
        if !kept.contains_key(&(account.as_str(), id.as_str())) {
            out.claim.push((account.clone(), id.clone()));
        }
    }
    for s in slots.iter().filter(|s| s.slot.host == me) {
        let lower = kept[&(s.account.as_str(), s.slot.id.as_str())] < s.n;
        let gone = !held
            .iter()
            .any(|(a, id)| a == &s.account && id == &s.slot.id);
        if lower || (gone && now_ms - s.slot.at_ms > SLOT_STALE_MS) {
            out.drop.push(s.clone());
        }
    }
    out
}

impl Region {
    /// Every slot of quota `what`, or of one account's.
    pub async fn quota_slots(
        &self,
        what: &str,
        account: Option<&str>,
    ) -> Result<Vec<Listed>, EtcdError> {
        let prefix = match account {
            Some(a) => format!("{QUOTA}{what}/{a}/"),
            None => format!("{QUOTA}{what}/"),
        };
        let mut c = self.etcd().await?;
        let r = c.list(&prefix).await;
        let (_, entries) = self.note(r).await?;
        Ok(entries.iter().filter_map(|e| listed(what, e)).collect())
    }

    /// Claims a slot of `account`'s quota `what` (`quota` slots) for resource `id`: the one
    /// it holds already, else the lowest free one. `None` when the account holds them all.
    pub async fn claim_slot(
        &self,
        what: &str,
        account: &str,
        id: &str,
        quota: u32,
    ) -> Result<Option<u32>, EtcdError> {
        let slots = self.quota_slots(what, Some(account)).await?;
        if let Some(s) = slots.iter().find(|s| s.slot.id == id) {
            return Ok(Some(s.n));
        }
        let taken: BTreeSet<u32> = slots.iter().map(|s| s.n).collect();
        let slot = Slot {
            id: id.to_string(),
            host: self.cfg.host.clone(),
            at_ms: crate::db::now_ms(),
        };
        let mut c = self.etcd().await?;
        for n in free_slots(&taken, quota) {
            let key = slot_key(what, account, n);
            let v = serde_json::to_vec(&slot).map_err(|e| EtcdError::Decode(key.clone(), e))?;
            let r = c
                .txn(vec![Cond::ModRev(key.clone(), 0)], vec![Op::Put(key, v)])
                .await;
            if self.note(r).await?.is_some() {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    /// Frees every slot of `account`'s quota `what` that resource `id` holds (whichever
    /// host claimed it).
    pub async fn release_slot(&self, what: &str, account: &str, id: &str) -> Result<(), EtcdError> {
        for s in self.quota_slots(what, Some(account)).await? {
            if s.slot.id == id {
                self.drop_slot(what, &s).await?;
            }
        }
        Ok(())
    }

    /// Deletes slot `s` unless it changed since it was listed.
    async fn drop_slot(&self, what: &str, s: &Listed) -> Result<(), EtcdError> {
        let key = slot_key(what, &s.account, s.n);
        let mut c = self.etcd().await?;
        let r = c
            .txn(
                vec![Cond::ModRev(key.clone(), s.rev)],
                vec![Op::Delete(key)],
            )
            .await;
        self.note(r).await?;
        Ok(())
    }

    /// Brings the slots of quota `what` (`quota` slots per account) in step with the
    /// resources this host's database has (`held`: account, resource ID); `what` is also the
    /// kind of the resources' shared records, which a slot is claimed back only for. A resource that
    /// finds its account's slots all taken is logged: the account is over its quota (it
    /// allocated before the region counted slots, or the quota was lowered).
    pub async fn repair_quota_slots(
        &self,
        what: &str,
        quota: u32,
        held: impl FnOnce() -> crate::error::ApiResult<Vec<(String, String)>>,
    ) {
        let Ok(slots) = self.quota_slots(what, None).await else {
            return;
        };
        let Ok(held) = held() else {
            return;
        };
        let fix = repair_slots(&self.cfg.host, &slots, &held, crate::db::now_ms());
        for (account, id) in &fix.claim {
            // A row whose record the region withdrew a moment ago (released on another
            // host, not yet mirrored here) takes no slot.
            match self.shared_one(what, id).await {
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(_) => return,
            }
            match self.claim_slot(what, account, id, quota).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::debug!(%account, %id, what, "no free quota slot: the account is over its quota")
                }
                Err(_) => return,
            }
        }
        for s in &fix.drop {
            if self.drop_slot(what, s).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(account: &str, n: u32, id: &str, host: &str, at_ms: i64) -> Listed {
        Listed {
            account: account.into(),
            n,
            slot: Slot {
                id: id.into(),
                host: host.into(),
                at_ms,
            },
            rev: 7,
        }
    }

    #[test]
    fn a_claim_tries_the_lowest_free_slots_below_the_quota() {
        let taken = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(free_slots(&taken(&[]), 3), [0, 1, 2]);
        assert_eq!(free_slots(&taken(&[0, 2]), 3), [1]);
        assert!(free_slots(&taken(&[0, 1, 2]), 3).is_empty());
        assert!(free_slots(&taken(&[]), 0).is_empty());
        // A slot above a lowered quota still counts: two held of a quota of two.
        assert!(free_slots(&taken(&[0, 4]), 2).is_empty());
        assert_eq!(free_slots(&taken(&[4]), 2), [0, 1]);
    }

    #[test]
    fn slot_keys_round_trip() {
        let key = slot_key(ADDRESS, "000000000001", 3);
        assert_eq!(key, "quota/address/000000000001/3");
        let v = serde_json::to_vec(&Slot {
            id: "eipalloc-1".into(),
            host: "h1".into(),
            at_ms: 5,
        })
        .unwrap();
        let e = super::super::etcd::Entry {
            key,
            value: v,
            mod_revision: 9,
        };
        let l = listed(ADDRESS, &e).unwrap();
        assert_eq!((l.account.as_str(), l.n, l.rev), ("000000000001", 3, 9));
        assert_eq!(l.slot.id, "eipalloc-1");
        assert!(listed("volume", &e).is_none());
        let bad = super::super::etcd::Entry {
            key: "quota/address/1/x".into(),
            ..e
        };
        assert!(listed(ADDRESS, &bad).is_none());
    }

    #[test]
    fn slots_follow_the_allocations() {
        let now = 1_000_000;
        let slots = [
            slot("1", 0, "eipalloc-kept", "h1", 0),
            slot("1", 1, "eipalloc-gone", "h1", 0),
            slot("1", 2, "eipalloc-young", "h1", now - 1_000),
            slot("1", 3, "eipalloc-elsewhere", "h2", 0),
            slot("2", 0, "eipalloc-twice", "h2", 0),
            slot("2", 1, "eipalloc-twice", "h1", 0),
        ];
        let held: Vec<(String, String)> = [
            ("1", "eipalloc-kept"),
            ("1", "eipalloc-lost"),
            ("2", "eipalloc-twice"),
        ]
        .iter()
        .map(|(a, i)| (a.to_string(), i.to_string()))
        .collect();
        let fix = repair_slots("h1", &slots, &held, now);
        assert_eq!(fix.claim, [("1".to_string(), "eipalloc-lost".to_string())]);
        let dropped: Vec<(&str, u32)> =
            fix.drop.iter().map(|s| (s.account.as_str(), s.n)).collect();
        // Gone and old: dropped; young (an allocation on its way): kept; another host's:
        // left to it; a second slot of one allocation: dropped, the lowest kept.
        assert_eq!(dropped, [("1", 1), ("2", 1)]);
    }
}
