//! The API's surface for generic gRPC tools and remote callers: standard health and server
//! reflection, the owner-only Unix socket, the TLS listener that requires a token (and the
//! plaintext one that takes tokens from loopback only), and the live console: its output
//! stream and its input.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use strato_e2e::Daemon;
use tonic::transport::Channel;

async fn unix_channel(d: &Daemon) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("unix:{}", d.socket.display()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_reflection_and_socket_permissions() {
    let d = Daemon::start("api");
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let ch = unix_channel(&d).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    for svc in [
        "strato.v1.Compute",
        "strato.v1.Images",
        "strato.v1.Volumes",
        "strato.v1.Usage",
        "strato.v1.NetworkInterfaces",
    ] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: svc.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{svc}"
        );
    }

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut refl = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "strato.v1.Compute",
        "strato.v1.Images",
        "strato.v1.Volumes",
        "strato.v1.Usage",
        "strato.v1.NetworkInterfaces",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
}

/// The CLI inside the daemon's namespace against `endpoint`, with these extra arguments.
fn cli_in(d: &Daemon, endpoint: &str, extra: &[&str], token: Option<&str>) -> std::process::Output {
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", &d.ns])
        .arg(strato_e2e::bin("strato"))
        .env_remove("STRATO_CA_BUNDLE")
        .env_remove("STRATO_TOKEN")
        .args(["--endpoint", endpoint, "--output", "json"])
        .args(extra)
        .arg("describe-instances");
    if let Some(t) = token {
        c.args(["--token", t]);
    }
    c.output().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The CA fingerprint the daemon printed at start.
fn printed_fingerprint(d: &Daemon) -> String {
    let log = d.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("SHA-256 fingerprint"))
        .unwrap_or_else(|| panic!("no fingerprint in the log:\n{log}"));
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn tcp_speaks_tls_needs_a_token_and_tokens_name_accounts() {
    // A TLS listener on the namespace's loopback, reached by a CLI run inside the namespace.
    let mut cfg = strato_e2e::fast_config();
    cfg["listen"] = serde_json::json!(["tcp:127.0.0.1:7310"]);
    let mut d = Daemon::start_with("tcp", cfg);
    let ca = d.ca_file();
    let ca_arg = ["--ca-bundle", ca.to_str().unwrap()];
    let url = "https://127.0.0.1:7310";
    let out = cli_in(&d, url, &ca_arg, None);
    assert_eq!(out.status.code(), Some(254), "{}", stderr(&out));
    assert!(stderr(&out).contains("AuthFailure"));
    let out = cli_in(&d, url, &ca_arg, Some("token-alice"));
    assert!(out.status.success(), "{}", stderr(&out));
    let bad = cli_in(&d, url, &ca_arg, Some("nope"));
    assert_eq!(bad.status.code(), Some(254));
    assert!(stderr(&bad).contains("AuthFailure"));

    // The CA comes from the environment too; without it the system's roots do not know
    // the daemon's CA and the CLI does not connect.
    let mut c = std::process::Command::new("ip");
    let env_ca = c
        .args(["netns", "exec", &d.ns])
        .arg(strato_e2e::bin("strato"))
        .env("STRATO_CA_BUNDLE", &ca)
        .args([
            "--endpoint",
            url,
            "--token",
            "token-bob",
            "describe-instances",
        ])
        .output()
        .unwrap();
    assert!(env_ca.status.success(), "{}", stderr(&env_ca));
    let untrusted = cli_in(&d, url, &[], Some("token-alice"));
    assert_eq!(untrusted.status.code(), Some(255), "{}", stderr(&untrusted));
    // Plaintext against the TLS port gets nowhere.
    let plain = cli_in(&d, "http://127.0.0.1:7310", &[], Some("token-alice"));
    assert!(!plain.status.success());

    // The printed fingerprint is the CA's, and the CA survives a restart.
    let printed = printed_fingerprint(&d);
    let openssl = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&ca)
        .output()
        .unwrap();
    let openssl = String::from_utf8_lossy(&openssl.stdout);
    assert_eq!(
        openssl.trim().rsplit('=').next().unwrap(),
        printed,
        "{openssl}"
    );
    let before = std::fs::read(&ca).unwrap();
    let key_mode = std::fs::metadata(d.data().join("tls/ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    d.restart();
    assert_eq!(std::fs::read(&ca).unwrap(), before, "the CA is reused");
    assert_eq!(printed_fingerprint(&d), printed);
    let out = cli_in(&d, url, &ca_arg, Some("token-alice"));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// DescribeInstances with `token` over plaintext gRPC from inside namespace `ns`.
fn plaintext_call(ns: &str, url: &str, token: &str) -> Result<(), tonic::Status> {
    use std::os::fd::AsRawFd;
    let (path, url, token) = (
        format!("/run/netns/{ns}"),
        url.to_string(),
        token.to_string(),
    );
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: setns takes an open namespace file and a namespace type; it changes only
        // this thread's network namespace, and the result is checked.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let ch = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut c = strato_proto::v1::compute_client::ComputeClient::new(ch);
            let mut req =
                tonic::Request::new(strato_proto::v1::DescribeInstancesRequest::default());
            req.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            c.describe_instances(req).await.map(|_| ())
        })
    })
    .join()
    .unwrap()
}

#[test]
fn plaintext_tcp_takes_tokens_from_loopback_only() {
    let mut cfg = strato_e2e::fast_config();
    cfg["listen"] = serde_json::json!(["tcp+plain:0.0.0.0:7311"]);
    let d = Daemon::start_with("plain", cfg);
    // An address of the test's own namespace that is not loopback: calls to it come from it.
    let out = std::process::Command::new("ip")
        .args(["-n", &d.ns, "addr", "add", "10.250.0.1/32", "dev", "lo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let out = cli_in(&d, "http://127.0.0.1:7311", &[], Some("token-alice"));
    assert!(out.status.success(), "loopback: {}", stderr(&out));
    plaintext_call(&d.ns, "http://127.0.0.1:7311", "token-alice").unwrap();

    // The daemon refuses a token that came over plaintext from elsewhere…
    let refused = plaintext_call(&d.ns, "http://10.250.0.1:7311", "token-alice").unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("plaintext"), "{refused:?}");
    // …and the CLI does not send it in the first place.
    let out = cli_in(&d, "http://10.250.0.1:7311", &[], Some("token-alice"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("plaintext"), "{}", stderr(&out));
    // No TLS listener, no certificate made.
    assert!(!d.ca_file().exists());
}

#[test]
fn console_stream_follows_the_guest() {
    let d = Daemon::start("console");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", Duration::from_secs(30));
    let mut child = std::process::Command::new(strato_e2e::bin("strato"))
        .env("STRATO_ENDPOINT", format!("unix:{}", d.socket.display()))
        .args(["console", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // New output after the stream began: the reboot's second boot.
    d.cli(&["reboot-instances", "--instance-ids", &id]);
    // Wait for the second boot (a loaded host may take seconds) before ending the stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while d.console(&id).matches("probe: ready").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "no second boot");
        std::thread::sleep(Duration::from_millis(100));
    }
    d.cli(&["terminate-instances", "--instance-ids", &id, "--wait"]);
    // The stream ends once the instance is terminated.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "console did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.matches("probe: ready").count() >= 2, "{out}");
}

/// Collects a child's pipe in the background, for waiting on what it shows.
fn collect(
    mut pipe: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

fn wait_for(text: &std::sync::Mutex<String>, needle: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while !text.lock().unwrap().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} did not show:\n{}",
            text.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn console_input_typed_through_the_cli_reaches_the_guest() {
    use std::io::Write;
    let d = Daemon::start("console-input");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_console(&id, "probe: ready", Duration::from_secs(30));

    // Another account's instance does not exist for it, as in EC2.
    d.cli_err_as(
        Some("token-alice"),
        "InvalidInstanceID.NotFound",
        &["console", &id],
    );

    // Input from a pipe goes line by line; `~B` alone on its line is a BREAK.
    let mut child = std::process::Command::new(strato_e2e::bin("strato"))
        .env("STRATO_ENDPOINT", format!("unix:{}", d.socket.display()))
        .env_remove("STRATO_TOKEN")
        .args(["console", "--instance-id", &id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    wait_for(&err, "Ctrl-] detaches", Duration::from_secs(10));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello from strato\n").unwrap();
    wait_for(
        &out,
        "probe: console hello from strato",
        Duration::from_secs(10),
    );
    // More than the guest's 4 KiB input queue holds at once: the CLI sends the rest as the
    // guest reads, so every line arrives.
    let many: String = (0..100)
        .map(|i| format!("line {i:03} {}\n", "x".repeat(60)))
        .collect();
    stdin.write_all(many.as_bytes()).unwrap();
    stdin.write_all(b"~B\nafter break\n").unwrap();
    wait_for(&out, "probe: console after break", Duration::from_secs(30));
    let shown = out.lock().unwrap().clone();
    for i in 0..100 {
        let line = format!("probe: console line {i:03} {}", "x".repeat(60));
        assert!(shown.contains(&line), "{line:?} missing:\n{shown}");
    }
    let brk = shown
        .find("probe: console break")
        .expect("the BREAK arrived");
    assert!(brk > shown.find("line 099").unwrap() && brk < shown.find("after break").unwrap());
    // The daemon's log of the console has them as well (GetConsoleOutput).
    assert!(d.console(&id).contains("probe: console hello from strato"));

    // `~.` detaches; the instance runs on.
    stdin.write_all(b"~.\n").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "console did not detach"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{}", err.lock().unwrap());
    wait_for(&err, "Detached", Duration::from_secs(5));
    assert_eq!(d.state(&id), "running");
    d.cli(&["terminate-instances", "--instance-ids", &id, "--wait"]);
}

#[tokio::test]
async fn listings_come_in_pages() {
    use strato_proto::v1::volumes_client::VolumesClient;
    use strato_proto::v1::DescribeVolumesRequest;
    let d = Daemon::start("pages");
    let mut ids: Vec<String> = (0..7)
        .map(|_| {
            d.json(&[
                "create-volume",
                "--size",
                "1",
                "--availability-zone",
                "home-1a",
            ])["VolumeId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut client = VolumesClient::new(unix_channel(&d).await);
    let first = client
        .describe_volumes(DescribeVolumesRequest {
            max_results: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.volumes.len(), 5);
    assert!(!first.next_token.is_empty());
    let second = client
        .describe_volumes(DescribeVolumesRequest {
            max_results: 5,
            next_token: first.next_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.volumes.len(), 2);
    assert_eq!(second.next_token, "", "the last page has no token");
    let mut paged: Vec<String> = first
        .volumes
        .iter()
        .chain(&second.volumes)
        .map(|v| v.volume_id.clone())
        .collect();
    paged.sort();
    ids.sort();
    assert_eq!(paged, ids, "every volume exactly once");

    // The CLI follows the pages.
    let v = d.json(&["describe-volumes", "--page-size", "5"]);
    assert_eq!(v["Volumes"].as_array().unwrap().len(), 7);
    for ami in ["ami-a", "ami-b", "ami-c", "ami-d", "ami-e", "ami-f"] {
        d.register_probe(ami);
    }
    let v = d.json(&["describe-images", "--owners", "self", "--page-size", "5"]);
    assert_eq!(v["Images"].as_array().unwrap().len(), 6);
    // EC2's refusals: a page size out of range, beside IDs, or a token of nonsense.
    // The CLI refuses a page size below 5 itself (naming --page-size); the daemon too.
    let small = client
        .describe_volumes(DescribeVolumesRequest {
            max_results: 3,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        small.message().starts_with("InvalidParameterValue"),
        "{small:?}"
    );
    let out = d.cli_raw(&["describe-volumes", "--page-size", "3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--page-size"));
    d.cli_err(
        "InvalidParameterCombination",
        &[
            "describe-volumes",
            "--page-size",
            "5",
            "--volume-ids",
            &ids[0],
        ],
    );
    let bad = client
        .describe_volumes(DescribeVolumesRequest {
            next_token: "nonsense".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(bad.message().starts_with("InvalidNextToken"), "{bad:?}");
}
