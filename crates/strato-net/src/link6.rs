//! IPv6 on the daemon's links: the router address of each subnet's /64 and the metadata
//! service's `fd00:ec2::254` on a VPC bridge, and the namespace's IPv6 switches
//! (forwarding, IPv6 on a bridge). Idempotent like [`crate::link`].
//!
//! Addresses are added without duplicate address detection (`IFA_F_NODAD`): the daemon
//! owns these addresses on its own bridge, and a tentative address could not be bound
//! (by the metadata service) or used as a source for the ~1 s DAD takes.

use std::io;
use std::net::Ipv6Addr;

use crate::netlink::{
    read_u32, Attrs, Message, Socket, IFADDRMSG_LEN, IFA_ADDRESS, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_EXCL, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR,
};
use crate::{validate_ifname, NetError};

/// `IFA_F_NODAD`: no duplicate address detection.
const IFA_F_NODAD: u8 = 0x02;

/// The index of link `name`, or `NoSuchLink`.
fn index_of(name: &str) -> Result<u32, NetError> {
    validate_ifname(name)?;
    let c = std::ffi::CString::new(name).map_err(|_| NetError::NoSuchLink(name.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(NetError::NoSuchLink(name.to_owned()));
    }
    Ok(index)
}

fn check_prefix(prefix_len: u8) -> Result<(), NetError> {
    if prefix_len > 128 {
        return Err(NetError::InvalidPrefix(prefix_len));
    }
    Ok(())
}

/// Gives link `name` the IPv6 address `addr/prefix_len` unless it has it already.
pub fn ensure_address6(name: &str, addr: Ipv6Addr, prefix_len: u8) -> Result<(), NetError> {
    check_prefix(prefix_len)?;
    let index = index_of(name)?;
    let mut sock = Socket::open().map_err(|e| NetError::netlink("open netlink", e))?;
    let mut msg = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    msg.ifaddrmsg6(prefix_len, IFA_F_NODAD, index)
        .attr(IFA_ADDRESS, &addr.octets());
    match sock.request(msg) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(NetError::netlink(
            format!("add {addr}/{prefix_len} to {name}"),
            e,
        )),
    }
}

/// Removes `addr/prefix_len` from link `name`; an address or link already gone is `Ok`.
pub fn delete_address6(name: &str, addr: Ipv6Addr, prefix_len: u8) -> Result<(), NetError> {
    check_prefix(prefix_len)?;
    let index = match index_of(name) {
        Err(NetError::NoSuchLink(_)) => return Ok(()),
        other => other?,
    };
    let mut sock = Socket::open().map_err(|e| NetError::netlink("open netlink", e))?;
    let mut msg = Message::new(RTM_DELADDR, 0);
    msg.ifaddrmsg6(prefix_len, 0, index)
        .attr(IFA_ADDRESS, &addr.octets());
    match sock.request(msg) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
        Err(e) => Err(NetError::netlink(
            format!("delete {addr}/{prefix_len} from {name}"),
            e,
        )),
    }
}

/// The IPv6 addresses of link `name` (link-local ones included), with prefix lengths.
pub fn addresses6(name: &str) -> Result<Vec<(Ipv6Addr, u8)>, NetError> {
    let index = index_of(name)?;
    let mut sock = Socket::open().map_err(|e| NetError::netlink("open netlink", e))?;
    list(&mut sock, index).map_err(|e| NetError::netlink(format!("list addresses of {name}"), e))
}

fn list(sock: &mut Socket, index: u32) -> io::Result<Vec<(Ipv6Addr, u8)>> {
    let mut msg = Message::new(RTM_GETADDR, NLM_F_DUMP);
    msg.ifaddrmsg6(0, 0, 0);
    let mut out = Vec::new();
    for reply in sock.request(msg)?.iter().filter(|r| r.ty == RTM_NEWADDR) {
        let p = &reply.payload;
        let (Some(&family), Some(&prefix), Some(ifindex)) = (p.first(), p.get(1), read_u32(p, 4))
        else {
            continue;
        };
        if i32::from(family) != libc::AF_INET6 || ifindex != index {
            continue;
        }
        for (ty, data) in Attrs::new(p.get(IFADDRMSG_LEN..).unwrap_or_default()) {
            if let (IFA_ADDRESS, Ok(octets)) = (ty, <[u8; 16]>::try_from(data)) {
                out.push((Ipv6Addr::from(octets), prefix));
            }
        }
    }
    Ok(out)
}

fn write_sysctl(path: &str, value: &str) -> Result<(), NetError> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|e| NetError::io(format!("write {path}"), e))
}

/// Turns on IPv6 forwarding in the calling thread's network namespace (and with it, as
/// Linux does for a router, stops the namespace's links from taking advertisements).
pub fn enable_ipv6_forwarding() -> Result<(), NetError> {
    write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
}

/// Makes sure IPv6 is on for link `name` (a namespace may start with it off for new
/// links), that the link takes no router advertisements (the daemon is the router), and
/// that its addresses skip duplicate address detection: a bridge gets its link-local
/// address when its first port comes up, and while that address is tentative the kernel
/// would send advertisements from a global one, which hosts must ignore (RFC 4861 6.1.2).
pub fn enable_ipv6(name: &str) -> Result<(), NetError> {
    validate_ifname(name)?;
    let conf = |key: &str| format!("/proc/sys/net/ipv6/conf/{name}/{key}");
    write_sysctl(&conf("accept_dad"), "0")?;
    write_sysctl(&conf("disable_ipv6"), "0")?;
    write_sysctl(&conf("accept_ra"), "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testns::in_netns;

    #[test]
    fn addresses_come_and_go_idempotently() {
        in_netns(|| {
            crate::link::ensure_bridge_only("br6").expect("bridge");
            enable_ipv6("br6").expect("ipv6 on");
            let router: Ipv6Addr = "2001:db8:0:1::1".parse().unwrap();
            let imds: Ipv6Addr = "fd00:ec2::254".parse().unwrap();
            ensure_address6("br6", router, 64).expect("add");
            ensure_address6("br6", router, 64).expect("add again");
            ensure_address6("br6", imds, 128).expect("add imds");
            let have = addresses6("br6").expect("list");
            assert!(have.contains(&(router, 64)), "{have:?}");
            assert!(have.contains(&(imds, 128)), "{have:?}");
            delete_address6("br6", router, 64).expect("delete");
            delete_address6("br6", router, 64).expect("delete again");
            assert!(!addresses6("br6").expect("list").contains(&(router, 64)));
            assert!(matches!(
                ensure_address6("nolink0", router, 64),
                Err(NetError::NoSuchLink(_))
            ));
            delete_address6("nolink0", router, 64).expect("a missing link is fine");
            assert!(matches!(
                ensure_address6("br6", router, 129),
                Err(NetError::InvalidPrefix(129))
            ));
            enable_ipv6_forwarding().expect("forwarding");
            let v = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/forwarding").unwrap();
            assert_eq!(v.trim(), "1");
        });
    }
}
