//! Region-scoped resources in etcd: key pairs, placement groups and the other kinds whose
//! one record every host of the region must see (`mirror` keeps each host's database in
//! step with them).
//!
//! `shared/<kind>/<id>` holds the resource ([`Shared`]: its account, its name and its
//! record as JSON); `names/<kind>/<account>/<name>` holds the ID that took the name, so
//! that a name is unique in the region, not only on one host: a resource and its name are
//! written in one transaction, on the condition that neither exists. A change replaces the
//! record on the condition that it did not move since the host last read it, so that two
//! hosts changing one resource at once cannot lose either change (the loser reads again and
//! redoes its change).

use serde::{Deserialize, Serialize};

use super::etcd::{Cond, Entry, EtcdError, Op};
use super::Region;

/// Key prefix of the region-scoped resources.
pub const SHARED: &str = "shared/";
/// Key prefix of their names.
pub const NAMES: &str = "names/";

/// One region-scoped resource as etcd holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    /// The account that owns it.
    pub account: String,
    /// Its name, unique per account and kind in the region (empty: a kind without names).
    pub name: String,
    /// The resource's record (the kind's own JSON).
    pub body: serde_json::Value,
}

/// The key of resource `id` of `kind`.
pub fn record_key(kind: &str, id: &str) -> String {
    format!("{SHARED}{kind}/{id}")
}

/// The key of `account`'s name `name` of `kind`.
pub fn name_key(kind: &str, account: &str, name: &str) -> String {
    format!("{NAMES}{kind}/{account}/{name}")
}

/// What claiming a resource's name found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The resource is published, at this revision.
    Published(i64),
    /// Another resource of the account has the name.
    NameTaken,
}

/// `(id, resource, revision)` of a listed record of `kind`; `None` for another shape or a
/// value that does not decode (skipped: one bad key must not hide the others).
pub fn decode(kind: &str, e: &Entry) -> Option<(String, Shared, i64)> {
    let id = e
        .key
        .strip_prefix(SHARED)?
        .strip_prefix(kind)?
        .strip_prefix('/')?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    let s = serde_json::from_slice::<Shared>(&e.value).ok()?;
    Some((id.to_string(), s, e.mod_revision))
}

fn encode(id: &str, s: &Shared) -> Result<Vec<u8>, EtcdError> {
    serde_json::to_vec(s).map_err(|e| EtcdError::Decode(id.to_string(), e))
}

impl Region {
    /// Publishes a new resource and takes its name in the region, both or neither. Claiming
    /// again for the same ID (a retry, or the mirror publishing a resource its create is
    /// publishing too) is no conflict: it replaces the record.
    pub async fn claim(&self, kind: &str, id: &str, s: &Shared) -> Result<Claim, EtcdError> {
        let value = encode(id, s)?;
        let record = record_key(kind, id);
        let mut c = self.etcd().await?;
        if s.name.is_empty() {
            let r = c.txn(vec![], vec![Op::Put(record, value)]).await;
            return Ok(Claim::Published(self.note(r).await?.unwrap_or(0)));
        }
        let name = name_key(kind, &s.account, &s.name);
        let mine = id.as_bytes().to_vec();
        for _ in 0..4 {
            let r = c
                .txn(
                    vec![Cond::ModRev(name.clone(), 0)],
                    vec![
                        Op::Put(name.clone(), mine.clone()),
                        Op::Put(record.clone(), value.clone()),
                    ],
                )
                .await;
            if let Some(rev) = self.note(r).await? {
                return Ok(Claim::Published(rev));
            }
            // The name exists: ours (a retry) replaces the record, another ID's is a
            // refusal, and a name deleted meanwhile is tried again.
            let r = c
                .txn(
                    vec![Cond::Value(name.clone(), mine.clone())],
                    vec![Op::Put(record.clone(), value.clone())],
                )
                .await;
            if let Some(rev) = self.note(r).await? {
                return Ok(Claim::Published(rev));
            }
            let got = c.get(&name).await;
            if self.note(got).await?.is_some() {
                return Ok(Claim::NameTaken);
            }
        }
        Ok(Claim::NameTaken)
    }

    /// Replaces a published resource if it did not move since revision `seen`; its new
    /// revision, or `None` when another host changed (or deleted) it first.
    pub async fn replace(
        &self,
        kind: &str,
        id: &str,
        s: &Shared,
        seen: i64,
    ) -> Result<Option<i64>, EtcdError> {
        let value = encode(id, s)?;
        let key = record_key(kind, id);
        let mut c = self.etcd().await?;
        let r = c
            .txn(
                vec![Cond::ModRev(key.clone(), seen)],
                vec![Op::Put(key, value)],
            )
            .await;
        self.note(r).await
    }

    /// Removes a resource and frees its name (if this resource still holds it).
    pub async fn withdraw(&self, kind: &str, id: &str, s: &Shared) -> Result<(), EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.delete(&record_key(kind, id)).await;
        self.note(r).await?;
        if !s.name.is_empty() {
            let name = name_key(kind, &s.account, &s.name);
            let r = c
                .txn(
                    vec![Cond::Value(name.clone(), id.as_bytes().to_vec())],
                    vec![Op::Delete(name)],
                )
                .await;
            self.note(r).await?;
        }
        Ok(())
    }

    /// One published resource and its revision.
    pub async fn shared_one(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<(Shared, i64)>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.get(&record_key(kind, id)).await;
        Ok(self.note(r).await?.and_then(|e| {
            let s = serde_json::from_slice::<Shared>(&e.value).ok()?;
            Some((s, e.mod_revision))
        }))
    }

    /// Every published resource of `kind`: `(id, resource, revision)`, by ID.
    pub async fn shared_all(&self, kind: &str) -> Result<Vec<(String, Shared, i64)>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(&format!("{SHARED}{kind}/")).await;
        let (_, entries) = self.note(r).await?;
        Ok(entries.iter().filter_map(|e| decode(kind, e)).collect())
    }

    /// A watch on every region-scoped resource, from the revision after the one now.
    pub async fn watch_shared(&self) -> Result<etcd_client::WatchStream, EtcdError> {
        let mut c = self.etcd().await?;
        let r = async {
            let (rev, _) = c.list(SHARED).await?;
            c.watch(SHARED, rev + 1).await
        }
        .await;
        self.note(r).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_by_kind() {
        let s = Shared {
            account: "1".into(),
            name: "laptop".into(),
            body: serde_json::json!({"x": 1}),
        };
        let e = |key: &str| Entry {
            key: key.into(),
            value: serde_json::to_vec(&s).unwrap(),
            mod_revision: 7,
        };
        assert_eq!(
            decode("key-pair", &e("shared/key-pair/key-1")),
            Some(("key-1".into(), s.clone(), 7))
        );
        // Another kind, a nested key, an empty ID and a bad value are not records.
        assert_eq!(decode("key-pair", &e("shared/key-pairs/key-1")), None);
        assert_eq!(decode("key-pair", &e("shared/key-pair/a/b")), None);
        assert_eq!(decode("key-pair", &e("shared/key-pair/")), None);
        let mut bad = e("shared/key-pair/key-2");
        bad.value = b"{".to_vec();
        assert_eq!(decode("key-pair", &bad), None);
        assert_eq!(name_key("key-pair", "1", "a b"), "names/key-pair/1/a b");
        assert_eq!(record_key("key-pair", "key-1"), "shared/key-pair/key-1");
    }
}
