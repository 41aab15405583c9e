//! The region-wide part of a describe without IDs: every other available host is asked for
//! its own instances (or volumes, snapshots, tags), all at once, and a host found down is shown
//! from its capacity reservations (its volumes are left out: nothing in etcd describes
//! them). Both front ends add this to what this host answers.

use strato_proto::v1 as pb;

use super::forward::Link;
use super::membership::HostState;
use super::route::HostLink;
use crate::cloud::filters::Filter;
use crate::cloud::Cloud;
use crate::error::ApiResult;

/// The instances of `account` on every other available host. A host that does not answer
/// is left out: a describe must not fail because one host is away.
pub async fn describe_other_hosts(
    cloud: &Cloud,
    account: &str,
    filters: &[Filter],
) -> Vec<pb::Instance> {
    ask_other_hosts(cloud, "DescribeInstances", |link, host| {
        let (account, filters) = (account.to_string(), filters.to_vec());
        async move {
            link.describe_instances(&host, &account, Vec::new(), &filters)
                .await
        }
    })
    .await
}

/// The status of `account`'s instances on every other available host, asked all at once
/// (one that does not answer is left out), and on the hosts found down.
pub async fn status_of_other_hosts(
    cloud: &Cloud,
    account: &str,
    include_all: bool,
) -> Vec<pb::InstanceStatus> {
    let mut more = ask_other_hosts(cloud, "DescribeInstanceStatus", |link, host| {
        let account = account.to_string();
        async move {
            link.describe_instance_status(&host, &account, Vec::new(), &[], include_all)
                .await
        }
    })
    .await;
    more.extend(down_hosts_statuses(cloud, account).await);
    more
}

/// The volumes of `account` on every other available host, asked all at once (one that
/// does not answer is left out).
pub async fn volumes_of_other_hosts(
    cloud: &Cloud,
    account: &str,
    filters: &[Filter],
) -> Vec<pb::Volume> {
    ask_other_hosts(cloud, "DescribeVolumes", |link, host| {
        let (account, filters) = (account.to_string(), filters.to_vec());
        async move {
            link.describe_volumes(&host, &account, Vec::new(), &filters)
                .await
        }
    })
    .await
}

/// The snapshots of `account` on every other available host, asked all at once (one that
/// does not answer is left out).
pub async fn snapshots_of_other_hosts(
    cloud: &Cloud,
    account: &str,
    owner_ids: &[String],
    filters: &[Filter],
) -> Vec<pb::Snapshot> {
    ask_other_hosts(cloud, "DescribeSnapshots", |link, host| {
        let (account, owners, filters) =
            (account.to_string(), owner_ids.to_vec(), filters.to_vec());
        async move {
            link.describe_snapshots(&host, &account, Vec::new(), &owners, &filters)
                .await
        }
    })
    .await
}

/// The network interfaces of `account` on every other available host, asked all at once
/// (one that does not answer is left out).
pub async fn interfaces_of_other_hosts(
    cloud: &Cloud,
    account: &str,
    filters: &[Filter],
) -> Vec<pb::NetworkInterface> {
    ask_other_hosts(cloud, "DescribeNetworkInterfaces", |link, host| {
        let (account, filters) = (account.to_string(), filters.to_vec());
        async move {
            link.describe_network_interfaces(&host, &account, Vec::new(), &filters)
                .await
        }
    })
    .await
}

/// The tags of `account`'s resources on every other available host, asked all at once (one
/// that does not answer is left out).
pub async fn tags_of_other_hosts(
    cloud: &Cloud,
    account: &str,
    filters: &[Filter],
) -> Vec<pb::TagDescription> {
    ask_other_hosts(cloud, "DescribeTags", |link, host| {
        let (account, filters) = (account.to_string(), filters.to_vec());
        async move { link.describe_tags(&host, &account, &filters).await }
    })
    .await
}

/// Runs `ask(link, host)` against every other available host at once and gathers what
/// they answer, sorted by ID; a host that fails is logged and left out.
async fn ask_other_hosts<T, F, Fut>(cloud: &Cloud, what: &'static str, ask: F) -> Vec<T>
where
    T: HasId + Send + 'static,
    F: Fn(Link, String) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Vec<T>>> + Send + 'static,
{
    let Some(region) = cloud.cluster.clone() else {
        return Vec::new();
    };
    let mut asks = tokio::task::JoinSet::new();
    for (name, h) in region.hosts() {
        if name == region.host() || h.state() != HostState::Available {
            continue;
        }
        let fut = ask(Link::new(region.clone()), name.clone());
        asks.spawn(async move { (name, fut.await) });
    }
    let mut more = Vec::new();
    while let Some(done) = asks.join_next().await {
        match done {
            Ok((_, Ok(r))) => more.extend(r),
            Ok((host, Err(e))) => {
                tracing::warn!(%host, error = %e.message, "a region host left out of {what}")
            }
            Err(_) => {}
        }
    }
    more.sort_by(|a, b| a.id().cmp(b.id()));
    more
}

/// The status of `account`'s instances on hosts found down (lease lapsed, API silent),
/// from their capacity reservations: system status `impaired` (the host failed),
/// instance status `insufficient-data` (nothing can look at the guest). Hosts etcd cannot
/// be asked about are left out.
async fn down_hosts_statuses(cloud: &Cloud, account: &str) -> Vec<pb::InstanceStatus> {
    let Some(region) = cloud.cluster.clone() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, h) in region.hosts() {
        if name == region.host() || h.state() != HostState::Unavailable {
            continue;
        }
        match region.reservations_of(&name).await {
            Ok(rs) => out.extend(
                rs.into_values()
                    .filter(|r| r.account == account)
                    .map(|r| down_host_status(&r)),
            ),
            Err(e) => {
                tracing::warn!(host = %name, error = %e, "no reservations of a down host")
            }
        }
    }
    out.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    out
}

/// How an instance on a failed host shows: its host's failure as the system check's.
fn down_host_status(r: &super::placement::Reservation) -> pb::InstanceStatus {
    pb::InstanceStatus {
        instance_id: r.instance_id.clone(),
        availability_zone: r.az.clone(),
        instance_state: Some(crate::api::convert::state(crate::lifecycle::State::Running)),
        system_status: Some(pb::StatusSummary {
            status: "impaired".into(),
            details: vec![pb::StatusDetail {
                name: "reachability".into(),
                status: "failed".into(),
                impaired_since_unix: 0,
            }],
        }),
        instance_status: Some(pb::StatusSummary {
            status: "insufficient-data".into(),
            details: vec![pb::StatusDetail {
                name: "reachability".into(),
                status: "insufficient-data".into(),
                impaired_since_unix: 0,
            }],
        }),
        attached_ebs_status: None,
    }
}

/// What a region-wide describe sorts by: the resource's ID.
trait HasId {
    fn id(&self) -> &str;
}

impl HasId for pb::NetworkInterface {
    fn id(&self) -> &str {
        &self.network_interface_id
    }
}

impl HasId for pb::Instance {
    fn id(&self) -> &str {
        &self.instance_id
    }
}

impl HasId for pb::InstanceStatus {
    fn id(&self) -> &str {
        &self.instance_id
    }
}

impl HasId for pb::Volume {
    fn id(&self) -> &str {
        &self.volume_id
    }
}

impl HasId for pb::TagDescription {
    fn id(&self) -> &str {
        &self.resource_id
    }
}

impl HasId for pb::Snapshot {
    fn id(&self) -> &str {
        &self.snapshot_id
    }
}
