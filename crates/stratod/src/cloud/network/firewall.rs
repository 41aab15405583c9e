//! The host firewall of security groups: the model of every interface and its groups'
//! rules built from the database (`strato_net::firewall` renders it), applied whole with
//! `nft -f` after every change, one apply at a time; and what the daemon does on start.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};

use strato_net::firewall::{self, EniRules, GroupSet, HostBridge, Peer, Proto, Rule, Ruleset};

use super::plumbing::{blocking, gateway, parse_cidr};
use crate::cloud::{Cloud, StartError};
use crate::db::security_groups::SgRule;
use crate::error::{ApiError, ApiResult};

/// Serializes firewall applies; off in unit tests, which must not touch the host.
#[derive(Debug)]
pub struct Firewall {
    applies: super::applies::Applies,
    enabled: AtomicBool,
    /// Unit tests: every apply fails as a kernel refusal would.
    #[cfg(test)]
    refuse: AtomicBool,
}

impl Default for Firewall {
    fn default() -> Self {
        Firewall {
            applies: super::applies::Applies::default(),
            enabled: AtomicBool::new(true),
            #[cfg(test)]
            refuse: AtomicBool::new(false),
        }
    }
}

impl Firewall {
    /// Stops applying rulesets (tests without a network namespace of their own).
    pub fn disable(&self) {
        self.enabled.store(false, Ordering::SeqCst);
    }

    /// Unit tests: makes every apply fail (or succeed again) without touching the host.
    #[cfg(test)]
    pub fn refuse_applies(&self, refuse: bool) {
        self.refuse.store(refuse, Ordering::SeqCst);
    }
}

/// `addr/len` as an IPv6 block (`None` for anything else, IPv4 included).
pub fn parse_cidr6(cidr: &str) -> Option<(Ipv6Addr, u8)> {
    let (a, n) = cidr.split_once('/')?;
    let addr: Ipv6Addr = a.parse().ok()?;
    let n: u8 = n.parse().ok()?;
    (n <= 128).then_some((addr, n))
}

/// A stored rule as the firewall's.
pub(crate) fn fw_rule(r: &SgRule) -> Option<Rule> {
    let port = |p: i32| u16::try_from(p).ok();
    let code = |p: i32| u8::try_from(p).ok();
    let proto = match r.protocol.as_str() {
        "-1" => Proto::All,
        "tcp" => Proto::Tcp(port(r.from_port)?, port(r.to_port)?),
        "udp" => Proto::Udp(port(r.from_port)?, port(r.to_port)?),
        "icmp" => Proto::Icmp(code(r.from_port), code(r.to_port)),
        "icmpv6" | "58" => Proto::Icmpv6(code(r.from_port), code(r.to_port)),
        n => Proto::Other(n.parse().ok()?),
    };
    let peer = if r.peer_group.is_empty() {
        // IPv6 blocks share the column: the stored text tells the family.
        if let Some((a, n)) = parse_cidr6(&r.cidr) {
            Peer::Cidr6(a, n)
        } else {
            let (a, n) = parse_cidr(&r.cidr)?;
            Peer::Cidr(a, n)
        }
    } else {
        Peer::Group(r.peer_group.clone())
    };
    Some(Rule { proto, peer })
}

impl Cloud {
    /// The firewall model of everything in the database.
    pub fn ruleset(&self) -> ApiResult<Ruleset> {
        let enis = self.db.eni_hosts()?;
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        for (eni, group) in self.db.eni_memberships()? {
            members.entry(eni).or_default().push(group);
        }
        let mut rules: HashMap<String, Vec<SgRule>> = HashMap::new();
        for (group, rule) in self.db.all_security_group_rules()? {
            rules.entry(group).or_default().push(rule);
        }
        let mut model = Ruleset::default();
        let mut peers: Vec<String> = Vec::new();
        // Every address of an interface is a member of its groups (source-group rules).
        let mut addr_of: HashMap<&str, Vec<(String, Ipv4Addr)>> = HashMap::new();
        let mut addr6_of: HashMap<&str, Vec<(String, Ipv6Addr)>> = HashMap::new();
        for e in &enis {
            let bad = |what: &str| ApiError::internal(format!("ENI {} has a bad {what}", e.id));
            let ip: Ipv4Addr = e.private_ip.parse().map_err(|_| bad("address"))?;
            let mac = e.mac.parse().map_err(|_| bad("MAC"))?;
            let mut addrs = vec![ip];
            for s in self.db.secondary_ips(&e.id)? {
                addrs.push(s.parse().map_err(|_| bad("secondary address"))?);
            }
            addr_of.insert(
                &e.id,
                addrs.iter().map(|a| (e.bridge.clone(), *a)).collect(),
            );
            let mut addrs6 = Vec::new();
            for a in self.db.eni_ipv6(&e.id)? {
                addrs6.push(a.parse::<Ipv6Addr>().map_err(|_| bad("IPv6 address"))?);
            }
            addr6_of.insert(
                &e.id,
                addrs6.iter().map(|a| (e.bridge.clone(), *a)).collect(),
            );
            let mut er = EniRules {
                id: e.id.clone(),
                tap: e.tap.clone(),
                bridge: e.bridge.clone(),
                mac,
                addrs,
                addrs6,
                source_dest_check: e.source_dest_check,
                ingress: Vec::new(),
                egress: Vec::new(),
            };
            for g in members.get(&e.id).map(Vec::as_slice).unwrap_or_default() {
                for r in rules.get(g).map(Vec::as_slice).unwrap_or_default() {
                    let Some(fr) = fw_rule(r) else {
                        tracing::warn!(group = %g, rule = ?r, "skipping an unreadable rule");
                        continue;
                    };
                    if let Peer::Group(p) = &fr.peer {
                        if !peers.contains(p) {
                            peers.push(p.clone());
                        }
                    }
                    let list = if r.egress {
                        &mut er.egress
                    } else {
                        &mut er.ingress
                    };
                    if !list.contains(&fr) {
                        list.push(fr);
                    }
                }
            }
            model.enis.push(er);
        }
        // Members of source groups on the region's other hosts, on this host's bridge of
        // their subnet.
        let remote = self
            .cluster
            .as_ref()
            .map(|r| r.remote_members())
            .unwrap_or_default();
        let bridge_of: HashMap<String, String> = self
            .db
            .subnets()?
            .into_iter()
            .map(|s| (s.id, s.bridge))
            .collect();
        for p in peers {
            let mut set = GroupSet {
                id: p.clone(),
                members: Vec::new(),
                members6: Vec::new(),
            };
            for (eni, groups) in &members {
                if groups.contains(&p) {
                    if let Some(m) = addr_of.get(eni.as_str()) {
                        set.members.extend(m.iter().cloned());
                    }
                    if let Some(m) = addr6_of.get(eni.as_str()) {
                        set.members6.extend(m.iter().cloned());
                    }
                }
            }
            for (subnet, addr) in remote.get(&p).map(Vec::as_slice).unwrap_or_default() {
                let Some(bridge) = bridge_of.get(subnet) else {
                    continue;
                };
                if let Ok(a) = addr.parse::<Ipv4Addr>() {
                    set.members.push((bridge.clone(), a));
                } else if let Ok(a) = addr.parse::<Ipv6Addr>() {
                    set.members6.push((bridge.clone(), a));
                }
            }
            set.members.sort();
            set.members.dedup();
            set.members6.sort();
            set.members6.dedup();
            model.groups.push(set);
        }
        // Every VPC bridge limits what reaches the host itself to the guest services.
        let mut bridges: Vec<HostBridge> = self
            .db
            .vpcs()?
            .into_iter()
            .map(|v| HostBridge {
                name: v.bridge,
                gateways: Vec::new(),
                gateways6: Vec::new(),
            })
            .collect();
        for s in self.db.subnets()? {
            if let (Some((gw, _)), Some(b)) =
                (gateway(&s), bridges.iter_mut().find(|b| b.name == s.bridge))
            {
                b.gateways.push(gw);
            }
        }
        // The host is each subnet's IPv6 router at the /64's first address (`::1`).
        let subnet_bridges: HashMap<String, String> = self
            .db
            .subnets()?
            .into_iter()
            .map(|s| (s.id, s.bridge))
            .collect();
        for blk in self.db.subnet_ipv6_blocks()? {
            if let (Some((net, _)), Some(br)) =
                (parse_cidr6(&blk.cidr), subnet_bridges.get(&blk.subnet_id))
            {
                if let Some(b) = bridges.iter_mut().find(|b| &b.name == br) {
                    b.gateways6.push(Ipv6Addr::from(u128::from(net) + 1));
                }
            }
        }
        model.bridges = bridges;
        model.metadata = Some(std::net::SocketAddrV4::new(
            crate::imds::ADDRESS,
            crate::imds::PORT,
        ));
        model.api_port = self.cfg.ec2_api_vpc_endpoint;
        model.overlay = self.overlay_model()?;
        // EC2's IPv6 metadata address; whether an instance may use it is the service's
        // business (HttpProtocolIpv6), the firewall only lets it be reached.
        model.metadata6 = Some(std::net::SocketAddrV6::new(
            Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
            crate::imds::PORT,
            0,
            0,
        ));
        Ok(model)
    }

    /// Renders the firewall from the database and applies it whole; one apply at a time,
    /// each from the state at its start, so the last one always reflects the last change
    /// (requests an apply already covered share it: `applies`).
    pub async fn apply_firewall(&self) -> ApiResult<()> {
        #[cfg(test)]
        if self.firewall.refuse.load(Ordering::SeqCst) {
            return Err(ApiError::internal(
                "Cannot apply the firewall: refused (test)",
            ));
        }
        if !self.firewall.enabled.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.firewall
            .applies
            .run(|| async {
                let result = async {
                    let script = firewall::render(&self.ruleset()?).map_err(|e| {
                        ApiError::internal(format!("Cannot render the firewall: {e}"))
                    })?;
                    blocking(move || strato_net::nft::apply(&script))
                        .await
                        .map_err(|e| ApiError::internal(format!("Cannot apply the firewall: {e}")))
                }
                .await;
                crate::metrics::inc(&self.metrics.firewall_applies_total);
                if let Err(e) = &result {
                    crate::metrics::inc(&self.metrics.firewall_apply_failures_total);
                    tracing::error!(error = %e.message, "firewall apply failed");
                }
                result
            })
            .await
    }

    /// Gives every interface without a group its VPC's default group; how many there were.
    pub fn assign_default_groups(&self) -> ApiResult<usize> {
        let members: HashSet<String> = self
            .db
            .eni_memberships()?
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        let mut n = 0;
        for e in self.db.eni_hosts()? {
            if !members.contains(&e.id) {
                let g = self.default_group(&e.owner, &e.vpc_id)?;
                self.db.set_eni_groups(&e.id, &[g.id])?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// On daemon start: bridged traffic through the inet hooks, every interface without a
    /// group given its VPC's default group (interfaces made before security groups
    /// existed), and the firewall applied.
    pub async fn start_firewall(&self) -> Result<(), StartError> {
        if !self.firewall.enabled.load(Ordering::SeqCst) {
            return Ok(());
        }
        blocking(strato_net::nft::enable_bridge_netfilter)
            .await
            .map_err(StartError::Net)?;
        self.assign_default_groups()
            .map_err(|e| StartError::Net(e.message))?;
        self.apply_firewall()
            .await
            .map_err(|e| StartError::Net(e.message))
    }
}
