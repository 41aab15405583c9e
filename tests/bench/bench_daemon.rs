//! Control-plane benchmark: RunInstances → `running` and → instance status `ok`, for 1
//! instance and for 20 launched by one call (probe guest, 64 MiB each), and the daemon's
//! resident memory idle and with 20 VMs. Prints one table from one run.
//!
//!     cargo run --release -p strato-e2e --example bench-daemon   (scripts/bench-daemon.sh)
//!
//! The daemon runs in a network namespace of its own with EC2's one-minute status interval
//! (the default): a new VM's first checks run as soon as its monitor is up, so the time to
//! `ok` measures the launch path and the guest's boot, not the interval.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use strato_e2e::Daemon;
use strato_proto::v1 as pb;
use strato_proto::v1::compute_client::ComputeClient;
use tonic::transport::Channel;

/// Launches `n` instances in one call; returns (ms to all running, ms to all status ok).
async fn launch(c: &mut ComputeClient<Channel>, ami: &str, n: i32) -> (f64, f64, Vec<String>) {
    let t0 = Instant::now();
    let r = c
        .run_instances(pb::RunInstancesRequest {
            image_id: ami.into(),
            instance_type: "custom-1-64".into(),
            min_count: n,
            max_count: n,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<String> = r.instances.iter().map(|i| i.instance_id.clone()).collect();
    let mut running_at = None;
    loop {
        assert!(t0.elapsed() < Duration::from_secs(120), "timed out");
        let Some(running) = running_at else {
            let d = c
                .describe_instances(pb::DescribeInstancesRequest {
                    instance_ids: ids.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if d.instances
                .iter()
                .all(|i| i.state.as_ref().map(|s| s.code) == Some(16))
            {
                running_at = Some(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        {
            let s = c
                .describe_instance_status(pb::DescribeInstanceStatusRequest {
                    instance_ids: ids.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let ok = s.instance_statuses.len() == ids.len()
                && s.instance_statuses.iter().all(|st| {
                    st.system_status.as_ref().map(|x| x.status.as_str()) == Some("ok")
                        && st.instance_status.as_ref().map(|x| x.status.as_str()) == Some("ok")
                });
            if ok {
                let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                return (ms(running), ms(t0.elapsed()), ids);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn terminate(c: &mut ComputeClient<Channel>, ids: Vec<String>) {
    c.terminate_instances(pb::TerminateInstancesRequest {
        instance_ids: ids.clone(),
    })
    .await
    .unwrap();
    loop {
        let d = c
            .describe_instances(pb::DescribeInstancesRequest {
                instance_ids: ids.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if d.instances
            .iter()
            .all(|i| i.state.as_ref().map(|s| s.code) == Some(48))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let mut cfg = strato_e2e::fast_config();
    // The defaults: checks every 60 s, 300 s of grace.
    cfg["status_interval_secs"] = 60.0.into();
    cfg["status_grace_secs"] = 300.0.into();
    let d = Daemon::start_with("bench", cfg);
    let ami = d.register_probe("probe");
    let channel = tonic::transport::Endpoint::from_shared(format!("unix:{}", d.socket.display()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = ComputeClient::new(channel);
    let pid = d.pid().expect("the daemon runs") as i32;
    let idle = strato_e2e::rss_kib(pid);

    // Warm-up launch (page cache, first spawn), not reported.
    let (_, _, ids) = launch(&mut c, &ami, 1).await;
    terminate(&mut c, ids).await;

    let mut one_run = Vec::new();
    let mut one_ok = Vec::new();
    for _ in 0..5 {
        let (r, o, ids) = launch(&mut c, &ami, 1).await;
        one_run.push(r);
        one_ok.push(o);
        terminate(&mut c, ids).await;
    }
    let (r20, o20, ids) = launch(&mut c, &ami, 20).await;
    let busy = strato_e2e::rss_kib(pid);
    terminate(&mut c, ids).await;

    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "strato control-plane benchmark (probe guest, custom-1-64, status interval 60 s, the default)"
    );
    println!("{:<44} {:>10}", "measure", "value");
    println!(
        "{:<44} {:>8.1} ms",
        "1 instance: RunInstances -> running (median of 5)",
        med(&mut one_run)
    );
    println!(
        "{:<44} {:>8.1} ms",
        "1 instance: RunInstances -> status ok (median of 5)",
        med(&mut one_ok)
    );
    println!(
        "{:<44} {:>8.1} ms",
        "20 instances: RunInstances -> all running", r20
    );
    println!(
        "{:<44} {:>8.1} ms",
        "20 instances: RunInstances -> all status ok", o20
    );
    println!(
        "{:<44} {:>8.1} MiB",
        "stratod RSS, idle",
        idle as f64 / 1024.0
    );
    println!(
        "{:<44} {:>8.1} MiB",
        "stratod RSS, 20 instances running",
        busy as f64 / 1024.0
    );
}
