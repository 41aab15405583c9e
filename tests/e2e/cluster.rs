//! A region of three hosts (issue 16's core): three daemons in namespaces of their own on
//! one underlay switch, one etcd on the switch. Membership (every host lists the three
//! `available`), placement through etcd (a spread group over three racks puts three
//! instances on three hosts, then refuses the fourth; a partition group's partitions land
//! on disjoint hosts; launches another host placed are forwarded to it over TLS), a host
//! killed with kill -9 (`unavailable` on the others within TTL plus a probe; restarted, it
//! rejoins and adopts its VMs), and etcd stopped and started again (launches refused with
//! `Unavailable` meanwhile, VMs untouched; afterwards nothing is lost). Calls about
//! instances and volumes reach their hosts from any host, through the CLI and the Query
//! API. A VPC of the region, its hosts with uplinks on one LAN: Elastic IPs allocated,
//! associated, moved, disassociated and released from any host.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strato_e2e::underlay::{Underlay, SWITCH_ADDR};
use strato_e2e::{fast_config, Daemon};
use strato_proto::v1 as pb;

const SECRET: &str = "region-secret-for-tests-0123";
const TTL: u64 = 2;
const T: Duration = Duration::from_secs(30);
/// The region's hosts, and their underlay addresses.
const NAMES: [&str; 3] = ["h1", "h2", "h3"];
const ADDRS: [&str; 3] = ["10.250.0.11", "10.250.0.12", "10.250.0.13"];
/// Their uplinks' addresses on the LAN (198.51.100.0/24, the switch .1), when they have one.
const LAN_ADDRS: [&str; 3] = ["198.51.100.11", "198.51.100.12", "198.51.100.13"];
/// The public pool every host of the region has (198.51.100.65 to .78).
const REGION_POOL: &str = "198.51.100.64/28";

fn config(name: &str, addr: &str, etcd: &str) -> Value {
    let mut c = fast_config();
    c["listen"] = json!([format!("tcp:{addr}:7443")]);
    // The EC2 Query API too (on each host's loopback, in its namespace).
    c["ec2_api"] = json!({ "listen": strato_e2e::query::QUERY_LISTEN });
    c["cluster"] = json!({
        "etcd": [etcd],
        "host": name,
        "underlay": addr,
        "capacity": {"vcpus": 4, "memory_mib": 4096},
        "lease_ttl_secs": TTL,
        "secret": SECRET,
    });
    c
}

/// The hosts as `d` lists them: name → host.
fn hosts(d: &Daemon) -> BTreeMap<String, Value> {
    let v = d.json(&["describe-hosts"]);
    v["Hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["HostId"].as_str().unwrap().to_string(), h.clone()))
        .collect()
}

/// Waits until `d` shows `host` in `state`.
fn wait_host(d: &Daemon, host: &str, state: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let out = d.cli_raw(&["describe-hosts", "--output", "json"]);
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let now = v["Hosts"]
                .as_array()
                .and_then(|l| l.iter().find(|h| h["HostId"] == host))
                .map(|h| h["State"].as_str().unwrap_or("").to_string());
            if now.as_deref() == Some(state) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{host} never became {state}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `d` sees one free vCPU on every host (the tests' launches have given their
/// capacity back).
fn wait_one_free_vcpu_each(d: &Daemon) {
    let deadline = Instant::now() + T;
    while hosts(d)
        .values()
        .any(|h| h["AvailableCapacity"]["AvailableVCpus"] != 1)
    {
        assert!(Instant::now() < deadline, "{:?}", hosts(d));
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Launches from `d`; the instances' IDs and hosts.
fn launch(d: &Daemon, ami: &str, extra: &[&str]) -> Vec<(String, String)> {
    ids_and_hosts(&d.run_json(ami, extra))
}

/// The instances of a RunInstances answer (gRPC's or the Query API's): IDs and hosts.
fn ids_and_hosts(v: &Value) -> Vec<(String, String)> {
    v["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["InstanceId"].as_str().unwrap().to_string(),
                i["Placement"]["HostId"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn copy_ca(from: &Path, to: &Daemon) {
    let dir = to.data().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["ca.pem", "ca.key"] {
        std::fs::copy(from.join(f), dir.join(f)).unwrap();
    }
}

/// The region's three hosts h1, h2 and h3 on `ul` (namespaces `<tag>h1`…), started with
/// etcd at `ep`, once each lists all three as available. The first host makes the region's
/// CA; the others start with it, so that each trusts the others' certificates. With
/// `uplinks`, `ul` gets its LAN and each host an uplink on it ([`LAN_ADDRS`]) and the
/// region's public pool [`REGION_POOL`] in its config.
fn start_hosts(ul: &Underlay, tag: &str, ep: &str, uplinks: bool) -> Vec<Daemon> {
    if uplinks {
        ul.add_lan();
    }
    let host_config = |k: usize| {
        let mut c = config(NAMES[k], ADDRS[k], ep);
        if uplinks {
            c["uplink"] = json!({"interface": strato_e2e::UPLINK, "pool": REGION_POOL});
        }
        c
    };
    // Plugged into the LAN before it starts: the daemon finds its uplink at start.
    let plug = |k: usize, x: &Daemon| {
        if uplinks {
            ul.plug_uplink(
                &x.ns,
                &format!("{tag}h{}", k + 1),
                &format!("{}/24", LAN_ADDRS[k]),
            );
        }
    };
    let mut d = vec![ul.start_daemon_with(
        &format!("{tag}h1"),
        host_config(0),
        &format!("{}/24", ADDRS[0]),
        |x| plug(0, x),
    )];
    let ca_dir = d[0].data().join("tls");
    for (k, addr) in ADDRS.iter().enumerate().skip(1) {
        d.push(ul.start_daemon_with(
            &format!("{tag}h{}", k + 1),
            host_config(k),
            &format!("{addr}/24"),
            |x| {
                copy_ca(&ca_dir, x);
                plug(k, x);
            },
        ));
    }
    for x in &d {
        for n in NAMES {
            wait_host(x, n, "available", T);
        }
    }
    d
}

#[test]
fn three_hosts_one_region() {
    // No etcd is a failure, not a skip: `Underlay::start_etcd` says to install it.
    let started = Instant::now();
    let ul = Underlay::new("cl");
    let mut etcd = ul.start_etcd();
    let ep = ul.etcd_endpoint();
    assert!(ep.contains(SWITCH_ADDR));
    let names = NAMES;
    let mut d = start_hosts(&ul, "cl", &ep, false);

    // Membership: each host lists the three, available, with their capacity.
    for x in &d {
        let h = hosts(x);
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(h["h2"]["HostProperties"]["TotalVCpus"], 4);
        assert_eq!(h["h2"]["ApiEndpoint"], "https://10.250.0.12:7443");
    }

    // AMIs are the region's: registered once on h1, every host lists it under its ID (its
    // files stay on h1 until a launch on another host pulls them), its name is taken in the
    // region, and its tags are the same everywhere.
    let ami = d[0].register_probe("probe");
    let amis: Vec<String> = vec![ami.clone(); 3];
    let image_on = |x: &Daemon, id: &str| -> Option<Value> {
        let v = x.json(&["describe-images"]);
        v["Images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ImageId"] == id)
            .cloned()
    };
    for x in &d {
        strato_e2e::wait_until(T, "the region's AMI available on every host", || {
            image_on(x, &ami).is_some_and(|i| i["State"] == "available")
        });
    }
    let err = d[2].cli_err(
        "InvalidAMIName.Duplicate",
        &[
            "register-image",
            "--name",
            "probe",
            "--bundle",
            strato_e2e::probe_bundle().to_str().unwrap(),
        ],
    );
    assert!(err.contains("probe"), "{err}");
    d[1].cli(&[
        "create-tags",
        "--resources",
        &ami,
        "--tags",
        "Key=os,Value=probe",
    ]);
    strato_e2e::wait_until(T, "the AMI's tag on h3", || {
        image_on(&d[2], &ami).is_some_and(|i| i["Tags"][0]["Value"] == "probe")
    });
    strato_e2e::wait_until(T, "h1 in the AMI's holders", || {
        etcd_keys(&ul, "owners/").contains(&format!("h1/{ami}"))
    });
    assert!(
        !etcd_keys(&ul, "owners/")
            .iter()
            .any(|k| k.ends_with(&ami) && !k.starts_with("h1/")),
        "only h1 holds the AMI's files before any launch"
    );
    // Placement groups and key pairs are the region's: made once, on any host, every host
    // has them (the same IDs), and a name is unique in the region.
    d[0].cli(&[
        "create-placement-group",
        "--group-name",
        "sp",
        "--strategy",
        "spread",
    ]);
    d[2].cli(&[
        "create-placement-group",
        "--group-name",
        "pt",
        "--strategy",
        "partition",
        "--partition-count",
        "3",
    ]);
    let key = d[1].json(&[
        "create-key-pair",
        "--key-name",
        "region-key",
        "--key-type",
        "ed25519",
    ]);
    let key_id = key["KeyPairId"].as_str().unwrap().to_string();
    let groups_of = |x: &Daemon| -> BTreeMap<String, String> {
        let v = x.json(&["describe-placement-groups"]);
        v["PlacementGroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["GroupName"].as_str().unwrap().to_string(),
                    g["GroupId"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let keys_of = |x: &Daemon| -> Vec<(String, String)> {
        let v = x.json(&["describe-key-pairs"]);
        v["KeyPairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["KeyName"].as_str().unwrap().to_string(),
                    k["KeyPairId"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let want_groups = groups_of(&d[2]);
    assert_eq!(want_groups.len(), 2, "{want_groups:?}");
    for x in &d {
        strato_e2e::wait_until(T, "the region's groups and keys on every host", || {
            groups_of(x) == want_groups
                && keys_of(x) == [("region-key".to_string(), key_id.clone())]
        });
    }
    d[1].cli_err(
        "InvalidPlacementGroup.Duplicate",
        &[
            "create-placement-group",
            "--group-name",
            "sp",
            "--strategy",
            "cluster",
        ],
    );
    let err = d[2].cli_err(
        "InvalidKeyPair.Duplicate",
        &["create-key-pair", "--key-name", "region-key"],
    );
    assert!(err.contains("region"), "{err}");
    assert_eq!(keys_of(&d[2]).len(), 1, "the refused key is not kept");

    // Spread over three racks (racks are hosts): three instances on three hosts, then the
    // refusal, wherever the launches are sent.
    let mut spread = Vec::new();
    for k in 0..3 {
        let got = launch(
            &d[k % 3],
            &amis[k % 3],
            &["--placement", "GroupName=sp", "--key-name", "region-key"],
        );
        assert_eq!(got.len(), 1);
        spread.push(got[0].clone());
    }
    let spread_hosts: BTreeSet<&str> = spread.iter().map(|(_, h)| h.as_str()).collect();
    assert_eq!(spread_hosts.len(), 3, "{spread:?}");
    // h2 and h3 pulled the AMI's kernel from h1 for their instances, which run; each now
    // holds it too.
    for (id, host) in &spread {
        let x = &d[names.iter().position(|n| n == host).unwrap()];
        x.wait_state(id, "running", T);
    }
    strato_e2e::wait_until(T, "every host in the AMI's holders", || {
        let keys = etcd_keys(&ul, "owners/");
        names.iter().all(|n| keys.contains(&format!("{n}/{ami}")))
    });

    for (id, host) in &spread {
        let x = &d[names.iter().position(|n| n == host).unwrap()];
        assert_eq!(x.instance(id)["KeyName"], "region-key", "{id} on {host}");
    }
    // Tags of a region-scoped resource are the region's: a tag put on h1 shows on h3.
    d[0].cli(&[
        "create-tags",
        "--resources",
        &key_id,
        "--tags",
        "Key=team,Value=lab",
    ]);
    strato_e2e::wait_until(T, "the key pair's tag on h3", || {
        let v = d[2].json(&["describe-key-pairs"]);
        v["KeyPairs"][0]["Tags"][0]["Value"] == "lab"
    });
    // A key pair deleted on one host is gone from every host (its instances keep the key).
    d[2].cli(&["delete-key-pair", "--key-name", "region-key"]);
    for x in &d {
        strato_e2e::wait_until(T, "the key pair gone from every host", || {
            keys_of(x).is_empty()
        });
    }
    let err = d[1].cli_err(
        "InsufficientInstanceCapacity",
        &[
            "run-instances",
            "--image-id",
            &amis[1],
            "--instance-type",
            "custom-1-64",
            "--placement",
            "GroupName=sp",
        ],
    );
    assert!(err.contains("spread"), "{err}");

    // Partitions on disjoint hosts: six instances in two calls of three, each call split
    // over the hosts and forwarded.
    let mut parts: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for _ in 0..2 {
        let v = d[1].json(&[
            "run-instances",
            "--image-id",
            &amis[1],
            "--instance-type",
            "custom-1-64",
            "--count",
            "3",
            "--placement",
            "GroupName=pt",
        ]);
        let list = v["Instances"].as_array().unwrap();
        assert_eq!(list.len(), 3, "{v}");
        for i in list {
            let p = &i["Placement"];
            parts
                .entry(p["PartitionNumber"].as_i64().unwrap())
                .or_default()
                .insert(p["HostId"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(parts.len(), 3, "{parts:?}");
    let mut seen = BTreeSet::new();
    for hs in parts.values() {
        assert_eq!(hs.len(), 1, "a partition spans hosts: {parts:?}");
        assert!(seen.insert(hs.iter().next().unwrap().clone()), "{parts:?}");
    }
    // A group with instances on other hosts cannot be deleted from any host.
    let err = d[0].cli_err(
        "InvalidPlacementGroup.InUse",
        &["delete-placement-group", "--group-name", "pt"],
    );
    assert!(err.contains("host h"), "{err}");

    // Each host runs its own: three instances each, running, and describe-hosts from any
    // host counts them.
    for (k, x) in d.iter().enumerate() {
        let mine = hosts(x);
        for n in names {
            let h = &mine[n];
            assert_eq!(h["Instances"].as_array().unwrap().len(), 3, "{n}: {h}");
            assert_eq!(h["AvailableCapacity"]["AvailableVCpus"], 1, "{n}: {h}");
        }
        // A describe from any host covers the region; each instance names its host.
        let v = x.json(&["describe-instances"]);
        let all = strato_e2e::instances_of(&v);
        assert_eq!(all.len(), 9, "{}: {v}", names[k]);
        let local: Vec<&Value> = all
            .iter()
            .filter(|i| i["Placement"]["HostId"] == names[k])
            .collect();
        assert_eq!(local.len(), 3, "{}: {v}", names[k]);
        for i in local {
            assert_eq!(i["Placement"]["HostId"], names[k]);
            x.wait_state(i["InstanceId"].as_str().unwrap(), "running", T);
        }
    }

    // Calls about another host's instance go to its owner, from any host: the spread
    // group put one instance on each host.
    let on = |h: &str| spread.iter().find(|(_, x)| x == h).unwrap().0.clone();
    let (i2, i3) = (on("h2"), on("h3"));
    let v = d[0].json(&["stop-instances", "--instance-ids", &i2, "--force"]);
    assert_eq!(v["StoppingInstances"][0]["InstanceId"], i2.as_str(), "{v}");
    d[2].wait_state(&i2, "stopped", T);
    let v = d[2].json(&["start-instances", "--instance-ids", &i2]);
    assert_eq!(
        v["StartingInstances"][0]["PreviousState"]["Name"], "stopped",
        "{v}"
    );
    let console = d[0].json(&["get-console-output", "--instance-id", &i3]);
    assert!(
        console["Output"].as_str().unwrap().contains("probe: ready"),
        "{console}"
    );
    // `strato console` streams another host's console too (relayed by the host asked).
    let mut console = Command::new(strato_e2e::bin("strato"))
        .env("STRATO_ENDPOINT", format!("unix:{}", d[0].socket.display()))
        .env_remove("STRATO_TOKEN")
        .args(["console", &i3])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut out = console.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = Vec::new();
    let mut wait_shown = |what: &str| {
        let deadline = Instant::now() + T;
        while !String::from_utf8_lossy(&shown).contains(what) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => shown.extend(chunk),
                Err(e) => panic!("{what}: {e}: {}", String::from_utf8_lossy(&shown)),
            }
        }
    };
    wait_shown("probe: ready");
    // What is typed goes to the guest on its host (SendConsoleInput, forwarded).
    {
        use std::io::Write;
        let mut stdin = console.stdin.take().unwrap();
        stdin.write_all(b"hello across hosts\n").unwrap();
        wait_shown("probe: console hello across hosts");
    }
    console.kill().unwrap();
    console.wait().unwrap();
    let v = d[0].json(&["describe-instances", "--instance-ids", &i3, &i2]);
    let listed = strato_e2e::instances_of(&v);
    let both: Vec<(&str, &str)> = listed
        .iter()
        .map(|i| {
            (
                i["InstanceId"].as_str().unwrap(),
                i["Placement"]["HostId"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(both, [(i3.as_str(), "h3"), (i2.as_str(), "h2")], "{v}");
    let st = d[0].json(&[
        "describe-instance-status",
        "--instance-ids",
        &i2,
        &i3,
        "--include-all-instances",
    ]);
    let ids: Vec<&str> = st["InstanceStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["InstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [i2.as_str(), i3.as_str()], "{st}");
    let v = d[1].json(&[
        "modify-instance-metadata-options",
        "--instance-id",
        &i3,
        "--http-tokens",
        "required",
    ]);
    assert_eq!(
        v["InstanceMetadataOptions"]["HttpTokens"], "required",
        "{v}"
    );
    assert_eq!(
        d[2].instance(&i3)["MetadataOptions"]["HttpTokens"],
        "required"
    );
    // Another account's instance on another host is unknown to the caller, as on one host.
    d[0].cli_err_as(
        Some("token-alice"),
        "InvalidInstanceID.NotFound",
        &["stop-instances", "--instance-ids", &i2],
    );
    // An ID no host has is refused as on one host; a refusal from the owner keeps its code.
    d[1].cli_err(
        "InvalidInstanceID.NotFound",
        &["stop-instances", "--instance-ids", "i-0000000000000000e"],
    );
    d[0].cli_err(
        "IncorrectInstanceState",
        &[
            "modify-instance-attribute",
            "--instance-id",
            &i3,
            "--no-ena-support",
        ],
    );
    d[1].wait_state(&i2, "running", T);
    // The EC2 Query API routes the same way (h1 serves it): the aws CLI describes both by
    // ID and stops h3's instance.
    let aws = d[0].aws(None);
    let v = aws.json(&["ec2", "describe-instances", "--instance-ids", &i2, &i3]);
    let listed: BTreeSet<&str> = v["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .map(|i| i["InstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, BTreeSet::from([i2.as_str(), i3.as_str()]), "{v}");
    let plain = aws.json(&["ec2", "describe-instances"]);
    let count: usize = plain["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Instances"].as_array().unwrap().len())
        .sum();
    assert_eq!(count, 9, "a plain describe covers the region: {plain}");
    // Pages of five (the aws CLI follows NextToken) cover the region too, each instance once.
    let paged = aws.json(&["ec2", "describe-instances", "--page-size", "5"]);
    let ids: Vec<&str> = paged["Reservations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["Instances"].as_array().unwrap())
        .map(|i| i["InstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 9, "paged: {paged}");
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        9,
        "paged: {paged}"
    );
    // Tags on another host's instance, through either front end, land on its host.
    aws.json(&[
        "ec2",
        "create-tags",
        "--resources",
        &i2,
        "--tags",
        "Key=role,Value=web",
    ]);
    d[2].cli(&[
        "create-tags",
        "--resources",
        &i3,
        "--tags",
        "Key=role,Value=db",
    ]);
    let tag = |x: &Daemon, id: &str| {
        // An instance with no tags has no Tags member.
        x.instance(id)["Tags"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["Key"] == "role")
            .map(|t| t["Value"].as_str().unwrap().to_string())
    };
    assert_eq!(tag(&d[1], &i2).as_deref(), Some("web"));
    assert_eq!(tag(&d[2], &i3).as_deref(), Some("db"));
    let dt = aws.json(&["ec2", "describe-tags", "--filters", "Name=key,Values=role"]);
    let tagged: BTreeSet<&str> = dt["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ResourceId"].as_str().unwrap())
        .collect();
    assert_eq!(tagged, BTreeSet::from([i2.as_str(), i3.as_str()]), "{dt}");
    d[0].cli(&["delete-tags", "--resources", &i2, "--tags", "Key=role"]);
    assert_eq!(tag(&d[1], &i2), None);
    let v = aws.json(&["ec2", "stop-instances", "--instance-ids", &i3, "--force"]);
    assert_eq!(v["StoppingInstances"][0]["InstanceId"], i3.as_str(), "{v}");
    d[1].wait_state(&i3, "stopped", T);
    d[0].cli(&["start-instances", "--instance-ids", &i3]);
    d[2].wait_state(&i3, "running", T);

    // Volumes follow their hosts (the region's volume index in etcd): one made on h2 is
    // described, attached to h2's instance, snapshotted, detached and deleted through h1,
    // and refused an instance of another host once it has a snapshot; a blank one moves to
    // the instance's host it is attached to; one made on h3 goes the same way through
    // h1's Query API; a plain describe on any host lists every host's volumes.
    let az = d[1].instance(&i2)["Placement"]["AvailabilityZone"]
        .as_str()
        .unwrap()
        .to_string();
    let v = d[1].json(&["create-volume", "--size", "1", "--availability-zone", &az]);
    let v2 = v["VolumeId"].as_str().unwrap().to_string();
    let on = |x: &Daemon, id: &str| x.json(&["describe-volumes", "--volume-ids", id]);
    assert_eq!(on(&d[0], &v2)["Volumes"][0]["State"], "available");
    d[0].cli_err_as(
        Some("token-alice"),
        "InvalidVolume.NotFound",
        &["describe-volumes", "--volume-ids", &v2],
    );
    let attach = |vol: &str, inst: &str| {
        [
            "attach-volume",
            "--volume-id",
            vol,
            "--instance-id",
            inst,
            "--device",
            "/dev/vdf",
        ]
        .map(str::to_string)
    };
    fn strs(a: &[String]) -> Vec<&str> {
        a.iter().map(String::as_str).collect()
    }
    // A blank volume made on h2, attached through h1 to h3's instance, moves to h3.
    let vm = d[1].json(&["create-volume", "--size", "1", "--availability-zone", &az]);
    let vm = vm["VolumeId"].as_str().unwrap().to_string();
    let a = d[0].json(&strs(&attach(&vm, &i3)));
    assert_eq!(a["InstanceId"], i3.as_str(), "{a}");
    let v = on(&d[1], &vm);
    assert_eq!(
        v["Volumes"][0]["Attachments"][0]["InstanceId"],
        i3.as_str(),
        "{v}"
    );
    let owners = etcd_keys(&ul, "owners/");
    assert!(owners.contains(&format!("h3/{vm}")), "{owners:?}");
    assert!(!owners.contains(&format!("h2/{vm}")), "{owners:?}");
    d[0].json(&["detach-volume", "--volume-id", &vm]);
    strato_e2e::wait_until(T, "the moved volume detached", || {
        on(&d[0], &vm)["Volumes"][0]["State"] == "available"
    });
    d[1].cli(&["delete-volume", "--volume-id", &vm]);
    let a = d[0].json(&strs(&attach(&v2, &i2)));
    assert_eq!(
        (a["InstanceId"].as_str(), a["State"].as_str()),
        (Some(i2.as_str()), Some("attached")),
        "{a}"
    );
    let v = on(&d[2], &v2);
    assert_eq!(v["Volumes"][0]["State"], "in-use", "{v}");
    assert_eq!(v["Volumes"][0]["Attachments"][0]["InstanceId"], i2.as_str());
    // The owner's refusal keeps its code.
    d[0].cli_err("VolumeInUse", &["delete-volume", "--volume-id", &v2]);
    // The snapshot is taken, and stays, on the volume's host; --wait follows it from h1, and
    // a volume made from it is made there too.
    let snap = d[0].json(&["create-snapshot", "--volume-id", &v2, "--wait"]);
    assert_eq!(snap["State"], "completed", "{snap}");
    let snap = snap["SnapshotId"].as_str().unwrap().to_string();
    let v = d[1].json(&["describe-snapshots", "--snapshot-ids", &snap]);
    assert_eq!(v["Snapshots"][0]["VolumeId"], v2.as_str(), "{v}");
    let v = d[0].json(&[
        "create-volume",
        "--snapshot-id",
        &snap,
        "--availability-zone",
        &az,
    ]);
    let restored = v["VolumeId"].as_str().unwrap().to_string();
    assert!(d[1]
        .cli_raw(&["describe-volumes", "--volume-ids", &restored])
        .status
        .success());
    let v3 = d[2].json(&["create-volume", "--size", "1", "--availability-zone", &az])["VolumeId"]
        .as_str()
        .unwrap()
        .to_string();
    // Plain describes: every host lists the same volumes, the root volumes of the nine
    // instances among them; the Query API's lists them too.
    let roots: BTreeSet<String> = strato_e2e::instances_of(&d[0].json(&["describe-instances"]))
        .iter()
        .flat_map(|i| i["BlockDeviceMappings"].as_array().unwrap().clone())
        .filter(|b| b["DeviceName"] == "/dev/vda")
        .map(|b| b["Ebs"]["VolumeId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roots.len(), 9, "{roots:?}");
    let listed = |v: &Value| -> BTreeSet<String> {
        v["Volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["VolumeId"].as_str().unwrap().to_string())
            .collect()
    };
    let everywhere = listed(&d[0].json(&["describe-volumes"]));
    assert!(everywhere.is_superset(&roots), "{everywhere:?}");
    assert!(everywhere.contains(&v2) && everywhere.contains(&v3) && everywhere.contains(&restored));
    for x in &d[1..] {
        assert_eq!(
            listed(&x.json(&["describe-volumes"])),
            everywhere,
            "{}",
            x.ns
        );
    }
    // The aws CLI asks for pages of 1000: the region's volumes are paged as one listing.
    assert_eq!(listed(&aws.json(&["ec2", "describe-volumes"])), everywhere);
    let snaps = |v: &Value| -> BTreeSet<String> {
        v["Snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["SnapshotId"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(snaps(&d[2].json(&["describe-snapshots"])).contains(&snap));
    assert!(snaps(&aws.json(&["ec2", "describe-snapshots"])).contains(&snap));
    let wait_available = |x: &dyn Fn() -> Value, id: &str| {
        let deadline = Instant::now() + T;
        loop {
            let v = x();
            if v["Volumes"][0]["State"] == "available" {
                break;
            }
            assert!(Instant::now() < deadline, "{id} is not available: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    d[0].json(&["detach-volume", "--volume-id", &v2]);
    wait_available(&|| on(&d[0], &v2), &v2);
    // With a snapshot taken of it, it stays on h2: h3's copy is undone, the attach refused.
    let err = d[0].cli_err("InvalidVolume.ZoneMismatch", &strs(&attach(&v2, &i3)));
    assert!(err.contains("host h2") && err.contains("host h3"), "{err}");
    let owners = etcd_keys(&ul, "owners/");
    assert!(!owners.contains(&format!("h3/{v2}")), "{owners:?}");
    assert_eq!(on(&d[2], &v2)["Volumes"][0]["State"], "available");
    d[0].cli(&["delete-volume", "--volume-id", &v2]);
    wait_available(&|| on(&d[2], &restored), &restored);
    d[2].cli(&["delete-volume", "--volume-id", &restored]);
    d[2].cli(&["delete-snapshot", "--snapshot-id", &snap]);
    for x in &d {
        x.cli_err(
            "InvalidVolume.NotFound",
            &["describe-volumes", "--volume-ids", &v2],
        );
        x.cli_err(
            "InvalidSnapshot.NotFound",
            &["describe-snapshots", "--snapshot-ids", &snap],
        );
    }
    // h3's volume through h1's Query API.
    let v = aws.json(&["ec2", "describe-volumes", "--volume-ids", &v3]);
    assert_eq!(v["Volumes"][0]["VolumeId"], v3.as_str(), "{v}");
    let (far, near) = (attach(&v3, &i2), attach(&v3, &i3));
    fn ec2(a: &[String]) -> Vec<&str> {
        [vec!["ec2"], strs(a)].concat()
    }
    let a = aws.json(&ec2(&near));
    assert_eq!(a["State"], "attached", "{a}");
    let v = d[2].json(&["describe-volumes", "--volume-ids", &v3]);
    assert_eq!(v["Volumes"][0]["Attachments"][0]["InstanceId"], i3.as_str());
    aws.json(&["ec2", "detach-volume", "--volume-id", &v3]);
    wait_available(
        &|| aws.json(&["ec2", "describe-volumes", "--volume-ids", &v3]),
        &v3,
    );
    // Attached and detached, never written: through the Query API it moves to h2's
    // instance.
    let a = aws.json(&ec2(&far));
    assert_eq!(a["InstanceId"], i2.as_str(), "{a}");
    assert!(etcd_keys(&ul, "owners/").contains(&format!("h2/{v3}")));
    aws.json(&["ec2", "detach-volume", "--volume-id", &v3]);
    wait_available(
        &|| aws.json(&["ec2", "describe-volumes", "--volume-ids", &v3]),
        &v3,
    );
    aws.json(&["ec2", "delete-volume", "--volume-id", &v3]);
    aws.err(
        "InvalidVolume.NotFound",
        &["ec2", "describe-volumes", "--volume-ids", &v3],
    );

    // Network interfaces follow their hosts as volumes do: one made on h2 is listed by every
    // host and h1's Query API, given an address and a description through h1, refused h3's
    // instance, attached to h2's stopped instance through h3, detached through h1's Query
    // API and deleted through h3.
    let subnet = d[1].instance(&i2)["SubnetId"].as_str().unwrap().to_string();
    let eni = d[1].json(&["create-network-interface", "--subnet-id", &subnet]);
    let eni = eni["NetworkInterface"]["NetworkInterfaceId"]
        .as_str()
        .unwrap()
        .to_string();
    let enis = |v: &Value| -> Vec<String> {
        v["NetworkInterfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["NetworkInterfaceId"].as_str().unwrap().to_string())
            .collect()
    };
    for x in [&d[0], &d[2]] {
        assert!(enis(&x.json(&["describe-network-interfaces"])).contains(&eni));
    }
    assert!(enis(&aws.json(&["ec2", "describe-network-interfaces"])).contains(&eni));
    let one_eni = |x: &Daemon| {
        x.json(&[
            "describe-network-interfaces",
            "--network-interface-ids",
            &eni,
        ])["NetworkInterfaces"][0]
            .clone()
    };
    let added = d[0].json(&[
        "assign-private-ip-addresses",
        "--network-interface-id",
        &eni,
        "--secondary-private-ip-address-count",
        "1",
    ]);
    assert_eq!(
        added["AssignedPrivateIpAddresses"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{added}"
    );
    d[0].cli(&[
        "modify-network-interface-attribute",
        "--network-interface-id",
        &eni,
        "--description",
        "changed through h1",
    ]);
    d[0].cli(&[
        "create-tags",
        "--resources",
        &eni,
        "--tags",
        "Key=role,Value=spare",
    ]);
    let e = one_eni(&d[2]);
    assert_eq!(e["Description"], "changed through h1", "{e}");
    assert_eq!(e["TagSet"][0]["Value"], "spare", "{e}");
    assert_eq!(e["PrivateIpAddresses"].as_array().unwrap().len(), 2, "{e}");
    let attach_eni = |inst: &str| {
        [
            "attach-network-interface",
            "--network-interface-id",
            &eni,
            "--instance-id",
            inst,
            "--device-index",
            "1",
        ]
        .map(str::to_string)
    };
    let err = d[0].cli_err("InvalidParameterCombination", &strs(&attach_eni(&i3)));
    assert!(err.contains("host h2") && err.contains("host h3"), "{err}");
    // h2 answers for its running instance with its own refusal.
    d[2].cli_err("IncorrectInstanceState", &strs(&attach_eni(&i2)));
    d[0].cli(&["stop-instances", "--instance-ids", &i2, "--wait"]);
    let a = d[2].json(&strs(&attach_eni(&i2)));
    let attachment = a["AttachmentId"].as_str().unwrap().to_string();
    let e = one_eni(&d[0]);
    assert_eq!(e["Status"], "in-use", "{e}");
    assert_eq!(e["Attachment"]["InstanceId"], i2.as_str(), "{e}");
    aws.json(&[
        "ec2",
        "detach-network-interface",
        "--attachment-id",
        &attachment,
    ]);
    assert_eq!(one_eni(&d[2])["Status"], "available");
    d[2].cli(&["delete-network-interface", "--network-interface-id", &eni]);
    for x in &d {
        x.cli_err(
            "InvalidNetworkInterfaceID.NotFound",
            &[
                "describe-network-interfaces",
                "--network-interface-ids",
                &eni,
            ],
        );
    }
    d[0].cli(&["start-instances", "--instance-ids", &i2, "--wait"]);

    // Only a host holding the region's secret may name a launch's IDs and slots.
    let forged = pb::RunInstancesRequest {
        image_id: amis[0].clone(),
        instance_type: "custom-1-64".into(),
        min_count: 1,
        max_count: 1,
        region_placement: Some(pb::RegionPlacement {
            host: "h1".into(),
            instance_ids: vec!["i-0000000000000000f".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let socket = d[0].socket.clone();
    let refused = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let channel =
                tonic::transport::Endpoint::from_shared(format!("unix:{}", socket.display()))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
            pb::compute_client::ComputeClient::new(channel)
                .run_instances(forged)
                .await
                .unwrap_err()
        });
    assert_eq!(
        refused
            .metadata()
            .get(strato_proto::ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some("AuthFailure"),
        "{refused:?}"
    );

    // Four launches at once for the region's last three vCPUs (one per host): the etcd
    // transaction lets exactly three through, one per host. Terminated, their capacity
    // comes back.
    let racers: Vec<std::process::Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|k| {
                let (x, ami) = (&d[k % 3], &amis[k % 3]);
                s.spawn(move || {
                    x.cli_raw(&[
                        "run-instances",
                        "--image-id",
                        ami,
                        "--instance-type",
                        "custom-1-64",
                        "--output",
                        "json",
                    ])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut won = Vec::new();
    for out in &racers {
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            let i = &v["Instances"][0];
            won.push((
                i["InstanceId"].as_str().unwrap().to_string(),
                i["Placement"]["HostId"].as_str().unwrap().to_string(),
            ));
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("InsufficientInstanceCapacity"), "{err}");
        }
    }
    assert_eq!(won.len(), 3, "{won:?}");
    let won_hosts: BTreeSet<&str> = won.iter().map(|(_, h)| h.as_str()).collect();
    assert_eq!(won_hosts.len(), 3, "{won:?}");
    for (id, host) in &won {
        let k = names.iter().position(|n| n == host).unwrap();
        d[k].cli(&["terminate-instances", "--instance-ids", id]);
    }
    wait_one_free_vcpu_each(&d[0]);
    // Their capacity is back, yet another host still routes a describe of each to its
    // host, which lists it terminated (EC2 shows terminated instances for a while).
    for (id, host) in &won {
        let k = names.iter().position(|n| n == host).unwrap();
        let other = &d[(k + 1) % 3];
        let v = other.json(&["describe-instances", "--instance-ids", id]);
        let listed = strato_e2e::instances_of(&v);
        assert_eq!(listed.len(), 1, "{id} from {}: {v}", names[(k + 1) % 3]);
        assert_eq!(listed[0]["State"]["Name"], "terminated", "{v}");
        assert_eq!(listed[0]["Placement"]["HostId"], host.as_str(), "{v}");
    }

    // A launch is all or nothing (EC2's MinCount): two instances from h2 with a snapshot only
    // h2 holds go one to h2 and one to h1; h2 launches its share, h1 refuses its own, and
    // h2's instance is terminated again (its protection from termination lifted) before the
    // launch answers h1's refusal. Its capacity comes back.
    let vol = d[1].json(&["create-volume", "--size", "1", "--availability-zone", &az])["VolumeId"]
        .as_str()
        .unwrap()
        .to_string();
    let only_h2 = d[1].json(&["create-snapshot", "--volume-id", &vol, "--wait"]);
    let only_h2 = only_h2["SnapshotId"].as_str().unwrap().to_string();
    let mapping = json!([{
        "DeviceName": "/dev/vdb",
        "Ebs": {"SnapshotId": only_h2, "DeleteOnTermination": true},
    }])
    .to_string();
    let err = d[1].cli_err(
        "InvalidSnapshot.NotFound",
        &[
            "run-instances",
            "--image-id",
            &amis[1],
            "--instance-type",
            "custom-1-64",
            "--count",
            "2",
            "--block-device-mappings",
            &mapping,
            "--disable-api-termination",
            "--client-token",
            "all-or-nothing",
        ],
    );
    assert!(err.contains(&only_h2), "{err}");
    let undone = strato_e2e::instances_of(&d[1].json(&[
        "describe-instances",
        "--filters",
        "Name=client-token,Values=all-or-nothing",
    ]));
    assert_eq!(undone.len(), 1, "h2's share: {undone:?}");
    assert_eq!(undone[0]["Placement"]["HostId"], "h2", "{undone:?}");
    d[1].wait_state(undone[0]["InstanceId"].as_str().unwrap(), "terminated", T);
    wait_one_free_vcpu_each(&d[0]);
    d[1].cli(&["delete-snapshot", "--snapshot-id", &only_h2]);
    d[1].cli(&["delete-volume", "--volume-id", &vol]);

    // The volume index follows the hosts' volumes: the racers' root volumes went with their
    // instances (DeleteOnTermination), and every live instance's root volume is indexed
    // under its instance's host.
    let deadline = Instant::now() + T;
    loop {
        let indexed: BTreeSet<(String, String)> = etcd_keys(&ul, "owners/")
            .iter()
            .filter_map(|k| k.split_once('/'))
            .filter(|(_, id)| id.starts_with("vol-"))
            .map(|(h, id)| (h.to_string(), id.to_string()))
            .collect();
        let listed: BTreeSet<String> = d[0].json(&["describe-volumes"])["Volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["VolumeId"].as_str().unwrap().to_string())
            .collect();
        let roots: BTreeSet<(String, String)> =
            strato_e2e::instances_of(&d[0].json(&["describe-instances"]))
                .iter()
                .filter(|i| i["State"]["Name"] != "terminated")
                .flat_map(|i| {
                    let host = i["Placement"]["HostId"].as_str().unwrap().to_string();
                    i["BlockDeviceMappings"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|b| b["DeviceName"] == "/dev/vda")
                        .map(|b| {
                            (
                                host.clone(),
                                b["Ebs"]["VolumeId"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
        let ids: BTreeSet<String> = indexed.iter().map(|(_, id)| id.clone()).collect();
        if ids == listed && indexed.is_superset(&roots) && roots.len() == 9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "index {indexed:?}\nlisted {listed:?}\nroots {roots:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    query_api_launches(&d, &amis);

    // The overlay follows membership: every VPC's VXLAN device on each host (each has
    // its default VPC by now) replicates to the other two hosts' underlay addresses.
    for (k, x) in d.iter().enumerate() {
        let mut want: Vec<String> = (1..=3)
            .filter(|&i| i != k + 1)
            .map(|i| format!("10.250.0.1{i}"))
            .collect();
        want.sort();
        wait_peers(x, &want, T);
    }

    // kill -9 of h3: the others see it unavailable within the TTL plus a probe, and its
    // VMs keep running; restarted, it rejoins and adopts them.
    let on_h3: Vec<String> = strato_e2e::instances_of(&d[2].json(&["describe-instances"]))
        .iter()
        .filter(|i| i["State"]["Name"] == "running" && i["Placement"]["HostId"] == "h3")
        .map(|i| i["InstanceId"].as_str().unwrap().to_string())
        .collect();
    assert!(!on_h3.is_empty(), "nothing runs on h3");
    // A status describe covers the region too: each host lists every running instance.
    let running: BTreeSet<String> = strato_e2e::instances_of(&d[0].json(&["describe-instances"]))
        .iter()
        .filter(|i| i["State"]["Name"] == "running")
        .map(|i| i["InstanceId"].as_str().unwrap().to_string())
        .collect();
    for x in &d {
        let listed: BTreeSet<String> = x.json(&["describe-instance-status"])["InstanceStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["InstanceId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, running, "describe-instance-status on {}", x.ns);
    }
    let vmms = d[2].vmm_pids().len();
    let killed = Instant::now();
    d[2].kill_daemon();
    // At once, before its lease lapses, a launch for up to one instance per host: h3's
    // share cannot be sent and finds no room elsewhere; the two others launch.
    let v = d[0].json(&[
        "run-instances",
        "--image-id",
        &amis[0],
        "--instance-type",
        "custom-1-64",
        "--count",
        "2:3",
    ]);
    let late: BTreeSet<&str> = v["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Placement"]["HostId"].as_str().unwrap())
        .collect();
    assert_eq!(late, BTreeSet::from(["h1", "h2"]), "{v}");
    wait_host(&d[0], "h3", "unavailable", Duration::from_secs(TTL * 4 + 5));
    wait_host(&d[1], "h3", "unavailable", Duration::from_secs(5));
    eprintln!("h3 unavailable after {:?}", killed.elapsed());
    // A call about its instances cannot reach their owner: Unavailable, naming it.
    let err = d[0].cli_err(
        "Unavailable",
        &["stop-instances", "--instance-ids", &on_h3[0]],
    );
    assert!(err.contains("h3"), "{err}");
    // Its instances show impaired region-wide (from the others' view), the others' own ok.
    let st = d[0].json(&["describe-instance-status"]);
    let statuses = st["InstanceStatuses"].as_array().unwrap();
    for id in &on_h3 {
        let s = statuses
            .iter()
            .find(|s| s["InstanceId"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} of the down host is not listed: {st}"));
        assert_eq!(s["SystemStatus"]["Status"], "impaired", "{s}");
        assert_eq!(s["InstanceStatus"]["Status"], "insufficient-data", "{s}");
    }
    assert!(
        statuses
            .iter()
            .filter(|s| !on_h3.iter().any(|id| s["InstanceId"] == id.as_str()))
            .all(|s| s["SystemStatus"]["Status"] != "impaired"),
        "{st}"
    );
    // A host known down is no longer a VXLAN peer.
    wait_peers(&d[0], &["10.250.0.12".to_string()], T);
    assert_eq!(d[2].vmm_pids().len(), vmms, "the VMs outlive their daemon");
    d[2].start_again();
    wait_host(&d[0], "h3", "available", T);
    for id in &on_h3 {
        d[2].wait_state(id, "running", T);
    }

    // etcd away: region-wide changes are refused with a clear error, each host still
    // serves its own instances; back, nothing is lost and the hosts register again.
    etcd.stop();
    let err = d[0].cli_err(
        "Unavailable",
        &[
            "run-instances",
            "--image-id",
            &amis[0],
            "--instance-type",
            "custom-1-64",
        ],
    );
    assert!(err.contains("etcd"), "{err}");
    assert_eq!(d[1].state(&spread[1].0), "running");
    // A region-scoped resource's tags cannot change without the region: refused, and the
    // host's own copy is left as the region has it.
    let sp_of = |x: &Daemon| x.json(&["describe-placement-groups", "--group-names", "sp"]);
    let sp_id = sp_of(&d[0])["PlacementGroups"][0]["GroupId"]
        .as_str()
        .unwrap()
        .to_string();
    d[0].cli_err(
        "Unavailable",
        &[
            "create-tags",
            "--resources",
            &sp_id,
            "--tags",
            "Key=late,Value=1",
        ],
    );
    let sp = sp_of(&d[0]);
    assert!(
        sp["PlacementGroups"][0]["Tags"]
            .as_array()
            .is_none_or(|t| t.is_empty()),
        "{sp}"
    );
    // A host keeps making and describing its own volumes; the index catches up later.
    let v = d[0].json(&["create-volume", "--size", "1", "--availability-zone", &az]);
    let late_vol = v["VolumeId"].as_str().unwrap().to_string();
    d[0].json(&["describe-volumes", "--volume-ids", &late_vol]);
    etcd.start();
    for x in &d {
        for n in names {
            wait_host(x, n, "available", T);
        }
    }
    let deadline = Instant::now() + T;
    while !d[1]
        .cli_raw(&["describe-volumes", "--volume-ids", &late_vol])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "{late_vol}, made while etcd was away, never reached the index"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    d[1].cli(&["delete-volume", "--volume-id", &late_vol]);
    let total: usize = hosts(&d[0])
        .values()
        .map(|h| h["Instances"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 11, "9 grouped instances and two more");
    let got = launch(&d[2], &amis[2], &[]);
    assert_eq!(got.len(), 1);

    // A daemon that stops leaves at once (its lease revoked), not a TTL later.
    // Two AMIs registered on h2: one with a root volume snapshot, one that only h2 will
    // hold. h1 makes room for one instance.
    let disk = d[1].data().join("root-volume.img");
    std::fs::write(
        &disk,
        (0..3u32 << 20).map(|b| (b % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let v = d[1].json(&[
        "register-image",
        "--name",
        "probe-disk",
        "--kernel",
        strato_e2e::probe_bundle().join("vmlinux").to_str().unwrap(),
        "--root-volume",
        disk.to_str().unwrap(),
        "--boot-args",
        "console=ttyS0",
        "--wait",
    ]);
    let with_disk = v["ImageId"].as_str().unwrap().to_string();
    let lonely = d[1].register_probe("probe-on-h2");
    strato_e2e::wait_until(T, "h2's AMIs available on h1 and held by h2", || {
        let keys = etcd_keys(&ul, "owners/");
        [&with_disk, &lonely].iter().all(|a| {
            image_on(&d[0], a).is_some_and(|i| i["State"] == "available")
                && keys.contains(&format!("h2/{a}"))
        })
    });
    let spread_h1 = spread.iter().find(|(_, h)| h == "h1").unwrap().0.clone();
    d[0].cli(&["terminate-instances", "--instance-ids", &spread_h1]);
    d[0].wait_state(&spread_h1, "terminated", T);
    let room_on_h1 = || {
        strato_e2e::wait_until(T, "room on h1", || {
            hosts(&d[0])["h1"]["AvailableCapacity"]["AvailableVCpus"] == 1
        })
    };
    room_on_h1();
    // h1 pulls the kernel and the snapshot from h2 (checksummed) and boots from them; the
    // snapshot keeps its ID and is listed once in the region (h2's; h1's is a replica).
    let root_snap = image_on(&d[0], &with_disk).unwrap()["BlockDeviceMappings"][0]["Ebs"]
        ["SnapshotId"]
        .as_str()
        .unwrap()
        .to_string();
    let got = launch(&d[0], &with_disk, &[]);
    assert_eq!(got[0].1, "h1", "{got:?}");
    d[0].wait_state(&got[0].0, "running", T);
    let pulled = d[0].data().join(format!("snapshots/{root_snap}.img"));
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        std::fs::read(&disk).unwrap()
    );
    let snaps = d[0].json(&["describe-snapshots"]);
    let listed = snaps["Snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["SnapshotId"] == root_snap.as_str())
        .count();
    assert_eq!(listed, 1, "{snaps}");
    strato_e2e::wait_until(T, "h1 among the holders of h2's AMI", || {
        etcd_keys(&ul, "owners/").contains(&format!("h1/{with_disk}"))
    });
    // CreateImage of h1's instance, asked of h2 (gRPC) and of h3 (the Query API): made on
    // h1, where the instance's volume is, held by h1 and listed on every host.
    let via_h2 = d[1].json(&[
        "create-image",
        "--instance-id",
        &got[0].0,
        "--name",
        "from-h1-grpc",
        "--no-reboot",
    ]);
    let via_h3 = d[2].aws(None).json(&[
        "ec2",
        "create-image",
        "--instance-id",
        &got[0].0,
        "--name",
        "from-h1-query",
        "--no-reboot",
    ]);
    for made in [&via_h2, &via_h3] {
        let made = made["ImageId"].as_str().unwrap();
        strato_e2e::wait_until(T, "an AMI of h1's instance available, held by h1", || {
            [&d[1], &d[2]]
                .iter()
                .all(|x| image_on(x, made).is_some_and(|i| i["State"] == "available"))
                && etcd_keys(&ul, "owners/").contains(&format!("h1/{made}"))
        });
        let snap = image_on(&d[2], made).unwrap()["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            d[0].data().join(format!("snapshots/{snap}.img")).exists(),
            "{snap} of {made} is not on h1"
        );
        d[2].cli(&["deregister-image", "--image-id", made]);
    }
    d[0].cli(&["terminate-instances", "--instance-ids", &got[0].0]);
    d[0].wait_state(&got[0].0, "terminated", T);
    room_on_h1();
    // Deregistered on h1, an AMI is gone from every host, and h1 drops the files it pulled.
    d[0].cli(&["deregister-image", "--image-id", &with_disk]);
    strato_e2e::wait_until(T, "the deregistered AMI gone from h3", || {
        image_on(&d[2], &with_disk).is_none()
    });
    assert!(!pulled.exists(), "the pulled snapshot outlived its AMI");
    // An AMI whose only holder is down: a launch elsewhere is accepted (pending while it
    // pulls) and fails with a reason naming the holder.
    d[1].stop_daemon();
    let stopped = Instant::now();
    wait_host(&d[0], "h2", "unavailable", T);
    assert!(
        stopped.elapsed() < Duration::from_secs(TTL),
        "h2 took {:?} to leave: its lease was not revoked",
        stopped.elapsed()
    );
    let got = launch(&d[0], &lonely, &[]);
    assert_eq!(got[0].1, "h1", "{got:?}");
    d[0].wait_state(&got[0].0, "terminated", T);
    let failed = d[0].instance(&got[0].0);
    let reason = failed["StateTransitionReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&lonely) && reason.contains("h2 is unavailable"),
        "{failed}"
    );

    eprintln!("cluster test took {:?}", started.elapsed());
}

/// The EC2 Query API's RunInstances is placed across the region as gRPC's is: a spread
/// group of three launched through the aws CLI on h1 lands on three hosts, a fourth is
/// refused, and a retry with the same ClientToken on another host answers the first launch
/// (EC2's idempotency is per account and region). Needs one free vCPU per host; leaves the
/// region's capacity as it found it.
fn query_api_launches(d: &[Daemon], amis: &[String]) {
    let started = Instant::now();
    d[1].cli(&[
        "create-placement-group",
        "--group-name",
        "qsp",
        "--strategy",
        "spread",
    ]);
    for x in d {
        strato_e2e::wait_until(T, "the group on every host", || {
            x.json(&["describe-placement-groups"])["PlacementGroups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["GroupName"] == "qsp")
        });
    }
    // A run of three in the spread group, with what else a call adds.
    let run_args = |more: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "ec2",
            "run-instances",
            "--image-id",
            amis[0].as_str(),
            "--instance-type",
            "custom-1-64",
            "--count",
            "3",
            "--placement",
            "GroupName=qsp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(more.iter().map(|s| s.to_string()));
        a
    };
    let launch = |aws: &strato_e2e::query::Aws<'_>, token: &'static str| {
        let a = run_args(&["--client-token", token]);
        aws.json(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let placed = |v: &Value| -> BTreeMap<String, String> { ids_and_hosts(v).into_iter().collect() };
    let aws1 = d[0].aws(None);
    let dry_run = |aws: &strato_e2e::query::Aws<'_>, code: &str| {
        let a = run_args(&["--dry-run"]);
        aws.err(code, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // A DryRun checks the region's racks, not h1's one, and launches nothing.
    dry_run(&aws1, "DryRunOperation");
    let first = launch(&aws1, "qsp-launch-1");
    let got = placed(&first);
    let on: BTreeSet<&str> = got.values().map(String::as_str).collect();
    assert_eq!(on, BTreeSet::from(["h1", "h2", "h3"]), "{first}");
    // The fourth: three racks, three instances.
    let err = aws1.err(
        "InsufficientInstanceCapacity",
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &amis[0],
            "--instance-type",
            "custom-1-64",
            "--count",
            "1",
            "--placement",
            "GroupName=qsp",
        ],
    );
    assert!(err.contains("spread"), "{err}");
    // With the group's racks taken, a DryRun is refused as the launch would be.
    dry_run(&aws1, "InsufficientInstanceCapacity");
    // The retry, sent to h2 and to h1: the first launch, not a second one.
    // (Two access keys per user at most: h1's earlier one and `aws1` are two.)
    let aws2 = d[1].aws(None);
    for aws in [&aws2, &aws1] {
        let again = launch(aws, "qsp-launch-1");
        assert_eq!(placed(&again), got, "{again}");
        assert_eq!(again["ReservationId"], first["ReservationId"], "{again}");
    }
    let ids: Vec<&str> = got.keys().map(String::as_str).collect();
    let mut args = vec!["ec2", "terminate-instances", "--instance-ids"];
    args.extend(&ids);
    let aws3 = d[2].aws(None);
    aws3.json(&args);
    wait_one_free_vcpu_each(&d[0]);

    // Launch templates are the region's: made on h2, a version added on h1, made the
    // default on h3 and launched from there; the name is the region's; deleted on h1, gone
    // everywhere.
    let lt = aws2.json(&[
        "ec2",
        "create-launch-template",
        "--launch-template-name",
        "region-lt",
        "--launch-template-data",
        r#"{"InstanceType":"custom-1-64"}"#,
    ]);
    let lt_id = lt["LaunchTemplate"]["LaunchTemplateId"]
        .as_str()
        .unwrap()
        .to_string();
    let versions_on = |aws: &strato_e2e::query::Aws<'_>| {
        aws.json(&[
            "ec2",
            "describe-launch-template-versions",
            "--launch-template-id",
            &lt_id,
        ])["LaunchTemplateVersions"]
            .as_array()
            .unwrap()
            .len()
    };
    strato_e2e::wait_until(T, "the launch template on h1", || versions_on(&aws1) == 1);
    let v2 = aws1.json(&[
        "ec2",
        "create-launch-template-version",
        "--launch-template-id",
        &lt_id,
        "--source-version",
        "1",
        "--launch-template-data",
        r#"{"UserData":"aGVsbG8gcmVnaW9u"}"#,
    ]);
    assert_eq!(v2["LaunchTemplateVersion"]["VersionNumber"], 2, "{v2}");
    strato_e2e::wait_until(T, "the template's version 2 on h3", || {
        versions_on(&aws3) == 2
    });
    aws3.json(&[
        "ec2",
        "modify-launch-template",
        "--launch-template-id",
        &lt_id,
        "--default-version",
        "2",
    ]);
    // Versions added on two hosts at once: consecutive numbers, each host sees both.
    let add_version = |aws: &strato_e2e::query::Aws<'_>| {
        aws.json(&[
            "ec2",
            "create-launch-template-version",
            "--launch-template-id",
            &lt_id,
            "--launch-template-data",
            r#"{"InstanceType":"custom-1-64"}"#,
        ])["LaunchTemplateVersion"]["VersionNumber"]
            .as_i64()
            .unwrap()
    };
    let raced: BTreeSet<i64> = std::thread::scope(|sc| {
        let a = sc.spawn(|| add_version(&aws1));
        let b = sc.spawn(|| add_version(&aws2));
        [a.join().unwrap(), b.join().unwrap()].into()
    });
    assert_eq!(raced, BTreeSet::from([3, 4]));
    strato_e2e::wait_until(T, "versions 3 and 4 on every host", || {
        [&aws1, &aws2, &aws3]
            .iter()
            .all(|aws| versions_on(aws) == 4)
    });
    aws1.err(
        "InvalidLaunchTemplateName.AlreadyExistsException",
        &[
            "ec2",
            "create-launch-template",
            "--launch-template-name",
            "region-lt",
            "--launch-template-data",
            r#"{"InstanceType":"custom-1-64"}"#,
        ],
    );
    let from_lt = aws3.json(&[
        "ec2",
        "run-instances",
        "--image-id",
        &amis[2],
        "--launch-template",
        &format!("LaunchTemplateId={lt_id}"),
    ]);
    let (lt_inst, _) = ids_and_hosts(&from_lt).remove(0);
    assert_eq!(
        from_lt["Instances"][0]["InstanceType"], "custom-1-64",
        "{from_lt}"
    );
    // The default version, 2, as h3 made it: its user data came over in the record.
    let ud = aws1.json(&[
        "ec2",
        "describe-instance-attribute",
        "--instance-id",
        &lt_inst,
        "--attribute",
        "userData",
    ]);
    assert_eq!(ud["UserData"]["Value"], "aGVsbG8gcmVnaW9u", "{ud}");
    aws1.json(&[
        "ec2",
        "delete-launch-template",
        "--launch-template-id",
        &lt_id,
    ]);
    strato_e2e::wait_until(T, "the launch template gone from h2 and h3", || {
        [&aws2, &aws3].iter().all(|aws| {
            aws.json(&["ec2", "describe-launch-templates"])["LaunchTemplates"]
                .as_array()
                .is_none_or(|l| l.is_empty())
        })
    });
    aws3.json(&["ec2", "terminate-instances", "--instance-ids", &lt_inst]);
    wait_one_free_vcpu_each(&d[0]);
    eprintln!("query API launches took {:?}", started.elapsed());
}

/// The keys under `/strato/home-1/<prefix>` in the region's etcd, without that prefix.
fn etcd_keys(ul: &Underlay, prefix: &str) -> Vec<String> {
    let full = format!("/strato/home-1/{prefix}");
    let out = ul.sh(&format!(
        "ETCDCTL_API=3 etcdctl --endpoints {} get --prefix --keys-only {full}",
        ul.etcd_endpoint()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(&full))
        .map(str::to_string)
        .collect()
}

/// The underlay addresses the VXLAN devices of `d`'s VPCs replicate to (the all-zeros
/// FDB entries), the same for every device, sorted.
fn vxlan_peers(d: &Daemon) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &d.ns, "bridge", "fdb", "show"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut by_dev: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.first() != Some(&"00:00:00:00:00:00") {
            continue;
        }
        let dev = w
            .iter()
            .position(|x| *x == "dev")
            .and_then(|i| w.get(i + 1));
        let dst = w
            .iter()
            .position(|x| *x == "dst")
            .and_then(|i| w.get(i + 1));
        if let (Some(dev), Some(dst)) = (dev, dst) {
            if dev.starts_with("svx") {
                by_dev
                    .entry(dev.to_string())
                    .or_default()
                    .push(dst.to_string());
            }
        }
    }
    assert!(!by_dev.is_empty(), "no VXLAN device on {}:\n{text}", d.ns);
    let mut sets: Vec<Vec<String>> = by_dev
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    sets.dedup();
    assert_eq!(sets.len(), 1, "VPCs of {} differ in peers: {sets:?}", d.ns);
    sets.remove(0)
}

/// Waits until `d`'s VXLAN peers are `want` (sorted).
fn wait_peers(d: &Daemon, want: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = vxlan_peers(d);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: VXLAN peers {got:?}, want {want:?}",
            d.ns
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `ip -d -j link show NAME` in namespace `ns`, if there is such a link.
fn link(ns: &str, name: &str) -> Option<Value> {
    let out = Command::new("ip")
        .args(["-n", ns, "-d", "-j", "link", "show", name])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().and_then(|a| a.first()).cloned()
}

/// Waits until `args` succeeds on `d` (a record made on another host has reached it).
fn wait_cli(d: &Daemon, args: &[&str]) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let mut a = vec!["--output", "json"];
        a.extend_from_slice(args);
        let out = d.cli_raw(&a);
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} never succeeded: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// VPCs, subnets and security groups are the region's: one VPC, subnet and group made on
/// h1, a probe instance on h2 and one on h3 in that subnet (each launched through its own
/// host), their addresses handed out once for the region; they reach each other only once
/// the group (changed on h1) allows ICMP from the subnet, each host applying the change to
/// its own instance. Stand-ins on h2's and h3's VPC bridges send the pings (probe guests
/// only answer IPv4 pings). The hosts have uplinks on one LAN: then the region's Elastic
/// IPs ([`elastic_ips_of_the_region`]).
#[test]
fn a_vpc_of_the_region() {
    const CIDR: &str = "10.78.0.0/16";
    const SUBNET: &str = "10.78.1.0/24";
    let ul = Underlay::new("cv");
    let _etcd = ul.start_etcd();
    let ep = ul.etcd_endpoint();
    let d = start_hosts(&ul, "cv", &ep, true);
    let default_vni = the_default_vpc_of_the_region(&ul, &d);

    // Made once, on h1.
    let v = d[0].json(&["create-vpc", "--cidr-block", CIDR]);
    let vpc = v["Vpc"]["VpcId"].as_str().unwrap().to_string();
    let v = d[0].json(&["create-subnet", "--vpc-id", &vpc, "--cidr-block", SUBNET]);
    let subnet = v["Subnet"]["SubnetId"].as_str().unwrap().to_string();
    let v = d[0].json(&[
        "create-security-group",
        "--group-name",
        "probe",
        "--description",
        "the probes",
        "--vpc-id",
        &vpc,
    ]);
    let sg = v["GroupId"].as_str().unwrap().to_string();
    // The name is the region's: h2 cannot make another "probe" group in that VPC.
    let out = d[1].cli_raw(&[
        "create-security-group",
        "--group-name",
        "probe",
        "--description",
        "again",
        "--vpc-id",
        &vpc,
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("InvalidGroup.Duplicate"),
        "{out:?}"
    );

    // h3 describes what h1 made.
    let v = wait_cli(&d[2], &["describe-vpcs", "--vpc-ids", &vpc]);
    assert_eq!(v["Vpcs"][0]["CidrBlock"], CIDR, "{v}");
    let v = wait_cli(&d[2], &["describe-subnets", "--subnet-ids", &subnet]);
    assert_eq!(v["Subnets"][0]["CidrBlock"], SUBNET, "{v}");
    let v = wait_cli(&d[2], &["describe-security-groups", "--group-ids", &sg]);
    assert_eq!(v["SecurityGroups"][0]["GroupName"], "probe", "{v}");
    wait_cli(&d[1], &["describe-subnets", "--subnet-ids", &subnet]);
    wait_cli(&d[1], &["describe-security-groups", "--group-ids", &sg]);

    // One VNI, claimed in etcd, on every host's VXLAN device of the VPC.
    let vnis: Vec<String> = etcd_keys(&ul, "vnis/")
        .into_iter()
        .filter(|v| *v != default_vni)
        .collect();
    assert_eq!(vnis.len(), 1, "{vnis:?}");
    let vni: u64 = vnis[0].parse().unwrap();
    let bridge = format!("svpc{}", &vpc[4..15]);
    let vx = format!("svx{}", &vpc[4..16]);
    for x in &d {
        let deadline = Instant::now() + T;
        let dev = loop {
            if let Some(l) = link(&x.ns, &vx) {
                break l;
            }
            assert!(Instant::now() < deadline, "no {vx} on {}", x.ns);
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(dev["linkinfo"]["info_data"]["id"], vni, "{dev}");
        assert_eq!(dev["master"], bridge.as_str(), "{dev}");
    }

    // A probe on h2 and one on h3, each launched through its own host, of one AMI (the
    // region's: registered on h2, its files pulled by h3 at launch).
    let ami2 = d[1].register_probe("probe");
    strato_e2e::wait_until(T, "the AMI available on h3", || {
        d[2].json(&["describe-images"])["Images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["ImageId"] == ami2.as_str() && i["State"] == "available")
    });
    let ami3 = ami2.clone();
    let extra = ["--subnet-id", &subnet, "--security-group-ids", &sg];
    let p2 = launch(&d[1], &ami2, &extra);
    let p3 = launch(&d[2], &ami3, &extra);
    assert_eq!(p2[0].1, "h2", "{p2:?}");
    assert_eq!(p3[0].1, "h3", "{p3:?}");
    let (p2, p3) = (p2[0].0.clone(), p3[0].0.clone());
    d[1].wait_state(&p2, "running", T);
    d[2].wait_state(&p3, "running", T);
    d[1].wait_status(&p2, ("*", "ok"), T);
    d[2].wait_status(&p3, ("*", "ok"), T);
    let ip_of = |x: &Daemon, id: &str| {
        x.instance(id)["PrivateIpAddress"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ip2, ip3) = (ip_of(&d[1], &p2), ip_of(&d[2], &p3));
    assert_ne!(ip2, ip3, "the region hands each address out once");
    let claims = etcd_keys(&ul, &format!("ips/{subnet}/"));
    assert!(claims.contains(&ip2) && claims.contains(&ip3), "{claims:?}");

    // The group is in use on h2 and h3: h1 may not delete it, nor the subnet.
    for args in [
        vec!["delete-security-group", "--group-id", sg.as_str()],
        vec!["delete-subnet", "--subnet-id", subnet.as_str()],
    ] {
        let out = d[0].cli_raw(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("DependencyViolation"),
            "{args:?}: {out:?}"
        );
    }

    // Stand-ins on each host's bridge: one segment across the hosts.
    let s2 = d[1].host("cvs2", &bridge, "10.78.1.200/24", Some("10.78.1.1"));
    let s3 = d[2].host("cvs3", &bridge, "10.78.1.201/24", Some("10.78.1.1"));
    assert!(s2.pings_within("10.78.1.201", 10), "one segment");
    assert!(!s2.ping(&ip3, 1), "the group allows nothing yet");
    assert!(!s3.ping(&ip2, 1), "the group allows nothing yet");

    // An instance on h2 pings h3's probe at boot (its user data): no reply while the group
    // allows nothing.
    let ud = d[1].file("ping.txt", format!("ping {ip3}\n").as_bytes());
    let user_data = format!("file://{}", ud.display());
    let mut pinger_args = extra.to_vec();
    pinger_args.extend(["--user-data", &user_data]);
    let pinger = launch(&d[1], &ami2, &pinger_args);
    assert_eq!(pinger[0].1, "h2", "{pinger:?}");
    let pinger = pinger[0].0.clone();
    let said = format!("probe: ping {ip3} ");
    let c = d[1].wait_console(&pinger, &said, T);
    assert!(c.contains(&format!("{said}no-reply")), "{c}");

    // h1 changes the group; h2 and h3 apply it to their own instances.
    d[0].cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--cidr",
        SUBNET,
    ]);
    assert!(s2.pings_within(&ip3, 10), "h3 applied h1's rule");
    assert!(s3.pings_within(&ip2, 10), "h2 applied h1's rule");
    // Booted again, the instance on h2 reaches the one on h3 now.
    d[2].cli(&["stop-instances", "--instance-ids", &pinger]);
    d[1].wait_state(&pinger, "stopped", T);
    d[0].cli(&["start-instances", "--instance-ids", &pinger]);
    let c = d[1].wait_console(&pinger, &format!("{said}reply"), T);
    assert!(c.contains(&format!("{said}reply")), "{c}");
    d[1].cli(&["terminate-instances", "--instance-ids", &pinger]);
    let v = d[2].json(&["describe-security-groups", "--group-ids", &sg]);
    assert_eq!(
        v["SecurityGroups"][0]["IpPermissions"][0]["IpProtocol"], "icmp",
        "{v}"
    );

    // Revoked on h3: neither probe answers any more.
    d[2].cli(&[
        "revoke-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--cidr",
        SUBNET,
    ]);
    let deadline = Instant::now() + T;
    while s3.ping(&ip2, 1) || s2.ping(&ip3, 1) {
        assert!(
            Instant::now() < deadline,
            "the revoke never reached h2 or h3"
        );
    }

    // A rule whose source is a group matches that group's members on every host: an
    // interface on h2 in group "peers" holding s2's address lets s2 ping h3's probe once
    // h3's rule names "peers", while s3 (no member) still cannot ping h2's probe; when the
    // interface goes, h3 stops matching it.
    let v = d[0].json(&[
        "create-security-group",
        "--group-name",
        "peers",
        "--description",
        "members on h2",
        "--vpc-id",
        &vpc,
    ]);
    let peers = v["GroupId"].as_str().unwrap().to_string();
    wait_cli(&d[1], &["describe-security-groups", "--group-ids", &peers]);
    let member = d[1].json(&[
        "create-network-interface",
        "--subnet-id",
        &subnet,
        "--private-ip-address",
        "10.78.1.200",
        "--groups",
        &peers,
    ]);
    let member_id = member["NetworkInterface"]["NetworkInterfaceId"]
        .as_str()
        .unwrap()
        .to_string();
    d[2].cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--source-group",
        &peers,
    ]);
    assert!(
        s2.pings_within(&ip3, 20),
        "h3 matches h2's member of the source group"
    );
    assert!(!s3.ping(&ip2, 1), "s3 is no member of the source group");
    d[0].cli(&[
        "delete-network-interface",
        "--network-interface-id",
        &member_id,
    ]);
    let deadline = Instant::now() + T;
    while s2.ping(&ip3, 1) {
        assert!(
            Instant::now() < deadline,
            "h3 kept matching a member h2 deleted"
        );
    }
    d[1].cli(&[
        "revoke-security-group-ingress",
        "--group-id",
        &sg,
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--source-group",
        &peers,
    ]);

    // Interfaces made and given addresses outside a launch claim them in the region at
    // once: h3's probe's address is refused to an interface on h2, and what h2 picks is
    // claimed before the call answers.
    let taken = [
        "--subnet-id",
        subnet.as_str(),
        "--private-ip-address",
        ip3.as_str(),
    ];
    let mut args = vec!["create-network-interface"];
    args.extend(taken);
    d[1].cli_err("InvalidIPAddress.InUse", &args);
    let eni = d[1].json(&["create-network-interface", "--subnet-id", &subnet]);
    let eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
        .as_str()
        .unwrap();
    let eni_ip = eni["NetworkInterface"]["PrivateIpAddress"]
        .as_str()
        .unwrap();
    assert!(eni_ip != ip2 && eni_ip != ip3, "{eni}");
    let claims = etcd_keys(&ul, &format!("ips/{subnet}/"));
    assert!(claims.iter().any(|c| c == eni_ip), "{claims:?}");
    let assign = [
        "assign-private-ip-addresses",
        "--network-interface-id",
        eni_id,
        "--private-ip-addresses",
        ip3.as_str(),
    ];
    d[1].cli_err("InvalidIPAddress.InUse", &assign);
    d[1].cli(&[
        "assign-private-ip-addresses",
        "--network-interface-id",
        eni_id,
        "--secondary-private-ip-address-count",
        "1",
    ]);
    let v = d[1].json(&[
        "describe-network-interfaces",
        "--network-interface-ids",
        eni_id,
    ]);
    let secondary = v["NetworkInterfaces"][0]["PrivateIpAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["PrivateIpAddress"].as_str())
        .find(|a| *a != eni_ip)
        .unwrap()
        .to_string();
    assert!(secondary != ip2 && secondary != ip3, "{v}");
    let claims = etcd_keys(&ul, &format!("ips/{subnet}/"));
    assert!(claims.contains(&secondary), "{claims:?}");
    d[2].cli(&["delete-network-interface", "--network-interface-id", eni_id]);

    elastic_ips_of_the_region(&ul, &d, &sg, [(&p2, &ip2), (&p3, &ip3)]);
}

/// The region has one default VPC: the same VPC, default subnets and default group on
/// every host, one VNI on every host's default bridge (`strato0`), addresses claimed in the
/// region, and instances launched without a subnet on two hosts on one segment, their
/// groups enforced on each side.
fn the_default_vpc_of_the_region(ul: &Underlay, d: &[Daemon]) -> String {
    let defaults = |x: &Daemon| -> (String, Vec<String>, String) {
        let v = x.json(&["describe-vpcs"]);
        let vpc = v["Vpcs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["IsDefault"] == true)
            .map(|v| v["VpcId"].as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        assert_eq!(vpc.len(), 1, "one default VPC on {}: {v}", x.ns);
        let v = x.json(&["describe-subnets"]);
        let mut subnets: Vec<String> = v["Subnets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["DefaultForAz"] == true)
            .map(|s| s["SubnetId"].as_str().unwrap().to_string())
            .collect();
        subnets.sort();
        let v = x.json(&["describe-security-groups"]);
        let group = v["SecurityGroups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["GroupName"] == "default" && g["VpcId"] == vpc[0].as_str())
            .map(|g| g["GroupId"].as_str().unwrap().to_string())
            .unwrap_or_default();
        (vpc[0].clone(), subnets, group)
    };
    let want = defaults(&d[0]);
    assert!(!want.1.is_empty() && !want.2.is_empty(), "{want:?}");
    for x in &d[1..] {
        strato_e2e::wait_until(T, "every host shows the region's default VPC", || {
            defaults(x) == want
        });
    }
    let (vpc, subnets, group) = want;
    assert!(etcd_keys(ul, "default-vpc").len() == 1);

    // One VNI on every host's default bridge.
    let vx = format!("svx{}", &vpc[4..16]);
    let vni_of = |x: &Daemon| {
        link(&x.ns, &vx)
            .filter(|dev| dev["master"] == "strato0")
            .map(|dev| dev["linkinfo"]["info_data"]["id"].clone())
    };
    let first = vni_of(&d[0]).unwrap_or_else(|| panic!("no {vx} on h1"));
    for x in &d[1..] {
        strato_e2e::wait_until(T, "the default VPC's VNI on every host", || {
            vni_of(x).as_ref() == Some(&first)
        });
    }

    // Launched without a subnet on h1 and on h3: the region's default subnet, addresses
    // handed out once in the region.
    let ami = d[0].register_probe("default-vpc");
    strato_e2e::wait_until(T, "the AMI available on h3", || {
        d[2].json(&["describe-images"])["Images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["ImageId"] == ami.as_str() && i["State"] == "available")
    });
    let q1 = launch(&d[0], &ami, &[]);
    let q3 = launch(&d[2], &ami, &[]);
    assert_eq!((q1[0].1.as_str(), q3[0].1.as_str()), ("h1", "h3"));
    let (q1, q3) = (q1[0].0.clone(), q3[0].0.clone());
    d[0].wait_status(&q1, ("*", "ok"), T);
    d[2].wait_status(&q3, ("*", "ok"), T);
    let i1 = d[0].instance(&q1);
    let i3 = d[2].instance(&q3);
    for i in [&i1, &i3] {
        assert_eq!(i["VpcId"], vpc.as_str(), "{i}");
        assert!(subnets.iter().any(|s| i["SubnetId"] == s.as_str()), "{i}");
    }
    let ip1 = i1["PrivateIpAddress"].as_str().unwrap().to_string();
    let ip3 = i3["PrivateIpAddress"].as_str().unwrap().to_string();
    assert_ne!(ip1, ip3, "the region hands each address out once");
    let claims = etcd_keys(ul, "ips/");
    for ip in [&ip1, &ip3] {
        assert!(
            claims.iter().any(|c| c.ends_with(&format!("/{ip}"))),
            "{claims:?}"
        );
    }

    // A stand-in on h1's default bridge reaches h3's instance only once the default group
    // (changed through h2) lets it in.
    let s1 = d[0].host("cvd1", "strato0", "172.31.15.250/20", Some("172.31.0.1"));
    assert!(
        !s1.ping(&ip3, 1),
        "the default group lets only its members in"
    );
    let icmp = [
        "--group-id",
        group.as_str(),
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--cidr",
        "172.31.0.0/16",
    ];
    let mut args = vec!["authorize-security-group-ingress"];
    args.extend(icmp);
    d[1].cli(&args);
    assert!(
        s1.pings_within(&ip3, 20),
        "h3's instance on h1's default bridge"
    );
    assert!(s1.pings_within(&ip1, 10), "h1's own instance");
    let mut args = vec!["revoke-security-group-ingress"];
    args.extend(icmp);
    d[1].cli(&args);
    let deadline = Instant::now() + T;
    while s1.ping(&ip3, 1) {
        assert!(Instant::now() < deadline, "h3 kept the revoked rule");
    }
    drop(s1);
    d[1].cli(&["terminate-instances", "--instance-ids", &q1, &q3]);
    d[0].wait_state(&q1, "terminated", T);
    d[2].wait_state(&q3, "terminated", T);
    first.to_string()
}

/// The /32 addresses on `x`'s uplink, sorted.
fn uplink_publics(x: &Daemon) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", &x.ns, "-j", "addr", "show", "dev", strato_e2e::UPLINK])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {out:?}", x.ns);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ips: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["family"] == "inet" && a["prefixlen"] == 32)
        .filter_map(|a| a["local"].as_str().map(str::to_string))
        .collect();
    ips.sort();
    ips
}

/// The names of the hosts whose uplink has `ip` as a /32.
fn hosts_with(d: &[Daemon], ip: &str) -> Vec<&'static str> {
    d.iter()
        .zip(NAMES)
        .filter(|(x, _)| uplink_publics(x).iter().any(|p| p == ip))
        .map(|(_, n)| n)
        .collect()
}

/// Waits until exactly the hosts `want` have `ip` on their uplinks.
fn wait_uplinks(d: &[Daemon], ip: &str, want: &[&str]) {
    let deadline = Instant::now() + T;
    loop {
        let got = hosts_with(d, ip);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ip} is on the uplinks of {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until ping from the LAN (the switch) to `ip` answers (`answers`) or goes quiet;
/// fails with what the switch's neighbour table and the hosts' uplinks show.
fn wait_lan_ping(ul: &Underlay, d: &[Daemon], ip: &str, answers: bool) {
    let deadline = Instant::now() + T;
    while ul.ping(ip, 1) != answers {
        if Instant::now() > deadline {
            let neigh = ul.sh(&format!("ip neigh show {ip}; ip link show lan0"));
            let uplinks: Vec<(String, Vec<String>)> = d
                .iter()
                .map(|x| (x.ns.clone(), uplink_publics(x)))
                .collect();
            panic!(
                "ping from the LAN to {ip} never {}; the switch's neighbour entry:\n{}\
                 the hosts' uplinks: {uplinks:?}",
                if answers { "answered" } else { "went quiet" },
                String::from_utf8_lossy(&neigh.stdout)
            );
        }
    }
}

/// `x`'s DescribeAddresses: allocation ID → address.
fn addresses(x: &Daemon) -> BTreeMap<String, Value> {
    x.json(&["describe-addresses"])["Addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["AllocationId"].as_str().unwrap().to_string(), a.clone()))
        .collect()
}

/// A field of an address as text ("" when absent or null).
fn field<'a>(a: &'a Value, key: &str) -> &'a str {
    a[key].as_str().unwrap_or("")
}

/// Waits until every host's DescribeAddresses shows `alloc` associated as `want`
/// (association, instance, network interface, private address), or not associated
/// (`None`).
fn wait_association(d: &[Daemon], alloc: &str, want: Option<[&str; 4]>) {
    let keys = [
        "AssociationId",
        "InstanceId",
        "NetworkInterfaceId",
        "PrivateIpAddress",
    ];
    let want = want.unwrap_or([""; 4]);
    for (x, name) in d.iter().zip(NAMES) {
        let mut seen = Value::Null;
        let deadline = Instant::now() + T;
        loop {
            if let Some(a) = addresses(x).remove(alloc) {
                if keys.iter().zip(want).all(|(k, w)| field(&a, k) == w) {
                    break;
                }
                seen = a;
            }
            assert!(
                Instant::now() < deadline,
                "{name} shows {alloc} as {seen}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Elastic IPs are the region's (every host an uplink on one LAN, one pool): allocated on
/// each host, three distinct addresses, each claimed once in etcd and listed by every
/// host; one associated with h2's probe through h3 is on h2's uplink alone and answers
/// ping from the LAN, reassociated to h3's probe through h1 it moves to h3's uplink; in
/// use it cannot be released (h2); disassociated through h2's Query API it leaves the
/// uplinks and goes quiet; released through h1 it is gone from every host and from etcd.
/// `probes`: h2's and h3's probe instances, each with its private address, in group `sg`.
fn elastic_ips_of_the_region(
    ul: &Underlay,
    d: &[Daemon],
    sg: &str,
    probes: [(&String, &String); 2],
) {
    let started = Instant::now();
    let [(p2, ip2), (p3, ip3)] = probes;
    let eni_of = |x: &Daemon, id: &str| {
        x.instance(id)["NetworkInterfaces"][0]["NetworkInterfaceId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (eni2, eni3) = (eni_of(&d[1], p2), eni_of(&d[2], p3));
    let in_pool = |ip: &str| {
        ip.strip_prefix("198.51.100.")
            .and_then(|l| l.parse::<u8>().ok())
            .is_some_and(|l| (65..=78).contains(&l))
    };

    // One allocation on each host: three addresses, none handed out twice.
    let mut allocs: Vec<(String, String)> = Vec::new();
    for x in d {
        let a = x.json(&["allocate-address", "--domain", "vpc"]);
        let ip = field(&a, "PublicIp").to_string();
        let id = field(&a, "AllocationId").to_string();
        assert!(id.starts_with("eipalloc-") && in_pool(&ip), "{}: {a}", x.ns);
        allocs.push((id, ip));
    }
    let ips: BTreeSet<&str> = allocs.iter().map(|(_, ip)| ip.as_str()).collect();
    assert_eq!(
        ips.len(),
        3,
        "the region hands each address out once: {allocs:?}"
    );
    let claims = etcd_keys(ul, "ips/public/");
    for ip in &ips {
        assert!(claims.iter().any(|c| c == ip), "{ip} unclaimed: {claims:?}");
    }
    // Each holds one of the account's quota slots.
    assert_eq!(etcd_keys(ul, "quota/address/").len(), 3, "{allocs:?}");
    let ids: BTreeSet<&str> = allocs.iter().map(|(id, _)| id.as_str()).collect();
    for (x, name) in d.iter().zip(NAMES) {
        strato_e2e::wait_until(
            T,
            &format!("the three allocations listed on {name}"),
            || {
                let got = addresses(x);
                ids.iter().all(|id| {
                    got.get(*id)
                        .is_some_and(|a| ips.contains(field(a, "PublicIp")))
                })
            },
        );
    }
    let (alloc, eip) = allocs[0].clone();

    // The LAN may ping the probes.
    d[0].cli(&[
        "authorize-security-group-ingress",
        "--group-id",
        sg,
        "--protocol",
        "icmp",
        "--port",
        "-1",
        "--cidr",
        "198.51.100.0/24",
    ]);

    // h1's address on h2's probe, asked of h3: on h2's uplink alone, NATed to the probe.
    let v = d[2].json(&[
        "associate-address",
        "--allocation-id",
        &alloc,
        "--instance-id",
        p2,
    ]);
    let assoc = field(&v, "AssociationId").to_string();
    assert!(assoc.starts_with("eipassoc-"), "{v}");
    wait_association(d, &alloc, Some([&assoc, p2, &eni2, ip2]));
    wait_uplinks(d, &eip, &["h2"]);
    wait_lan_ping(ul, d, &eip, true);
    assert_eq!(field(&d[1].instance(p2), "PublicIpAddress"), eip);

    // Without --allow-reassociation it stays where it is.
    d[0].cli_err(
        "Resource.AlreadyAssociated",
        &[
            "associate-address",
            "--allocation-id",
            &alloc,
            "--instance-id",
            p3,
        ],
    );
    // With it, through h1, it moves to h3's probe: h2 drops the /32, h3 takes it.
    let v = d[0].json(&[
        "associate-address",
        "--allocation-id",
        &alloc,
        "--instance-id",
        p3,
        "--allow-reassociation",
    ]);
    let assoc = field(&v, "AssociationId").to_string();
    assert!(assoc.starts_with("eipassoc-"), "{v}");
    wait_association(d, &alloc, Some([&assoc, p3, &eni3, ip3]));
    wait_uplinks(d, &eip, &["h3"]);
    wait_lan_ping(ul, d, &eip, true);

    // In use: h2 may not release it.
    d[1].cli_err(
        "InvalidIPAddress.InUse",
        &["release-address", "--allocation-id", &alloc],
    );
    assert!(etcd_keys(ul, "ips/public/").contains(&eip));

    // Disassociated through h2's Query API: off h3's uplink, quiet.
    d[1].aws(None)
        .json(&["ec2", "disassociate-address", "--association-id", &assoc]);
    wait_association(d, &alloc, None);
    wait_uplinks(d, &eip, &[]);
    wait_lan_ping(ul, d, &eip, false);

    // Released through h1: no host lists it, etcd no longer claims it.
    d[0].cli(&["release-address", "--allocation-id", &alloc]);
    for (x, name) in d.iter().zip(NAMES) {
        strato_e2e::wait_until(T, &format!("{alloc} gone from {name}"), || {
            !addresses(x).contains_key(&alloc)
        });
    }
    strato_e2e::wait_until(T, &format!("{eip}'s claim gone from etcd"), || {
        !etcd_keys(ul, "ips/public/").contains(&eip)
    });

    // The other two, released through the host after the one that allocated each.
    for (k, (id, _)) in allocs.iter().enumerate().skip(1) {
        d[(k + 1) % 3].cli(&["release-address", "--allocation-id", id]);
    }
    for (x, name) in d.iter().zip(NAMES) {
        strato_e2e::wait_until(T, &format!("no allocation left on {name}"), || {
            addresses(x).is_empty()
        });
    }
    strato_e2e::wait_until(T, "no public address claimed in etcd", || {
        etcd_keys(ul, "ips/public/").is_empty()
    });
    assert!(
        etcd_keys(ul, "quota/address/").is_empty(),
        "releases free their quota slots"
    );

    // The quota (5 by default) is exact across the hosts: nine allocations at once, three
    // through each host, and exactly five get an address, each holding one of the
    // account's five slots; the others are refused with AddressLimitExceeded, as is one
    // more afterwards.
    let raced: Vec<std::process::Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..9)
            .map(|k| {
                let x = &d[k % 3];
                s.spawn(move || x.cli_raw(&["allocate-address", "--output", "json"]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut won: Vec<String> = Vec::new();
    for out in &raced {
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            won.push(field(&v, "AllocationId").to_string());
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("AddressLimitExceeded"), "{err}");
        }
    }
    assert_eq!(won.len(), 5, "{won:?}");
    let slots = etcd_keys(ul, "quota/address/");
    let numbers: BTreeSet<&str> = slots.iter().filter_map(|k| k.rsplit('/').next()).collect();
    assert_eq!(
        numbers,
        BTreeSet::from(["0", "1", "2", "3", "4"]),
        "{slots:?}"
    );
    d[1].cli_err("AddressLimitExceeded", &["allocate-address"]);
    for (k, id) in won.iter().enumerate() {
        d[k % 3].cli(&["release-address", "--allocation-id", id]);
    }
    strato_e2e::wait_until(T, "the raced allocations' slots freed", || {
        etcd_keys(ul, "quota/address/").is_empty()
    });
    eprintln!("elastic IPs of the region took {:?}", started.elapsed());
}
