//! Membership: each host's record under `hosts/<name>` bound to a lease it keeps alive, a
//! permanent copy under `members/<name>` (so that a host that died before another started
//! is still known to it), and every host's view of the others from a watch on the prefix.
//!
//! A host whose leased key is gone is not believed dead on etcd's word alone: a new etcd
//! leader resets leases and a slow etcd lets live hosts lapse (CLUSTER-NOTES.md), so it is
//! probed directly (a TCP connect to its API). Answering: `under-assessment`; silent too:
//! `unavailable`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::Capacity;

/// Key prefix of the leased records.
pub const HOSTS: &str = "hosts/";
/// Key prefix of the permanent records.
pub const MEMBERS: &str = "members/";
/// How long a direct probe of a host's API may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a host publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// Its name (`HostId`).
    pub name: String,
    /// Its underlay address.
    pub underlay: String,
    /// The API endpoint the other hosts call.
    pub api: String,
    /// What it offers.
    pub capacity: Capacity,
    /// Its racks.
    pub racks: Vec<String>,
    /// When its daemon started (Unix seconds).
    pub started_at: i64,
}

/// A host's state, with DescribeHosts' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Its lease is held.
    Available,
    /// Its lease lapsed but it answers a probe (or this host cannot reach etcd to tell).
    UnderAssessment,
    /// Its lease lapsed and it does not answer.
    Unavailable,
}

impl HostState {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            HostState::Available => "available",
            HostState::UnderAssessment => "under-assessment",
            HostState::Unavailable => "unavailable",
        }
    }
}

/// One host as this host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// Its record.
    pub record: HostRecord,
    /// Whether its leased key is present.
    pub leased: bool,
    /// The last direct probe's answer (none: not probed since its lease lapsed).
    pub probe_ok: Option<bool>,
}

impl HostView {
    /// Its state by the rules above.
    pub fn state(&self) -> HostState {
        match (self.leased, self.probe_ok) {
            (true, _) => HostState::Available,
            (false, Some(false)) => HostState::Unavailable,
            (false, _) => HostState::UnderAssessment,
        }
    }
}

/// Builds the hosts' views from the listed `members/` and `hosts/` records, keeping the
/// probe results of `old` for hosts that are still unleased. Records that do not decode
/// are skipped (logged): one bad key must not hide the region.
pub fn merge(
    old: &BTreeMap<String, HostView>,
    members: &[super::etcd::Entry],
    hosts: &[super::etcd::Entry],
) -> BTreeMap<String, HostView> {
    let decode = |e: &super::etcd::Entry| match serde_json::from_slice::<HostRecord>(&e.value) {
        Ok(r) => Some(r),
        Err(err) => {
            tracing::warn!(key = %e.key, error = %err, "skipping a host record that does not decode");
            None
        }
    };
    let mut out = BTreeMap::new();
    for r in members.iter().filter_map(decode) {
        let probe_ok = old.get(&r.name).and_then(|v| v.probe_ok);
        out.insert(
            r.name.clone(),
            HostView {
                record: r,
                leased: false,
                probe_ok,
            },
        );
    }
    for r in hosts.iter().filter_map(decode) {
        out.insert(
            r.name.clone(),
            HostView {
                record: r,
                leased: true,
                probe_ok: None,
            },
        );
    }
    out
}

/// `host:port` of an `http(s)://host:port[/…]` endpoint.
pub fn authority(endpoint: &str) -> Option<&str> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

/// Whether a host's API accepts a TCP connection within [`PROBE_TIMEOUT`].
pub async fn probe(endpoint: &str) -> bool {
    let Some(addr) = authority(endpoint) else {
        return false;
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::super::etcd::Entry;
    use super::*;

    fn entry(name: &str) -> Entry {
        let r = HostRecord {
            name: name.into(),
            underlay: "10.0.0.1".into(),
            api: "https://10.0.0.1:7443".into(),
            capacity: Capacity {
                vcpus: 4,
                memory_mib: 4096,
            },
            racks: vec![name.into()],
            started_at: 1,
        };
        Entry {
            key: format!("x/{name}"),
            value: serde_json::to_vec(&r).unwrap(),
            mod_revision: 1,
        }
    }

    #[test]
    fn states_follow_lease_then_probe() {
        let members = [entry("a"), entry("b"), entry("c")];
        let mut bad = entry("d");
        bad.value = b"{".to_vec();
        let v = merge(&BTreeMap::new(), &members, &[entry("a"), bad]);
        assert_eq!(v.len(), 3);
        assert_eq!(v["a"].state(), HostState::Available);
        // Not probed yet: under assessment, not unavailable on etcd's word alone.
        assert_eq!(v["b"].state(), HostState::UnderAssessment);
        let mut v2 = v.clone();
        v2.get_mut("b").unwrap().probe_ok = Some(false);
        v2.get_mut("c").unwrap().probe_ok = Some(true);
        let v3 = merge(&v2, &members, &[entry("a")]);
        assert_eq!(v3["b"].state(), HostState::Unavailable);
        assert_eq!(v3["c"].state(), HostState::UnderAssessment);
        // Back with a lease: available again, the old probe forgotten.
        let v4 = merge(&v3, &members, &[entry("a"), entry("b")]);
        assert_eq!(v4["b"].state(), HostState::Available);
        assert_eq!(v4["b"].probe_ok, None);
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("https://10.0.0.1:7443"), Some("10.0.0.1:7443"));
        assert_eq!(authority("http://[::1]:80/x"), Some("[::1]:80"));
        assert_eq!(authority("10.0.0.1:7443"), None);
        assert_eq!(authority("https://"), None);
    }
}
