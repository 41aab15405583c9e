//! The JSON API behind the pages: login, the account's instances (with state, status
//! checks, addresses and volumes), their volumes and Elastic IPs, and start, stop, reboot
//! and terminate. Each answer is built from the domain's own views, not from the store.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Conn, Web, WebError, COOKIE, SESSION_LIFETIME};
use crate::cloud::compute::describe::{DescribeInstances, InstanceView};
use crate::cloud::compute::instances::Change;
use crate::cloud::storage::describe::DescribeVolumes;
use crate::db::instances::Tag;
use crate::prober::{Check, Record};

type Shared = State<Arc<Web>>;

/// Every route of the view.
pub(super) fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(super::assets::index))
        .route("/instances/{id}", get(super::assets::index))
        .route("/assets/{file}", get(super::assets::asset))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/session", get(session))
        .route("/api/instances", get(instances))
        .route("/api/instances/{id}", get(instance))
        .route("/api/instances/{id}/{action}", post(act))
        .route("/api/instances/{id}/console", get(super::console::console))
        .route("/api/instances/{id}/lab", get(super::lab::lab))
        .route("/api/volumes", get(volumes))
        .route("/api/addresses", get(addresses))
        .with_state(web)
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// POST /api/login `{"token"}`: a session cookie for the token's account.
async fn login(
    State(web): Shared,
    Extension(conn): Extension<Conn>,
    Json(body): Json<Login>,
) -> Result<Response, WebError> {
    let now = std::time::Instant::now();
    if !web.logins.allowed(conn.peer.ip(), now) {
        return Err(WebError::Throttled);
    }
    let account = match web.cloud.account_for_token(body.token.trim()) {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(peer = %conn.peer, "web view login refused");
            web.logins.failed(conn.peer.ip(), now);
            return Err(WebError::Auth(e));
        }
    };
    web.logins.succeeded(conn.peer.ip());
    tracing::info!(peer = %conn.peer, account = %account, "web view login");
    let id = web.login(account.clone());
    let secure = if conn.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    );
    let mut resp = Json(json!({ "account": account })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// POST /api/logout: the session ends.
async fn logout(State(web): Shared, headers: HeaderMap) -> Response {
    if let Some(id) = super::session_cookie(&headers) {
        web.logout(id);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("strato_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

/// GET /api/session: who the caller is.
async fn session(State(web): Shared, headers: HeaderMap) -> Result<Json<Value>, WebError> {
    let account = web.caller(&headers)?;
    Ok(Json(
        json!({ "account": account, "region": web.cloud.cfg.region }),
    ))
}

fn tags(t: &[Tag]) -> Value {
    Value::Object(
        t.iter()
            .map(|t| (t.key.clone(), Value::String(t.value.clone())))
            .collect(),
    )
}

fn rfc3339(s: i64) -> String {
    crate::time::rfc3339(s)
}

/// One check as the page shows it: EC2's status and detail, since when it fails, and why.
fn check(c: &Check, name: &str) -> Value {
    json!({
        "status": c.status.name(),
        "name": name,
        "detail": c.status.detail(),
        "impaired_since": c.impaired_since.map(rfc3339),
        "reason": c.reason,
    })
}

fn checks(r: Option<Record>) -> Value {
    match r {
        None => Value::Null,
        Some(r) => json!({
            "system": check(&r.system, "reachability"),
            "instance": check(&r.instance, "reachability"),
            "since": rfc3339(r.since),
        }),
    }
}

/// The summary row of an instance.
fn summary(web: &Web, v: &InstanceView) -> Value {
    let i = &v.instance;
    let running = i.state == crate::lifecycle::State::Running;
    json!({
        "instance_id": i.id,
        "name": i.tags.iter().find(|t| t.key == "Name").map(|t| t.value.clone()),
        "state": i.state.name(),
        "state_code": i.state.code(),
        "state_reason": i.state_reason,
        "instance_type": i.instance_type,
        "vcpus": i.vcpus,
        "memory_mib": i.memory_mib,
        "image_id": i.image_id,
        "availability_zone": i.az,
        "launch_time": rfc3339(i.launch_time),
        "private_ip": v.network_interfaces.first().map(|e| e.eni.private_ip.clone()),
        "public_ip": v.public_ip,
        "vpc_id": v.vpc_id,
        "subnet_id": i.subnet_id,
        "status_checks": checks(running.then(|| web.cloud.status_of(&i.id))),
    })
}

/// Everything the detail page shows of an instance.
fn detail(web: &Web, v: &InstanceView) -> Value {
    let mut out = summary(web, v);
    let i = &v.instance;
    if let Value::Object(m) = &mut out {
        m.insert("key_name".into(), json!(i.key_name));
        m.insert("tags".into(), tags(&i.tags));
        m.insert("root_device_name".into(), json!(i.root_device_name));
        m.insert(
            "security_groups".into(),
            json!(v
                .security_groups
                .iter()
                .map(|(id, name)| json!({ "group_id": id, "group_name": name }))
                .collect::<Vec<_>>()),
        );
        m.insert("placement_group".into(), json!(v.placement_group_name));
        m.insert(
            "network_interfaces".into(),
            json!(v
                .network_interfaces
                .iter()
                .map(|e| json!({
                    "network_interface_id": e.eni.id,
                    "device_index": e.eni.device_index,
                    "subnet_id": e.eni.subnet_id,
                    "mac_address": e.eni.mac,
                    "private_ip": e.eni.private_ip,
                    "secondary_private_ips": e.secondary,
                    "ipv6_addresses": e.ipv6,
                    "security_groups": e.groups,
                    "status": e.status(),
                }))
                .collect::<Vec<_>>()),
        );
        m.insert(
            "volumes".into(),
            json!(v.volumes.iter().map(volume).collect::<Vec<_>>()),
        );
    }
    out
}

fn volume(v: &crate::db::volumes::Volume) -> Value {
    json!({
        "volume_id": v.id,
        "size_gib": v.size_gib,
        "volume_type": v.volume_type,
        "state": v.state.name(),
        "availability_zone": v.az,
        "snapshot_id": v.snapshot_id,
        "create_time": rfc3339(v.created),
        "instance_id": v.instance_id,
        "device": v.device,
        "attach_state": v.attach_state.map(|s| s.name()),
        "delete_on_termination": v.delete_on_termination,
        "tags": tags(&v.tags),
    })
}

/// GET /api/instances: every instance of the account.
async fn instances(State(web): Shared, headers: HeaderMap) -> Result<Json<Value>, WebError> {
    let account = web.caller(&headers)?;
    let page = web
        .cloud
        .describe_instances(&account, &DescribeInstances::default())?;
    Ok(Json(json!({
        "instances": page.items.iter().map(|v| summary(&web, v)).collect::<Vec<_>>(),
    })))
}

/// GET /api/instances/{id}: one instance, in full.
async fn instance(
    State(web): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, WebError> {
    let account = web.caller(&headers)?;
    let page = web.cloud.describe_instances(
        &account,
        &DescribeInstances {
            instance_ids: vec![id],
            ..Default::default()
        },
    )?;
    match page.items.first() {
        Some(v) => Ok(Json(detail(&web, v))),
        None => Err(WebError::Bad("no such instance".into())),
    }
}

#[derive(Deserialize, Default)]
struct ActBody {
    #[serde(default)]
    force: bool,
}

fn change(c: &Change) -> Value {
    json!({
        "instance_id": c.id,
        "previous_state": c.previous.name(),
        "current_state": c.current.name(),
    })
}

/// POST /api/instances/{id}/{start|stop|reboot|terminate} (a JSON body; `{"force": true}`
/// forces a stop). Only JSON is taken, so that no cross-site form can post here.
async fn act(
    State(web): Shared,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<ActBody>>,
) -> Result<Json<Value>, WebError> {
    let account = web.caller(&headers)?;
    let force = body.map(|b| b.0.force).unwrap_or_default();
    let ids = [id];
    let cloud = &web.cloud;
    let changes = match action.as_str() {
        "start" => cloud.start_instances(&account, &ids)?,
        "stop" => cloud.stop_instances(&account, &ids, force)?,
        "terminate" => cloud.terminate_instances(&account, &ids)?,
        "reboot" => {
            cloud.reboot_instances(&account, &ids)?;
            return Ok(Json(json!({ "instance_id": ids[0], "rebooting": true })));
        }
        other => {
            return Err(WebError::Bad(format!(
                "unknown action {:?}: use start, stop, reboot or terminate",
                other.chars().take(32).collect::<String>()
            )))
        }
    };
    tracing::info!(instance = %ids[0], action = %action, "web view action");
    Ok(Json(json!({
        "changes": changes.iter().map(change).collect::<Vec<_>>(),
    })))
}

/// GET /api/volumes: the account's volumes.
async fn volumes(State(web): Shared, headers: HeaderMap) -> Result<Json<Value>, WebError> {
    let account = web.caller(&headers)?;
    let page = web
        .cloud
        .describe_volumes(&account, &DescribeVolumes::default())?;
    Ok(Json(json!({
        "volumes": page.items.iter().map(volume).collect::<Vec<_>>(),
    })))
}

/// GET /api/addresses: the account's Elastic IPs.
async fn addresses(State(web): Shared, headers: HeaderMap) -> Result<Json<Value>, WebError> {
    let account = web.caller(&headers)?;
    let all = web.cloud.describe_addresses(&account, &[], &[], &[])?;
    Ok(Json(json!({
        "addresses": all.iter().map(|e| json!({
            "public_ip": e.public_ip,
            "allocation_id": e.allocation_id,
            "association_id": e.association_id,
            "instance_id": e.instance_id,
            "network_interface_id": e.eni_id,
            "private_ip": e.private_ip,
            "tags": tags(&e.tags),
        })).collect::<Vec<_>>(),
    })))
}
