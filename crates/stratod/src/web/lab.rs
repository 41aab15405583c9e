//! GET /api/instances/{id}/lab: the teaching lab's views of one instance, from the lab's
//! history (sampled once a second for every viewer; this reads, it asks no monitor): exits
//! per second by reason and by device since `?since=` (Unix seconds), the latest per-vCPU
//! counters (KVM's binary statistics and the monitor's own), the guest physical memory
//! map, every virtqueue's indexes, and the boot timeline in milliseconds.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Web, WebError};

#[derive(Deserialize)]
pub(super) struct Since {
    #[serde(default)]
    since: i64,
}

/// The steps of the latest boot: the daemon's and the monitor's, in time order, in ms
/// from the request.
fn timeline(web: &Web, id: &str, lab: Option<&strato_vmm_api::control::Lab>) -> Value {
    let mut steps: Vec<(String, u64)> = web
        .cloud
        .timelines
        .of(id)
        .into_iter()
        .map(|(s, t)| (s.to_string(), t))
        .collect();
    let Some(&(_, start)) = steps.first() else {
        return json!([]);
    };
    if let Some(b) = lab.map(|l| &l.boot) {
        for (name, t) in [
            ("vm_created", b.vm_created_ns),
            ("memory_mapped", b.memory_mapped_ns),
            ("first_guest_instruction", b.first_kvm_run_ns),
            ("first_console_byte", b.first_console_byte_ns),
        ] {
            // Only this boot's: a monitor of an earlier boot has earlier marks.
            if let Some(t) = t.filter(|&t| t >= start) {
                steps.push((name.to_string(), t));
            }
        }
    }
    steps.sort_by_key(|s| s.1);
    json!(steps
        .iter()
        .map(|(s, t)| json!({ "step": s, "ms": (t - start) as f64 / 1e6 }))
        .collect::<Vec<_>>())
}

pub(super) async fn lab(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Since>,
) -> Result<Json<Value>, WebError> {
    let account = web.caller(&headers)?;
    let inst = web.cloud.owned_instance(&account, &id)?;
    let points = web.lab.points(&inst.id, q.since);
    let latest = web.lab.latest(&inst.id);
    let lab = latest.as_ref().map(|l| &l.lab);
    Ok(Json(json!({
        "instance_id": inst.id,
        "state": inst.state.name(),
        "interval_secs": crate::lab::INTERVAL.as_secs(),
        "reasons": crate::lab::REASONS.iter().map(|r| r.0).collect::<Vec<_>>(),
        "points": points.iter().map(|p| json!({
            "t": p.t,
            "exits": p.exits.iter().map(|(r, v)| (r.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "devices": p.devices.iter().map(|(d, v)| (d.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })).collect::<Vec<_>>(),
        "vcpus": latest.as_ref().map(|l| json!(l.counters.vcpus)),
        "memory_map": lab.map(|l| json!(l.memory_map)),
        "bus": lab.map(|l| json!(l.bus)),
        "virtqueues": lab.map(|l| json!(l.virtqueues)),
        "timeline": timeline(&web, &inst.id, lab),
    })))
}
