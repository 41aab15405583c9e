//! Elastic IPs as the region's records (`cluster::mirror`): every host mirrors every
//! allocation, so DescribeAddresses, the account's quota and the choice of a free address
//! see the whole region, while only the host whose interface has an association maps the
//! address on its uplink (its NAT table reads the associations of its own interfaces).
//!
//! The record names that host (`host`). A host that imports a record of an association
//! with one of its own interfaces that is gone (deleted or terminated while the record was
//! being changed elsewhere) keeps the address unassociated, and the next mirror pass
//! publishes that ([`SharedKind::republishes`]), as it publishes what a terminate or an
//! interface delete here changed in an association.

use serde::{Deserialize, Serialize};

use crate::cloud::Cloud;
use crate::cluster::mirror::SharedKind;
use crate::cluster::shared::Shared;
use crate::db::addresses::PublicIp;
use crate::db::instances::Tag;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The kind's name in etcd keys.
pub const KIND: &str = "address";

/// An Elastic IP as the region holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EipRecord {
    /// `eipalloc-…`
    pub allocation_id: String,
    /// The address.
    pub public_ip: String,
    /// The owning account.
    pub owner: String,
    /// `eipassoc-…` while associated.
    pub association_id: Option<String>,
    /// The interface it is mapped to.
    pub eni_id: Option<String>,
    /// The private address it is mapped to.
    pub private_ip: Option<String>,
    /// The instance of that interface, when attached.
    pub instance_id: Option<String>,
    /// The owner of that interface.
    pub eni_owner: Option<String>,
    /// The host of that interface: the one that maps the address.
    pub host: Option<String>,
    /// Tags.
    pub tags: Vec<Tag>,
}

impl EipRecord {
    /// The record of row `e`, whose association (if any) is on `e.assoc_host` or else on
    /// `me`.
    pub fn of(e: PublicIp, me: &str) -> EipRecord {
        let host = e
            .eni_id
            .as_ref()
            .map(|_| e.assoc_host.clone().unwrap_or_else(|| me.to_string()));
        EipRecord {
            allocation_id: e.allocation_id.unwrap_or_default(),
            public_ip: e.public_ip,
            owner: e.owner,
            association_id: e.association_id,
            eni_id: e.eni_id,
            private_ip: e.private_ip,
            instance_id: e.instance_id,
            eni_owner: e.eni_owner,
            host,
            tags: e.tags,
        }
    }

    /// The row that mirrors this record on host `me`; `eni_here` says whether `me` has the
    /// record's interface (an association with one of `me`'s interfaces that `me` no
    /// longer has is left out).
    pub fn row(self, me: &str, eni_here: bool) -> PublicIp {
        let mine = self.host.as_deref() == Some(me);
        let associated = self.eni_id.is_some() && (!mine || eni_here);
        let keep = |v: Option<String>| v.filter(|_| associated);
        PublicIp {
            public_ip: self.public_ip,
            owner: self.owner,
            allocation_id: Some(self.allocation_id),
            association_id: keep(self.association_id),
            eni_id: keep(self.eni_id),
            private_ip: keep(self.private_ip),
            instance_id: keep(self.instance_id),
            eni_owner: keep(self.eni_owner),
            tags: self.tags,
            assoc_host: keep(self.host).filter(|h| h != me),
        }
    }
}

/// This host's name in the region ("" alone).
pub fn me(cloud: &Cloud) -> &str {
    cloud.cluster.as_ref().map_or("", |r| r.host())
}

impl Cloud {
    /// Every public address this host's database has, for the region's claims:
    /// `(subnet "public", address, account)`.
    pub fn held_public_ips(&self) -> ApiResult<Vec<(String, String, String)>> {
        Ok(self
            .db
            .public_ips_held()?
            .into_iter()
            .map(|(ip, owner)| (crate::cluster::addresses::PUBLIC.to_string(), ip, owner))
            .collect())
    }

    /// The Elastic IPs this host's database has (the region's, mirrored), for the quota
    /// slots: `(account, allocation ID)`.
    pub fn held_allocations(&self) -> ApiResult<Vec<(String, String)>> {
        Ok(self.db.eip_owners()?)
    }

    /// The region's record of Elastic IP `allocation_id` written here when this host has no
    /// row of it yet (allocated elsewhere a moment ago, before the mirror applied it).
    pub async fn fetch_eip(&self, allocation_id: &str) -> ApiResult<()> {
        let Some(region) = &self.cluster else {
            return Ok(());
        };
        if self.db.eip(allocation_id)?.is_some() {
            return Ok(());
        }
        let kind = &Addresses;
        match region.shared_one(kind.name(), allocation_id).await {
            Ok(Some((s, rev))) => {
                kind.import(self, allocation_id, &s)?;
                self.note_mirrored(kind.name(), allocation_id, rev)
            }
            Ok(None) => Ok(()),
            Err(e) => Err(region.cut_off(&e)),
        }
    }
}

/// Elastic IPs.
pub struct Addresses;

impl SharedKind for Addresses {
    fn name(&self) -> &'static str {
        KIND
    }
    fn id_prefix(&self) -> &'static str {
        "eipalloc-"
    }
    fn ids(&self, cloud: &Cloud) -> ApiResult<Vec<String>> {
        Ok(cloud.db.eip_ids()?)
    }
    fn export(&self, cloud: &Cloud, id: &str) -> ApiResult<Option<Shared>> {
        let Some(e) = cloud.db.eip(id)? else {
            return Ok(None);
        };
        let r = EipRecord::of(e, me(cloud));
        Ok(Some(Shared {
            account: r.owner.clone(),
            // An address has no name: its uniqueness is its claim (`ips/public/…`).
            name: String::new(),
            body: serde_json::to_value(&r)
                .map_err(|e| ApiError::internal(format!("cannot encode a record: {e}")))?,
        }))
    }
    fn import(&self, cloud: &Cloud, id: &str, s: &Shared) -> ApiResult<()> {
        let r: EipRecord = serde_json::from_value(s.body.clone())
            .map_err(|e| ApiError::internal(format!("the region's record does not decode: {e}")))?;
        if r.allocation_id != id {
            return Err(ApiError::internal(format!(
                "the region's record of {id} names {}",
                r.allocation_id
            )));
        }
        let eni_here = match &r.eni_id {
            Some(eni) => cloud.db.eni(eni)?.is_some(),
            None => false,
        };
        Ok(cloud.db.upsert_eip(&r.row(me(cloud), eni_here))?)
    }
    fn remove(&self, cloud: &Cloud, id: &str) -> ApiResult<()> {
        Ok(cloud.db.delete_eip(id)?)
    }
    fn duplicate(&self, name: &str) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidIpAddressInUse,
            format!("Address {name} is in use in the region."),
        )
    }
    fn republishes(&self) -> bool {
        true
    }
    fn changed(&self, cloud: &Cloud) {
        // The associations of this host's interfaces may have come or gone.
        cloud.nat_changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: Option<&str>) -> PublicIp {
        PublicIp {
            public_ip: "198.51.100.70".into(),
            owner: "1".into(),
            allocation_id: Some("eipalloc-0123456789abcdef0".into()),
            association_id: Some("eipassoc-0123456789abcdef0".into()),
            eni_id: Some("eni-0123456789abcdef0".into()),
            private_ip: Some("10.0.0.4".into()),
            instance_id: Some("i-0123456789abcdef0".into()),
            eni_owner: Some("1".into()),
            tags: vec![],
            assoc_host: host.map(String::from),
        }
    }

    /// A record names the host of its association; each host's row says whether that is
    /// another host, and a host that lost the interface keeps the address unassociated.
    #[test]
    fn a_record_follows_its_association_host() {
        let r = EipRecord::of(row(None), "h2");
        assert_eq!(r.host.as_deref(), Some("h2"));
        // On h2 (the interface's host) the row is its own; on h1 it names h2.
        assert_eq!(r.clone().row("h2", true), row(None));
        assert_eq!(r.clone().row("h1", false), row(Some("h2")));
        // h1's row exports the same record.
        assert_eq!(EipRecord::of(row(Some("h2")), "h1"), r);
        // h2 without the interface: unassociated, allocated still.
        let lost = r.clone().row("h2", false);
        assert!(lost.eni_id.is_none() && lost.association_id.is_none());
        assert!(lost.assoc_host.is_none() && lost.instance_id.is_none());
        assert_eq!(lost.allocation_id, row(None).allocation_id);
        // Unassociated: no host.
        let free = PublicIp {
            association_id: None,
            eni_id: None,
            private_ip: None,
            instance_id: None,
            eni_owner: None,
            ..row(None)
        };
        assert_eq!(EipRecord::of(free.clone(), "h1").host, None);
        assert_eq!(EipRecord::of(free.clone(), "h1").row("h3", false), free);
    }
}
