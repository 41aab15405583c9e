//! Keeps this host's reservations in etcd in step with its own database, which stays the
//! truth: a terminated instance's claim is removed, a live instance without one (etcd lost
//! its data, or the key was removed by hand) gets it back, and a claim another host made
//! for a launch that never arrived is dropped once it is old enough not to be in flight.
//! This host's keys in the index of volumes and snapshots (`owners`) are kept the same way:
//! one made or deleted while etcd was away (or a snapshot CreateImage made) is put or
//! removed within seconds of etcd answering. So are the route records of its terminated
//! instances (`owners/<host>/i-…`): a terminated instance gives its capacity back at once
//! but stays reachable from every host until this host forgets it.

use std::sync::Arc;
use std::time::Duration;

use super::owners;
use super::placement::Reservation;
use crate::cloud::Cloud;
use crate::lifecycle::State;

/// How often the claims are checked.
const EVERY: Duration = Duration::from_secs(3);
/// How old a claim with no instance behind it must be before it is dropped (a forwarded
/// launch between its reservation and its insert is younger than this).
const STALE_MS: i64 = 120_000;

/// What to do with the claims of one host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repair {
    /// Claims to put back.
    pub put: Vec<Reservation>,
    /// Instance IDs whose claims go.
    pub drop: Vec<String>,
}

/// Compares the claims in etcd with the host's live instances (`live`: those not
/// terminated, as claims would be written for them) and its terminated ones.
pub fn repair(
    claims: &std::collections::BTreeMap<String, Reservation>,
    live: &[Reservation],
    terminated: &[String],
    now_ms: i64,
) -> Repair {
    let mut out = Repair::default();
    for r in live {
        if !claims.contains_key(&r.instance_id) {
            out.put.push(r.clone());
        }
    }
    for (id, c) in claims {
        let is_live = live.iter().any(|r| &r.instance_id == id);
        if terminated.contains(id) || (!is_live && now_ms - c.reserved_at_ms > STALE_MS) {
            out.drop.push(id.clone());
        }
    }
    out
}

/// Runs the reconciler for as long as the daemon runs.
pub async fn run(cloud: Arc<Cloud>) {
    let Some(region) = cloud.cluster.clone() else {
        return;
    };
    loop {
        tokio::time::sleep(EVERY).await;
        let claims = match region.reservations_of(region.host()).await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let (live, terminated) = match cloud.region_claims(region.host()) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e.message, "cannot list this host's instances for the region");
                continue;
            }
        };
        let ids: Vec<String> = terminated.iter().map(|(id, _)| id.clone()).collect();
        let fix = repair(&claims, &live, &ids, crate::db::now_ms());
        for r in &fix.put {
            if region.put_reservation(r).await.is_err() {
                break;
            }
        }
        // A terminated instance keeps a route record (`owners/<host>/<id>`) for as long as
        // this host lists it, so that the other hosts still send calls about it here; it is
        // written before its claim goes, so that no moment has neither.
        let routed = repair_owners(&region, "i-", || Ok(terminated)).await;
        if routed && !fix.drop.is_empty() {
            region.release(region.host(), &fix.drop).await;
        }
        repair_owners(&region, "vol-", || cloud.held_volumes()).await;
        repair_owners(&region, "snap-", || cloud.held_snapshots()).await;
        repair_owners(&region, "eni-", || cloud.held_interfaces()).await;
        region.repair_uses(|| cloud.held_uses()).await;
        region
            .repair_ip_claims(|| {
                let mut held = cloud.held_ips()?;
                held.extend(cloud.held_public_ips()?);
                Ok(held)
            })
            .await;
        if let Some(u) = &cloud.cfg.uplink {
            region
                .repair_quota_slots(super::quota::ADDRESS, u.eip_quota, || {
                    cloud.held_allocations()
                })
                .await;
        }
        region.repair_members(|| cloud.held_members()).await;
        if region.refresh_remote_members().await {
            // A source group's members came or went on another host.
            if let Err(e) = cloud.apply_firewall().await {
                tracing::warn!(error = %e.message, "cannot apply the other hosts' group members");
            }
        }
        // Every host that has an AMI's files is one a launch elsewhere may pull them from.
        repair_owners(&region, "ami-", || cloud.held_images()).await;
    }
}

/// Brings this host's keys of IDs starting with `prefix` in the region's index in step with
/// its database (`held`): the keys are read first, then the database (see
/// [`owners::repair`]). Whether the index is in step now.
async fn repair_owners(
    region: &super::Region,
    prefix: &str,
    held: impl FnOnce() -> crate::error::ApiResult<Vec<(String, String)>>,
) -> bool {
    let Ok(indexed) = region.owned_here(prefix).await else {
        return false;
    };
    let held = match held() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot list this host's {prefix} resources for the region");
            return false;
        }
    };
    let fix = owners::repair(&indexed, &held);
    for (id, account) in &fix.put {
        if region.put_owner(id, account).await.is_err() {
            return false;
        }
    }
    for id in &fix.drop {
        if region.drop_owner(id).await.is_err() {
            return false;
        }
    }
    true
}

/// Whether an instance in `state` holds capacity on its host.
pub fn holds_capacity(state: State) -> bool {
    state != State::Terminated
}

#[cfg(test)]
mod tests {
    use super::super::config::Capacity;
    use super::*;

    fn claim(id: &str, at: i64) -> Reservation {
        Reservation {
            instance_id: id.into(),
            host: "a".into(),
            account: "1".into(),
            instance_type: "t3.micro".into(),
            use_: Capacity {
                vcpus: 2,
                memory_mib: 1024,
            },
            az: "z".into(),
            group: String::new(),
            rack: String::new(),
            partition: 0,
            reserved_at_ms: at,
        }
    }

    #[test]
    fn claims_follow_the_database() {
        let claims = [
            ("i-live", claim("i-live", 0)),
            ("i-gone", claim("i-gone", 0)),
            ("i-inflight", claim("i-inflight", 1_000_000)),
            ("i-stale", claim("i-stale", 0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let live = [claim("i-live", 5), claim("i-lost", 5)];
        let fix = repair(&claims, &live, &["i-gone".into()], 1_000_500);
        assert_eq!(fix.put, vec![claim("i-lost", 5)]);
        assert_eq!(fix.drop, ["i-gone", "i-stale"]);
    }
}
