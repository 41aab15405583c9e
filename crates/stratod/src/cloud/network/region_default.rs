//! The default VPC of a region of hosts: one VPC, one ID in every host's describes, one VNI
//! joining every host's default bridge, so that instances launched without a subnet reach
//! each other across hosts as EC2's default VPC promises (with security groups and
//! anti-spoofing on each side, as in any VPC of the region).
//!
//! The first host to ask gives the region its own default VPC (`cluster::default_vpc`);
//! every other host, on its first contact with etcd and before its mirror publishes
//! anything, replaces its own default VPC's rows by the region's (same IDs, its own bridge)
//! and moves its VXLAN device to the region's VNI. A host whose own default VPC is already
//! in use then (it ran instances before it joined a region that has another) keeps its own,
//! unpublished, and says so: merging two address spaces in use is not something to do
//! behind its users' backs.

use std::sync::Mutex;

use super::overlay::derived_vni;
use super::plumbing::parse_cidr;
use super::vpcs::overlaps;
use crate::cloud::Cloud;
use crate::cluster::default_vpc::{DefaultSubnet, DefaultVpcRecord};
use crate::cluster::Region;
use crate::db::default_vpc::Adoption;
use crate::db::network::Vpc;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// Where this host's default VPC stands with its region's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultVpcState {
    /// Not known yet: etcd has not answered since the start.
    #[default]
    Unknown,
    /// The host's default VPC is the region's.
    Regional,
    /// The host keeps its own (it was in use when the host met a region with another).
    Own,
}

/// The state, kept in the daemon for its lifetime (found again at each start).
#[derive(Debug, Default)]
pub struct DefaultVpcJoin(Mutex<DefaultVpcState>);

impl DefaultVpcJoin {
    fn get(&self) -> DefaultVpcState {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, s: DefaultVpcState) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }
}

impl Cloud {
    /// Makes this host's default VPC the region's, once etcd answers: true when that is
    /// settled (or there is no region), so the mirror may publish; false while etcd cannot
    /// be reached (the next call tries again).
    pub async fn join_region_default(&self) -> bool {
        let Some(region) = self.cluster.clone() else {
            return true;
        };
        if self.default_join.get() != DefaultVpcState::Unknown {
            return true;
        }
        match self.settle_default(&region).await {
            Ok(s) => {
                self.default_join.set(s);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e.message, "the region's default VPC is not settled yet");
                false
            }
        }
    }

    async fn settle_default(&self, region: &Region) -> ApiResult<DefaultVpcState> {
        let Some(local) = self.db.vpcs()?.into_iter().find(|v| v.is_default) else {
            return Ok(DefaultVpcState::Own);
        };
        if self.db.vpc_is_regional(&local.id)? {
            return Ok(DefaultVpcState::Regional);
        }
        let rec = match region.default_vpc().await {
            Ok(Some(r)) => r,
            Ok(None) => self.offer_own_default(region, &local).await?,
            Err(e) => return Err(region.cut_off(&e)),
        };
        match self
            .db
            .adopt_default_vpc(&local, &rec.layout(), cidrs_overlap)?
        {
            Adoption::Adopted => {
                if rec.vpc_id != local.id {
                    // Its VXLAN device is named by its old ID.
                    self.overlay_remove(&local).await;
                }
                // The new device and the firewall's ports follow after the mirror's pass.
                self.mirror_net.touch();
                self.network_changed.notify_one();
                tracing::info!(vpc = %rec.vpc_id, vni = rec.vni, "this host's default VPC is the region's");
                Ok(DefaultVpcState::Regional)
            }
            Adoption::InUse(what) => {
                tracing::error!(
                    own = %local.id,
                    region = %rec.vpc_id,
                    "this host keeps its own default VPC ({what} use it): instances launched here \
                     without a subnet do not reach the region's default VPC"
                );
                Ok(DefaultVpcState::Own)
            }
        }
    }

    /// Offers this host's default VPC as the region's (with a VNI claimed for it); the
    /// region's default VPC after the offer.
    async fn offer_own_default(&self, region: &Region, local: &Vpc) -> ApiResult<DefaultVpcRecord> {
        let vni = match region.claim_vni(&local.id, derived_vni(&local.id)).await {
            Ok(Some(vni)) => vni,
            Ok(None) => return Err(busy("No free VNI near the default VPC's in the region.")),
            Err(e) => return Err(region.cut_off(&e)),
        };
        let mine = DefaultVpcRecord {
            vpc_id: local.id.clone(),
            cidr: local.cidr.clone(),
            vni,
            subnets: self
                .db
                .subnets()?
                .into_iter()
                .filter(|s| s.vpc_id == local.id && s.is_default)
                .map(|s| DefaultSubnet {
                    az: s.az,
                    id: s.id,
                    cidr: s.cidr,
                })
                .collect(),
        };
        let got = region.offer_default_vpc(&mine).await;
        if !matches!(&got, Ok(Some(r)) if r.vpc_id == local.id) {
            if let Err(e) = region.release_vni(&local.id, vni).await {
                tracing::debug!(error = %crate::error::chain(&e), "VNI claim of an unused default VPC kept");
            }
        }
        match got {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(busy("The region's default VPC keeps changing.")),
            Err(e) => Err(region.cut_off(&e)),
        }
    }
}

/// Whether two `a.b.c.d/n` ranges overlap (one that does not parse overlaps everything: it
/// is not kept beside the region's).
pub fn cidrs_overlap(a: &str, b: &str) -> bool {
    let block = |s: &str| parse_cidr(s).map(|(addr, n)| (u32::from(addr), n));
    match (block(a), block(b)) {
        (Some(a), Some(b)) => overlaps(a, b),
        _ => true,
    }
}

fn busy(msg: &str) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_overlap() {
        assert!(cidrs_overlap("172.31.0.0/20", "172.31.8.0/24"));
        assert!(!cidrs_overlap("172.31.0.0/20", "172.31.16.0/20"));
        assert!(cidrs_overlap("bad", "172.31.16.0/20"));
    }
}
