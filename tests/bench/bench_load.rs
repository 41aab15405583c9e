//! Bounded load run: 32 concurrent gRPC clients, each on a connection of its own, issue a
//! fixed mix of describes and mutations for 30 s against a daemon with 20 running probe
//! instances (custom-1-64). Prints p50 and p99 latency per call kind, error counts per EC2
//! code and the daemon's resident memory before and after; exits non-zero when a call fails
//! with anything but an expected EC2 error.
//!
//!     cargo run --release -p strato-e2e --example bench-load [CLIENTS [SECONDS]]
//!
//! (scripts/bench-daemon.sh runs it after bench-daemon.) The one expected error is
//! `IncorrectState` from DeleteVolume on a volume still being created; that volume is
//! deleted again later, and every volume and key pair the run made is gone at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strato_e2e::Daemon;
use strato_proto::v1 as pb;
use strato_proto::v1::compute_client::ComputeClient;
use strato_proto::v1::key_pairs_client::KeyPairsClient;
use strato_proto::v1::tags_client::TagsClient;
use strato_proto::v1::volumes_client::VolumesClient;
use strato_proto::ERROR_CODE_METADATA;
use tonic::transport::Channel;

/// EC2 codes a correct daemon may answer under this mix.
const EXPECTED: &[&str] = &["IncorrectState"];

/// One client's cycle of calls (describes outnumber mutations, as in real use).
const MIX: &[Kind] = &[
    Kind::DescribeInstances,
    Kind::DescribeVolumes,
    Kind::CreateVolume,
    Kind::CreateTags,
    Kind::DescribeInstances,
    Kind::CreateKeyPair,
    Kind::DeleteVolume,
    Kind::DescribeVolumes,
    Kind::DeleteKeyPair,
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    DescribeInstances,
    DescribeVolumes,
    CreateVolume,
    DeleteVolume,
    CreateTags,
    CreateKeyPair,
    DeleteKeyPair,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::DescribeInstances => "DescribeInstances",
            Kind::DescribeVolumes => "DescribeVolumes",
            Kind::CreateVolume => "CreateVolume",
            Kind::DeleteVolume => "DeleteVolume",
            Kind::CreateTags => "CreateTags",
            Kind::CreateKeyPair => "CreateKeyPair",
            Kind::DeleteKeyPair => "DeleteKeyPair",
        }
    }
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    latencies: BTreeMap<Kind, Vec<Duration>>,
    /// (kind, EC2 code) → count.
    errors: BTreeMap<(Kind, String), u64>,
    /// Failures that are not expected EC2 errors, described.
    unexpected: Vec<String>,
}

struct Clients {
    compute: ComputeClient<Channel>,
    volumes: VolumesClient<Channel>,
    tags: TagsClient<Channel>,
    keys: KeyPairsClient<Channel>,
}

async fn connect(d: &Daemon) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("unix:{}", d.socket.display()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn code_of(s: &tonic::Status) -> Option<String> {
    s.metadata()
        .get(ERROR_CODE_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Runs one client until `until`; `me` makes its names unique.
async fn client(
    me: usize,
    mut c: Clients,
    instances: Arc<Vec<String>>,
    until: Instant,
) -> (Tally, Vec<String>) {
    let mut t = Tally::default();
    // Volumes made and not yet deleted, oldest first; key pairs likewise.
    let mut volumes: Vec<String> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut n = 0usize;
    let mut step = me; // clients start at different points of the mix
    while Instant::now() < until {
        let kind = MIX[step % MIX.len()];
        step += 1;
        let t0 = Instant::now();
        let r: Result<(), tonic::Status> = match kind {
            Kind::DescribeInstances => c
                .compute
                .describe_instances(pb::DescribeInstancesRequest::default())
                .await
                .map(|r| assert_eq!(r.into_inner().instances.len(), instances.len())),
            Kind::DescribeVolumes => c
                .volumes
                .describe_volumes(pb::DescribeVolumesRequest::default())
                .await
                .map(drop),
            Kind::CreateVolume => c
                .volumes
                .create_volume(pb::CreateVolumeRequest {
                    size: 1,
                    volume_type: "gp3".into(),
                    availability_zone: "home-1a".into(),
                    ..Default::default()
                })
                .await
                .map(|r| volumes.push(r.into_inner().volume_id)),
            Kind::DeleteVolume => match volumes.first().cloned() {
                None => continue,
                Some(id) => c
                    .volumes
                    .delete_volume(pb::DeleteVolumeRequest {
                        volume_id: id.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| volumes.retain(|v| *v != id)),
            },
            Kind::CreateTags => c
                .tags
                .create_tags(pb::CreateTagsRequest {
                    resources: vec![instances[(me + n) % instances.len()].clone()],
                    tags: vec![pb::Tag {
                        key: format!("load-{me}"),
                        value: n.to_string(),
                    }],
                })
                .await
                .map(drop),
            Kind::CreateKeyPair => {
                let name = format!("load-{me}-{n}");
                c.keys
                    .create_key_pair(pb::CreateKeyPairRequest {
                        key_name: name.clone(),
                        key_type: "ed25519".into(),
                        tags: vec![],
                    })
                    .await
                    .map(|_| keys.push(name))
            }
            Kind::DeleteKeyPair => match keys.pop() {
                None => continue,
                Some(name) => c
                    .keys
                    .delete_key_pair(pb::DeleteKeyPairRequest {
                        key_name: name,
                        key_pair_id: String::new(),
                    })
                    .await
                    .map(drop),
            },
        };
        let took = t0.elapsed();
        n += 1;
        t.latencies.entry(kind).or_default().push(took);
        if let Err(s) = r {
            match code_of(&s) {
                Some(code) if EXPECTED.contains(&code.as_str()) => {
                    *t.errors.entry((kind, code)).or_default() += 1;
                }
                code => {
                    *t.errors
                        .entry((kind, code.clone().unwrap_or("(no EC2 code)".into())))
                        .or_default() += 1;
                    t.unexpected.push(format!(
                        "{}: {:?} {:?}: {:.200}",
                        kind.name(),
                        code,
                        s.code(),
                        s.message()
                    ));
                }
            }
        }
    }
    // Leave nothing behind: key pairs now, volumes once they are available.
    for name in keys {
        c.keys
            .delete_key_pair(pb::DeleteKeyPairRequest {
                key_name: name,
                key_pair_id: String::new(),
            })
            .await
            .unwrap();
    }
    (t, volumes)
}

async fn delete_volumes(v: &mut VolumesClient<Channel>, mut ids: Vec<String>) {
    let t0 = Instant::now();
    while !ids.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(120), "volumes stay busy");
        let mut left = Vec::new();
        for id in ids {
            if let Err(s) = v
                .delete_volume(pb::DeleteVolumeRequest {
                    volume_id: id.clone(),
                    ..Default::default()
                })
                .await
            {
                assert_eq!(code_of(&s).as_deref(), Some("IncorrectState"), "{s:?}");
                left.push(id);
            }
        }
        ids = left;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map_or(32, |a| a.parse().unwrap());
    let secs: u64 = args.next().map_or(30, |a| a.parse().unwrap());

    let mut cfg = strato_e2e::fast_config();
    cfg["status_interval_secs"] = 60.0.into();
    cfg["status_grace_secs"] = 300.0.into();
    let d = Daemon::start_with("load", cfg);
    let ami = d.register_probe("probe");
    let mut compute = ComputeClient::new(connect(&d).await);
    let r = compute
        .run_instances(pb::RunInstancesRequest {
            image_id: ami,
            instance_type: "custom-1-64".into(),
            min_count: 20,
            max_count: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<String> = r.instances.iter().map(|i| i.instance_id.clone()).collect();
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(180), "not all running");
        let di = compute
            .describe_instances(pb::DescribeInstancesRequest {
                instance_ids: ids.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if di
            .instances
            .iter()
            .all(|i| i.state.as_ref().map(|s| s.code) == Some(16))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = d.pid().expect("the daemon runs") as i32;
    let rss_before = strato_e2e::rss_kib(pid);

    let instances = Arc::new(ids.clone());
    let mut set = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..clients {
        let ch = connect(&d).await;
        conns.push(Clients {
            compute: ComputeClient::new(ch.clone()),
            volumes: VolumesClient::new(ch.clone()),
            tags: TagsClient::new(ch.clone()),
            keys: KeyPairsClient::new(ch),
        });
    }
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    for (me, c) in conns.into_iter().enumerate() {
        set.push(tokio::spawn(client(me, c, instances.clone(), until)));
    }
    let mut all = Tally::default();
    let mut leftover = Vec::new();
    for h in set {
        let (t, v) = h.await.unwrap();
        for (k, l) in t.latencies {
            all.latencies.entry(k).or_default().extend(l);
        }
        for (k, n) in t.errors {
            *all.errors.entry(k).or_default() += n;
        }
        all.unexpected.extend(t.unexpected);
        leftover.extend(v);
    }
    let wall = start.elapsed();
    let rss_after = strato_e2e::rss_kib(pid);

    let mut volumes = VolumesClient::new(connect(&d).await);
    delete_volumes(&mut volumes, leftover).await;
    let vols = volumes
        .describe_volumes(pb::DescribeVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    // The instances' root volumes stay; every volume the clients made is gone.
    let stray = vols
        .volumes
        .iter()
        .filter(|v| v.attachments.is_empty())
        .count();
    assert_eq!(stray, 0, "volumes left behind");
    compute
        .terminate_instances(pb::TerminateInstancesRequest { instance_ids: ids })
        .await
        .unwrap();

    let total: usize = all.latencies.values().map(Vec::len).sum();
    println!(
        "strato load run: {clients} gRPC clients (one connection each), {:.1} s, 20 running \
         probe instances (custom-1-64); {total} calls, {:.0} calls/s",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64()
    );
    println!(
        "{:<20} {:>8} {:>10} {:>10} {:>10}  errors",
        "call", "count", "p50 ms", "p99 ms", "max ms"
    );
    for (k, l) in &mut all.latencies {
        l.sort();
        let errs: Vec<String> = all
            .errors
            .iter()
            .filter(|((ek, _), _)| ek == k)
            .map(|((_, code), n)| format!("{code} x{n}"))
            .collect();
        println!(
            "{:<20} {:>8} {:>10.2} {:>10.2} {:>10.2}  {}",
            k.name(),
            l.len(),
            pct(l, 0.50),
            pct(l, 0.99),
            pct(l, 1.0),
            if errs.is_empty() {
                "0".to_owned()
            } else {
                errs.join(", ")
            }
        );
    }
    println!(
        "stratod RSS: {:.1} MiB before, {:.1} MiB after",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    if !all.unexpected.is_empty() {
        eprintln!("{} unexpected failures, e.g.:", all.unexpected.len());
        for u in all.unexpected.iter().take(10) {
            eprintln!("  {u}");
        }
        std::process::exit(1);
    }
}
