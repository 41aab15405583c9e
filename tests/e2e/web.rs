//! The web view's API end to end: login by API token (a session cookie), the JSON API
//! (instances with status checks, volumes, addresses; stop from the API), account
//! isolation, the console WebSocket (the buffered output first, then live, with input),
//! the TLS listener, and the refusals (no login, another site's WebSocket).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use strato_e2e::{fast_config, Daemon, ADMIN};

const PLAIN: &str = "127.0.0.1:8780";
const TLS: &str = "127.0.0.1:8781";
const METRICS: &str = "127.0.0.1:8782";

fn web_config() -> Value {
    let mut c = fast_config();
    c["tokens"]["token-admin"] = Value::String(ADMIN.into());
    c["web"] =
        serde_json::json!({ "listen": [format!("tcp+plain:{PLAIN}"), format!("tcp:{TLS}")] });
    c
}

/// An HTTP answer: status and body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.body))
    }
}

/// curl inside the daemon's namespace, with the cookie jar of this test.
fn curl(d: &Daemon, args: &[&str]) -> Answer {
    let jar = d.dir.join("cookies.txt");
    let out = Command::new("ip")
        .args(["netns", "exec", &d.ns, "curl", "-sS", "-D", "-", "-b"])
        .arg(&jar)
        .arg("-c")
        .arg(&jar)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        headers: headers.to_string(),
        body: body.to_string(),
    }
}

fn get(d: &Daemon, path: &str) -> Answer {
    curl(d, &[&format!("http://{PLAIN}{path}")])
}

fn post(d: &Daemon, path: &str, body: &str) -> Answer {
    curl(
        d,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            body,
            &format!("http://{PLAIN}{path}"),
        ],
    )
}

/// The session cookie curl keeps.
fn cookie(d: &Daemon) -> String {
    let jar = std::fs::read_to_string(d.dir.join("cookies.txt")).unwrap();
    let line = jar
        .lines()
        .find(|l| l.contains("strato_session"))
        .expect("a session cookie");
    let value = line.split('\t').next_back().unwrap();
    format!("strato_session={value}")
}

/// Runs `f` on a thread inside the daemon's namespace, with a Tokio runtime.
fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    strato_e2e::in_netns(ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f())
    })
}

/// Waits until the instance's JSON (from the web API) satisfies `ok`.
fn wait_web(d: &Daemon, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get(d, &format!("/api/instances/{id}")).json();
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v:#}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn web_api_login_instances_actions_and_console() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let d = Daemon::start_with_env("web", web_config(), &[("STRATOD_METRICS", METRICS)]);
    // The probe asks DHCP for its address, so the boot timeline has the lease.
    let bundle = strato_e2e::probe_bundle();
    let ami = d.json(&[
        "register-image",
        "--name",
        "probe-dhcp",
        "--bundle",
        bundle.to_str().unwrap(),
        "--boot-args",
        "console=ttyS0 probe.dhcp",
        "--block-device-mappings",
        r#"[{"DeviceName":"/dev/vda","Ebs":{"VolumeSize":1,"DeleteOnTermination":true}}]"#,
    ])["ImageId"]
        .as_str()
        .unwrap()
        .to_string();
    let id = d.run(&ami, &[])[0].clone();

    // The page itself needs no login; the API does.
    let page = get(&d, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/app.js"), "{}", page.body);
    assert!(
        page.headers.contains("content-security-policy"),
        "{}",
        page.headers
    );
    assert_eq!(get(&d, "/assets/xterm.js").status, 200);
    let anon = get(&d, "/api/instances");
    assert_eq!(anon.status, 401, "{}", anon.body);
    assert_eq!(anon.json()["code"], "AuthFailure");
    let bad = post(&d, "/api/login", r#"{"token":"nope"}"#);
    assert_eq!(bad.status, 401, "{}", bad.body);

    // Login: a session cookie, HttpOnly and SameSite=Strict (not Secure over plaintext).
    let ok = post(&d, "/api/login", r#"{"token":"token-admin"}"#);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["account"], ADMIN);
    let set = ok
        .headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");
    assert_eq!(get(&d, "/api/session").json()["account"], ADMIN);

    // The list and the detail: running, checks ok, an address and the root volume.
    let list = get(&d, "/api/instances").json();
    let row = list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{list:#}"))
        .clone();
    assert_eq!(row["instance_type"], "custom-1-64");
    let v = wait_web(&d, &id, "running with both checks ok", |v| {
        v["state"] == "running"
            && v["status_checks"]["system"]["status"] == "ok"
            && v["status_checks"]["instance"]["status"] == "ok"
    });
    assert!(v["status_checks"]["system"]["reason"].is_null(), "{v:#}");
    let private_ip = v["private_ip"].as_str().unwrap();
    assert!(private_ip.starts_with("172.31."), "{v:#}");
    assert_eq!(v["network_interfaces"][0]["private_ip"], private_ip);
    assert_eq!(v["volumes"][0]["device"], "/dev/vda");
    assert_eq!(v["volumes"][0]["size_gib"], 1);
    let vol = v["volumes"][0]["volume_id"].as_str().unwrap().to_string();
    let vols = get(&d, "/api/volumes").json();
    assert!(
        vols["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["volume_id"] == vol.as_str() && x["instance_id"] == id.as_str()),
        "{vols:#}"
    );
    assert_eq!(
        get(&d, "/api/addresses").json()["addresses"],
        serde_json::json!([])
    );

    // Another account does not see the instance (bearer tokens work without a session).
    let bob = curl(
        &d,
        &[
            "-H",
            "Authorization: Bearer token-bob",
            &format!("http://{PLAIN}/api/instances/{id}"),
        ],
    );
    assert_eq!(bob.status, 400, "{}", bob.body);
    assert_eq!(bob.json()["code"], "InvalidInstanceID.NotFound");
    let bob_list = curl(
        &d,
        &[
            "-H",
            "Authorization: Bearer token-bob",
            &format!("http://{PLAIN}/api/instances"),
        ],
    );
    assert_eq!(bob_list.json()["instances"], serde_json::json!([]));

    // The console: the buffered banner first, then input typed (ended by CR, as a terminal
    // sends Enter) echoed back live.
    d.wait_console(&id, "probe: ready", Duration::from_secs(30));
    let (ns, cookie, url) = (
        d.ns.clone(),
        cookie(&d),
        format!("ws://{PLAIN}/api/instances/{id}/console"),
    );
    let seen = in_ns(&ns, move || {
        Box::pin(async move {
            let mut req = url.as_str().into_client_request().unwrap();
            req.headers_mut().insert("cookie", cookie.parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            let mut seen = String::new();
            let mut typed = false;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !seen.contains("probe: console typed in the browser") {
                let msg = tokio::time::timeout_at(deadline, ws.next())
                    .await
                    .unwrap_or_else(|_| panic!("no echo; saw:\n{seen}"))
                    .unwrap()
                    .unwrap();
                if let Message::Binary(b) = msg {
                    seen.push_str(&String::from_utf8_lossy(&b));
                }
                if !typed && seen.contains("probe: ready") {
                    typed = true;
                    ws.send(Message::Binary(b"typed in the browser\r".to_vec().into()))
                        .await
                        .unwrap();
                }
            }
            // A paste larger than the guest's 4 KiB input queue: the daemon offers the
            // rest as the guest reads, so every line arrives (on a loaded host too).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let many: String = (0..100)
                .map(|i| format!("pasted {i:03} {}\r", "y".repeat(60)))
                .collect();
            ws.send(Message::Binary(many.into_bytes().into()))
                .await
                .unwrap();
            while !seen.contains("probe: console pasted 099") {
                let msg = tokio::time::timeout_at(deadline, ws.next())
                    .await
                    .unwrap_or_else(|_| panic!("the paste did not arrive; saw:\n{seen}"))
                    .unwrap()
                    .unwrap();
                match msg {
                    Message::Binary(b) => seen.push_str(&String::from_utf8_lossy(&b)),
                    Message::Text(t) => seen.push_str(&format!("[notice] {t}\n")),
                    _ => {}
                }
            }
            seen
        })
    });
    for i in 0..100 {
        let line = format!("probe: console pasted {i:03} {}", "y".repeat(60));
        assert!(seen.contains(&line), "{line:?} missing:\n{seen}");
    }
    let banner = seen.find("probe: ready").unwrap();
    assert!(
        banner < seen.find("probe: console typed").unwrap(),
        "{seen}"
    );

    // The lab: exits per second by reason and by device, KVM's counters, the memory map,
    // the virtqueues and the boot timeline, all from the daemon's one-second sampling.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lab = loop {
        let lab = get(&d, &format!("/api/instances/{id}/lab")).json();
        let pts = lab["points"].as_array().cloned().unwrap_or_default();
        let total: f64 = pts
            .iter()
            .filter_map(|p| p["exits"]["total"].as_f64())
            .sum();
        let serial: f64 = pts
            .iter()
            .filter_map(|p| p["devices"]["serial"].as_f64())
            .sum();
        if pts.len() >= 2 && total > 0.0 && serial > 0.0 {
            break lab;
        }
        assert!(Instant::now() < deadline, "no lab data: {lab:#}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let last_t = lab["points"].as_array().unwrap().last().unwrap()["t"]
        .as_i64()
        .unwrap();
    let newer = get(&d, &format!("/api/instances/{id}/lab?since={last_t}")).json();
    assert!(
        newer["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["t"].as_i64().unwrap() > last_t),
        "{newer:#}"
    );
    assert!(
        lab["vcpus"][0]["io_out"].as_u64().unwrap() > 0,
        "{:#}",
        lab["vcpus"]
    );
    let map = lab["memory_map"].as_array().unwrap();
    let has = |kind: &str, name: &str| {
        map.iter()
            .any(|r| r["kind"] == kind && r["name"].as_str().unwrap().contains(name))
    };
    assert!(
        has("ram", "RAM") && has("acpi", "ACPI") && has("smbios", "SMBIOS"),
        "{map:#?}"
    );
    assert!(has("mmio", "eth0") && has("mmio", "vol"), "{map:#?}");
    let bus = lab["bus"].as_array().unwrap();
    assert!(
        bus.iter()
            .any(|w| w["bus"] == "pio" && w["device"] == "serial" && w["base"] == 0x3f8),
        "{bus:#?}"
    );
    let queues = lab["virtqueues"].as_array().unwrap();
    let rx = queues
        .iter()
        .find(|q| q["device"] == "eth0" && q["queue"] == 0)
        .unwrap_or_else(|| panic!("{queues:#?}"));
    assert_eq!(rx["ready"], true, "{rx}");
    assert!(
        rx["avail_idx"].as_u64().unwrap() > 0,
        "the driver offered rx buffers: {rx}"
    );
    let steps: Vec<String> = lab["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "request",
        "volumes",
        "tap",
        "monitor_exec",
        "vm_created",
        "memory_mapped",
        "first_guest_instruction",
        "first_console_byte",
        "dhcp_lease",
        "status_ok",
    ] {
        assert!(steps.iter().any(|s| s == want), "{want} missing: {steps:?}");
    }
    let pos = |s: &str| steps.iter().position(|x| x == s).unwrap();
    assert!(pos("request") < pos("monitor_exec") && pos("monitor_exec") < pos("vm_created"));
    assert!(pos("first_guest_instruction") < pos("first_console_byte"));
    // /metrics has the same series, labelled by instance.
    let metrics = curl(&d, &[&format!("http://{METRICS}/metrics")]).body;
    assert!(
        metrics.contains(&format!(
            "strato_instance_exits_per_second{{instance=\"{id}\",reason=\"total\"}}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "strato_instance_device_exits_per_second{{instance=\"{id}\",device=\"serial\"}}"
        )),
        "{metrics}"
    );
    // Another account gets nothing of it.
    let bob_lab = curl(
        &d,
        &[
            "-H",
            "Authorization: Bearer token-bob",
            &format!("http://{PLAIN}/api/instances/{id}/lab"),
        ],
    );
    assert_eq!(bob_lab.status, 400, "{}", bob_lab.body);

    // Another site's page may not open the console with the viewer's cookie.
    let foreign = curl(
        &d,
        &[
            "-H",
            "Origin: http://evil.example",
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: websocket",
            "-H",
            "Sec-WebSocket-Version: 13",
            "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            &format!("http://{PLAIN}/api/instances/{id}/console"),
        ],
    );
    assert_eq!(foreign.status, 400, "{}", foreign.body);

    // The TLS listener: the daemon's CA, a bearer token, and Secure cookies.
    let ca = d.ca_file().display().to_string();
    let tls = curl(
        &d,
        &[
            "--cacert",
            &ca,
            "-H",
            "Authorization: Bearer token-admin",
            &format!("https://{TLS}/api/instances/{id}"),
        ],
    );
    assert_eq!(tls.status, 200, "{}", tls.body);
    assert_eq!(tls.json()["instance_id"], id.as_str());
    let tls_login = curl(
        &d,
        &[
            "--cacert",
            &ca,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"token":"token-admin"}"#,
            &format!("https://{TLS}/api/login"),
        ],
    );
    assert!(
        tls_login.headers.contains("Secure"),
        "{}",
        tls_login.headers
    );

    // Stop from the API: the instance stops, and the page's API says so.
    let unknown = post(&d, &format!("/api/instances/{id}/explode"), "{}");
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    let stop = post(&d, &format!("/api/instances/{id}/stop"), "{}");
    assert_eq!(stop.status, 200, "{}", stop.body);
    assert_eq!(stop.json()["changes"][0]["current_state"], "stopping");
    d.wait_state(&id, "stopped", Duration::from_secs(30));
    let v = wait_web(&d, &id, "stopped", |v| v["state"] == "stopped");
    assert!(v["status_checks"].is_null(), "{v:#}");
    assert!(
        v["state_reason"]
            .as_str()
            .unwrap()
            .contains("User initiated"),
        "{v:#}"
    );
    // Starting a stopped instance from the API boots it again.
    let start = post(&d, &format!("/api/instances/{id}/start"), "{}");
    assert_eq!(
        start.json()["changes"][0]["current_state"],
        "pending",
        "{}",
        start.body
    );
    d.wait_state(&id, "running", Duration::from_secs(30));

    // Logout ends the session.
    assert_eq!(post(&d, "/api/logout", "{}").status, 204);
    assert_eq!(get(&d, "/api/instances").status, 401);
}

/// A DevTools protocol client of one page.
struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
}

impl Cdp {
    /// Calls `method`; its result (events in between are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        self.next += 1;
        let id = self.next;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer"))
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    assert!(v["error"].is_null(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// Evaluates `expr` in the page; its value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(r["exceptionDetails"].is_null(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page.
    async fn wait(&mut self, what: &str, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if self.eval(expr).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let body = self.eval("document.body.innerText").await;
                panic!("{what}: not so after 40 s; the page shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", serde_json::json!({ "url": url }))
            .await;
    }

    /// Saves a PNG of the whole page to `path`.
    async fn screenshot(&mut self, path: &std::path::Path) {
        let r = self
            .call(
                "Page.captureScreenshot",
                serde_json::json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64_decode(r["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// Standard base64 (what the DevTools protocol sends screenshots as).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Headless Chromium inside the daemon's namespace, killed when dropped.
struct Chromium {
    child: std::process::Child,
    profile: std::path::PathBuf,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn chromium_binary() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The pages in a real browser: the list renders, the console shows the probe's banner and
/// echoes what is typed, the exit chart has data, a stop from the page stops the
/// instance; a screenshot of each page goes to target/web-screenshots/.
#[test]
fn pages_in_headless_chromium() {
    let Some(browser) = chromium_binary() else {
        eprintln!(
            "SKIPPED: chromium is not installed (`. scripts/lib.sh; ensure_chromium` installs \
             Debian's); the web pages were not tested in a browser"
        );
        return;
    };
    let d = Daemon::start_with("webui", web_config());
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", Duration::from_secs(30));

    let profile = d.dir.join("chromium");
    std::fs::create_dir_all(&profile).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &d.ns, browser])
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--remote-debugging-port=0",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        // Chromium's own temporary folders (/tmp/org.chromium.Chromium.*) go where the
        // profile goes, and with it when the test ends.
        .env("TMPDIR", &profile)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.dir.join("chromium.log")).unwrap())
        .spawn()
        .unwrap();
    let _chromium = Chromium {
        child,
        profile: profile.clone(),
    };
    // Chromium writes its DevTools port to the profile once it listens.
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Ok(s) = std::fs::read_to_string(profile.join("DevToolsActivePort")) {
            if let Some(p) = s.lines().next().and_then(|l| l.trim().parse::<u16>().ok()) {
                break p;
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromium did not start:\n{}",
            std::fs::read_to_string(d.dir.join("chromium.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let targets = curl(&d, &[&format!("http://127.0.0.1:{port}/json/list")]).json();
    let page_ws = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .unwrap()["webSocketDebuggerUrl"]
        .as_str()
        .unwrap()
        .to_string();

    let shots = strato_e2e::root().join("target/web-screenshots");
    let (ns, id2, shots2) = (d.ns.clone(), id.clone(), shots.clone());
    let base = format!("http://{PLAIN}");
    in_ns(&ns, move || {
        Box::pin(async move {
            let shots = shots2;
            let (ws, _) = tokio_tungstenite::connect_async(page_ws.as_str())
                .await
                .unwrap();
            let mut p = Cdp { ws, next: 0 };
            p.call("Page.enable", serde_json::json!({})).await;
            p.call("Runtime.enable", serde_json::json!({})).await;
            p.call(
                "Emulation.setDeviceMetricsOverride",
                serde_json::json!({ "width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
            )
            .await;

            // Not logged in: the login form.
            p.goto(&format!("{base}/")).await;
            p.wait("the login form", "!!document.getElementById('token')")
                .await;
            p.screenshot(&shots.join("login.png")).await;
            p.eval(
                "document.getElementById('token').value = 'token-admin'; \
                 document.querySelector('form.login button').click(); true",
            )
            .await;

            // The list renders the instance, running.
            let row = format!("document.querySelector('tr[data-instance=\"{id2}\"]')");
            p.wait(
                "the instance listed as running",
                &format!("!!{row} && !!{row}.querySelector('[data-state=\"running\"]')"),
            )
            .await;
            p.wait(
                "both status checks ok",
                &format!("{row}.innerText.includes('system: ok') && {row}.innerText.includes('instance: ok')"),
            )
            .await;
            p.screenshot(&shots.join("instances.png")).await;

            // The detail page: the console shows the banner (the buffered output) and
            // echoes what is typed into the terminal.
            p.goto(&format!("{base}/instances/{id2}")).await;
            let term = "(() => { const t = window.stratoTerm; if (!t) return ''; const b = t.buffer.active; \
                        let s = ''; for (let i = 0; i < b.length; i++) s += b.getLine(i).translateToString(true) + '\\n'; return s; })()";
            p.wait(
                "the probe's banner on the console",
                &format!("{term}.includes('probe: ready')"),
            )
            .await;
            p.eval("window.stratoTerm.focus(); true").await;
            p.call(
                "Input.insertText",
                serde_json::json!({ "text": "hello from chromium" }),
            )
            .await;
            p.call(
                "Input.dispatchKeyEvent",
                serde_json::json!({ "type": "keyDown", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r" }),
            )
            .await;
            p.call(
                "Input.dispatchKeyEvent",
                serde_json::json!({ "type": "keyUp", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13 }),
            )
            .await;
            p.wait(
                "the typed line echoed by the guest",
                &format!("{term}.includes('probe: console hello from chromium')"),
            )
            .await;

            // The lab: the exit chart has data, the timeline and memory map are shown.
            p.wait(
                "points on the exit chart",
                "Number((document.getElementById('exit-chart') || {dataset: {}}).dataset.points || 0) >= 3",
            )
            .await;
            p.wait(
                "the boot timeline",
                "!!document.querySelector('#boot-timeline tr[data-step=\"first_console_byte\"]')",
            )
            .await;
            p.wait(
                "the memory map",
                "document.getElementById('memory-map').innerText.includes('ACPI tables')",
            )
            .await;
            let h = p.eval("document.documentElement.scrollHeight").await;
            p.call(
                "Emulation.setDeviceMetricsOverride",
                serde_json::json!({ "width": 1280, "height": h.as_u64().unwrap_or(2000).min(6000), "deviceScaleFactor": 1, "mobile": false }),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            p.screenshot(&shots.join("instance.png")).await;

            // Stop from the page.
            p.eval("document.querySelector('button[data-action=\"stop\"]').click(); true")
                .await;
            p.wait(
                "the page showing the instance stopped",
                "!!document.querySelector('h1 [data-state=\"stopped\"]')",
            )
            .await;
        })
    });
    assert_eq!(d.state(&id), "stopped");
    for page in ["login", "instances", "instance"] {
        let png = std::fs::read(shots.join(format!("{page}.png"))).unwrap();
        assert!(png.len() > 10_000, "{page}.png is {} bytes", png.len());
    }
}
