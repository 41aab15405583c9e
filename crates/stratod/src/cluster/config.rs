//! The `cluster` section of the config file: which etcd holds the region, this host's name
//! and underlay address, what it offers (capacity, racks) and how long its lease lives.
//! Without the section the daemon is a region of one host, exactly as before.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, Listen};

/// The lease TTL when the config gives none (Kubernetes-like: small, renewed often).
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;
/// etcd's smallest usable lease TTL is about 2 s (CLUSTER-NOTES.md).
pub const MIN_LEASE_TTL_SECS: u64 = 2;
/// Most racks one host may declare.
pub const MAX_HOST_RACKS: usize = 16;
/// The shortest region secret accepted: it lets one host act for any account on another.
pub const MIN_SECRET_LEN: usize = 16;

/// The section as the file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// etcd client URLs (`http://10.0.0.1:2379`, …).
    pub etcd: Vec<String>,
    /// This host's name in the region (its `HostId`).
    pub host: String,
    /// This host's address on the underlay (the network between the hosts).
    pub underlay: String,
    /// The API endpoint the other hosts call (default: `https://UNDERLAY:PORT` from the
    /// first TLS `listen` on the underlay address or a wildcard).
    pub api: Option<String>,
    /// What the host offers to instances.
    pub capacity: CapacityFile,
    /// The racks of this host (default: one, named after the host).
    pub racks: Option<Vec<String>>,
    /// The membership lease's TTL.
    pub lease_ttl_secs: Option<u64>,
    /// A secret every host of the region shares: a call forwarded by another host carries
    /// it instead of the caller's token, with the caller's account beside it.
    pub secret: String,
}

/// Capacity as the file writes it.
#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct CapacityFile {
    /// vCPUs instances may use.
    pub vcpus: u32,
    /// Memory instances may use, MiB.
    pub memory_mib: u64,
}

/// What a host offers, or what instances use of it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Capacity {
    /// vCPUs.
    pub vcpus: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
}

/// The validated section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// etcd client URLs.
    pub etcd: Vec<String>,
    /// This host's name.
    pub host: String,
    /// Its underlay address.
    pub underlay: IpAddr,
    /// The endpoint other hosts call.
    pub api: String,
    /// Its capacity.
    pub capacity: Capacity,
    /// Its racks.
    pub racks: Vec<String>,
    /// The lease TTL.
    pub lease_ttl: Duration,
    /// The region secret.
    pub secret: String,
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(format!("cluster: {}", msg.into()))
}

/// A host or rack name: 1 to 63 of `a-z`, `0-9`, `-`, `.`, `_`, not starting with `-`
/// (it becomes part of etcd keys, so no `/`).
fn check_name(what: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} {name:?} must be 1 to 63 characters of a-z, 0-9, '-', '.', '_'"
        )))
    }
}

impl ClusterFile {
    /// Validates the section; `listen` is the daemon's API listeners (for the default
    /// `api` endpoint).
    pub fn validate(self, listen: &[Listen]) -> Result<ClusterConfig, ConfigError> {
        if self.etcd.is_empty() {
            return Err(invalid("etcd: at least one endpoint (http://HOST:2379)"));
        }
        for e in &self.etcd {
            if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() < 10 {
                return Err(invalid(format!(
                    "etcd endpoint {e:?} must be a URL like http://10.0.0.1:2379"
                )));
            }
        }
        check_name("host", &self.host)?;
        let underlay: IpAddr = self.underlay.parse().map_err(|_| {
            invalid(format!(
                "underlay {:?} is not an IP address (this host's address between the hosts)",
                self.underlay
            ))
        })?;
        if underlay.is_unspecified() {
            return Err(invalid(
                "underlay must be this host's own address, not 0.0.0.0",
            ));
        }
        let api = match self.api {
            Some(a) if a.starts_with("https://") || a.starts_with("http://") => a,
            Some(a) => {
                return Err(invalid(format!(
                    "api {a:?} must be a URL like https://10.0.0.1:7443"
                )))
            }
            None => {
                let port = listen.iter().find_map(|l| match l {
                    Listen::Tcp(a) if a.ip() == underlay || a.ip().is_unspecified() => {
                        Some(a.port())
                    }
                    _ => None,
                });
                let port = port.ok_or_else(|| {
                    invalid(format!(
                        "the other hosts call this one over TLS: add a listen tcp:{underlay}:PORT (or tcp:0.0.0.0:PORT), or set cluster.api"
                    ))
                })?;
                match underlay {
                    IpAddr::V4(a) => format!("https://{a}:{port}"),
                    IpAddr::V6(a) => format!("https://[{a}]:{port}"),
                }
            }
        };
        if self.capacity.vcpus == 0 || self.capacity.vcpus > 4096 {
            return Err(invalid("capacity.vcpus must be 1 to 4096"));
        }
        if self.capacity.memory_mib < 128 || self.capacity.memory_mib > (1 << 32) {
            return Err(invalid("capacity.memory_mib must be at least 128"));
        }
        let racks = self.racks.unwrap_or_else(|| vec![self.host.clone()]);
        if racks.is_empty() || racks.len() > MAX_HOST_RACKS {
            return Err(invalid(format!(
                "racks: 1 to {MAX_HOST_RACKS} names (or none: the host is its own rack)"
            )));
        }
        for r in &racks {
            check_name("rack", r)?;
        }
        let distinct: std::collections::BTreeSet<&String> = racks.iter().collect();
        if distinct.len() != racks.len() {
            return Err(invalid("racks: each name once"));
        }
        let ttl = self.lease_ttl_secs.unwrap_or(DEFAULT_LEASE_TTL_SECS);
        if !(MIN_LEASE_TTL_SECS..=300).contains(&ttl) {
            return Err(invalid(format!(
                "lease_ttl_secs must be {MIN_LEASE_TTL_SECS} to 300 (etcd's leases are no shorter)"
            )));
        }
        if self.secret.len() < MIN_SECRET_LEN {
            return Err(invalid(format!(
                "secret: at least {MIN_SECRET_LEN} characters, the same on every host of the region"
            )));
        }
        Ok(ClusterConfig {
            etcd: self.etcd,
            host: self.host,
            underlay,
            api,
            capacity: Capacity {
                vcpus: self.capacity.vcpus,
                memory_mib: self.capacity.memory_mib,
            },
            racks,
            lease_ttl: Duration::from_secs(ttl),
            secret: self.secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str, listen: &[&str]) -> Result<ClusterConfig, ConfigError> {
        let f: ClusterFile = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let listen: Vec<Listen> = listen.iter().map(|s| s.parse().unwrap()).collect();
        f.validate(&listen)
    }

    const BASE: &str = r#"{"etcd": ["http://10.250.0.1:2379"], "host": "box-1",
        "underlay": "10.250.0.11", "capacity": {"vcpus": 8, "memory_mib": 16384},
        "secret": "0123456789abcdef"}"#;

    #[test]
    fn defaults_fill_in() {
        let c = parse(BASE, &["tcp:10.250.0.11:7443"]).unwrap();
        assert_eq!(c.host, "box-1");
        assert_eq!(c.api, "https://10.250.0.11:7443");
        assert_eq!(c.racks, ["box-1"]);
        assert_eq!(c.lease_ttl, Duration::from_secs(10));
        assert_eq!(c.capacity.vcpus, 8);
        // A wildcard listener serves the underlay too.
        let c = parse(BASE, &["tcp:0.0.0.0:9000"]).unwrap();
        assert_eq!(c.api, "https://10.250.0.11:9000");
    }

    #[test]
    fn an_api_is_needed() {
        let e = parse(BASE, &["unix:/tmp/x.sock", "tcp+plain:127.0.0.1:1"]).unwrap_err();
        assert!(e.to_string().contains("listen tcp:10.250.0.11:PORT"), "{e}");
        let with_api = BASE.replace(
            "\"secret\"",
            "\"api\": \"https://box-1.lan:7443\", \"racks\": [\"r1\", \"r2\"], \"lease_ttl_secs\": 3, \"secret\"",
        );
        let c = parse(&with_api, &[]).unwrap();
        assert_eq!(c.api, "https://box-1.lan:7443");
        assert_eq!(c.racks, ["r1", "r2"]);
        assert_eq!(c.lease_ttl, Duration::from_secs(3));
    }

    #[test]
    fn bad_values_are_named() {
        let listen = ["tcp:10.250.0.11:7443"];
        for (from, to, word) in [
            (
                "\"http://10.250.0.1:2379\"",
                "\"10.250.0.1:2379\"",
                "etcd endpoint",
            ),
            ("[\"http://10.250.0.1:2379\"]", "[]", "etcd"),
            ("\"box-1\"", "\"Box/1\"", "host"),
            ("\"10.250.0.11\"", "\"box\"", "underlay"),
            ("\"vcpus\": 8", "\"vcpus\": 0", "vcpus"),
            ("16384", "1", "memory_mib"),
            ("\"0123456789abcdef\"", "\"short\"", "secret"),
        ] {
            let json = BASE.replace(from, to);
            let e = parse(&json, &listen).unwrap_err().to_string();
            assert!(e.contains(word), "{to}: {e}");
        }
        for extra in [
            "\"racks\": [],",
            "\"racks\": [\"a\", \"a\"],",
            "\"racks\": [\"a/b\"],",
            "\"lease_ttl_secs\": 1,",
            "\"colour\": 1,",
        ] {
            let json = BASE.replace("\"secret\"", &format!("{extra} \"secret\""));
            assert!(parse(&json, &listen).is_err(), "{extra}");
        }
    }
}
