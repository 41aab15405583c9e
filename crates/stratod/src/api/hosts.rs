//! The region of hosts in the gRPC layer (config `cluster`): the `Hosts` service
//! (DescribeHosts), the calls other hosts forward (authenticated by the region's secret,
//! speaking for the account they name), and RunInstances placed across the region.

use strato_proto::v1 as pb;
use strato_proto::v1::hosts_server::Hosts;
use subtle::ConstantTimeEq;
use tonic::{Request, Response, Status};

use super::Api;
use crate::cloud::compute::launch::{Pinned, RunRequest};
use crate::cloud::placement::hosts::{HostFilter, Share};
use crate::cloud::placement::scheduler::Slot;
use crate::cluster::forward::{self, ACCOUNT_METADATA};
use crate::cluster::route::Origin;
use crate::error::{ApiError, ApiResult, ErrorCode};

impl Api {
    /// The account a call forwarded by another host of the region speaks for: `Some` when
    /// `token` is the region's secret (then the account metadata must be there).
    pub(super) fn region_caller<T>(
        &self,
        req: &Request<T>,
        token: &str,
    ) -> ApiResult<Option<String>> {
        let Some(region) = &self.cloud.cluster else {
            return Ok(None);
        };
        if !bool::from(token.as_bytes().ct_eq(region.cfg.secret.as_bytes())) {
            return Ok(None);
        }
        let account = req
            .metadata()
            .get(ACCOUNT_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::new(
                ErrorCode::AuthFailure,
                "A call forwarded by a host of the region must name its caller's account.",
            ));
        }
        Ok(Some(account.to_string()))
    }

    /// Whether a call comes from another host of the region (it holds the secret).
    pub(super) fn is_region_host<T>(&self, req: &Request<T>) -> bool {
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        matches!(self.region_caller(req, token), Ok(Some(_)))
    }

    /// Where a call comes from, for routing: another host of the region routed it already.
    pub(super) fn origin<T>(&self, req: &Request<T>) -> Origin {
        if self.is_region_host(req) {
            Origin::RegionHost
        } else {
            Origin::Caller
        }
    }

    /// RunInstances in a region of hosts: places and reserves in etcd, then launches each
    /// host's share there (this host's here, the others' forwarded with their IDs and
    /// slots). `None` when there is no region (the caller launches locally as before).
    pub(super) async fn run_in_region(
        &self,
        account: &str,
        run: &RunRequest,
        original: &pb::RunInstancesRequest,
    ) -> ApiResult<Option<pb::RunInstancesResponse>> {
        let Some(region) = self.cloud.cluster.clone() else {
            return Ok(None);
        };
        let mut out = pb::RunInstancesResponse {
            reservation_id: String::new(),
            owner_id: account.to_string(),
            instances: Vec::new(),
        };
        let mut failure: Option<ApiError> = None;
        let mut exclude: Vec<String> = Vec::new();
        let mut todo = run.clone();
        // A host that cannot be reached before its lease lapses gets nothing sent: its
        // share is placed again without it (twice at most).
        for attempt in 0..3 {
            let shares = match self
                .cloud
                .place_in_region(account, &todo, HostFilter::Except(&exclude))
                .await
            {
                Ok(Some(s)) => s,
                Ok(None) => return Ok(None),
                Err(e) if attempt == 0 => return Err(e),
                // A share placed again found no room: what launched stands.
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let mut again = 0;
            for share in shares {
                if share.ids.is_empty() {
                    // Nothing was reserved: the local launch words the refusal.
                    return Ok(None);
                }
                let n = share.ids.len() as i32;
                let result = if share.host == region.host() {
                    self.launch_local(account, local_share(&todo, &share))
                        .await
                        .map_err(forward::Forwarded::Failed)
                } else {
                    let fwd = self.forwarded_share(original, &todo, &share)?;
                    forward::run_instances(
                        &share.api,
                        &region.roots,
                        &region.cfg.secret,
                        account,
                        fwd,
                    )
                    .await
                };
                match result {
                    Ok(r) => {
                        // Reserved IDs the host did not use (it launched fewer) go back.
                        let unused: Vec<String> = share
                            .ids
                            .iter()
                            .filter(|id| !r.instances.iter().any(|i| &i.instance_id == *id))
                            .cloned()
                            .collect();
                        region.release(&share.host, &unused).await;
                        if out.reservation_id.is_empty() {
                            out.reservation_id = r.reservation_id;
                        }
                        out.instances.extend(r.instances);
                    }
                    Err(forward::Forwarded::Unreachable(e)) => {
                        tracing::warn!(host = %share.host, error = %e.message, "region host unreachable; placing its share elsewhere");
                        region.release(&share.host, &share.ids).await;
                        exclude.push(share.host.clone());
                        again += n;
                        failure = Some(e);
                    }
                    Err(forward::Forwarded::Failed(e)) => {
                        region.release(&share.host, &share.ids).await;
                        failure.get_or_insert(e);
                    }
                }
            }
            if again == 0 {
                break;
            }
            todo.min_count = again;
            todo.max_count = again;
        }
        let min = run.min_count.max(1) as usize;
        match failure {
            Some(e) if out.instances.len() < min => Err(e),
            _ => Ok(Some(out)),
        }
    }

    /// The RunInstances another host gets for its share.
    fn forwarded_share(
        &self,
        original: &pb::RunInstancesRequest,
        run: &RunRequest,
        share: &Share,
    ) -> Result<pb::RunInstancesRequest, forward::Forwarded> {
        let n = share.ids.len() as i32;
        let mut fwd = original.clone();
        fwd.min_count = n;
        fwd.max_count = n;
        let mut placement = fwd.placement.take().unwrap_or_default();
        if fwd.subnet_id.is_empty() && !share.az.is_empty() {
            placement.availability_zone = share.az.clone();
        }
        fwd.placement = Some(placement);
        fwd.region_placement = Some(pb::RegionPlacement {
            host: share.host.clone(),
            instance_ids: share.ids.clone(),
            racks: share.slots.iter().map(|s| s.rack.clone()).collect(),
            partitions: share.slots.iter().map(|s| s.partition).collect(),
            image_name: self
                .cloud
                .image_name(&run.image_id)
                .map_err(forward::Forwarded::Failed)?,
        });
        Ok(fwd)
    }

    /// RunInstances on this host, as the API answers it.
    pub(super) async fn launch_local(
        &self,
        account: &str,
        run: RunRequest,
    ) -> ApiResult<pb::RunInstancesResponse> {
        let (reservation, instances) = self.cloud.run_instances(account, run).await?;
        let instances = instances
            .into_iter()
            .map(|i| {
                self.cloud
                    .instance_view(i)
                    .map(super::compute::instance_message)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(pb::RunInstancesResponse {
            reservation_id: reservation,
            owner_id: account.to_string(),
            instances,
        })
    }
}

/// This host's share of a launch the region placed.
fn local_share(run: &RunRequest, share: &Share) -> RunRequest {
    let n = share.ids.len() as i32;
    let mut local = run.clone();
    local.min_count = n;
    local.max_count = n;
    if local.subnet_id.is_empty() && !share.az.is_empty() {
        local.availability_zone = share.az.clone();
    }
    local.pinned = Some(Pinned {
        ids: share.ids.clone(),
        slots: share.slots.clone(),
        image_name: String::new(),
    });
    local
}

/// A forwarded launch's placement, in the domain's terms.
pub(super) fn pinned_in(p: &pb::RegionPlacement) -> ApiResult<Pinned> {
    let slots = if p.racks.is_empty() {
        Vec::new()
    } else if p.racks.len() == p.instance_ids.len() && p.partitions.len() == p.racks.len() {
        p.racks
            .iter()
            .zip(&p.partitions)
            .map(|(r, k)| Slot {
                rack: r.clone(),
                partition: *k,
            })
            .collect()
    } else {
        return Err(ApiError::invalid(
            "RegionPlacement needs one rack and one partition per instance ID.",
        ));
    };
    Ok(Pinned {
        ids: p.instance_ids.clone(),
        slots,
        image_name: p.image_name.clone(),
    })
}

fn host_message(h: crate::cloud::placement::hosts::HostInfo) -> pb::Host {
    pb::Host {
        host_id: h.name,
        state: h.state.name().to_string(),
        host_properties: Some(pb::HostProperties {
            total_vcpus: i32::try_from(h.capacity.vcpus).unwrap_or(i32::MAX),
            memory_mib: i64::try_from(h.capacity.memory_mib).unwrap_or(i64::MAX),
            racks: h.racks,
        }),
        available_capacity: Some(pb::AvailableCapacity {
            available_vcpus: i32::try_from(h.available.vcpus).unwrap_or(i32::MAX),
            available_memory_mib: i64::try_from(h.available.memory_mib).unwrap_or(i64::MAX),
        }),
        instances: h
            .instances
            .into_iter()
            .map(|(instance_id, instance_type, owner_id)| pb::HostInstance {
                instance_id,
                instance_type,
                owner_id,
            })
            .collect(),
        underlay: h.underlay,
        api_endpoint: h.api,
        allocation_time_unix: h.started_at,
    }
}

#[tonic::async_trait]
impl Hosts for Api {
    async fn describe_hosts(
        &self,
        req: Request<pb::DescribeHostsRequest>,
    ) -> Result<Response<pb::DescribeHostsResponse>, Status> {
        self.handle_async("DescribeHosts", req, |_account, r| async move {
            let hosts = self.cloud.describe_hosts(&r.host_ids).await?;
            Ok(pb::DescribeHostsResponse {
                hosts: hosts.into_iter().map(host_message).collect(),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_placement_reads_back() {
        let p = pb::RegionPlacement {
            host: "h2".into(),
            instance_ids: vec!["i-0000000000000000a".into(), "i-0000000000000000b".into()],
            racks: vec!["h2".into(), "h2".into()],
            partitions: vec![1, 2],
            image_name: "probe".into(),
        };
        let pin = pinned_in(&p).unwrap();
        assert_eq!(pin.ids.len(), 2);
        assert_eq!(pin.slots[1].partition, 2);
        assert_eq!(pin.image_name, "probe");
        // Ungrouped: no slots at all.
        let plain = pinned_in(&pb::RegionPlacement {
            racks: Vec::new(),
            partitions: Vec::new(),
            ..p.clone()
        })
        .unwrap();
        assert!(plain.slots.is_empty());
        // Racks that do not match the IDs are refused, not guessed.
        let bad = pb::RegionPlacement {
            partitions: vec![1],
            ..p
        };
        assert!(pinned_in(&bad).is_err());
    }
}
