//! VPCs across hosts: each VPC's bridge gets a VXLAN device (`strato_net::vxlan`) that
//! joins it to the same VPC's bridges on the other hosts of the region, over the
//! underlay network between the hosts.
//!
//! What this module knows: this host's underlay address and the peer hosts' (from the
//! `overlay` config key, or, on a host of a region (`cluster`), from the region's
//! membership: [`Cloud::follow_region`] calls [`Cloud::set_peers`] as hosts come and go),
//! and each VPC's VNI: derived from its ID
//! ([`derived_vni`]), so that every host that knows the VPC by the same ID puts it on the
//! same VNI without asking anyone, unless the config pins the VNI of a VPC CIDR
//! (`overlay.vnis`), which is how hosts that do not share VPC records yet (two daemons
//! without a region) make two VPCs one. Two VPCs whose IDs fold to one VNI on one host
//! collide: the kernel refuses the second device and CreateVpc says so.
//!
//! Security groups and anti-spoofing stay with each instance's own host (the firewall's
//! `Overlay` part), as do DHCP, the metadata service and NAT: frames the host sends from
//! its gateways never go out through a VXLAN port.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use strato_net::vxlan::{self, VxlanSpec};

use super::plumbing::{blocking, netmask, parse_cidr};
use crate::cloud::{Cloud, StartError};
use crate::db::network::Vpc;
use crate::error::{ApiError, ApiResult};
use crate::ids::Kind;

/// The `overlay` section of the config file (provisional: the region's membership will
/// supply the peers).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayFile {
    /// This host's underlay address (IPv4), the outer source of its VXLAN traffic.
    pub underlay: String,
    /// The other hosts' underlay addresses.
    pub peers: Option<Vec<String>>,
    /// The underlay's MTU (default 1500); VPC bridges get 50 bytes less.
    pub mtu: Option<u32>,
    /// VNIs pinned by VPC CIDR (`"10.77.0.0/16": 4242`), for hosts that know one VPC
    /// under different IDs.
    pub vnis: Option<BTreeMap<String, u32>>,
}

/// The overlay's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayConfig {
    /// This host's underlay address.
    pub underlay: Ipv4Addr,
    /// The peers at start.
    pub peers: Vec<Ipv4Addr>,
    /// The underlay's MTU.
    pub underlay_mtu: u32,
    /// Pinned VNIs by VPC CIDR.
    pub vnis: BTreeMap<String, u32>,
}

/// Smallest underlay MTU accepted: IPv4's minimum for the VPC (576) plus the overhead.
const MIN_UNDERLAY_MTU: u32 = 576 + vxlan::OVERHEAD;

impl OverlayFile {
    /// Checks the section.
    pub fn parse(self) -> Result<OverlayConfig, String> {
        let addr = |what: &str, s: &str| -> Result<Ipv4Addr, String> {
            let a: Ipv4Addr = s
                .parse()
                .map_err(|_| format!("overlay.{what} {s:?} is not an IPv4 address"))?;
            if a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback() {
                return Err(format!(
                    "overlay.{what} {s:?} is not a unicast host address"
                ));
            }
            Ok(a)
        };
        let underlay = addr("underlay", &self.underlay)?;
        let mut peers = Vec::new();
        for p in self.peers.unwrap_or_default() {
            let a = addr("peers", &p)?;
            if a != underlay && !peers.contains(&a) {
                peers.push(a);
            }
        }
        let underlay_mtu = self.mtu.unwrap_or(1500);
        if !(MIN_UNDERLAY_MTU..=65535).contains(&underlay_mtu) {
            return Err(format!(
                "overlay.mtu {underlay_mtu} is outside {MIN_UNDERLAY_MTU}-65535"
            ));
        }
        let mut vnis = BTreeMap::new();
        for (cidr, vni) in self.vnis.unwrap_or_default() {
            let Some(key) = cidr_key(&cidr) else {
                return Err(format!("overlay.vnis: {cidr:?} is not an IPv4 CIDR"));
            };
            if vni == 0 || vni > vxlan::MAX_VNI {
                return Err(format!(
                    "overlay.vnis: VNI {vni} is outside 1-{}",
                    vxlan::MAX_VNI
                ));
            }
            vnis.insert(key, vni);
        }
        Ok(OverlayConfig {
            underlay,
            peers,
            underlay_mtu,
            vnis,
        })
    }
}

/// The overlay's state in the daemon: its settings and the current peers.
#[derive(Debug, Default)]
pub struct Overlay {
    cfg: Option<OverlayConfig>,
    peers: Mutex<Vec<Ipv4Addr>>,
}

impl Overlay {
    /// The overlay of `cfg` (`None`: this host is alone, no VXLAN devices).
    pub fn new(cfg: Option<OverlayConfig>) -> Overlay {
        let peers = cfg.as_ref().map(|c| c.peers.clone()).unwrap_or_default();
        Overlay {
            cfg,
            peers: Mutex::new(peers),
        }
    }

    /// The current peers.
    pub fn peers(&self) -> Vec<Ipv4Addr> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// A CIDR as its network address and prefix (`10.77.0.5/16` is `10.77.0.0/16`).
fn cidr_key(cidr: &str) -> Option<String> {
    let (a, n) = parse_cidr(cidr)?;
    let net = Ipv4Addr::from(u32::from(a) & u32::from(netmask(n)));
    Some(format!("{net}/{n}"))
}

/// The VNI a VPC ID folds to: FNV-1a of the ID, folded to 24 bits, never 0.
pub fn derived_vni(vpc_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in vpc_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let v = (h >> 24 ^ h) & vxlan::MAX_VNI;
    v.max(1)
}

/// The VXLAN device of a VPC: `svx` and the first 12 hex digits of its ID (15 characters,
/// the kernel's limit; the bridge has 11 after `svpc`, so the two never clash).
pub fn vxlan_name(vpc_id: &str) -> String {
    let hex: String = vpc_id
        .trim_start_matches(Kind::Vpc.prefix())
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    format!("svx{hex}")
}

impl Cloud {
    /// The VNI of `vpc`: pinned by its CIDR in the config, else the one the region
    /// allocated to it (`cluster::network`), else derived from its ID.
    pub fn overlay_vni(&self, vpc: &Vpc) -> u32 {
        let allocated = || self.db.vpc_vni(&vpc.id).ok().flatten();
        let pinned = self
            .overlay
            .cfg
            .as_ref()
            .and_then(|c| c.vnis.get(&cidr_key(&vpc.cidr)?).copied());
        pinned
            .or_else(allocated)
            .unwrap_or_else(|| derived_vni(&vpc.id))
    }

    /// The MTU guests are told (DHCP option 26): the VXLAN device's when the host has an
    /// overlay and that is below the usual 1500, else 1500. Every VPC gets a VXLAN device,
    /// so every bridge has the smaller MTU.
    pub fn overlay_guest_mtu(&self) -> u16 {
        let plain = crate::dhcp::MTU;
        match &self.overlay.cfg {
            Some(c) => {
                u16::try_from(vxlan::overlay_mtu(c.underlay_mtu)).map_or(plain, |m| m.min(plain))
            }
            None => plain,
        }
    }

    /// The firewall's overlay part (`None` when the host is alone).
    pub fn overlay_model(&self) -> ApiResult<Option<strato_net::firewall::Overlay>> {
        let Some(cfg) = &self.overlay.cfg else {
            return Ok(None);
        };
        Ok(Some(strato_net::firewall::Overlay {
            ports: self.db.vpcs()?.iter().map(|v| vxlan_name(&v.id)).collect(),
            underlay: vec![cfg.underlay],
            peers: self.overlay.peers(),
            port: vxlan::VXLAN_PORT,
        }))
    }

    /// Gives `vpc`'s bridge its VXLAN device with the current peers (nothing when the host
    /// is alone); the bridge must exist.
    pub async fn overlay_ensure(&self, vpc: &Vpc) -> ApiResult<()> {
        let Some(cfg) = &self.overlay.cfg else {
            return Ok(());
        };
        let spec = VxlanSpec {
            name: vxlan_name(&vpc.id),
            vni: self.overlay_vni(vpc),
            local: cfg.underlay,
            bridge: vpc.bridge.clone(),
            mtu: vxlan::overlay_mtu(cfg.underlay_mtu),
        };
        let peers = self.overlay.peers();
        let what = format!("{} (VNI {}) of {}", spec.name, spec.vni, vpc.id);
        blocking(move || {
            vxlan::ensure_vxlan(&spec)?;
            vxlan::set_peers(&spec.name, &peers)
        })
        .await
        .map_err(|e| ApiError::internal(format!("Cannot set up VXLAN {what}: {e}")))
    }

    /// Removes `vpc`'s VXLAN device (before its bridge goes); a missing one is fine.
    pub async fn overlay_remove(&self, vpc: &Vpc) {
        if self.overlay.cfg.is_none() {
            return;
        }
        let name = vxlan_name(&vpc.id);
        let dev = name.clone();
        if let Err(e) = blocking(move || strato_net::link::delete_link(&dev)).await {
            tracing::warn!(device = %name, error = %e, "cannot delete VXLAN device");
        }
    }

    /// Makes `peers` the hosts every VPC's BUM traffic is replicated to, and the only
    /// sources VXLAN is taken from: the region's membership calls this as hosts join and
    /// leave. This host's own address is left out. Refused when the host has no overlay.
    pub async fn set_peers(&self, peers: Vec<Ipv4Addr>) -> ApiResult<()> {
        let Some(cfg) = &self.overlay.cfg else {
            return Err(ApiError::internal(
                "This host has no overlay (no underlay address is configured).",
            ));
        };
        let mut clean: Vec<Ipv4Addr> = Vec::new();
        for p in peers {
            if p != cfg.underlay && !clean.contains(&p) {
                clean.push(p);
            }
        }
        if let Ok(mut cur) = self.overlay.peers.lock() {
            *cur = clean.clone();
        }
        // A new peer is let in by the firewall before traffic is sent to it; a peer that
        // left is no longer sent to, then no longer taken from.
        self.apply_firewall().await?;
        for v in self.db.vpcs()? {
            let name = vxlan_name(&v.id);
            let p = clean.clone();
            blocking(move || vxlan::set_peers(&name, &p))
                .await
                .map_err(|e| ApiError::internal(format!("Cannot set VXLAN peers: {e}")))?;
        }
        tracing::info!(peers = ?clean, "overlay peers set");
        Ok(())
    }

    /// On a host of a region: keeps the peers equal to the other hosts' underlay addresses
    /// as the membership sees them, so a host that joins is sent to (and taken from) within
    /// a second and one found unavailable is dropped. Returns at once without a region or
    /// an overlay.
    pub async fn follow_region(self: Arc<Self>) {
        let Some(region) = self.cluster.clone() else {
            return;
        };
        if self.overlay.cfg.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut failing = false;
        loop {
            tick.tick().await;
            let want = region_peers(&region.hosts(), region.host());
            if want == self.overlay.peers() && !failing {
                continue;
            }
            match self.set_peers(want).await {
                Ok(()) => failing = false,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e.message, "cannot follow the region's hosts in the overlay");
                    }
                    failing = true;
                }
            }
        }
    }

    /// Makes `macs` (an interface's MAC and its host's underlay address) the remote
    /// interfaces of `vpc` whose unicast goes to their host alone; the rest is replicated
    /// to every peer. For the region, which knows where each interface is.
    pub async fn overlay_remote_macs(
        &self,
        vpc: &Vpc,
        macs: Vec<(strato_net::MacAddr, Ipv4Addr)>,
    ) -> ApiResult<()> {
        if self.overlay.cfg.is_none() {
            return Ok(());
        }
        let name = vxlan_name(&vpc.id);
        blocking(move || vxlan::set_remote_macs(&name, &macs))
            .await
            .map_err(|e| ApiError::internal(format!("Cannot set remote MACs of {}: {e}", vpc.id)))
    }

    /// On start, after the firewall: every VPC's VXLAN device with the configured peers.
    /// Fails only on what stops every VPC (the database).
    pub async fn start_overlay(&self) -> Result<(), StartError> {
        let Some(cfg) = &self.overlay.cfg else {
            return Ok(());
        };
        // One VPC that cannot be joined (its VNI taken by another after a change of
        // `overlay.vnis`, say) stays on this host alone; the others still join.
        for v in self.db.vpcs()? {
            if let Err(e) = self.overlay_ensure(&v).await {
                tracing::error!(vpc = %v.id, error = %e.message, "VPC not joined to the overlay");
            }
        }
        tracing::info!(underlay = %cfg.underlay, peers = ?self.overlay.peers(), "overlay up");
        Ok(())
    }
}

/// The overlay peers of host `me` in a region: every other host's underlay address unless
/// the host is known to be down (its lease lapsed and it does not answer).
pub fn region_peers(
    hosts: &BTreeMap<String, crate::cluster::membership::HostView>,
    me: &str,
) -> Vec<Ipv4Addr> {
    use crate::cluster::membership::HostState;
    let mut out: Vec<Ipv4Addr> = hosts
        .values()
        .filter(|h| h.record.name != me && h.state() != HostState::Unavailable)
        .filter_map(|h| h.record.underlay.parse().ok())
        .collect();
    out.dedup();
    out
}

impl OverlayConfig {
    /// The overlay of a region's host that configures none itself: its cluster underlay
    /// address (IPv4), the default MTU, no pinned VNIs; the peers come from membership.
    pub fn for_region(underlay: std::net::IpAddr) -> Option<OverlayConfig> {
        match underlay {
            std::net::IpAddr::V4(a) => Some(OverlayConfig {
                underlay: a,
                peers: Vec::new(),
                underlay_mtu: 1500,
                vnis: BTreeMap::new(),
            }),
            std::net::IpAddr::V6(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_peers_are_the_other_hosts_not_known_down() {
        use crate::cluster::membership::{HostRecord, HostView};
        let host = |name: &str, underlay: &str, leased: bool, probe_ok: Option<bool>| {
            let record = HostRecord {
                name: name.into(),
                underlay: underlay.into(),
                api: format!("https://{underlay}:7700"),
                capacity: Default::default(),
                racks: vec![name.into()],
                started_at: 0,
            };
            (
                name.to_string(),
                HostView {
                    record,
                    leased,
                    probe_ok,
                },
            )
        };
        let hosts: BTreeMap<_, _> = [
            host("a", "10.250.0.11", true, None),
            host("b", "10.250.0.12", true, None),
            // Lapsed but answering: still a peer (its VMs run).
            host("c", "10.250.0.13", false, Some(true)),
            // Lapsed and silent: dropped.
            host("d", "10.250.0.14", false, Some(false)),
            host("e", "not an address", true, None),
        ]
        .into_iter()
        .collect();
        let want: Vec<Ipv4Addr> = vec![
            "10.250.0.12".parse().unwrap(),
            "10.250.0.13".parse().unwrap(),
        ];
        assert_eq!(region_peers(&hosts, "a"), want);
        assert_eq!(
            OverlayConfig::for_region("10.250.0.11".parse().unwrap()).map(|c| c.underlay),
            Some("10.250.0.11".parse().unwrap())
        );
        assert_eq!(OverlayConfig::for_region("fd00::1".parse().unwrap()), None);
    }

    #[test]
    fn vnis_and_names() {
        let id = "vpc-0123456789abcdef0";
        assert_eq!(derived_vni(id), derived_vni(id), "stable");
        assert_ne!(derived_vni(id), derived_vni("vpc-0123456789abcdef1"));
        for k in 0..1000 {
            let v = derived_vni(&format!("vpc-{k:017x}"));
            assert!((1..=vxlan::MAX_VNI).contains(&v), "{v}");
        }
        assert_eq!(vxlan_name(id), "svx0123456789ab");
        assert!(vxlan_name(id).len() <= strato_net::MAX_IFNAME_LEN);
        assert_ne!(vxlan_name(id), super::super::vpcs::bridge_name(id));
    }

    #[test]
    fn config_section() {
        let f = |json: &str| serde_json::from_str::<OverlayFile>(json).unwrap().parse();
        let c = f(
            r#"{"underlay": "10.250.0.11", "peers": ["10.250.0.12", "10.250.0.11",
            "10.250.0.12"], "vnis": {"10.77.0.5/16": 4242}}"#,
        )
        .unwrap();
        assert_eq!(c.underlay, Ipv4Addr::new(10, 250, 0, 11));
        assert_eq!(
            c.peers,
            [Ipv4Addr::new(10, 250, 0, 12)],
            "self and twins dropped"
        );
        assert_eq!(c.underlay_mtu, 1500);
        assert_eq!(c.vnis.get("10.77.0.0/16"), Some(&4242), "normalized");
        for bad in [
            r#"{"underlay": "nope"}"#,
            r#"{"underlay": "0.0.0.0"}"#,
            r#"{"underlay": "10.0.0.1", "peers": ["224.0.0.1"]}"#,
            r#"{"underlay": "10.0.0.1", "mtu": 600}"#,
            r#"{"underlay": "10.0.0.1", "vnis": {"10.0.0.0/16": 0}}"#,
            r#"{"underlay": "10.0.0.1", "vnis": {"10.0.0.0/16": 16777216}}"#,
            r#"{"underlay": "10.0.0.1", "vnis": {"x": 5}}"#,
        ] {
            assert!(f(bad).is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<OverlayFile>(r#"{"underlay": "10.0.0.1", "x": 1}"#).is_err()
        );
    }

    fn overlay_cloud(mtu: Option<u32>) -> (tempfile::TempDir, std::sync::Arc<Cloud>) {
        crate::cloud::test_cloud_with(|c| {
            c.overlay = Some(
                OverlayFile {
                    underlay: "10.250.0.11".into(),
                    peers: Some(vec!["10.250.0.12".into()]),
                    mtu,
                    vnis: Some(BTreeMap::from([("10.77.0.0/16".into(), 4242)])),
                }
                .parse()
                .unwrap(),
            )
        })
    }

    fn vpc(id: &str, cidr: &str) -> Vpc {
        Vpc {
            id: id.into(),
            owner: String::new(),
            cidr: cidr.into(),
            is_default: false,
            bridge: super::super::vpcs::bridge_name(id),
            state: "available".into(),
            tags: Vec::new(),
            created: 0,
        }
    }

    #[tokio::test]
    async fn the_daemon_side() {
        let (_d, alone) = crate::cloud::test_cloud();
        assert_eq!(alone.overlay_guest_mtu(), 1500);
        assert_eq!(alone.overlay_model().unwrap(), None);
        let v = vpc("vpc-0123456789abcdef0", "10.77.0.0/16");
        // No overlay: nothing to make, and no peers to set.
        alone.overlay_ensure(&v).await.unwrap();
        assert!(alone
            .set_peers(vec![Ipv4Addr::new(10, 0, 0, 2)])
            .await
            .is_err());

        let (_d, c) = overlay_cloud(None);
        assert_eq!(c.overlay_guest_mtu(), 1450);
        assert_eq!(c.overlay_vni(&v), 4242, "pinned by CIDR");
        let other = vpc("vpc-0123456789abcdef0", "10.78.0.0/16");
        assert_eq!(c.overlay_vni(&other), derived_vni(&other.id));
        let m = c.overlay_model().unwrap().unwrap();
        assert_eq!(m.underlay, [Ipv4Addr::new(10, 250, 0, 11)]);
        assert_eq!(m.peers, [Ipv4Addr::new(10, 250, 0, 12)]);
        assert_eq!(m.port, 4789);
        // Membership changes the peers at runtime; this host's own address is left out.
        let p = [Ipv4Addr::new(10, 250, 0, 13), Ipv4Addr::new(10, 250, 0, 11)];
        c.set_peers(p.to_vec()).await.unwrap();
        assert_eq!(c.overlay.peers(), [Ipv4Addr::new(10, 250, 0, 13)]);
        assert_eq!(
            c.overlay_model().unwrap().unwrap().peers,
            [Ipv4Addr::new(10, 250, 0, 13)]
        );

        // A jumbo underlay keeps 1500 in the VPC.
        let (_d, j) = overlay_cloud(Some(9000));
        assert_eq!(j.overlay_guest_mtu(), 1500);
    }
}
