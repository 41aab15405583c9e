//! The region's default VPC: key `default-vpc` holds its ID, range, VNI and default subnets
//! ([`DefaultVpcRecord`]). The first host to ask puts its own default VPC there (one
//! transaction, on the condition that no host did first); every other host then takes that
//! one in place of its own (`cloud::network::region_default`), so that the default VPC has
//! one ID in the region and one VNI joins every host's default bridge.

use serde::{Deserialize, Serialize};

use super::etcd::{Cond, EtcdError, Op};
use super::Region;
use crate::db::default_vpc::DefaultLayout;

/// The key of the region's default VPC.
pub const DEFAULT_VPC: &str = "default-vpc";

/// One default subnet of the region's default VPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultSubnet {
    /// Its availability zone.
    pub az: String,
    /// `subnet-…`
    pub id: String,
    /// Its range.
    pub cidr: String,
}

/// What `default-vpc` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultVpcRecord {
    /// `vpc-…`
    pub vpc_id: String,
    /// Its range.
    pub cidr: String,
    /// The VNI claimed for it (`vnis/`).
    pub vni: u32,
    /// Its default subnets, one per AZ.
    pub subnets: Vec<DefaultSubnet>,
}

impl DefaultVpcRecord {
    /// The record as the host's database takes it.
    pub fn layout(&self) -> DefaultLayout {
        DefaultLayout {
            vpc_id: self.vpc_id.clone(),
            cidr: self.cidr.clone(),
            vni: self.vni,
            subnets: self
                .subnets
                .iter()
                .map(|s| (s.az.clone(), s.id.clone(), s.cidr.clone()))
                .collect(),
        }
    }
}

fn decode(value: &[u8]) -> Result<DefaultVpcRecord, EtcdError> {
    serde_json::from_slice(value).map_err(|e| EtcdError::Decode(DEFAULT_VPC.to_string(), e))
}

impl Region {
    /// The region's default VPC, if a host gave it one.
    pub async fn default_vpc(&self) -> Result<Option<DefaultVpcRecord>, EtcdError> {
        let mut c = self.etcd().await?;
        let got = c.get(DEFAULT_VPC).await;
        match self.note(got).await? {
            Some(e) => Ok(Some(decode(&e.value)?)),
            None => Ok(None),
        }
    }

    /// Makes `mine` the region's default VPC unless a host did first; the region's default
    /// VPC after the call (`mine`, or the one that was there), `None` if the key kept
    /// coming and going (it is never deleted; the caller asks again later).
    pub async fn offer_default_vpc(
        &self,
        mine: &DefaultVpcRecord,
    ) -> Result<Option<DefaultVpcRecord>, EtcdError> {
        let value =
            serde_json::to_vec(mine).map_err(|e| EtcdError::Decode(DEFAULT_VPC.to_string(), e))?;
        let mut c = self.etcd().await?;
        for _ in 0..3 {
            let r = c
                .txn(
                    vec![Cond::ModRev(DEFAULT_VPC.to_string(), 0)],
                    vec![Op::Put(DEFAULT_VPC.to_string(), value.clone())],
                )
                .await;
            if self.note(r).await?.is_some() {
                return Ok(Some(mine.clone()));
            }
            let got = c.get(DEFAULT_VPC).await;
            if let Some(e) = self.note(got).await? {
                return Ok(Some(decode(&e.value)?));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_the_layout_a_host_takes() {
        let r = DefaultVpcRecord {
            vpc_id: "vpc-r".into(),
            cidr: "172.31.0.0/16".into(),
            vni: 9,
            subnets: vec![DefaultSubnet {
                az: "home-1a".into(),
                id: "subnet-a".into(),
                cidr: "172.31.0.0/20".into(),
            }],
        };
        let back = decode(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let l = r.layout();
        assert_eq!(l.vpc_id, "vpc-r");
        assert_eq!(l.vni, 9);
        assert_eq!(
            l.subnets,
            [("home-1a".into(), "subnet-a".into(), "172.31.0.0/20".into())]
        );
        assert!(decode(b"{}").is_err());
    }
}
