//! The web view: a small browser front end (vendored, embedded in the binary) and the JSON
//! and WebSocket API behind it, served by axum on the daemon's runtime on listeners of its
//! own (`web.listen`, off by default). `tcp:` listeners speak TLS with the daemon's
//! certificate, as the gRPC ones do; `tcp+plain:` ones serve loopback peers only, since a
//! token or session sent in the clear could be read on the path.
//!
//! Login is by API token (the config's `tokens`): the page posts it once and gets a session
//! cookie (HttpOnly, SameSite=Strict, Secure over TLS); scripts may send
//! `Authorization: Bearer TOKEN` on every call instead. Every answer comes from the domain
//! layer ([`Cloud`]) for the caller's account, as the gRPC API's do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

use crate::cloud::Cloud;
use crate::config::Listen;
use crate::error::{ApiError, ErrorCode};
use crate::tls::ServerIdentity;

mod api;
mod assets;
mod console;
mod lab;

/// A web listener failure.
#[derive(Debug, thiserror::Error)]
pub enum WebServeError {
    /// A listener could not be opened.
    #[error("cannot listen on {0}")]
    Bind(String, #[source] std::io::Error),
    /// The TLS certificate is not usable.
    #[error("cannot set up TLS")]
    Tls(#[from] crate::tls::TlsError),
    /// A TLS listener has no certificate.
    #[error("a TLS listener needs a server certificate")]
    NoCertificate,
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a login lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Most sessions kept at once; the oldest goes first beyond it.
const MAX_SESSIONS: usize = 1024;

/// Failed logins one address may make within [`FAILURE_WINDOW`] before it must wait.
const MAX_FAILURES: u32 = 10;

/// The window failed logins are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Failed logins by client address: past [`MAX_FAILURES`] in a window, that address's
/// logins are refused until the window ends, so a token cannot be guessed at line rate.
#[derive(Debug, Default)]
struct LoginLimiter {
    failures: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

impl LoginLimiter {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<std::net::IpAddr, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ip` may try to log in at `now`.
    fn allowed(&self, ip: std::net::IpAddr, now: Instant) -> bool {
        match self.map().get(&ip) {
            Some(&(n, since)) => n < MAX_FAILURES || now.duration_since(since) >= FAILURE_WINDOW,
            None => true,
        }
    }

    /// A failed login from `ip` at `now`.
    fn failed(&self, ip: std::net::IpAddr, now: Instant) {
        let mut m = self.map();
        m.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        let e = m.entry(ip).or_insert((0, now));
        e.0 += 1;
    }

    /// A login from `ip` succeeded: its count starts over.
    fn succeeded(&self, ip: std::net::IpAddr) {
        self.map().remove(&ip);
    }
}

/// The session cookie's name.
const COOKIE: &str = "strato_session";

/// One login.
#[derive(Debug, Clone)]
struct Session {
    account: String,
    expires: Instant,
}

/// The web view's state.
pub struct Web {
    cloud: Arc<Cloud>,
    lab: Arc<crate::lab::History>,
    sessions: Mutex<HashMap<String, Session>>,
    logins: LoginLimiter,
}

/// What a request's connection was: TLS or not, and from where.
#[derive(Debug, Clone, Copy)]
struct Conn {
    tls: bool,
    peer: SocketAddr,
}

impl Web {
    /// The web view over `cloud`, with the lab's history `lab`.
    pub fn new(cloud: Arc<Cloud>, lab: Arc<crate::lab::History>) -> Arc<Self> {
        Arc::new(Self {
            cloud,
            lab,
            sessions: Mutex::new(HashMap::new()),
            logins: LoginLimiter::default(),
        })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `account`; its ID (256 random bits, hex).
    fn login(&self, account: String) -> String {
        use rand_core::{OsRng, RngCore};
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut s = self.sessions();
        s.retain(|_, v| v.expires > now);
        if s.len() >= MAX_SESSIONS {
            if let Some(oldest) = s
                .iter()
                .min_by_key(|(_, v)| v.expires)
                .map(|(k, _)| k.clone())
            {
                s.remove(&oldest);
            }
        }
        s.insert(
            id.clone(),
            Session {
                account,
                expires: now + SESSION_LIFETIME,
            },
        );
        id
    }

    fn logout(&self, id: &str) {
        self.sessions().remove(id);
    }

    /// The account of a live session.
    fn session(&self, id: &str) -> Option<String> {
        let s = self.sessions();
        s.get(id)
            .filter(|v| v.expires > Instant::now())
            .map(|v| v.account.clone())
    }

    /// The account a request speaks for: a bearer token, else a session cookie.
    fn caller(&self, headers: &HeaderMap) -> Result<String, WebError> {
        if let Some(v) = headers.get(header::AUTHORIZATION) {
            let token = v
                .to_str()
                .ok()
                .and_then(|s| s.strip_prefix("Bearer "))
                .map(str::trim)
                .unwrap_or("");
            return self.cloud.account_for_token(token).map_err(WebError::Auth);
        }
        match session_cookie(headers).and_then(|id| self.session(id)) {
            Some(a) => Ok(a),
            None => Err(WebError::Auth(ApiError::new(
                ErrorCode::AuthFailure,
                "Log in with an API token (POST /api/login), or send Authorization: Bearer TOKEN.",
            ))),
        }
    }
}

/// The session ID in a request's cookies.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// A refused web request, as JSON `{"code", "message"}`.
#[derive(Debug)]
enum WebError {
    /// Not logged in, or a bad token: 401.
    Auth(ApiError),
    /// What the domain refused, with EC2's HTTP status for the code.
    Api(ApiError),
    /// A request the view cannot take (400).
    Bad(String),
    /// Too many failed logins from the caller's address (429).
    Throttled,
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        WebError::Api(e)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            WebError::Auth(e) => (StatusCode::UNAUTHORIZED, e.code.as_str(), e.message),
            WebError::Api(e) => (
                StatusCode::from_u16(e.code.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e.code.as_str(),
                e.message,
            ),
            WebError::Bad(m) => (StatusCode::BAD_REQUEST, "InvalidRequest", m),
            WebError::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                "RequestLimitExceeded",
                format!(
                    "More than {MAX_FAILURES} failed logins from this address: try again in a minute."
                ),
            ),
        };
        (
            status,
            axum::Json(serde_json::json!({ "code": code, "message": message })),
        )
            .into_response()
    }
}

/// Headers every answer carries: no framing, no sniffing, scripts and connections only to
/// this origin.
fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Opens every listener, then serves until `stop` turns true; `tls` is what TLS listeners
/// present.
pub async fn serve(
    web: Arc<Web>,
    listen: &[Listen],
    tls: Option<&ServerIdentity>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, WebServeError> {
    let router = api::router(web.clone());
    let mut tasks = Vec::new();
    for l in listen {
        let Some(addr) = l.tcp_addr() else {
            continue;
        };
        let acceptor = match l {
            Listen::Tcp(_) => Some(tokio_rustls::TlsAcceptor::from(
                crate::tls::http1_server_config(tls.ok_or(WebServeError::NoCertificate)?)?,
            )),
            _ => None,
        };
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| WebServeError::Bind(addr.to_string(), e))?;
        let local = tcp
            .local_addr()
            .map_err(|e| WebServeError::Bind(addr.to_string(), e))?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        tracing::info!(%local, scheme, "web view listening");
        eprintln!("stratod: web view on {scheme}://{local}/");
        let (router, mut stop) = (router.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped(&mut stop) => return,
                    conn = tcp.accept() => match conn {
                        Ok((s, peer)) => {
                            let _ = s.set_nodelay(true);
                            match &acceptor {
                                None => {
                                    // Plaintext serves this host only: a token or cookie
                                    // sent in the clear from elsewhere could be read.
                                    if crate::api::is_loopback(peer) {
                                        connection(router.clone(), s, Conn { tls: false, peer });
                                    } else {
                                        tracing::debug!(%peer, "web view: plaintext from off the host refused");
                                    }
                                }
                                Some(a) => tls_connection(router.clone(), a.clone(), s, peer),
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "web view accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                }
            }
        }));
    }
    Ok(tasks)
}

async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Completes the TLS handshake off the accept loop, then serves the connection.
fn tls_connection(
    router: axum::Router,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    tokio::spawn(async move {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => connection(router, tls, Conn { tls: true, peer }),
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "web view TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "web view TLS handshake timed out"),
        }
    });
}

fn connection<S>(router: axum::Router, stream: S, conn: Conn)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn);
                let router = router.clone();
                async move {
                    let mut resp = router.oneshot(req).await?;
                    secure_headers(resp.headers_mut());
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
        if let Err(e) = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades()
            .await
        {
            tracing::debug!(error = %e, "web view connection ended");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_past_the_limit_wait_out_the_window() {
        let l = LoginLimiter::default();
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let other: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(l.allowed(ip, t0));
            l.failed(ip, t0);
        }
        assert!(!l.allowed(ip, t0 + Duration::from_secs(1)));
        assert!(l.allowed(other, t0), "another address is not held up");
        assert!(l.allowed(ip, t0 + FAILURE_WINDOW));
        l.failed(ip, t0 + FAILURE_WINDOW);
        assert!(
            l.allowed(ip, t0 + FAILURE_WINDOW),
            "a new window counts from one"
        );
        l.succeeded(ip);
        assert!(l.map().is_empty());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; strato_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("abc"));
        let mut none = HeaderMap::new();
        none.append(
            header::COOKIE,
            HeaderValue::from_static("strato_sessionx=1"),
        );
        assert_eq!(session_cookie(&none), None);
    }
}
