//! The EC2 Query API: the front end the aws CLI, boto3 and Terraform's AWS provider speak.
//! HTTP/1.1 on the config's `ec2_api.listen` addresses, `POST /` with a form body or `GET`
//! with a query string, signed with SigV4 by an access key (`cloud::identity`). It is a
//! codec and an authenticator over the same domain layer as the gRPC API: requests are
//! parsed by botocore's model ([`form`]), each action maps them to one domain call
//! (`actions`), and results are written as the model's XML ([`xml`]). STS's
//! GetCallerIdentity (service `sts` in the signature's scope) is answered here too.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::cloud::identity::roles::allows;
use crate::cloud::identity::sessions::RoleSession;
use crate::cloud::Cloud;
use crate::error::{ApiError, ApiResult, ErrorCode};

mod actions;
pub mod form;
pub mod idempotency;
pub mod model;
mod server;
pub mod sigv4;
pub mod value;
pub mod xml;

pub use server::{serve, QueryServeError};

use model::Model;
use value::Value;

/// Largest request body accepted (RunInstances' 16 KiB of user data is about 22 KiB in
/// base64).
pub const MAX_BODY: usize = 1 << 20;

/// The Query API's state: the cloud and the two service models.
pub struct QueryApi {
    cloud: Arc<Cloud>,
    ec2: Model,
    sts: Model,
    /// This daemon run, in the client token claims it holds.
    boot: String,
}

/// Which service a request is for, from its signature's credential scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Ec2,
    Sts,
}

/// Who a verified request speaks for.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account.
    pub account: String,
    /// The access key that signed.
    pub access_key: String,
    /// The role a temporary credential limits the caller to; `None` for an access key.
    pub role: Option<RoleSession>,
}

impl Caller {
    /// Whether the caller may call `action` of `service`. STS's GetCallerIdentity needs no
    /// permission, as in AWS.
    fn may_call(&self, service: Service, action: &str) -> bool {
        let Some(r) = &self.role else { return true };
        match service {
            Service::Sts if action == "GetCallerIdentity" => true,
            Service::Sts => allows(&r.actions, "sts", action),
            Service::Ec2 => allows(&r.actions, "ec2", action),
        }
    }
}

/// A request being answered: the caller and the cloud.
pub struct Ctx<'a> {
    /// The cloud.
    pub cloud: &'a Arc<Cloud>,
    /// Who calls.
    pub caller: &'a Caller,
}

impl Ctx<'_> {
    /// The calling account.
    pub fn account(&self) -> &str {
        &self.caller.account
    }
}

/// A fresh request ID in the UUID form AWS uses.
fn request_id() -> String {
    let n = crate::ids::random_u128();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

impl QueryApi {
    /// The Query API over `cloud`.
    pub fn new(cloud: Arc<Cloud>) -> Result<QueryApi, model::ModelError> {
        Ok(QueryApi {
            cloud,
            ec2: Model::ec2()?,
            sts: Model::sts()?,
            boot: format!("{:032x}", crate::ids::random_u128()),
        })
    }

    /// Answers one HTTP request.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let id = request_id();
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                let e = ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("The request body is larger than {MAX_BODY} bytes or broken."),
                );
                return Ok(self.error(Service::Ec2, &e, &id));
            }
        };
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let (path, query) = (parts.uri.path(), parts.uri.query().unwrap_or(""));
        let signed = sigv4::SignedRequest {
            method: parts.method.as_str(),
            path,
            query,
            headers: &headers,
            body: &body,
        };
        crate::metrics::inc(&self.cloud.metrics.query_requests_total);
        let (service, result) = self.answer(&parts.method, &signed, &id).await;
        match result {
            Ok(doc) => Ok(xml_response(StatusCode::OK, doc)),
            Err(e) => {
                crate::metrics::inc(&self.cloud.metrics.query_errors_total);
                Ok(self.error(service, &e, &id))
            }
        }
    }

    fn error(&self, service: Service, e: &ApiError, id: &str) -> Response<Full<Bytes>> {
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let doc = match service {
            Service::Ec2 => xml::ec2_error(e.code.as_str(), &e.message, id),
            Service::Sts => {
                xml::query_error(e.code.as_str(), &e.message, id, status.as_u16() < 500)
            }
        };
        xml_response(status, doc)
    }

    async fn answer(
        &self,
        method: &Method,
        req: &sigv4::SignedRequest<'_>,
        id: &str,
    ) -> (Service, ApiResult<String>) {
        let mut service = Service::Ec2;
        let result = async {
            if method != Method::POST && method != Method::GET {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "The Query API takes POST with a form body or GET with a query string.",
                ));
            }
            let mut params = form::decode_pairs(req.query)?;
            if method == Method::POST {
                let text = std::str::from_utf8(req.body).map_err(|_| {
                    ApiError::new(
                        ErrorCode::MalformedQueryString,
                        "The request body is not UTF-8.",
                    )
                })?;
                params.extend(form::decode_pairs(text)?);
            }
            let caller = self.authenticate(req, &mut service)?;
            let mut action = None;
            params.retain(|(k, v)| match k.as_str() {
                "Action" => {
                    action = Some(v.clone());
                    false
                }
                "Version" => false,
                _ => true,
            });
            let action = action.filter(|a| !a.is_empty()).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::MissingAction,
                    "The request must contain the parameter Action.",
                )
            })?;
            let model = match service {
                Service::Ec2 => &self.ec2,
                Service::Sts => &self.sts,
            };
            let op = model.operations.get(&action).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidAction,
                    format!("The action {action} is not valid for this web service."),
                )
            })?;
            if !caller.may_call(service, &action) {
                crate::metrics::inc(&self.cloud.metrics.query_denied_total);
                let who = caller
                    .role
                    .as_ref()
                    .map(|r| r.arn(&caller.account))
                    .unwrap_or_default();
                let svc = match service {
                    Service::Ec2 => "ec2",
                    Service::Sts => "sts",
                };
                return Err(ApiError::new(
                    ErrorCode::UnauthorizedOperation,
                    format!(
                        "You are not authorized to perform this operation. User: {who} is not authorized to perform: {svc}:{action}"
                    ),
                ));
            }
            let input = match &op.input {
                Some(shape) => form::parse(model, shape, &params)?,
                None if params.is_empty() => Value::obj([]),
                None => {
                    return Err(ApiError::new(
                        ErrorCode::UnknownParameter,
                        format!("The parameter {} is not recognized", params[0].0),
                    ))
                }
            };
            let ctx = Ctx {
                cloud: &self.cloud,
                caller: &caller,
            };
            let run = async {
                let output = match service {
                    Service::Ec2 => actions::ec2(&ctx, &action, &input).await?,
                    Service::Sts => actions::sts(&ctx, &action, &input)?,
                };
                tracing::debug!(action, account = %caller.account, "query request answered");
                xml::response(model, &action, &output, id).map_err(|e| {
                    tracing::error!(error = %e, "a Query API answer does not fit the model");
                    ApiError::internal(format!("The answer could not be written: {e}"))
                })
            };
            // A dry run changes nothing, so it neither claims nor replays a token.
            match idempotency::token(&input)? {
                Some(token) if input.bool("DryRun") != Some(true) => {
                    let key = crate::db::client_tokens::TokenKey {
                        account: &caller.account,
                        action: &action,
                        token,
                    };
                    idempotency::answer(&self.cloud, &self.boot, key, &input, id, run).await
                }
                _ => run.await,
            }
        }
        .await;
        (service, result)
    }

    /// Verifies the request's signature and finds the account its key speaks for.
    fn authenticate(
        &self,
        req: &sigv4::SignedRequest<'_>,
        service: &mut Service,
    ) -> ApiResult<Caller> {
        let auth = req.authorization()?.ok_or_else(|| {
            if req.query.contains("X-Amz-Signature=") {
                ApiError::new(
                    ErrorCode::MissingAuthenticationToken,
                    "Presigned (query string) requests are not supported: sign with the Authorization header.",
                )
            } else {
                ApiError::new(ErrorCode::MissingAuthenticationToken, "Request is missing Authentication Token")
            }
        })?;
        *service = match auth.service.as_str() {
            "ec2" => Service::Ec2,
            "sts" => Service::Sts,
            other => {
                return Err(sigv4::auth_failure(&format!(
                    "the credential is scoped to service '{other}'; this endpoint serves 'ec2' and 'sts'."
                )))
            }
        };
        if auth.region != self.cloud.cfg.region {
            return Err(sigv4::auth_failure(&format!(
                "the credential should be scoped to a valid region, not '{}' (this is '{}').",
                auth.region, self.cloud.cfg.region
            )));
        }
        let now = crate::db::now_s();
        let token = req.header("x-amz-security-token");
        if let Some(s) = self.cloud.session_caller(&auth.access_key, token, now)? {
            sigv4::verify(req, &auth, &s.secret, now)?;
            return Ok(Caller {
                account: s.account,
                access_key: auth.access_key,
                role: Some(s.session),
            });
        }
        let Some(cred) = self.cloud.access_key_credential(&auth.access_key)? else {
            return Err(sigv4::auth_failure(&format!(
                "the access key ID '{}' does not exist.",
                auth.access_key
            )));
        };
        sigv4::verify(req, &auth, &cred.secret, now)?;
        Ok(Caller {
            account: cred.account,
            access_key: auth.access_key,
            role: None,
        })
    }
}

fn xml_response(status: StatusCode, doc: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(doc)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_look_like_uuids() {
        let a = request_id();
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, request_id());
    }
}
