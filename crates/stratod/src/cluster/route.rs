//! Calls about instances in a region of hosts, for both front ends (gRPC and the EC2
//! Query API): each instance ID goes to the host that owns it (its capacity reservation in
//! etcd says which), this host's part runs here, each other host's part is forwarded to
//! that host over the hosts' TLS links ([`HostLink`]), and the answers are merged in the
//! request's order. A call another host forwarded is not routed again: that host split it
//! already, so it acts here only ([`Origin::RegionHost`]).
//!
//! An ID no reservation names stays here (this host answers NotFound as without a
//! region); so do all IDs while etcd cannot be asked, since a host cut off from etcd still
//! answers for its own instances.

use std::collections::BTreeMap;
use std::sync::Arc;

use strato_proto::v1 as pb;

use crate::cloud::compute::console::{ConsoleOutput, InputDelivered};
use crate::cloud::compute::describe::{
    DescribeInstanceStatus, DescribeInstances, InstanceStatus, InstanceView,
};
use crate::cloud::compute::instances::{Change, InstanceAttributes};
use crate::cloud::compute::metadata::MetadataChange;
use crate::cloud::filters::Filter;
use crate::cloud::Cloud;
use crate::db::instances::MetadataOptions;
use crate::error::ApiResult;

/// Who sent a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A user (CLI, SDK, aws CLI): calls about other hosts' instances go to their owners.
    Caller,
    /// Another host of the region, which routed the call already: it acts here only.
    RegionHost,
}

/// Where the IDs of one call go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// Answered here: this host's own IDs and those no host owns.
    pub local: Vec<String>,
    /// Each other host's IDs, in the request's order.
    pub remote: BTreeMap<String, Vec<String>>,
}

impl Route {
    /// Every ID here.
    pub fn all_local(ids: &[String]) -> Route {
        Route {
            local: ids.to_vec(),
            remote: BTreeMap::new(),
        }
    }

    /// `ids` split by `owners` (host → its IDs): this host's and unowned ones stay here.
    pub fn split(this_host: &str, ids: &[String], owners: &BTreeMap<String, Vec<String>>) -> Route {
        let remote: BTreeMap<String, Vec<String>> = owners
            .iter()
            .filter(|(host, owned)| host.as_str() != this_host && !owned.is_empty())
            .map(|(host, owned)| (host.clone(), owned.clone()))
            .collect();
        let local = ids
            .iter()
            .filter(|id| !remote.values().any(|owned| owned.contains(id)))
            .cloned()
            .collect();
        Route { local, remote }
    }

    /// The one host other than this that owns the only ID, if another does.
    pub(super) fn single_remote(&self) -> Option<&str> {
        match (self.local.is_empty(), self.remote.len()) {
            (true, 1) => self.remote.keys().next().map(String::as_str),
            _ => None,
        }
    }
}

/// `ids` grouped by their owner host (`owner`: instance ID → host), each group in the
/// order asked and without repeats; an ID without an owner is left out.
pub fn by_owner(ids: &[String], owner: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in ids {
        if let Some(host) = owner.get(id) {
            let group = out.entry(host.clone()).or_default();
            if !group.contains(id) {
                group.push(id.clone());
            }
        }
    }
    out
}

/// `items` in the order their IDs have in `ids` (EC2 answers in the request's order);
/// items of IDs not asked for go last, in the order they came.
pub fn in_request_order<T>(
    ids: &[String],
    mut items: Vec<T>,
    id_of: impl Fn(&T) -> &str,
) -> Vec<T> {
    items.sort_by_key(|item| {
        ids.iter()
            .position(|id| id == id_of(item))
            .unwrap_or(ids.len())
    });
    items
}

/// What kind of resource the IDs of a route are: instances are found through their capacity
/// reservations, volumes and snapshots through the region's owner index (`owners`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `i-…`
    Instance,
    /// `vol-…`
    Volume,
    /// `snap-…`
    Snapshot,
    /// `eni-…`
    NetworkInterface,
}

/// A state change each host makes to its own instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateOp {
    /// StopInstances (`force`: no graceful shutdown first).
    Stop {
        /// Stop at once.
        force: bool,
    },
    /// StartInstances.
    Start,
    /// RebootInstances (it reports no state changes).
    Reboot,
    /// TerminateInstances.
    Terminate,
}

/// Calls another host of the region for an account, as that host's own API answers them
/// (its EC2 error codes kept). A host that cannot be reached is `Unavailable`, named. The
/// gRPC implementation is `forward::Link`.
#[tonic::async_trait]
pub trait HostLink: Send + Sync {
    /// A state change of `ids`, all on `host`.
    async fn change_states(
        &self,
        host: &str,
        account: &str,
        op: StateOp,
        ids: Vec<String>,
    ) -> ApiResult<Vec<Change>>;
    /// GetConsoleOutput.
    async fn console_output(&self, host: &str, account: &str, id: &str)
        -> ApiResult<ConsoleOutput>;
    /// SendConsoleInput.
    async fn console_input(
        &self,
        host: &str,
        account: &str,
        id: &str,
        data: &[u8],
        send_break: bool,
    ) -> ApiResult<InputDelivered>;
    /// ModifyInstanceAttribute.
    async fn modify_instance_attribute(
        &self,
        host: &str,
        account: &str,
        id: &str,
        change: &InstanceAttributes,
    ) -> ApiResult<()>;
    /// ModifyInstanceMetadataOptions.
    async fn modify_metadata_options(
        &self,
        host: &str,
        account: &str,
        id: &str,
        change: MetadataChange,
    ) -> ApiResult<MetadataOptions>;
    /// DescribeInstances of `host`'s own instances (`ids` empty: all of them).
    async fn describe_instances(
        &self,
        host: &str,
        account: &str,
        ids: Vec<String>,
        filters: &[Filter],
    ) -> ApiResult<Vec<pb::Instance>>;
    /// DescribeInstanceStatus of `host`'s own instances (`ids` empty: all of them).
    async fn describe_instance_status(
        &self,
        host: &str,
        account: &str,
        ids: Vec<String>,
        filters: &[Filter],
        include_all: bool,
    ) -> ApiResult<Vec<pb::InstanceStatus>>;
}

/// Runs `route`: the local part with `local` (skipped when empty, since an empty ID list
/// means "all" to most calls), then each other host's part with `remote`. The first
/// refusal fails the call; parts already done stay done, as when one host of a launch
/// fails.
pub async fn run<T, L, R, Fut>(route: Route, local: L, remote: R) -> ApiResult<Vec<T>>
where
    L: FnOnce(Vec<String>) -> ApiResult<Vec<T>>,
    R: Fn(String, Vec<String>) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Vec<T>>>,
{
    let mut out = if route.local.is_empty() {
        Vec::new()
    } else {
        local(route.local)?
    };
    for (host, ids) in route.remote {
        out.extend(remote(host, ids).await?);
    }
    Ok(out)
}

/// A state change routed by `route`: this host's part by `local`, the others' through
/// `link`; the changes in the order of `ids`.
pub async fn change_states(
    link: &dyn HostLink,
    account: &str,
    op: StateOp,
    ids: &[String],
    route: Route,
    local: impl FnOnce(Vec<String>) -> ApiResult<Vec<Change>>,
) -> ApiResult<Vec<Change>> {
    let changes = run(route, local, |host, part| async move {
        link.change_states(&host, account, op, part).await
    })
    .await?;
    Ok(in_request_order(ids, changes, |c| c.id.as_str()))
}

/// The instances of a DescribeInstances as it was routed: this host's, and the other
/// hosts' in their API form (each front end shows both its own way).
#[derive(Debug)]
pub struct Described<L, R> {
    /// This host's.
    pub local: Vec<L>,
    /// The next page of this host's (only a call that names no IDs pages).
    pub next_token: String,
    /// The other hosts'.
    pub remote: Vec<R>,
}

/// The region's listing order of instances: launch time, then ID.
fn instance_key(v: &InstanceView) -> (i64, &str) {
    (v.instance.launch_time, &v.instance.id)
}

fn pb_instance_key(i: &pb::Instance) -> (i64, &str) {
    (i.launch_time_unix, &i.instance_id)
}

impl Cloud {
    /// Where `account`'s `ids` go (another account's stay here, refused as unknown): all
    /// here without a region, for a call another host forwarded, or while etcd cannot be
    /// asked (it did not answer within a lease TTL).
    pub async fn route(&self, account: &str, ids: &[String], origin: Origin) -> Route {
        self.route_of(Resource::Instance, account, ids, origin)
            .await
    }

    /// [`Cloud::route`] for IDs of `kind`.
    pub async fn route_of(
        &self,
        kind: Resource,
        account: &str,
        ids: &[String],
        origin: Origin,
    ) -> Route {
        let Some(region) = &self.cluster else {
            return Route::all_local(ids);
        };
        // While etcd is away a call about instances must not wait on it for seconds:
        // this host answers for its own, as it does for everything else then.
        if origin == Origin::RegionHost || ids.is_empty() || !region.etcd_reachable() {
            return Route::all_local(ids);
        }
        // The common case, all of them here (a CLI's --wait polls this way), needs no
        // etcd read.
        if ids.iter().all(|id| self.holds(kind, account, id)) {
            return Route::all_local(ids);
        }
        let owners = match kind {
            Resource::Instance => region.owners_of(account, ids).await,
            Resource::Volume | Resource::Snapshot | Resource::NetworkInterface => {
                region.holders_of(account, ids).await
            }
        };
        match owners {
            Ok(owners) => Route::split(region.host(), ids, &owners),
            Err(e) => {
                tracing::debug!(error = %crate::error::chain(&e), "no owners from etcd; answering here");
                Route::all_local(ids)
            }
        }
    }

    /// Whether this host's database has `account`'s `id` of `kind`.
    pub(super) fn holds(&self, kind: Resource, account: &str, id: &str) -> bool {
        match kind {
            Resource::Instance => self.owned_instance(account, id).is_ok(),
            Resource::Volume => self.owned_volume(account, id).is_ok(),
            Resource::Snapshot => self.owned_snapshot(account, id).is_ok(),
            Resource::NetworkInterface => self.owned_eni(account, id).is_ok(),
        }
    }

    /// The link to the region's other hosts (`None` without a region).
    pub(super) fn link(&self) -> Option<super::forward::Link> {
        self.cluster.clone().map(super::forward::Link::new)
    }

    /// The other host that owns `id`, if one does (`None`: answer here).
    async fn owner_elsewhere(
        &self,
        account: &str,
        id: &str,
        origin: Origin,
    ) -> Option<(super::forward::Link, String)> {
        let route = self.route(account, &[id.to_string()], origin).await;
        let host = route.single_remote()?.to_string();
        Some((self.link()?, host))
    }

    /// Stop, Start, Reboot or Terminate of `ids`, wherever they run.
    pub async fn change_states_routed(
        self: &Arc<Self>,
        account: &str,
        op: StateOp,
        ids: &[String],
        origin: Origin,
    ) -> ApiResult<Vec<Change>> {
        let route = self.route(account, ids, origin).await;
        let local = |part: Vec<String>| match op {
            StateOp::Stop { force } => self.stop_instances(account, &part, force),
            StateOp::Start => self.start_instances(account, &part),
            StateOp::Reboot => self.reboot_instances(account, &part).map(|()| Vec::new()),
            StateOp::Terminate => self.terminate_instances(account, &part),
        };
        match self.link() {
            Some(link) if !route.remote.is_empty() => {
                change_states(&link, account, op, ids, route, local).await
            }
            // All here: the request as it came (an empty list is refused as without a
            // region).
            _ => local(ids.to_vec()),
        }
    }

    /// GetConsoleOutput, from the instance's host.
    pub async fn console_output_routed(
        &self,
        account: &str,
        id: &str,
        origin: Origin,
    ) -> ApiResult<ConsoleOutput> {
        match self.owner_elsewhere(account, id, origin).await {
            Some((link, host)) => link.console_output(&host, account, id).await,
            None => self.console_output(account, id),
        }
    }

    /// StreamConsole of an instance on another host: that host's stream (`None`: the
    /// instance is answered here). Only gRPC streams a console.
    pub async fn console_stream_elsewhere(
        &self,
        account: &str,
        id: &str,
        origin: Origin,
    ) -> Option<ApiResult<tonic::Streaming<pb::ConsoleChunk>>> {
        let (link, host) = self.owner_elsewhere(account, id, origin).await?;
        Some(link.stream_console(&host, account, id).await)
    }

    /// SendConsoleInput, on the instance's host.
    pub async fn console_input_routed(
        &self,
        account: &str,
        id: &str,
        data: &[u8],
        send_break: bool,
        origin: Origin,
    ) -> ApiResult<InputDelivered> {
        match self.owner_elsewhere(account, id, origin).await {
            Some((link, host)) => {
                link.console_input(&host, account, id, data, send_break)
                    .await
            }
            None => self.console_input(account, id, data, send_break).await,
        }
    }

    /// ModifyInstanceAttribute, on the instance's host.
    pub async fn modify_instance_attribute_routed(
        &self,
        account: &str,
        id: &str,
        change: &InstanceAttributes,
        origin: Origin,
    ) -> ApiResult<()> {
        match self.owner_elsewhere(account, id, origin).await {
            Some((link, host)) => {
                link.modify_instance_attribute(&host, account, id, change)
                    .await
            }
            None => self.modify_instance_attribute(account, id, change).await,
        }
    }

    /// ModifyInstanceMetadataOptions, on the instance's host.
    pub async fn modify_metadata_options_routed(
        &self,
        account: &str,
        id: &str,
        change: MetadataChange,
        origin: Origin,
    ) -> ApiResult<MetadataOptions> {
        match self.owner_elsewhere(account, id, origin).await {
            Some((link, host)) => {
                link.modify_metadata_options(&host, account, id, change)
                    .await
            }
            None => self.modify_metadata_options(account, id, change),
        }
    }

    /// One instance with its user data (the Query API's DescribeInstanceAttribute), from
    /// its host, in the message form every host's instances take.
    pub async fn instance_with_user_data_routed(
        &self,
        account: &str,
        id: &str,
        origin: Origin,
    ) -> ApiResult<pb::Instance> {
        match self.owner_elsewhere(account, id, origin).await {
            Some((link, host)) => link.instance_with_user_data(&host, account, id).await,
            None => {
                let view = self.instance_view(self.owned_instance(account, id)?)?;
                Ok(crate::api::compute::instance_message_with_user_data(view))
            }
        }
    }

    /// DescribeInstances across the region: with IDs, each owner answers for its own; one
    /// without IDs adds every other available host's instances, paged over the region's
    /// listing when a page size or token is given (the aws CLI always sends MaxResults); one
    /// another host sent covers this host only.
    pub async fn describe_instances_routed(
        &self,
        account: &str,
        req: &DescribeInstances,
        origin: Origin,
    ) -> ApiResult<Described<InstanceView, pb::Instance>> {
        let paged = req.page.max_results != 0 || !req.page.next_token.is_empty();
        if paged
            && req.instance_ids.is_empty()
            && origin == Origin::Caller
            && self.cluster.is_some()
        {
            // A page this host would refuse is refused before the other hosts are asked.
            crate::cloud::paging::paginate(Vec::<()>::new(), &req.page)?;
            let mut all = req.clone();
            all.page = crate::cloud::paging::PageRequest::default();
            let here = self.describe_instances(account, &all)?.items;
            let there = super::fanout::describe_other_hosts(self, account, &req.filters).await;
            return super::volumes::region_page(
                here,
                there,
                &req.page,
                instance_key,
                pb_instance_key,
            );
        }
        if req.instance_ids.is_empty() || paged || origin == Origin::RegionHost {
            let page = self.describe_instances(account, req)?;
            let remote = if !paged && origin == Origin::Caller && req.instance_ids.is_empty() {
                super::fanout::describe_other_hosts(self, account, &req.filters).await
            } else {
                Vec::new()
            };
            return Ok(Described {
                local: page.items,
                next_token: page.next_token,
                remote,
            });
        }
        self.described_by_owner(
            Resource::Instance,
            account,
            &req.instance_ids,
            origin,
            |ids| {
                let mut mine = req.clone();
                mine.instance_ids = ids;
                self.describe_instances(account, &mine)
            },
            |link, host, ids| async move {
                link.describe_instances(&host, account, ids, &req.filters)
                    .await
            },
        )
        .await
    }

    /// DescribeInstanceStatus across the region, as [`Cloud::describe_instances_routed`]
    /// (a plain one also lists the down hosts' instances, impaired; one with filters
    /// covers this host only, since a down host's instances cannot be filtered).
    pub async fn describe_instance_status_routed(
        &self,
        account: &str,
        req: &DescribeInstanceStatus,
        origin: Origin,
    ) -> ApiResult<Described<InstanceStatus, pb::InstanceStatus>> {
        let paged = req.page.max_results != 0 || !req.page.next_token.is_empty();
        if req.instance_ids.is_empty() || paged || origin == Origin::RegionHost {
            let page = self.describe_instance_status(account, req)?;
            let plain = !paged && req.filters.is_empty() && req.instance_ids.is_empty();
            let remote = if plain && origin == Origin::Caller {
                super::fanout::status_of_other_hosts(self, account, req.include_all_instances).await
            } else {
                Vec::new()
            };
            return Ok(Described {
                local: page.items,
                next_token: page.next_token,
                remote,
            });
        }
        self.described_by_owner(
            Resource::Instance,
            account,
            &req.instance_ids,
            origin,
            |ids| {
                let mut mine = req.clone();
                mine.instance_ids = ids;
                self.describe_instance_status(account, &mine)
            },
            |link, host, ids| async move {
                link.describe_instance_status(
                    &host,
                    account,
                    ids,
                    &req.filters,
                    req.include_all_instances,
                )
                .await
            },
        )
        .await
    }

    /// The routed half of a describe with IDs of `kind`: this host's own described here by
    /// `local` (given the IDs to describe), each other host's asked of it by `remote`. With
    /// every ID here, `local` gets them all and its page is the answer.
    pub(super) async fn described_by_owner<L, R, F>(
        &self,
        kind: Resource,
        account: &str,
        ids: &[String],
        origin: Origin,
        local: impl Fn(Vec<String>) -> ApiResult<crate::cloud::paging::Page<L>>,
        remote: impl Fn(super::forward::Link, String, Vec<String>) -> F,
    ) -> ApiResult<Described<L, R>>
    where
        F: std::future::Future<Output = ApiResult<Vec<R>>>,
    {
        let route = self.route_of(kind, account, ids, origin).await;
        if route.remote.is_empty() {
            let page = local(ids.to_vec())?;
            return Ok(Described {
                local: page.items,
                next_token: page.next_token,
                remote: Vec::new(),
            });
        }
        let mine = if route.local.is_empty() {
            Vec::new()
        } else {
            local(route.local.clone())?.items
        };
        let mut theirs = Vec::new();
        if let Some(link) = self.link() {
            for (host, ids) in route.remote {
                theirs.extend(remote(link.clone(), host, ids).await?);
            }
        }
        Ok(Described {
            local: mine,
            next_token: String::new(),
            remote: theirs,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::error::{ApiError, ErrorCode};
    use crate::lifecycle::State;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn owners_group_in_request_order_and_unknown_ids_drop_out() {
        let owner: BTreeMap<String, String> = [("i-a", "h2"), ("i-b", "h1"), ("i-c", "h2")]
            .into_iter()
            .map(|(i, h)| (i.to_string(), h.to_string()))
            .collect();
        let got = by_owner(&ids(&["i-c", "i-x", "i-b", "i-a", "i-c"]), &owner);
        assert_eq!(got.len(), 2);
        assert_eq!(got["h2"], ids(&["i-c", "i-a"]));
        assert_eq!(got["h1"], ids(&["i-b"]));
    }

    #[test]
    fn split_keeps_this_hosts_and_unowned_ids_here() {
        let asked = ids(&["i-1", "i-2", "i-3", "i-4"]);
        let owners: BTreeMap<String, Vec<String>> = [
            ("h1".to_string(), ids(&["i-1"])),
            ("h2".to_string(), ids(&["i-2", "i-4"])),
            ("h3".to_string(), Vec::new()),
        ]
        .into_iter()
        .collect();
        let r = Route::split("h1", &asked, &owners);
        // i-3 has no reservation: this host answers (NotFound, as without a region).
        assert_eq!(r.local, ids(&["i-1", "i-3"]));
        assert_eq!(r.remote.len(), 1, "{r:?}");
        assert_eq!(r.remote["h2"], ids(&["i-2", "i-4"]));
        assert_eq!(r.single_remote(), None);
        let only = Route::split("h1", &ids(&["i-2"]), &owners);
        assert_eq!(only.single_remote(), Some("h2"));
        assert_eq!(
            Route::split("h2", &ids(&["i-2"]), &owners).single_remote(),
            None
        );
    }

    #[test]
    fn merge_follows_the_request() {
        let asked = ids(&["i-3", "i-1", "i-2"]);
        let got = in_request_order(&asked, ids(&["i-1", "i-9", "i-2", "i-3"]), |s| s.as_str());
        assert_eq!(got, ids(&["i-3", "i-1", "i-2", "i-9"]));
    }

    /// A link that records what it was asked and answers as the named host would.
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<(String, StateOp, Vec<String>)>>,
        down: Option<String>,
    }

    #[tonic::async_trait]
    impl HostLink for Fake {
        async fn change_states(
            &self,
            host: &str,
            _account: &str,
            op: StateOp,
            ids: Vec<String>,
        ) -> ApiResult<Vec<Change>> {
            if self.down.as_deref() == Some(host) {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    format!("The region's host {host} cannot be reached."),
                ));
            }
            self.calls
                .lock()
                .unwrap()
                .push((host.to_string(), op, ids.clone()));
            Ok(ids
                .into_iter()
                .map(|id| Change {
                    id,
                    previous: State::Running,
                    current: State::Stopping,
                })
                .collect())
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
            _: &str,
            _: &str,
            _: &str,
            _: &InstanceAttributes,
        ) -> ApiResult<()> {
            unreachable!()
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

    fn route(local: &[&str], remote: &[(&str, &[&str])]) -> Route {
        Route {
            local: ids(local),
            remote: remote
                .iter()
                .map(|(h, i)| (h.to_string(), ids(i)))
                .collect(),
        }
    }

    fn stopped_here(part: Vec<String>) -> ApiResult<Vec<Change>> {
        Ok(part
            .into_iter()
            .map(|id| Change {
                id,
                previous: State::Running,
                current: State::Stopped,
            })
            .collect())
    }

    #[tokio::test]
    async fn each_host_gets_its_part_and_the_changes_keep_the_request_order() {
        let link = Fake::default();
        let asked = ids(&["i-3", "i-1", "i-2", "i-4"]);
        let got = change_states(
            &link,
            "000000000001",
            StateOp::Stop { force: true },
            &asked,
            route(&["i-1"], &[("h2", &["i-3", "i-4"]), ("h3", &["i-2"])]),
            stopped_here,
        )
        .await
        .unwrap();
        let order: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(order, ["i-3", "i-1", "i-2", "i-4"]);
        assert_eq!(got[1].current, State::Stopped, "i-1 is this host's");
        assert_eq!(got[0].current, State::Stopping, "i-3 is h2's");
        let calls = link.calls.lock().unwrap();
        assert_eq!(
            *calls,
            vec![
                (
                    "h2".to_string(),
                    StateOp::Stop { force: true },
                    ids(&["i-3", "i-4"])
                ),
                (
                    "h3".to_string(),
                    StateOp::Stop { force: true },
                    ids(&["i-2"])
                ),
            ]
        );
    }

    #[tokio::test]
    async fn nothing_local_calls_no_local_part_and_a_down_owner_fails_the_call() {
        let link = Fake {
            down: Some("h3".into()),
            ..Fake::default()
        };
        let asked = ids(&["i-2"]);
        let err = change_states(
            &link,
            "000000000001",
            StateOp::Start,
            &asked,
            route(&[], &[("h3", &["i-2"])]),
            |_| panic!("no local part"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable);
        assert!(err.message.contains("h3"), "{}", err.message);
    }

    /// A cloud in a region whose etcd never answers: its port takes connections (the
    /// listener's backlog) and says nothing, so each ask would wait out a timeout.
    fn region_cloud(etcd: &std::net::TcpListener) -> (tempfile::TempDir, Arc<Cloud>) {
        let etcd = format!("http://{}", etcd.local_addr().unwrap());
        crate::cloud::test_cloud_with(|cfg| {
            cfg.cluster = Some(crate::cluster::config::ClusterConfig {
                etcd: vec![etcd],
                host: "h1".into(),
                underlay: "127.0.0.1".parse().unwrap(),
                api: "https://127.0.0.1:1".into(),
                capacity: crate::cluster::config::Capacity {
                    vcpus: 2,
                    memory_mib: 1024,
                },
                racks: vec!["h1".into()],
                lease_ttl: std::time::Duration::from_secs(2),
                secret: "0123456789abcdef".into(),
            })
        })
    }

    #[tokio::test]
    async fn a_forwarded_call_and_a_host_cut_off_from_etcd_act_here() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (_dir, cloud) = region_cloud(&silent);
        let asked = ids(&["i-0000000000000000a", "i-0000000000000000b"]);
        // A call another host sent is never routed again, whatever etcd says.
        assert_eq!(
            cloud
                .route("000000000000", &asked, Origin::RegionHost)
                .await,
            Route::all_local(&asked)
        );
        // etcd has not answered within a TTL: this host answers for its own at once
        // rather than after etcd's connect timeout.
        let started = std::time::Instant::now();
        assert_eq!(
            cloud.route("000000000000", &asked, Origin::Caller).await,
            Route::all_local(&asked)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let err = cloud
            .change_states_routed(
                "000000000000",
                StateOp::Stop { force: true },
                &asked,
                Origin::RegionHost,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInstanceIdNotFound);
    }

    #[tokio::test]
    async fn volumes_of_a_host_cut_off_from_etcd_are_made_and_answered_here() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (_dir, cloud) = region_cloud(&silent);
        let account = cloud.admin_account().to_string();
        let started = std::time::Instant::now();
        // Made here (the index catches up when etcd is back), and found here.
        let req = pb::CreateVolumeRequest {
            size: 1,
            availability_zone: cloud.cfg.availability_zones[0].clone(),
            ..Default::default()
        };
        let made = cloud
            .create_volume_routed(&account, &req, Origin::Caller)
            .await
            .unwrap();
        let crate::cluster::volumes::Answer::Here(v) = made else {
            panic!("made elsewhere")
        };
        let d = cloud
            .describe_volumes_routed(
                &account,
                &crate::cloud::storage::describe::DescribeVolumes {
                    volume_ids: vec![v.id.clone()],
                    ..Default::default()
                },
                Origin::Caller,
            )
            .await
            .unwrap();
        assert_eq!(d.local.len(), 1);
        assert!(d.remote.is_empty());
        // An ID this host does not hold is refused here, as on one host.
        let err = cloud
            .delete_volume_routed(&account, "vol-0000000000000000a", false, Origin::Caller)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidVolumeNotFound);
        cloud
            .delete_volume_routed(&account, &v.id, false, Origin::Caller)
            .await
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_local_refusal_keeps_the_code() {
        let link = Fake::default();
        let err = change_states(
            &link,
            "000000000001",
            StateOp::Terminate,
            &ids(&["i-1", "i-2"]),
            route(&["i-1"], &[("h2", &["i-2"])]),
            |_| {
                Err(ApiError::new(
                    ErrorCode::InvalidInstanceIdNotFound,
                    "The instance ID 'i-1' does not exist",
                ))
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInstanceIdNotFound);
        assert!(
            link.calls.lock().unwrap().is_empty(),
            "refused before forwarding"
        );
    }
}
