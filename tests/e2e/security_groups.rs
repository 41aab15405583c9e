//! Security groups through the CLI, enforced on a daemon's bridge: ICMP to a probe
//! instance following authorize and revoke while it runs; TCP allowed by port and by
//! source group, and replies to allowed outbound connections let back in, between
//! namespace hosts posing as silenced instances (a host given an instance's private IP
//! is that instance to the firewall, which knows ENIs by bridge and address); and the
//! refusals: a group in use, another account's group, a sixth group on an interface.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use strato_e2e::{Daemon, NsHost};

const T: Duration = Duration::from_secs(30);

/// Whether `host` can open a TCP connection to `ip:port` and get its bytes echoed.
fn connects(host: &NsHost, ip: &str, port: u16) -> bool {
    host.echoes(&format!("{ip}:{port}"))
}

fn create_group(d: &Daemon, name: &str) -> String {
    let v = d.json(&[
        "create-security-group",
        "--group-name",
        name,
        "--description",
        &format!("{name} group"),
    ]);
    v["GroupId"].as_str().unwrap().to_string()
}

fn ip_of(d: &Daemon, id: &str) -> String {
    d.instance(id)["PrivateIpAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

fn group_ids(i: &Value) -> Vec<String> {
    i["SecurityGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["GroupId"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn icmp_follows_rule_changes_on_a_running_instance() {
    let d = Daemon::start("sgicmp");
    let ami = d.register_probe("sg-probe");
    let web = create_group(&d, "web");
    let id = d.run(&ami, &["--security-group-ids", &web])[0].clone();
    d.wait_state(&id, "running", T);
    // The status check's ARP passes the firewall (it filters IPv4 only): the guest is up.
    d.wait_status(&id, ("*", "ok"), T);
    let inst = d.instance(&id);
    assert_eq!(inst["SecurityGroups"][0]["GroupId"], web.as_str());
    assert_eq!(inst["SecurityGroups"][0]["GroupName"], "web");
    let ip = ip_of(&d, &id);
    let h = d.host("h1", "strato0", "172.31.0.200/20", Some("172.31.0.1"));

    assert!(!h.ping(&ip, 1), "a new group allows nothing inbound");
    d.cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        &web,
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--cidr",
        "172.31.0.200/32",
    ]);
    assert!(h.pings_within(&ip, 5), "allowed after authorize");
    let v = d.json(&["describe-security-groups", "--group-ids", &web]);
    let p = &v["SecurityGroups"][0]["IpPermissions"][0];
    assert_eq!(p["IpProtocol"], "icmp");
    assert_eq!(p["IpRanges"][0]["CidrIp"], "172.31.0.200/32");
    d.cli_err(
        "InvalidPermission.Duplicate",
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &web,
            "--ip-permissions",
            r#"[{"IpProtocol":"icmp","FromPort":-1,"ToPort":-1,"IpRanges":[{"CidrIp":"172.31.0.200/32"}]}]"#,
        ],
    );

    d.cli(&[
        "revoke-security-group-ingress",
        "--group-id",
        &web,
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--cidr",
        "172.31.0.200/32",
    ]);
    assert!(!h.ping(&ip, 1), "denied again after revoke");
    d.cli_err(
        "InvalidPermission.NotFound",
        &[
            "revoke-security-group-ingress",
            "--group-id",
            &web,
            "--protocol",
            "icmp",
            "--port",
            "-1",
            "--cidr",
            "172.31.0.200/32",
        ],
    );

    // Changing the instance's groups applies at once.
    let ping = create_group(&d, "ping");
    d.cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        &ping,
        "--protocol",
        "icmp",
        "--port",
        "8",
        "--cidr",
        "172.31.0.0/20",
    ]);
    d.cli(&[
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--groups",
        &ping,
    ]);
    assert_eq!(group_ids(&d.instance(&id)), [ping.as_str()]);
    assert!(h.pings_within(&ip, 5), "allowed by the new group");
    d.cli(&[
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--groups",
        &web,
    ]);
    assert!(
        !h.ping(&ip, 1),
        "denied once the group is gone from the interface"
    );
    let by_group = |f: &str| {
        let v = d.json(&["describe-instances", "--filters", f]);
        strato_e2e::instances_of(&v).len()
    };
    assert_eq!(by_group("Name=instance.group-name,Values=web"), 1);
    assert_eq!(
        by_group(&format!("Name=instance.group-id,Values={ping}")),
        0
    );

    // In use: the instance's group cannot go; an unused one can.
    d.cli_err(
        "DependencyViolation",
        &["delete-security-group", "--group-id", &web],
    );
    d.cli(&["delete-security-group", "--group-name", "ping"]);
    // Malformed rules change nothing.
    for (proto, port, cidr) in [
        ("tcp", "10-5", "10.0.0.0/8"),
        ("tcp", "22", "10.0.0.1/8"),
        ("bogus", "22", "10.0.0.0/8"),
        ("udp", "70000", "10.0.0.0/8"),
    ] {
        d.cli_err(
            "InvalidParameterValue",
            &[
                "authorize-security-group-ingress",
                "--group-id",
                &web,
                "--protocol",
                proto,
                "--port",
                port,
                "--cidr",
                cidr,
            ],
        );
    }
    d.cli_err(
        "InvalidGroupId.Malformed",
        &["describe-security-groups", "--group-ids", "sg-nothex"],
    );
    d.cli_err(
        "CannotDelete",
        &["delete-security-group", "--group-name", "default"],
    );

    // Five groups at most per interface.
    let mut six = Vec::new();
    for i in 0..6 {
        six.push(create_group(&d, &format!("g{i}")));
    }
    let mut args = vec![
        "modify-instance-attribute",
        "--instance-id",
        &id,
        "--groups",
    ];
    args.extend(six.iter().map(String::as_str));
    d.cli_err("SecurityGroupsPerInterfaceLimitExceeded", &args);
    let mut args = vec!["run-instances", "--image-id", &ami, "--security-group-ids"];
    args.extend(six.iter().map(String::as_str));
    d.cli_err("SecurityGroupsPerInterfaceLimitExceeded", &args);
    assert_eq!(group_ids(&d.instance(&id)), [web.as_str()]);

    // Another account sees none of this account's groups.
    d.cli_err_as(
        Some("token-alice"),
        "InvalidGroup.NotFound",
        &["describe-security-groups", "--group-ids", &web],
    );
    d.cli_err_as(
        Some("token-alice"),
        "InvalidGroup.NotFound",
        &[
            "authorize-security-group-ingress",
            "--group-id",
            &web,
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "0.0.0.0/0",
        ],
    );
    d.cli(&[
        "modify-image-attribute",
        "--image-id",
        &ami,
        "--launch-permission",
        "Add=[{UserId=111111111111}]",
    ]);
    d.cli_err_as(
        Some("token-alice"),
        "InvalidGroup.NotFound",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--security-group-ids",
            &web,
        ],
    );
    // Each account has its own default group in the shared default VPC.
    let mine = d.json(&["describe-security-groups", "--group-names", "default"]);
    let out = d.cli_as(
        Some("token-alice"),
        &[
            "--output",
            "json",
            "describe-security-groups",
            "--group-names",
            "default",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(
        mine["SecurityGroups"][0]["GroupId"],
        theirs["SecurityGroups"][0]["GroupId"]
    );
    assert_eq!(theirs["SecurityGroups"][0]["OwnerId"], "111111111111");
}

#[test]
fn tcp_by_port_and_source_group_and_stateful_replies() {
    let mut d = Daemon::start("sgtcp");
    let ami = d.register_probe("sg-probe");
    let ga = create_group(&d, "client");
    let gb = create_group(&d, "server");
    // B's group takes 8080 from A's group's members.
    d.cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        &gb,
        "--protocol",
        "tcp",
        "--port",
        "8080",
        "--source-group",
        &ga,
    ]);
    // Silenced probes: the namespace hosts below take their addresses and play them.
    let silent = ["--user-data", "net-silent-after 0"];
    let a = d.run(
        &ami,
        &[&["--security-group-ids", ga.as_str()][..], &silent[..]].concat(),
    )[0]
    .clone();
    let b = d.run(
        &ami,
        &[&["--security-group-ids", gb.as_str()][..], &silent[..]].concat(),
    )[0]
    .clone();
    d.wait_state(&a, "running", T);
    d.wait_state(&b, "running", T);
    // `net-silent-after 0` takes effect once the user data is read.
    d.wait_console(&a, "probe: user-data done", T);
    d.wait_console(&b, "probe: user-data done", T);
    let (ip_a, ip_b) = (ip_of(&d, &a), ip_of(&d, &b));
    let gw = Some("172.31.0.1");
    let ha = d.host("ha", "strato0", &format!("{ip_a}/20"), gw);
    let hb = d.host("hb", "strato0", &format!("{ip_b}/20"), gw);
    let hc = d.host("hc", "strato0", "172.31.0.201/20", gw);
    hb.echo_server(8080);
    hb.echo_server(9090);
    hc.echo_server(7070);
    ha.echo_server(7070);

    // The metadata service (not filtered: guest-to-host traffic) names A's groups.
    let out = ha.exec(&[
        "curl",
        "-s",
        "--max-time",
        "3",
        "http://169.254.169.254/latest/meta-data/security-groups",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "client", "{out:?}");

    assert!(connects(&ha, &ip_b, 8080), "A's group may reach B on 8080");
    assert!(!connects(&hc, &ip_b, 8080), "a non-member may not");
    assert!(!connects(&ha, &ip_b, 9090), "9090 is not open");

    // A port rule by CIDR.
    d.cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        &gb,
        "--ip-permissions",
        r#"{"IpProtocol":"tcp","FromPort":9000,"ToPort":9100,"IpRanges":[{"CidrIp":"172.31.0.201/32"}]}"#,
    ]);
    assert!(connects(&hc, &ip_b, 9090), "the CIDR rule opens 9090 to C");
    assert!(!connects(&ha, &ip_b, 9090), "but not to A");

    // Stateful: A (all egress, no ingress) connects out and gets its replies; the other
    // way is closed.
    assert!(
        connects(&ha, "172.31.0.201", 7070),
        "replies come back to A"
    );
    assert!(
        !connects(&hc, &ip_a, 7070),
        "C cannot open a connection to A"
    );

    // The groups belong to the interface: DescribeNetworkInterfaces shows them, and
    // replacing B's interface's groups (with A's group: no inbound rules) closes B at once.
    let eni_b = d.instance(&b)["NetworkInterfaces"][0]["NetworkInterfaceId"]
        .as_str()
        .unwrap()
        .to_string();
    let v = d.json(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        &eni_b,
    ]);
    assert_eq!(
        v["NetworkInterfaces"][0]["Groups"][0]["GroupId"],
        gb.as_str(),
        "{v}"
    );
    d.cli(&[
        "modify-network-interface-attribute",
        "--network-interface-id",
        &eni_b,
        "--groups",
        &ga,
    ]);
    assert!(!connects(&hc, &ip_b, 9090), "B's old rules are gone");
    assert!(
        !connects(&ha, &ip_b, 8080),
        "A's group has no inbound rules"
    );
    d.cli(&[
        "modify-network-interface-attribute",
        "--network-interface-id",
        &eni_b,
        "--groups",
        &gb,
    ]);
    assert!(connects(&ha, &ip_b, 8080), "B's group again");

    // Revoking all egress of A's group stops A's new connections.
    d.cli(&[
        "revoke-security-group-egress",
        "--group-id",
        &ga,
        "--protocol",
        "-1",
        "--cidr",
        "0.0.0.0/0",
    ]);
    assert!(!connects(&ha, "172.31.0.201", 7070), "no egress left");

    // A group another group's rule names, or an instance uses, stays.
    d.cli_err(
        "DependencyViolation",
        &["delete-security-group", "--group-id", &ga],
    );
    let v = d.json(&[
        "describe-security-groups",
        "--filters",
        &format!("Name=group-id,Values={gb}"),
    ]);
    let perms = v["SecurityGroups"][0]["IpPermissions"].as_array().unwrap();
    assert_eq!(perms.len(), 2, "{v}");
    assert_eq!(perms[0]["UserIdGroupPairs"][0]["GroupId"], ga.as_str());
    let log = d.log();
    assert!(!log.contains("firewall apply failed"), "{log}");

    // The daemon puts the firewall back when it starts (here: tables lost meanwhile).
    d.stop_daemon();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &d.ns, "nft", "flush", "ruleset"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        connects(&hc, &ip_b, 8080),
        "nothing filters while the tables are gone"
    );
    d.restart();
    assert!(
        !connects(&hc, &ip_b, 8080),
        "filtered again after a restart"
    );
    assert!(
        connects(&hc, &ip_b, 9090),
        "and C's CIDR rule still lets it in"
    );
}

/// Runs `ip ARGS` and insists on success.
fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

#[test]
fn a_tap_may_send_only_as_its_interface() {
    let d = Daemon::start("sgspoof");
    let v = d.json(&[
        "describe-subnets",
        "--filters",
        "Name=cidr-block,Values=172.31.0.0/20",
    ]);
    let subnet = v["Subnets"][0]["SubnetId"].as_str().unwrap().to_string();
    // An interface that no instance has: its tap name is free for a stand-in to take, and
    // the firewall guards that name as the interface's tap.
    let v = d.json(&["create-network-interface", "--subnet-id", &subnet]);
    let eni = &v["NetworkInterface"];
    let id = eni["NetworkInterfaceId"].as_str().unwrap();
    let mac = eni["MacAddress"].as_str().unwrap().to_string();
    let addr = eni["PrivateIpAddress"].as_str().unwrap().to_string();
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
    ip(&["-n", &ns, "link", "set", "eth0", "address", &mac]);
    ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{addr}/20"),
        "dev",
        "eth0",
    ]);
    ip(&["-n", &ns, "link", "set", "eth0", "up"]);
    let hc = d.host("hc", "strato0", "172.31.0.201/20", Some("172.31.0.1"));
    hc.echo_server(7070);
    host.echo_server(7070);

    // As itself: out through the default group's egress, replies back; nothing comes in.
    assert!(
        connects(&host, "172.31.0.201", 7070),
        "the interface itself"
    );
    assert!(
        !connects(&hc, &addr, 7070),
        "the default group takes nothing from C"
    );

    // Another source address: its ARP and its IPv4 are dropped at the bridge.
    ip(&["-n", &ns, "addr", "flush", "dev", "eth0"]);
    ip(&["-n", &ns, "addr", "add", "172.31.0.202/20", "dev", "eth0"]);
    assert!(!connects(&host, "172.31.0.201", 7070), "a spoofed address");

    // Its own address from another MAC: dropped too.
    ip(&["-n", &ns, "addr", "flush", "dev", "eth0"]);
    ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{addr}/20"),
        "dev",
        "eth0",
    ]);
    ip(&[
        "-n",
        &ns,
        "link",
        "set",
        "eth0",
        "address",
        "02:00:00:5e:00:99",
    ]);
    assert!(!connects(&host, "172.31.0.201", 7070), "a spoofed MAC");

    // Back as itself, it works again (the drops were the guard's, not a broken link).
    ip(&["-n", &ns, "link", "set", "eth0", "address", &mac]);
    ip(&["-n", &ns, "neigh", "flush", "all"]);
    ip(&["-n", &hc.ns, "neigh", "flush", "all"]);
    assert!(connects(&host, "172.31.0.201", 7070), "the interface again");
}

/// Whether `host` can open a TCP connection to `ip:port` (nothing is sent).
fn opens(host: &NsHost, ip: &str, port: u16) -> bool {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    strato_e2e::in_netns(&host.ns, move || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(1500)).is_ok()
    })
}

/// The host itself, seen from a VPC bridge: a namespace host plugged into the default VPC's
/// bridge reaches DHCP's port, the metadata service and ICMP echo to its own gateway, and
/// nothing else of the host: not the daemon's TCP API on the gateway address, not another
/// VPC's gateway address, not a listener of the host's own on any address.
#[test]
fn guests_reach_only_the_guest_services_of_the_host() {
    let mut cfg = strato_e2e::fast_config();
    cfg["listen"] = serde_json::json!(["tcp:0.0.0.0:7320"]);
    let d = Daemon::start_with("sghost", cfg);
    let v = d.json(&["create-vpc", "--cidr-block", "10.77.0.0/16"]);
    let vpc = v["Vpc"]["VpcId"].as_str().unwrap().to_string();
    d.json(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.77.1.0/24",
    ]);
    let h = d.host("hg", "strato0", "172.31.0.200/20", Some("172.31.0.1"));
    // The daemon's namespace as a host, to listen and to check from inside.
    let me = NsHost {
        ns: d.ns.clone(),
        port: String::new(),
    };
    me.echo_server(7321);
    // From the host's own side both listeners answer on the gateway address.
    assert!(opens(&me, "172.31.0.1", 7320), "the API, from the host");
    assert!(connects(&me, "172.31.0.1", 7321), "the host's listener");

    assert!(h.pings_within("172.31.0.1", 10), "ICMP echo to the gateway");
    assert!(opens(&h, "169.254.169.254", 80), "the metadata service");
    assert!(
        !opens(&h, "172.31.0.1", 7320),
        "the API through the gateway"
    );
    assert!(!connects(&h, "172.31.0.1", 7321), "another host listener");
    assert!(
        !opens(&h, "10.77.1.1", 7320),
        "the API on another VPC's gateway"
    );
    assert!(!h.ping("10.77.1.1", 2), "another VPC's gateway");
    // The rules come from the database: a restart renders them again.
    let mut d = d;
    d.restart();
    assert!(!opens(&h, "172.31.0.1", 7320), "the API after a restart");
    assert!(
        h.pings_within("172.31.0.1", 10),
        "the gateway after a restart"
    );
    // Dropping `me` must not delete the daemon's namespace.
    std::mem::forget(me);
}
