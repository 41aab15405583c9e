//! Daemon restarts: running VMs keep running and are adopted again; a monitor that ended
//! while the daemon was down is reported, not forgotten; a guest that powered off meanwhile
//! is stopped as its shutdown behavior says. One daemon per data directory: a second one is
//! refused with the first one's PID, and a stopped daemon leaves no socket behind. A monitor
//! that does not answer when the daemon starts is adopted all the same and judged by the
//! status check, not killed; one that no record names (started just before a crash) is.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strato_e2e::{bin, Daemon};

const T: Duration = Duration::from_secs(30);

#[test]
fn restart_adopts_running_vms_and_reports_dead_ones() {
    let mut d = Daemon::start("restart");
    let ami = d.register_probe("probe");
    let ids = d.run(&ami, &["--count", "3"]);
    for id in &ids {
        d.wait_state(id, "running", T);
        d.wait_status(id, ("ok", "ok"), T);
    }
    let before = d.vmm_pids();
    assert_eq!(before.len(), 3);

    d.stop_daemon();
    // While the daemon is down: one monitor dies.
    let victim_pid = {
        let dir = d.data().join("instances").join(&ids[1]);
        let cfg = std::fs::read_to_string(dir.join("vm.json")).unwrap();
        // The monitor got its control socket as a descriptor (the daemon bound it).
        assert!(cfg.contains("api_socket_fd"), "{cfg}");
        // Find the monitor serving this instance's socket.
        *before
            .iter()
            .find(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .unwrap_or_default()
                    .contains(&ids[1])
            })
            .unwrap()
    };
    // SAFETY: kill takes a PID and a signal; the PID is this test's monitor.
    unsafe { libc::kill(victim_pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    d.restart();

    // The other two were adopted: same processes, still running, status ok.
    let after = d.vmm_pids();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|p| before.contains(p)));
    for id in [&ids[0], &ids[2]] {
        assert_eq!(d.state(id), "running");
        d.wait_status(id, ("ok", "ok"), T);
    }
    // The dead one is still listed, with its system status impaired and the reason kept.
    assert_eq!(d.state(&ids[1]), "running");
    d.wait_status(&ids[1], ("impaired", "*"), T);
    let reason = d.instance(&ids[1]).to_string();
    assert!(reason.contains("while the daemon was down"), "{reason}");

    // Adopted VMs are fully managed: a graceful stop works after the restart.
    d.cli(&["stop-instances", "--instance-ids", &ids[0], "--wait"]);
    assert!(d.console(&ids[0]).contains("probe: power-button\n"));
    // And the dead one recovers with stop and start.
    d.cli(&["stop-instances", "--instance-ids", &ids[1], "--wait"]);
    d.cli(&["start-instances", "--instance-ids", &ids[1], "--wait"]);
    d.wait_status(&ids[1], ("ok", "ok"), T);
    assert!(d.log().contains("monitor adopted"));
}

#[test]
fn one_daemon_per_data_directory() {
    let mut d = Daemon::start("datadir");
    let pid = d.pid().unwrap();
    assert!(
        d.log().contains(&format!("stratod: ready (pid {pid})")),
        "{}",
        d.log()
    );
    let lock = std::fs::read_to_string(d.data().join("stratod.lock")).unwrap();
    assert_eq!(lock.trim(), pid.to_string());

    // A second daemon on the same data directory (another socket) refuses to start.
    let other = d.dir.join("other.sock");
    let mut second = Command::new("ip")
        .args(["netns", "exec", &d.ns])
        .arg(bin("stratod"))
        .arg("--data-dir")
        .arg(d.data())
        .arg("--listen")
        .arg(format!("unix:{}", other.display()))
        .arg("--config")
        .arg(d.dir.join("config.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second daemon on the same data directory kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("in use by another stratod (pid {pid})")),
        "{err}"
    );
    assert!(!other.exists(), "the refused daemon made a socket");
    // The first one is untouched.
    d.cli(&["describe-regions"]);

    // Stopped, it leaves no socket (nor a lock holder); started again, it serves.
    d.stop_daemon();
    assert!(!d.socket.exists(), "the socket outlived the daemon");
    d.restart();
    d.cli(&["describe-regions"]);
}

#[test]
fn a_monitor_that_does_not_answer_is_adopted_not_killed() {
    let mut d = Daemon::start("adopt");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    d.wait_status(&id, ("ok", "*"), T);
    let pids = d.vmm_pids();
    assert_eq!(pids.len(), 1);
    let pid = pids[0];

    // A stopped process keeps its socket but answers nothing. A jailed monitor runs as
    // its keeper's child, so the whole tree is stopped.
    d.stop_daemon();
    let tree = Daemon::monitor_tree(pid);
    assert!(
        tree.len() >= 2,
        "the monitor {pid} was not jailed: {tree:?}"
    );
    Daemon::signal_monitor(pid, libc::SIGSTOP);
    d.restart();
    assert_eq!(
        d.vmm_pids(),
        vec![pid],
        "the monitor was killed:\n{}",
        d.log()
    );
    assert_eq!(d.state(&id), "running");
    d.wait_status(&id, ("impaired", "*"), T);

    // Once it answers again, the check says so; nothing was lost.
    Daemon::signal_monitor(pid, libc::SIGCONT);
    d.wait_status(&id, ("ok", "*"), T);
    assert_eq!(d.vmm_pids(), vec![pid]);
}

#[test]
fn an_unrecorded_monitor_is_killed_and_the_recorded_one_adopted() {
    let mut d = Daemon::start("stray");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    let pids = d.vmm_pids();
    assert_eq!(pids.len(), 1);

    // A crash between starting a monitor and recording its PID leaves one running that no
    // record names, on the instance's configuration: a stand-in with that command line.
    d.kill_daemon();
    let config = d.data().join("instances").join(&id).join("vm.json");
    assert!(config.exists(), "{} is missing", config.display());
    let mut stray = Command::new("ip")
        .args([
            "netns",
            "exec",
            &d.ns,
            "sh",
            "-c",
            "read x",
            "strato-vmm",
            "--config",
        ])
        .arg(&config)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stray_pid = stray.id() as i32;
    std::thread::sleep(Duration::from_millis(200));
    let want = config.display().to_string();
    let cmdline = std::fs::read(format!("/proc/{stray_pid}/cmdline")).unwrap_or_default();
    assert!(
        cmdline.split(|b| *b == 0).any(|a| a == want.as_bytes()),
        "the stand-in does not name {want}"
    );

    d.start_again();
    let deadline = Instant::now() + T;
    // The daemon SIGKILLs it during its start-up; reap it here, its parent.
    loop {
        if let Some(st) = stray.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(st.signal(), Some(libc::SIGKILL), "{st}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unrecorded monitor still runs:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        d.log().contains("killing an unrecorded monitor"),
        "{}",
        d.log()
    );
    // The recorded monitor was adopted, not touched.
    assert_eq!(d.vmm_pids(), pids);
    assert_eq!(d.state(&id), "running");
    d.wait_status(&id, ("ok", "*"), T);
}
