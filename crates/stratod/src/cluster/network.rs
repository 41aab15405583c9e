//! The region's keys for VPC networking beside the shared records (`shared`):
//!
//! - `vnis/<vni>` holds the VPC ID that took the VNI, claimed with the VPC, so that two VPCs
//!   of the region never share one (a VPC's ID only suggests its VNI: the first free one
//!   from the VNI its ID folds to).
//! - `uses/<host>/<id>` says that interfaces on `host` use security group or subnet `id`
//!   (its value names the account, as `owners` keys do), so that a delete on any host is
//!   refused while another host still has interfaces in it. Each host writes its own after
//!   a launch and its reconciler keeps them in step with its database.

use std::collections::BTreeMap;

use super::etcd::{Cond, EtcdError, Op};
use super::owners::{self, Owned};
use super::Region;

/// Key prefix of the VNI claims.
pub const VNIS: &str = "vnis/";
/// Key prefix of the use index.
pub const USES: &str = "uses/";
/// How many VNIs after the suggested one a claim tries.
const VNI_TRIES: u32 = 64;

/// The key of VNI `vni`.
pub fn vni_key(vni: u32) -> String {
    format!("{VNIS}{vni}")
}

/// The key saying `host` uses `id`.
pub fn use_key(host: &str, id: &str) -> String {
    format!("{USES}{host}/{id}")
}

/// The VNIs a claim for a VPC whose ID suggests `first` tries, in order (1 to 2^24-1).
pub fn vni_candidates(first: u32) -> impl Iterator<Item = u32> {
    const MAX: u32 = strato_net::vxlan::MAX_VNI;
    (0..VNI_TRIES).map(move |k| (first.max(1) - 1 + k) % MAX + 1)
}

impl Region {
    /// Claims a VNI for `vpc_id` (the first free one from `first`); the one it holds
    /// already if it has one among them. `None` when all tried are taken.
    pub async fn claim_vni(&self, vpc_id: &str, first: u32) -> Result<Option<u32>, EtcdError> {
        let mut c = self.etcd().await?;
        let mine = vpc_id.as_bytes().to_vec();
        for vni in vni_candidates(first) {
            let key = vni_key(vni);
            let r = c
                .txn(
                    vec![Cond::ModRev(key.clone(), 0)],
                    vec![Op::Put(key.clone(), mine.clone())],
                )
                .await;
            if self.note(r).await?.is_some() {
                return Ok(Some(vni));
            }
            let got = c.get(&key).await;
            if self.note(got).await?.is_some_and(|e| e.value == mine) {
                return Ok(Some(vni));
            }
        }
        Ok(None)
    }

    /// Frees VNI `vni` if `vpc_id` holds it.
    pub async fn release_vni(&self, vpc_id: &str, vni: u32) -> Result<(), EtcdError> {
        let mut c = self.etcd().await?;
        let key = vni_key(vni);
        let r = c
            .txn(
                vec![Cond::Value(key.clone(), vpc_id.as_bytes().to_vec())],
                vec![Op::Delete(key)],
            )
            .await;
        self.note(r).await?;
        Ok(())
    }

    /// The hosts other than this one whose interfaces use `id`.
    pub async fn other_users(&self, id: &str) -> Result<Vec<String>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(USES).await;
        let (_, entries) = self.note(r).await?;
        Ok(entries
            .iter()
            .filter_map(|e| {
                let (host, used) = e.key.strip_prefix(USES)?.split_once('/')?;
                (used == id && host != self.cfg.host).then(|| host.to_string())
            })
            .collect())
    }

    /// This host's use keys: ID → account.
    pub async fn uses_here(&self) -> Result<BTreeMap<String, String>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(&format!("{USES}{}/", self.cfg.host)).await;
        let (_, entries) = self.note(r).await?;
        Ok(entries
            .iter()
            .filter_map(|e| {
                let id = e.key.rsplit_once('/')?.1;
                let o = serde_json::from_slice::<Owned>(&e.value).ok()?;
                Some((id.to_string(), o.account))
            })
            .collect())
    }

    /// Brings this host's use keys in step with `held` (`(id, account)` of what its
    /// interfaces use); whether they are in step now. The keys are read before `held` is
    /// (see [`owners::repair`]).
    pub async fn repair_uses(
        &self,
        held: impl FnOnce() -> crate::error::ApiResult<Vec<(String, String)>>,
    ) -> bool {
        let Ok(indexed) = self.uses_here().await else {
            return false;
        };
        let Ok(held) = held() else {
            return false;
        };
        let fix = owners::repair(&indexed, &held);
        let Ok(mut c) = self.etcd().await else {
            return false;
        };
        for (id, account) in &fix.put {
            let Ok(v) = serde_json::to_vec(&Owned {
                account: account.clone(),
            }) else {
                return false;
            };
            let r = c.put(&use_key(&self.cfg.host, id), v, None).await;
            if self.note(r).await.is_err() {
                return false;
            }
        }
        for id in &fix.drop {
            let r = c.delete(&use_key(&self.cfg.host, id)).await;
            if self.note(r).await.is_err() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_claims_start_at_the_suggestion_and_wrap() {
        let v: Vec<u32> = vni_candidates(5).take(3).collect();
        assert_eq!(v, [5, 6, 7]);
        let max = strato_net::vxlan::MAX_VNI;
        let v: Vec<u32> = vni_candidates(max).take(3).collect();
        assert_eq!(v, [max, 1, 2], "0 is never a VNI");
        assert_eq!(vni_candidates(0).next(), Some(1));
        assert_eq!(vni_candidates(1).count(), VNI_TRIES as usize);
        assert_eq!(vni_key(42), "vnis/42");
        assert_eq!(use_key("h1", "sg-1"), "uses/h1/sg-1");
    }
}
