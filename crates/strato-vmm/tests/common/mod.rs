//! Helpers for the KVM tests: the probe image, a monitor process with its console, the
//! control API, and network namespaces that clean up after themselves.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Folder with the probe image (built by scripts/build-image.sh probe).
pub fn probe_dir() -> PathBuf {
    let dir = std::env::var_os("STRATO_PROBE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/images/probe"));
    assert!(
        dir.join("vmlinux").exists(),
        "probe image missing in {}: run scripts/build-image.sh probe",
        dir.display()
    );
    dir
}

/// The CPU template this host needs.
pub fn template() -> &'static str {
    match strato_vmm::emulation::detect_template().template {
        strato_vmm::config::CpuTemplate::Host => "host",
        strato_vmm::config::CpuTemplate::EmulatedKvm => "emulated-kvm",
    }
}

/// A scratch folder removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "strato-test-{name}-{}-{}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .unwrap();
    u64::from_le_bytes(b)
}

/// 64-bit FNV-1a over little-endian u64 words of the first MiB, as the probe computes it.
pub fn probe_sum(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in data[..data.len().min(1 << 20)].chunks_exact(8) {
        h ^= u64::from_le_bytes(w.try_into().unwrap());
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A running monitor.
pub struct Vm {
    pub child: Child,
    pub console: PathBuf,
    pub api: PathBuf,
    pub stderr: PathBuf,
}

pub fn vmm_bin() -> &'static str {
    env!("CARGO_BIN_EXE_strato-vmm")
}

impl Vm {
    /// Starts a jailed strato-vmm with the probe kernel, `extra` flags, and a console and
    /// API socket in `dir`; `netns` runs it inside a namespace.
    pub fn start(
        dir: &Scratch,
        kernel: &str,
        cmdline: &str,
        extra: &[String],
        netns: Option<&str>,
    ) -> Vm {
        let mut args = vec!["--jail".to_string()];
        args.extend(extra.iter().cloned());
        Vm::start_unjailed(dir, kernel, cmdline, &args, netns)
    }

    /// As [`Vm::start`], without the jail unless `extra` asks for it.
    pub fn start_unjailed(
        dir: &Scratch,
        kernel: &str,
        cmdline: &str,
        extra: &[String],
        netns: Option<&str>,
    ) -> Vm {
        let console = dir.path("console.log");
        let api = dir.path("api.sock");
        let stderr = dir.path("stderr.log");
        let mut args: Vec<String> = vec![
            "--kernel".into(),
            probe_dir().join(kernel).display().to_string(),
            "--cmdline".into(),
            format!("console=ttyS0 {cmdline}"),
            "--memory".into(),
            "64".into(),
            "--console".into(),
            console.display().to_string(),
            "--api-socket".into(),
            api.display().to_string(),
            "--cpu-template".into(),
            template().into(),
        ];
        args.extend(extra.iter().cloned());
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, vmm_bin()]);
                c
            }
            None => Command::new(vmm_bin()),
        };
        let child = cmd
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Vm {
            child,
            console,
            api,
            stderr,
        }
    }

    pub fn console_text(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Waits until the console holds `needle`; panics with the console after `timeout`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.console_text();
            if text.contains(needle) {
                return text;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "monitor exited ({st}) before {needle:?}\nconsole:\n{text}\nstderr:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                panic!("no {needle:?} within {timeout:?}\nconsole:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to end.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "monitor still running after {timeout:?}\nconsole:\n{}",
                    self.console_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process running the VM: the jail keeper's only child, or the monitor itself
    /// when it is not jailed.
    pub fn vm_pid(&self) -> u32 {
        let pid = self.child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let children =
                std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
            if let Some(c) = children.split_whitespace().next() {
                return c.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "the keeper {pid} has no child");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends one API request with `file`'s descriptor attached (SCM_RIGHTS).
    pub fn api_with_fd(&self, req: &str, file: &std::fs::File) -> Value {
        let s = self.connect();
        send_with_fd(&s, format!("{req}\n").as_bytes(), file.as_raw_fd());
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }

    fn connect(&self) -> UnixStream {
        let deadline = Instant::now() + Duration::from_secs(10);
        let s = loop {
            match UnixStream::connect(&self.api) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("API socket {}: {e}", self.api.display()),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends one API request and returns the reply.
    pub fn api(&self, req: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match UnixStream::connect(&self.api) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("API socket {}: {e}", self.api.display()),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(b"\n").unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `bytes` with one descriptor as SCM_RIGHTS, in one message.
pub fn send_with_fd(s: &UnixStream, bytes: &[u8], fd: i32) {
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: plain data; every pointer outlives the sendmsg below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: fills one SCM_RIGHTS header inside `control`, which is large enough.
    unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        libc::CMSG_DATA(c).cast::<i32>().write_unaligned(fd);
    }
    // SAFETY: `msg` is valid for the call.
    let n = unsafe { libc::sendmsg(s.as_raw_fd(), &msg, 0) };
    assert_eq!(
        n,
        bytes.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// The `Key:` line of /proc/PID/status (or of a task's status file at `path`).
pub fn status_field(path: &str, key: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {path}"))
        .trim()
        .to_string()
}

/// A network namespace with a tap device and a host-side address; deleted on drop.
pub struct NetNs {
    pub name: String,
}

pub fn sh(cmd: &[&str]) -> std::process::Output {
    Command::new(cmd[0]).args(&cmd[1..]).output().unwrap()
}

pub fn sh_ok(cmd: &[&str]) {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl NetNs {
    /// Creates namespace `strato-t-<tag>-<pid>` holding tap `tap0` with `host_cidr`.
    pub fn with_tap(tag: &str, host_cidr: &str) -> NetNs {
        let name = format!("strato-t-{tag}-{}", std::process::id());
        let _ = sh(&["ip", "netns", "del", &name]);
        sh_ok(&["ip", "netns", "add", &name]);
        let ns = NetNs { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns.exec_ok(&["ip", "tuntap", "add", "tap0", "mode", "tap", "vnet_hdr"]);
        ns.exec_ok(&["ip", "addr", "add", host_cidr, "dev", "tap0"]);
        ns.exec_ok(&["ip", "link", "set", "tap0", "up"]);
        ns
    }

    pub fn exec(&self, cmd: &[&str]) -> std::process::Output {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(cmd);
        sh(&full)
    }

    pub fn exec_ok(&self, cmd: &[&str]) {
        let o = self.exec(cmd);
        assert!(
            o.status.success(),
            "{cmd:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

/// A config drive (tar volume labelled config-2) holding `script` as its user data.
pub fn config_drive(dir: &Scratch, script: &str) -> PathBuf {
    let sub = dir.path("cd");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("user-data"), script).unwrap();
    let tar = dir.path("cd.tar");
    sh_ok(&[
        "tar",
        "--label=config-2",
        "-C",
        sub.to_str().unwrap(),
        "-cf",
        tar.to_str().unwrap(),
        "user-data",
    ]);
    tar
}
