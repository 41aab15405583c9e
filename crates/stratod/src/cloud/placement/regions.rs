//! DescribeRegions and DescribeAvailabilityZones: the daemon's own region and zones from its
//! config (`region`, `availability_zones`) and its peers' regions (`peers`), each with the
//! endpoint its daemon answers on. Regions are isolated, as in EC2: nothing is proxied.

use crate::cloud::filters::{self, Filter};
use crate::config::{Config, Listen};
use crate::error::{ApiError, ApiResult};

/// Filter names of DescribeRegions.
pub const REGION_FILTERS: &[&str] = &["region-name", "endpoint", "opt-in-status"];
/// Filter names of DescribeAvailabilityZones.
pub const ZONE_FILTERS: &[&str] = &[
    "zone-name",
    "zone-id",
    "region-name",
    "state",
    "zone-type",
    "group-name",
];

/// A region and where its daemon answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Name.
    pub name: String,
    /// Endpoint.
    pub endpoint: String,
}

/// An availability zone of this daemon's region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Name, e.g. `home-1a`.
    pub name: String,
    /// `<region>-az<N>`.
    pub id: String,
    /// The region.
    pub region: String,
}

/// Where this daemon answers: its first TCP listener, else its first Unix socket.
pub fn own_endpoint(cfg: &Config) -> String {
    let tcp = cfg.listen.iter().find_map(|l| match l {
        Listen::Tcp(a) => Some(format!("https://{a}")),
        Listen::TcpPlain(a) => Some(format!("http://{a}")),
        Listen::Unix(_) => None,
    });
    tcp.or_else(|| {
        cfg.listen.iter().find_map(|l| match l {
            Listen::Unix(p) => Some(format!("unix:{}", p.display())),
            Listen::Tcp(_) | Listen::TcpPlain(_) => None,
        })
    })
    .unwrap_or_default()
}

/// Every known region: this one first, then the peers by name.
pub fn all_regions(cfg: &Config) -> Vec<Region> {
    std::iter::once(Region {
        name: cfg.region.clone(),
        endpoint: own_endpoint(cfg),
    })
    .chain(cfg.peers.iter().map(|(name, endpoint)| Region {
        name: name.clone(),
        endpoint: endpoint.clone(),
    }))
    .collect()
}

/// This region's zones, with IDs in configuration order.
pub fn all_zones(cfg: &Config) -> Vec<Zone> {
    cfg.availability_zones
        .iter()
        .enumerate()
        .map(|(k, name)| Zone {
            name: name.clone(),
            id: format!("{}-az{}", cfg.region, k + 1),
            region: cfg.region.clone(),
        })
        .collect()
}

/// DescribeRegions.
pub fn describe_regions(cfg: &Config, names: &[String], f: &[Filter]) -> ApiResult<Vec<Region>> {
    filters::check_names(f, REGION_FILTERS)?;
    let all = all_regions(cfg);
    if let Some(n) = names.iter().find(|n| !all.iter().any(|r| &r.name == *n)) {
        return Err(ApiError::invalid(format!(
            "Invalid region: {}",
            n.chars().take(64).collect::<String>()
        )));
    }
    let mut out = Vec::new();
    for r in all {
        if !names.is_empty() && !names.contains(&r.name) {
            continue;
        }
        let ok = filters::matches(f, |name| match name {
            "region-name" => Some(vec![r.name.clone()]),
            "endpoint" => Some(vec![r.endpoint.clone()]),
            "opt-in-status" => Some(vec!["opt-in-not-required".into()]),
            _ => None,
        })?;
        if ok {
            out.push(r);
        }
    }
    Ok(out)
}

/// DescribeAvailabilityZones.
pub fn describe_zones(
    cfg: &Config,
    names: &[String],
    zone_ids: &[String],
    f: &[Filter],
) -> ApiResult<Vec<Zone>> {
    filters::check_names(f, ZONE_FILTERS)?;
    let all = all_zones(cfg);
    if let Some(n) = names.iter().find(|n| !all.iter().any(|z| &z.name == *n)) {
        return Err(ApiError::invalid(format!(
            "Invalid availability zone: [{}]",
            n.chars().take(64).collect::<String>()
        )));
    }
    if let Some(n) = zone_ids.iter().find(|n| !all.iter().any(|z| &z.id == *n)) {
        return Err(ApiError::invalid(format!(
            "Invalid availability zone ID: [{}]",
            n.chars().take(64).collect::<String>()
        )));
    }
    let mut out = Vec::new();
    for z in all {
        if (!names.is_empty() || !zone_ids.is_empty())
            && !names.contains(&z.name)
            && !zone_ids.contains(&z.id)
        {
            continue;
        }
        let ok = filters::matches(f, |name| {
            let one = |s: &str| Some(vec![s.to_string()]);
            match name {
                "zone-name" => one(&z.name),
                "zone-id" => one(&z.id),
                "region-name" | "group-name" => one(&z.region),
                "state" => one("available"),
                "zone-type" => one("availability-zone"),
                _ => None,
            }
        })?;
        if ok {
            out.push(z);
        }
    }
    Ok(out)
}

impl crate::cloud::Cloud {
    /// The region this daemon serves.
    pub fn region(&self) -> &str {
        &self.cfg.region
    }

    /// DescribeRegions.
    pub fn describe_regions(&self, names: &[String], f: &[Filter]) -> ApiResult<Vec<Region>> {
        describe_regions(&self.cfg, names, f)
    }

    /// DescribeAvailabilityZones.
    pub fn describe_availability_zones(
        &self,
        names: &[String],
        zone_ids: &[String],
        f: &[Filter],
    ) -> ApiResult<Vec<Zone>> {
        describe_zones(&self.cfg, names, zone_ids, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(listen: &[&str]) -> Config {
        let listen: Vec<String> = listen.iter().map(|s| s.to_string()).collect();
        let mut c = Config::build(None, Some("/tmp/strato-x".into()), &listen, None).unwrap();
        c.peers
            .insert("away-1".into(), "http://10.0.0.2:7000".into());
        c
    }

    fn filter(name: &str, values: &[&str]) -> Filter {
        Filter {
            name: name.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn regions_are_this_one_and_the_peers() {
        let c = cfg(&["unix:/run/s.sock", "tcp:127.0.0.1:7000"]);
        let all = describe_regions(&c, &[], &[]).unwrap();
        assert_eq!(
            all,
            [
                Region {
                    name: "home-1".into(),
                    endpoint: "https://127.0.0.1:7000".into()
                },
                Region {
                    name: "away-1".into(),
                    endpoint: "http://10.0.0.2:7000".into()
                }
            ]
        );
        assert_eq!(own_endpoint(&cfg(&[])), "unix:/tmp/strato-x/stratod.sock");
        let one = describe_regions(&c, &["away-1".into()], &[]).unwrap();
        assert_eq!(one.len(), 1);
        let f = describe_regions(&c, &[], &[filter("region-name", &["home-*"])]).unwrap();
        assert_eq!(f[0].name, "home-1");
        assert_eq!(f.len(), 1);
        let e = describe_regions(&c, &["mars-1".into()], &[]).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(describe_regions(&c, &[], &[filter("colour", &["x"])]).is_err());
    }

    #[test]
    fn zones_have_ids_in_config_order() {
        let c = cfg(&[]);
        let z = describe_zones(&c, &[], &[], &[]).unwrap();
        assert_eq!(
            z.iter()
                .map(|z| (z.name.as_str(), z.id.as_str()))
                .collect::<Vec<_>>(),
            [
                ("home-1a", "home-1-az1"),
                ("home-1b", "home-1-az2"),
                ("home-1c", "home-1-az3")
            ]
        );
        let by_id = describe_zones(&c, &[], &["home-1-az2".into()], &[]).unwrap();
        assert_eq!(by_id[0].name, "home-1b");
        let f = describe_zones(&c, &[], &[], &[filter("zone-name", &["home-1c"])]).unwrap();
        assert_eq!(f.len(), 1);
        assert!(describe_zones(&c, &["home-1z".into()], &[], &[]).is_err());
        assert!(describe_zones(&c, &[], &["home-1-az9".into()], &[]).is_err());
    }
}
