//! Calls forwarded to another host of the region over its TLS API: the host authenticates
//! with the region's shared secret and names the caller's account beside it, so that the
//! receiving host acts for that account (and trusts the placement the sender reserved).

use std::time::Duration;

use strato_proto::v1 as pb;
use strato_proto::v1::compute_client::ComputeClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

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

/// Why a forwarded call failed.
#[derive(Debug)]
pub enum Forwarded {
    /// The host could not be reached: nothing was sent, so the call may go elsewhere.
    Unreachable(ApiError),
    /// The host answered with a refusal, or the call broke once sent.
    Failed(ApiError),
}

impl From<Forwarded> for ApiError {
    fn from(f: Forwarded) -> ApiError {
        match f {
            Forwarded::Unreachable(e) | Forwarded::Failed(e) => e,
        }
    }
}

/// RunInstances on another host, for `account`.
pub async fn run_instances(
    endpoint: &str,
    roots: &[String],
    secret: &str,
    account: &str,
    req: pb::RunInstancesRequest,
) -> Result<pb::RunInstancesResponse, Forwarded> {
    let req = request(req, secret, account).map_err(Forwarded::Failed)?;
    let channel = channel(endpoint, roots)
        .await
        .map_err(Forwarded::Unreachable)?;
    ComputeClient::new(channel)
        .run_instances(req)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| Forwarded::Failed(from_status(&s)))
}

/// DescribeInstances of another host's own instances, for `account`.
pub async fn describe_instances(
    endpoint: &str,
    roots: &[String],
    secret: &str,
    account: &str,
    mut req: pb::DescribeInstancesRequest,
) -> ApiResult<pb::DescribeInstancesResponse> {
    req.this_host_only = true;
    let req = request(req, secret, account)?;
    ComputeClient::new(channel(endpoint, roots).await?)
        .describe_instances(req)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| from_status(&s))
}

/// DescribeInstanceStatus of another host's own instances, for `account`.
pub async fn describe_instance_status(
    endpoint: &str,
    roots: &[String],
    secret: &str,
    account: &str,
    mut req: pb::DescribeInstanceStatusRequest,
) -> ApiResult<pb::DescribeInstanceStatusResponse> {
    req.this_host_only = true;
    let req = request(req, secret, account)?;
    ComputeClient::new(channel(endpoint, roots).await?)
        .describe_instance_status(req)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| from_status(&s))
}
