//! IPv6 with a real guest: the probe (probe.dhcp6) on an instance with two IPv6 addresses
//! learns exactly its interface's addresses by stateful DHCPv6 and its default router by a
//! router solicitation (its console lines), and answers neighbour discovery and ping over
//! IPv6 from a namespace host in its VPC and from the uplink's outside namespace (the
//! routed prefix, no NAT) only while its group allows ICMPv6. The instance status check
//! passes on a guest that has no IPv4 address at all (probe.noip4: ARP gets no answer),
//! by the neighbour solicitation for its IPv6 address; the same guest without IPv6
//! addresses is impaired. That guest's script pings a host as itself (answered) and
//! another host from an address it does not own (dropped at the bridge: the host hears
//! nothing).
//!
//! strato's model gives every interface a private IPv4 address (there are no IPv6-only
//! subnets), so "IPv6-only" here is the guest's side: it ignores its IPv4 address.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strato_e2e::{fast_config, Daemon, NsHost};

const T: Duration = Duration::from_secs(60);

/// Runs `ip ARGS` and insists on success.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// Gives namespace `ns`'s `eth0` an IPv6 address at once (no duplicate detection wait).
fn add6(ns: &str, addr: &str) {
    ip(&["-n", ns, "-6", "addr", "add", addr, "dev", "eth0", "nodad"]);
}

/// Whether one `ping -6` from `host` to `addr` is answered within a second.
fn ping6(host: &NsHost, addr: &str) -> bool {
    host.exec(&["ping", "-6", "-c", "1", "-W", "1", addr])
        .status
        .success()
}

/// Whether `ping6` succeeds within `secs` (neighbour discovery takes a moment).
fn ping6_within(host: &NsHost, addr: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if ping6(host, addr) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn register(d: &Daemon, name: &str, boot_args: &str) -> String {
    let bundle = strato_e2e::probe_bundle();
    let v = d.json(&[
        "register-image",
        "--name",
        name,
        "--bundle",
        bundle.to_str().unwrap(),
        "--boot-args",
        boot_args,
        "--block-device-mappings",
        r#"[{"DeviceName":"/dev/vda","Ebs":{"VolumeSize":1,"DeleteOnTermination":true}}]"#,
    ]);
    v["ImageId"].as_str().unwrap().to_string()
}

/// The IPv6 addresses DescribeInstances gives an instance's first interface.
fn ipv6_of(inst: &Value) -> BTreeSet<String> {
    inst["NetworkInterfaces"][0]["Ipv6Addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Ipv6Address"].as_str().unwrap().to_string())
        .collect()
}

/// The `probe: ip6 <addr>` lines of a console (not the link-local or router lines).
fn console_ipv6(console: &str) -> BTreeSet<String> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix("probe: ip6 "))
        .filter(|r| !r.starts_with("link-local ") && !r.starts_with("router "))
        .map(str::to_string)
        .collect()
}

/// The ICMPv6 echo requests a namespace host has received.
fn echo_requests(host: &NsHost) -> u64 {
    let out = host.exec(&["cat", "/proc/net/snmp6"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Icmp6InEchos"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap()
}

fn icmpv6(d: &Daemon, verb: &str, sg: &str) {
    d.cli(&[
        verb,
        "--group-id",
        sg,
        "--ip-permissions",
        r#"[{"IpProtocol":"icmpv6","FromPort":-1,"ToPort":-1,"Ipv6Ranges":[{"CidrIpv6":"::/0"}]}]"#,
    ]);
}

#[test]
fn a_probe_guest_gets_its_ipv6_addresses_by_dhcpv6_and_answers_ping_through_its_group() {
    let mut config = fast_config();
    config["ipv6_pool"] = "2001:db8:40::/48".into();
    config["uplink"] = json!({"ipv6_prefix": "2001:db8::/32"});
    let d = Daemon::start_with_uplink("ip6g", config);
    d.default_subnet_with_ipv6("2001:db8:40::/64");
    let g = d.json(&[
        "create-security-group",
        "--group-name",
        "ping6",
        "--description",
        "ICMPv6 in when authorized",
    ]);
    let sg = g["GroupId"].as_str().unwrap().to_string();
    // A host on the bridge first: the bridge has carrier (and its link-local address, the
    // router advertisements' source) before the guest asks for a router.
    let hc = d.host("hc", "strato0", "172.31.0.201/20", Some("172.31.0.1"));
    add6(&hc.ns, "2001:db8:40::c9/64");
    let hd = d.host("hd", "strato0", "172.31.0.202/20", Some("172.31.0.1"));
    add6(&hd.ns, "2001:db8:40::ca/64");

    let ami = register(&d, "probe-dhcp6", "console=ttyS0 probe.dhcp6");
    let id = d
        .run(
            &ami,
            &["--ipv6-address-count", "2", "--security-group-ids", &sg],
        )
        .remove(0);
    d.wait_state(&id, "running", T);
    let inst = d.instance(&id);
    let want = ipv6_of(&inst);
    assert_eq!(want.len(), 2, "{inst}");
    let console = d.wait_console(&id, "probe: idle", T);
    assert!(!console.contains("probe: dhcp6 failed"), "{console}");
    assert_eq!(
        console_ipv6(&console),
        want,
        "exactly the ENI's addresses:\n{console}"
    );
    let mac = inst["NetworkInterfaces"][0]["MacAddress"].as_str().unwrap();
    let m: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).unwrap())
        .collect();
    let ll = std::net::Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 2, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    );
    assert!(
        console.contains(&format!("probe: ip6 link-local {ll}\n")),
        "{ll}:\n{console}"
    );
    // The daemon's advertisement names the bridge's link-local address; one missed at
    // boot comes again within the advertisement interval.
    d.wait_console(&id, "probe: ip6 router fe80::", T);

    // In the VPC: nothing until the group allows ICMPv6, then both addresses answer.
    let addrs: Vec<String> = want.iter().cloned().collect();
    for a in &addrs {
        assert!(!ping6(&hc, a), "{a}: no rule, no ping");
    }
    icmpv6(&d, "authorize-security-group-ingress", &sg);
    for a in &addrs {
        assert!(ping6_within(&hc, a, 10), "{a}: allowed from the VPC");
    }

    // From outside, through the uplink's routed prefix (the guest answers the router's MAC).
    let out = d.outside();
    d.route_outside_ipv6("2001:db8:40::/48");
    for a in &addrs {
        assert!(ping6_within(out, a, 10), "{a}: allowed from outside");
    }
    icmpv6(&d, "revoke-security-group-ingress", &sg);
    for a in &addrs {
        assert!(!ping6(&hc, a), "{a}: revoked, from the VPC");
        assert!(!ping6(out, a), "{a}: revoked, from outside");
    }
    d.wait_status(&id, ("ok", "ok"), T);

    // A guest with no IPv4 address: ARP finds nothing, the neighbour probe finds it.
    let v6only = register(&d, "probe-v6only", "console=ttyS0 probe.dhcp6 probe.noip4");
    // Its script pings hc from its own address, and hd from an address of the subnet that
    // is not its own: a guest cannot send as an address it does not own.
    let ud = d.file(
        "ping6.txt",
        b"ping6 self 2001:db8:40::c9\nping6 2001:db8:40::99 2001:db8:40::ca\n",
    );
    let only = d
        .run(
            &v6only,
            &[
                "--ipv6-address-count",
                "1",
                "--user-data",
                &format!("file://{}", ud.display()),
            ],
        )
        .remove(0);
    // The control: the same guest without IPv6 addresses answers neither.
    let silent = d.run(&v6only, &[]).remove(0);
    d.wait_state(&only, "running", T);
    d.wait_state(&silent, "running", T);
    let c = d.wait_console(&only, "probe: idle", T);
    assert!(!c.contains("probe: ip "), "no IPv4 address:\n{c}");
    let own = ipv6_of(&d.instance(&only));
    assert_eq!(console_ipv6(&c), own, "{c}");
    let own = own.first().unwrap();
    assert!(
        c.contains(&format!("probe: ping6 2001:db8:40::c9 from {own} reply\n")),
        "{c}"
    );
    assert!(
        c.contains("probe: ping6 2001:db8:40::ca from 2001:db8:40::99 no-reply\n"),
        "{c}"
    );
    assert!(echo_requests(&hc) >= 1, "hc heard the guest as itself");
    assert_eq!(
        echo_requests(&hd),
        0,
        "the spoofed requests were dropped at the bridge"
    );
    d.wait_status(&only, ("ok", "ok"), T);
    d.wait_status(&silent, ("ok", "impaired"), T);
    d.cli(&[
        "terminate-instances",
        "--instance-ids",
        &id,
        &only,
        &silent,
        "--wait",
    ]);
}
