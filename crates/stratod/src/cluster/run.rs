//! RunInstances in a region of hosts, for both front ends (gRPC and the EC2 Query API):
//! placed and reserved in etcd (`Cloud::place_in_region`), this host's share launched
//! here, each other host's share forwarded to it with its reserved IDs and slots. The
//! answer is in the API's message form, as every host's instances travel between hosts;
//! each front end renders it its own way.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use strato_proto::v1 as pb;

use super::forward;
use super::placement::{token_key, TokenRecord};
use super::route::{HostLink, StateOp};
use crate::cloud::compute::describe::DescribeInstances;
use crate::cloud::compute::instances::{Change, InstanceAttributes};
use crate::cloud::compute::launch::{Pinned, RunRequest};
use crate::cloud::filters::Filter;
use crate::cloud::placement::hosts::{Placed, Share};
use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// How long after a forwarded share broke its host is asked to terminate what the share
/// may have launched: longer than a launch takes there (its files pulled, its volumes
/// cloned, its monitor started answer it within seconds).
const SWEEP_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

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
        // What each host launched (host → instance IDs), for a launch that fails below its
        // MinCount to terminate again.
        let mut launched: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Shares whose call broke once sent (host → their reserved IDs): the caller never
        // learns of what they may launch, so it is terminated once it would have launched.
        let mut broken: BTreeMap<String, Vec<String>> = BTreeMap::new();
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
                        launched
                            .entry(share.host.clone())
                            .or_default()
                            .extend(r.instances.iter().map(|i| i.instance_id.clone()));
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
                    Err(forward::Forwarded::Broken(e)) => {
                        tracing::warn!(host = %share.host, error = %e.message, "a forwarded share broke after it was sent; what it may launch there is terminated later");
                        region.release(&share.host, &share.ids).await;
                        broken.insert(share.host.clone(), share.ids.clone());
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
            Some(e) if out.instances.len() < min => {
                // EC2 launches MinCount or nothing: what the other shares launched goes.
                Box::pin(self.undo_launch(account, &launched)).await;
                Err(e)
            }
            _ => Ok(Some(out)),
        };
        if !broken.is_empty() {
            self.sweep_broken(account, broken);
        }
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

    /// Terminates what a launch that failed below its MinCount launched, each host's part
    /// on its host, before the launch answers its error; what cannot be terminated is
    /// logged (it runs on, as any instance does, until terminated by hand).
    async fn undo_launch(
        self: &Arc<Self>,
        account: &str,
        launched: &BTreeMap<String, Vec<String>>,
    ) {
        let (Some(region), Some(link)) = (&self.cluster, self.link()) else {
            return;
        };
        let here = region.host();
        let left = terminate_launched(
            &link,
            here,
            account,
            launched,
            |ids| self.terminate_instances(account, &ids),
            |id| self.modify_instance(account, &id, Some(false), None),
        )
        .await;
        for (host, ids, e) in left {
            tracing::warn!(%host, instances = ?ids, code = e.code.as_str(), error = %e.message, "a failed launch could not terminate what it launched; terminate these by hand");
        }
    }

    /// After [`SWEEP_AFTER`], terminates on their hosts the instances that shares whose
    /// calls broke once sent may have launched (one by one: an ID never launched is
    /// NotFound, which is the point), and logs what cannot be terminated.
    fn sweep_broken(self: &Arc<Self>, account: &str, broken: BTreeMap<String, Vec<String>>) {
        let me = Arc::clone(self);
        let account = account.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(SWEEP_AFTER).await;
            let (Some(region), Some(link)) = (me.cluster.clone(), me.link()) else {
                return;
            };
            for (host, ids) in broken {
                for id in ids {
                    let one = BTreeMap::from([(host.clone(), vec![id.clone()])]);
                    let left = terminate_launched(
                        &link,
                        region.host(),
                        &account,
                        &one,
                        |ids| me.terminate_instances(&account, &ids),
                        |id| me.modify_instance(&account, &id, Some(false), None),
                    )
                    .await;
                    match left.first() {
                        None => {
                            tracing::info!(%host, instance = %id, "terminated an instance a broken share launched")
                        }
                        Some((_, _, e)) if e.code == ErrorCode::InvalidInstanceIdNotFound => {}
                        Some((_, _, e)) => {
                            tracing::warn!(%host, instance = %id, error = %e.message, "an instance a broken share may have launched is not terminated; check it by hand")
                        }
                    }
                }
            }
        });
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

/// Terminates `launched` (host → its instance IDs) for a launch that failed: `here`'s part
/// with `terminate` and `unprotect` (this host's own calls), each other host's through
/// `link`, one host after another, each on its own (a host that refuses or cannot be
/// reached leaves the others' parts to be done). An instance protected from termination (the
/// launch, or its template, asked for DisableApiTermination) has the protection lifted
/// first. The parts that were not terminated come back, with why.
async fn terminate_launched(
    link: &dyn HostLink,
    here: &str,
    account: &str,
    launched: &BTreeMap<String, Vec<String>>,
    terminate: impl Fn(Vec<String>) -> ApiResult<Vec<Change>>,
    unprotect: impl Fn(String) -> ApiResult<()>,
) -> Vec<(String, Vec<String>, ApiError)> {
    let mut left = Vec::new();
    for (host, ids) in launched.iter().filter(|(_, ids)| !ids.is_empty()) {
        let done = if host == here {
            terminate_part(
                ids,
                |part| std::future::ready(terminate(part)),
                |id| std::future::ready(unprotect(id)),
            )
            .await
        } else {
            let lift = InstanceAttributes {
                disable_api_termination: Some(false),
                ..InstanceAttributes::default()
            };
            let lift = &lift;
            terminate_part(
                ids,
                |part| link.change_states(host, account, StateOp::Terminate, part),
                |id| async move {
                    link.modify_instance_attribute(host, account, &id, lift)
                        .await
                },
            )
            .await
        };
        if let Err(e) = done {
            left.push((host.clone(), ids.clone(), e));
        }
    }
    left
}

/// TerminateInstances of `ids` (all on one host) with `terminate`; refused because one is
/// protected (`OperationNotPermitted`), each has its protection lifted with `unprotect`, and
/// they are terminated again.
async fn terminate_part<T, TF, U, UF>(ids: &[String], terminate: T, unprotect: U) -> ApiResult<()>
where
    T: Fn(Vec<String>) -> TF,
    TF: Future<Output = ApiResult<Vec<Change>>>,
    U: Fn(String) -> UF,
    UF: Future<Output = ApiResult<()>>,
{
    match terminate(ids.to_vec()).await {
        Err(e) if e.code == ErrorCode::OperationNotPermitted => {
            for id in ids {
                unprotect(id.clone()).await?;
            }
            terminate(ids.to_vec()).await.map(|_| ())
        }
        done => done.map(|_| ()),
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
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    use super::*;
    use crate::cloud::compute::console::{ConsoleOutput, InputDelivered};
    use crate::cloud::compute::metadata::MetadataChange;
    use crate::cloud::placement::scheduler::Slot;
    use crate::db::instances::MetadataOptions;
    use crate::lifecycle::State;

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

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Hosts as a failed launch finds them: some instances protected from termination, one
    /// host down. Every call is recorded, this host's as host "h1".
    #[derive(Default)]
    struct Hosts {
        protected: Mutex<BTreeSet<String>>,
        down: Option<String>,
        calls: Mutex<Vec<String>>,
    }

    impl Hosts {
        fn terminate(&self, host: &str, ids: Vec<String>) -> ApiResult<Vec<Change>> {
            if self.down.as_deref() == Some(host) {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    format!("{host} is down"),
                ));
            }
            self.calls
                .lock()
                .unwrap()
                .push(format!("terminate {host} {}", ids.join(",")));
            if let Some(p) = ids
                .iter()
                .find(|id| self.protected.lock().unwrap().contains(*id))
            {
                return Err(ApiError::new(
                    ErrorCode::OperationNotPermitted,
                    format!("The instance '{p}' may not be terminated."),
                ));
            }
            Ok(ids
                .into_iter()
                .map(|id| Change {
                    id,
                    previous: State::Pending,
                    current: State::ShuttingDown,
                })
                .collect())
        }

        fn unprotect(&self, host: &str, id: String) -> ApiResult<()> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("unprotect {host} {id}"));
            self.protected.lock().unwrap().remove(&id);
            Ok(())
        }
    }

    #[tonic::async_trait]
    impl HostLink for Hosts {
        async fn change_states(
            &self,
            host: &str,
            _: &str,
            op: StateOp,
            ids: Vec<String>,
        ) -> ApiResult<Vec<Change>> {
            assert_eq!(op, StateOp::Terminate);
            assert_ne!(host, "h1", "this host's part is not forwarded");
            self.terminate(host, ids)
        }
        async fn console_output(&self, _: &str, _: &str, _: &str) -> ApiResult<ConsoleOutput> {
            unreachable!()
        }
        async fn console_input(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &[u8],
            _: bool,
        ) -> ApiResult<InputDelivered> {
            unreachable!()
        }
        async fn modify_instance_attribute(
            &self,
            host: &str,
            _: &str,
            id: &str,
            change: &InstanceAttributes,
        ) -> ApiResult<()> {
            assert_eq!(
                change,
                &InstanceAttributes {
                    disable_api_termination: Some(false),
                    ..InstanceAttributes::default()
                }
            );
            self.unprotect(host, id.to_string())
        }
        async fn modify_metadata_options(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: MetadataChange,
        ) -> ApiResult<MetadataOptions> {
            unreachable!()
        }
        async fn describe_instances(
            &self,
            _: &str,
            _: &str,
            _: Vec<String>,
            _: &[Filter],
        ) -> ApiResult<Vec<pb::Instance>> {
            unreachable!()
        }
        async fn describe_instance_status(
            &self,
            _: &str,
            _: &str,
            _: Vec<String>,
            _: &[Filter],
            _: bool,
        ) -> ApiResult<Vec<pb::InstanceStatus>> {
            unreachable!()
        }
    }

    async fn undo(
        hosts: &Hosts,
        launched: &[(&str, &[&str])],
    ) -> Vec<(String, Vec<String>, ApiError)> {
        let launched: BTreeMap<String, Vec<String>> = launched
            .iter()
            .map(|(h, i)| (h.to_string(), ids(i)))
            .collect();
        terminate_launched(
            hosts,
            "h1",
            "000000000001",
            &launched,
            |part| hosts.terminate("h1", part),
            |id| hosts.unprotect("h1", id),
        )
        .await
    }

    #[tokio::test]
    async fn a_failed_launch_terminates_each_hosts_part_on_that_host() {
        let hosts = Hosts::default();
        let left = undo(
            &hosts,
            &[("h1", &["i-1", "i-2"]), ("h2", &["i-3"]), ("h3", &[])],
        )
        .await;
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(
            *hosts.calls.lock().unwrap(),
            ["terminate h1 i-1,i-2", "terminate h2 i-3"],
            "a host that launched nothing is not asked"
        );
    }

    #[tokio::test]
    async fn protected_instances_are_unprotected_then_terminated() {
        let hosts = Hosts::default();
        hosts.protected.lock().unwrap().extend(ids(&["i-2", "i-3"]));
        let left = undo(&hosts, &[("h1", &["i-1", "i-2"]), ("h2", &["i-3"])]).await;
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(
            *hosts.calls.lock().unwrap(),
            [
                "terminate h1 i-1,i-2",
                "unprotect h1 i-1",
                "unprotect h1 i-2",
                "terminate h1 i-1,i-2",
                "terminate h2 i-3",
                "unprotect h2 i-3",
                "terminate h2 i-3",
            ]
        );
    }

    #[tokio::test]
    async fn a_host_that_cannot_terminate_its_part_is_reported_and_the_others_go_on() {
        let hosts = Hosts {
            down: Some("h2".into()),
            ..Hosts::default()
        };
        let left = undo(
            &hosts,
            &[("h1", &["i-1"]), ("h2", &["i-2"]), ("h3", &["i-3"])],
        )
        .await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!((left[0].0.as_str(), &left[0].1), ("h2", &ids(&["i-2"])));
        assert_eq!(left[0].2.code, ErrorCode::Unavailable);
        assert_eq!(
            *hosts.calls.lock().unwrap(),
            ["terminate h1 i-1", "terminate h3 i-3"]
        );
    }
}
