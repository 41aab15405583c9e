//! The connection to the daemon: endpoint parsing, the gRPC channel (TLS for `https://`,
//! verified against `--ca-bundle` or the system's roots), and the bearer token sent with
//! every call. A token never goes over plaintext TCP to anything but loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use strato_proto::v1::{
    access_keys_client::AccessKeysClient, addresses_client::AddressesClient,
    compute_client::ComputeClient, hosts_client::HostsClient, images_client::ImagesClient,
    key_pairs_client::KeyPairsClient, launch_templates_client::LaunchTemplatesClient,
    network_interfaces_client::NetworkInterfacesClient,
    placement_groups_client::PlacementGroupsClient, regions_client::RegionsClient,
    roles_client::RolesClient, security_groups_client::SecurityGroupsClient,
    tags_client::TagsClient, usage_client::UsageClient, volumes_client::VolumesClient,
    vpcs_client::VpcsClient,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::{interceptor::InterceptedService, Interceptor};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
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
    /// `https://host:port`.
    Https(String),
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
        return Ok(Target::Https(endpoint.to_owned()));
    }
    Err(CliError::Usage(format!(
        "invalid endpoint {endpoint:?}: expected unix:/path/to/socket, https://host:port or http://host:port"
    )))
}

/// Whether an `http://` URL names this host's loopback.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    /// Connects to `endpoint`, failing early (exit 255) when nothing answers there;
    /// `ca_bundle` holds the CA certificates an `https://` endpoint is checked against (the
    /// system's roots when absent).
    pub async fn connect(
        endpoint: &str,
        token: Option<&str>,
        ca_bundle: Option<&Path>,
    ) -> Result<Self, CliError> {
        let auth = Auth::new(token)?;
        let invalid = |e: tonic::transport::Error| {
            CliError::Usage(format!("invalid endpoint {endpoint:?}: {e}"))
        };
        let builder = match parse_endpoint(endpoint)? {
            Target::Unix(path) => {
                Endpoint::from_shared(format!("unix:{}", path.display())).map_err(invalid)?
            }
            Target::Http(url) => {
                if auth.0.is_some() && !is_loopback_url(&url) {
                    return Err(CliError::Usage(format!(
                        "refusing to send the token over plaintext {url}; use https:// (the daemon's tcp: listener)"
                    )));
                }
                Endpoint::from_shared(url).map_err(invalid)?
            }
            Target::Https(url) => Endpoint::from_shared(url)
                .map_err(invalid)?
                .tls_config(tls_config(ca_bundle)?)
                .map_err(invalid)?,
        };
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

    /// A client of the Hosts service.
    pub fn hosts(&self) -> HostsClient<Transport> {
        HostsClient::with_interceptor(self.channel.clone(), self.auth.clone())
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

    /// A client of the Roles service.
    pub fn roles(&self) -> RolesClient<Transport> {
        RolesClient::with_interceptor(self.channel.clone(), self.auth.clone())
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

/// The TLS settings of an `https://` endpoint: the bundle's CA certificates when given
/// (and only those, as with the AWS CLI's `--ca-bundle`), else the system's roots.
fn tls_config(ca_bundle: Option<&Path>) -> Result<ClientTlsConfig, CliError> {
    let Some(path) = ca_bundle else {
        return Ok(ClientTlsConfig::new().with_native_roots());
    };
    let pem = std::fs::read(path).map_err(|e| {
        CliError::Usage(format!("cannot read the CA bundle {}: {e}", path.display()))
    })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(CliError::Usage(format!(
            "the CA bundle {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
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
        assert_eq!(
            parse_endpoint("https://strato.example:7000").ok(),
            Some(Target::Https("https://strato.example:7000".into()))
        );
    }

    #[test]
    fn loopback_urls() {
        for u in [
            "http://127.0.0.1:1",
            "http://localhost:1/x",
            "http://[::1]:7",
            "http://127.3.2.1",
        ] {
            assert!(is_loopback_url(u), "{u}");
        }
        for u in [
            "http://10.0.0.1:1",
            "http://example.com:1",
            "http://[fe80::1]:7",
            "http://127.0.0.1.evil:1",
        ] {
            assert!(!is_loopback_url(u), "{u}");
        }
    }

    #[tokio::test]
    async fn tokens_stay_off_plaintext_tcp_to_other_hosts() {
        let err = Conn::connect("http://10.0.0.1:1", Some("s3cret"), None)
            .await
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2);
        let err = Conn::connect("https://127.0.0.1:1", None, Some(Path::new("/nonexistent")))
            .await
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn rejects_bad_endpoints() {
        for bad in ["unix:", "unix://", "ftp://host:1", "host:50051", ""] {
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
