//! The gRPC layer: each service turns requests into calls on [`Cloud`] for the calling
//! account and the results into API messages. Who calls: a bearer token in the
//! `authorization` metadata names an account; without one, only the Unix socket is trusted
//! and speaks for the host's admin account. A token that came over plaintext TCP from
//! anywhere but loopback is refused: others on the path could have read it.

use std::sync::Arc;

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};
use tonic::{Request, Status};

use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult, ErrorCode};

pub mod access_keys;
pub mod addresses;
pub mod compute;
pub mod convert;
pub mod hosts;
pub mod images;
pub mod key_pairs;
pub mod launch_templates;
pub mod network_interfaces;
pub mod peer;
pub mod placement;
pub mod regions;
pub mod roles;
pub mod security_groups;
pub mod tags;
pub mod usage;
pub mod volumes;
pub mod vpc;

/// State shared by the services.
#[derive(Clone)]
pub struct Api {
    /// The cloud.
    pub cloud: Arc<Cloud>,
}

impl Api {
    /// The account a request speaks for.
    fn account<T>(&self, req: &Request<T>) -> Result<String, Status> {
        crate::metrics::inc(&self.cloud.metrics.api_requests_total);
        let result = self.resolve(req);
        if result.is_err() {
            crate::metrics::inc(&self.cloud.metrics.api_errors_total);
        }
        result.map_err(Status::from)
    }

    fn resolve<T>(&self, req: &Request<T>) -> Result<String, ApiError> {
        if let Some(v) = req.metadata().get("authorization") {
            let token = v
                .to_str()
                .ok()
                .and_then(|s| s.strip_prefix("Bearer "))
                .map(str::trim)
                .unwrap_or("");
            // TLS connections carry `TlsConnectInfo` (beside the `TcpConnectInfo` both
            // carry); without it the token came in plaintext.
            let tls = req
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .is_some();
            if let (Some(tcp), false) = (req.extensions().get::<TcpConnectInfo>(), tls) {
                if !tcp.remote_addr().is_some_and(is_loopback) {
                    return Err(ApiError::new(
                        ErrorCode::AuthFailure,
                        "API tokens are not accepted over plaintext TCP except from loopback; use TLS (https://).",
                    ));
                }
            }
            if let Some(account) = self.region_caller(req, token)? {
                return Ok(account);
            }
            return self.cloud.account_for_token(token);
        }
        if req.extensions().get::<UdsConnectInfo>().is_some() {
            return Ok(self.cloud.admin_account().to_string());
        }
        Err(ApiError::new(
            ErrorCode::AuthFailure,
            "An API token is required (authorization: Bearer TOKEN).",
        ))
    }

    /// The skeleton every handler shares: the caller's account, the operation `f` on it and
    /// the request's message, and the answer, its error counted and logged under `op`.
    pub fn handle<T, R>(
        &self,
        op: &str,
        req: Request<T>,
        f: impl FnOnce(&str, T) -> ApiResult<R>,
    ) -> Result<tonic::Response<R>, Status> {
        let account = self.account(&req)?;
        let result = f(&account, req.into_inner());
        self.finish(op, result)
    }

    /// [`Api::handle`] for an operation that awaits (it gets the account by value, for
    /// its future to hold).
    pub async fn handle_async<T, R, Fut>(
        &self,
        op: &str,
        req: Request<T>,
        f: impl FnOnce(String, T) -> Fut,
    ) -> Result<tonic::Response<R>, Status>
    where
        Fut: std::future::Future<Output = ApiResult<R>>,
    {
        let account = self.account(&req)?;
        let result = f(account, req.into_inner()).await;
        self.finish(op, result)
    }

    /// Turns an operation's result into a gRPC result, counting errors.
    fn finish<T>(&self, op: &str, r: Result<T, ApiError>) -> Result<tonic::Response<T>, Status> {
        match r {
            Ok(v) => Ok(tonic::Response::new(v)),
            Err(e) => {
                crate::metrics::inc(&self.cloud.metrics.api_errors_total);
                tracing::debug!(op, code = e.code.as_str(), message = %e.message, "request refused");
                Err(e.into())
            }
        }
    }
}

/// Whether a peer is on this host's loopback (IPv4-mapped IPv6 included).
pub(crate) fn is_loopback(addr: std::net::SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(a) => a.is_loopback(),
        std::net::IpAddr::V6(a) => a
            .to_ipv4_mapped()
            .map_or(a.is_loopback(), |v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers() {
        for a in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback(a.parse().unwrap()), "{a}");
        }
        for a in [
            "10.0.0.1:1",
            "[::ffff:10.0.0.1]:1",
            "[fe80::1]:1",
            "0.0.0.0:1",
        ] {
            assert!(!is_loopback(a.parse().unwrap()), "{a}");
        }
    }
}
