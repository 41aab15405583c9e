//! The connection to the daemon: endpoint parsing, the gRPC channel, and the bearer
//! token sent with every call.

use std::path::PathBuf;
use std::time::Duration;

use strato_proto::v1::{
    access_keys_client::AccessKeysClient, addresses_client::AddressesClient,
    compute_client::ComputeClient, images_client::ImagesClient, key_pairs_client::KeyPairsClient,
    launch_templates_client::LaunchTemplatesClient,
    network_interfaces_client::NetworkInterfacesClient,
    placement_groups_client::PlacementGroupsClient, regions_client::RegionsClient,
    security_groups_client::SecurityGroupsClient, tags_client::TagsClient,
    usage_client::UsageClient, volumes_client::VolumesClient, vpcs_client::VpcsClient,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::{interceptor::InterceptedService, Interceptor};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::CliError;

/// Where the daemon listens unless `--endpoint` or `STRATO_ENDPOINT` says otherwise.
pub const DEFAULT_ENDPOINT: &str = "unix:/var/lib/strato/stratod.sock";

/// How long to try to reach a TCP endpoint before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed `--endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `unix:/path/to/socket` (also `unix:///path` or a bare absolute path).
    Unix(PathBuf),
    /// `http://host:port`.
    Http(String),
}

/// Parses an `--endpoint` value.
pub fn parse_endpoint(endpoint: &str) -> Result<Target, CliError> {
    if let Some(rest) = endpoint.strip_prefix("unix:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(CliError::Usage(format!(
                "endpoint {endpoint:?} names no socket path"
            )));
        }
        return Ok(Target::Unix(PathBuf::from(path)));
    }
    if endpoint.starts_with('/') {
        return Ok(Target::Unix(PathBuf::from(endpoint)));
    }
    if endpoint.starts_with("http://") {
        return Ok(Target::Http(endpoint.to_owned()));
    }
    if endpoint.starts_with("https://") {
        return Err(CliError::Usage(
            "https endpoints are not supported; use http://host:port or unix:/path".into(),
        ));
    }
    Err(CliError::Usage(format!(
        "invalid endpoint {endpoint:?}: expected unix:/path/to/socket or http://host:port"
    )))
}

/// Adds `authorization: Bearer <token>` to every request when a token is set.
#[derive(Debug, Clone, Default)]
pub struct Auth(Option<MetadataValue<Ascii>>);

impl Auth {
    /// Prepares the header for `token`; `None` or an empty token sends none.
    pub fn new(token: Option<&str>) -> Result<Self, CliError> {
        match token.filter(|t| !t.is_empty()) {
            None => Ok(Self(None)),
            Some(token) => MetadataValue::try_from(format!("Bearer {token}"))
                .map(|v| Self(Some(v)))
                .map_err(|_| {
                    CliError::Usage("the token contains characters not allowed in a header".into())
                }),
        }
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The transport every client shares.
pub type Transport = InterceptedService<Channel, Auth>;

/// An open connection to the daemon.
pub struct Conn {
    channel: Channel,
    auth: Auth,
    endpoint: String,
}

impl Conn {
    /// Connects to `endpoint`, failing early (exit 255) when nothing answers there.
    pub async fn connect(endpoint: &str, token: Option<&str>) -> Result<Self, CliError> {
        let auth = Auth::new(token)?;
        let builder = match parse_endpoint(endpoint)? {
            Target::Unix(path) => Endpoint::from_shared(format!("unix:{}", path.display())),
            Target::Http(url) => Endpoint::from_shared(url),
        }
        .map_err(|e| CliError::Usage(format!("invalid endpoint {endpoint:?}: {e}")))?;
        let channel = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|e| CliError::Connect {
                endpoint: endpoint.to_owned(),
                detail: root_cause(&e),
            })?;
        Ok(Self {
            channel,
            auth,
            endpoint: endpoint.to_owned(),
        })
    }

    /// A client of the Compute service.
    pub fn compute(&self) -> ComputeClient<Transport> {
        ComputeClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the Images service.
    pub fn images(&self) -> ImagesClient<Transport> {
        ImagesClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the Volumes service.
    pub fn volumes(&self) -> VolumesClient<Transport> {
        VolumesClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the Usage service.
    pub fn usage(&self) -> UsageClient<Transport> {
        UsageClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the Regions service.
    pub fn regions(&self) -> RegionsClient<Transport> {
        RegionsClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the PlacementGroups service.
    pub fn placement_groups(&self) -> PlacementGroupsClient<Transport> {
        PlacementGroupsClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the LaunchTemplates service.
    pub fn launch_templates(&self) -> LaunchTemplatesClient<Transport> {
        LaunchTemplatesClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the AccessKeys service.
    pub fn access_keys(&self) -> AccessKeysClient<Transport> {
        AccessKeysClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the KeyPairs service.
    pub fn key_pairs(&self) -> KeyPairsClient<Transport> {
        KeyPairsClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the Tags service.
    pub fn tags(&self) -> TagsClient<Transport> {
        TagsClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the Vpcs service.
    pub fn vpcs(&self) -> VpcsClient<Transport> {
        VpcsClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the SecurityGroups service.
    pub fn security_groups(&self) -> SecurityGroupsClient<Transport> {
        SecurityGroupsClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the NetworkInterfaces service.
    pub fn enis(&self) -> NetworkInterfacesClient<Transport> {
        NetworkInterfacesClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A client of the Addresses service.
    pub fn addresses(&self) -> AddressesClient<Transport> {
        AddressesClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// Maps a failed call of `operation` to a [`CliError`], for `map_err`.
    pub fn error(&self, operation: &'static str) -> impl Fn(Status) -> CliError + '_ {
        move |status| CliError::from_status(operation, &status, &self.endpoint)
    }
}

/// The innermost cause, which says what actually failed ("No such file or directory");
/// the outer layers only say "transport error".
fn root_cause(err: &tonic::transport::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let unix = |p: &str| Some(Target::Unix(PathBuf::from(p)));
        assert_eq!(
            parse_endpoint(DEFAULT_ENDPOINT).ok(),
            unix("/var/lib/strato/stratod.sock")
        );
        assert_eq!(
            parse_endpoint("unix:///run/s.sock").ok(),
            unix("/run/s.sock")
        );
        assert_eq!(parse_endpoint("unix:rel.sock").ok(), unix("rel.sock"));
        assert_eq!(parse_endpoint("/run/s.sock").ok(), unix("/run/s.sock"));
        assert_eq!(
            parse_endpoint("http://127.0.0.1:50051").ok(),
            Some(Target::Http("http://127.0.0.1:50051".into()))
        );
    }

    #[test]
    fn rejects_bad_endpoints() {
        for bad in ["unix:", "unix://", "https://host:1", "host:50051", ""] {
            let err = parse_endpoint(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn token_becomes_a_bearer_header() {
        let mut auth = Auth::new(Some("s3cret")).unwrap();
        let request = auth.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );

        let mut none = Auth::new(Some("")).unwrap();
        assert!(none.call(Request::new(())).unwrap().metadata().is_empty());
        assert!(Auth::new(Some("bad\ntoken")).is_err());
    }
}
