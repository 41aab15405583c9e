//! The daemon's configuration: command-line flags for the common settings and an optional
//! JSON file for the rest; flags win. Every field has an embedded default, so `stratod` with
//! no arguments is a working daemon.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {0}")]
    Read(String, #[source] std::io::Error),
    /// The config file is not valid.
    #[error("invalid config file {0}")]
    Parse(String, #[source] serde_json::Error),
    /// A `--listen` value is neither `unix:PATH`, `tcp:ADDR` nor `tcp+plain:ADDR`.
    #[error("invalid listen address {0:?}: use unix:PATH, tcp:HOST:PORT or tcp+plain:HOST:PORT")]
    Listen(String),
    /// A value is out of range.
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket, owner-only; callers speak for the admin account (or a token's).
    Unix(PathBuf),
    /// A TCP address speaking TLS; every call needs a token.
    Tcp(std::net::SocketAddr),
    /// A TCP address without TLS (`tcp+plain:`): tokens are accepted from loopback peers
    /// only, since anyone on the path could read them.
    TcpPlain(std::net::SocketAddr),
}

impl Listen {
    /// The TCP address, TLS or not.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Listen::Tcp(a) | Listen::TcpPlain(a) => Some(*a),
            Listen::Unix(_) => None,
        }
    }
}

impl std::str::FromStr for Listen {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(ConfigError::Listen(s.into()));
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp:") {
            return a
                .parse()
                .map(Listen::Tcp)
                .map_err(|_| ConfigError::Listen(s.into()));
        }
        if let Some(a) = s.strip_prefix("tcp+plain:") {
            return a
                .parse()
                .map(Listen::TcpPlain)
                .map_err(|_| ConfigError::Listen(s.into()));
        }
        Err(ConfigError::Listen(s.into()))
    }
}

/// The settings a JSON config file may hold (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Listen addresses.
    pub listen: Option<Vec<String>>,
    /// The monitor binary.
    pub vmm_binary: Option<PathBuf>,
    /// `host` or `emulated-kvm`; absent: detected.
    pub cpu_template: Option<String>,
    /// `split` or `kernel`: where every VM's interrupt controllers live; absent: the
    /// monitor's default.
    pub irqchip: Option<String>,
    /// Seconds between status checks.
    pub status_interval_secs: Option<f64>,
    /// Seconds an instance may take to answer ARP after boot before it counts as impaired.
    pub status_grace_secs: Option<f64>,
    /// Seconds a graceful stop waits for the guest.
    pub stop_timeout_secs: Option<f64>,
    /// Seconds terminated instances stay listed.
    pub terminated_retention_secs: Option<u64>,
    /// Region name.
    pub region: Option<String>,
    /// Availability zone names.
    pub availability_zones: Option<Vec<String>>,
    /// The account the Unix socket speaks for.
    pub admin_account: Option<String>,
    /// API tokens and the 12-digit account each speaks for.
    pub tokens: Option<BTreeMap<String, String>>,
    /// Bridge device of the default VPC.
    pub bridge: Option<String>,
    /// Other regions' daemons: region name → endpoint.
    pub peers: Option<BTreeMap<String, String>>,
    /// The racks (fault domains) of this host, for placement groups.
    pub racks: Option<Vec<String>>,
    /// Cap on how fast CopyImage pulls image data from another region, in MiB/s.
    pub copy_rate_mib_s: Option<f64>,
    /// Seconds a copy keeps retrying a source region that stays unreachable (no progress)
    /// before it fails.
    pub copy_give_up_secs: Option<f64>,
    /// The interface facing the outside and the public addresses behind it.
    pub uplink: Option<UplinkFile>,
    /// The EC2 Query API.
    pub ec2_api: Option<Ec2ApiFile>,
    /// Jail every monitor (default true); `false` is for development and is logged as a
    /// warning at start and on every launch.
    pub jail: Option<bool>,
    /// The uids (and the same gids) jailed monitors run as, `FIRST-LAST`; each running VM
    /// has one of its own.
    pub jail_id_range: Option<String>,
    /// The IPv6 block (a /48, or any /32 to /52) VPCs get their /56 from
    /// (AssociateVpcCidrBlock with AmazonProvidedIpv6CidrBlock); absent: none.
    pub ipv6_pool: Option<String>,
    /// TLS of the TCP listeners and of the links to peer regions.
    pub tls: Option<TlsFile>,
    /// The web view.
    pub web: Option<WebFile>,
    /// VPCs joined to other hosts' by VXLAN (provisional: the region's membership will
    /// supply the peers).
    pub overlay: Option<crate::cloud::network::overlay::OverlayFile>,
    /// A region of several hosts (`crate::cluster::config`).
    pub cluster: Option<crate::cluster::config::ClusterFile>,
}

/// The `web` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebFile {
    /// Where to serve it: one `tcp:HOST:PORT` (TLS) or `tcp+plain:HOST:PORT`, or a list.
    pub listen: OneOrMany,
}

/// The `tls` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// The server's certificate chain (PEM); with `key_file`. Absent: the daemon makes a CA
    /// and a server certificate in `<data_dir>/tls` on first start.
    pub cert_file: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// The CA certificates (PEM) trusted for peer regions' https endpoints. Absent: the
    /// daemon's own CA (when it made one) and the system's roots.
    pub ca_file: Option<PathBuf>,
    /// More DNS names or IP addresses for the certificate the daemon makes.
    pub names: Option<Vec<String>>,
}

/// TLS settings, defaults applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Server certificate chain and key; `None`: made in the data directory.
    pub cert_key: Option<(PathBuf, PathBuf)>,
    /// CA bundle for peer regions.
    pub ca_file: Option<PathBuf>,
    /// Extra names of the made certificate.
    pub names: Vec<String>,
}

/// The `ec2_api` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2ApiFile {
    /// Where to serve it: one `tcp:HOST:PORT` (or `unix:PATH`), or a list.
    pub listen: OneOrMany,
    /// Whether instances may reach it on their subnet's gateway address (the port of
    /// the TCP listener on a wildcard address), as a VPC endpoint for EC2 gives them;
    /// off by default: guests reach only DHCP, the metadata service and ping.
    #[serde(default)]
    pub vpc_endpoint: bool,
}

/// One string or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Default for OneOrMany {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

/// The uids and gids of jailed monitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First ID.
    pub first: u32,
    /// Last ID (inclusive).
    pub last: u32,
}

/// The default jail ID range: 100000 IDs above the usual system and user ranges.
pub const DEFAULT_JAIL_IDS: IdRange = IdRange {
    first: 200_000,
    last: 299_999,
};

/// Parses `FIRST-LAST`: unprivileged IDs (above 0, below 2^32 - 1, which means "none").
pub fn parse_id_range(s: &str) -> Result<IdRange, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "jail_id_range {s:?}: use FIRST-LAST, IDs from 1 to 4294967294"
        ))
    };
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let first: u32 = a.trim().parse().map_err(|_| bad())?;
    let last: u32 = b.trim().parse().map_err(|_| bad())?;
    if first == 0 || last == u32::MAX || first > last {
        return Err(bad());
    }
    Ok(IdRange { first, last })
}

/// The `uplink` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkFile {
    /// The interface facing the outside, already present in the daemon's namespace.
    pub interface: String,
    /// Public addresses: `a.b.c.d/n` or `first-last`.
    pub pool: String,
    /// Elastic IPs per account (EC2: 5 per region).
    pub eip_quota: Option<u32>,
    /// The IPv6 prefix the outside routes to this host through the uplink (`a:b:c::/n`),
    /// holding `ipv6_pool`: instances' IPv6 addresses are reached directly, no NAT.
    pub ipv6_prefix: Option<String>,
}

/// Public IPv4 addressing: the uplink interface and its address pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// The interface facing the outside.
    pub interface: String,
    /// First address of the pool.
    pub first: Ipv4Addr,
    /// Last address of the pool (inclusive).
    pub last: Ipv4Addr,
    /// Elastic IPs per account.
    pub eip_quota: u32,
    /// The IPv6 prefix routed to the host through the uplink; `None`: VPCs' IPv6 stays on
    /// the host (no IPv6 forwarding is turned on).
    pub ipv6_prefix: Option<crate::cloud::network::ipv6::Block>,
}

/// Largest public address pool (a /16): allocation scans it.
pub const MAX_POOL: u64 = 1 << 16;

impl Uplink {
    /// Whether `ip` is in the pool.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(self.first)..=u32::from(self.last)).contains(&u32::from(ip))
    }

    /// The pool's addresses, in order.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }
}

/// Parses a pool: a CIDR block (less its first and last address, as a subnet's, when it
/// has more than two) or an inclusive `first-last` range.
pub fn parse_pool(pool: &str) -> Result<(Ipv4Addr, Ipv4Addr), ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "uplink pool {pool:?}: use a.b.c.d/n or a.b.c.d-e.f.g.h, at most {MAX_POOL} addresses"
        ))
    };
    let (first, last) = if let Some((a, n)) = pool.split_once('/') {
        let a: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if n > 32 {
            return Err(bad());
        }
        let mask = u32::MAX.checked_shl(32 - n).unwrap_or(0);
        if u32::from(a) & !mask != 0 {
            return Err(bad());
        }
        let base = u32::from(a);
        let top = base | !mask;
        if n <= 30 {
            (base + 1, top - 1)
        } else {
            (base, top)
        }
    } else {
        let (a, b) = pool.split_once('-').ok_or_else(bad)?;
        let a: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let b: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
        (u32::from(a), u32::from(b))
    };
    if last < first || u64::from(last - first) + 1 > MAX_POOL {
        return Err(bad());
    }
    Ok((Ipv4Addr::from(first), Ipv4Addr::from(last)))
}

/// The daemon's settings, defaults applied.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory: database, images, volumes, instances.
    pub data_dir: PathBuf,
    /// Listen addresses.
    pub listen: Vec<Listen>,
    /// The `strato-vmm` binary.
    pub vmm_binary: PathBuf,
    /// Configured CPU template; `None`: ask the monitor.
    pub cpu_template: Option<strato_vmm_api::config::CpuTemplate>,
    /// The interrupt controllers every monitor gets.
    pub irqchip: strato_vmm_api::config::IrqchipMode,
    /// Status check interval (EC2: a minute).
    pub status_interval: Duration,
    /// Grace after boot before a silent guest counts as impaired.
    pub status_grace: Duration,
    /// How long a graceful stop waits before it forces the VM off.
    pub stop_timeout: Duration,
    /// How long terminated instances stay listed (EC2: about an hour).
    pub terminated_retention: Duration,
    /// Region.
    pub region: String,
    /// Availability zones.
    pub availability_zones: Vec<String>,
    /// The Unix socket's account.
    pub admin_account: String,
    /// Token → account.
    pub tokens: BTreeMap<String, String>,
    /// Bridge of the default VPC.
    pub bridge: String,
    /// Peer regions: region name → endpoint (listed by DescribeRegions).
    pub peers: BTreeMap<String, String>,
    /// Rack names, in order; placement groups spread instances over them.
    pub racks: Vec<String>,
    /// CopyImage bandwidth cap in bytes per second; `None`: unlimited.
    pub copy_rate: Option<f64>,
    /// How long a copy retries a source that stays unreachable before it fails.
    pub copy_give_up: Duration,
    /// Public IPv4 addressing; `None`: the host has no public addresses.
    pub uplink: Option<Uplink>,
    /// Where the EC2 Query API listens (none: it is off).
    pub ec2_api_listen: Vec<Listen>,
    /// The Query API port instances reach on their gateway (`ec2_api.vpc_endpoint`).
    pub ec2_api_vpc_endpoint: Option<u16>,
    /// Where the web view listens (none: it is off); TCP only.
    pub web_listen: Vec<Listen>,
    /// Whether monitors are jailed.
    pub jail: bool,
    /// The uids and gids of jailed monitors.
    pub jail_ids: IdRange,
    /// The block VPCs get Amazon-provided IPv6 /56s from; `None`: there are none.
    pub ipv6_pool: Option<crate::cloud::network::ipv6::Block>,
    /// TLS settings.
    pub tls: TlsConfig,
    /// The VXLAN overlay between hosts; `None`: this host is alone.
    pub overlay: Option<crate::cloud::network::overlay::OverlayConfig>,
    /// The region of hosts this one belongs to; `None`: a region of one host.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
}

/// Most racks a host may declare.
pub const MAX_RACKS: usize = 64;

/// The racks of one lab host when the config names none: seven, so that a spread group
/// reaches EC2's limit of seven instances per AZ.
pub fn default_racks() -> Vec<String> {
    (1..=7).map(|k| format!("rack-{k}")).collect()
}

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/strato";

impl Config {
    /// Builds the configuration from an optional file and flag overrides.
    pub fn build(
        file: Option<&Path>,
        data_dir: Option<PathBuf>,
        listen: &[String],
        cpu_template: Option<String>,
    ) -> Result<Config, ConfigError> {
        let f: FileConfig = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::Read(p.display().to_string(), e))?;
                serde_json::from_str(&text)
                    .map_err(|e| ConfigError::Parse(p.display().to_string(), e))?
            }
            None => FileConfig::default(),
        };
        let data_dir = data_dir
            .or(f.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let listen_strs: Vec<String> = if listen.is_empty() {
            f.listen.unwrap_or_default()
        } else {
            listen.to_vec()
        };
        let mut listen: Vec<Listen> = listen_strs
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        if listen.is_empty() {
            listen.push(Listen::Unix(data_dir.join("stratod.sock")));
        }
        let secs = |v: Option<f64>, default: f64, name: &str| -> Result<Duration, ConfigError> {
            let v = v.unwrap_or(default);
            if !(0.05..=86400.0).contains(&v) {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be 0.05 to 86400 seconds"
                )));
            }
            Ok(Duration::from_secs_f64(v))
        };
        let cpu_template = cpu_template
            .or(f.cpu_template)
            .map(|t| t.parse::<strato_vmm_api::config::CpuTemplate>())
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("cpu_template: {e}")))?;
        let irqchip = f
            .irqchip
            .map(|m| m.parse::<strato_vmm_api::config::IrqchipMode>())
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("irqchip: {e}")))?
            .unwrap_or_default();
        let region = f.region.unwrap_or_else(|| "home-1".into());
        let availability_zones = f.availability_zones.unwrap_or_else(|| {
            ["a", "b", "c"]
                .iter()
                .map(|l| format!("{region}{l}"))
                .collect()
        });
        if availability_zones.is_empty() || availability_zones.len() > 16 {
            return Err(ConfigError::Invalid("1 to 16 availability zones".into()));
        }
        let admin_account = f.admin_account.unwrap_or_else(|| "100000000001".into());
        let tokens = f.tokens.unwrap_or_default();
        for account in tokens.values().chain(std::iter::once(&admin_account)) {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConfigError::Invalid(format!(
                    "account {account:?} is not a 12-digit account ID"
                )));
            }
        }
        let peers = f.peers.unwrap_or_default();
        for (name, endpoint) in &peers {
            if name.is_empty() || name == &region || endpoint.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "peer {name:?}: a peer needs a region name other than {region:?} and an endpoint"
                )));
            }
        }
        let had_racks = f.racks.is_some();
        let racks = f.racks.unwrap_or_else(default_racks);
        let distinct: std::collections::BTreeSet<&String> = racks.iter().collect();
        if racks.is_empty()
            || racks.len() > MAX_RACKS
            || distinct.len() != racks.len()
            || racks.iter().any(|r| r.trim().is_empty())
        {
            return Err(ConfigError::Invalid(format!(
                "racks: 1 to {MAX_RACKS} distinct, non-empty names"
            )));
        }
        let copy_rate = match f.copy_rate_mib_s {
            None => None,
            Some(r) if r > 0.0 && r.is_finite() => Some(r * (1 << 20) as f64),
            Some(_) => {
                return Err(ConfigError::Invalid(
                    "copy_rate_mib_s must be a positive number".into(),
                ))
            }
        };
        let uplink = match f.uplink {
            None => None,
            Some(u) => {
                strato_net::validate_ifname(&u.interface)
                    .map_err(|e| ConfigError::Invalid(format!("uplink interface: {e}")))?;
                let (first, last) = parse_pool(&u.pool)?;
                let ipv6_prefix = match &u.ipv6_prefix {
                    None => None,
                    Some(p) => Some(
                        crate::cloud::network::ipv6::Block::parse(p)
                            .filter(|b| b.prefix <= 64 && b.is_unicast())
                            .ok_or_else(|| {
                                ConfigError::Invalid(format!(
                                    "uplink ipv6_prefix {p:?} is not a unicast IPv6 network of at most /64"
                                ))
                            })?,
                    ),
                };
                Some(Uplink {
                    interface: u.interface,
                    first,
                    last,
                    eip_quota: u.eip_quota.unwrap_or(5),
                    ipv6_prefix,
                })
            }
        };
        let vpc_endpoint = f.ec2_api.as_ref().is_some_and(|e| e.vpc_endpoint);
        let ec2_api_listen: Vec<Listen> = match f.ec2_api.map(|e| e.listen) {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s.parse()?],
            Some(OneOrMany::Many(v)) => v.iter().map(|s| s.parse()).collect::<Result<_, _>>()?,
        };
        let ec2_api_vpc_endpoint = if vpc_endpoint {
            let port = ec2_api_listen.iter().find_map(|l| match l {
                Listen::Tcp(a) | Listen::TcpPlain(a) if a.ip().is_unspecified() => Some(a.port()),
                _ => None,
            });
            Some(port.ok_or_else(|| {
                ConfigError::Invalid(
                    "ec2_api.vpc_endpoint needs a TCP listener on a wildcard address (tcp:0.0.0.0:PORT), which the gateways share".into(),
                )
            })?)
        } else {
            None
        };
        let web_listen: Vec<Listen> = match f.web.map(|w| w.listen) {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s.parse()?],
            Some(OneOrMany::Many(v)) => v.iter().map(|s| s.parse()).collect::<Result<_, _>>()?,
        };
        if let Some(Listen::Unix(p)) = web_listen.iter().find(|l| matches!(l, Listen::Unix(_))) {
            return Err(ConfigError::Invalid(format!(
                "web.listen: the web view is served over TCP only (tcp:HOST:PORT or tcp+plain:HOST:PORT), not unix:{}",
                p.display()
            )));
        }
        let jail_ids = match &f.jail_id_range {
            Some(r) => parse_id_range(r)?,
            None => DEFAULT_JAIL_IDS,
        };
        let tls = match f.tls {
            None => TlsConfig::default(),
            Some(t) => {
                let cert_key = match (t.cert_file, t.key_file) {
                    (Some(c), Some(k)) => Some((c, k)),
                    (None, None) => None,
                    _ => {
                        return Err(ConfigError::Invalid(
                            "tls: cert_file and key_file go together".into(),
                        ))
                    }
                };
                let names = t.names.unwrap_or_default();
                if names.iter().any(|n| n.trim().is_empty() || n.len() > 253) {
                    return Err(ConfigError::Invalid(
                        "tls.names: non-empty names of at most 253 characters".into(),
                    ));
                }
                TlsConfig {
                    cert_key,
                    ca_file: t.ca_file,
                    names,
                }
            }
        };
        let ipv6_pool = match &f.ipv6_pool {
            None => None,
            Some(p) => {
                let b = crate::cloud::network::ipv6::Block::parse(p)
                    .filter(|b| (32..=52).contains(&b.prefix))
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "ipv6_pool {p:?} is not an IPv6 network of /32 to /52 (a /48 is usual)"
                        ))
                    })?;
                Some(b)
            }
        };
        // Addresses from the pool are routed from outside only if the pool is in the prefix.
        if let (Some(pool), Some(prefix)) = (
            ipv6_pool,
            uplink.as_ref().and_then(|u: &Uplink| u.ipv6_prefix),
        ) {
            if !prefix.contains(pool) {
                return Err(ConfigError::Invalid(format!(
                    "ipv6_pool {}/{} lies outside uplink ipv6_prefix {}/{}",
                    std::net::Ipv6Addr::from(pool.net),
                    pool.prefix,
                    std::net::Ipv6Addr::from(prefix.net),
                    prefix.prefix
                )));
            }
        }
        let overlay = match f.overlay {
            None => None,
            Some(o) => Some(o.parse().map_err(ConfigError::Invalid)?),
        };
        let cluster = f.cluster.map(|c| c.validate(&listen)).transpose()?;
        // In a region the host's racks are `cluster.racks` (the host itself by default).
        let racks = match (&cluster, had_racks) {
            (Some(_), true) => {
                return Err(ConfigError::Invalid(
                    "racks: in a region of hosts name this host's racks in cluster.racks".into(),
                ))
            }
            (Some(c), false) => c.racks.clone(),
            (None, _) => racks,
        };
        // A region's host joins its VPCs to the other hosts' over its cluster underlay
        // unless it configures an overlay of its own, which must then agree.
        let overlay = match (overlay, &cluster) {
            (None, Some(c)) => {
                crate::cloud::network::overlay::OverlayConfig::for_region(c.underlay)
            }
            (Some(o), Some(c)) if std::net::IpAddr::V4(o.underlay) != c.underlay => {
                return Err(ConfigError::Invalid(format!(
                    "overlay.underlay {} is not cluster.underlay {}",
                    o.underlay, c.underlay
                )));
            }
            (o, _) => o,
        };
        Ok(Config {
            overlay,
            cluster,
            tls,
            ipv6_pool,
            ec2_api_listen,
            ec2_api_vpc_endpoint,
            web_listen,
            jail: f.jail.unwrap_or(true),
            jail_ids,
            uplink,
            copy_rate,
            peers,
            racks,
            listen,
            vmm_binary: f.vmm_binary.unwrap_or_else(default_vmm_binary),
            cpu_template,
            irqchip,
            status_interval: secs(f.status_interval_secs, 60.0, "status_interval_secs")?,
            status_grace: secs(f.status_grace_secs, 300.0, "status_grace_secs")?,
            stop_timeout: secs(f.stop_timeout_secs, 30.0, "stop_timeout_secs")?,
            copy_give_up: secs(f.copy_give_up_secs, 3600.0, "copy_give_up_secs")?,
            terminated_retention: Duration::from_secs(f.terminated_retention_secs.unwrap_or(3600)),
            region,
            availability_zones,
            admin_account,
            tokens,
            bridge: f.bridge.unwrap_or_else(|| "strato0".into()),
            data_dir,
        })
    }
}

/// `strato-vmm` next to this executable if it is there, else from `PATH`.
fn default_vmm_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("strato-vmm")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("strato-vmm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jail_settings() {
        let c = Config::build(None, Some("/tmp/d".into()), &[], None).unwrap();
        assert!(c.jail);
        assert_eq!(c.jail_ids, DEFAULT_JAIL_IDS);
        assert_eq!(
            parse_id_range("1000-1999").unwrap(),
            IdRange {
                first: 1000,
                last: 1999
            }
        );
        for bad in ["", "5", "0-10", "10-5", "a-b", "1-4294967295"] {
            assert!(parse_id_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let c = Config::build(None, Some("/tmp/d".into()), &[], None).unwrap();
        assert_eq!(c.listen, vec![Listen::Unix("/tmp/d/stratod.sock".into())]);
        assert_eq!(c.status_interval, Duration::from_secs(60));
        assert_eq!(c.availability_zones, ["home-1a", "home-1b", "home-1c"]);
        assert_eq!(c.racks.len(), 7);
        assert_eq!(c.racks[0], "rack-1");
        assert!(c.peers.is_empty());
        let c = Config::build(
            None,
            None,
            &["tcp:127.0.0.1:7000".into()],
            Some("host".into()),
        )
        .unwrap();
        assert_eq!(
            c.listen,
            vec![Listen::Tcp("127.0.0.1:7000".parse().unwrap())]
        );
        assert!(Config::build(None, None, &["udp:x".into()], None).is_err());
        assert!(Config::build(None, None, &[], Some("fast".into())).is_err());
    }

    #[test]
    fn the_web_view_listens_on_tcp_only_and_is_off_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(&p, "{}").unwrap();
        let c = Config::build(Some(&p), None, &[], None).unwrap();
        assert!(c.web_listen.is_empty());
        std::fs::write(
            &p,
            r#"{"web": {"listen": ["tcp:127.0.0.1:8443", "tcp+plain:127.0.0.1:8080"]}}"#,
        )
        .unwrap();
        let c = Config::build(Some(&p), None, &[], None).unwrap();
        assert_eq!(
            c.web_listen,
            vec![
                Listen::Tcp("127.0.0.1:8443".parse().unwrap()),
                Listen::TcpPlain("127.0.0.1:8080".parse().unwrap())
            ]
        );
        assert!(
            crate::tls::needed(&c),
            "a TLS web listener needs the certificate"
        );
        std::fs::write(&p, r#"{"web": {"listen": "unix:/tmp/web.sock"}}"#).unwrap();
        match Config::build(Some(&p), None, &[], None) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains("web.listen"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(&p, r#"{"tokens": {"t1": "12345"}}"#).unwrap();
        assert!(matches!(
            Config::build(Some(&p), None, &[], None),
            Err(ConfigError::Invalid(_))
        ));
        std::fs::write(&p, r#"{"nope": 1}"#).unwrap();
        assert!(matches!(
            Config::build(Some(&p), None, &[], None),
            Err(ConfigError::Parse(..))
        ));
        std::fs::write(
            &p,
            r#"{"status_interval_secs": 1, "tokens": {"t1": "222222222222"}}"#,
        )
        .unwrap();
        let c = Config::build(Some(&p), None, &[], None).unwrap();
        assert_eq!(c.status_interval, Duration::from_secs(1));
        assert_eq!(c.tokens["t1"], "222222222222");
        use strato_vmm_api::config::IrqchipMode;
        assert_eq!(c.irqchip, IrqchipMode::default());
        std::fs::write(&p, r#"{"irqchip": "kernel"}"#).unwrap();
        let c = Config::build(Some(&p), None, &[], None).unwrap();
        assert_eq!(c.irqchip, IrqchipMode::Kernel);
        std::fs::write(&p, r#"{"irqchip": "pic"}"#).unwrap();
        match Config::build(Some(&p), None, &[], None) {
            Err(ConfigError::Invalid(m)) => {
                assert!(m.contains("irqchip") && m.contains("pic"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn uplink_pools() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            parse_pool("198.51.100.16/28").unwrap(),
            (ip("198.51.100.17"), ip("198.51.100.30"))
        );
        assert_eq!(
            parse_pool("203.0.113.5 - 203.0.113.9").unwrap(),
            (ip("203.0.113.5"), ip("203.0.113.9"))
        );
        assert_eq!(
            parse_pool("203.0.113.7/32").unwrap(),
            (ip("203.0.113.7"), ip("203.0.113.7"))
        );
        for bad in [
            "198.51.100.17/28",
            "10.0.0.0/8",
            "203.0.113.9-203.0.113.5",
            "x/24",
            "1.2.3.4",
            "1.2.3.0/33",
        ] {
            assert!(parse_pool(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(
            &p,
            r#"{"uplink": {"interface": "uplink0", "pool": "198.51.100.16/28"}}"#,
        )
        .unwrap();
        let u = Config::build(Some(&p), None, &[], None)
            .unwrap()
            .uplink
            .unwrap();
        assert_eq!((u.interface.as_str(), u.eip_quota), ("uplink0", 5));
        assert!(u.contains(ip("198.51.100.30")) && !u.contains(ip("198.51.100.31")));
        assert_eq!(u.addresses().count(), 14);
        std::fs::write(
            &p,
            r#"{"uplink": {"interface": "a b", "pool": "1.2.3.0/30"}}"#,
        )
        .unwrap();
        assert!(Config::build(Some(&p), None, &[], None).is_err());
        assert!(Config::build(None, None, &[], None)
            .unwrap()
            .uplink
            .is_none());
    }

    /// A routed IPv6 prefix on the uplink: a unicast network of at most /64 that holds
    /// `ipv6_pool` when both are given.
    #[test]
    fn uplink_ipv6_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        let build = |body: &str| {
            std::fs::write(&p, body).unwrap();
            Config::build(Some(&p), None, &[], None)
        };
        let c = build(
            r#"{"ipv6_pool": "2001:db8:40::/48", "uplink": {"interface": "uplink0",
                "pool": "198.51.100.16/28", "ipv6_prefix": "2001:db8::/32"}}"#,
        )
        .unwrap();
        let b = c.uplink.unwrap().ipv6_prefix.unwrap();
        assert_eq!((b.net, b.prefix), (0x2001_0db8_u128 << 96, 32));
        let none =
            build(r#"{"uplink": {"interface": "uplink0", "pool": "198.51.100.16/28"}}"#).unwrap();
        assert!(none.uplink.unwrap().ipv6_prefix.is_none());
        for bad in [
            // The pool outside the prefix.
            r#"{"ipv6_pool": "2001:db8:40::/48", "uplink": {"interface": "uplink0",
                "pool": "198.51.100.16/28", "ipv6_prefix": "2001:db9::/32"}}"#,
            // Host bits, too long, not unicast, not IPv6.
            r#"{"uplink": {"interface": "u", "pool": "198.51.100.16/28", "ipv6_prefix": "2001:db8::1/32"}}"#,
            r#"{"uplink": {"interface": "u", "pool": "198.51.100.16/28", "ipv6_prefix": "2001:db8::/96"}}"#,
            r#"{"uplink": {"interface": "u", "pool": "198.51.100.16/28", "ipv6_prefix": "fe80::/16"}}"#,
            r#"{"uplink": {"interface": "u", "pool": "198.51.100.16/28", "ipv6_prefix": "10.0.0.0/8"}}"#,
        ] {
            assert!(build(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cluster_section_gives_the_hosts_racks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        let build = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Config::build(Some(&p), None, &[], None)
        };
        let cluster = r#""cluster": {"etcd": ["http://10.0.0.1:2379"], "host": "box-2",
            "underlay": "10.0.0.12", "capacity": {"vcpus": 4, "memory_mib": 8192},
            "secret": "0123456789abcdef"}"#;
        let c = build(&format!(
            r#"{{"listen": ["tcp:10.0.0.12:7443"], {cluster}}}"#
        ))
        .unwrap();
        let region = c.cluster.as_ref().unwrap();
        assert_eq!(region.host, "box-2");
        assert_eq!(region.api, "https://10.0.0.12:7443");
        assert_eq!(c.racks, ["box-2"]);
        // Top-level racks would contradict cluster.racks.
        let e = build(&format!(
            r#"{{"listen": ["tcp:10.0.0.12:7443"], "racks": ["a"], {cluster}}}"#
        ))
        .unwrap_err();
        assert!(e.to_string().contains("cluster.racks"), "{e}");
        // No TLS listener for the other hosts to call.
        let e = build(&format!("{{{cluster}}}")).unwrap_err();
        assert!(e.to_string().contains("cluster:"), "{e}");
        assert!(build("{}").unwrap().cluster.is_none());
    }

    #[test]
    fn peers_and_racks_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        let build = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Config::build(Some(&p), None, &[], None)
        };
        let c =
            build(r#"{"peers": {"away-1": "http://10.0.0.2:7000"}, "racks": ["a", "b"]}"#).unwrap();
        assert_eq!(c.peers["away-1"], "http://10.0.0.2:7000");
        assert_eq!(c.racks, ["a", "b"]);
        for bad in [
            r#"{"peers": {"home-1": "http://x:1"}}"#,
            r#"{"peers": {"away-1": ""}}"#,
            r#"{"racks": []}"#,
            r#"{"racks": ["a", "a"]}"#,
            r#"{"racks": [" "]}"#,
        ] {
            assert!(matches!(build(bad), Err(ConfigError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn tls_settings_and_plain_listeners() {
        assert_eq!(
            "tcp+plain:127.0.0.1:7".parse::<Listen>().unwrap(),
            Listen::TcpPlain("127.0.0.1:7".parse().unwrap())
        );
        assert!("tcp+plain:nowhere".parse::<Listen>().is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        let build = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Config::build(Some(&p), None, &[], None)
        };
        let c = build(
            r#"{"tls": {"cert_file": "/c.pem", "key_file": "/k.pem", "ca_file": "/ca.pem", "names": ["api.example"]}}"#,
        )
        .unwrap();
        assert_eq!(c.tls.cert_key, Some(("/c.pem".into(), "/k.pem".into())));
        assert_eq!(c.tls.ca_file, Some("/ca.pem".into()));
        assert_eq!(c.tls.names, ["api.example"]);
        for bad in [
            r#"{"tls": {"cert_file": "/c.pem"}}"#,
            r#"{"tls": {"names": [" "]}}"#,
        ] {
            assert!(matches!(build(bad), Err(ConfigError::Invalid(_))), "{bad}");
        }
    }
}
