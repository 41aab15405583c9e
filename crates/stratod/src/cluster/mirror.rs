//! Each host's copy of the region-scoped resources (`shared`): etcd holds the one record of
//! each key pair, placement group, ...; every host mirrors them into its own database, so
//! that its launches and describes read them as a single host reads its own rows.
//!
//! - A create runs on the host asked, as without a region, then publishes the resource and
//!   takes its name in the region ([`Cloud::share_new`]); a name another host took first is
//!   refused with the kind's `Duplicate` code, and the local row is removed again. So is
//!   one made while etcd cannot be reached: the create answers `Unavailable`, since a
//!   region-wide change needs the region.
//! - A change (tags) runs locally and replaces the record if nobody changed it meanwhile;
//!   otherwise the host applies the newer record and runs the change again
//!   ([`Cloud::share_change`]).
//! - A delete withdraws the record after the local delete succeeded
//!   ([`Cloud::share_delete`]).
//! - The other hosts apply what changed at once (a watch on `shared/`) and every few
//!   seconds anyway ([`run`]): new or changed records are written to their databases,
//!   withdrawn ones deleted. A row of a shared kind that the region never had (made before
//!   the host joined) is published then, if its name is free in the region.
//!
//! `db::shared` notes which rows mirror a record, and at which revision.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::shared::{Claim, Shared};
use super::Region;
pub use crate::cloud::shared::{kind_of, KINDS};
use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How often every kind is compared with the region even without a watch event.
const EVERY: Duration = Duration::from_secs(5);

/// One region-scoped kind: how its rows leave and enter this host's database.
pub trait SharedKind: Sync + Send {
    /// The kind's name in etcd keys.
    fn name(&self) -> &'static str;
    /// The prefix of its IDs (`key-`).
    fn id_prefix(&self) -> &'static str;
    /// The ID of every row of the kind in this host's database.
    fn ids(&self, cloud: &Cloud) -> ApiResult<Vec<String>>;
    /// Row `id` as the region's record, if this host has it.
    fn export(&self, cloud: &Cloud, id: &str) -> ApiResult<Option<Shared>>;
    /// Writes the region's record of `id` into this host's database.
    fn import(&self, cloud: &Cloud, id: &str, s: &Shared) -> ApiResult<()>;
    /// Deletes row `id` from this host's database (the region deleted it).
    fn remove(&self, cloud: &Cloud, id: &str) -> ApiResult<()>;
    /// The refusal of a name another resource of the account has in the region.
    fn duplicate(&self, name: &str) -> ApiError;
    /// Whether a pass publishes rows that changed here without a region-wide call (an
    /// Elastic IP a terminate here disassociated), when this host has the record's latest
    /// revision.
    fn republishes(&self) -> bool {
        false
    }
    /// Runs after a pass wrote or deleted rows of the kind here.
    fn changed(&self, _cloud: &Cloud) {}
}

/// What one pass changes in one kind's rows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Records to write here (new, or changed since this host applied them).
    pub import: Vec<String>,
    /// Rows to delete here (their records were withdrawn).
    pub remove: Vec<String>,
    /// Rows the region never had, to publish.
    pub publish: Vec<String>,
    /// Mirror notes of rows that are gone both here and in the region.
    pub forget: Vec<String>,
}

/// Compares the region's records (`region`: ID → revision) with this host's rows
/// (`local`) and what it last applied (`mirrored`: ID → revision).
pub fn plan(
    region: &BTreeMap<String, i64>,
    local: &[String],
    mirrored: &BTreeMap<String, i64>,
) -> Plan {
    let mut out = Plan::default();
    for (id, rev) in region {
        if mirrored.get(id) != Some(rev) || !local.contains(id) {
            out.import.push(id.clone());
        }
    }
    for id in local {
        if region.contains_key(id) {
            continue;
        }
        if mirrored.contains_key(id) {
            out.remove.push(id.clone());
        } else {
            out.publish.push(id.clone());
        }
    }
    for id in mirrored.keys() {
        if !region.contains_key(id) && !local.contains(id) {
            out.forget.push(id.clone());
        }
    }
    out
}

impl Cloud {
    fn region_lock(&self) -> Option<(&Arc<Region>, &tokio::sync::Mutex<()>)> {
        self.cluster.as_ref().map(|r| (r, &r.mirror_lock))
    }

    /// Publishes resource `id` of `kind` just made on this host and takes its name in the
    /// region; a refusal removes it here again.
    pub async fn share_new(&self, kind: &dyn SharedKind, id: &str) -> ApiResult<()> {
        let Some((region, lock)) = self.region_lock() else {
            return Ok(());
        };
        let _held = lock.lock().await;
        let Some(s) = kind.export(self, id)? else {
            return Ok(());
        };
        let refusal = match region.claim(kind.name(), id, &s).await {
            Ok(Claim::Published(rev)) => {
                self.note_mirrored(kind.name(), id, rev)?;
                return Ok(());
            }
            Ok(Claim::NameTaken) => kind.duplicate(&s.name),
            Err(e) => region.cut_off(&e),
        };
        kind.remove(self, id)?;
        Err(refusal)
    }

    /// Runs `change` on resource `id` of `kind` here and publishes the result; when another
    /// host changed the resource first, applies its record and runs `change` again.
    pub async fn share_change<T>(
        &self,
        kind: &dyn SharedKind,
        id: &str,
        change: impl Fn() -> ApiResult<T>,
    ) -> ApiResult<T> {
        let Some((region, lock)) = self.region_lock() else {
            return change();
        };
        let _held = lock.lock().await;
        for _ in 0..5 {
            let seen = self.mirror_notes(kind.name())?.get(id).copied();
            let out = change()?;
            let Some(s) = kind.export(self, id)? else {
                return Ok(out);
            };
            let published = match seen {
                Some(rev) => region.replace(kind.name(), id, &s, rev).await,
                // Made before the host joined: it joins the region now.
                None => match region.claim(kind.name(), id, &s).await {
                    Ok(Claim::Published(rev)) => Ok(Some(rev)),
                    Ok(Claim::NameTaken) => return Ok(out),
                    Err(e) => Err(e),
                },
            };
            match published.map_err(|e| region.cut_off(&e))? {
                Some(rev) => {
                    self.note_mirrored(kind.name(), id, rev)?;
                    return Ok(out);
                }
                None => match region.shared_one(kind.name(), id).await {
                    Ok(Some((newer, rev))) => {
                        kind.import(self, id, &newer)?;
                        self.note_mirrored(kind.name(), id, rev)?;
                    }
                    Ok(None) => {
                        kind.remove(self, id)?;
                        self.forget_mirrored(kind.name(), id)?;
                        return Ok(out);
                    }
                    Err(e) => return Err(region.cut_off(&e)),
                },
            }
        }
        Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("{id} kept changing on other hosts; try again."),
        ))
    }

    /// Runs `delete` (the local delete of `id`, when it names a row here) and withdraws the
    /// record from the region; while etcd cannot be reached the row is put back and the
    /// delete refused.
    pub async fn share_delete<T>(
        &self,
        kind: &dyn SharedKind,
        id: Option<&str>,
        delete: impl FnOnce() -> ApiResult<T>,
    ) -> ApiResult<T> {
        let (Some((region, lock)), Some(id)) = (self.region_lock(), id) else {
            return delete();
        };
        let _held = lock.lock().await;
        let before = kind.export(self, id)?;
        let out = delete()?;
        if let Some(s) = before {
            if let Err(e) = region.withdraw(kind.name(), id, &s).await {
                kind.import(self, id, &s)?;
                return Err(region.cut_off(&e));
            }
            self.forget_mirrored(kind.name(), id)?;
        }
        Ok(out)
    }

    /// One pass over every kind: this host's database takes the region's records.
    pub async fn mirror_region(&self) {
        let Some((region, lock)) = self.region_lock() else {
            return;
        };
        let _held = lock.lock().await;
        // Nothing is published before the default VPC is settled: until then this host's
        // own would go out as one more VPC of the region.
        if !self.join_region_default().await {
            return;
        }
        for kind in KINDS {
            if let Err(e) = self.mirror_kind(region, *kind).await {
                tracing::debug!(kind = kind.name(), error = %e.message, "cannot mirror the region's records");
                return;
            }
        }
        // What imports of VPCs, subnets and groups need besides rows (devices, firewall).
        self.mirrored_network().await;
    }

    async fn mirror_kind(&self, region: &Region, kind: &dyn SharedKind) -> ApiResult<()> {
        let records = region
            .shared_all(kind.name())
            .await
            .map_err(|e| region.cut_off(&e))?;
        let revs: BTreeMap<String, i64> =
            records.iter().map(|(id, _, r)| (id.clone(), *r)).collect();
        let local = kind.ids(self)?;
        let p = plan(&revs, &local, &self.mirror_notes(kind.name())?);
        // After the pass, whatever it did (a failed import may have written some rows).
        let _later = (!p.import.is_empty() || !p.remove.is_empty()).then(|| Changed(kind, self));
        if kind.republishes() {
            self.republish(region, kind, &records, &local, &p).await?;
        }
        for (id, s, rev) in records.iter().filter(|(id, _, _)| p.import.contains(id)) {
            match kind.import(self, id, s) {
                Ok(()) => self.note_mirrored(kind.name(), id, *rev)?,
                Err(e) => warn_once(kind, id, &e),
            }
        }
        for id in &p.remove {
            match kind.remove(self, id) {
                Ok(()) => self.forget_mirrored(kind.name(), id)?,
                Err(e) => warn_once(kind, id, &e),
            }
        }
        for id in &p.publish {
            let Some(s) = kind.export(self, id)? else {
                continue;
            };
            match region.claim(kind.name(), id, &s).await {
                Ok(Claim::Published(rev)) => self.note_mirrored(kind.name(), id, rev)?,
                Ok(Claim::NameTaken) => warn_once(kind, id, &kind.duplicate(&s.name)),
                Err(e) => return Err(region.cut_off(&e)),
            }
        }
        for id in &p.forget {
            self.forget_mirrored(kind.name(), id)?;
        }
        Ok(())
    }
}

/// Calls [`SharedKind::changed`] when dropped.
struct Changed<'a>(&'a dyn SharedKind, &'a Cloud);

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        self.0.changed(self.1);
    }
}

impl Cloud {
    /// Publishes the rows of `kind` that changed here since this host applied their
    /// record's latest revision (their export differs from it); one another host changed
    /// meanwhile is left to the next pass, which imports it.
    async fn republish(
        &self,
        region: &Region,
        kind: &dyn SharedKind,
        records: &[(String, Shared, i64)],
        local: &[String],
        p: &Plan,
    ) -> ApiResult<()> {
        for (id, s, rev) in records {
            if p.import.contains(id) || !local.contains(id) {
                continue;
            }
            let Some(now) = kind.export(self, id)? else {
                continue;
            };
            if now.body == s.body {
                continue;
            }
            match region.replace(kind.name(), id, &now, *rev).await {
                Ok(Some(rev)) => self.note_mirrored(kind.name(), id, rev)?,
                Ok(None) => {}
                Err(e) => return Err(region.cut_off(&e)),
            }
        }
        Ok(())
    }
}

/// Logs a row that cannot follow the region (a name taken by another ID, a group still in
/// use here), once per row and reason, since every pass meets it again.
fn warn_once(kind: &dyn SharedKind, id: &str, e: &ApiError) {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let key = format!("{}/{id}/{}", kind.name(), e.code.as_str());
    if SEEN.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
        tracing::warn!(kind = kind.name(), id, error = %e.message, "a row does not follow the region's record");
    }
}

/// Mirrors the region's records for as long as the daemon runs: at once when one changes
/// (a watch on `shared/`), and every few seconds anyway.
pub async fn run(cloud: Arc<Cloud>) {
    let Some(region) = cloud.cluster.clone() else {
        return;
    };
    loop {
        cloud.mirror_region().await;
        let mut stream = match region.watch_shared().await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                m = stream.message() => match m {
                    Ok(Some(_)) => {}
                    _ => break,
                },
                _ = tokio::time::sleep(EVERY) => {}
            }
            cloud.mirror_region().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revs(v: &[(&str, i64)]) -> BTreeMap<String, i64> {
        v.iter().map(|(k, r)| (k.to_string(), *r)).collect()
    }

    #[test]
    fn a_pass_follows_the_region() {
        let region = revs(&[
            ("key-same", 3),
            ("key-newer", 9),
            ("key-new", 4),
            ("key-lost", 2),
        ]);
        let mirrored = revs(&[
            ("key-same", 3),
            ("key-newer", 5),
            ("key-lost", 2),
            ("key-gone", 1),
            ("key-both-gone", 1),
        ]);
        let local: Vec<String> = ["key-same", "key-newer", "key-gone", "key-legacy"]
            .map(String::from)
            .to_vec();
        let p = plan(&region, &local, &mirrored);
        // key-lost: the region has it and the note says applied, but the row is gone here
        // (deleted by hand): it is written again.
        assert_eq!(p.import, ["key-lost", "key-new", "key-newer"]);
        assert_eq!(p.remove, ["key-gone"]);
        assert_eq!(p.publish, ["key-legacy"]);
        assert_eq!(p.forget, ["key-both-gone"]);
        assert_eq!(plan(&region, &[], &BTreeMap::new()).import.len(), 4);
        assert_eq!(
            plan(&BTreeMap::new(), &[], &BTreeMap::new()),
            Plan::default()
        );
    }

    #[test]
    fn region_scoped_ids_by_prefix() {
        assert_eq!(kind_of("key-0123").map(|k| k.name()), Some("key-pair"));
        assert_eq!(
            kind_of("pg-0123").map(|k| k.name()),
            Some("placement-group")
        );
        assert!(kind_of("i-0123").is_none());
        assert!(kind_of("vol-0123").is_none());
    }
}
