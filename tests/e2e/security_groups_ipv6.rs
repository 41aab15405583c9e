//! IPv6 security groups and anti-spoofing on a daemon's bridge, with namespace hosts: a
//! stand-in on an interface's tap (its MAC, its IPv4 and IPv6 addresses) is that interface
//! to the firewall. An ingress rule `::/0` tcp lets a connection in and no rule keeps it
//! out (nor does the IPv6 rule let IPv4 in); the group's `::/0` egress (the VPC has IPv6)
//! lets it out; a spoofed IPv6 source is dropped at the bridge, and so is a neighbour
//! advertisement for someone else's address (which an unguarded host's would change);
//! from the outside namespace, through the uplink's routed prefix, the interface's address
//! is reached directly while its group allows it.

#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strato_e2e::{Daemon, NsHost};

/// Whether `connects` turns true within `secs` (the firewall applies asynchronously to
/// nothing here, but neighbour discovery takes a moment after an address change).
fn connects_within(host: &NsHost, addr: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if host.echoes(addr) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Runs `ip ARGS` and insists on success.
fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// The output of `ip ARGS`.
fn ip_out(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The MAC of `eth0` in namespace `ns`.
fn mac_of(ns: &str) -> String {
    let out = ip_out(&["-n", ns, "-o", "link", "show", "eth0"]);
    let i = out.find("link/ether ").unwrap() + "link/ether ".len();
    out[i..i + 17].to_string()
}

/// What `ns` believes `addr`'s MAC to be, if anything.
fn neighbour(ns: &str, addr: &str) -> Option<String> {
    let out = ip_out(&["-n", ns, "-6", "neigh", "show", addr, "dev", "eth0"]);
    let i = out.find("lladdr ")? + "lladdr ".len();
    out.get(i..i + 17).map(str::to_string)
}

/// Sends, from `host`, an unsolicited neighbour advertisement to `to` claiming `target`
/// for `mac` (override set): what a guest would send to take over someone's address.
fn advertise(host: &NsHost, to: Ipv6Addr, target: Ipv6Addr, mac: [u8; 6]) {
    strato_e2e::in_netns(&host.ns, move || {
        // SAFETY: plain socket calls on a socket this closure owns; every pointer passed
        // points at a live local of the size given, and the results are checked.
        unsafe {
            let fd = libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            // Receivers ignore neighbour discovery that crossed a router.
            let hops: libc::c_int = 255;
            let rc = libc::setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_UNICAST_HOPS,
                (&hops as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(rc, 0);
            // Type 136, code 0, checksum (the kernel's), flags: override.
            let mut pkt = vec![136u8, 0, 0, 0, 0x20, 0, 0, 0];
            pkt.extend_from_slice(&target.octets());
            // Target link-layer address option.
            pkt.extend_from_slice(&[2, 1]);
            pkt.extend_from_slice(&mac);
            let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = to.octets();
            let n = libc::sendto(
                fd,
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&sa as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            );
            libc::close(fd);
            assert_eq!(n, pkt.len() as isize, "{}", std::io::Error::last_os_error());
        }
    });
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(mac.split(':')) {
        *o = u8::from_str_radix(p, 16).unwrap();
    }
    out
}

/// Gives namespace `ns`'s `eth0` an IPv6 address at once (no duplicate detection wait).
fn add6(ns: &str, addr: &str) {
    ip(&["-n", ns, "-6", "addr", "add", addr, "dev", "eth0", "nodad"]);
}

#[test]
fn ipv6_rules_anti_spoofing_and_the_routed_uplink() {
    let config = json!({
        "ipv6_pool": "2001:db8:40::/48",
        "uplink": {"ipv6_prefix": "2001:db8::/32"},
    });
    let d = Daemon::start_with_uplink("sgv6", config);
    let (_, subnet) = d.default_subnet_with_ipv6("2001:db8:40::/64");
    // A group made in a VPC with IPv6: all IPv6 egress beside all IPv4 egress.
    let g = d.json(&[
        "create-security-group",
        "--group-name",
        "web6",
        "--description",
        "IPv6 web",
    ]);
    let sg = g["GroupId"].as_str().unwrap().to_string();
    let shown = d.json(&["describe-security-groups", "--group-ids", &sg]);
    let egress = &shown["SecurityGroups"][0]["IpPermissionsEgress"][0];
    assert_eq!(egress["Ipv6Ranges"][0]["CidrIpv6"], "::/0", "{shown}");
    assert_eq!(egress["IpRanges"][0]["CidrIp"], "0.0.0.0/0", "{shown}");

    let v = d.json(&[
        "create-network-interface",
        "--subnet-id",
        &subnet,
        "--groups",
        &sg,
        "--ipv6-addresses",
        "2001:db8:40::10",
    ]);
    let eni = &v["NetworkInterface"];
    let id = eni["NetworkInterfaceId"].as_str().unwrap();
    let mac = eni["MacAddress"].as_str().unwrap().to_string();
    let addr4 = eni["PrivateIpAddress"].as_str().unwrap().to_string();
    let tap = format!("tap{}", &id[4..16]);
    let ns = format!("{}-tap", d.ns);
    ip(&["netns", "add", &ns]);
    let host = NsHost {
        ns: ns.clone(),
        port: tap.clone(),
    };
    ip(&[
        "-n", &d.ns, "link", "add", &tap, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ]);
    ip(&["-n", &d.ns, "link", "set", &tap, "master", "strato0", "up"]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    // The MAC before the link comes up: the kernel derives the link-local address from it,
    // the one the guard allows.
    ip(&["-n", &ns, "link", "set", "eth0", "address", &mac]);
    ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{addr4}/20"),
        "dev",
        "eth0",
    ]);
    ip(&["-n", &ns, "link", "set", "eth0", "up"]);
    add6(&ns, "2001:db8:40::10/64");
    let hc = d.host("hc6", "strato0", "172.31.0.201/20", Some("172.31.0.1"));
    add6(&hc.ns, "2001:db8:40::c9/64");
    let hd = d.host("hd6", "strato0", "172.31.0.202/20", Some("172.31.0.1"));
    add6(&hd.ns, "2001:db8:40::ca/64");
    host.echo_server(2222);
    hc.echo_server(7070);

    // No ingress rule: nothing comes in. The group's ::/0 egress lets it out.
    assert!(!hc.echoes("[2001:db8:40::10]:2222"), "no rule, no way in");
    assert!(
        connects_within(&host, "[2001:db8:40::c9]:7070", 5),
        "out through ::/0 egress, replies back"
    );
    // An IPv6 rule lets IPv6 in, and not IPv4.
    d.cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "2222",
        "--cidr-ipv6",
        "::/0",
    ]);
    assert!(
        hc.echoes("[2001:db8:40::10]:2222"),
        "::/0 tcp 2222 lets it in"
    );
    assert!(
        !hc.echoes(&format!("{addr4}:2222")),
        "an IPv6 rule is no IPv4 rule"
    );
    d.cli_err(
        "InvalidPermission.Duplicate",
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--protocol",
            "tcp",
            "--port",
            "2222",
            "--cidr-ipv6",
            "0::/0",
        ],
    );
    d.cli_err(
        "InvalidParameterValue",
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &sg,
            "--protocol",
            "tcp",
            "--port",
            "2222",
            "--cidr-ipv6",
            "2001:db8::1/64",
        ],
    );

    // A neighbour advertisement for someone else's address (hc's, to hd, which knows it):
    // from a host the guard does not know it takes over hd's entry, so the message is one
    // Linux heeds ...
    let he = d.host("he6", "strato0", "172.31.0.203/20", Some("172.31.0.1"));
    add6(&he.ns, "2001:db8:40::cb/64");
    let c9: Ipv6Addr = "2001:db8:40::c9".parse().unwrap();
    let ca: Ipv6Addr = "2001:db8:40::ca".parse().unwrap();
    let hc_mac = mac_of(&hc.ns);
    assert!(hd.ping("2001:db8:40::c9", 2), "hd reaches hc");
    assert_eq!(neighbour(&hd.ns, "2001:db8:40::c9"), Some(hc_mac.clone()));
    let he_mac = mac_of(&he.ns);
    advertise(&he, ca, c9, mac_bytes(&he_mac));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        neighbour(&hd.ns, "2001:db8:40::c9"),
        Some(he_mac),
        "an unguarded host's advertisement is heeded"
    );
    ip(&["-n", &hd.ns, "-6", "neigh", "flush", "all"]);
    assert!(hd.ping("2001:db8:40::c9", 2), "hd reaches hc again");
    assert_eq!(neighbour(&hd.ns, "2001:db8:40::c9"), Some(hc_mac.clone()));
    // ... from the interface's tap it is dropped at the bridge: hd keeps hc's MAC.
    advertise(&host, ca, c9, mac_bytes(&mac));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        neighbour(&hd.ns, "2001:db8:40::c9"),
        Some(hc_mac),
        "an advertisement for hc's address from the interface"
    );

    // A spoofed source: the interface sending as another address of the /64 is dropped.
    ip(&[
        "-n", &ns, "-6", "addr", "flush", "dev", "eth0", "scope", "global",
    ]);
    add6(&ns, "2001:db8:40::11/64");
    assert!(
        !host.echoes("[2001:db8:40::c9]:7070"),
        "a spoofed IPv6 source"
    );
    ip(&[
        "-n", &ns, "-6", "addr", "flush", "dev", "eth0", "scope", "global",
    ]);
    add6(&ns, "2001:db8:40::10/64");
    ip(&["-n", &hc.ns, "-6", "neigh", "flush", "all"]);
    assert!(
        connects_within(&host, "[2001:db8:40::c9]:7070", 5),
        "as itself again"
    );

    // The outside, through the uplink's routed prefix: the host routes to the subnet's /64
    // (its router address on the bridge), no NAT.
    let out = d.outside();
    d.route_outside_ipv6("2001:db8:40::/48");
    if !ip_out(&["-n", &d.ns, "-6", "addr", "show", "dev", "strato0"]).contains("2001:db8:40::1/64")
    {
        ip(&[
            "-n",
            &d.ns,
            "-6",
            "addr",
            "add",
            "2001:db8:40::1/64",
            "dev",
            "strato0",
            "nodad",
        ]);
    }
    ip(&[
        "-n",
        &ns,
        "-6",
        "route",
        // The daemon's router advertisements may have set a default route already.
        "replace",
        "default",
        "via",
        "2001:db8:40::1",
    ]);
    assert!(
        connects_within(out, "[2001:db8:40::10]:2222", 5),
        "from outside, allowed"
    );
    d.cli(&[
        "revoke-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "tcp",
        "--port",
        "2222",
        "--cidr-ipv6",
        "::/0",
    ]);
    assert!(
        !out.echoes("[2001:db8:40::10]:2222"),
        "from outside, revoked"
    );
    let v: Value = d.json(&["describe-security-groups", "--group-ids", &sg]);
    assert_eq!(v["SecurityGroups"][0]["IpPermissions"], json!([]), "{v}");
}
