//! DescribeInstances of 100 instances through the EC2 Query API beside the same call over
//! gRPC, in one run (issue 15's aim: the Query API within 2x gRPC). Both listeners are Unix
//! sockets of one daemon, so the transports cost alike and the ratio is what each codec
//! costs: the Query side is a SigV4-signed form POST answered in the model's XML, the gRPC
//! side a protobuf request answered in protobuf. The Query request is signed once by
//! botocore (a signature stays valid for 15 minutes) and replayed on one keep-alive
//! connection, so the client's signing and XML parsing are not counted; the gRPC client's
//! protobuf decoding is (it is part of tonic's call). Rounds interleave the two.
//!
//!     cargo run --release -p strato-e2e --example bench-query [INSTANCES [CALLS]]
//!
//! (scripts/bench-daemon.sh runs it; the clients' virtual environment comes from
//! scripts/test.sh's ensure_query_clients.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use strato_e2e::query::{query_config, venv_bin};
use strato_e2e::Daemon;
use strato_proto::v1 as pb;
use strato_proto::v1::compute_client::ComputeClient;
use tonic::transport::Channel;

const BODY: &str = "Action=DescribeInstances&Version=2016-11-15";

/// botocore's SigV4 headers for [`BODY`] (as `Name: value` lines).
fn signed_headers(key: &str, secret: &str, region: &str) -> Vec<(String, String)> {
    let script = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
key, secret, region, body = sys.argv[1:5]
req = AWSRequest(method="POST", url="http://localhost/", data=body,
                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
SigV4Auth(Credentials(key, secret), "ec2", region).add_auth(req)
print(json.dumps(dict(req.headers.items())))
"#;
    let out = Command::new(venv_bin("python"))
        .args(["-c", script, key, secret, region, BODY])
        .output()
        .expect("the clients' virtual environment (run scripts/test.sh once)");
    assert!(
        out.status.success(),
        "signing failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// One keep-alive HTTP/1.1 connection replaying a signed request.
struct QueryConn {
    reader: BufReader<UnixStream>,
    request: Vec<u8>,
}

impl QueryConn {
    fn new(path: &std::path::Path, headers: &[(String, String)]) -> Self {
        let s = UnixStream::connect(path).unwrap();
        let mut request = String::from("POST / HTTP/1.1\r\nHost: localhost\r\n");
        for (k, v) in headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{BODY}", BODY.len()));
        QueryConn {
            reader: BufReader::new(s),
            request: request.into_bytes(),
        }
    }

    /// One call; returns the response body.
    fn call(&mut self) -> Vec<u8> {
        self.reader.get_mut().write_all(&self.request).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "Query answered {line:?}");
        let mut len = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = Some(v.trim().parse::<usize>().unwrap());
                }
            }
        }
        let mut body = vec![0; len.expect("a Content-Length")];
        self.reader.read_exact(&mut body).unwrap();
        body
    }
}

/// The distinct instance IDs an XML answer lists.
fn xml_instances(body: &[u8]) -> BTreeSet<String> {
    let s = String::from_utf8_lossy(body);
    s.split("<instanceId>")
        .skip(1)
        .filter_map(|p| p.split_once("</instanceId>").map(|(id, _)| id.to_string()))
        .collect()
}

async fn grpc_describe(c: &mut ComputeClient<Channel>) -> Vec<pb::Instance> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .describe_instances(pb::DescribeInstancesRequest {
                next_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(r.instances);
        if r.next_token.is_empty() {
            return all;
        }
        token = r.next_token;
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: i32 = args.next().map_or(100, |a| a.parse().unwrap());
    let calls: usize = args.next().map_or(200, |a| a.parse().unwrap());

    let mut cfg = query_config();
    let query_sock =
        std::env::temp_dir().join(format!("strato-bench-query-{}.sock", std::process::id()));
    cfg["ec2_api"]["listen"] = format!("unix:{}", query_sock.display()).into();
    cfg["status_interval_secs"] = 60.0.into();
    cfg["status_grace_secs"] = 300.0.into();
    let d = Daemon::start_with("bquery", cfg);
    let ami = d.register_probe("probe");
    let ch = tonic::transport::Endpoint::from_shared(format!("unix:{}", d.socket.display()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut compute = ComputeClient::new(ch);
    let r = compute
        .run_instances(pb::RunInstancesRequest {
            image_id: ami,
            instance_type: "custom-1-64".into(),
            min_count: count,
            max_count: count,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: BTreeSet<String> = r.instances.iter().map(|i| i.instance_id.clone()).collect();
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < Duration::from_secs(600), "not all running");
        let all = grpc_describe(&mut compute).await;
        if all.len() == ids.len()
            && all
                .iter()
                .all(|i| i.state.as_ref().map(|s| s.code) == Some(16))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let aws = d.aws(None);
    let headers = signed_headers(&aws.key, &aws.secret, &aws.region);
    let mut q = QueryConn::new(&query_sock, &headers);
    // Both answers list exactly the launched instances.
    let body = q.call();
    assert_eq!(xml_instances(&body), ids, "the Query answer");
    let listed: BTreeSet<String> = grpc_describe(&mut compute)
        .await
        .into_iter()
        .map(|i| i.instance_id)
        .collect();
    assert_eq!(listed, ids, "the gRPC answer");
    let xml_bytes = body.len();

    let (mut query, mut grpc) = (Vec::new(), Vec::new());
    let rounds = 10;
    for _ in 0..rounds {
        for _ in 0..calls / rounds {
            let t = Instant::now();
            std::hint::black_box(q.call());
            query.push(t.elapsed());
        }
        for _ in 0..calls / rounds {
            let t = Instant::now();
            std::hint::black_box(grpc_describe(&mut compute).await);
            grpc.push(t.elapsed());
        }
    }
    let (qm, gm) = (median(query), median(grpc));
    println!("DescribeInstances of {count} running instances, {calls} calls each, medians:");
    println!("  gRPC (protobuf, Unix socket)          {gm:8.3} ms");
    println!("  EC2 Query API (XML, {xml_bytes} bytes, Unix socket) {qm:8.3} ms");
    println!(
        "  Query / gRPC                          {:8.2}x (aim: <= 2x)",
        qm / gm
    );
    let _ = std::fs::remove_file(&query_sock);
}
