//! Elastic IPs in a region of hosts. An allocation is the region's record
//! (`cloud::network::shared_addresses`), mirrored by every host; its address is claimed
//! under `ips/public/<address>` (as private addresses of region subnets are claimed under
//! their subnet, `network`), and so is every pool address a running instance gets, so that
//! hosts on one LAN with one pool never hand out an address twice.
//!
//! The account's quota is exact across the hosts: each allocation holds one of its
//! `uplink.eip_quota` numbered slots (`quota/address/<account>/<n>`, `cluster::quota`).
//!
//! AssociateAddress runs on the host of the instance or interface it names (that host maps
//! the address on its uplink); asked of another host, it is forwarded there. Disassociate,
//! release and tags change the record from any host; the interface's host follows when its
//! mirror applies the record (a watch: at once).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use strato_proto::v1 as pb;

use super::forward::Addresses;
use super::quota;
use super::route::{Origin, Resource};
use super::volumes::Place;
use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult};

/// The claims' "subnet" of public addresses.
pub const PUBLIC: &str = "public";

/// How many addresses one allocation tries when other hosts take them meanwhile.
const TRIES: usize = 8;

impl Cloud {
    /// The public addresses other hosts' claims hold (none without a region).
    pub async fn public_claims(&self) -> ApiResult<HashSet<Ipv4Addr>> {
        let Some(region) = &self.cluster else {
            return Ok(HashSet::new());
        };
        let claims = region
            .others_ip_claims(PUBLIC)
            .await
            .map_err(|e| region.cut_off(&e))?;
        Ok(claims.iter().filter_map(|a| a.parse().ok()).collect())
    }

    /// Claims public address `ip` for `account` in the region; false when another host has
    /// it. True without a region.
    pub async fn claim_public_ip(&self, ip: Ipv4Addr, account: &str) -> ApiResult<bool> {
        let Some(region) = &self.cluster else {
            return Ok(true);
        };
        region
            .claim_ip(PUBLIC, &ip.to_string(), account)
            .await
            .map_err(|e| region.cut_off(&e))
    }

    /// Gives up the claim of public address `ip` (`any`: whichever host made it, for an
    /// Elastic IP the region released). Best effort: the claimer's reconciler drops what
    /// this misses.
    pub async fn release_public_claim(&self, ip: &str, any: bool) {
        let Some(region) = &self.cluster else {
            return;
        };
        let r = match any {
            true => region.drop_ip_claim(PUBLIC, ip).await,
            false => region.release_ip(PUBLIC, ip).await,
        };
        if let Err(e) = r {
            tracing::debug!(%ip, error = %crate::error::chain(&e), "address claim kept; the reconciler drops it");
        }
    }

    /// Claims a slot of `account`'s Elastic IP quota (`quota` slots) in the region for
    /// `allocation_id`; false when the account holds them all. True without a region (the
    /// rows here count then).
    pub async fn claim_address_slot(
        &self,
        account: &str,
        allocation_id: &str,
        quota: u32,
    ) -> ApiResult<bool> {
        let Some(region) = &self.cluster else {
            return Ok(true);
        };
        region
            .claim_slot(quota::ADDRESS, account, allocation_id, quota)
            .await
            .map(|n| n.is_some())
            .map_err(|e| region.cut_off(&e))
    }

    /// Frees the quota slot of `allocation_id` (best effort: the reconciler of the host that
    /// claimed it drops what this misses).
    pub async fn release_address_slot(&self, account: &str, allocation_id: &str) {
        let Some(region) = &self.cluster else {
            return;
        };
        if let Err(e) = region
            .release_slot(quota::ADDRESS, account, allocation_id)
            .await
        {
            tracing::debug!(allocation = %allocation_id, error = %crate::error::chain(&e), "quota slot kept; the reconciler drops it");
        }
    }

    /// Picks, records and claims a public address: `pick` records the first free address
    /// of the pool less the ones given and answers it (or why there is none); an address
    /// another host claimed first is dropped with `drop` and the next one tried.
    pub async fn pick_claimed<T>(
        &self,
        account: &str,
        pick: impl Fn(&HashSet<Ipv4Addr>) -> ApiResult<Result<Ipv4Addr, T>>,
        drop: impl Fn(Ipv4Addr) -> ApiResult<()>,
    ) -> ApiResult<Result<Ipv4Addr, T>> {
        let mut taken = self.public_claims().await?;
        for _ in 0..TRIES {
            let ip = match pick(&taken)? {
                Ok(ip) => ip,
                Err(why) => return Ok(Err(why)),
            };
            match self.claim_public_ip(ip, account).await {
                Ok(true) => return Ok(Ok(ip)),
                Ok(false) => {}
                Err(e) => {
                    drop(ip)?;
                    return Err(e);
                }
            }
            drop(ip)?;
            taken.insert(ip);
        }
        Err(ApiError::new(
            crate::error::ErrorCode::Unavailable,
            "Other hosts of the region kept taking the free public addresses; try again.",
        ))
    }

    /// AssociateAddress, on the host of the instance or interface it names.
    #[allow(clippy::too_many_arguments)]
    pub async fn associate_address_routed(
        &self,
        account: &str,
        allocation_id: &str,
        instance_id: &str,
        eni_id: &str,
        private_ip: &str,
        allow_reassociation: bool,
        origin: Origin,
    ) -> ApiResult<String> {
        let here = || {
            self.associate_address(
                account,
                allocation_id,
                instance_id,
                eni_id,
                private_ip,
                allow_reassociation,
            )
        };
        if self.cluster.is_none() || origin == Origin::RegionHost {
            return here().await;
        }
        let target = match (instance_id.is_empty(), eni_id.is_empty()) {
            (false, true) => Some((Resource::Instance, instance_id)),
            (true, false) => Some((Resource::NetworkInterface, eni_id)),
            // Refused here, with the single host's messages.
            _ => None,
        };
        let Some((kind, id)) = target else {
            return here().await;
        };
        let (Place::Host(host), Some(link)) =
            (self.place(kind, account, id, origin).await, self.link())
        else {
            return here().await;
        };
        let msg = pb::AssociateAddressRequest {
            allocation_id: allocation_id.to_string(),
            instance_id: instance_id.to_string(),
            network_interface_id: eni_id.to_string(),
            private_ip_address: private_ip.to_string(),
            allow_reassociation,
        };
        link.on(&host, account, msg, |mut c: Addresses, r| async move {
            c.associate_address(r).await
        })
        .await
        .map(|r| r.association_id)
    }
}
