//! 1:1 NAT between public IPv4 addresses and instances' private addresses: the nftables
//! table `ip strato_nat`, rendered whole from a list of mappings and replaced atomically,
//! and the public addresses as /32s on the uplink so that the host answers ARP for them.
//!
//! The table holds a `prerouting` chain that rewrites the destination of traffic to a public
//! address (dnat) and a `postrouting` chain that rewrites the source of an instance's
//! traffic leaving through the uplink (snat). Connection tracking reverses both for replies.
//! Rules go to `nft -f -` (one transaction: the table is created if absent, deleted and
//! written again, so a reader never sees it half-done); the addresses go over rtnetlink.

use std::net::Ipv4Addr;

use crate::{link, validate_ifname, NetError};

/// The nftables table this module owns (family `ip`).
pub const TABLE: &str = "strato_nat";

/// One public address and the private address it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mapping {
    /// The public address (on the uplink).
    pub public: Ipv4Addr,
    /// The instance's private address.
    pub private: Ipv4Addr,
}

/// The whole `ip strato_nat` table for `mappings`, in `nft -f` syntax, mappings in order of
/// public address so the same state always renders the same text.
pub fn render(uplink: &str, mappings: &[Mapping]) -> Result<String, NetError> {
    validate_ifname(uplink)?;
    if uplink.contains(['"', '\\']) {
        return Err(NetError::InvalidName {
            name: uplink.to_owned(),
            reason: "contains a quote or a backslash",
        });
    }
    let mut sorted = mappings.to_vec();
    sorted.sort();
    let mut out = format!(
        "table ip {TABLE} {{\n\tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
    );
    for m in &sorted {
        out.push_str(&format!(
            "\t\tip daddr {} dnat to {}\n",
            m.public, m.private
        ));
    }
    out.push_str(
        "\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    for m in &sorted {
        out.push_str(&format!(
            "\t\toifname \"{uplink}\" ip saddr {} snat to {}\n",
            m.private, m.public
        ));
    }
    out.push_str("\t}\n}\n");
    Ok(out)
}

/// Replaces the `ip strato_nat` table with the one for `mappings`, in one transaction.
pub fn apply(uplink: &str, mappings: &[Mapping]) -> Result<(), NetError> {
    let table = render(uplink, mappings)?;
    // Creating the table first makes the delete valid whether or not it existed.
    nft(&format!(
        "table ip {TABLE} {{}}\ndelete table ip {TABLE}\n{table}"
    ))
}

/// Deletes the `ip strato_nat` table if it exists.
pub fn remove() -> Result<(), NetError> {
    nft(&format!("table ip {TABLE} {{}}\ndelete table ip {TABLE}\n"))
}

/// Makes the uplink's public /32s exactly `wanted`: adds the missing ones and deletes the
/// /32s that `is_public` claims (addresses of the pool) but `wanted` does not hold, so
/// addresses left behind by a crash go too. Other addresses of the uplink are left alone.
/// Returns the addresses it added.
pub fn sync_addresses(
    uplink: &str,
    wanted: &[Ipv4Addr],
    is_public: impl Fn(Ipv4Addr) -> bool,
) -> Result<Vec<Ipv4Addr>, NetError> {
    let have = link::link_addresses(uplink)?;
    let mut added = Vec::new();
    for (addr, prefix) in &have {
        if *prefix == 32 && is_public(*addr) && !wanted.contains(addr) {
            link::delete_address(uplink, *addr, 32)?;
        }
    }
    for addr in wanted {
        if !have.contains(&(*addr, 32)) {
            link::ensure_address(uplink, *addr, 32)?;
            added.push(*addr);
        }
    }
    Ok(added)
}

/// Turns on IPv4 forwarding in the calling thread's network namespace.
pub fn enable_ipv4_forwarding() -> Result<(), NetError> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(PATH).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(PATH, "1").map_err(|e| NetError::io(format!("write {PATH}"), e))
}

/// Turns on IPv6 forwarding in the calling thread's network namespace (every interface's
/// `forwarding`, through `all`). The host then ignores router advertisements on its own
/// interfaces, as a router does: an uplink with a routed prefix has static addressing.
pub fn enable_ipv6_forwarding() -> Result<(), NetError> {
    const PATH: &str = "/proc/sys/net/ipv6/conf/all/forwarding";
    if std::fs::read_to_string(PATH).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(PATH, "1").map_err(|e| NetError::io(format!("write {PATH}"), e))
}

/// Runs `nft -f -` with `script` on its standard input (one runner for the crate).
fn nft(script: &str) -> Result<(), NetError> {
    crate::nft::apply(script)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::testns::{in_netns, require_nft};

    fn m(public: [u8; 4], private: [u8; 4]) -> Mapping {
        Mapping {
            public: Ipv4Addr::from(public),
            private: Ipv4Addr::from(private),
        }
    }

    #[test]
    fn renders_the_whole_table_in_order() {
        let text = render(
            "uplink0",
            &[
                m([198, 51, 100, 18], [10, 10, 1, 5]),
                m([198, 51, 100, 17], [172, 31, 0, 4]),
            ],
        )
        .unwrap();
        assert_eq!(
            text,
            "table ip strato_nat {\n\
             \tchain prerouting {\n\
             \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
             \t\tip daddr 198.51.100.17 dnat to 172.31.0.4\n\
             \t\tip daddr 198.51.100.18 dnat to 10.10.1.5\n\
             \t}\n\
             \tchain postrouting {\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\toifname \"uplink0\" ip saddr 172.31.0.4 snat to 198.51.100.17\n\
             \t\toifname \"uplink0\" ip saddr 10.10.1.5 snat to 198.51.100.18\n\
             \t}\n\
             }\n"
        );
        let empty = render("uplink0", &[]).unwrap();
        assert!(!empty.contains("dnat") && empty.contains("chain postrouting"));
        // The name goes into the rules: one that could break out of the quotes is refused.
        assert!(render("up\"link", &[]).is_err());
        assert!(render("", &[]).is_err());
    }

    fn listing() -> String {
        let out = Command::new("nft")
            .args(["list", "table", "ip", TABLE])
            .output()
            .expect("nft list");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn applies_replaces_and_removes_in_a_namespace() {
        require_nft();
        in_netns(|| {
            link::testutil::veth_pair("up0", "out0", Ipv4Addr::new(198, 51, 100, 2), 24);
            let a = m([198, 51, 100, 17], [172, 31, 0, 4]);
            let b = m([198, 51, 100, 18], [172, 31, 0, 5]);
            apply("up0", &[a, b]).expect("first apply");
            let l = listing();
            assert!(
                l.contains("ip daddr 198.51.100.17 dnat to 172.31.0.4"),
                "{l}"
            );
            assert!(l.contains("snat to 198.51.100.18"), "{l}");
            apply("up0", &[b]).expect("second apply");
            let l = listing();
            assert!(!l.contains("198.51.100.17"), "{l}");
            assert!(
                l.contains("ip daddr 198.51.100.18 dnat to 172.31.0.5"),
                "{l}"
            );
            apply("up0", &[b]).expect("same again");

            let pool = |ip: Ipv4Addr| ip.octets()[..3] == [198, 51, 100] && ip.octets()[3] >= 16;
            let added = sync_addresses("up0", &[a.public, b.public], pool).expect("add both");
            assert_eq!(added, [a.public, b.public]);
            // A stray /32 of the pool (left by a crash) goes; other addresses stay.
            link::ensure_address("up0", Ipv4Addr::new(198, 51, 100, 30), 32).expect("stray");
            let added = sync_addresses("up0", &[b.public], pool).expect("keep one");
            assert!(added.is_empty(), "{added:?}");
            let mut have = link::link_addresses("up0").expect("addrs");
            have.sort();
            assert_eq!(
                have,
                vec![
                    (Ipv4Addr::new(198, 51, 100, 2), 24),
                    (Ipv4Addr::new(198, 51, 100, 18), 32)
                ]
            );
            assert!(matches!(
                sync_addresses("nolink0", &[], pool),
                Err(NetError::NoSuchLink(_))
            ));

            enable_ipv4_forwarding().expect("forwarding");
            let v = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("read");
            assert_eq!(v.trim(), "1");

            remove().expect("remove");
            assert!(listing().is_empty());
            remove().expect("remove again");
        });
    }
}
