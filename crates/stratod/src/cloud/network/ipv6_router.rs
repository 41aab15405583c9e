//! The host as each IPv6 subnet's router: the address `::1` of every subnet's /64 on its
//! VPC's bridge (EC2 reserves the first addresses of a subnet's block for its router; the
//! instances' addresses start past them), IPv6 forwarding in the daemon's namespace, and
//! what the router services (`crate::dhcp6`) read from the state store.
//!
//! [`Cloud::router6_sync`] makes a bridge's router addresses match its subnets' blocks; it
//! runs at daemon start and after AssociateSubnetCidrBlock and DisassociateSubnetCidrBlock.
//! Failures are logged, not returned: the blocks are recorded either way, and the next
//! start repairs the host.

use std::net::Ipv6Addr;

use crate::cloud::network::ipv6::Block;
use crate::cloud::network::plumbing::blocking;
use crate::cloud::Cloud;
use crate::dhcp6::RouterBook;
use crate::error::ApiResult;

/// The router's address in a subnet's /64: `::1`.
pub fn router_address(block: &Block) -> Ipv6Addr {
    Ipv6Addr::from(block.net | 1)
}

/// Whether `(a, len)` looks like a router address this module put on a bridge.
fn is_router_address(a: Ipv6Addr, len: u8) -> bool {
    len == 64 && u128::from(a) & 0xffff_ffff_ffff_ffff == 1 && !a.is_unicast_link_local()
}

impl RouterBook for Cloud {
    fn prefixes(&self, bridge: &str) -> ApiResult<Vec<(Ipv6Addr, u8)>> {
        Ok(self
            .db
            .bridge_ipv6_blocks(bridge)?
            .iter()
            // Blocks are checked when recorded; one that does not parse is left out.
            .filter_map(|c| Block::parse(c))
            .map(|b| (Ipv6Addr::from(b.net), b.prefix))
            .collect())
    }

    fn addresses(&self, bridge: &str, mac: &str) -> ApiResult<Option<Vec<Ipv6Addr>>> {
        let Some(lease) = self.db.dhcp6_lease(bridge, mac)? else {
            return Ok(None);
        };
        Ok(Some(
            lease.addrs.iter().filter_map(|a| a.parse().ok()).collect(),
        ))
    }
}

impl Cloud {
    /// At daemon start: the router addresses of every VPC bridge.
    pub async fn start_ipv6_routing(&self) {
        match self.db.vpcs() {
            Ok(vpcs) => {
                for v in vpcs {
                    self.router6_sync(&v.bridge).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list VPCs for IPv6 routing"),
        }
    }

    /// Puts `::1/64` of each IPv6 subnet on `bridge` there and takes off those of subnets
    /// that lost their block. A bridge that has no IPv6 subnet and never had is not touched.
    pub async fn router6_sync(&self, bridge: &str) {
        let want: Vec<Ipv6Addr> = match self.prefixes(bridge) {
            Ok(p) => p
                .iter()
                .map(|&(net, prefix)| {
                    router_address(&Block {
                        net: u128::from(net),
                        prefix,
                    })
                })
                .collect(),
            Err(e) => {
                tracing::error!(bridge, error = %e, "cannot read the IPv6 blocks of a bridge");
                return;
            }
        };
        let b = bridge.to_string();
        let r = blocking(move || {
            let have = strato_net::link6::addresses6(&b)?;
            let stale: Vec<Ipv6Addr> = have
                .iter()
                .filter(|&&(a, len)| is_router_address(a, len) && !want.contains(&a))
                .map(|&(a, _)| a)
                .collect();
            if want.is_empty() && stale.is_empty() {
                return Ok(());
            }
            strato_net::link6::enable_ipv6(&b)?;
            strato_net::link6::enable_ipv6_forwarding()?;
            for a in &want {
                strato_net::link6::ensure_address6(&b, *a, 64)?;
            }
            for a in stale {
                strato_net::link6::delete_address6(&b, a, 64)?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = r {
            tracing::warn!(bridge, error = %e, "cannot set up IPv6 routing on the bridge");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_is_address_one_of_the_subnet() {
        let b = Block::parse("2001:db8:0:1::/64").unwrap();
        assert_eq!(
            router_address(&b),
            "2001:db8:0:1::1".parse::<Ipv6Addr>().unwrap()
        );
        assert!(is_router_address("2001:db8:0:1::1".parse().unwrap(), 64));
        assert!(!is_router_address("2001:db8:0:1::1".parse().unwrap(), 128));
        assert!(!is_router_address("2001:db8:0:1::2".parse().unwrap(), 64));
        assert!(!is_router_address("fe80::1".parse().unwrap(), 64));
    }
}
