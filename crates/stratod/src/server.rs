//! Serving the API: every listener gets the strato services plus the standard gRPC
//! health and reflection services. TCP listeners speak TLS (`tcp:`) unless configured
//! plain (`tcp+plain:`). The Unix socket is created owner-only and removed when
//! the daemon stops; readiness is announced once every listener is bound. An optional
//! plain-HTTP listener serves the daemon's counters on `/metrics`.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use strato_proto::v1::access_keys_server::AccessKeysServer;
use strato_proto::v1::addresses_server::AddressesServer;
use strato_proto::v1::compute_server::ComputeServer;
use strato_proto::v1::hosts_server::HostsServer;
use strato_proto::v1::images_server::ImagesServer;
use strato_proto::v1::key_pairs_server::KeyPairsServer;
use strato_proto::v1::launch_templates_server::LaunchTemplatesServer;
use strato_proto::v1::network_interfaces_server::NetworkInterfacesServer;
use strato_proto::v1::placement_groups_server::PlacementGroupsServer;
use strato_proto::v1::regions_server::RegionsServer;
use strato_proto::v1::roles_server::RolesServer;
use strato_proto::v1::security_groups_server::SecurityGroupsServer;
use strato_proto::v1::tags_server::TagsServer;
use strato_proto::v1::usage_server::UsageServer;
use strato_proto::v1::volumes_server::VolumesServer;
use strato_proto::v1::vpcs_server::VpcsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::server::Router;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::api::Api;
use crate::cloud::Cloud;
use crate::config::Listen;
use crate::tls::ServerIdentity;

/// A serving failure.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be opened.
    #[error("cannot listen on {0}")]
    Bind(String, #[source] std::io::Error),
    /// The reflection service could not be built.
    #[error("cannot build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The health service's descriptor does not decode.
    #[error("cannot read the health service's descriptor")]
    Descriptor(#[from] prost::DecodeError),
    /// The gRPC server failed.
    #[error("gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
    /// A TLS listener has no certificate.
    #[error("a TLS listener needs a server certificate")]
    NoCertificate,
}

/// The standard path of the health service's file, which reflection clients ask for.
pub const HEALTH_PROTO: &str = "grpc/health/v1/health.proto";

/// tonic-health's descriptor, its file named by the standard path (tonic-health calls it
/// `health.proto`, so a client asking for the standard file finds nothing).
fn health_descriptor() -> Result<prost_types::FileDescriptorSet, ServeError> {
    use prost::Message;
    let mut set = prost_types::FileDescriptorSet::decode(tonic_health::pb::FILE_DESCRIPTOR_SET)?;
    for f in &mut set.file {
        if f.package() == "grpc.health.v1" {
            f.name = Some(HEALTH_PROTO.to_string());
        }
    }
    Ok(set)
}

async fn router(api: &Api, tls: Option<&ServerIdentity>) -> Result<Router, ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<ComputeServer<Api>>().await;
    reporter.set_serving::<ImagesServer<Api>>().await;
    reporter.set_serving::<VolumesServer<Api>>().await;
    reporter.set_serving::<UsageServer<Api>>().await;
    reporter.set_serving::<RegionsServer<Api>>().await;
    reporter.set_serving::<PlacementGroupsServer<Api>>().await;
    reporter.set_serving::<LaunchTemplatesServer<Api>>().await;
    reporter.set_serving::<KeyPairsServer<Api>>().await;
    reporter.set_serving::<VpcsServer<Api>>().await;
    reporter.set_serving::<SecurityGroupsServer<Api>>().await;
    reporter.set_serving::<NetworkInterfacesServer<Api>>().await;
    reporter.set_serving::<AddressesServer<Api>>().await;
    reporter.set_serving::<TagsServer<Api>>().await;
    reporter.set_serving::<AccessKeysServer<Api>>().await;
    reporter.set_serving::<RolesServer<Api>>().await;
    reporter.set_serving::<HostsServer<Api>>().await;
    // Reflection in both versions (grpcurl speaks v1, grpcio-reflection's client v1alpha),
    // each listing every service, the other version's too.
    let health_fds = health_descriptor()?;
    let files = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(strato_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
            .register_file_descriptor_set(health_fds.clone())
    };
    let reflection = files().build_v1()?;
    let reflection_v1alpha = files().build_v1alpha()?;
    let mut builder = Server::builder();
    if let Some(id) = tls {
        builder = builder.tls_config(
            ServerTlsConfig::new().identity(Identity::from_pem(&id.cert_pem, &id.key_pem)),
        )?;
    }
    Ok(builder
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(ComputeServer::new(api.clone()))
        .add_service(ImagesServer::new(api.clone()))
        .add_service(VolumesServer::new(api.clone()))
        .add_service(UsageServer::new(api.clone()))
        .add_service(RegionsServer::new(api.clone()))
        .add_service(PlacementGroupsServer::new(api.clone()))
        .add_service(LaunchTemplatesServer::new(api.clone()))
        .add_service(KeyPairsServer::new(api.clone()))
        .add_service(VpcsServer::new(api.clone()))
        .add_service(SecurityGroupsServer::new(api.clone()))
        .add_service(NetworkInterfacesServer::new(api.clone()))
        .add_service(AddressesServer::new(api.clone()))
        .add_service(TagsServer::new(api.clone()))
        .add_service(AccessKeysServer::new(api.clone()))
        .add_service(RolesServer::new(api.clone()))
        .add_service(HostsServer::new(api.clone())))
}

/// Serves the API on every configured address until `shutdown` resolves; `tls` is what
/// the TLS listeners present.
pub async fn serve(
    cloud: Arc<Cloud>,
    tls: Option<&ServerIdentity>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let api = Api {
        cloud: cloud.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for listen in &cloud.cfg.listen {
        let router = match listen {
            Listen::Tcp(_) => router(&api, Some(tls.ok_or(ServeError::NoCertificate)?)).await?,
            _ => router(&api, None).await?,
        };
        let mut rx = stop_rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        match listen {
            Listen::Unix(path) => {
                let _ = std::fs::remove_file(path);
                if let Some(parent) = path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let l = tokio::net::UnixListener::bind(path)
                    .map_err(|e| ServeError::Bind(path.display().to_string(), e))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| ServeError::Bind(path.display().to_string(), e))?;
                tracing::info!(socket = %path.display(), "listening");
                eprintln!("stratod: listening on unix:{}", path.display());
                tasks.push(tokio::spawn(
                    router.serve_with_incoming_shutdown(UnixListenerStream::new(l), stop),
                ));
            }
            Listen::Tcp(addr) | Listen::TcpPlain(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| ServeError::Bind(addr.to_string(), e))?;
                let local = l
                    .local_addr()
                    .map_err(|e| ServeError::Bind(addr.to_string(), e))?;
                let scheme = if matches!(listen, Listen::Tcp(_)) {
                    "https"
                } else {
                    "http"
                };
                tracing::info!(%local, scheme, "listening");
                eprintln!("stratod: listening on {scheme}://{local}");
                tasks.push(tokio::spawn(
                    router.serve_with_incoming_shutdown(TcpListenerStream::new(l), stop),
                ));
            }
        }
    }
    crate::datadir::notify_ready();
    shutdown.await;
    let _ = stop_tx.send(true);
    let mut result = Ok(());
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            result = Err(e.into());
        }
    }
    // A socket file left behind would look like a live daemon to whoever checks for it.
    for listen in &cloud.cfg.listen {
        if let Listen::Unix(path) = listen {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

/// Serves `/metrics` in the Prometheus text format on a plain TCP address: the daemon's
/// counters and every running instance's latest second of the lab's history.
pub async fn serve_metrics(
    cloud: Arc<Cloud>,
    lab: Arc<crate::lab::History>,
    addr: std::net::SocketAddr,
) -> Result<(), ServeError> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Bind(addr.to_string(), e))?;
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            continue;
        };
        let cloud = cloud.clone();
        let lab = lab.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf)).await;
            let body = cloud.metrics.render() + &lab.render();
            let reply = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        });
    }
}
