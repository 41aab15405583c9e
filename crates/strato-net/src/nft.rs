//! Applying nftables scripts with `nft -f -` (one script is one kernel transaction: it
//! applies whole or not at all), and the `br_netfilter` switches that make bridged IPv4 and IPv6
//! traverse the inet family's hooks. Both act in the calling thread's network namespace.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::NetError;

/// The `nft` program: from the usual sbin folders, else whatever `PATH` finds.
pub(crate) fn nft_program() -> &'static str {
    for p in ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"] {
        if std::path::Path::new(p).exists() {
            return p;
        }
    }
    "nft"
}

/// Runs `nft` with `args`, feeding `stdin`; its standard output, or its error output as
/// [`NetError::Nft`].
fn run(args: &[&str], stdin: &str) -> Result<String, NetError> {
    let mut child = Command::new(nft_program())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::io("run nft", e))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .map_err(|e| NetError::io("write to nft", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::io("wait for nft", e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(NetError::Nft(if err.is_empty() {
            format!("nft exited with {}", out.status)
        } else {
            err
        }));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Applies a script atomically (`nft -f -`).
pub fn apply(script: &str) -> Result<(), NetError> {
    run(&["-f", "-"], script).map(|_| ())
}

/// The text of one table (`family` is `inet`, `bridge`, ...), or `None` if it does not
/// exist.
pub fn list_table(family: &str, name: &str) -> Result<Option<String>, NetError> {
    match run(&["list", "table", family, name], "") {
        Ok(s) => Ok(Some(s)),
        Err(NetError::Nft(e)) if e.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes bridged IPv4 and IPv6 traverse the inet hooks in this namespace
/// (`net.bridge.bridge-nf-call-iptables = 1`, `…-ip6tables = 1`); without `br_netfilter`
/// loaded, security groups cannot be enforced, which is an error. Both or neither: the
/// guard lets guests' IPv6 onto the bridge, which without the second knob would bypass
/// every group.
pub fn enable_bridge_netfilter() -> Result<(), NetError> {
    for knob in [
        "/proc/sys/net/bridge/bridge-nf-call-iptables",
        "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
    ] {
        if !std::path::Path::new(knob).exists() {
            return Err(NetError::io(
                format!("enable bridge netfilter ({knob} is missing: load br_netfilter with `modprobe br_netfilter`)"),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        if std::fs::read_to_string(knob).is_ok_and(|v| v.trim() == "1") {
            continue;
        }
        std::fs::write(knob, "1").map_err(|e| NetError::io(format!("write 1 to {knob}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::firewall::{self, EniRules, GroupSet, Peer, Proto, Rule, Ruleset};
    use crate::testns::{in_netns, require_nft};

    #[test]
    fn applies_replaces_and_refuses_in_a_namespace() {
        require_nft();
        in_netns(|| {
            crate::link::ensure_bridge("br0", Ipv4Addr::new(10, 0, 0, 1), 24).expect("bridge");
            crate::link::create_tap("tap0", "br0", None).expect("tap");
            let eni = EniRules {
                id: "eni-0123456789abcdef0".into(),
                tap: "tap0".into(),
                bridge: "br0".into(),
                mac: "02:00:00:00:00:01".parse().expect("mac"),
                addrs: vec![Ipv4Addr::new(10, 0, 0, 4)],
                addrs6: vec!["2001:db8::4".parse().expect("v6")],
                source_dest_check: false,
                ingress: vec![
                    Rule {
                        proto: Proto::Tcp(22, 22),
                        peer: Peer::Cidr(Ipv4Addr::new(10, 0, 0, 0), 24),
                    },
                    Rule {
                        proto: Proto::Icmp(Some(8), None),
                        peer: Peer::Group("sg-0123456789abcdef0".into()),
                    },
                    Rule {
                        proto: Proto::Icmpv6(Some(128), None),
                        peer: Peer::Group("sg-0123456789abcdef0".into()),
                    },
                    Rule {
                        proto: Proto::Tcp(22, 22),
                        peer: Peer::Cidr6(std::net::Ipv6Addr::UNSPECIFIED, 0),
                    },
                ],
                egress: vec![Rule {
                    proto: Proto::All,
                    peer: Peer::Cidr(Ipv4Addr::UNSPECIFIED, 0),
                }],
            };
            let rs = Ruleset {
                enis: vec![eni],
                groups: vec![GroupSet {
                    id: "sg-0123456789abcdef0".into(),
                    members: vec![("br0".into(), Ipv4Addr::new(10, 0, 0, 4))],
                    members6: vec![("br0".into(), "2001:db8::4".parse().expect("v6"))],
                }],
                bridges: vec![firewall::HostBridge {
                    name: "br0".into(),
                    gateways: vec![Ipv4Addr::new(10, 0, 0, 1)],
                    gateways6: vec!["2001:db8::1".parse().expect("v6")],
                }],
                metadata: Some(std::net::SocketAddrV4::new(
                    Ipv4Addr::new(169, 254, 169, 254),
                    80,
                )),
                // nft itself checks the endpoint rule's syntax.
                api_port: Some(8773),
                metadata6: Some(std::net::SocketAddrV6::new(
                    "fd00:ec2::254".parse().expect("v6"),
                    80,
                    0,
                    0,
                )),
                overlay: None,
            };
            apply(&firewall::render(&rs).expect("render")).expect("apply");
            // Applying again replaces the tables rather than failing or doubling them.
            apply(&firewall::render(&rs).expect("render")).expect("apply again");
            let filter = list_table("inet", firewall::FILTER_TABLE)
                .expect("list")
                .expect("filter table");
            assert!(filter.contains("jump in_eni_0123456789abcdef0"), "{filter}");
            assert!(filter.contains("tcp dport 22"), "{filter}");
            assert_eq!(filter.matches("chain forward").count(), 1, "{filter}");
            assert!(
                filter.contains("iifname @vpc_bridges jump from_guests"),
                "{filter}"
            );
            assert!(filter.contains("\"br0\" . 10.0.0.1"), "{filter}");
            let guard = list_table("bridge", firewall::GUARD_TABLE)
                .expect("list")
                .expect("guard table");
            assert!(
                guard.contains("ether saddr != 02:00:00:00:00:01"),
                "{guard}"
            );
            assert!(guard.contains("\"tap0\" : jump guard_eni_0123456789abcdef0"));
            assert!(guard.contains("ip saddr != @eni_addrs return"), "{guard}");
            assert!(guard.contains("nd-neighbor-advert"), "{guard}");
            assert!(filter.contains("jump in_eni_0123456789abcdef0"), "{filter}");
            assert!(filter.contains("@eni_in6"), "{filter}");

            // With a VXLAN port: nft takes the overlay's sets and chains too.
            let mut with = rs.clone();
            with.overlay = Some(firewall::Overlay {
                ports: vec!["svx0".into()],
                underlay: vec![Ipv4Addr::new(10, 250, 0, 11)],
                peers: vec![Ipv4Addr::new(10, 250, 0, 12)],
                port: crate::vxlan::VXLAN_PORT,
            });
            apply(&firewall::render(&with).expect("render")).expect("apply with overlay");
            let guard = list_table("bridge", firewall::GUARD_TABLE)
                .expect("list")
                .expect("guard table");
            assert!(guard.contains("jump from_overlay"), "{guard}");
            assert!(guard.contains("ether saddr @eni_macs"), "{guard}");
            assert!(guard.contains("oifname @overlay_ports"), "{guard}");
            let filter = list_table("inet", firewall::FILTER_TABLE)
                .expect("list")
                .expect("filter table");
            assert!(filter.contains("ip saddr != @overlay_peers"), "{filter}");
            assert!(filter.contains("ip daddr @underlay"), "{filter}");
            // An overlay with nothing in it yet (no VPC, no peer) is valid too.
            let bare = Ruleset {
                overlay: Some(firewall::Overlay::default()),
                ..Ruleset::default()
            };
            apply(&firewall::render(&bare).expect("render")).expect("empty overlay");

            // A bad script changes nothing and says why.
            let err =
                apply("table inet strato_filter {}\ndelete table inet strato_filter\nbogus\n")
                    .expect_err("bad script");
            assert!(
                matches!(err, NetError::Nft(ref m) if !m.is_empty()),
                "{err}"
            );
            assert!(list_table("inet", firewall::FILTER_TABLE)
                .expect("list")
                .is_some());

            // An empty model still renders to valid tables; the flush removes them.
            apply(&firewall::render(&Ruleset::default()).expect("render")).expect("empty");
            apply(&firewall::render_flush()).expect("flush");
            apply(&firewall::render_flush()).expect("flush again");
            assert!(list_table("inet", firewall::FILTER_TABLE)
                .expect("list")
                .is_none());
            assert!(list_table("bridge", firewall::GUARD_TABLE)
                .expect("list")
                .is_none());

            // The daemon refuses to start without it, so the test needs it too.
            enable_bridge_netfilter().expect("br_netfilter");
            let v = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
                .expect("knob");
            assert_eq!(v.trim(), "1");
            let v = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-ip6tables")
                .expect("knob");
            assert_eq!(v.trim(), "1");
        });
    }
}
