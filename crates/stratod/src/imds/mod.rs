//! The instance metadata service at 169.254.169.254, compatible with EC2's: IMDSv2 session
//! tokens (and IMDSv1 unless an instance requires tokens), the `meta-data` tree, user data
//! and the identity document.
//!
//! One listener per VPC bridge, bound to that bridge (`SO_BINDTODEVICE`), so a request is
//! known by the bridge it arrived on and its source address; the ENI holding that address
//! on that bridge is the caller (the firewall's anti-spoofing rules keep each tap to its
//! ENI's addresses). No instance can name another: nothing in a request says whose data
//! it wants.
//!
//! The service also listens on `[fd00:ec2::254]:80` on every bridge ([`ADDRESS6`]); an
//! instance reaches it there only when its metadata options enable `HttpProtocolIpv6`
//! (off by default, as on EC2). For the others the connection is closed unanswered, as
//! near as one shared listener comes to an address that is not there.

pub use strato_wire::imds_http as http;
pub mod tokens;
pub mod tree;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::cloud::network::plumbing::blocking;
use crate::db::instances::{HttpTokens, Instance, Toggle};
use crate::error::ApiResult;
use crate::lifecycle::State;
use crate::metrics::{inc, Metrics};
use http::{Request, Response};
use tokens::Tokens;

/// The service's address.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// Its IPv6 address.
pub const ADDRESS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
/// Its port.
pub const PORT: u16 = 80;
/// Open connections per bridge; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// A connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(10);
/// Listeners are checked against the VPCs this often even without a change notice.
const RECONCILE: Duration = Duration::from_secs(30);
/// Metadata versions listed at `/` (any `YYYY-MM-DD` is served, as `latest`).
const VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2016-09-02",
    "2018-09-24",
    "2021-03-23",
    "2022-09-24",
    "latest",
];

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address could not be put on the bridge.
    #[error("cannot add the service's address to {bridge}: {why}")]
    Address {
        /// The bridge.
        bridge: String,
        /// The netlink error's sentence.
        why: String,
    },
    /// The socket could not be made.
    #[error("cannot listen on the service's address, port {PORT}, on {bridge}")]
    Socket {
        /// The bridge.
        bridge: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
}

/// A log gate for what guests can trigger: a few lines a minute at most.
#[derive(Debug, Default)]
struct LogGate {
    window: AtomicU64,
    count: AtomicU64,
}

impl LogGate {
    fn allow(&self) -> bool {
        let minute = crate::db::now_s() as u64 / 60;
        if self.window.swap(minute, Ordering::Relaxed) != minute {
            self.count.store(0, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed) < 10
    }
}

/// What a metadata request may read: the bridges to listen on, the instance behind an
/// address, and what its tree is built from. The domain implements it over the state
/// store; the service never sees more.
pub trait MetadataSource: Send + Sync + 'static {
    /// The bridges of every VPC (one listener each).
    fn bridges(&self) -> ApiResult<Vec<String>>;
    /// The instance whose ENI holds `ip` (primary or secondary) on `bridge`, in any state.
    fn instance_at(&self, bridge: &str, ip: Ipv4Addr) -> Option<Instance>;
    /// The instance whose ENI holds IPv6 address `ip` on `bridge`, in any state.
    fn instance_at6(&self, _bridge: &str, _ip: Ipv6Addr) -> Option<Instance> {
        None
    }
    /// What the tree of `inst` is built from; `None` when its records are inconsistent.
    fn view(&self, inst: &Instance) -> Option<tree::View>;
}

/// The metadata service.
pub struct Imds {
    source: Arc<dyn MetadataSource>,
    metrics: Arc<Metrics>,
    tokens: Mutex<Tokens>,
    listeners: Mutex<HashMap<String, JoinHandle<()>>>,
    listeners6: Mutex<HashMap<String, JoinHandle<()>>>,
    log: LogGate,
}

/// What a request gets: the response, and the IP TTL to send it with.
#[derive(Debug)]
pub struct Answer {
    /// The response.
    pub response: Response,
    /// The hop limit of a token response.
    pub ttl: Option<u8>,
}

impl From<Response> for Answer {
    fn from(response: Response) -> Self {
        Answer {
            response,
            ttl: None,
        }
    }
}

impl Imds {
    /// A service over `source`, counting into `metrics`, with no listener yet.
    pub fn new(source: Arc<dyn MetadataSource>, metrics: Arc<Metrics>) -> Imds {
        Imds {
            source,
            metrics,
            tokens: Mutex::new(Tokens::default()),
            listeners: Mutex::new(HashMap::new()),
            listeners6: Mutex::new(HashMap::new()),
            log: LogGate::default(),
        }
    }

    /// Runs the service: listeners follow the VPCs for the daemon's life, checked at each
    /// `changed` notice (VPCs came or went) and every [`RECONCILE`].
    pub async fn run(self: Arc<Self>, changed: Arc<tokio::sync::Notify>) {
        loop {
            self.reconcile().await;
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(RECONCILE) => {}
            }
        }
    }

    fn listeners(&self, v6: bool) -> std::sync::MutexGuard<'_, HashMap<String, JoinHandle<()>>> {
        let m = if v6 {
            &self.listeners6
        } else {
            &self.listeners
        };
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a listener on every VPC bridge that lacks one and stops those of VPCs gone.
    pub async fn reconcile(self: &Arc<Self>) {
        let bridges = match self.source.bridges() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "metadata service: cannot list VPCs");
                return;
            }
        };
        for v6 in [false, true] {
            self.reconcile_family(&bridges, v6).await;
        }
    }

    async fn reconcile_family(self: &Arc<Self>, bridges: &[String], v6: bool) {
        let missing: Vec<String> = {
            let mut ls = self.listeners(v6);
            ls.retain(|b, h| {
                let keep = bridges.contains(b) && !h.is_finished();
                if !keep {
                    h.abort();
                }
                keep
            });
            bridges
                .iter()
                .filter(|b| !ls.contains_key(*b))
                .cloned()
                .collect()
        };
        for b in missing {
            let l = if v6 {
                listen6(&b).await
            } else {
                listen(&b).await
            };
            match l {
                Ok(l) => {
                    tracing::info!(bridge = %b, ipv6 = v6, "metadata service listening");
                    let task = tokio::spawn(Arc::clone(self).serve(b.clone(), l));
                    self.listeners(v6).insert(b, task);
                }
                // A host without IPv6 would say so every RECONCILE: the gate keeps it short.
                Err(e) if v6 => {
                    if self.log.allow() {
                        tracing::warn!(error = %crate::error::chain(&e), "metadata service");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), "metadata service");
                }
            }
        }
    }

    async fn serve(self: Arc<Self>, bridge: String, l: TcpListener) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, peer) = match l.accept().await {
                Ok(x) => x,
                Err(e) => {
                    if self.log.allow() {
                        tracing::warn!(bridge = %bridge, error = %e, "metadata service: accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                continue;
            };
            let me = Arc::clone(&self);
            let b = bridge.clone();
            tokio::spawn(async move {
                let _permit = permit;
                me.connection(stream, peer, &b).await;
            });
        }
    }

    /// Serves one connection: requests one after another while the client keeps it open.
    async fn connection(&self, mut s: TcpStream, peer: SocketAddr, bridge: &str) {
        let ip = peer.ip();
        if let IpAddr::V6(ip6) = ip {
            let known = self.source.instance_at6(bridge, ip6);
            if known.is_some_and(|i| i.metadata_options.http_protocol_ipv6 != Toggle::Enabled) {
                inc(&self.metrics.imds_refused_total);
                return;
            }
        }
        let mut buf = Vec::with_capacity(1024);
        loop {
            let (req, used) = loop {
                match http::parse(&buf) {
                    Ok(Some(x)) => break x,
                    Ok(None) => {}
                    Err(e) => {
                        inc(&self.metrics.imds_bad_requests_total);
                        if self.log.allow() {
                            tracing::info!(bridge, %ip, error = %e, "metadata service: bad request");
                        }
                        let out = http::encode(&Response::error(400), false, false);
                        let _ = s.write_all(&out).await;
                        return;
                    }
                }
                if !read_more(&mut s, &mut buf).await {
                    return;
                }
            };
            buf.drain(..used);
            while buf.len() < req.content_length {
                if !read_more(&mut s, &mut buf).await {
                    return;
                }
            }
            buf.drain(..req.content_length);
            let answer = self.answer_ip(&req, bridge, ip);
            if let Some(ttl) = answer.ttl {
                // Kept for the rest of the connection, so that a retransmitted token is
                // bounded by the same hop limit.
                let set = match ip {
                    IpAddr::V4(_) => s.set_ttl(u32::from(ttl)),
                    IpAddr::V6(_) => socket2::SockRef::from(&s).set_unicast_hops_v6(u32::from(ttl)),
                };
                if let Err(e) = set {
                    tracing::warn!(error = %e, "metadata service: cannot set the hop limit");
                    return;
                }
            }
            let out = http::encode(&answer.response, req.keep_alive, req.method == "HEAD");
            if s.write_all(&out).await.is_err() || !req.keep_alive {
                return;
            }
        }
    }

    /// The answer to one request from `ip` on `bridge`.
    pub fn answer(&self, req: &Request, bridge: &str, ip: Ipv4Addr) -> Answer {
        self.answer_ip(req, bridge, IpAddr::V4(ip))
    }

    /// The answer to one request from `ip` (either family) on `bridge`. Over IPv6 only
    /// instances with HttpProtocolIpv6 enabled are callers.
    pub fn answer_ip(&self, req: &Request, bridge: &str, ip: IpAddr) -> Answer {
        inc(&self.metrics.imds_requests_total);
        let inst = match ip {
            IpAddr::V4(ip) => self.caller(bridge, ip),
            IpAddr::V6(ip) => self
                .source
                .instance_at6(bridge, ip)
                .filter(|i| i.metadata_options.http_protocol_ipv6 == Toggle::Enabled)
                .filter(may_call),
        };
        let inst = match inst {
            Some(i) => i,
            None => {
                inc(&self.metrics.imds_refused_total);
                return Response::error(403).into();
            }
        };
        if inst.metadata_options.http_endpoint == Toggle::Disabled {
            inc(&self.metrics.imds_refused_total);
            return Response::error(403).into();
        }
        let now = Instant::now();
        match req.method.as_str() {
            "PUT" => self.put(req, &inst, now),
            "GET" | "HEAD" => {
                let authorized = match req.header("x-aws-ec2-metadata-token") {
                    Some(t) => self.tokens().valid(t, &inst.id, inst.launch_time, now),
                    None => inst.metadata_options.http_tokens == HttpTokens::Optional,
                };
                if !authorized {
                    inc(&self.metrics.imds_unauthorized_total);
                    return Response::error(401).into();
                }
                self.get(&req.path, &inst).into()
            }
            _ => Response::error(405).into(),
        }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, req: &Request, inst: &Instance, now: Instant) -> Answer {
        let parts: Vec<&str> = req.path.split('/').filter(|p| !p.is_empty()).collect();
        match parts.as_slice() {
            ["latest", "api", "token"] => {}
            [v, "api", "token"] if is_version(v) => return Response::error(403).into(),
            _ => return Response::error(405).into(),
        }
        // A proxy in the guest forwarding the request: EC2 refuses those.
        if req.header("x-forwarded-for").is_some() {
            return Response::error(403).into();
        }
        let Some(ttl) = tokens::parse_ttl(req.header("x-aws-ec2-metadata-token-ttl-seconds"))
        else {
            return Response::error(400).into();
        };
        let token = self.tokens().issue(&inst.id, inst.launch_time, ttl, now);
        inc(&self.metrics.imds_tokens_issued_total);
        let mut r = Response::text(200, token);
        r.headers.push((
            "X-aws-ec2-metadata-token-ttl-seconds",
            ttl.as_secs().to_string(),
        ));
        Answer {
            response: r,
            ttl: Some(inst.metadata_options.http_put_response_hop_limit.max(1)),
        }
    }

    fn get(&self, path: &str, inst: &Instance) -> Response {
        let not_found = || {
            inc(&self.metrics.imds_not_found_total);
            Response::error(404)
        };
        if path == "/" {
            return Response::text(200, VERSIONS.join("\n"));
        }
        let rest = &path[1..];
        // An empty segment (`/latest//meta-data`) names nothing, as on EC2; only the last
        // one may be empty (a trailing `/`).
        if rest
            .strip_suffix('/')
            .unwrap_or(rest)
            .split('/')
            .any(str::is_empty)
        {
            return not_found();
        }
        let (version, sub) = rest.split_once('/').unwrap_or((rest, ""));
        if !is_version(version) {
            return not_found();
        }
        let (top, below) = sub.split_once('/').unwrap_or((sub, ""));
        let has_below = sub.contains('/');
        let text = match top {
            "" => {
                let mut l = vec!["dynamic", "meta-data"];
                if !inst.user_data.is_empty() {
                    l.push("user-data");
                }
                Some(l.join("\n"))
            }
            "user-data" if !has_below && !inst.user_data.is_empty() => {
                let mut r = Response::text(200, inst.user_data.clone());
                r.content_type = "application/octet-stream";
                return r;
            }
            "meta-data" => self
                .source
                .view(inst)
                .and_then(|v| tree::meta_data(&v).get(below)),
            "dynamic" => self
                .source
                .view(inst)
                .and_then(|v| tree::dynamic(&v).get(below)),
            _ => None,
        };
        match text {
            Some(t) => Response::text(200, t),
            None => not_found(),
        }
    }

    /// The instance whose ENI has `ip` on `bridge`, while it may use the service.
    fn caller(&self, bridge: &str, ip: Ipv4Addr) -> Option<Instance> {
        self.source.instance_at(bridge, ip).filter(may_call)
    }
}

/// Whether an instance in its state may use the service.
fn may_call(inst: &Instance) -> bool {
    matches!(
        inst.state,
        State::Pending | State::Running | State::Stopping | State::ShuttingDown
    )
}

/// `latest`, `1.0` or a `YYYY-MM-DD` date.
fn is_version(v: &str) -> bool {
    let b = v.as_bytes();
    v == "latest"
        || v == "1.0"
        || (b.len() == 10
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                _ => c.is_ascii_digit(),
            }))
}

/// Reads more of a request; false when the peer is gone, idle too long, or sends too much.
async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    if buf.len() > http::MAX_HEAD + http::MAX_BODY {
        return false;
    }
    let mut chunk = [0u8; 2048];
    match tokio::time::timeout(IDLE, s.read(&mut chunk)).await {
        Ok(Ok(n)) if n > 0 => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        _ => false,
    }
}

/// Puts the service address on `bridge` and listens there.
async fn listen(bridge: &str) -> Result<TcpListener, ListenError> {
    let b = bridge.to_string();
    blocking(move || strato_net::link::ensure_bridge(&b, ADDRESS, 32))
        .await
        .map_err(|why| ListenError::Address {
            bridge: bridge.to_string(),
            why,
        })?;
    bound(bridge, SocketAddr::V4(SocketAddrV4::new(ADDRESS, PORT)))
}

/// Puts the service's IPv6 address on `bridge` and listens there.
async fn listen6(bridge: &str) -> Result<TcpListener, ListenError> {
    let b = bridge.to_string();
    blocking(move || {
        strato_net::link6::enable_ipv6(&b)?;
        strato_net::link6::ensure_address6(&b, ADDRESS6, 128)
    })
    .await
    .map_err(|why| ListenError::Address {
        bridge: bridge.to_string(),
        why,
    })?;
    bound(
        bridge,
        SocketAddr::V6(SocketAddrV6::new(ADDRESS6, PORT, 0, 0)),
    )
}

/// A listener on `addr` bound to `bridge`'s device. Every bridge has a listener on the same
/// address and port; the device binding keeps them apart and tells each which bridge its
/// callers are on.
fn bound(bridge: &str, addr: SocketAddr) -> Result<TcpListener, ListenError> {
    let sock_err = |source| ListenError::Socket {
        bridge: bridge.to_string(),
        source,
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(sock_err)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true).map_err(sock_err)?;
    }
    sock.set_reuse_address(true).map_err(sock_err)?;
    sock.bind_device(Some(bridge.as_bytes()))
        .map_err(sock_err)?;
    sock.bind(&addr.into()).map_err(sock_err)?;
    sock.listen(128).map_err(sock_err)?;
    sock.set_nonblocking(true).map_err(sock_err)?;
    TcpListener::from_std(sock.into()).map_err(sock_err)
}

#[cfg(test)]
mod tests;
