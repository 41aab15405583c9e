//! The harness of strato's end-to-end tests: a `stratod` with its own data directory, run
//! inside a network namespace the test creates (its bridge, taps and VMs live there and
//! vanish with it), driven through the `strato` CLI.
//!
//! The binaries are the workspace's own (`target/<profile>/{stratod,strato,strato-vmm}`);
//! `scripts/test.sh` builds them before the tests run, and the probe guest image
//! (`target/images/probe`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod dhcp;
pub mod invariants;
pub mod query;
pub mod underlay;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A workspace binary, built next to the test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let p = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The probe guest bundle.
pub fn probe_bundle() -> PathBuf {
    let p = std::env::var_os("STRATO_PROBE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/images/probe"));
    assert!(
        p.join("manifest.json").exists(),
        "the probe image is missing: run scripts/build-image.sh probe"
    );
    p.canonicalize().unwrap()
}

fn sh(cmd: &[&str]) -> Output {
    Command::new(cmd[0]).args(&cmd[1..]).output().unwrap()
}

/// Settings for a test daemon (JSON config file fields).
pub fn fast_config() -> Value {
    serde_json::json!({
        "status_interval_secs": 1.0,
        "status_grace_secs": 4.0,
        "stop_timeout_secs": 3.0,
        "tokens": {"token-alice": "111111111111", "token-bob": "222222222222"}
    })
}

/// A daemon under test.
pub struct Daemon {
    pub ns: String,
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
    config: Value,
    /// The "outside" namespace joined to the daemon's by its uplink, if it has one.
    pub outside: Option<NsHost>,
    /// Extra environment variables for the daemon.
    env: Vec<(String, String)>,
    /// Whether the data directory is a tmpfs of the test's (unmounted when dropped).
    tmpfs: bool,
}

/// The admin account of test daemons (the Unix socket without a token).
pub const ADMIN: &str = "100000000001";

/// The uplink of daemons started with [`Daemon::start_with_uplink`].
pub const UPLINK: &str = "uplink0";

/// Their public address pool (198.51.100.17 to .30).
pub const PUBLIC_POOL: &str = "198.51.100.16/28";

impl Daemon {
    /// Starts a daemon in a fresh namespace with `fast_config`.
    pub fn start(tag: &str) -> Daemon {
        Self::start_with(tag, fast_config())
    }

    /// Starts a daemon with this config.
    pub fn start_with(tag: &str, config: Value) -> Daemon {
        Self::start_with_env(tag, config, &[])
    }

    /// Starts a daemon with this config and these environment variables besides the test's.
    pub fn start_with_env(tag: &str, config: Value, env: &[(&str, &str)]) -> Daemon {
        let mut d = Self::prepare(tag, config);
        d.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.launch();
        d
    }

    /// Starts a daemon with an uplink: before it starts, an "outside" namespace is joined to
    /// its namespace by a veth pair, [`UPLINK`] (198.51.100.2/24) on the daemon's side and
    /// `eth0` (198.51.100.1/24) outside, and `config` gets an `uplink` section with the
    /// public pool [`PUBLIC_POOL`] (keys of a `uplink` section in `config` are kept). The
    /// outside goes with the daemon.
    pub fn start_with_uplink(tag: &str, mut config: Value) -> Daemon {
        let mut d = Self::prepare(tag, Value::Null);
        // Keys the caller put in `uplink` (its `ipv6_prefix`) stay.
        let mut uplink = serde_json::json!({"interface": UPLINK, "pool": PUBLIC_POOL});
        if let Some(extra) = config.get("uplink").and_then(Value::as_object) {
            for (k, v) in extra {
                uplink[k] = v.clone();
            }
        }
        config["uplink"] = uplink;
        d.config = config;
        let outside = format!("{}-out", d.ns);
        let _ = sh(&["ip", "netns", "del", &outside]);
        let run = |args: &[&str]| {
            let out = sh(args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["ip", "netns", "add", &outside]);
        d.outside = Some(NsHost {
            ns: outside.clone(),
            port: UPLINK.to_string(),
        });
        run(&["ip", "-n", &outside, "link", "set", "lo", "up"]);
        run(&[
            "ip", "-n", &d.ns, "link", "add", UPLINK, "type", "veth", "peer", "name", "eth0",
            "netns", &outside,
        ]);
        run(&[
            "ip",
            "-n",
            &d.ns,
            "addr",
            "add",
            "198.51.100.2/24",
            "dev",
            UPLINK,
        ]);
        run(&["ip", "-n", &d.ns, "link", "set", UPLINK, "up"]);
        run(&[
            "ip",
            "-n",
            &outside,
            "addr",
            "add",
            "198.51.100.1/24",
            "dev",
            "eth0",
        ]);
        run(&["ip", "-n", &outside, "link", "set", "eth0", "up"]);
        d.launch();
        d
    }

    /// Starts a daemon whose data directory is a tmpfs of `mib` MiB (a disk that fills up).
    pub fn start_on_tmpfs(tag: &str, config: Value, mib: u64) -> Daemon {
        let mut d = Self::prepare(tag, config);
        std::fs::create_dir_all(d.data()).unwrap();
        must(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={mib}m,mode=0755"),
            "strato-e2e",
            d.data().to_str().unwrap(),
        ]);
        d.tmpfs = true;
        d.launch();
        d
    }

    /// The outside namespace of a daemon started with an uplink.
    pub fn outside(&self) -> &NsHost {
        self.outside
            .as_ref()
            .expect("the daemon was started without an uplink")
    }

    /// A fresh namespace and data folder for a daemon that is not started yet.
    fn prepare(tag: &str, config: Value) -> Daemon {
        let ns = format!("se2e-{tag}-{}", std::process::id());
        let _ = sh(&["ip", "netns", "del", &ns]);
        let out = sh(&["ip", "netns", "add", &ns]);
        assert!(
            out.status.success(),
            "ip netns add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        let dir = std::env::temp_dir().join(&ns);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Daemon {
            socket: dir.join("stratod.sock"),
            ns,
            dir,
            child: None,
            config,
            outside: None,
            env: Vec::new(),
            tmpfs: false,
        }
    }

    fn launch(&mut self) {
        let cfg = self.dir.join("config.json");
        let mut config = self.config.clone();
        config["vmm_binary"] = Value::String(bin("strato-vmm").display().to_string());
        // Listeners from the config go on the command line beside the harness's socket.
        let extra: Vec<String> = config
            .as_object_mut()
            .unwrap()
            .remove("listen")
            .and_then(|l| serde_json::from_value(l).ok())
            .unwrap_or_default();
        std::fs::write(&cfg, config.to_string()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stratod.log"))
            .unwrap();
        let _ = std::fs::remove_file(&self.socket);
        // The log is appended across restarts: this launch is ready when one more
        // readiness line appears (printed once every listener is bound).
        let readies = |d: &Daemon| d.log().matches("stratod: ready (pid ").count();
        let before = readies(self);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(bin("stratod"))
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--listen")
            .arg(format!("unix:{}", self.socket.display()))
            .args(extra.iter().flat_map(|l| ["--listen", l.as_str()]))
            .arg("--config")
            .arg(&cfg)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.socket.exists() || readies(self) == before {
            assert!(
                Instant::now() < deadline,
                "stratod did not start:\n{}",
                self.log()
            );
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("stratod exited with {st}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's PID while it runs (`ip netns exec` execs it, so the child is stratod).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stratod.log")).unwrap_or_default()
    }

    /// The CA the daemon made for its TLS listeners (there once one is configured).
    pub fn ca_file(&self) -> PathBuf {
        self.data().join("tls/ca.pem")
    }

    /// The daemon's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Stops the daemon with SIGTERM (VMs keep running).
    pub fn stop_daemon(&mut self) {
        if let Some(mut c) = self.child.take() {
            // `ip netns exec` execs the daemon, so the child is stratod itself.
            // SAFETY: kill takes a PID and a signal number.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills the daemon with SIGKILL, wherever it is (a crash: no clean-up runs; VMs keep
    /// running) and reaps it.
    pub fn kill_daemon(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same data directory after [`Daemon::kill_daemon`] or
    /// [`Daemon::stop_daemon`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the daemon still runs");
        self.launch();
    }

    /// Restarts the daemon on the same data directory.
    pub fn restart(&mut self) {
        self.stop_daemon();
        self.launch();
    }

    /// The PIDs of this daemon's monitors: the process it started for each VM (a jail's
    /// keeper, or the monitor itself when unjailed), sorted.
    pub fn vmm_pids(&self) -> Vec<i32> {
        // A monitor's command line names its config under this daemon's data directory.
        // (Its network namespace says nothing: a jail's keeper joins the one made for it.)
        let data = self.data().display().to_string();
        let comm = |p: &str| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_default()
        };
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids: Vec<i32> = procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| comm(&p.to_string()) == "strato-vmm")
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .map(|c| {
                        c.split(|b| *b == 0)
                            .any(|a| String::from_utf8_lossy(a).starts_with(&data))
                    })
                    .unwrap_or(false)
            })
            // A jailed monitor is the keeper's child: the keeper stands for the pair.
            .filter(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .unwrap_or("0")
                    .to_string();
                comm(&ppid) != "strato-vmm"
            })
            .collect();
        pids.sort_unstable();
        pids
    }

    /// A monitor's whole process tree: the process the daemon started (a jail's keeper,
    /// or the monitor itself when unjailed) and every descendant (the jailed monitor).
    pub fn monitor_tree(pid: i32) -> Vec<i32> {
        let mut out = vec![pid];
        let mut i = 0;
        while i < out.len() {
            let p = out[i];
            let children =
                std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
            out.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
            i += 1;
        }
        out
    }

    /// Sends a signal to a monitor's whole process tree (see `monitor_tree`): stopping a
    /// jail's keeper alone leaves the jailed monitor answering.
    pub fn signal_monitor(pid: i32, signal: i32) {
        for p in Daemon::monitor_tree(pid) {
            // SAFETY: kill takes a PID and a signal number; the PIDs are a test's own monitor.
            unsafe { libc::kill(p, signal) };
        }
    }

    /// Runs the CLI; returns its output whatever the exit status.
    pub fn cli_raw(&self, args: &[&str]) -> Output {
        self.cli_as(None, args)
    }

    /// Runs the CLI with a token.
    pub fn cli_as(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(bin("strato"));
        c.env("STRATO_ENDPOINT", format!("unix:{}", self.socket.display()))
            .env_remove("STRATO_TOKEN")
            .env_remove("STRATO_OUTPUT")
            .args(args);
        if let Some(t) = token {
            c.env("STRATO_TOKEN", t);
        }
        c.output().unwrap()
    }

    /// Runs the CLI, expecting success; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_raw(args);
        assert!(
            out.status.success(),
            "strato {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI with `--output json`, expecting success.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--output", "json"];
        a.extend_from_slice(args);
        let text = self.cli(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Runs the CLI with a token (`None`: the Unix socket's admin) and `--output json`,
    /// expecting success.
    pub fn json_as(&self, token: Option<&str>, args: &[&str]) -> Value {
        let mut a = vec!["--output", "json"];
        a.extend_from_slice(args);
        let out = self.cli_as(token, &a);
        assert!(
            out.status.success(),
            "strato {args:?} as {token:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs the CLI expecting an EC2 error; returns stderr, checked to name `code`.
    pub fn cli_err(&self, code: &str, args: &[&str]) -> String {
        self.cli_err_as(None, code, args)
    }

    /// As `cli_err`, with a token.
    pub fn cli_err_as(&self, token: Option<&str>, code: &str, args: &[&str]) -> String {
        let out = self.cli_as(token, args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(254), "strato {args:?}: {err}");
        assert!(
            err.contains(&format!("An error occurred ({code})")),
            "strato {args:?}: expected {code}, got: {err}"
        );
        err
    }

    /// Registers the probe image with a 1 GiB blank root volume; returns the AMI ID.
    pub fn register_probe(&self, name: &str) -> String {
        let bundle = probe_bundle();
        let v = self.json(&[
            "register-image",
            "--name",
            name,
            "--bundle",
            bundle.to_str().unwrap(),
            "--block-device-mappings",
            r#"[{"DeviceName":"/dev/vda","Ebs":{"VolumeSize":1,"DeleteOnTermination":true}}]"#,
        ]);
        v["ImageId"].as_str().unwrap().to_string()
    }

    /// Launches instances of the probe AMI (custom-1-64); returns their IDs.
    pub fn run(&self, ami: &str, extra: &[&str]) -> Vec<String> {
        let v = self.run_json(ami, extra);
        v["Instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["InstanceId"].as_str().unwrap().to_string())
            .collect()
    }

    /// Launches instances of the probe AMI (custom-1-64); returns the reservation.
    pub fn run_json(&self, ami: &str, extra: &[&str]) -> Value {
        let mut args = vec![
            "run-instances",
            "--image-id",
            ami,
            "--instance-type",
            "custom-1-64",
        ];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// Routes the uplink's IPv6 test prefix: `2001:db8:ffff::1/64` on the outside's `eth0`,
    /// `::2` on the daemon's uplink, and the outside's route to `routed` through it (the
    /// daemon's routed prefix, no NAT).
    pub fn route_outside_ipv6(&self, routed: &str) {
        let out = self.outside();
        must(&[
            "ip",
            "-n",
            &out.ns,
            "-6",
            "addr",
            "add",
            "2001:db8:ffff::1/64",
            "dev",
            "eth0",
            "nodad",
        ]);
        must(&[
            "ip",
            "-n",
            &self.ns,
            "-6",
            "addr",
            "add",
            "2001:db8:ffff::2/64",
            "dev",
            UPLINK,
            "nodad",
        ]);
        must(&[
            "ip",
            "-n",
            &out.ns,
            "-6",
            "route",
            "add",
            routed,
            "via",
            "2001:db8:ffff::2",
        ]);
    }

    /// One instance as DescribeInstances shows it.
    pub fn instance(&self, id: &str) -> Value {
        let v = self.json(&["describe-instances", "--instance-ids", id]);
        v["Reservations"][0]["Instances"][0].clone()
    }

    /// An instance's state name.
    pub fn state(&self, id: &str) -> String {
        self.instance(id)["State"]["Name"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until the instance is in `state`.
    pub fn wait_state(&self, id: &str, state: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.state(id);
            if s == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} is {s}, not {state}, after {timeout:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// (system, instance) status summaries.
    pub fn status(&self, id: &str) -> (String, String) {
        let v = self.json(&[
            "describe-instance-status",
            "--instance-ids",
            id,
            "--include-all-instances",
        ]);
        let s = &v["InstanceStatuses"][0];
        (
            s["SystemStatus"]["Status"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            s["InstanceStatus"]["Status"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    }

    /// Waits until the status summaries are (system, instance); `"*"` matches any.
    pub fn wait_status(&self, id: &str, want: (&str, &str), timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (s, i) = self.status(id);
            if (want.0 == "*" || s == want.0) && (want.1 == "*" || i == want.1) {
                let v = self.json(&[
                    "describe-instance-status",
                    "--instance-ids",
                    id,
                    "--include-all-instances",
                ]);
                return v["InstanceStatuses"][0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "{id} status is ({s}, {i}), not {want:?}, after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The console output of an instance.
    pub fn console(&self, id: &str) -> String {
        self.cli(&["get-console-output", "--instance-id", id])
    }

    /// Waits until the console shows `needle` and the end of its line: the rest of a line
    /// may reach the console a moment after its start, and callers read the whole line.
    pub fn wait_console(&self, id: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.console(id);
            if c.find(needle).is_some_and(|at| c[at..].contains('\n')) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "{id}: {needle:?} not on the console after {timeout:?}:\n{c}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes a file in the test's folder; returns its path.
    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// Names of the files in a data subfolder (`volumes`, `snapshots`, `images`,
    /// `instances`).
    pub fn files(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data().join(sub))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The daemon first, so that no launch still under way starts a monitor after the
        // sweep; its monitors outlive it in the namespace, each tree (a jailed monitor
        // and its keeper) killed whole.
        self.stop_daemon();
        for pid in self.vmm_pids() {
            Daemon::signal_monitor(pid, libc::SIGKILL);
        }
        let _ = sh(&["ip", "netns", "del", &self.ns]);
        if self.tmpfs {
            let _ = sh(&["umount", "-l", self.data().to_str().unwrap_or("")]);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A namespace "host": a network namespace of its own whose `eth0` is a veth pair with its
/// other end a port of one of the daemon's bridges. It has a whole Linux TCP/IP stack, for
/// tests that need more than the probe guest's ARP and ping. Removed when dropped.
pub struct NsHost {
    /// The host's namespace.
    pub ns: String,
    /// The bridge port (in the daemon's namespace).
    pub port: String,
}

impl Daemon {
    /// Gives the default VPC an Amazon-provided IPv6 block (from the daemon's `ipv6_pool`)
    /// and its default subnet (172.31.0.0/20) the /64 `subnet_block` of it; returns the
    /// VPC's and the subnet's IDs.
    pub fn default_subnet_with_ipv6(&self, subnet_block: &str) -> (String, String) {
        let v = self.json(&[
            "describe-subnets",
            "--filters",
            "Name=cidr-block,Values=172.31.0.0/20",
        ]);
        let subnet = v["Subnets"][0]["SubnetId"].as_str().unwrap().to_string();
        let vpc = v["Subnets"][0]["VpcId"].as_str().unwrap().to_string();
        self.json(&[
            "associate-vpc-cidr-block",
            "--vpc-id",
            &vpc,
            "--amazon-provided-ipv6-cidr-block",
        ]);
        self.json(&[
            "associate-subnet-cidr-block",
            "--subnet-id",
            &subnet,
            "--ipv6-cidr-block",
            subnet_block,
        ]);
        (vpc, subnet)
    }

    /// A namespace host named `name` (at most 8 characters) plugged into `bridge` with
    /// `addr` (`a.b.c.d/n`) on its `eth0` and a default route through `gateway` if given.
    pub fn host(&self, name: &str, bridge: &str, addr: &str, gateway: Option<&str>) -> NsHost {
        let host = NsHost::plugged(&self.ns, name, "vh", addr);
        must(&[
            "ip", "-n", &self.ns, "link", "set", &host.port, "master", bridge, "up",
        ]);
        if let Some(gw) = gateway {
            must(&["ip", "-n", &host.ns, "route", "add", "default", "via", gw]);
        }
        host
    }
}

/// Runs a command that must succeed.
fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NsHost {
    /// A namespace `<parent>-<name>` whose `eth0` (up, with `addr`) is a veth pair with the
    /// port `<prefix>-<name>` (down, for the caller to plug) in namespace `parent`.
    fn plugged(parent: &str, name: &str, prefix: &str, addr: &str) -> NsHost {
        assert!(name.len() <= 8, "host name too long: {name}");
        let ns = format!("{parent}-{name}");
        let port = format!("{prefix}-{name}");
        let _ = sh(&["ip", "netns", "del", &ns]);
        must(&["ip", "netns", "add", &ns]);
        let host = NsHost {
            ns: ns.clone(),
            port: port.clone(),
        };
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        must(&[
            "ip", "-n", parent, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
            "netns", &ns,
        ]);
        must(&["ip", "-n", &ns, "addr", "add", addr, "dev", "eth0"]);
        must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        host
    }

    /// A host behind `router`: a namespace of its own joined to the router by a veth pair
    /// (`router_addr` on the router's side, `addr` on the host's `eth0`, the router its
    /// default gateway); the router forwards and masquerades its traffic out of its own
    /// `eth0`, as a container runtime or a NAT box would.
    pub fn behind(router: &NsHost, name: &str, router_addr: &str, addr: &str) -> NsHost {
        let host = NsHost::plugged(&router.ns, name, "r", addr);
        must(&[
            "ip",
            "-n",
            &router.ns,
            "addr",
            "add",
            router_addr,
            "dev",
            &host.port,
        ]);
        must(&["ip", "-n", &router.ns, "link", "set", &host.port, "up"]);
        let gw = router_addr.split('/').next().unwrap();
        must(&["ip", "-n", &host.ns, "route", "add", "default", "via", gw]);
        let out = router.sh("echo 1 > /proc/sys/net/ipv4/ip_forward && nft -f - <<'EOF'
table ip masq {
  chain post {
    type nat hook postrouting priority 100;
    oifname \"eth0\" masquerade
  }
}
EOF");
        assert!(
            out.status.success(),
            "router setup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        host
    }

    /// Runs a command inside the host's namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a shell script inside the host's namespace.
    pub fn sh(&self, script: &str) -> Output {
        self.exec(&["sh", "-c", script])
    }

    /// Whether pings to `ip` are answered within `secs`, trying once a second.
    pub fn pings_within(&self, ip: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.ping(ip, 1) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// Whether one ping to `ip` is answered within `secs` seconds.
    pub fn ping(&self, ip: &str, secs: u32) -> bool {
        self.exec(&["ping", "-c", "1", "-W", &secs.to_string(), ip])
            .status
            .success()
    }
}

/// Runs `f` on a thread that has joined the network namespace `ns` (a test's own).
pub fn in_netns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: setns takes an open namespace file and a namespace type; it changes only
        // this thread's network namespace, and the result is checked.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

impl NsHost {
    /// A TCP echo server on `port` of every address of the host (IPv4 and IPv6), serving
    /// until the test ends.
    pub fn echo_server(&self, port: u16) {
        use std::io::{Read, Write};
        let l = in_netns(&self.ns, move || {
            std::net::TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, port)).unwrap()
        });
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    if let Ok(n) = c.read(&mut buf) {
                        let _ = c.write_all(&buf[..n]);
                    }
                });
            }
        });
    }

    /// Whether the host can open a TCP connection to `addr` (`ip:port`, `[ip6]:port`) and
    /// get its bytes echoed.
    pub fn echoes(&self, addr: &str) -> bool {
        use std::io::{Read, Write};
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        in_netns(&self.ns, move || {
            let Ok(mut s) =
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(1500))
            else {
                return false;
            };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 5];
            s.write_all(b"hello").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"hello"
        })
    }
}

impl Drop for NsHost {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// A process's resident memory in KiB (0 when it is gone).
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Polls `ok` every 200 ms until it holds; fails naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The instances of a describe-instances reply, across its reservations.
pub fn instances_of(v: &Value) -> Vec<Value> {
    v["Reservations"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .flat_map(|r| r["Instances"].as_array().cloned().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Reads up to `len` bytes of a file at `offset`.
pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len];
    let n = f.read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}
