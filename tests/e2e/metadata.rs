//! The instance metadata service (169.254.169.254) end to end: probe instances whose guests
//! go network-silent, and namespace hosts on the VPC bridge that take over their addresses
//! and MACs to speak HTTP with curl as those instances would. IMDSv2 tokens and their
//! isolation between instances, IMDSv1 until tokens are required, user data, keys and the
//! partition number, and the hop limit of token responses through a router.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;
use strato_e2e::{fast_config, Daemon, NsHost};

const IMDS: &str = "http://169.254.169.254";

/// curl inside a host: (HTTP status, body). `args` go before the URL.
fn curl(h: &NsHost, args: &[&str], path: &str) -> (u16, String) {
    let url = format!("{IMDS}{path}");
    let mut cmd = vec![
        "curl",
        "-s",
        "--max-time",
        "3",
        "-o",
        "/dev/stdout",
        "-w",
        "\n%{http_code}",
    ];
    cmd.extend_from_slice(args);
    cmd.push(&url);
    let out = h.exec(&cmd);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn token(h: &NsHost, ttl: &str) -> (u16, String) {
    let hdr = format!("X-aws-ec2-metadata-token-ttl-seconds: {ttl}");
    curl(h, &["-X", "PUT", "-H", &hdr], "/latest/api/token")
}

fn get_with(h: &NsHost, token: &str, path: &str) -> (u16, String) {
    let hdr = format!("X-aws-ec2-metadata-token: {token}");
    curl(h, &["-H", &hdr], path)
}

/// Launches a probe instance that stops answering the network once its user data runs,
/// and a namespace host that takes its address and MAC.
fn instance_and_stand_in(d: &Daemon, ami: &str, name: &str, extra: &[&str]) -> (String, NsHost) {
    let ud = d.file(
        &format!("{name}.txt"),
        format!("net-silent-after 0\necho {name}\n").as_bytes(),
    );
    let ud = format!("file://{}", ud.display());
    let mut args = vec!["--user-data", ud.as_str()];
    args.extend_from_slice(extra);
    let id = d.run(ami, &args)[0].clone();
    d.wait_state(&id, "running", Duration::from_secs(30));
    d.wait_console(&id, "probe: user-data done", Duration::from_secs(30));
    let i = d.instance(&id);
    let ip = i["PrivateIpAddress"].as_str().unwrap().to_string();
    let mac = i["NetworkInterfaces"][0]["MacAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let h = d.host(name, "strato0", &format!("{ip}/20"), Some("172.31.0.1"));
    let out = h.exec(&["ip", "link", "set", "eth0", "address", &mac]);
    assert!(out.status.success(), "{out:?}");
    (id, h)
}

#[test]
fn imdsv2_tokens_user_data_and_isolation_between_instances() {
    let mut cfg = fast_config();
    cfg["racks"] = json!(["r1", "r2", "r3"]);
    let d = Daemon::start_with("imds", cfg);
    let ami = d.register_probe("probe");
    d.cli(&["create-key-pair", "--key-name", "lab"]);
    let pubkey = d.json(&[
        "describe-key-pairs",
        "--key-names",
        "lab",
        "--include-public-key",
    ])["KeyPairs"][0]["PublicKey"]
        .as_str()
        .unwrap()
        .trim()
        .to_string();
    d.cli(&[
        "create-placement-group",
        "--group-name",
        "hdfs",
        "--strategy",
        "partition",
        "--partition-count",
        "3",
    ]);
    let (a, ha) = instance_and_stand_in(
        &d,
        &ami,
        "a",
        &[
            "--key-name",
            "lab",
            "--placement",
            "GroupName=hdfs,PartitionNumber=2",
        ],
    );
    let (b, hb) = instance_and_stand_in(&d, &ami, "b", &[]);

    // IMDSv2: a token, then requests carrying it.
    let (code, ta) = token(&ha, "300");
    assert_eq!(code, 200, "{ta}\n{}", d.log());
    assert!(ta.len() >= 40, "{ta}");
    assert_eq!(
        get_with(&ha, &ta, "/latest/meta-data/instance-id"),
        (200, a.clone())
    );
    assert_eq!(
        get_with(&ha, &ta, "/latest/user-data"),
        (200, "net-silent-after 0\necho a\n".into())
    );
    assert_eq!(
        get_with(&ha, &ta, "/latest/meta-data/public-keys/0/openssh-key").1,
        pubkey
    );
    assert_eq!(
        get_with(&ha, &ta, "/latest/meta-data/placement/partition-number"),
        (200, "2".into())
    );
    assert_eq!(
        get_with(&ha, &ta, "/latest/meta-data/placement/group-name"),
        (200, "hdfs".into())
    );
    let ip_a = d.instance(&a)["PrivateIpAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get_with(&ha, &ta, "/latest/meta-data/local-ipv4").1, ip_a);
    assert_eq!(get_with(&ha, &ta, "/latest/meta-data/nothing-here").0, 404);

    // B sees only itself, and A's token is worthless to it.
    let (_, tb) = token(&hb, "300");
    assert_eq!(
        get_with(&hb, &tb, "/latest/meta-data/instance-id"),
        (200, b.clone())
    );
    assert_eq!(get_with(&hb, &ta, "/latest/meta-data/instance-id").0, 401);
    assert_eq!(get_with(&hb, &tb, "/latest/meta-data/public-keys/").0, 404);
    assert_eq!(
        get_with(&hb, &tb, "/latest/user-data").1,
        "net-silent-after 0\necho b\n"
    );

    // Bad token requests.
    assert_eq!(token(&ha, "0").0, 400);
    assert_eq!(token(&ha, "21601").0, 400);
    assert_eq!(curl(&ha, &["-X", "PUT"], "/latest/api/token").0, 400);

    // IMDSv1 works while tokens are optional, and gets 401 once they are required.
    assert_eq!(
        curl(&ha, &[], "/latest/meta-data/instance-id"),
        (200, a.clone())
    );
    let v = d.json(&[
        "modify-instance-metadata-options",
        "--instance-id",
        &a,
        "--http-tokens",
        "required",
    ]);
    assert_eq!(v["InstanceMetadataOptions"]["HttpTokens"], "required");
    assert_eq!(d.instance(&a)["MetadataOptions"]["HttpTokens"], "required");
    assert_eq!(curl(&ha, &[], "/latest/meta-data/instance-id").0, 401);
    assert_eq!(get_with(&ha, &ta, "/latest/meta-data/instance-id").1, a);
    assert_eq!(
        curl(&hb, &[], "/latest/meta-data/instance-id"),
        (200, b.clone())
    );

    // An address that is no instance's gets nothing.
    let stranger = d.host("x", "strato0", "172.31.0.200/20", Some("172.31.0.1"));
    assert_eq!(curl(&stranger, &[], "/latest/meta-data/instance-id").0, 403);
    assert_eq!(token(&stranger, "60").0, 403);

    // Turned off for B: 403.
    d.cli(&[
        "modify-instance-metadata-options",
        "--instance-id",
        &b,
        "--http-endpoint",
        "disabled",
    ]);
    assert_eq!(curl(&hb, &[], "/latest/meta-data/instance-id").0, 403);

    d.cli_err(
        "InvalidParameterValue",
        &[
            "modify-instance-metadata-options",
            "--instance-id",
            &a,
            "--http-put-response-hop-limit",
            "65",
        ],
    );
    d.cli_err(
        "InvalidParameterValue",
        &[
            "run-instances",
            "--image-id",
            &ami,
            "--metadata-options",
            "HttpTokens=v2",
        ],
    );
}

#[test]
fn token_responses_do_not_survive_a_router_unless_the_hop_limit_allows() {
    let d = Daemon::start("imdshop");
    let ami = d.register_probe("probe");
    let (a, ha) = instance_and_stand_in(&d, &ami, "a", &[]);
    // A "container" behind the instance: ha routes and masquerades for it, as a
    // container runtime in the guest would.
    let c = NsHost::behind(&ha, "c", "10.99.0.1/24", "10.99.0.2/24");
    assert_eq!(token(&ha, "60").0, 200);
    // Plain GETs (TTL 64) cross the router; the token response (TTL 1) does not.
    assert_eq!(
        curl(&c, &[], "/latest/meta-data/instance-id"),
        (200, a.clone())
    );
    assert_eq!(
        token(&c, "60").0,
        0,
        "the token response must die at the router"
    );
    d.cli(&[
        "modify-instance-metadata-options",
        "--instance-id",
        &a,
        "--http-put-response-hop-limit",
        "2",
    ]);
    let (code, t) = token(&c, "60");
    assert_eq!(code, 200);
    assert_eq!(get_with(&c, &t, "/latest/meta-data/instance-id"), (200, a));
}

#[test]
fn paths_as_real_clients_ask_them() {
    let d = Daemon::start("imdspaths");
    let ami = d.register_probe("probe");
    let (id, h) = instance_and_stand_in(&d, &ami, "a", &[]);
    let (_, t) = token(&h, "300");
    // A leaf with a trailing slash is the leaf, as on EC2.
    assert_eq!(
        get_with(&h, &t, "/latest/meta-data/placement/availability-zone/"),
        (200, "home-1a".into())
    );
    assert_eq!(
        get_with(&h, &t, "/latest/meta-data/instance-id/"),
        (200, id.clone())
    );
    // An empty segment names nothing (curl sends the path as it is).
    for p in ["/latest//meta-data/ramdisk-id", "/latest//meta-data/"] {
        let hdr = format!("X-aws-ec2-metadata-token: {t}");
        assert_eq!(curl(&h, &["--path-as-is", "-H", &hdr], p).0, 404, "{p}");
    }
    // botocore's region lookup (what boto3 on an instance does without a configured
    // region) asks for `placement/availability-zone/` with an IMDSv2 token.
    let py = strato_e2e::query::venv_bin("python");
    let script = "from botocore.utils import InstanceMetadataRegionFetcher as F\n\
                  print(F(timeout=3, num_attempts=1).retrieve_region())";
    for required in [false, true] {
        if required {
            d.cli(&[
                "modify-instance-metadata-options",
                "--instance-id",
                &id,
                "--http-tokens",
                "required",
            ]);
        }
        let out = h.exec(&[py.to_str().unwrap(), "-c", script]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(text.trim(), "home-1", "{out:?}");
    }
}
