//! RunInstances in a region of hosts, for both front ends (gRPC and the EC2 Query API):
//! placed and reserved in etcd (`Cloud::place_in_region`), this host's share launched
//! here, each other host's share forwarded to it with its reserved IDs and slots. The
//! answer is in the API's message form, as every host's instances travel between hosts;
//! each front end renders it its own way.

use std::sync::Arc;

use strato_proto::v1 as pb;

use super::forward;
use super::placement::{token_key, TokenRecord};
use crate::cloud::compute::describe::DescribeInstances;
use crate::cloud::compute::launch::{Pinned, RunRequest};
use crate::cloud::filters::Filter;
use crate::cloud::placement::hosts::{Placed, Share};
use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How long a launch's instances may take to appear after it recorded its client token
/// (its reservations wait as long for a forwarded share to arrive).
const TOKEN_IN_FLIGHT_MS: i64 = 120_000;

impl Cloud {
    /// RunInstances wherever the region places it. Without a region, and for a launch
    /// another host placed already (pinned), the plain local launch; a dry run checks here
    /// and plans in the region, and launches and reserves nothing.
    pub async fn run_instances_routed(
        self: &Arc<Self>,
        account: &str,
        run: RunRequest,
    ) -> ApiResult<pb::RunInstancesResponse> {
        if run.pinned.is_some() {
            return Box::pin(self.launch_here(account, run)).await;
        }
        if run.dry_run {
            // Every check of this host first (it answers DryRunOperation when all pass),
            // then whether the region has room, as a launch would find it.
            let checked = Box::pin(self.launch_here(account, run.clone())).await;
            return match checked {
                Err(e) if e.code == ErrorCode::DryRunOperation => {
                    Box::pin(self.place_in_region(account, &run, &[], "")).await?;
                    Err(e)
                }
                other => other,
            };
        }
        match Box::pin(self.run_in_region(account, &run)).await? {
            Some(r) => Ok(r),
            None => Box::pin(self.launch_here(account, run)).await,
        }
    }

    /// RunInstances on this host, in message form.
    async fn launch_here(
        self: &Arc<Self>,
        account: &str,
        run: RunRequest,
    ) -> ApiResult<pb::RunInstancesResponse> {
        let (reservation, instances) = Box::pin(self.run_instances(account, run)).await?;
        let instances = instances
            .into_iter()
            .map(|i| {
                self.instance_view(i)
                    .map(crate::api::compute::instance_message)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(pb::RunInstancesResponse {
            reservation_id: reservation,
            owner_id: account.to_string(),
            instances,
        })
    }

    /// RunInstances in a region of hosts: places and reserves in etcd, then launches each
    /// host's share there (this host's here, the others' forwarded with their IDs and
    /// slots). `None` when there is no region, or nothing was reserved (the local launch
    /// then words the refusal).
    async fn run_in_region(
        self: &Arc<Self>,
        account: &str,
        run: &RunRequest,
    ) -> ApiResult<Option<pb::RunInstancesResponse>> {
        let Some(region) = self.cluster.clone() else {
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
        let token = run.client_token.as_str();
        let mut forgot = false;
        // A host that cannot be reached before its lease lapses gets nothing sent: its
        // share is placed again without it (twice at most). Only the first placement
        // records the client token; the others place what is left of the same launch.
        let mut attempt = 0;
        while attempt < 3 {
            let placed = Box::pin(self.place_in_region(
                account,
                &todo,
                &exclude,
                if attempt == 0 { token } else { "" },
            ))
            .await;
            let shares = match placed {
                Ok(Some(Placed::Shares(s))) => s,
                // Only a dry run is merely checked, and a dry run never gets here; were one
                // to, launching nothing is the safe answer.
                Ok(Some(Placed::Checked)) => {
                    return Err(ApiError::internal("A dry run reached the region's launch."))
                }
                Ok(Some(Placed::Earlier(rec))) => {
                    match self.earlier_launch(account, token, &rec).await? {
                        Some(r) => return Ok(Some(r)),
                        // Its instances are gone: the token is free for this launch.
                        None if !forgot => {
                            region.forget_token(&token_key(account, token)).await;
                            forgot = true;
                            continue;
                        }
                        None => return Err(ApiError::new(
                            ErrorCode::Unavailable,
                            "Another launch with this client token keeps recording it; try again.",
                        )),
                    }
                }
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
                    Box::pin(self.launch_here(account, local_share(&todo, &share)))
                        .await
                        .map_err(forward::Forwarded::Failed)
                } else {
                    // A share that cannot be worded fails as a refused one does (its
                    // reservations go back below).
                    match self.forwarded_share(&todo, &share) {
                        Ok(fwd) => {
                            Box::pin(forward::run_instances(
                                &share.api,
                                &region.roots,
                                &region.cfg.secret,
                                account,
                                fwd,
                            ))
                            .await
                        }
                        Err(e) => Err(forward::Forwarded::Failed(e)),
                    }
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
            attempt += 1;
        }
        let min = run.min_count.max(1) as usize;
        let result = match failure {
            Some(e) if out.instances.len() < min => Err(e),
            _ => Ok(Some(out)),
        };
        if !token.is_empty() {
            let key = token_key(account, token);
            match &result {
                // A retry answers what launched, under the reservation the caller saw.
                Ok(Some(r)) => {
                    let record = TokenRecord {
                        instance_ids: r.instances.iter().map(|i| i.instance_id.clone()).collect(),
                        reservation_id: r.reservation_id.clone(),
                        reserved_at_ms: crate::db::now_ms(),
                    };
                    region.record_token(&key, &record).await;
                }
                // A failed launch took no token: its retry launches.
                _ => region.forget_token(&key).await,
            }
        }
        result
    }

    /// The answer to a retry of the launch that recorded `token`: its instances as they are
    /// now, from the hosts they run on. `None` when they are gone (terminated and
    /// forgotten, or never launched); an error while they may still be on their way, or
    /// their hosts cannot be asked.
    async fn earlier_launch(
        &self,
        account: &str,
        token: &str,
        rec: &TokenRecord,
    ) -> ApiResult<Option<pb::RunInstancesResponse>> {
        // A plain describe covers every available host; the token's filter picks the
        // launch's instances, also those that terminated since (a describe by ID would
        // refuse those whose reservations are gone).
        let d = self
            .describe_instances_routed(
                account,
                &DescribeInstances {
                    instance_ids: Vec::new(),
                    filters: vec![Filter {
                        name: "client-token".into(),
                        values: vec![token.to_string()],
                    }],
                    page: Default::default(),
                },
                super::route::Origin::Caller,
            )
            .await?;
        let mut found: Vec<pb::Instance> = d
            .local
            .into_iter()
            .map(crate::api::compute::instance_message)
            .chain(d.remote)
            .filter(|i| rec.instance_ids.contains(&i.instance_id))
            .collect();
        if found.is_empty() {
            let young = crate::db::now_ms() - rec.reserved_at_ms < TOKEN_IN_FLIGHT_MS;
            let held = match &self.cluster {
                Some(region) => region
                    .owners_of(account, &rec.instance_ids)
                    .await
                    .map_err(|e| region.cut_off(&e))?
                    .values()
                    .any(|ids| !ids.is_empty()),
                None => false,
            };
            if young || held {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "The launch with this client token is still in progress, or its hosts cannot be reached; try again.",
                ));
            }
            return Ok(None);
        }
        found =
            super::route::in_request_order(&rec.instance_ids, found, |i| i.instance_id.as_str());
        let reservation_id = match found.first() {
            Some(first) if rec.reservation_id.is_empty() => first.reservation_id.clone(),
            _ => rec.reservation_id.clone(),
        };
        Ok(Some(pb::RunInstancesResponse {
            reservation_id,
            owner_id: account.to_string(),
            instances: found,
        }))
    }

    /// The RunInstances another host gets for its share.
    fn forwarded_share(
        &self,
        run: &RunRequest,
        share: &Share,
    ) -> ApiResult<pb::RunInstancesRequest> {
        let mut fwd = crate::api::convert::run_request(&remote_share(run, share));
        fwd.region_placement = Some(pb::RegionPlacement {
            host: share.host.clone(),
            instance_ids: share.ids.clone(),
            racks: share.slots.iter().map(|s| s.rack.clone()).collect(),
            partitions: share.slots.iter().map(|s| s.partition).collect(),
        });
        Ok(fwd)
    }
}

/// A launch cut down to one host's share: its count, and the AZ placement counted it in
/// (unless a subnet names the AZ).
fn remote_share(run: &RunRequest, share: &Share) -> RunRequest {
    let n = share.ids.len() as i32;
    let mut part = run.clone();
    part.min_count = n;
    part.max_count = n;
    if part.subnet_id.is_empty() && !share.az.is_empty() {
        part.availability_zone = share.az.clone();
    }
    part
}

/// This host's share of a launch the region placed, pinned to its reserved IDs and slots.
fn local_share(run: &RunRequest, share: &Share) -> RunRequest {
    let mut local = remote_share(run, share);
    local.pinned = Some(Pinned {
        ids: share.ids.clone(),
        slots: share.slots.clone(),
    });
    local
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::placement::scheduler::Slot;

    fn share() -> Share {
        Share {
            host: "h2".into(),
            api: "https://10.0.0.2:7443".into(),
            ids: vec!["i-0000000000000000a".into(), "i-0000000000000000b".into()],
            slots: vec![
                Slot {
                    rack: "r1".into(),
                    partition: 0,
                },
                Slot {
                    rack: "r2".into(),
                    partition: 0,
                },
            ],
            az: "strato-1b".into(),
        }
    }

    #[test]
    fn a_share_takes_its_count_and_the_placed_az() {
        let run = RunRequest {
            image_id: "ami-0123456789abcdef0".into(),
            min_count: 1,
            max_count: 5,
            group_name: "g".into(),
            client_token: "t".into(),
            ..RunRequest::default()
        };
        let local = local_share(&run, &share());
        assert_eq!((local.min_count, local.max_count), (2, 2));
        assert_eq!(local.availability_zone, "strato-1b");
        assert_eq!(local.group_name, "g");
        assert_eq!(local.client_token, "t");
        let pin = local.pinned.unwrap();
        assert_eq!(pin.ids, share().ids);
        assert_eq!(pin.slots, share().slots);
        // A subnet names the AZ itself: the share keeps the caller's (empty) AZ.
        let in_subnet = RunRequest {
            subnet_id: "subnet-0123456789abcdef0".into(),
            ..run
        };
        let remote = remote_share(&in_subnet, &share());
        assert_eq!(remote.availability_zone, "");
        assert!(remote.pinned.is_none());
    }
}
