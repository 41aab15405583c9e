//! Monitor processes: spawning `strato-vmm` for an instance in a session of its own (so that
//! it outlives a daemon restart), talking to its control socket, adopting it again after a
//! restart, and learning how it ended.
//!
//! A process is identified by its PID and its start time (`/proc/PID/stat` field 22), so a
//! PID the kernel reused for something else is never taken for the monitor.
//!
//! The daemon opens everything a monitor uses (`/dev/kvm`, taps, volume files, the console
//! file, the listening control socket, the exit record) and hands the descriptors over
//! ([`Handoff`]); a jailed monitor opens no path. The process the daemon starts is then the
//! jail's keeper, and the VM runs in its only child, PID 1 of a PID namespace of its own
//! ([`vm_pid`]): the daemon waits for, signals and adopts the keeper, which exits with the
//! VM's status.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::de::DeserializeOwned;
use strato_vmm_api::config::{CpuTemplate, UnknownTemplate, VmConfig};
use strato_vmm_api::control::{
    self, ConsoleChunk, Counters, Done, InputAccepted, Request, StateOnly, StateReply, VmState,
};
use strato_vmm_api::exit::{ExitRecord, ExitStatus};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A supervisor failure.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The monitor could not be started.
    #[error("cannot start {0}")]
    Spawn(String, #[source] std::io::Error),
    /// A file of the instance could not be written.
    #[error("cannot write {0}")]
    Write(String, #[source] std::io::Error),
    /// The control socket did not answer.
    #[error("monitor API at {0} did not answer")]
    Api(String, #[source] std::io::Error),
    /// The control socket answered with an error.
    #[error("monitor refused {op}: {message}")]
    Refused {
        /// The request's op.
        op: &'static str,
        /// The monitor's sentence.
        message: String,
    },
    /// The control socket answered something that is not a reply to the request.
    #[error("monitor answered {op} with a malformed reply")]
    Malformed {
        /// The request's op.
        op: &'static str,
        /// What was wrong with it.
        #[source]
        source: serde_json::Error,
    },
    /// `strato-vmm --detect-cpu-template` gave an answer this daemon does not know.
    #[error("monitor's CPU template detection: {0}")]
    Detect(String),
    /// The monitor exited before it was up.
    #[error("monitor exited during boot: {0}")]
    EarlyExit(String),
}

/// The files of one monitor process, all in the instance's folder.
#[derive(Debug, Clone)]
pub struct VmmPaths {
    /// The JSON configuration.
    pub config: PathBuf,
    /// The control socket.
    pub api: PathBuf,
    /// The serial console log.
    pub console: PathBuf,
    /// Where the monitor writes how it ended.
    pub exit_status: PathBuf,
    /// The monitor's own stderr.
    pub stderr: PathBuf,
}

impl VmmPaths {
    /// The paths for an instance folder.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            config: dir.join("vm.json"),
            api: dir.join("api.sock"),
            console: dir.join("console.log"),
            exit_status: dir.join("exit.json"),
            stderr: dir.join("vmm.log"),
        }
    }
}

/// A running monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// PID.
    pub pid: i32,
    /// Start time in clock ticks after boot.
    pub start: i64,
}

/// How a monitor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Exit status (`None`: killed by a signal, gone without a record, or a code this
    /// daemon does not know).
    pub status: Option<ExitStatus>,
    /// The monitor's sentence, or what the daemon could tell.
    pub reason: String,
}

/// Descriptors a monitor inherits. Each keeps its number, which is what the configuration
/// names; they are close-on-exec in the daemon and made inheritable only in the child
/// between fork and exec, so no other program the daemon starts meanwhile gets them.
#[derive(Debug, Default)]
pub struct Handoff {
    fds: Vec<OwnedFd>,
}

impl Handoff {
    /// Hands `fd` over; returns the number the monitor will know it by.
    pub fn pass(&mut self, fd: impl Into<OwnedFd>) -> i32 {
        let fd = fd.into();
        let raw = fd.as_raw_fd();
        self.fds.push(fd);
        raw
    }

    fn raw(&self) -> Vec<RawFd> {
        self.fds.iter().map(|f| f.as_raw_fd()).collect()
    }
}

/// Starts the monitor binary `bin` with the configuration `config` in a new session, handing
/// it the descriptors in `handoff` (closed in the daemon once the monitor has them).
/// Returns the process and a task handle that reaps it.
pub fn spawn(
    bin: &Path,
    paths: &VmmPaths,
    config: &VmConfig,
    handoff: Handoff,
) -> Result<Process, SupervisorError> {
    let text = serde_json::to_vec_pretty(config)
        .map_err(|e| SupervisorError::Write(paths.config.display().to_string(), e.into()))?;
    std::fs::write(&paths.config, text)
        .map_err(|e| SupervisorError::Write(paths.config.display().to_string(), e))?;
    // No stale control socket or exit record to remove: the handoff bound the one and
    // truncated the other, and the monitor holds them as descriptors.
    let stderr = std::fs::File::create(&paths.stderr)
        .map_err(|e| SupervisorError::Write(paths.stderr.display().to_string(), e))?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--config")
        .arg(&paths.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(false);
    let inherited = handoff.raw();
    // SAFETY: setsid and fcntl are async-signal-safe; the closure reads only `inherited`,
    // allocated before the fork, and touches no other memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for &fd in &inherited {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| SupervisorError::Spawn(bin.display().to_string(), e))?;
    drop(handoff);
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    // Reap the child when it exits; its status is read from the exit file, which also works
    // for monitors adopted after a restart.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let start = start_time(pid).unwrap_or(0);
    Ok(Process { pid, start })
}

/// Monitors started with the configuration file `config` (an argument of their command
/// line) other than `keep` and its children: after a crash between starting a monitor and
/// recording its PID, the monitor runs on unrecorded, and booting the instance again would
/// give it a second one. `config` is compared as the daemon passes it.
pub fn strays(config: &Path, keep: Option<i32>) -> Vec<i32> {
    let want = config.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| Some(pid) != keep)
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|arg| arg == want))
                .unwrap_or(false)
        })
        .filter(|&pid| keep.is_none() || parent(pid) != keep)
        .collect()
}

/// The parent of a process, if it exists.
fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The start time of a process, if it exists.
pub fn start_time(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process is still this monitor and not a zombie.
pub fn alive(p: Process) -> bool {
    if p.pid <= 0 || start_time(p.pid) != Some(p.start) {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .unwrap_or("X");
    !matches!(state, "Z" | "X" | "x")
}

/// The process that runs the VM: a jailed monitor's keeper has it as its only child; an
/// unjailed monitor runs it itself.
pub fn vm_pid(p: Process) -> i32 {
    std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", p.pid))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .unwrap_or(p.pid)
}

/// The number of live vCPU threads (`vcpuN`) of a monitor.
pub fn vcpu_threads(p: Process) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{}/task", vm_pid(p))) else {
        return 0;
    };
    dir.flatten()
        .filter(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .unwrap_or("X");
            comm.trim_end().starts_with("vcpu") && !matches!(state, "Z" | "X" | "x")
        })
        .count()
}

/// Waits until the process has exited, then reads its exit record.
pub async fn wait_exit(p: Process, exit_status: &Path) -> Exit {
    if alive(p) {
        match pidfd(p.pid) {
            Some(fd) => {
                // Recheck after opening: the PID may have been reused in between.
                if alive(p) {
                    // SAFETY: the AsyncFd owns the OwnedFd, whose descriptor stays open and
                    // the same until the AsyncFd is dropped.
                    let registered = unsafe {
                        AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
                    };
                    if let Ok(afd) = registered {
                        let _ = afd.readable().await;
                    }
                }
            }
            None => {
                while alive(p) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    read_exit(exit_status)
}

/// Reads the exit record a monitor left; none means it was killed.
pub fn read_exit(exit_status: &Path) -> Exit {
    match ExitRecord::read(exit_status) {
        Some(r) => Exit {
            status: r.status(),
            reason: r.reason,
        },
        None => Exit {
            status: None,
            reason: "the monitor process was killed".to_string(),
        },
    }
}

fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a PID and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends SIGKILL to the monitor if it is still this process.
pub fn kill(p: Process) {
    if alive(p) {
        // SAFETY: kill takes a PID and a signal number; the PID was checked to be the monitor.
        unsafe {
            libc::kill(p.pid, libc::SIGKILL);
        }
    }
}

/// A typed client of one monitor's control socket: each call connects, sends one request
/// and reads one reply within the client's deadline.
#[derive(Debug, Clone)]
pub struct Monitor {
    socket: PathBuf,
    timeout: Duration,
}

impl Monitor {
    /// The monitor whose control socket is `paths.api`, with `timeout` for each call.
    pub fn new(paths: &VmmPaths, timeout: Duration) -> Self {
        Self {
            socket: paths.api.clone(),
            timeout,
        }
    }

    /// One request, its reply read as `T`.
    async fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T, SupervisorError> {
        self.call_with(request, None).await
    }

    /// One request with `fd` sent along as `SCM_RIGHTS` (in the same message as the line's
    /// bytes), its reply read as `T`.
    async fn call_with<T: DeserializeOwned>(
        &self,
        request: Request,
        fd: Option<&OwnedFd>,
    ) -> Result<T, SupervisorError> {
        let op = request.op();
        let err = |e: std::io::Error| SupervisorError::Api(self.socket.display().to_string(), e);
        let exchange = async {
            let mut stream = UnixStream::connect(&self.socket).await?;
            let mut line = request.encode().into_bytes();
            line.push(b'\n');
            if let Some(fd) = fd {
                let sent = loop {
                    stream.writable().await?;
                    match stream.try_io(tokio::io::Interest::WRITABLE, || {
                        send_with_fd(stream.as_raw_fd(), &line, fd.as_raw_fd())
                    }) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        other => break other?,
                    }
                };
                line.drain(..sent);
            }
            stream.write_all(&line).await?;
            let mut reader = BufReader::new(stream);
            let mut reply = String::new();
            reader.read_line(&mut reply).await?;
            Ok::<String, std::io::Error>(reply)
        };
        let reply = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "timed out",
                ))
            })?
            .map_err(err)?;
        control::decode_reply(&reply).map_err(|e| match e {
            control::ReplyError::Refused(message) => SupervisorError::Refused { op, message },
            control::ReplyError::Malformed(source) => SupervisorError::Malformed { op, source },
        })
    }

    /// The VM's state and size.
    pub async fn state(&self) -> Result<StateReply, SupervisorError> {
        self.call(Request::State {}).await
    }

    /// Exit and device counters.
    pub async fn counters(&self) -> Result<Counters, SupervisorError> {
        self.call(Request::Counters {}).await
    }

    /// The teaching lab's view: memory map, bus accesses, virtqueues, boot milestones.
    pub async fn lab(&self) -> Result<strato_vmm_api::control::Lab, SupervisorError> {
        self.call(Request::Lab {}).await
    }

    /// Parks the vCPUs.
    pub async fn pause(&self) -> Result<StateOnly, SupervisorError> {
        self.call(Request::Pause {}).await
    }

    /// Unparks the vCPUs.
    pub async fn resume(&self) -> Result<StateOnly, SupervisorError> {
        self.call(Request::Resume {}).await
    }

    /// Ends the VM now.
    pub async fn stop(&self) -> Result<StateOnly, SupervisorError> {
        self.call(Request::Stop {}).await
    }

    /// Presses Ctrl-Alt-Del on the guest's keyboard.
    pub async fn ctrl_alt_del(&self) -> Result<(), SupervisorError> {
        self.call::<Done>(Request::CtrlAltDel {}).await.map(drop)
    }

    /// Presses the guest's ACPI power button.
    pub async fn power_button(&self) -> Result<(), SupervisorError> {
        self.call::<Done>(Request::PowerButton {}).await.map(drop)
    }

    /// Puts a file into an empty drive slot: the daemon opens it (read-only for a read-only
    /// drive) and sends the descriptor with the request, since a jailed monitor opens no
    /// path.
    pub async fn attach_drive(
        &self,
        slot: &str,
        path: &Path,
        readonly: bool,
    ) -> Result<(), SupervisorError> {
        let file = open_drive(path, readonly)
            .map_err(|e| SupervisorError::Write(path.display().to_string(), e))?;
        let request = Request::AttachDrive {
            id: slot.to_string(),
            path: None,
            readonly,
        };
        self.call_with::<Done>(request, Some(&OwnedFd::from(file)))
            .await
            .map(drop)
    }

    /// Empties a drive slot.
    pub async fn detach_drive(&self, slot: &str) -> Result<(), SupervisorError> {
        self.call::<Done>(Request::DetachDrive {
            id: slot.to_string(),
        })
        .await
        .map(drop)
    }

    /// Console output from byte position `from`.
    pub async fn console(&self, from: Option<u64>) -> Result<ConsoleChunk, SupervisorError> {
        self.call(Request::Console { from }).await
    }

    /// Queues bytes for the guest's serial line; answers how many fitted the input queue.
    pub async fn console_input(&self, data: &[u8]) -> Result<u64, SupervisorError> {
        self.call::<InputAccepted>(Request::ConsoleInput {
            data: data.to_vec(),
        })
        .await
        .map(|a| a.accepted)
    }

    /// Queues a BREAK on the guest's serial line, behind the input already queued. The
    /// monitor refuses it while its input queue is full.
    pub async fn console_break(&self) -> Result<(), SupervisorError> {
        self.call::<Done>(Request::ConsoleBreak {}).await.map(drop)
    }
}

/// Opens a drive's image for a monitor: read-only for a read-only drive.
pub fn open_drive(path: &Path, readonly: bool) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(!readonly)
        .open(path)
}

/// One `sendmsg` of `bytes` with `fd` as `SCM_RIGHTS`; returns the bytes sent.
fn send_with_fd(sock: RawFd, bytes: &[u8], fd: RawFd) -> std::io::Result<usize> {
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: fills one SCM_RIGHTS header and its one descriptor inside `control`, which
    // CMSG_SPACE(4) fits.
    unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        libc::CMSG_DATA(c).cast::<libc::c_int>().write_unaligned(fd);
    }
    // SAFETY: `msg` is valid for the call; the socket is nonblocking.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Runs `strato-vmm --check-jail`: `Ok` with its report when every layer a jail needs
/// works on this host, `Err` with the report (or why it could not run) otherwise.
pub fn check_jail(bin: &Path) -> Result<String, String> {
    let out = std::process::Command::new(bin)
        .arg("--check-jail")
        .output()
        .map_err(|e| format!("cannot run {} --check-jail: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// An empty mount namespace for jails to start from (`strato-vmm --serve-empty-mount-ns`):
/// each jail's own mount namespace is then a copy of it rather than of the host's whole
/// mount table. The namespace lives as long as the returned descriptor.
pub fn empty_mount_ns(bin: &Path) -> Result<OwnedFd, SupervisorError> {
    use std::io::BufRead;
    let spawn_err =
        |e| SupervisorError::Spawn(format!("{} --serve-empty-mount-ns", bin.display()), e);
    let mut child = std::process::Command::new(bin)
        .arg("--serve-empty-mount-ns")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let ns = if line.trim() == "ready" {
        std::fs::File::open(format!("/proc/{}/ns/mnt", child.id())).map(OwnedFd::from)
    } else {
        Err(std::io::Error::other("it did not get ready"))
    };
    // Closing its standard input lets it exit; the namespace stays with `ns`.
    drop(child.stdin.take());
    let _ = child.wait();
    ns.map_err(spawn_err)
}

/// Waits until a freshly spawned monitor answers `state` with `running`, or fails.
pub async fn wait_up(
    p: Process,
    paths: &VmmPaths,
    timeout: Duration,
) -> Result<(), SupervisorError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let monitor = Monitor::new(paths, Duration::from_millis(500));
    loop {
        if let Ok(s) = monitor.state().await {
            if s.state == VmState::Running {
                return Ok(());
            }
        }
        if !alive(p) {
            let exit = read_exit(&paths.exit_status);
            let log = std::fs::read_to_string(&paths.stderr).unwrap_or_default();
            let last = log.lines().last().unwrap_or("").to_string();
            let reason = if last.is_empty() { exit.reason } else { last };
            return Err(SupervisorError::EarlyExit(reason));
        }
        if tokio::time::Instant::now() > deadline {
            kill(p);
            return Err(SupervisorError::EarlyExit(
                "it did not come up in time".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The monitor's choice of CPU template for this host, from `strato-vmm
/// --detect-cpu-template` (it knows which instructions this host's KVM refuses), and why.
pub fn detect_cpu_template(bin: &Path) -> Result<(CpuTemplate, String), SupervisorError> {
    let out = std::process::Command::new(bin)
        .arg("--detect-cpu-template")
        .output()
        .map_err(|e| SupervisorError::Spawn(bin.display().to_string(), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (name, reason) = text.trim().split_once('\t').unwrap_or((text.trim(), ""));
    let template = name
        .parse()
        .map_err(|e: UnknownTemplate| SupervisorError::Detect(e.to_string()))?;
    Ok((template, reason.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_identifies_this_process() {
        let me = std::process::id() as i32;
        let st = start_time(me).unwrap();
        assert!(alive(Process { pid: me, start: st }));
        assert!(!alive(Process {
            pid: me,
            start: st + 1
        }));
        assert!(!alive(Process { pid: -1, start: 0 }));
    }

    #[test]
    fn strays_are_the_processes_naming_the_config_other_than_the_kept_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("i-0123/vmm.json");
        let other = dir.path().join("i-4567/vmm.json");
        // Stand-ins for monitors: their command lines carry the config path as an argument,
        // as the daemon starts them.
        let spawn = |path: &Path| {
            // `read` is a builtin: the shell stays the process (no exec, no child left).
            std::process::Command::new("sh")
                .args(["-c", "read x", "monitor"])
                .arg(path)
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut kept = spawn(&config);
        let mut stray = spawn(&config);
        let mut unrelated = spawn(&other);
        let (k, s, u) = (kept.id() as i32, stray.id() as i32, unrelated.id() as i32);
        let found = strays(&config, Some(k));
        assert!(found.contains(&s), "{found:?} lacks the stray {s}");
        assert!(!found.contains(&k), "{found:?} holds the kept monitor {k}");
        assert!(
            !found.contains(&u),
            "{found:?} holds another instance's monitor {u}"
        );
        // Seen once in the whole suite under load (2026-12-03, not reproduced in 20 runs
        // since): a stand-in missing from this second scan right after the first found it.
        // The cause is not known; the message shows what the scans see if it recurs.
        let mut all = strays(&config, None);
        for _ in 0..20 {
            if all.contains(&k) && all.contains(&s) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            all = strays(&config, None);
        }
        assert!(
            all.contains(&k) && all.contains(&s) && !all.contains(&u),
            "{all:?}: want {k} and {s}, not {u}"
        );
        for c in [&mut kept, &mut stray, &mut unrelated] {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(strays(&config, None).is_empty());
    }

    #[test]
    fn missing_exit_file_means_killed() {
        let e = read_exit(Path::new("/nonexistent/exit.json"));
        assert_eq!(e.status, None);
    }

    #[tokio::test]
    async fn waits_for_an_adopted_process() {
        let child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let p = Process {
            pid,
            start: start_time(pid).unwrap(),
        };
        // Reap from another thread, as init would for an adopted monitor.
        let reaper = std::thread::spawn(move || {
            let mut child = child;
            child.wait().unwrap()
        });
        let exit = tokio::time::timeout(
            Duration::from_secs(5),
            wait_exit(p, Path::new("/nonexistent")),
        )
        .await
        .unwrap();
        assert_eq!(exit.status, None);
        reaper.join().unwrap();
    }
}
