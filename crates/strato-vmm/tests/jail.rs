//! KVM tests of the jail: what a jailed monitor is left with, and that a system call outside
//! a thread's seccomp allow-list ends it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

const BOOT: Duration = Duration::from_secs(60);

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A uid of this test run's own, so that the check below sees the configured one.
fn test_uid() -> u32 {
    40_000 + std::process::id() % 10_000
}

fn ns(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

fn assert_confined(pid: &str, uid: u32, what: &str) {
    let status = format!("/proc/{pid}/status");
    let ids = format!("{uid}\t{uid}\t{uid}\t{uid}");
    assert_eq!(status_field(&status, "Uid"), ids, "{what} uid");
    assert_eq!(status_field(&status, "Gid"), ids, "{what} gid");
    assert_eq!(status_field(&status, "Groups"), "", "{what} groups");
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status_field(&status, caps),
            "0000000000000000",
            "{what} {caps}"
        );
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{what}");
    // Every thread, not only the main one, runs under a filter.
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .collect();
    for t in &tasks {
        let st = t.path().join("status").display().to_string();
        assert_eq!(status_field(&st, "Seccomp"), "2", "{what} thread {st}");
    }
}

#[test]
fn a_jailed_monitor_keeps_nothing_of_the_host() {
    let dir = Scratch::new("jailed");
    let disk = dir.path("disk.img");
    std::fs::write(&disk, vec![7u8; 1 << 20]).unwrap();
    let uid = test_uid();
    let mut vm = Vm::start_unjailed(
        &dir,
        "vmlinux",
        "",
        &s(&[
            &format!("--jail=uid={uid},gid={uid}"),
            "--cpus",
            "2",
            "--disk",
            &format!("path={}", disk.display()),
        ]),
        None,
    );
    vm.wait_for("probe: idle", BOOT);
    let keeper = vm.child.id().to_string();
    let monitor = vm.vm_pid().to_string();

    assert_confined(&monitor, uid, "monitor");
    assert_confined(&keeper, uid, "keeper");
    // Both vCPU threads are there, filtered (checked above with every other thread, KVM's
    // own workers included).
    let vcpus = std::fs::read_dir(format!("/proc/{monitor}/task"))
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .unwrap()
                .starts_with("vcpu")
        })
        .count();
    assert_eq!(vcpus, 2);

    // PID 1 of a PID namespace of its own.
    let nspid = status_field(&format!("/proc/{monitor}/status"), "NSpid");
    assert!(nspid.ends_with("\t1"), "NSpid {nspid}");
    for kind in ["mnt", "pid", "net", "ipc", "uts", "user"] {
        assert_ne!(
            ns(&monitor, kind),
            ns("self", kind),
            "{kind} namespace shared with the host"
        );
    }
    // Its root is an empty file system, not the host's.
    let root = format!("/proc/{monitor}/root");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    use std::os::unix::fs::MetadataExt;
    let host = std::fs::metadata("/").unwrap();
    let jail = std::fs::metadata(&root).unwrap();
    assert_ne!((jail.dev(), jail.ino()), (host.dev(), host.ino()));
    let mounts = std::fs::read_to_string(format!("/proc/{monitor}/mountinfo")).unwrap();
    assert_eq!(mounts.lines().count(), 1, "{mounts}");
    assert!(mounts.contains(" tmpfs "), "{mounts}");
    // Only the VM's own descriptors are open.
    let fds = std::fs::read_dir(format!("/proc/{monitor}/fd"))
        .unwrap()
        .count();
    assert!(fds < 40, "{fds} descriptors");

    // It still works: the disk, the API, a clean stop.
    assert!(vm.console_text().contains("probe: disk vda size 1048576"));
    assert_eq!(vm.api(r#"{"op":"state"}"#)["state"], "running");
    vm.api(r#"{"op":"stop"}"#);
    assert_eq!(vm.wait_exit(Duration::from_secs(10)).code(), Some(4));
}

/// Starts a jailed VM whose threads of `kind` make a forbidden system call.
fn violate(kind: &str) -> (Vm, Scratch) {
    let dir = Scratch::new(&format!("seccomp-{kind}"));
    let exit = dir.path("exit.json").display().to_string();
    let vm = Vm::start(
        &dir,
        "vmlinux",
        "",
        &s(&[
            &format!("--test-seccomp-violation={kind}"),
            "--exit-status-file",
            &exit,
        ]),
        None,
    );
    (vm, dir)
}

#[test]
fn a_forbidden_system_call_on_a_vcpu_or_the_event_loop_ends_the_monitor() {
    for kind in ["vcpu", "event-loop"] {
        let (mut vm, dir) = violate(kind);
        let st = vm.wait_exit(BOOT);
        assert_eq!(st.code(), Some(128 + libc::SIGSYS), "{kind}: {st}");
        let record = std::fs::read_to_string(dir.path("exit.json")).unwrap();
        assert!(record.contains("SIGSYS"), "{kind}: {record}");
        assert!(record.contains("\"code\":1"), "{kind}: {record}");
        let stderr = std::fs::read_to_string(&vm.stderr).unwrap();
        assert!(stderr.contains("calls chroot"), "{kind}: {stderr}");
        assert!(!stderr.contains("survived"), "{kind}: {stderr}");
    }
}

#[test]
fn a_forbidden_system_call_in_the_keeper_ends_the_monitor_too() {
    let (mut vm, _dir) = violate("other");
    use std::os::unix::process::ExitStatusExt;
    let st = vm.wait_exit(BOOT);
    assert_eq!(st.signal(), Some(libc::SIGSYS), "{st}");
    // The jailed monitor dies with its keeper: its socket stops answering.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&vm.api).is_ok() {
        assert!(Instant::now() < deadline, "the monitor outlived its keeper");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn check_jail_reports_every_layer() {
    let o = std::process::Command::new(vmm_bin())
        .arg("--check-jail")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    for layer in [
        "user-namespaces",
        "namespaces",
        "empty-root",
        "landlock",
        "seccomp",
        "jail",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(layer))
            .unwrap_or_else(|| panic!("no {layer} in {text}"));
        assert!(line.contains(" yes "), "{line}");
    }
}

#[test]
fn the_console_file_stays_under_its_cap_across_restarts() {
    let dir = Scratch::new("console-cap");
    // An earlier run left 3 MiB behind.
    std::fs::write(dir.path("console.log"), vec![b'x'; 3 << 20]).unwrap();
    let mut vm = Vm::start(
        &dir,
        "vmlinux",
        "probe.poweroff",
        &s(&["--console-max-bytes", "64K"]),
        None,
    );
    assert_eq!(vm.wait_exit(BOOT).code(), Some(0));
    let log = std::fs::read(dir.path("console.log")).unwrap();
    assert!(log.len() <= 64 << 10, "{} bytes", log.len());
    let text = String::from_utf8_lossy(&log);
    assert!(text.ends_with("probe: poweroff\n"), "{text}");
    assert!(text.starts_with('x'), "older output kept up to the cap");
}

#[test]
fn a_jail_started_from_an_empty_mount_namespace_copies_nothing_of_the_hosts() {
    use std::io::BufRead;
    use std::os::fd::AsRawFd;
    let mut server = std::process::Command::new(vmm_bin())
        .arg("--serve-empty-mount-ns")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let ns = std::fs::File::open(format!("/proc/{}/ns/mnt", server.id())).unwrap();
    drop(server.stdin.take());
    assert!(server.wait().unwrap().success());
    // The namespace outlives its maker through `ns`; the monitor inherits it.
    // SAFETY: clears close-on-exec on a descriptor this test owns, before the spawn below.
    unsafe { libc::fcntl(ns.as_raw_fd(), libc::F_SETFD, 0) };
    let dir = Scratch::new("mountns");
    let mut vm = Vm::start_unjailed(
        &dir,
        "vmlinux",
        "",
        &s(&[&format!("--jail=mountns={}", ns.as_raw_fd())]),
        None,
    );
    vm.wait_for("probe: idle", BOOT);
    let keeper = vm.child.id();
    for pid in [keeper, vm.vm_pid()] {
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        assert_eq!(mounts.lines().count(), 1, "{pid}: {mounts}");
    }
    assert_ne!(ns_of(keeper), ns_of(std::process::id()));
    vm.api(r#"{"op":"stop"}"#);
    assert_eq!(vm.wait_exit(Duration::from_secs(10)).code(), Some(4));
}

#[test]
fn a_jail_given_a_network_namespace_joins_it_and_makes_none() {
    use std::os::fd::{AsRawFd, OwnedFd};
    // A fresh namespace made on a thread of its own, as the daemon's pool makes them.
    let made = std::thread::spawn(|| {
        // SAFETY: CLONE_NEWNET moves only this thread.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
        let f = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        OwnedFd::from(f)
    })
    .join()
    .unwrap();
    let want = std::fs::read_link(format!("/proc/self/fd/{}", made.as_raw_fd()))
        .unwrap()
        .display()
        .to_string();
    // SAFETY: clears close-on-exec on a descriptor this test owns, before the spawn below.
    unsafe { libc::fcntl(made.as_raw_fd(), libc::F_SETFD, 0) };
    let dir = Scratch::new("netns");
    let mut vm = Vm::start_unjailed(
        &dir,
        "vmlinux",
        "",
        &s(&[&format!("--jail=netns={}", made.as_raw_fd())]),
        None,
    );
    vm.wait_for("probe: idle", BOOT);
    // The keeper and the VM are both in the namespace given; the VM's user namespace is
    // its own all the same (so it has no rights over that network namespace).
    let keeper = vm.child.id();
    assert_eq!(ns(&keeper.to_string(), "net"), want);
    assert_eq!(ns(&vm.vm_pid().to_string(), "net"), want);
    assert_ne!(ns(&vm.vm_pid().to_string(), "user"), ns("self", "user"));
    assert_confined(&vm.vm_pid().to_string(), 65534, "the VM");
    // The test's own copy closes; the namespace lives on through the monitor.
    drop(made);
    vm.api(r#"{"op":"stop"}"#);
    assert_eq!(vm.wait_exit(Duration::from_secs(10)).code(), Some(4));
}

fn ns_of(pid: u32) -> String {
    ns(&pid.to_string(), "mnt")
}
