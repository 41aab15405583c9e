//! The jail end to end: a VM the daemon starts runs as a uid of its own with no capabilities,
//! seccomp on every thread, no_new_privs, an empty root and namespaces of its own; hot attach
//! and detach work through descriptor passing, before and after a daemon restart; and a
//! daemon told `"jail": false` says so and runs VMs unconfined.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use strato_e2e::*;

const T: Duration = Duration::from_secs(30);
const GIB: u64 = 1 << 30;

/// The `Key:` field of a /proc status file.
fn field(path: &str, key: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {path}"))
        .trim()
        .to_string()
}

/// The process running the VM behind keeper `pid`.
fn vm_of(keeper: i32) -> i32 {
    let children =
        std::fs::read_to_string(format!("/proc/{keeper}/task/{keeper}/children")).unwrap();
    children
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("keeper {keeper} has no child"))
        .parse()
        .unwrap()
}

fn ns(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// The user namespace that owns process `pid`'s network namespace (NS_GET_USERNS).
fn net_ns_owner(pid: &str) -> String {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    let net = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor or -1.
    let fd = unsafe { libc::ioctl(net.as_raw_fd(), NS_GET_USERNS) };
    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: the descriptor was just returned to this process and nothing else owns it.
    let owner = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::read_link(format!("/proc/self/fd/{}", owner.as_raw_fd()))
        .unwrap()
        .display()
        .to_string()
}

/// Checks every jail property of the VM process `vm`; returns its uid.
fn assert_jailed(vm: i32) -> u32 {
    let status = format!("/proc/{vm}/status");
    let uid: u32 = field(&status, "Uid")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((200_000..300_000).contains(&uid), "uid {uid}");
    let ids = format!("{uid}\t{uid}\t{uid}\t{uid}");
    assert_eq!(field(&status, "Uid"), ids);
    assert_eq!(field(&status, "Gid"), ids);
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&status, caps), "0000000000000000", "{caps}");
    }
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    let mut vcpus = 0;
    for t in std::fs::read_dir(format!("/proc/{vm}/task"))
        .unwrap()
        .flatten()
    {
        let st = t.path().join("status").display().to_string();
        assert_eq!(field(&st, "Seccomp"), "2", "{st}");
        vcpus += std::fs::read_to_string(t.path().join("comm"))
            .unwrap()
            .starts_with("vcpu") as usize;
    }
    assert!(vcpus >= 1);
    assert!(field(&status, "NSpid").ends_with("\t1"));
    let pid = vm.to_string();
    for kind in ["mnt", "pid", "net", "ipc", "uts", "user"] {
        assert_ne!(ns(&pid, kind), ns("self", kind), "{kind} namespace");
    }
    let root = format!("/proc/{vm}/root");
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "a non-empty root"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{vm}/mountinfo")).unwrap();
    assert_eq!(mounts.lines().count(), 1, "{mounts}");
    uid
}

fn wait_count(d: &Daemon, id: &str, needle: &str, n: usize) -> String {
    let deadline = Instant::now() + T;
    loop {
        let c = d.console(id);
        if c.matches(needle).count() >= n {
            return c;
        }
        assert!(Instant::now() < deadline, "{n} x {needle:?} not in:\n{c}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn attach(d: &Daemon, vol: &str, id: &str) {
    let a = d.json(&[
        "attach-volume",
        "--volume-id",
        vol,
        "--instance-id",
        id,
        "--device",
        "/dev/vdf",
    ]);
    assert_eq!(a["State"], "attached", "{a}");
}

fn detach(d: &Daemon, vol: &str, id: &str) {
    d.cli(&["detach-volume", "--volume-id", vol, "--instance-id", id]);
    let deadline = Instant::now() + T;
    loop {
        let v = d.json(&["describe-volumes", "--volume-ids", vol]);
        if v["Volumes"][0]["State"] == "available" {
            return;
        }
        assert!(Instant::now() < deadline, "{vol} stays attached: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn daemon_started_vms_are_jailed_each_as_its_own_user() {
    let mut d = Daemon::start("jail");
    assert!(d.log().contains("monitors are jailed"), "{}", d.log());
    let ami = d.register_probe("probe");
    let ids = d.run(&ami, &["--count", "2"]);
    for id in &ids {
        d.wait_state(id, "running", T);
        d.wait_console(id, "probe: idle", T);
    }
    let keepers = d.vmm_pids();
    assert_eq!(keepers.len(), 2, "{keepers:?}");
    let uids: Vec<u32> = keepers.iter().map(|k| assert_jailed(vm_of(*k))).collect();
    assert_ne!(uids[0], uids[1], "two running VMs share a uid");
    // Each VM has a network namespace of its own (made ahead by the daemon's pool, or by
    // the jail when the pool ran dry), never one shared with the other VM or the daemon.
    let nets: Vec<String> = keepers
        .iter()
        .map(|k| ns(&vm_of(*k).to_string(), "net"))
        .collect();
    assert_ne!(
        nets[0], nets[1],
        "two running VMs share a network namespace"
    );
    let daemon = d.pid().unwrap().to_string();
    assert_ne!(nets[0], ns(&daemon, "net"));
    // The first launches find the pool full: their namespaces were made by the daemon (owned
    // by its user namespace, where the jailed monitor has no rights), not by the jail.
    for k in &keepers {
        assert_eq!(
            net_ns_owner(&vm_of(*k).to_string()),
            ns(&daemon, "user"),
            "the VM's network namespace was not made ahead"
        );
    }
    // The keepers (the daemon's children) hold nothing either, and sit in the empty mount
    // namespace the daemon made for jails to start from.
    for k in &keepers {
        let st = format!("/proc/{k}/status");
        assert_eq!(field(&st, "CapEff"), "0000000000000000");
        assert_eq!(field(&st, "Seccomp"), "2");
        let mounts = std::fs::read_to_string(format!("/proc/{k}/mountinfo")).unwrap();
        assert_eq!(mounts.lines().count(), 1, "{mounts}");
    }

    // Hot attach and detach: the daemon sends the volume's descriptor.
    let id = &ids[0];
    let v = d.json(&[
        "create-volume",
        "--size",
        "1",
        "--availability-zone",
        "home-1a",
    ]);
    let vol = v["VolumeId"].as_str().unwrap().to_string();
    attach(&d, &vol, id);
    wait_count(&d, id, &format!(" size {GIB} sum "), 2);
    detach(&d, &vol, id);

    // After a restart the daemon adopts the jailed VMs and attaches to them as before.
    d.restart();
    assert_eq!(d.state(id), "running");
    let mut after = d.vmm_pids();
    after.sort();
    let mut before = keepers.clone();
    before.sort();
    assert_eq!(after, before, "the monitors were not adopted");
    attach(&d, &vol, id);
    wait_count(&d, id, &format!(" size {GIB} sum "), 3);
    detach(&d, &vol, id);

    // A stop and a start keep the instance's uid.
    let uid_of = |d: &Daemon, id: &str| -> u32 {
        let deadline = Instant::now() + T;
        loop {
            let found = d.vmm_pids().into_iter().find_map(|k| {
                let vm = vm_of(k);
                let cmd = std::fs::read_to_string(format!("/proc/{vm}/cmdline")).ok()?;
                cmd.contains(id).then(|| assert_jailed(vm))
            });
            if let Some(u) = found {
                return u;
            }
            assert!(Instant::now() < deadline, "no monitor for {id}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let uid = uid_of(&d, id);
    d.cli(&["stop-instances", "--instance-ids", id, "--wait"]);
    d.cli(&["start-instances", "--instance-ids", id, "--wait"]);
    assert_eq!(uid_of(&d, id), uid);
    let mut args = vec!["terminate-instances", "--wait", "--instance-ids"];
    args.extend(ids.iter().map(String::as_str));
    d.cli(&args);
}

#[test]
fn jail_false_runs_vms_unconfined_and_says_so() {
    let mut config = fast_config();
    config["jail"] = serde_json::json!(false);
    let d = Daemon::start_with("nojail", config);
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[])[0].clone();
    d.wait_state(&id, "running", T);
    let log = d.log();
    assert!(log.contains("WITHOUT the jail"), "{log}");
    assert!(
        log.matches("launching a monitor WITHOUT the jail").count() >= 1,
        "{log}"
    );
    let pids = d.vmm_pids();
    assert_eq!(pids.len(), 1);
    let status = format!("/proc/{}/status", pids[0]);
    assert!(field(&status, "Uid").starts_with("0\t"));
    assert_eq!(field(&status, "Seccomp"), "0");
    // Hot attach works unjailed too (the daemon passes descriptors either way).
    let v = d.json(&[
        "create-volume",
        "--size",
        "1",
        "--availability-zone",
        "home-1a",
    ]);
    let vol = v["VolumeId"].as_str().unwrap().to_string();
    attach(&d, &vol, &id);
    wait_count(&d, &id, &format!(" size {GIB} sum "), 2);
    d.cli(&["terminate-instances", "--instance-ids", &id, "--wait"]);
}
