//! The region's index from resource IDs to the hosts that hold them (volumes today), so
//! that any host can send a call about a volume to its host: `owners/<host>/<resource-id>`
//! holds the owning account (JSON), as `reservations/<host>/<instance-id>` does for
//! instances. Keys sit under their host, as reservations do, so that a host lists and
//! repairs its own in one read and a host that leaves for good is removed with one prefix.
//!
//! The host that holds a resource writes its key after its database has the resource and
//! removes it after the record is gone; while etcd is away it writes nothing and the
//! reconciler (`reconcile`) puts back what its database has, and drops what it no longer
//! has, when etcd answers again. A stale key only sends a call to a host that answers
//! NotFound, as it would without a region.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::etcd::{Entry, EtcdError};
use super::Region;

/// Key prefix of the owner index.
pub const OWNERS: &str = "owners/";

/// What an index key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned {
    /// The account the resource belongs to.
    pub account: String,
}

/// The key of `id` held by `host`.
pub fn owner_key(host: &str, id: &str) -> String {
    format!("{OWNERS}{host}/{id}")
}

/// `(host, id, account)` of a listed index key; `None` for a key of another shape or a
/// value that does not decode (skipped: one bad key must not hide the others).
fn entry(e: &Entry) -> Option<(&str, &str, String)> {
    let (host, id) = e.key.strip_prefix(OWNERS)?.split_once('/')?;
    let owned = serde_json::from_slice::<Owned>(&e.value).ok()?;
    Some((host, id, owned.account))
}

/// Resource ID → host, for `account`'s entries among `entries`.
pub fn hosts_of(entries: &[Entry], account: &str) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(entry)
        .filter(|(_, _, a)| a == account)
        .map(|(host, id, _)| (id.to_string(), host.to_string()))
        .collect()
}

/// What the reconciler changes in one host's index.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OwnerRepair {
    /// `(id, account)` keys to put (missing, or naming another account).
    pub put: Vec<(String, String)>,
    /// IDs whose keys go (the database no longer has them).
    pub drop: Vec<String>,
}

/// Compares the host's keys (`indexed`: ID → account, read before `held`) with what its
/// database holds (`held`: `(id, account)`). Reading the keys first makes a key that is
/// missing from `held` one whose resource was gone before the database was read: a resource
/// created meanwhile is in `held`, so it is never dropped.
pub fn repair(indexed: &BTreeMap<String, String>, held: &[(String, String)]) -> OwnerRepair {
    let mut out = OwnerRepair::default();
    for (id, account) in held {
        if indexed.get(id) != Some(account) {
            out.put.push((id.clone(), account.clone()));
        }
    }
    for id in indexed.keys() {
        if !held.iter().any(|(h, _)| h == id) {
            out.drop.push(id.clone());
        }
    }
    out
}

impl Region {
    /// Records that this host holds `id` of `account`.
    pub async fn put_owner(&self, id: &str, account: &str) -> Result<(), EtcdError> {
        let v = serde_json::to_vec(&Owned {
            account: account.to_string(),
        })
        .map_err(|e| EtcdError::Decode(id.to_string(), e))?;
        let mut c = self.etcd().await?;
        let r = c.put(&owner_key(&self.cfg.host, id), v, None).await;
        self.note(r).await
    }

    /// Removes this host's key of `id`.
    pub async fn drop_owner(&self, id: &str) -> Result<(), EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.delete(&owner_key(&self.cfg.host, id)).await;
        self.note(r).await
    }

    /// This host's keys whose IDs start with `prefix` (`vol-`): ID → account.
    pub async fn owned_here(&self, prefix: &str) -> Result<BTreeMap<String, String>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(&format!("{OWNERS}{}/{prefix}", self.cfg.host)).await;
        let (_, entries) = self.note(r).await?;
        Ok(entries
            .iter()
            .filter_map(entry)
            .map(|(_, id, account)| (id.to_string(), account))
            .collect())
    }

    /// Every host whose index has a key for `id` (an AMI is held by each host that has its
    /// files), whatever the account.
    pub async fn hosts_holding(&self, id: &str) -> Result<Vec<String>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(OWNERS).await;
        let (_, entries) = self.note(r).await?;
        Ok(entries
            .iter()
            .filter_map(entry)
            .filter(|(_, i, _)| *i == id)
            .map(|(host, _, _)| host.to_string())
            .collect())
    }

    /// The hosts that hold `account`'s resources among `ids`: host → its IDs, in the order
    /// asked; an ID the index does not name for `account` is left out (the caller answers
    /// for it here). One read of the index per call, as [`Region::owners_of`] does for
    /// reservations.
    pub async fn holders_of(
        &self,
        account: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(OWNERS).await;
        let (_, entries) = self.note(r).await?;
        Ok(super::route::by_owner(ids, &hosts_of(&entries, account)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(key: &str, account: &str) -> Entry {
        Entry {
            key: key.to_string(),
            value: serde_json::to_vec(&Owned {
                account: account.into(),
            })
            .unwrap(),
            mod_revision: 1,
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_index_names_each_accounts_volumes_hosts() {
        let mut bad = e("owners/h3/vol-3", "1");
        bad.value = b"{".to_vec();
        let entries = [
            e("owners/h1/vol-1", "1"),
            e("owners/h2/vol-2", "1"),
            e("owners/h2/vol-9", "2"),
            e("owners/nohost", "1"),
            bad,
        ];
        let got = hosts_of(&entries, "1");
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            pairs(&[("vol-1", "h1"), ("vol-2", "h2")])
        );
        // Another account's volume is not the caller's to route.
        assert_eq!(hosts_of(&entries, "2").len(), 1);
        assert_eq!(owner_key("h2", "vol-2"), "owners/h2/vol-2");
    }

    #[test]
    fn repair_follows_the_database() {
        let indexed: BTreeMap<String, String> =
            pairs(&[("vol-kept", "1"), ("vol-gone", "1"), ("vol-moved", "1")])
                .into_iter()
                .collect();
        let held = pairs(&[("vol-kept", "1"), ("vol-moved", "2"), ("vol-new", "1")]);
        let fix = repair(&indexed, &held);
        assert_eq!(fix.put, pairs(&[("vol-moved", "2"), ("vol-new", "1")]));
        assert_eq!(fix.drop, ["vol-gone"]);
        assert_eq!(repair(&BTreeMap::new(), &[]), OwnerRepair::default());
    }
}
