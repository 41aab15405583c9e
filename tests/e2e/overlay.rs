//! A VPC across two hosts: two daemons, each in a namespace of its own plugged into one
//! underlay switch, each with the same VPC (same CIDR; the two daemons share no state yet,
//! so each has its own VPC ID and the `overlay.vnis` config pins that CIDR's VNI on both:
//! that is what makes them one VPC here). One probe instance on each host; namespace hosts
//! on each host's VPC bridge send the pings (probe guests only answer them).
//!
//! Checked: the VXLAN device on each bridge; a ping across hosts only while the target's
//! security group allows it (enforced by the target's own host) and the sender's lets it
//! out (enforced by the sender's); the gateway each side
//! answers ARP with is its own host's; a stand-in on the remote side cannot send as a
//! local interface (its address or its MAC); what comes from the VPC towards the underlay
//! is dropped; DeleteVpc takes the VXLAN device with the bridge.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};
use strato_e2e::underlay::Underlay;
use strato_e2e::{dhcp, fast_config, Daemon, NsHost};

const T: Duration = Duration::from_secs(30);
const CIDR: &str = "10.77.0.0/16";
const SUBNET: &str = "10.77.1.0/24";
const VNI: u32 = 4242;

fn config(me: &str, peer: &str) -> Value {
    let mut c = fast_config();
    c["overlay"] = json!({"underlay": me, "peers": [peer], "vnis": {CIDR: VNI}});
    c
}

/// Runs `ip ARGS` and insists on success.
fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// `ip -d -j link show NAME` in namespace `ns`, if there is such a link.
fn link(ns: &str, name: &str) -> Option<Value> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-d", "-j", "link", "show", name])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().and_then(|a| a.first()).cloned()
}

/// The VPC, its subnet and a security group with no rules, on daemon `d`.
fn vpc(d: &Daemon) -> (String, String, String) {
    let v = d.json(&["create-vpc", "--cidr-block", CIDR]);
    let vpc = v["Vpc"]["VpcId"].as_str().unwrap().to_string();
    let v = d.json(&["create-subnet", "--vpc-id", &vpc, "--cidr-block", SUBNET]);
    let subnet = v["Subnet"]["SubnetId"].as_str().unwrap().to_string();
    let v = d.json(&[
        "create-security-group",
        "--group-name",
        "probe",
        "--description",
        "the probe",
        "--vpc-id",
        &vpc,
    ]);
    let sg = v["GroupId"].as_str().unwrap().to_string();
    (vpc, subnet, sg)
}

fn icmp(d: &Daemon, verb: &str, sg: &str) {
    d.cli(&[
        verb,
        "--group-id",
        sg,
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--cidr",
        CIDR,
    ]);
}

fn ip_of(d: &Daemon, id: &str) -> String {
    d.instance(id)["PrivateIpAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs a shell script in namespace `ns`; its standard output.
fn ns_sh(ns: &str, script: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The MAC `host` has for `addr` in its neighbour table.
fn neighbour(host: &NsHost, addr: &str) -> String {
    let out = host.exec(&["ip", "-j", "neigh", "show", addr]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v[0]["lladdr"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_vpc_across_two_hosts() {
    let ul = Underlay::new("ovl");
    let mut a = ul.start_daemon(
        "ovla",
        config("10.250.0.11", "10.250.0.12"),
        "10.250.0.11/24",
    );
    let b = ul.start_daemon(
        "ovlb",
        config("10.250.0.12", "10.250.0.11"),
        "10.250.0.12/24",
    );
    let (vpc_a, subnet_a, sg_a) = vpc(&a);
    let (vpc_b, subnet_b, sg_b) = vpc(&b);
    assert_ne!(
        vpc_a, vpc_b,
        "two daemons, two IDs: the pinned VNI joins them"
    );
    let bridge_a = format!("svpc{}", &vpc_a[4..15]);
    let bridge_b = format!("svpc{}", &vpc_b[4..15]);
    for (d, vpc, bridge) in [(&a, &vpc_a, &bridge_a), (&b, &vpc_b, &bridge_b)] {
        let vx = link(&d.ns, &format!("svx{}", &vpc[4..16])).expect("VXLAN device");
        let info = &vx["linkinfo"]["info_data"];
        assert_eq!(info["id"], VNI, "{vx}");
        assert_eq!(info["port"], 4789, "{vx}");
        assert_eq!(info["learning"], false, "{vx}");
        assert_eq!(vx["master"], bridge.as_str(), "{vx}");
        assert_eq!(vx["mtu"], 1450, "{vx}");
    }

    // The two hosts allocate addresses on their own: A's probe skips the first one, which
    // B's gets (a region will hand out addresses once for both).
    let spare = a.json(&["create-network-interface", "--subnet-id", &subnet_a]);
    let spare = spare["NetworkInterface"]["NetworkInterfaceId"]
        .as_str()
        .unwrap()
        .to_string();
    let ami_a = a.register_probe("ovl-probe");
    let ami_b = b.register_probe("ovl-probe");
    let pa = a.run(
        &ami_a,
        &["--subnet-id", &subnet_a, "--security-group-ids", &sg_a],
    )[0]
    .clone();
    a.cli(&["delete-network-interface", "--network-interface-id", &spare]);
    let pb = b.run(
        &ami_b,
        &["--subnet-id", &subnet_b, "--security-group-ids", &sg_b],
    )[0]
    .clone();
    a.wait_state(&pa, "running", T);
    b.wait_state(&pb, "running", T);
    a.wait_status(&pa, ("*", "ok"), T);
    b.wait_status(&pb, ("*", "ok"), T);
    let (ip_a, ip_b) = (ip_of(&a, &pa), ip_of(&b, &pb));
    assert_ne!(ip_a, ip_b);

    // Stand-ins on each bridge (no interfaces of the daemons: no groups of their own).
    let ha = a.host("ha", &bridge_a, "10.77.1.30/24", Some("10.77.1.1"));
    let hb = b.host("hb", &bridge_b, "10.77.1.40/24", Some("10.77.1.1"));
    assert!(
        ha.pings_within("10.77.1.40", 10),
        "one segment over the underlay"
    );

    // Each probe's group decides, on its own host.
    assert!(!hb.ping(&ip_a, 1), "A's group allows nothing yet");
    assert!(!ha.ping(&ip_b, 1), "B's group allows nothing yet");
    icmp(&a, "authorize-security-group-ingress", &sg_a);
    assert!(hb.pings_within(&ip_a, 10), "A's group allows the VPC");
    assert!(!ha.ping(&ip_b, 1), "B's group still allows nothing");
    icmp(&b, "authorize-security-group-ingress", &sg_b);
    assert!(ha.pings_within(&ip_b, 10), "B's group allows the VPC");
    icmp(&a, "revoke-security-group-ingress", &sg_a);
    assert!(!hb.ping(&ip_a, 2), "A's group revoked");
    assert!(ha.ping(&ip_b, 2), "B's still allows");

    // The sender's own host enforces the sender's egress: an interface of B's (a stand-in
    // on its tap, guarded as the interface) reaches A's probe while its group lets it
    // out, and not once that egress is revoked, though A's group still lets it in.
    icmp(&a, "authorize-security-group-ingress", &sg_a);
    let v = b.json(&[
        "create-security-group",
        "--group-name",
        "out",
        "--description",
        "egress only",
        "--vpc-id",
        &vpc_b,
    ]);
    let sg_out = v["GroupId"].as_str().unwrap().to_string();
    let v = b.json(&[
        "create-network-interface",
        "--subnet-id",
        &subnet_b,
        "--private-ip-address",
        "10.77.1.50",
        "--groups",
        &sg_out,
    ]);
    let eni = &v["NetworkInterface"];
    let eni_id = eni["NetworkInterfaceId"].as_str().unwrap().to_string();
    let eni_mac = eni["MacAddress"].as_str().unwrap().to_string();
    let tap = format!("tap{}", &eni_id[4..16]);
    let se = NsHost {
        ns: format!("{}-se", b.ns),
        port: tap.clone(),
    };
    ip(&["netns", "add", &se.ns]);
    ip(&[
        "-n", &b.ns, "link", "add", &tap, "type", "veth", "peer", "name", "eth0", "netns", &se.ns,
    ]);
    ip(&["-n", &b.ns, "link", "set", &tap, "master", &bridge_b, "up"]);
    ip(&["-n", &se.ns, "link", "set", "eth0", "address", &eni_mac]);
    ip(&["-n", &se.ns, "addr", "add", "10.77.1.50/24", "dev", "eth0"]);
    ip(&["-n", &se.ns, "link", "set", "eth0", "up"]);
    assert!(
        se.pings_within(&ip_a, 10),
        "B's interface out, A's probe in"
    );
    b.cli(&[
        "revoke-security-group-egress",
        "--group-id",
        &sg_out,
        "--protocol",
        "-1",
        "--cidr",
        "0.0.0.0/0",
    ]);
    assert!(!se.ping(&ip_a, 2), "B's interface has no egress left");
    assert!(hb.pings_within(&ip_a, 5), "while A's group still lets B in");
    drop(se);
    b.cli(&[
        "delete-network-interface",
        "--network-interface-id",
        &eni_id,
    ]);
    b.cli(&["delete-security-group", "--group-id", &sg_out]);
    icmp(&a, "revoke-security-group-ingress", &sg_a);

    // Each side's gateway is its own host's: the other host's never answers across.
    assert!(ha.ping("10.77.1.1", 2) && hb.ping("10.77.1.1", 2));
    let mac_a = link(&a.ns, &bridge_a).unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    let mac_b = link(&b.ns, &bridge_b).unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(neighbour(&ha, "10.77.1.1"), mac_a);
    assert_eq!(neighbour(&hb, "10.77.1.1"), mac_b);

    // DHCP, too: A's server answers A's probe's MAC on A, with the VPC's MTU (the
    // underlay's 1500 less VXLAN's 50); from B's side nobody answers it (B has no such
    // interface, and A's server is not reached across).
    let mac_pa = a.instance(&pa)["NetworkInterfaces"][0]["MacAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let discover = |xid| dhcp::request(1, dhcp::mac_bytes(&mac_pa), xid);
    let offer =
        dhcp::exchange(&ha.ns, discover(0x0e1a_0001), 0x0e1a_0001, T / 6).expect("an offer on A");
    assert_eq!(
        dhcp::option(&offer, 26),
        Some(1450u16.to_be_bytes().to_vec())
    );
    let across = dhcp::exchange(&hb.ns, discover(0x0e1a_0002), 0x0e1a_0002, T / 10);
    assert!(across.is_none(), "answered across hosts: {across:?}");

    // A stand-in on B cannot send as A's interface: not from its address...
    ip(&["-n", &hb.ns, "addr", "flush", "dev", "eth0"]);
    ip(&[
        "-n",
        &hb.ns,
        "addr",
        "add",
        &format!("{ip_a}/24"),
        "dev",
        "eth0",
    ]);
    ip(&["-n", &ha.ns, "neigh", "flush", "all"]);
    assert!(!hb.ping("10.77.1.30", 2), "A's address from B");
    // ... nor from its MAC.
    ip(&["-n", &hb.ns, "addr", "flush", "dev", "eth0"]);
    ip(&["-n", &hb.ns, "addr", "add", "10.77.1.40/24", "dev", "eth0"]);
    ip(&["-n", &hb.ns, "link", "set", "eth0", "address", &mac_pa]);
    ip(&["-n", &ha.ns, "neigh", "flush", "all"]);
    assert!(!hb.ping("10.77.1.30", 2), "A's MAC from B");
    // Both were A's guard at B's VXLAN port (its counters), not a broken link.
    let guard = ns_sh(&a.ns, "nft list table bridge strato_guard");
    for rule in ["ether saddr @eni_macs", "arp saddr ip @eni_addrs"] {
        let line = guard.lines().find(|l| l.contains(rule)).unwrap_or_default();
        assert!(
            line.contains("counter") && !line.contains("packets 0 "),
            "{rule} was hit: {guard}"
        );
    }
    // As itself again it passes: the drops were the guard's.
    ip(&[
        "-n",
        &hb.ns,
        "link",
        "set",
        "eth0",
        "address",
        "02:00:00:77:01:40",
    ]);
    ip(&["-n", &hb.ns, "neigh", "flush", "all"]);
    ip(&["-n", &ha.ns, "neigh", "flush", "all"]);
    assert!(hb.pings_within("10.77.1.30", 10), "B's stand-in as itself");

    // Nothing from the VPC reaches the underlay (B's address, through A's gateway), even
    // where the host routes (as one with an uplink does; this one has none).
    ns_sh(&a.ns, "echo 1 > /proc/sys/net/ipv4/ip_forward");
    assert!(!ha.ping("10.250.0.12", 1));
    let filter = ns_sh(&a.ns, "nft list table inet strato_filter");
    let line = filter
        .lines()
        .find(|l| l.contains("ip daddr @underlay"))
        .unwrap_or_default();
    assert!(
        !line.contains("packets 0 "),
        "the underlay drop was hit: {line}"
    );

    // A host on the underlay that is no peer cannot put frames on the VPC: its VXLAN
    // (the right VNI, to A's address) is dropped on A's input.
    let rogue = NsHost {
        ns: format!("se2e-ovlr-{}", std::process::id()),
        port: String::new(),
    };
    ip(&["netns", "add", &rogue.ns]);
    ul.plug(&rogue.ns, "ovlr", "10.250.0.99/24");
    ns_sh(
        &rogue.ns,
        &format!(
            "ip link add vx0 type vxlan id {VNI} dstport 4789 local 10.250.0.99 \
             remote 10.250.0.11 nolearning && ip addr add 10.77.1.99/24 dev vx0 && \
             ip link set vx0 up"
        ),
    );
    assert!(!rogue.ping("10.77.1.30", 2), "VXLAN from a non-peer");
    let filter = ns_sh(&a.ns, "nft list table inet strato_filter");
    let line = filter
        .lines()
        .find(|l| l.contains("@overlay_peers"))
        .unwrap_or_default();
    assert!(
        !line.contains("packets 0 "),
        "the non-peer drop was hit: {line}"
    );
    drop(rogue);

    // A restart keeps the VPC joined (the device is ensured again, after the firewall).
    a.restart();
    assert!(link(&a.ns, &format!("svx{}", &vpc_a[4..16])).is_some());
    assert!(ha.pings_within("10.77.1.40", 10), "joined after a restart");
    assert!(ha.pings_within(&ip_b, 10), "B's probe after A's restart");

    // A second VPC with the pinned CIDR on one host would share the VNI: refused, and
    // nothing of it stays behind.
    let err = a.cli_err("InternalError", &["create-vpc", "--cidr-block", CIDR]);
    assert!(err.contains(&format!("VNI {VNI}")), "{err}");
    let v = a.json(&[
        "describe-vpcs",
        "--filters",
        &format!("Name=cidr,Values={CIDR}"),
    ]);
    assert_eq!(v["Vpcs"].as_array().unwrap().len(), 1, "{v}");
    let links = ns_sh(&a.ns, "ip -o link show type vxlan | wc -l");
    let bridges = ns_sh(&a.ns, "ip -o link show type bridge | wc -l");
    assert_eq!(links.trim(), "2", "the default VPC's and this one's");
    assert_eq!(bridges.trim(), "2", "{bridges}");

    // DeleteVpc takes the VXLAN device with the bridge.
    b.cli(&["terminate-instances", "--instance-ids", &pb]);
    b.wait_state(&pb, "terminated", T);
    drop(hb);
    b.cli(&["delete-security-group", "--group-id", &sg_b]);
    b.cli(&["delete-subnet", "--subnet-id", &subnet_b]);
    b.cli(&["delete-vpc", "--vpc-id", &vpc_b]);
    assert!(link(&b.ns, &format!("svx{}", &vpc_b[4..16])).is_none());
    assert!(link(&b.ns, &bridge_b).is_none());
}
