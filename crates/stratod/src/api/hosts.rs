//! The region of hosts in the gRPC layer (config `cluster`): the `Hosts` service
//! (DescribeHosts), the calls other hosts forward (authenticated by the region's secret,
//! speaking for the account they name), and the placement a forwarded RunInstances
//! carries (the launch itself is placed in `cluster::run`, for both front ends).

use strato_proto::v1 as pb;
use strato_proto::v1::hosts_server::Hosts;
use subtle::ConstantTimeEq;
use tonic::{Request, Response, Status};

use super::Api;
use crate::cloud::compute::launch::Pinned;
use crate::cloud::placement::scheduler::Slot;
use crate::cluster::forward::ACCOUNT_METADATA;
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
        };
        let pin = pinned_in(&p).unwrap();
        assert_eq!(pin.ids.len(), 2);
        assert_eq!(pin.slots[1].partition, 2);
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
