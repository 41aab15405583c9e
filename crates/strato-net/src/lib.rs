//! Host networking for strato: the Linux bridge of a VPC with its subnets' gateways, the persistent tap
//! device behind each network interface, and the ARP probe of instance status checks.
//!
//! Everything is blocking and talks to the kernel directly: rtnetlink over a
//! `NETLINK_ROUTE` socket for links and addresses, `/dev/net/tun` ioctls for taps, and an
//! `AF_PACKET` socket for ARP. Nothing shells out to `ip`, and there is no async runtime
//! or netlink crate underneath, so the daemon calls these functions from
//! `spawn_blocking`. Every call opens its own socket in the network namespace of the
//! calling thread, which is what lets the tests run in a throwaway namespace.
//!
//! - [`link`]: [`link::ensure_bridge`], [`link::ensure_bridge_only`],
//!   [`link::delete_address`], [`link::create_tap`], [`link::open_tap`], [`link::delete_link`],
//!   [`link::link_status`] and friends.
//! - [`link6`]: IPv6 addresses on bridges ([`link6::ensure_address6`], ...), and the
//!   per-namespace IPv6 switches ([`link6::enable_ipv6_forwarding`]).
//! - [`arp`]: [`arp::arp_probe`] and the pure frame functions it is built from.
//! - [`firewall`] and [`nft`]: security groups rendered as nftables tables, and applied
//!   through `nft -f -` (the one place the crate runs a program).
//! - [`nat`]: [`nat::apply`] of the 1:1 NAT table of public addresses, and the /32s on
//!   the uplink ([`nat::sync_addresses`]); the rules go through `nft -f -`.
//! - [`vxlan`]: a VPC's VXLAN device on its bridge ([`vxlan::ensure_vxlan`]) and its
//!   FDB: the peer hosts ([`vxlan::set_peers`]) and remote MACs.
//! - [`mac`]: [`mac::MacAddr`], parsing, printing and generation of MAC addresses.

pub mod arp;
mod error;
pub mod firewall;
pub mod link;
pub mod link6;
pub mod mac;
pub mod nat;
mod netlink;
pub mod nft;
#[cfg(test)]
mod testns;
mod tun;
pub mod vxlan;

pub use error::NetError;
pub use link::LinkStatus;
pub use mac::MacAddr;

/// Longest interface name the kernel accepts (`IFNAMSIZ` less the terminating NUL).
pub const MAX_IFNAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Checks that `name` is a name the kernel accepts for a network interface.
pub fn validate_ifname(name: &str) -> Result<(), NetError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_IFNAME_LEN {
        "longer than 15 bytes"
    } else if name == "." || name == ".." {
        "reserved"
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b <= b' ' || b == 0x7f)
    {
        "contains '/', ':', whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(NetError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_validation() {
        for ok in ["br0", "tap-0123456789a", "eth0.100", "a"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "tap-0123456789ab",
            ".",
            "..",
            "a/b",
            "a b",
            "a:1",
            "a\0",
            "a\n",
        ] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }
}
