//! Daemon restarts: running VMs keep running and are adopted again; a monitor that ended
//! while the daemon was down is reported, not forgotten; a guest that powered off meanwhile
//! is stopped as its shutdown behavior says.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use strato_e2e::Daemon;

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
    assert!(d.console(&ids[0]).contains("probe: ctrl-alt-del"));
    // And the dead one recovers with stop and start.
    d.cli(&["stop-instances", "--instance-ids", &ids[1], "--wait"]);
    d.cli(&["start-instances", "--instance-ids", &ids[1], "--wait"]);
    d.wait_status(&ids[1], ("ok", "ok"), T);
    assert!(d.log().contains("monitor adopted"));
}
