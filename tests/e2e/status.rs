//! Status checks against live VMs: ok once the guest answers ARP; impaired system status
//! within two intervals of the monitor being killed, ok again after stop and start;
//! impaired instance status when the guest stops answering ARP.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use strato_e2e::{now, Daemon};

const T: Duration = Duration::from_secs(30);

#[test]
fn killed_monitor_impairs_system_status_until_stop_and_start() {
    let d = Daemon::start("status");
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    let s = d.wait_status(&id, ("ok", "ok"), T);
    assert_eq!(s["SystemStatus"]["Details"][0]["Name"], "reachability");
    assert_eq!(s["SystemStatus"]["Details"][0]["Status"], "passed");

    let pids = d.vmm_pids();
    assert_eq!(pids.len(), 1);
    // SAFETY: kill takes a PID and a signal; the PID is this test's monitor.
    unsafe { libc::kill(pids[0], libc::SIGKILL) };
    let killed_at = std::time::Instant::now();
    let s = d.wait_status(&id, ("impaired", "*"), Duration::from_secs(10));
    // The interval is one second: impaired within two intervals (plus the CLI's own time).
    assert!(
        killed_at.elapsed() < Duration::from_millis(3500),
        "{:?}",
        killed_at.elapsed()
    );
    assert_eq!(s["SystemStatus"]["Details"][0]["Status"], "failed");
    let since = s["SystemStatus"]["Details"][0]["ImpairedSince"]
        .as_str()
        .unwrap_or("");
    assert!(since.starts_with("20"), "{s}");
    // EC2 keeps the instance running; its state reason says what happened.
    assert_eq!(d.state(&id), "running");
    assert!(d.instance(&id).to_string().contains("monitor exited"));

    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    d.wait_status(&id, ("ok", "ok"), T);
    let _ = now();
}

#[test]
fn silent_guest_impairs_instance_status_only() {
    let d = Daemon::start("silent");
    let ami = d.register_probe("probe");
    // The probe answers a few ARP requests, then goes quiet. Enough of them that `ok` lasts
    // several one-second rounds (a round's probe may be answered more than once by a slow
    // guest), so that polling sees it on a loaded host too.
    let ud = d.file("ud.txt", b"net-silent-after 10\n");
    let id = d.run(&ami, &["--user-data", &format!("file://{}", ud.display())])[0].clone();
    d.wait_state(&id, "running", T);
    d.wait_status(&id, ("ok", "ok"), T);
    let s = d.wait_status(&id, ("ok", "impaired"), T);
    assert_eq!(s["InstanceStatus"]["Details"][0]["Status"], "failed");
    assert!(d.console(&id).contains("probe: net silent"));
    // Stopped instances have no status checks.
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    let (sys, inst) = d.status(&id);
    assert_eq!(
        (sys.as_str(), inst.as_str()),
        ("not-applicable", "not-applicable")
    );
    let v = d.json(&["describe-instance-status"]);
    assert!(
        v["InstanceStatuses"]
            .as_array()
            .map(|a| a.is_empty())
            .unwrap_or(true),
        "{v}"
    );
}
