//! The Query API's HTTP/1.1 listeners (hyper), one task per connection; TCP ones speak
//! TLS (`tcp:`) unless configured plain (`tcp+plain:`).

use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::QueryApi;
use crate::config::Listen;
use crate::tls::ServerIdentity;

/// A Query API listener failure.
#[derive(Debug, thiserror::Error)]
pub enum QueryServeError {
    /// A listener could not be opened.
    #[error("cannot listen on {0}")]
    Bind(String, #[source] std::io::Error),
    /// The service model does not load.
    #[error("cannot load the EC2 service model")]
    Model(#[from] super::model::ModelError),
    /// The TLS certificate is not usable.
    #[error("cannot set up TLS")]
    Tls(#[from] crate::tls::TlsError),
    /// A TLS listener has no certificate.
    #[error("a TLS listener needs a server certificate")]
    NoCertificate,
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens every listener, then serves until `stop` turns true; `tls` is what TLS listeners
/// present.
pub async fn serve(
    api: Arc<QueryApi>,
    listen: &[Listen],
    tls: Option<&ServerIdentity>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, QueryServeError> {
    let mut tasks = Vec::new();
    for l in listen {
        match l {
            Listen::Tcp(addr) | Listen::TcpPlain(addr) => {
                let acceptor = match l {
                    Listen::Tcp(_) => Some(tokio_rustls::TlsAcceptor::from(
                        crate::tls::http1_server_config(
                            tls.ok_or(QueryServeError::NoCertificate)?,
                        )?,
                    )),
                    _ => None,
                };
                let tcp = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| QueryServeError::Bind(addr.to_string(), e))?;
                let local = tcp
                    .local_addr()
                    .map_err(|e| QueryServeError::Bind(addr.to_string(), e))?;
                let scheme = if acceptor.is_some() { "https" } else { "http" };
                tracing::info!(%local, scheme, "EC2 Query API listening");
                eprintln!("stratod: EC2 Query API on {scheme}://{local}");
                let (api, mut stop) = (api.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stopped(&mut stop) => return,
                            conn = tcp.accept() => match conn {
                                Ok((s, peer)) => {
                                    let _ = s.set_nodelay(true);
                                    match &acceptor {
                                        None => connection(api.clone(), s),
                                        Some(a) => tls_connection(api.clone(), a.clone(), s, peer),
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "EC2 Query API accept failed");
                                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                                }
                            },
                        }
                    }
                }));
            }
            Listen::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let unix = tokio::net::UnixListener::bind(path)
                    .map_err(|e| QueryServeError::Bind(path.display().to_string(), e))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| QueryServeError::Bind(path.display().to_string(), e))?;
                tracing::info!(socket = %path.display(), "EC2 Query API listening");
                let (api, mut stop) = (api.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = stopped(&mut stop) => return,
                            conn = unix.accept() => match conn {
                                Ok((s, _)) => connection(api.clone(), s),
                                Err(e) => {
                                    tracing::warn!(error = %e, "EC2 Query API accept failed");
                                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                                }
                            },
                        }
                    }
                }));
            }
        }
    }
    Ok(tasks)
}

async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Completes the TLS handshake off the accept loop, then serves the connection.
fn tls_connection(
    api: Arc<QueryApi>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) {
    tokio::spawn(async move {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => connection(api, tls),
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "EC2 Query API TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "EC2 Query API TLS handshake timed out"),
        }
    });
}

fn connection<S>(api: Arc<QueryApi>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req| {
            let api = api.clone();
            async move { api.handle(req).await }
        });
        if let Err(e) = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(std::time::Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), svc)
            .await
        {
            tracing::debug!(error = %e, "EC2 Query API connection ended");
        }
    });
}
