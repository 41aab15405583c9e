//! The region's hosts as the domain sees them (config `cluster`): where a launch goes
//! (reserved in etcd before anything is created), what each host's instances claim, and
//! DescribeHosts. Without a `cluster` config none of this runs: the host places locally.

use crate::catalog;
use crate::cloud::compute::launch::RunRequest;
use crate::cloud::placement::scheduler::Slot;
use crate::cloud::Cloud;
use crate::cluster::config::Capacity;
use crate::cluster::membership::HostState;
use crate::cluster::placement::{self as rp, Demand, Reservation, TokenRecord};
use crate::db::instances::Instance;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::ids::{self, Kind};

/// How many times a launch re-reads the region when another launch took capacity first.
const RESERVE_TRIES: usize = 8;

/// The instances a launch puts on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The host.
    pub host: String,
    /// Its API endpoint.
    pub api: String,
    /// The instances' IDs, reserved.
    pub ids: Vec<String>,
    /// Their racks and partitions (empty outside groups).
    pub slots: Vec<Slot>,
    /// The AZ placement counted them in (empty: the launch's own choice).
    pub az: String,
}

/// Where a launch goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Its shares, one per host, reserved.
    Shares(Vec<Share>),
    /// An earlier launch recorded its client token: this one answers that launch.
    Earlier(TokenRecord),
    /// A dry run: the region has room for it (nothing was reserved).
    Checked,
}

/// One host for DescribeHosts.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: HostState,
    /// What it offers.
    pub capacity: Capacity,
    /// What is left.
    pub available: Capacity,
    /// Its racks.
    pub racks: Vec<String>,
    /// Its instances: ID, type, owner.
    pub instances: Vec<(String, String, String)>,
    /// Its underlay address.
    pub underlay: String,
    /// Its API endpoint.
    pub api: String,
    /// When its daemon started.
    pub started_at: i64,
}

/// What [`Cloud::region_claims`] finds: the live instances' claims, and the `(ID, account)`
/// of the terminated ones.
pub type RegionClaims = (Vec<Reservation>, Vec<(String, String)>);

impl Cloud {
    /// This host's name in the region, or empty without a `cluster` config.
    pub fn host_id(&self) -> &str {
        self.cluster.as_ref().map_or("", |r| r.host())
    }

    /// The claim an instance of this host makes on it.
    fn claim_of(&self, host: &str, i: &Instance) -> ApiResult<Reservation> {
        let group = if i.placement_group.is_empty() {
            String::new()
        } else {
            match self.db.placement_group(&i.placement_group)? {
                Some(g) => format!("{}/{}", g.owner, g.name),
                None => String::new(),
            }
        };
        Ok(Reservation {
            instance_id: i.id.clone(),
            host: host.to_string(),
            account: i.owner.clone(),
            instance_type: i.instance_type.clone(),
            use_: Capacity {
                vcpus: u32::from(i.vcpus),
                memory_mib: u64::from(i.memory_mib),
            },
            az: i.az.clone(),
            group,
            rack: i.rack.clone(),
            partition: i.partition_number,
            reserved_at_ms: crate::db::now_ms(),
        })
    }

    /// The claims this host's live instances make, and the `(ID, account)` of its
    /// terminated ones (which keep a route record, not a claim, while this host lists them).
    pub fn region_claims(&self, host: &str) -> ApiResult<RegionClaims> {
        let mut live = Vec::new();
        let mut terminated = Vec::new();
        for i in self.db.instances(None)? {
            if crate::cluster::reconcile::holds_capacity(i.state) {
                live.push(self.claim_of(host, &i)?);
            } else {
                terminated.push((i.id, i.owner));
            }
        }
        Ok((live, terminated))
    }

    /// Places a RunInstances in the region and reserves the capacity: which hosts get how
    /// many instances, with their IDs; the hosts in `exclude` (found unreachable by this
    /// launch) get none. A non-empty `token` (the client token, on a launch's first
    /// placement) is recorded with the reservations, or names the earlier launch that
    /// recorded it. A dry run is planned and not reserved. `None` without a `cluster`
    /// config.
    pub async fn place_in_region(
        &self,
        account: &str,
        req: &RunRequest,
        exclude: &[String],
        token: &str,
    ) -> ApiResult<Option<Placed>> {
        let Some(region) = self.cluster.clone() else {
            return Ok(None);
        };
        let req = match &req.launch_template {
            Some(t) => self.apply_launch_template(account, t, req.clone())?,
            None => req.clone(),
        };
        let (min, max) = match (req.min_count, req.max_count) {
            (0, 0) => (1, 1),
            (0, m) => (1, m),
            (m, 0) => (m, m),
            (a, b) => (a, b),
        };
        if min < 1 || max < min || max > super::super::compute::launch::MAX_COUNT {
            // The local launch words the refusal.
            return Ok(Some(Placed::Shares(vec![Share {
                host: region.host().to_string(),
                api: region.cfg.api.clone(),
                ids: Vec::new(),
                slots: Vec::new(),
                az: String::new(),
            }])));
        }
        let itype = catalog::lookup(if req.instance_type.is_empty() {
            "t3.micro"
        } else {
            &req.instance_type
        })?;
        let group = if req.group_name.is_empty() {
            None
        } else {
            Some(self.placement_group_named(account, &req.group_name)?)
        };
        let az = if req.availability_zone.is_empty() && req.subnet_id.is_empty() {
            // A cluster group's next instance goes where the others are: the region's
            // reservations tell, below. Otherwise the default subnet's AZ.
            String::new()
        } else {
            self.launch_subnet(account, &req.subnet_id, &req.availability_zone)?
                .az
        };
        let each = Capacity {
            vcpus: u32::from(itype.vcpus),
            memory_mib: u64::from(itype.memory_mib),
        };
        let key = group.as_ref().map(|g| format!("{account}/{}", g.name));
        let token_key = (!token.is_empty()).then(|| rp::token_key(account, token));
        for _ in 0..RESERVE_TRIES {
            if let Some(k) = &token_key {
                if let Some(earlier) = region.token(k).await.map_err(|e| region.cut_off(&e))? {
                    return Ok(Some(Placed::Earlier(earlier)));
                }
            }
            let mut snap = region.snapshot().await.map_err(|e| region.cut_off(&e))?;
            snap.hosts.retain(|name, _| !exclude.contains(name));
            let az = if !az.is_empty() {
                az.clone()
            } else {
                let grouped = key.as_ref().and_then(|k| {
                    snap.reservations
                        .iter()
                        .find(|r| &r.group == k)
                        .map(|r| r.az.clone())
                });
                match grouped {
                    Some(z) => z,
                    None => self.launch_subnet(account, "", "")?.az,
                }
            };
            let demand = Demand {
                each,
                min: min as usize,
                max: max as usize,
                az: &az,
                group: group
                    .as_ref()
                    .zip(key.clone())
                    .map(|(g, k)| (crate::cloud::placement::groups::view(g), k)),
                partition: req.partition_number,
            };
            let placed = rp::plan(&snap, &demand, region.host())?;
            if req.dry_run {
                return Ok(Some(Placed::Checked));
            }
            let claims: Vec<Reservation> = placed
                .iter()
                .map(|p| Reservation {
                    instance_id: ids::new_id(Kind::Instance),
                    host: p.host.clone(),
                    account: account.to_string(),
                    instance_type: itype.name.clone(),
                    use_: each,
                    az: az.clone(),
                    group: key.clone().unwrap_or_default(),
                    rack: p.slot.rack.clone(),
                    partition: p.slot.partition,
                    reserved_at_ms: crate::db::now_ms(),
                })
                .collect();
            let record = TokenRecord {
                instance_ids: claims.iter().map(|c| c.instance_id.clone()).collect(),
                reservation_id: String::new(),
                reserved_at_ms: crate::db::now_ms(),
            };
            if !region
                .reserve(&snap, &claims, token_key.as_deref().map(|k| (k, &record)))
                .await
                .map_err(|e| region.cut_off(&e))?
            {
                continue;
            }
            let mut shares: Vec<Share> = Vec::new();
            for (c, p) in claims.iter().zip(&placed) {
                if let Some(s) = shares.iter_mut().find(|s| s.host == c.host) {
                    s.ids.push(c.instance_id.clone());
                    s.slots.push(p.slot.clone());
                    continue;
                }
                let api = snap
                    .hosts
                    .get(&c.host)
                    .map(|h| h.record.api.clone())
                    .unwrap_or_default();
                shares.push(Share {
                    host: c.host.clone(),
                    api,
                    ids: vec![c.instance_id.clone()],
                    slots: vec![p.slot.clone()],
                    az: c.az.clone(),
                });
            }
            return Ok(Some(Placed::Shares(shares)));
        }
        Err(ApiError::new(
            ErrorCode::InsufficientInstanceCapacity,
            "Other launches kept taking the region's capacity first; try again.",
        ))
    }

    /// DescribeHosts: the region's hosts (`ids` empty: all). Instances are from the
    /// region's reservations; capacity used is theirs.
    pub async fn describe_hosts(&self, ids: &[String]) -> ApiResult<Vec<HostInfo>> {
        let Some(region) = self.cluster.clone() else {
            return Ok(Vec::new());
        };
        let snap = match region.snapshot().await {
            Ok(s) => s,
            Err(e) => return Err(region.cut_off(&e)),
        };
        let mut out = Vec::new();
        for (name, h) in &snap.hosts {
            if !ids.is_empty() && !ids.contains(name) {
                continue;
            }
            let mut instances: Vec<(String, String, String)> = snap
                .reservations
                .iter()
                .filter(|r| &r.host == name)
                .map(|r| {
                    (
                        r.instance_id.clone(),
                        r.instance_type.clone(),
                        r.account.clone(),
                    )
                })
                .collect();
            instances.sort();
            out.push(HostInfo {
                name: name.clone(),
                state: h.state(),
                capacity: h.record.capacity,
                available: snap.free(name),
                racks: h.record.racks.clone(),
                instances,
                underlay: h.record.underlay.clone(),
                api: h.record.api.clone(),
                started_at: h.record.started_at,
            });
        }
        if let Some(missing) = ids.iter().find(|i| !snap.hosts.contains_key(*i)) {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                format!(
                    "The host ID '{}' is not a host of this region.",
                    missing.chars().take(64).collect::<String>()
                ),
            ));
        }
        Ok(out)
    }
}
