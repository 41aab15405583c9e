//! Calls forwarded to another host of the region over its TLS API: the host authenticates
//! with the region's shared secret and names the caller's account beside it, so that the
//! receiving host acts for that account (and trusts the placement the sender reserved).

use std::sync::Arc;
use std::time::Duration;

use strato_proto::v1 as pb;
use strato_proto::v1::addresses_client::AddressesClient;
use strato_proto::v1::compute_client::ComputeClient;
use strato_proto::v1::images_client::ImagesClient;
use strato_proto::v1::network_interfaces_client::NetworkInterfacesClient;
use strato_proto::v1::tags_client::TagsClient;
use strato_proto::v1::volumes_client::VolumesClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::membership::HostState;
use super::route::{HostLink, StateOp};
use super::Region;
use crate::cloud::compute::console::{ConsoleOutput, InputDelivered};
use crate::cloud::compute::instances::{Change, InstanceAttributes};
use crate::cloud::compute::metadata::MetadataChange;
use crate::cloud::filters::Filter;
use crate::db::instances::MetadataOptions;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// The metadata key of the account a forwarded call speaks for.
pub const ACCOUNT_METADATA: &str = "x-strato-region-account";
/// How long to wait for the other host to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a forwarded launch may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

async fn channel(endpoint: &str, roots: &[String]) -> ApiResult<Channel> {
    let unreachable = |why: String| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("The region's host at {endpoint} cannot be reached: {why}"),
        )
    };
    let mut ep =
        Endpoint::from_shared(endpoint.to_string()).map_err(|e| unreachable(e.to_string()))?;
    if endpoint.starts_with("https://") {
        let tls = ClientTlsConfig::new().ca_certificates(roots.iter().map(Certificate::from_pem));
        ep = ep
            .tls_config(tls)
            .map_err(|e| unreachable(crate::error::chain(&e)))?;
    }
    ep.connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(|e| unreachable(crate::error::chain(&e)))
}

fn request<T>(msg: T, secret: &str, account: &str) -> ApiResult<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    let bad = |_| ApiError::internal("the region secret or account cannot be sent as metadata");
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {secret}").parse().map_err(bad)?,
    );
    r.metadata_mut()
        .insert(ACCOUNT_METADATA, account.parse().map_err(bad)?);
    Ok(r)
}

/// Whether a failed call carries the other host's answer (its EC2 code), rather than a
/// transport's failure.
fn answered(s: &tonic::Status) -> bool {
    s.metadata()
        .get(strato_proto::ERROR_CODE_METADATA)
        .is_some()
}

/// The other host's refusal as this host's: its EC2 code and message.
fn from_status(s: &tonic::Status) -> ApiError {
    let code = s
        .metadata()
        .get(strato_proto::ERROR_CODE_METADATA)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| ErrorCode::ALL.iter().copied().find(|k| k.as_str() == c));
    match code {
        Some(code) => {
            let prefix = format!("{}: ", code.as_str());
            ApiError::new(
                code,
                s.message().strip_prefix(&prefix).unwrap_or(s.message()),
            )
        }
        None => ApiError::new(
            ErrorCode::Unavailable,
            format!("The region's other host failed the call: {}", s.message()),
        ),
    }
}

/// The refusal of a request field that only the region's hosts set (what they forward),
/// from any other caller.
pub fn hosts_only(field: &str) -> ApiError {
    ApiError::new(
        ErrorCode::AuthFailure,
        format!("{field} is set only by the region's hosts."),
    )
}

/// Why a forwarded call failed.
#[derive(Debug)]
pub enum Forwarded {
    /// The host could not be reached: nothing was sent, so the call may go elsewhere.
    Unreachable(ApiError),
    /// The host answered with a refusal (or the call could not be worded).
    Failed(ApiError),
    /// The call was sent and then broke without the host's answer (a timeout, a lost
    /// connection): the host may have acted on it.
    Broken(ApiError),
}

impl From<Forwarded> for ApiError {
    fn from(f: Forwarded) -> ApiError {
        match f {
            Forwarded::Unreachable(e) | Forwarded::Failed(e) | Forwarded::Broken(e) => e,
        }
    }
}

/// One Compute call on another host, for `account`: `call` gets the client and the
/// request (the region's secret and the account already in its metadata).
pub async fn call<Req, Resp, F, Fut>(
    endpoint: &str,
    roots: &[String],
    secret: &str,
    account: &str,
    msg: Req,
    call: F,
) -> Result<Resp, Forwarded>
where
    F: FnOnce(ComputeClient<Channel>, tonic::Request<Req>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    call_with(
        endpoint,
        roots,
        secret,
        account,
        msg,
        ComputeClient::new,
        call,
    )
    .await
}

/// [`call`] for any of the API's services: `client` makes the service's client from the
/// channel.
async fn call_with<C, Req, Resp, F, Fut>(
    endpoint: &str,
    roots: &[String],
    secret: &str,
    account: &str,
    msg: Req,
    client: fn(Channel) -> C,
    call: F,
) -> Result<Resp, Forwarded>
where
    F: FnOnce(C, tonic::Request<Req>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let req = request(msg, secret, account).map_err(Forwarded::Failed)?;
    let channel = channel(endpoint, roots)
        .await
        .map_err(Forwarded::Unreachable)?;
    call(client(channel), req)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| match answered(&s) {
            true => Forwarded::Failed(from_status(&s)),
            false => Forwarded::Broken(from_status(&s)),
        })
}

/// RunInstances on another host, for `account`.
pub async fn run_instances(
    endpoint: &str,
    roots: &[String],
    secret: &str,
    account: &str,
    req: pb::RunInstancesRequest,
) -> Result<pb::RunInstancesResponse, Forwarded> {
    call(
        endpoint,
        roots,
        secret,
        account,
        req,
        |mut c, r| async move { c.run_instances(r).await },
    )
    .await
}

/// The region's other hosts, called over their TLS APIs with the region's secret (the
/// gRPC [`HostLink`]).
#[derive(Debug, Clone)]
pub struct Link {
    region: Arc<Region>,
}

impl Link {
    /// A link from this host of `region`.
    pub fn new(region: Arc<Region>) -> Link {
        Link { region }
    }

    /// `f` on `host` for `account`, with the client of service `C` (its requests carry the
    /// region's secret and the account); a host that is not a member, or cannot be reached,
    /// is `Unavailable`, named.
    pub(super) async fn on<C, Req, Resp, F, Fut>(
        &self,
        host: &str,
        account: &str,
        msg: Req,
        f: F,
    ) -> ApiResult<Resp>
    where
        C: Service,
        F: FnOnce(C, tonic::Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let (what, them) = C::WHOSE.words();
        let view = self.region.hosts().remove(host);
        let Some(view) = view else {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!("The {what}'s host {host} is not a member of the region."),
            ));
        };
        // A host found down is not called (that would wait out the connect timeout).
        if view.state() == HostState::Unavailable {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "The {what}'s host {host} is unavailable (its lease lapsed and it does \
                     not answer); its {them} answer again when it is back."
                ),
            ));
        }
        let endpoint = view.record.api;
        let r = &self.region;
        match call_with(
            &endpoint,
            &r.roots,
            &r.cfg.secret,
            account,
            msg,
            C::client,
            f,
        )
        .await
        {
            Ok(v) => Ok(v),
            Err(Forwarded::Unreachable(e)) => Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "The {what}'s host {host} cannot be reached; try again when it is back. ({})",
                    e.message
                ),
            )),
            Err(Forwarded::Failed(e) | Forwarded::Broken(e)) => Err(e),
        }
    }
}

/// A service of the API that calls reach other hosts through: its client, made from a
/// channel, and what its calls are about (for the messages of a host not reached).
pub(super) trait Service: Sized {
    /// What the service's calls are about.
    const WHOSE: Whose;
    /// The service's client over `channel`.
    fn client(channel: Channel) -> Self;
}

/// The Compute service's client, about instances.
pub(super) type Compute = ComputeClient<Channel>;
/// The Volumes service's client, about volumes and snapshots.
pub(super) type Volumes = VolumesClient<Channel>;
/// The Images service's client, about an instance (CreateImage).
pub(super) type Images = ImagesClient<Channel>;
/// The NetworkInterfaces service's client.
pub(super) type Interfaces = NetworkInterfacesClient<Channel>;
/// The Addresses service's client, about an instance or an interface.
pub(super) type Addresses = AddressesClient<Channel>;
/// The Tags service's client, about any taggable resource.
pub(super) type Tags = TagsClient<Channel>;

macro_rules! service {
    ($client:ident, $whose:expr) => {
        impl Service for $client<Channel> {
            const WHOSE: Whose = $whose;
            fn client(channel: Channel) -> Self {
                $client::new(channel)
            }
        }
    };
}
service!(ComputeClient, Whose::Instance);
service!(VolumesClient, Whose::Volume);
service!(ImagesClient, Whose::Instance);
service!(NetworkInterfacesClient, Whose::Interface);
service!(AddressesClient, Whose::Resource);
service!(TagsClient, Whose::Resource);

/// What a forwarded call is about, for its messages.
#[derive(Debug, Clone, Copy)]
pub(super) enum Whose {
    Instance,
    Volume,
    Interface,
    /// Any taggable resource.
    Resource,
}

impl Whose {
    /// The resource, and its plural.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Whose::Instance => ("instance", "instances"),
            Whose::Volume => ("volume", "volumes"),
            Whose::Interface => ("network interface", "network interfaces"),
            Whose::Resource => ("resource", "resources"),
        }
    }
}

impl Link {
    /// StreamConsole of an instance on `host`: its chunks as that host sends them. (The
    /// link's call timeout bounds the wait for the stream to open, not its length.)
    pub async fn stream_console(
        &self,
        host: &str,
        account: &str,
        id: &str,
    ) -> ApiResult<tonic::Streaming<pb::ConsoleChunk>> {
        let msg = pb::StreamConsoleRequest {
            instance_id: id.to_string(),
        };
        self.on(host, account, msg, |mut c: Compute, r| async move {
            c.stream_console(r).await
        })
        .await
    }
}

impl Link {
    /// One instance of `host`'s with its user data (DescribeInstanceAttribute's userData).
    pub async fn instance_with_user_data(
        &self,
        host: &str,
        account: &str,
        id: &str,
    ) -> ApiResult<pb::Instance> {
        let msg = pb::DescribeInstancesRequest {
            instance_ids: vec![id.to_string()],
            this_host_only: true,
            with_user_data: true,
            ..Default::default()
        };
        let r = self
            .on(host, account, msg, |mut c: Compute, r| async move {
                c.describe_instances(r).await
            })
            .await?;
        r.instances
            .into_iter()
            .find(|i| i.instance_id == id)
            .ok_or_else(|| crate::ids::Kind::Instance.not_found(id))
    }
}

pub(super) fn pb_filters(f: &[Filter]) -> Vec<pb::Filter> {
    f.iter()
        .map(|f| pb::Filter {
            name: f.name.clone(),
            values: f.values.clone(),
        })
        .collect()
}

/// A state as another host sent it (by name, as the API carries it).
fn state_in(s: Option<pb::InstanceState>) -> ApiResult<crate::lifecycle::State> {
    let name = s.map(|s| s.name).unwrap_or_default();
    name.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("The region's other host answered an unknown instance state '{name}'."),
        )
    })
}

fn changes_in(r: pb::InstanceStateChanges) -> ApiResult<Vec<Change>> {
    r.changes
        .into_iter()
        .map(|c| {
            Ok(Change {
                id: c.instance_id,
                previous: state_in(c.previous_state)?,
                current: state_in(c.current_state)?,
            })
        })
        .collect()
}

/// The request's words for a metadata change ("" and 0 leave a setting).
fn metadata_request(id: &str, c: MetadataChange) -> pb::ModifyInstanceMetadataOptionsRequest {
    let o = crate::api::convert::metadata_change(c);
    pb::ModifyInstanceMetadataOptionsRequest {
        instance_id: id.to_string(),
        http_tokens: o.http_tokens,
        http_put_response_hop_limit: o.http_put_response_hop_limit,
        http_endpoint: o.http_endpoint,
        instance_metadata_tags: o.instance_metadata_tags,
        http_protocol_ipv6: o.http_protocol_ipv6,
    }
}

fn metadata_options_in(o: pb::InstanceMetadataOptions) -> ApiResult<MetadataOptions> {
    let c = MetadataChange::parse(
        &o.http_tokens,
        o.http_put_response_hop_limit,
        &o.http_endpoint,
        &o.instance_metadata_tags,
    )?
    .with_protocol_ipv6(&o.http_protocol_ipv6)?;
    Ok(c.apply(MetadataOptions::default()))
}

#[tonic::async_trait]
impl HostLink for Link {
    async fn change_states(
        &self,
        host: &str,
        account: &str,
        op: StateOp,
        ids: Vec<String>,
    ) -> ApiResult<Vec<Change>> {
        let instance_ids = ids;
        match op {
            StateOp::Stop { force } => {
                let msg = pb::StopInstancesRequest {
                    instance_ids,
                    force,
                };
                let r = self
                    .on(host, account, msg, |mut c: Compute, r| async move {
                        c.stop_instances(r).await
                    })
                    .await?;
                changes_in(r)
            }
            StateOp::Start => {
                let msg = pb::StartInstancesRequest { instance_ids };
                let r = self
                    .on(host, account, msg, |mut c: Compute, r| async move {
                        c.start_instances(r).await
                    })
                    .await?;
                changes_in(r)
            }
            StateOp::Reboot => {
                let msg = pb::RebootInstancesRequest { instance_ids };
                self.on(host, account, msg, |mut c: Compute, r| async move {
                    c.reboot_instances(r).await
                })
                .await?;
                Ok(Vec::new())
            }
            StateOp::Terminate => {
                let msg = pb::TerminateInstancesRequest { instance_ids };
                let r = self
                    .on(host, account, msg, |mut c: Compute, r| async move {
                        c.terminate_instances(r).await
                    })
                    .await?;
                changes_in(r)
            }
        }
    }

    async fn console_output(
        &self,
        host: &str,
        account: &str,
        id: &str,
    ) -> ApiResult<ConsoleOutput> {
        let msg = pb::GetConsoleOutputRequest {
            instance_id: id.to_string(),
        };
        let r = self
            .on(host, account, msg, |mut c: Compute, r| async move {
                c.get_console_output(r).await
            })
            .await?;
        Ok(ConsoleOutput {
            instance_id: r.instance_id,
            timestamp: r.timestamp_unix,
            output: r.output,
        })
    }

    async fn console_input(
        &self,
        host: &str,
        account: &str,
        id: &str,
        data: &[u8],
        send_break: bool,
    ) -> ApiResult<InputDelivered> {
        let msg = pb::SendConsoleInputRequest {
            instance_id: id.to_string(),
            data: data.to_vec(),
            send_break,
        };
        let r = self
            .on(host, account, msg, |mut c: Compute, r| async move {
                c.send_console_input(r).await
            })
            .await?;
        Ok(InputDelivered {
            accepted: u64::try_from(r.accepted).unwrap_or(0),
            break_sent: r.break_sent,
        })
    }

    async fn modify_instance_attribute(
        &self,
        host: &str,
        account: &str,
        id: &str,
        change: &InstanceAttributes,
    ) -> ApiResult<()> {
        let msg = pb::ModifyInstanceAttributeRequest {
            instance_id: id.to_string(),
            disable_api_termination: change.disable_api_termination,
            instance_initiated_shutdown_behavior: change
                .shutdown_behavior
                .clone()
                .unwrap_or_default(),
            groups: change.groups.clone(),
            ena_support: change.ena_support,
        };
        self.on(host, account, msg, |mut c: Compute, r| async move {
            c.modify_instance_attribute(r).await
        })
        .await
        .map(|_| ())
    }

    async fn modify_metadata_options(
        &self,
        host: &str,
        account: &str,
        id: &str,
        change: MetadataChange,
    ) -> ApiResult<MetadataOptions> {
        let msg = metadata_request(id, change);
        let r = self
            .on(host, account, msg, |mut c: Compute, r| async move {
                c.modify_instance_metadata_options(r).await
            })
            .await?;
        metadata_options_in(r.instance_metadata_options.unwrap_or_default())
    }

    async fn describe_instances(
        &self,
        host: &str,
        account: &str,
        ids: Vec<String>,
        filters: &[Filter],
    ) -> ApiResult<Vec<pb::Instance>> {
        let msg = pb::DescribeInstancesRequest {
            instance_ids: ids,
            filters: pb_filters(filters),
            this_host_only: true,
            ..Default::default()
        };
        self.on(host, account, msg, |mut c: Compute, r| async move {
            c.describe_instances(r).await
        })
        .await
        .map(|r| r.instances)
    }

    async fn describe_instance_status(
        &self,
        host: &str,
        account: &str,
        ids: Vec<String>,
        filters: &[Filter],
        include_all: bool,
    ) -> ApiResult<Vec<pb::InstanceStatus>> {
        let msg = pb::DescribeInstanceStatusRequest {
            instance_ids: ids,
            filters: pb_filters(filters),
            include_all_instances: include_all,
            this_host_only: true,
            ..Default::default()
        };
        self.on(host, account, msg, |mut c: Compute, r| async move {
            c.describe_instance_status(r).await
        })
        .await
        .map(|r| r.instance_statuses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_told_from_a_broken_call() {
        let refused: tonic::Status =
            ApiError::new(ErrorCode::InvalidInstanceIdNotFound, "no such instance").into();
        assert!(answered(&refused));
        assert_eq!(
            from_status(&refused).code,
            ErrorCode::InvalidInstanceIdNotFound
        );
        let broken = tonic::Status::deadline_exceeded("timed out");
        assert!(!answered(&broken), "a timeout carries no answer");
        assert_eq!(from_status(&broken).code, ErrorCode::Unavailable);
    }

    #[test]
    fn metadata_changes_cross_the_wire_unchanged() {
        let c = MetadataChange::parse("required", 3, "", "enabled")
            .unwrap()
            .with_protocol_ipv6("disabled")
            .unwrap();
        let r = metadata_request("i-1", c);
        let back = MetadataChange::parse(
            &r.http_tokens,
            r.http_put_response_hop_limit,
            &r.http_endpoint,
            &r.instance_metadata_tags,
        )
        .unwrap()
        .with_protocol_ipv6(&r.http_protocol_ipv6)
        .unwrap();
        assert_eq!(back, c);
        let shown = crate::api::convert::metadata_options(&c.apply(MetadataOptions::default()));
        let read = metadata_options_in(shown).unwrap();
        assert_eq!(read, c.apply(MetadataOptions::default()));
    }

    /// Each service's calls name what they are about when its host cannot be reached.
    #[test]
    fn each_service_names_its_resource() {
        fn what<C: Service>() -> &'static str {
            C::WHOSE.words().0
        }
        assert_eq!(what::<Compute>(), "instance");
        assert_eq!(what::<Images>(), "instance");
        assert_eq!(what::<Volumes>(), "volume");
        assert_eq!(what::<Interfaces>(), "network interface");
        assert_eq!(what::<Addresses>(), "resource");
        assert_eq!(what::<Tags>(), "resource");
    }

    #[test]
    fn states_come_back_by_name() {
        let r = pb::InstanceStateChanges {
            changes: vec![pb::InstanceStateChange {
                instance_id: "i-1".into(),
                previous_state: Some(crate::api::convert::state(crate::lifecycle::State::Running)),
                current_state: Some(crate::api::convert::state(
                    crate::lifecycle::State::Stopping,
                )),
            }],
        };
        let c = changes_in(r).unwrap();
        assert_eq!(c[0].current, crate::lifecycle::State::Stopping);
        let bad = pb::InstanceStateChanges {
            changes: vec![pb::InstanceStateChange {
                instance_id: "i-1".into(),
                previous_state: None,
                current_state: None,
            }],
        };
        assert!(changes_in(bad).is_err());
    }
}
