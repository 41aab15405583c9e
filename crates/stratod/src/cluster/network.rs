//! The region's keys for VPC networking beside the shared records (`shared`):
//!
//! - `vnis/<vni>` holds the VPC ID that took the VNI, claimed with the VPC, so that two VPCs
//!   of the region never share one (a VPC's ID only suggests its VNI: the first free one
//!   from the VNI its ID folds to).
//! - `uses/<host>/<id>` says that interfaces on `host` use security group or subnet `id`
//!   (its value names the account, as `owners` keys do), so that a delete on any host is
//!   refused while another host still has interfaces in it. Each host writes its own after
//!   a launch and its reconciler keeps them in step with its database.
//! - `ips/<subnet>/<address>` holds the host (and account) whose interface has a private
//!   address of a region subnet ([`IpClaim`]): a host claims an address before its
//!   interface takes it, in a transaction that fails if any host claimed it first (the host
//!   then tries the next), so that two hosts never give one address away twice. Its
//!   reconciler puts back a claim of an address its database has and drops its claims of
//!   addresses its interfaces gave up (once older than a launch in flight).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::etcd::{Cond, EtcdError, Op};
use super::owners::{self, Owned};
use super::Region;

/// Key prefix of the VNI claims.
pub const VNIS: &str = "vnis/";
/// Key prefix of the use index.
pub const USES: &str = "uses/";
/// Key prefix of the address claims.
pub const IPS: &str = "ips/";
/// How old a claim with no interface behind it must be before its host drops it.
const IP_STALE_MS: i64 = 120_000;

/// What an address claim holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpClaim {
    /// The host whose interface has (or is about to have) the address.
    pub host: String,
    /// The interface's account.
    pub account: String,
    /// When it was claimed (Unix ms).
    pub at_ms: i64,
}

/// The key of `addr`'s claim in `subnet`.
pub fn ip_key(subnet: &str, addr: &str) -> String {
    format!("{IPS}{subnet}/{addr}")
}

/// `(subnet, address, claim)` of a listed claim.
fn ip_entry(e: &super::etcd::Entry) -> Option<(String, String, IpClaim)> {
    let (subnet, addr) = e.key.strip_prefix(IPS)?.split_once('/')?;
    let c = serde_json::from_slice::<IpClaim>(&e.value).ok()?;
    Some((subnet.to_string(), addr.to_string(), c))
}

/// What a host's reconciler changes in its address claims.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IpRepair {
    /// `(subnet, address, account)` to claim (the database has them, the region not).
    pub put: Vec<(String, String, String)>,
    /// `(subnet, address)` of this host's claims to drop.
    pub drop: Vec<(String, String)>,
}

/// Compares every claim in the region (`claims`, read before `held`) with the addresses
/// this host's interfaces hold in region subnets (`held`: subnet, address, account).
pub fn repair_ips(
    me: &str,
    claims: &[(String, String, IpClaim)],
    held: &[(String, String, String)],
    now_ms: i64,
) -> IpRepair {
    let mut out = IpRepair::default();
    for (subnet, addr, account) in held {
        if !claims.iter().any(|(s, a, _)| s == subnet && a == addr) {
            out.put
                .push((subnet.clone(), addr.clone(), account.clone()));
        }
    }
    for (subnet, addr, c) in claims {
        let kept = held.iter().any(|(s, a, _)| s == subnet && a == addr);
        if c.host == me && !kept && now_ms - c.at_ms > IP_STALE_MS {
            out.drop.push((subnet.clone(), addr.clone()));
        }
    }
    out
}

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

    /// Every address claim in the region, or in one subnet.
    pub async fn ip_claims(
        &self,
        subnet: Option<&str>,
    ) -> Result<Vec<(String, String, IpClaim)>, EtcdError> {
        let prefix = match subnet {
            Some(s) => format!("{IPS}{s}/"),
            None => IPS.to_string(),
        };
        let mut c = self.etcd().await?;
        let r = c.list(&prefix).await;
        let (_, entries) = self.note(r).await?;
        Ok(entries.iter().filter_map(ip_entry).collect())
    }

    /// The addresses of `subnet` that other hosts' claims hold (this host's own claims are
    /// of addresses its database has, or had a moment ago: those are free again here).
    pub async fn others_ip_claims(&self, subnet: &str) -> Result<Vec<String>, EtcdError> {
        Ok(self
            .ip_claims(Some(subnet))
            .await?
            .into_iter()
            .filter(|(_, _, c)| c.host != self.cfg.host)
            .map(|(_, a, _)| a)
            .collect())
    }

    /// Claims `addr` of `subnet` for this host; false when another claim has it.
    pub async fn claim_ip(
        &self,
        subnet: &str,
        addr: &str,
        account: &str,
    ) -> Result<bool, EtcdError> {
        let claim = IpClaim {
            host: self.cfg.host.clone(),
            account: account.to_string(),
            at_ms: crate::db::now_ms(),
        };
        let key = ip_key(subnet, addr);
        let v = serde_json::to_vec(&claim).map_err(|e| EtcdError::Decode(key.clone(), e))?;
        let mut c = self.etcd().await?;
        let r = c
            .txn(vec![Cond::ModRev(key.clone(), 0)], vec![Op::Put(key, v)])
            .await;
        Ok(self.note(r).await?.is_some())
    }

    /// Drops this host's claim of `addr` in `subnet` (another host's stays).
    pub async fn release_ip(&self, subnet: &str, addr: &str) -> Result<(), EtcdError> {
        let key = ip_key(subnet, addr);
        let mut c = self.etcd().await?;
        let got = c.get(&key).await;
        let Some(e) = self.note(got).await? else {
            return Ok(());
        };
        let mine =
            serde_json::from_slice::<IpClaim>(&e.value).is_ok_and(|c| c.host == self.cfg.host);
        if mine {
            let r = c
                .txn(
                    vec![Cond::ModRev(key.clone(), e.mod_revision)],
                    vec![Op::Delete(key)],
                )
                .await;
            self.note(r).await?;
        }
        Ok(())
    }

    /// Drops the claim of `addr` in `subnet` whichever host made it (the resource that held
    /// it is gone from the region).
    pub async fn drop_ip_claim(&self, subnet: &str, addr: &str) -> Result<(), EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.delete(&ip_key(subnet, addr)).await;
        self.note(r).await?;
        Ok(())
    }

    /// Brings this host's address claims in step with its interfaces (`held`: subnet,
    /// address, account). An address of this host that another host claimed is logged:
    /// two interfaces of the region have it (made while etcd was away).
    pub async fn repair_ip_claims(
        &self,
        held: impl FnOnce() -> crate::error::ApiResult<Vec<(String, String, String)>>,
    ) {
        let Ok(claims) = self.ip_claims(None).await else {
            return;
        };
        let Ok(held) = held() else {
            return;
        };
        let fix = repair_ips(&self.cfg.host, &claims, &held, crate::db::now_ms());
        for (subnet, addr, account) in &fix.put {
            match self.claim_ip(subnet, addr, account).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(%subnet, %addr, "another host claimed an address an interface here has")
                }
                Err(_) => return,
            }
        }
        for (subnet, addr) in &fix.drop {
            if self.release_ip(subnet, addr).await.is_err() {
                return;
            }
        }
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
    fn address_claims_follow_the_interfaces() {
        let claim = |host: &str, at_ms: i64| IpClaim {
            host: host.into(),
            account: "1".into(),
            at_ms,
        };
        let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        let claims = vec![
            (
                "subnet-1".to_string(),
                "10.0.0.4".to_string(),
                claim("h1", 0),
            ),
            (
                "subnet-1".to_string(),
                "10.0.0.5".to_string(),
                claim("h1", 0),
            ),
            // In flight: claimed a moment ago, its interface not yet recorded.
            (
                "subnet-1".to_string(),
                "10.0.0.6".to_string(),
                claim("h1", 990_000),
            ),
            // Another host's: never this host's to drop.
            (
                "subnet-1".to_string(),
                "10.0.0.7".to_string(),
                claim("h2", 0),
            ),
        ];
        let held = vec![
            t("subnet-1", "10.0.0.4", "1"),
            t("subnet-2", "10.1.0.4", "1"),
        ];
        let fix = repair_ips("h1", &claims, &held, 1_000_000);
        assert_eq!(fix.put, [t("subnet-2", "10.1.0.4", "1")]);
        assert_eq!(fix.drop, [("subnet-1".to_string(), "10.0.0.5".to_string())]);
        assert_eq!(ip_key("subnet-1", "10.0.0.4"), "ips/subnet-1/10.0.0.4");
    }

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
