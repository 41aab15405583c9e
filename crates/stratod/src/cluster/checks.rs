//! The checks of a DryRun (EC2 Query API) about resources in a region of hosts: each
//! instance, volume and snapshot is looked up on its host, which answers as it would for
//! the call itself (its NotFound, or nothing), so that a DryRun of StopInstances, AttachVolume
//! and the rest answers `DryRunOperation` for another host's resource as for this host's.
//! Only calls that are themselves routed are checked this way; the others act on the host
//! asked and are checked there.

use strato_proto::v1 as pb;

use super::forward::Link;
use super::route::{HostLink, Origin, Resource};
use super::volumes::{apart, pairing, Pairing, Place};
use crate::cloud::Cloud;
use crate::error::ApiResult;
use crate::ids::Kind;

/// The NotFound of the first of `ids` missing from `found` (an owner that describes fewer
/// than asked; its own refusal comes first when it makes one).
fn first_missing(kind: Resource, ids: &[String], found: &[&str]) -> ApiResult<()> {
    match ids.iter().find(|id| !found.contains(&id.as_str())) {
        Some(id) => Err(kind_of(kind).not_found(id)),
        None => Ok(()),
    }
}

fn kind_of(kind: Resource) -> Kind {
    match kind {
        Resource::Instance => Kind::Instance,
        Resource::Volume => Kind::Volume,
        Resource::Snapshot => Kind::Snapshot,
        Resource::NetworkInterface => Kind::NetworkInterface,
    }
}

impl Cloud {
    /// That `account` has `id` of `kind` here (its NotFound, or Malformed, otherwise).
    fn owned_here(&self, kind: Resource, account: &str, id: &str) -> ApiResult<()> {
        match kind {
            Resource::Instance => self.owned_instance(account, id).map(drop),
            Resource::Volume => self.owned_volume(account, id).map(drop),
            Resource::Snapshot => self.owned_snapshot(account, id).map(drop),
            Resource::NetworkInterface => self.owned_eni(account, id).map(drop),
        }
    }

    /// That `host` has `account`'s `ids` of `kind`, asked of it.
    pub(super) async fn owned_on(
        link: &Link,
        kind: Resource,
        host: &str,
        account: &str,
        ids: Vec<String>,
    ) -> ApiResult<()> {
        match kind {
            Resource::Instance => {
                let got: Vec<pb::Instance> = link
                    .describe_instances(host, account, ids.clone(), &[])
                    .await?;
                let found: Vec<&str> = got.iter().map(|i| i.instance_id.as_str()).collect();
                first_missing(kind, &ids, &found)
            }
            Resource::Volume => {
                let got = link
                    .describe_volumes(host, account, ids.clone(), &[])
                    .await?;
                let found: Vec<&str> = got.iter().map(|v| v.volume_id.as_str()).collect();
                first_missing(kind, &ids, &found)
            }
            Resource::Snapshot => {
                let got = link
                    .describe_snapshots(host, account, ids.clone(), &[], &[])
                    .await?;
                let found: Vec<&str> = got.iter().map(|s| s.snapshot_id.as_str()).collect();
                first_missing(kind, &ids, &found)
            }
            Resource::NetworkInterface => {
                let got = link
                    .describe_network_interfaces(host, account, ids.clone(), &[])
                    .await?;
                let found: Vec<&str> = got
                    .iter()
                    .map(|e| e.network_interface_id.as_str())
                    .collect();
                first_missing(kind, &ids, &found)
            }
        }
    }

    /// That `account` has every one of `ids` of `kind`, wherever it is: this host's are
    /// looked up here, each other host's asked of that host (its refusal keeps its code).
    pub async fn check_owned_routed(
        &self,
        kind: Resource,
        account: &str,
        ids: &[String],
        origin: Origin,
    ) -> ApiResult<()> {
        let route = self.route_of(kind, account, ids, origin).await;
        for id in &route.local {
            self.owned_here(kind, account, id)?;
        }
        if route.remote.is_empty() {
            return Ok(());
        }
        let Some(link) = self.link() else {
            return Ok(());
        };
        for (host, part) in route.remote {
            Cloud::owned_on(&link, kind, &host, account, part).await?;
        }
        Ok(())
    }

    /// The checks of an AttachVolume that change nothing, where the call would run: the
    /// volume's host has both, or the pair is refused as the call refuses it.
    pub async fn check_attach_routed(
        &self,
        account: &str,
        volume_id: &str,
        instance_id: &str,
        origin: Origin,
    ) -> ApiResult<()> {
        let pair = (Resource::Volume, volume_id, instance_id);
        self.check_pair_routed(account, pair, origin, apart).await
    }

    /// The checks of an attach of `(kind, id)` to instance `instance_id` that change
    /// nothing (a volume or an interface decides where it runs): its host has both, or the
    /// pair is refused with `refusal` (of the IDs and their hosts), as the call refuses it.
    pub(super) async fn check_pair_routed(
        &self,
        account: &str,
        (kind, id, instance_id): (Resource, &str, &str),
        origin: Origin,
        refusal: fn(&str, &str, &str, &str) -> crate::error::ApiError,
    ) -> ApiResult<()> {
        let here = || {
            self.owned_here(kind, account, id)?;
            self.owned_instance(account, instance_id).map(drop)
        };
        let (Some(region), Origin::Caller) = (&self.cluster, origin) else {
            return here();
        };
        let place = self.place(kind, account, id, origin).await;
        let instance = self
            .place(Resource::Instance, account, instance_id, origin)
            .await;
        match (pairing(region.host(), &place, &instance), self.link()) {
            (Pairing::Apart { volume, instance }, _) => {
                Err(refusal(id, instance_id, &volume, &instance))
            }
            (Pairing::There(host), Some(link)) => {
                let one = |id: &str| vec![id.to_string()];
                Cloud::owned_on(&link, kind, &host, account, one(id)).await?;
                Cloud::owned_on(&link, Resource::Instance, &host, account, one(instance_id)).await
            }
            _ => here(),
        }
    }

    /// The checks of a DetachVolume that change nothing, on the volume's host (which also
    /// answers for the instance, when one is named).
    pub async fn check_detach_routed(
        &self,
        account: &str,
        volume_id: &str,
        instance_id: Option<&str>,
        origin: Origin,
    ) -> ApiResult<()> {
        let place = self
            .place(Resource::Volume, account, volume_id, origin)
            .await;
        match (place, self.link()) {
            (Place::Host(host), Some(link)) => {
                let one = |id: &str| vec![id.to_string()];
                Cloud::owned_on(&link, Resource::Volume, &host, account, one(volume_id)).await?;
                match instance_id {
                    Some(i) => {
                        Cloud::owned_on(&link, Resource::Instance, &host, account, one(i)).await
                    }
                    None => Ok(()),
                }
            }
            _ => {
                self.owned_volume(account, volume_id)?;
                match instance_id {
                    Some(i) => self.owned_instance(account, i).map(drop),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn an_owner_that_describes_fewer_names_the_first_missing() {
        let ids: Vec<String> = ["i-0000000000000000a", "i-0000000000000000b"]
            .map(String::from)
            .to_vec();
        assert!(first_missing(Resource::Instance, &ids, &[&ids[1], &ids[0]]).is_ok());
        let e = first_missing(Resource::Instance, &ids, &[&ids[0]]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInstanceIdNotFound);
        assert!(e.message.contains(&ids[1]), "{}", e.message);
        let e = first_missing(Resource::Snapshot, &ids[..1], &[]).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidSnapshotNotFound);
    }
}
