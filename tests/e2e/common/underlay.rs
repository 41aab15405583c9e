//! A region's underlay for multi-host tests: a namespace of the test's own holding one
//! bridge (the "switch" between hosts), an etcd server on the switch's own address, and
//! daemons whose namespaces are plugged into the switch by a veth pair (`underlay0` on the
//! daemon's side). Everything lives in namespaces the test made; nothing leaves them.
//! Optionally a LAN beside it: a second bridge (`lan0`, the hosts' shared public segment)
//! that daemons' uplinks plug into, the switch's own address on it standing in for the
//! outside world that pings public addresses.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{must, sh, Daemon, UPLINK};

/// The switch's own address: where etcd listens.
pub const SWITCH_ADDR: &str = "10.250.0.1";

/// The name of each daemon's underlay interface.
pub const UNDERLAY_IF: &str = "underlay0";

/// The switch's own address on the LAN (its bridge `lan0`, 198.51.100.0/24).
pub const LAN_ADDR: &str = "198.51.100.1";

/// The LAN's bridge in the switch's namespace.
pub const LAN_BRIDGE: &str = "lan0";

/// The underlay: a namespace with bridge `sw0`, `10.250.0.1/24` on it.
pub struct Underlay {
    /// The switch's namespace.
    pub ns: String,
}

impl Underlay {
    /// A fresh underlay namespace `se2e-<tag>-ul-<pid>`.
    pub fn new(tag: &str) -> Underlay {
        let ns = format!("se2e-{tag}-ul-{}", std::process::id());
        let _ = sh(&["ip", "netns", "del", &ns]);
        must(&["ip", "netns", "add", &ns]);
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        must(&["ip", "-n", &ns, "link", "add", "sw0", "type", "bridge"]);
        must(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{SWITCH_ADDR}/24"),
            "dev",
            "sw0",
        ]);
        must(&["ip", "-n", &ns, "link", "set", "sw0", "up"]);
        Underlay { ns }
    }

    /// The etcd client URL on the switch.
    pub fn etcd_endpoint(&self) -> String {
        format!("http://{SWITCH_ADDR}:2379")
    }

    /// Starts an etcd server on the switch's address (its data in a folder of the test's).
    pub fn start_etcd(&self) -> Etcd {
        let dir = std::env::temp_dir().join(format!("{}-etcd", self.ns));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut etcd = Etcd {
            ns: self.ns.clone(),
            dir,
            child: None,
        };
        etcd.start();
        etcd
    }

    /// Starts a daemon on this underlay: its namespace gets [`UNDERLAY_IF`] with `addr`
    /// (`a.b.c.d/24` in 10.250.0.0/24, not .1) joined to the switch before it starts.
    pub fn start_daemon(&self, tag: &str, config: Value, addr: &str) -> Daemon {
        let mut d = Daemon::prepare(tag, config);
        self.plug(&d.ns, tag, addr);
        d.launch();
        d
    }

    /// [`Underlay::start_daemon`] with `before` run on the prepared daemon before it starts
    /// (to seed its data folder, with a region's shared CA say).
    pub fn start_daemon_with(
        &self,
        tag: &str,
        config: Value,
        addr: &str,
        before: impl FnOnce(&Daemon),
    ) -> Daemon {
        let mut d = Daemon::prepare(tag, config);
        self.plug(&d.ns, tag, addr);
        before(&d);
        d.launch();
        d
    }

    /// Plugs namespace `ns` into the switch: `underlay0` (with `addr`) there, `u-<tag>` here.
    pub fn plug(&self, ns: &str, tag: &str, addr: &str) {
        let port = format!("u-{tag}");
        assert!(port.len() <= 15, "underlay port name too long: {port}");
        must(&[
            "ip",
            "-n",
            &self.ns,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            UNDERLAY_IF,
            "netns",
            ns,
        ]);
        must(&[
            "ip", "-n", &self.ns, "link", "set", &port, "master", "sw0", "up",
        ]);
        must(&["ip", "-n", ns, "addr", "add", addr, "dev", UNDERLAY_IF]);
        must(&["ip", "-n", ns, "link", "set", UNDERLAY_IF, "up"]);
    }

    /// Adds the LAN: bridge [`LAN_BRIDGE`] with `198.51.100.1/24` in the switch's namespace,
    /// for daemons' uplinks ([`Underlay::plug_uplink`]).
    pub fn add_lan(&self) {
        must(&[
            "ip", "-n", &self.ns, "link", "add", LAN_BRIDGE, "type", "bridge",
        ]);
        must(&[
            "ip",
            "-n",
            &self.ns,
            "addr",
            "add",
            &format!("{LAN_ADDR}/24"),
            "dev",
            LAN_BRIDGE,
        ]);
        must(&["ip", "-n", &self.ns, "link", "set", LAN_BRIDGE, "up"]);
    }

    /// Plugs namespace `ns` into the LAN (made by [`Underlay::add_lan`]): [`UPLINK`] (with
    /// `addr`, `198.51.100.x/24`) there, `l-<tag>` here.
    pub fn plug_uplink(&self, ns: &str, tag: &str, addr: &str) {
        let port = format!("l-{tag}");
        assert!(port.len() <= 15, "LAN port name too long: {port}");
        must(&[
            "ip", "-n", &self.ns, "link", "add", &port, "type", "veth", "peer", "name", UPLINK,
            "netns", ns,
        ]);
        must(&[
            "ip", "-n", &self.ns, "link", "set", &port, "master", LAN_BRIDGE, "up",
        ]);
        must(&["ip", "-n", ns, "addr", "add", addr, "dev", UPLINK]);
        must(&["ip", "-n", ns, "link", "set", UPLINK, "up"]);
    }

    /// Whether one ping from the switch's namespace to `ip` is answered within `secs`
    /// seconds (from the LAN when `ip` is on it).
    pub fn ping(&self, ip: &str, secs: u32) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "ping", "-c", "1", "-W"])
            .arg(secs.to_string())
            .arg(ip)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Runs a shell script in the switch's namespace.
    pub fn sh(&self, script: &str) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, "sh", "-c", script])
            .output()
            .unwrap()
    }
}

impl Drop for Underlay {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// An etcd server (Debian's `etcd-server`) in the underlay's namespace.
pub struct Etcd {
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    /// Starts the server (again, on the same data) and waits until it answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "etcd already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let client = format!("http://{SWITCH_ADDR}:2379");
        let peer = format!("http://{SWITCH_ADDR}:2380");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "etcd"])
            .args(["--name", "strato-test"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("strato-test={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd (Debian's etcd-server) is not installed: scripts/test.sh installs it");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new("ip")
                .args(["netns", "exec", &self.ns, "etcdctl"])
                .args(["--endpoints", &client, "endpoint", "health"])
                .env("ETCDCTL_API", "3")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGKILL: as a crash would; its data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
