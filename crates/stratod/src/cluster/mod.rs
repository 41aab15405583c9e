//! A region of several hosts (config `cluster`). Each host's SQLite stays the truth for what
//! runs on it; etcd holds what the hosts share: membership (`membership`), capacity
//! reservations for placement (`placement`), the index of volumes to their hosts
//! (`owners`), and the region-scoped resources (`shared`), which each host mirrors into its
//! database (`mirror`). Calls that must run on another host are forwarded to it over the hosts' TLS
//! links (`forward`; instances in `route`, volumes in `volumes`).
//!
//! What a host does when etcd is away: its VMs keep running and its own instances keep
//! answering; region-wide changes (RunInstances, which must reserve capacity) are refused
//! with `Unavailable` until etcd answers again. Nothing else waits on etcd.

pub mod addresses;
pub mod checks;
pub mod config;
pub mod default_vpc;
pub mod etcd;
pub mod fanout;
pub mod forward;
pub mod images;
pub mod interfaces;
pub mod members;
pub mod membership;
pub mod mirror;
pub mod network;
pub mod owners;
pub mod placement;
pub mod quota;
pub mod reconcile;
pub mod regional;
pub mod route;
pub mod run;
pub mod shared;
pub mod tags;
pub mod templates;
pub mod volume_moves;
pub mod volumes;

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use self::config::ClusterConfig;
use self::etcd::{Etcd, EtcdError};
use self::membership::{HostRecord, HostView, HOSTS, MEMBERS};
use self::placement::{Reservation, Snapshot, TokenRecord, GROUPREV, HOSTREV, RESERVATIONS};
use crate::error::{ApiError, ErrorCode};

/// How long the region remembers a launch's client token (EC2 keeps them for at least a
/// day); the record lives on an etcd lease of this TTL.
pub const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a host waits before trying etcd again.
const RETRY: Duration = Duration::from_secs(1);
/// How often the view is rebuilt and lapsed hosts probed even without a watch event.
const VIEW_TICK: Duration = Duration::from_secs(1);

/// This host's membership of a region.
pub struct Region {
    /// The `cluster` config.
    pub cfg: ClusterConfig,
    /// The region's name.
    pub region: String,
    /// CA certificates (PEM) trusted for the other hosts' APIs.
    pub roots: Vec<String>,
    conn: tokio::sync::Mutex<Option<Etcd>>,
    hosts: RwLock<BTreeMap<String, HostView>>,
    lease: Mutex<Option<i64>>,
    last_ok: Mutex<Option<Instant>>,
    started_at: i64,
    /// Held while this host's database and the region's shared records are compared or
    /// changed together (`mirror`), so that a pass never sees a create or delete half done.
    pub(crate) mirror_lock: tokio::sync::Mutex<()>,
    /// The other hosts' security group members, as the reconciler last read them.
    remote_members: Mutex<members::Remote>,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("host", &self.cfg.host)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Region {
    /// A member-to-be of `region`.
    pub fn new(cfg: ClusterConfig, region: String, roots: Vec<String>) -> Region {
        Region {
            cfg,
            region,
            roots,
            conn: tokio::sync::Mutex::new(None),
            hosts: RwLock::new(BTreeMap::new()),
            lease: Mutex::new(None),
            last_ok: Mutex::new(None),
            started_at: crate::db::now_s(),
            mirror_lock: tokio::sync::Mutex::new(()),
            remote_members: Mutex::new(members::Remote::new()),
        }
    }

    /// This host's name.
    pub fn host(&self) -> &str {
        &self.cfg.host
    }

    /// The connection, made if there is none.
    async fn etcd(&self) -> Result<Etcd, EtcdError> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let c = Etcd::connect(&self.cfg.etcd, &self.region).await?;
        *conn = Some(c.clone());
        Ok(c)
    }

    /// Notes an etcd answer (`Ok`) or drops the connection so that the next call makes a
    /// fresh one.
    async fn note<T>(&self, r: Result<T, EtcdError>) -> Result<T, EtcdError> {
        match &r {
            Ok(_) => *self.last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now()),
            Err(EtcdError::Unreachable { .. }) => *self.conn.lock().await = None,
            Err(_) => {}
        }
        r
    }

    /// Whether etcd answered within the lease's TTL.
    pub fn etcd_reachable(&self) -> bool {
        self.last_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() <= self.cfg.lease_ttl)
    }

    /// The hosts as last seen (this one included once it registered).
    pub fn hosts(&self) -> BTreeMap<String, HostView> {
        self.hosts.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What this host publishes.
    pub fn record(&self) -> HostRecord {
        HostRecord {
            name: self.cfg.host.clone(),
            underlay: self.cfg.underlay.to_string(),
            api: self.cfg.api.clone(),
            capacity: self.cfg.capacity,
            racks: self.cfg.racks.clone(),
            started_at: self.started_at,
        }
    }

    /// The error a region-wide change gets while etcd is away.
    pub fn cut_off(&self, e: &EtcdError) -> ApiError {
        ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "Host {} cannot reach the region's etcd ({}): region-wide changes such as \
                 placing new instances are refused until it is back. Instances on this host \
                 keep running and answer.",
                self.cfg.host,
                crate::error::chain(e)
            ),
        )
    }

    async fn register(&self) -> Result<i64, EtcdError> {
        let mut c = self.etcd().await?;
        let r = async {
            let lease = c.grant(self.cfg.lease_ttl).await?;
            let value = serde_json::to_vec(&self.record())
                .map_err(|e| EtcdError::Decode(self.cfg.host.clone(), e))?;
            c.put(&format!("{MEMBERS}{}", self.cfg.host), value.clone(), None)
                .await?;
            c.put(&format!("{HOSTS}{}", self.cfg.host), value, Some(lease))
                .await?;
            Ok(lease)
        }
        .await;
        self.note(r).await
    }

    /// Holds this host's lease for as long as the daemon runs: registers, renews a third
    /// of a TTL apart, and registers again when the lease is lost (etcd away longer than a
    /// TTL).
    pub async fn run_lease(self: std::sync::Arc<Self>) {
        let every = self.cfg.lease_ttl / 3;
        loop {
            let lease = match self.register().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(host = %self.cfg.host, error = %crate::error::chain(&e), "cannot join the region; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(lease);
            tracing::info!(host = %self.cfg.host, region = %self.region, lease, "joined the region");
            loop {
                tokio::time::sleep(every).await;
                let r = match self.etcd().await {
                    Ok(mut c) => c.renew(lease).await,
                    Err(e) => Err(e),
                };
                match self.note(r).await {
                    Ok(()) => {}
                    Err(EtcdError::LeaseLost) => {
                        tracing::warn!(host = %self.cfg.host, "membership lease expired; joining again");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::error::chain(&e), "cannot renew the membership lease")
                    }
                }
            }
        }
    }

    /// Leaves the region (daemon stop): revokes the lease, so that the others see this
    /// host go at once rather than a TTL later.
    pub async fn leave(&self) {
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(lease) = lease {
            let r = match self.etcd().await {
                Ok(mut c) => c.revoke(lease).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => tracing::info!(host = %self.cfg.host, "left the region"),
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), "cannot revoke the membership lease")
                }
            }
        }
    }

    async fn refresh(&self) -> Result<i64, EtcdError> {
        let mut c = self.etcd().await?;
        let r = async {
            let (_, members) = c.list(MEMBERS).await?;
            let (rev, hosts) = c.list(HOSTS).await?;
            Ok((rev, members, hosts))
        }
        .await;
        let (rev, members, hosts) = self.note(r).await?;
        let old = self.hosts();
        let mut view = membership::merge(&old, &members, &hosts);
        // Hosts whose lease lapsed are probed (all at once) before they are called
        // unavailable.
        let mut probes = tokio::task::JoinSet::new();
        for (name, h) in view.iter().filter(|(_, h)| !h.leased) {
            let (name, api) = (name.clone(), h.record.api.clone());
            probes.spawn(async move { (name, membership::probe(&api).await) });
        }
        while let Some(done) = probes.join_next().await {
            if let Ok((name, ok)) = done {
                if let Some(h) = view.get_mut(&name) {
                    h.probe_ok = Some(ok);
                }
            }
        }
        for (name, h) in &view {
            let before = old.get(name).map(|o| o.state());
            if before != Some(h.state()) {
                tracing::info!(host = %name, state = h.state().name(), "region host state");
            }
        }
        *self.hosts.write().unwrap_or_else(|p| p.into_inner()) = view;
        Ok(rev)
    }

    /// Keeps the view of the region's hosts: a watch on `hosts/` rebuilds it at once when
    /// one joins or leaves; a tick rebuilds it anyway (and probes lapsed hosts).
    pub async fn run_view(self: std::sync::Arc<Self>) {
        loop {
            let rev = match self.refresh().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %crate::error::chain(&e), "cannot read the region's hosts");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let stream = match self.etcd().await {
                Ok(mut c) => c.watch(HOSTS, rev + 1).await,
                Err(e) => Err(e),
            };
            let Ok(mut stream) = self.note(stream).await else {
                tokio::time::sleep(RETRY).await;
                continue;
            };
            loop {
                tokio::select! {
                    m = stream.message() => match m {
                        Ok(Some(_)) => {}
                        _ => break,
                    },
                    _ = tokio::time::sleep(VIEW_TICK) => {}
                }
                if self.refresh().await.is_err() {
                    break;
                }
            }
        }
    }

    /// What placement reads: the hosts, the revisions of the keys a launch will swap, then
    /// every reservation (in that order, so that a reservation added after the revisions
    /// were read fails the swap).
    pub async fn snapshot(&self) -> Result<Snapshot, EtcdError> {
        let mut c = self.etcd().await?;
        let r = async {
            let (_, members) = c.list(MEMBERS).await?;
            let (_, hosts) = c.list(HOSTS).await?;
            let (_, hostrevs) = c.list(HOSTREV).await?;
            let (_, grouprevs) = c.list(GROUPREV).await?;
            let (_, res) = c.list(RESERVATIONS).await?;
            Ok((members, hosts, hostrevs, grouprevs, res))
        }
        .await;
        let (members, hosts, hostrevs, grouprevs, res) = self.note(r).await?;
        // The leases as they are now, not as the view last saw them (a host that joined a
        // moment ago takes instances; one that lapsed does not), with the view's probes.
        let hosts = membership::merge(&self.hosts(), &members, &hosts);
        let mut reservations = Vec::new();
        for e in res {
            match serde_json::from_slice::<Reservation>(&e.value) {
                Ok(r) => reservations.push(r),
                Err(err) => {
                    tracing::warn!(key = %e.key, error = %err, "skipping a reservation that does not decode")
                }
            }
        }
        Ok(Snapshot {
            hosts,
            reservations,
            revisions: hostrevs
                .into_iter()
                .chain(grouprevs)
                .map(|e| (e.key, e.mod_revision))
                .collect(),
        })
    }

    /// Takes the capacity of `claims` if nothing moved since `snap`, and records the
    /// launch's client token (key and record) if no launch recorded it first; whether it
    /// did.
    pub async fn reserve(
        &self,
        snap: &Snapshot,
        claims: &[Reservation],
        token: Option<(&str, &TokenRecord)>,
    ) -> Result<bool, EtcdError> {
        let mut guards: Vec<String> = claims
            .iter()
            .map(|c| placement::host_key(&c.host))
            .chain(
                claims
                    .iter()
                    .filter(|c| !c.group.is_empty())
                    .map(|c| placement::group_key(&c.group)),
            )
            .collect();
        guards.sort();
        guards.dedup();
        let mut expect: Vec<(String, i64)> = guards
            .iter()
            .map(|k| (k.clone(), snap.revisions.get(k).copied().unwrap_or(0)))
            .collect();
        let mut puts: Vec<(String, Vec<u8>, Option<i64>)> = guards
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    crate::db::now_ms().to_string().into_bytes(),
                    None,
                )
            })
            .collect();
        for c in claims {
            let v =
                serde_json::to_vec(c).map_err(|e| EtcdError::Decode(c.instance_id.clone(), e))?;
            puts.push((placement::reservation_key(&c.host, &c.instance_id), v, None));
        }
        let mut conn = self.etcd().await?;
        if let Some((key, record)) = token {
            let v = serde_json::to_vec(record).map_err(|e| EtcdError::Decode(key.into(), e))?;
            let r = conn.grant(TOKEN_TTL).await;
            let lease = self.note(r).await?;
            // Only if no launch recorded the token first (mod revision 0: no such key).
            expect.push((key.to_string(), 0));
            puts.push((key.to_string(), v, Some(lease)));
        }
        let r = conn.swap(&expect, puts).await;
        self.note(r).await
    }

    /// The record of `account`'s client token `key` ([`placement::token_key`]), if a
    /// launch made one.
    pub async fn token(&self, key: &str) -> Result<Option<TokenRecord>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(key).await;
        let (_, entries) = self.note(r).await?;
        // A prefix read: only the key itself counts.
        Ok(entries
            .into_iter()
            .find(|e| e.key == key)
            .and_then(|e| serde_json::from_slice(&e.value).ok()))
    }

    /// Records what a launch with a client token launched, for its retries (best effort:
    /// the record made at reservation already names the launch's instances).
    pub async fn record_token(&self, key: &str, record: &TokenRecord) {
        let Ok(v) = serde_json::to_vec(record) else {
            return;
        };
        let Ok(mut c) = self.etcd().await else { return };
        let r = c.grant(TOKEN_TTL).await;
        let Ok(lease) = self.note(r).await else {
            return;
        };
        let r = c.put(key, v, Some(lease)).await;
        let _ = self.note(r).await;
    }

    /// Forgets a client token whose launch failed, so that a retry launches.
    pub async fn forget_token(&self, key: &str) {
        let Ok(mut c) = self.etcd().await else { return };
        let r = c.delete(key).await;
        let _ = self.note(r).await;
    }

    /// Gives back the capacity of instances on `host` (best effort: the reconciler of
    /// that host removes what is left).
    pub async fn release(&self, host: &str, ids: &[String]) {
        let Ok(mut c) = self.etcd().await else { return };
        for id in ids {
            let r = c.delete(&placement::reservation_key(host, id)).await;
            if self.note(r).await.is_err() {
                return;
            }
        }
    }

    /// The reservations of `host`, by instance ID.
    pub async fn reservations_of(
        &self,
        host: &str,
    ) -> Result<BTreeMap<String, Reservation>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(&format!("{RESERVATIONS}{host}/")).await;
        let (_, entries) = self.note(r).await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| serde_json::from_slice::<Reservation>(&e.value).ok())
            .map(|r| (r.instance_id.clone(), r))
            .collect())
    }

    /// The hosts that own `account`'s instances among `ids`, from their capacity
    /// reservations, and for an ID without one (a terminated instance, which holds no
    /// capacity) from its host's route record in the owner index: host → its IDs, in the
    /// order asked. An ID found in neither for `account` is left out (the caller answers
    /// for it here, NotFound for an ID that is not the account's, before anything is
    /// forwarded). One read of every reservation per call (and of the index when an ID
    /// has no reservation) is cheap at a homelab's size; an index by instance ID can
    /// replace it behind this function.
    pub async fn owners_of(
        &self,
        account: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, EtcdError> {
        let mut c = self.etcd().await?;
        let r = c.list(RESERVATIONS).await;
        let (_, entries) = self.note(r).await?;
        let mut owner: BTreeMap<String, String> = entries
            .into_iter()
            .filter_map(|e| serde_json::from_slice::<Reservation>(&e.value).ok())
            .filter(|r| r.account == account)
            .map(|r| (r.instance_id, r.host))
            .collect();
        if ids.iter().any(|id| !owner.contains_key(id)) {
            let r = c.list(owners::OWNERS).await;
            let (_, entries) = self.note(r).await?;
            for (id, host) in owners::hosts_of(&entries, account) {
                if id.starts_with("i-") {
                    owner.entry(id).or_insert(host);
                }
            }
        }
        Ok(route::by_owner(ids, &owner))
    }

    /// Puts one reservation as it is (the reconciler's repair of a lost key).
    pub async fn put_reservation(&self, r: &Reservation) -> Result<(), EtcdError> {
        let v = serde_json::to_vec(r).map_err(|e| EtcdError::Decode(r.instance_id.clone(), e))?;
        let mut c = self.etcd().await?;
        let res = c
            .put(
                &placement::reservation_key(&r.host, &r.instance_id),
                v,
                None,
            )
            .await;
        self.note(res).await
    }
}
