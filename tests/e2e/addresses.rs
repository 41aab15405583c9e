//! Public IPv4 addresses through the CLI, with the probe guest answering ping: a daemon
//! whose namespace has an uplink to an "outside" namespace (198.51.100.0/24, documentation
//! addresses) and a public pool; instances in a subnet that maps public addresses reachable
//! from outside, a new address on every start; Elastic IPs that follow their instance
//! through stop and start and stay allocated after it is terminated; the quota, the
//! refusals, and a host without an uplink.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use strato_e2e::{fast_config, Daemon};

const T: Duration = Duration::from_secs(30);

/// Whether `ip` answers ping from outside within `within`.
fn answers(d: &Daemon, ip: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if d.outside().ping(ip, 1) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
    }
}

/// Whether `ip` stops answering from outside within `within`.
fn goes_quiet(d: &Daemon, ip: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !d.outside().ping(ip, 1) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
    }
}

fn public_ip(d: &Daemon, id: &str) -> String {
    d.instance(id)["PublicIpAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn in_pool(ip: &str) -> bool {
    let last: u8 = ip
        .strip_prefix("198.51.100.")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    (17..=30).contains(&last)
}

/// Output of a command run in the daemon's namespace.
fn in_daemon_ns(d: &Daemon, args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &d.ns])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The /32 addresses on the daemon's uplink.
fn uplink_publics(d: &Daemon) -> Vec<String> {
    let text = in_daemon_ns(
        d,
        &["ip", "-4", "-o", "addr", "show", "dev", strato_e2e::UPLINK],
    );
    let mut v: Vec<String> = text
        .split_whitespace()
        .filter_map(|w| w.strip_suffix("/32").map(str::to_string))
        .collect();
    v.sort();
    v
}

#[test]
fn public_and_elastic_ips_reach_instances_from_outside() {
    let mut d = Daemon::start_with_uplink("eip", fast_config());
    let v = d.json(&["describe-subnets"]);
    let subnet = v["Subnets"][0]["SubnetId"].as_str().unwrap().to_string();
    assert_eq!(v["Subnets"][0]["MapPublicIpOnLaunch"], true, "{v}");
    let ami = d.register_probe("probe");
    // As in EC2, the default security group takes nothing from outside: let ping in.
    d.cli(&[
        "authorize-security-group-ingress",
        "--group-name",
        "default",
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--cidr",
        "0.0.0.0/0",
    ]);

    // A default subnet maps public addresses: the running instance has one, reachable.
    let id = d.run(&ami, &["--subnet-id", &subnet])[0].clone();
    d.wait_state(&id, "running", T);
    let ip1 = public_ip(&d, &id);
    assert!(in_pool(&ip1), "{ip1}");
    assert!(answers(&d, &ip1, T), "{ip1} does not answer\n{}", d.log());
    let v = d.json(&[
        "describe-instances",
        "--filters",
        &format!("Name=ip-address,Values={ip1}"),
    ]);
    assert_eq!(strato_e2e::instances_of(&v).len(), 1, "{v}");

    // Stop releases it; start brings a new one, and the old one no longer answers.
    d.cli(&["stop-instances", "--instance-ids", &id, "--force"]);
    d.wait_state(&id, "stopped", T);
    assert_eq!(public_ip(&d, &id), "");
    assert!(goes_quiet(&d, &ip1, Duration::from_secs(5)));
    d.cli(&["start-instances", "--instance-ids", &id]);
    d.wait_state(&id, "running", T);
    let ip2 = public_ip(&d, &id);
    assert!(in_pool(&ip2) && ip2 != ip1, "{ip1} then {ip2}");
    assert!(answers(&d, &ip2, T), "{ip2} does not answer");
    assert!(!d.outside().ping(&ip1, 1), "{ip1} still answers");

    // A daemon restart adopts the running instance with its address and rules.
    d.restart();
    assert_eq!(public_ip(&d, &id), ip2);
    assert!(
        answers(&d, &ip2, T),
        "{ip2} does not answer after a restart"
    );

    // An Elastic IP replaces the instance's public address.
    let a = d.json(&["allocate-address", "--domain", "vpc"]);
    let eip = a["PublicIp"].as_str().unwrap().to_string();
    let alloc = a["AllocationId"].as_str().unwrap().to_string();
    assert!(alloc.starts_with("eipalloc-") && in_pool(&eip), "{a}");
    let v = d.json(&[
        "associate-address",
        "--allocation-id",
        &alloc,
        "--instance-id",
        &id,
    ]);
    let assoc = v["AssociationId"].as_str().unwrap().to_string();
    assert!(assoc.starts_with("eipassoc-"), "{v}");
    assert_eq!(public_ip(&d, &id), eip);
    assert!(answers(&d, &eip, T), "{eip} does not answer");
    assert!(goes_quiet(&d, &ip2, Duration::from_secs(5)));
    // The host side: one /32 on the uplink, dnat in and snat out for the private address.
    assert_eq!(uplink_publics(&d), std::slice::from_ref(&eip));
    let private = d.instance(&id)["PrivateIpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let rules = in_daemon_ns(&d, &["nft", "list", "table", "ip", "strato_nat"]);
    assert!(
        rules.contains(&format!("ip daddr {eip} dnat to {private}"))
            && rules.contains(&format!(
                "oifname \"{}\" ip saddr {private} snat to {eip}",
                strato_e2e::UPLINK
            )),
        "{rules}"
    );
    let v = d.json(&["describe-addresses", "--allocation-ids", &alloc]);
    let addr = &v["Addresses"][0];
    assert_eq!(addr["InstanceId"], id.as_str(), "{v}");
    assert_eq!(addr["AssociationId"], assoc.as_str());
    assert_eq!(addr["Domain"], "vpc");
    d.cli_err(
        "InvalidIPAddress.InUse",
        &["release-address", "--allocation-id", &alloc],
    );

    // It stays through stop and start: the same address, reachable again.
    d.cli(&["stop-instances", "--instance-ids", &id, "--force"]);
    d.wait_state(&id, "stopped", T);
    assert_eq!(public_ip(&d, &id), eip);
    d.cli(&["start-instances", "--instance-ids", &id]);
    d.wait_state(&id, "running", T);
    assert_eq!(public_ip(&d, &id), eip);
    assert!(answers(&d, &eip, T), "{eip} does not answer after start");

    // Disassociated, the instance has no public address until its next start.
    d.cli(&["disassociate-address", "--association-id", &assoc]);
    assert_eq!(public_ip(&d, &id), "");
    assert!(goes_quiet(&d, &eip, Duration::from_secs(5)));
    d.cli_err(
        "InvalidAssociationID.NotFound",
        &["disassociate-address", "--association-id", &assoc],
    );

    // Terminating disassociates it; it stays allocated until released.
    d.json(&[
        "associate-address",
        "--allocation-id",
        &alloc,
        "--instance-id",
        &id,
    ]);
    assert!(answers(&d, &eip, T));
    d.cli(&["terminate-instances", "--instance-ids", &id]);
    d.wait_state(&id, "terminated", T);
    let v = d.json(&["describe-addresses", "--public-ips", &eip]);
    let addr = &v["Addresses"][0];
    assert_eq!(addr["AllocationId"], alloc.as_str(), "{v}");
    assert!(addr.get("InstanceId").is_none(), "{v}");
    assert!(addr.get("AssociationId").is_none(), "{v}");
    assert!(goes_quiet(&d, &eip, Duration::from_secs(5)));
    d.cli(&["release-address", "--allocation-id", &alloc]);
    let v = d.json(&["describe-addresses"]);
    assert_eq!(v["Addresses"].as_array().unwrap().len(), 0, "{v}");

    // A subnet told not to map gets no public address; the launch flag overrides it.
    d.cli(&[
        "modify-subnet-attribute",
        "--subnet-id",
        &subnet,
        "--no-map-public-ip-on-launch",
    ]);
    let v = d.json(&["describe-subnets", "--subnet-ids", &subnet]);
    assert_eq!(v["Subnets"][0]["MapPublicIpOnLaunch"], false, "{v}");
    let v = d.json(&[
        "describe-subnets",
        "--filters",
        "Name=map-public-ip-on-launch,Values=true",
    ]);
    assert_eq!(v["Subnets"].as_array().unwrap().len(), 2, "{v}");
    let plain = d.run(&ami, &["--subnet-id", &subnet])[0].clone();
    let asked = d.run(
        &ami,
        &["--subnet-id", &subnet, "--associate-public-ip-address"],
    )[0]
    .clone();
    d.wait_state(&plain, "running", T);
    d.wait_state(&asked, "running", T);
    assert_eq!(public_ip(&d, &plain), "");
    let ip3 = public_ip(&d, &asked);
    assert!(answers(&d, &ip3, T), "{ip3} does not answer");
    assert_eq!(uplink_publics(&d), [ip3]);
}

#[test]
fn quota_ownership_and_refusals() {
    let d = Daemon::start_with_uplink("eipq", fast_config());
    let mut allocs = Vec::new();
    for _ in 0..5 {
        let a = d.json_as(Some("token-alice"), &["allocate-address"]);
        allocs.push(a["AllocationId"].as_str().unwrap().to_string());
    }
    let err = d.cli_err_as(
        Some("token-alice"),
        "AddressLimitExceeded",
        &["allocate-address"],
    );
    assert!(err.contains("maximum number of addresses"), "{err}");
    // The quota is per account.
    let b = d.json_as(Some("token-bob"), &["allocate-address"]);
    let bob_ip = b["PublicIp"].as_str().unwrap().to_string();
    let v = d.json_as(Some("token-alice"), &["describe-addresses"]);
    assert_eq!(v["Addresses"].as_array().unwrap().len(), 5, "{v}");
    // Another account's allocation does not exist for the caller.
    for args in [
        &["release-address", "--allocation-id", &allocs[0]][..],
        &["describe-addresses", "--allocation-ids", &allocs[0]],
        &[
            "associate-address",
            "--allocation-id",
            &allocs[0],
            "--instance-id",
            "i-0123456789abcdef0",
        ],
    ] {
        d.cli_err_as(Some("token-bob"), "InvalidAllocationID.NotFound", args);
    }
    d.cli_err_as(
        Some("token-alice"),
        "InvalidAddress.NotFound",
        &["describe-addresses", "--public-ips", &bob_ip],
    );
    d.cli_err_as(
        Some("token-alice"),
        "InvalidInstanceID.NotFound",
        &[
            "associate-address",
            "--allocation-id",
            &allocs[0],
            "--instance-id",
            "i-0123456789abcdef0",
        ],
    );
    d.cli_err_as(
        Some("token-alice"),
        "InvalidAllocationID.Malformed",
        &["release-address", "--allocation-id", "eip-1"],
    );
    let v = d.json_as(
        Some("token-alice"),
        &[
            "describe-addresses",
            "--filters",
            &format!("Name=allocation-id,Values={}", allocs[1]),
        ],
    );
    assert_eq!(v["Addresses"].as_array().unwrap().len(), 1, "{v}");
    let out = d.cli_as(
        Some("token-alice"),
        &["release-address", "--allocation-id", &allocs[1]],
    );
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    d.json_as(Some("token-alice"), &["allocate-address"]);
}

#[test]
fn a_host_without_an_uplink_has_no_public_addresses() {
    let d = Daemon::start("noeip");
    let err = d.cli_err("UnsupportedOperation", &["allocate-address"]);
    assert!(err.contains("no uplink"), "{err}");
    let v = d.json(&["describe-subnets"]);
    let subnet = v["Subnets"][0]["SubnetId"].as_str().unwrap().to_string();
    assert_eq!(v["Subnets"][0]["MapPublicIpOnLaunch"], false, "{v}");
    d.cli_err(
        "UnsupportedOperation",
        &[
            "modify-subnet-attribute",
            "--subnet-id",
            &subnet,
            "--map-public-ip-on-launch",
        ],
    );
    let ami = d.register_probe("probe");
    d.cli_err(
        "UnsupportedOperation",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--associate-public-ip-address",
        ],
    );
    let v = d.json(&["describe-addresses"]);
    assert_eq!(v["Addresses"].as_array().unwrap().len(), 0, "{v}");
}
