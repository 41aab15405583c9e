//! What this host holds in its region's VPCs, for the region's indexes
//! (`cluster::network`, `cluster::members`): the groups and subnets its interfaces use,
//! the addresses of its interfaces by group, and its claims of private addresses in region
//! subnets, made before an interface takes them.

use std::collections::HashSet;

use super::region::SecurityGroups;
use crate::cloud::Cloud;
use crate::cluster::mirror::SharedKind;
use crate::error::ApiResult;

impl Cloud {
    /// What this host's interfaces use, for the region's use index: `(id, account)` of
    /// each group and subnet (of the region's VPCs) an interface here has.
    pub fn held_uses(&self) -> ApiResult<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        let region_subnets: HashSet<String> = self.db.region_subnet_ids()?.into_iter().collect();
        let groups: HashSet<String> = SecurityGroups.ids(self)?.into_iter().collect();
        for e in self.db.eni_hosts()? {
            for g in self.db.eni_groups(&e.id)? {
                if groups.contains(&g) && !out.iter().any(|(id, _)| id == &g) {
                    out.push((g, e.owner.clone()));
                }
            }
        }
        for s in self.db.subnets()? {
            if region_subnets.contains(&s.id) && !self.db.used_ips(&s.id)?.is_empty() {
                let owner = self.db.vpc(&s.vpc_id)?.map(|v| v.owner).unwrap_or_default();
                out.push((s.id, owner));
            }
        }
        Ok(out)
    }

    /// The addresses of this host's interfaces in region subnets by security group, for
    /// the region's member lists (`cluster::members`).
    pub fn held_members(
        &self,
    ) -> ApiResult<std::collections::BTreeMap<String, crate::cluster::members::Members>> {
        use crate::cluster::members::Members;
        let region_subnets = self.db.region_subnet_ids()?;
        let mut out: std::collections::BTreeMap<String, Members> = Default::default();
        let groups = self.db.eni_memberships()?;
        for e in self.db.eni_hosts()? {
            let Some(eni) = self.db.eni(&e.id)? else {
                continue;
            };
            if !region_subnets.contains(&eni.subnet_id) {
                continue;
            }
            let mut addrs = vec![eni.private_ip.clone()];
            addrs.extend(self.db.secondary_ips(&e.id)?);
            addrs.extend(self.db.eni_ipv6(&e.id)?);
            for (_, g) in groups.iter().filter(|(id, _)| *id == e.id) {
                let m = out.entry(g.clone()).or_insert_with(|| Members {
                    account: e.owner.clone(),
                    addrs: Vec::new(),
                });
                m.addrs
                    .extend(addrs.iter().map(|a| (eni.subnet_id.clone(), a.clone())));
            }
        }
        for m in out.values_mut() {
            m.addrs.sort();
            m.addrs.dedup();
        }
        Ok(out)
    }

    /// Every private address this host's interfaces have in region subnets, for the
    /// region's address claims: `(subnet, address, account)`.
    pub fn held_ips(&self) -> ApiResult<Vec<(String, String, String)>> {
        let mut out = Vec::new();
        for id in self.db.region_subnet_ids()? {
            let Some(s) = self.db.subnet(&id)? else {
                continue;
            };
            let owner = self.db.vpc(&s.vpc_id)?.map(|v| v.owner).unwrap_or_default();
            for ip in self.db.used_ips(&id)? {
                out.push((id.clone(), ip, owner.clone()));
            }
        }
        Ok(out)
    }

    /// Claims up to `n` free addresses of region subnet `subnet_id` in etcd for a launch
    /// here (fewer when the subnet has fewer free); `None` when the subnet is not the
    /// region's (a host's own default VPC, or no region), whose addresses are this host's
    /// alone. Refused with `Unavailable` while etcd cannot be reached.
    pub async fn claim_ips(
        &self,
        account: &str,
        subnet_id: &str,
        n: usize,
    ) -> ApiResult<Option<Vec<std::net::Ipv4Addr>>> {
        let Some(region) = self.cluster.clone() else {
            return Ok(None);
        };
        if !self.db.region_subnet_ids()?.iter().any(|s| s == subnet_id) {
            return Ok(None);
        }
        let Some(s) = self.db.subnet(subnet_id)? else {
            return Ok(None);
        };
        let mut used = self.db.used_ips(subnet_id)?;
        let claims = region
            .ip_claims(Some(subnet_id))
            .await
            .map_err(|e| region.cut_off(&e))?;
        used.extend(claims.into_iter().map(|(_, a, _)| a));
        let mut got = Vec::new();
        while got.len() < n {
            let Some(ip) = super::plumbing::pick_ip(&s.cidr, &used) else {
                break;
            };
            used.push(ip.to_string());
            match region.claim_ip(subnet_id, &ip.to_string(), account).await {
                Ok(true) => got.push(ip),
                Ok(false) => {}
                Err(e) => {
                    self.release_ips(subnet_id, &got).await;
                    return Err(region.cut_off(&e));
                }
            }
        }
        Ok(Some(got))
    }

    /// The addresses of region subnet `subnet_id` that other hosts' claims hold;
    /// none for a subnet that is not the region's, or without a region.
    pub async fn claimed_ips(&self, subnet_id: &str) -> ApiResult<Vec<String>> {
        let Some(region) = &self.cluster else {
            return Ok(Vec::new());
        };
        if !self.db.region_subnet_ids()?.iter().any(|s| s == subnet_id) {
            return Ok(Vec::new());
        }
        region
            .others_ip_claims(subnet_id)
            .await
            .map_err(|e| region.cut_off(&e))
    }

    /// Claims `addrs`, which an interface here just took in region subnet `subnet_id`; the
    /// first one another host claimed first (`Some`, the others given back), or `None`
    /// when all are this host's now (or the subnet is not the region's).
    pub async fn claim_these(
        &self,
        account: &str,
        subnet_id: &str,
        addrs: &[String],
    ) -> ApiResult<Option<String>> {
        let Some(region) = self.cluster.clone() else {
            return Ok(None);
        };
        if !self.db.region_subnet_ids()?.iter().any(|s| s == subnet_id) {
            return Ok(None);
        }
        let mut got: Vec<std::net::Ipv4Addr> = Vec::new();
        for a in addrs {
            let r = region.claim_ip(subnet_id, a, account).await;
            let lost = match r {
                Ok(true) => {
                    got.extend(a.parse::<std::net::Ipv4Addr>().ok());
                    continue;
                }
                // This host's own claim (a launch's, or the reconciler's) is no loss.
                Ok(false) => region
                    .others_ip_claims(subnet_id)
                    .await
                    .map_err(|e| region.cut_off(&e))?
                    .contains(a),
                Err(e) => {
                    self.release_ips(subnet_id, &got).await;
                    return Err(region.cut_off(&e));
                }
            };
            if lost {
                self.release_ips(subnet_id, &got).await;
                return Ok(Some(a.clone()));
            }
        }
        Ok(None)
    }

    /// Gives back claims [`Cloud::claim_ips`] made that no interface took (the reconciler
    /// drops any left behind).
    pub async fn release_ips(&self, subnet_id: &str, ips: &[std::net::Ipv4Addr]) {
        let Some(region) = &self.cluster else {
            return;
        };
        for ip in ips {
            if region.release_ip(subnet_id, &ip.to_string()).await.is_err() {
                return;
            }
        }
    }

    /// Brings this host's use keys in step at once (after a launch made interfaces), so
    /// that a delete on another host sees them without waiting for the reconciler.
    pub async fn index_uses(&self) {
        if let Some(region) = &self.cluster {
            region.repair_uses(|| self.held_uses()).await;
        }
    }
}
