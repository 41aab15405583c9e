//! KVM tests: boot the probe guest under strato-vmm and check what it reports.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

const BOOT: Duration = Duration::from_secs(60);

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn boot_and_poweroff(kernel: &str, cpus: &str) -> String {
    boot_and_poweroff_with(kernel, &["--cpus", cpus])
}

fn boot_and_poweroff_with(kernel: &str, flags: &[&str]) -> String {
    let dir = Scratch::new("boot");
    let mut vm = Vm::start(&dir, kernel, "probe.poweroff", &s(flags), None);
    let st = vm.wait_exit(BOOT);
    let console = vm.console_text();
    assert_eq!(st.code(), Some(0), "console:\n{console}");
    assert!(console.contains("probe: ready"), "{console}");
    assert!(console.contains("probe: poweroff"), "{console}");
    console
}

#[test]
fn one_vcpu_pvh_boot_reports_and_powers_off() {
    let c = boot_and_poweroff("vmlinux", "1");
    assert!(c.contains("probe: entry pvh"), "{c}");
    assert!(c.contains("probe: cpus 1"), "{c}");
    // The default irqchip is split: no 8259, COM1's IRQ through the userspace IOAPIC.
    assert!(c.contains("probe: interrupts ioapic"), "{c}");
    assert!(c.contains("probe: serial irq ok"), "{c}");
    let mib: u32 = c
        .lines()
        .find_map(|l| l.strip_prefix("probe: memory "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("memory line");
    assert!((62..=64).contains(&mib), "{c}");
}

#[test]
fn two_vcpus_linux64_entry() {
    let c = boot_and_poweroff("vmlinux-nopvh", "2");
    assert!(c.contains("probe: entry linux64"), "{c}");
    assert!(c.contains("probe: cpus 2"), "{c}");
    assert!(c.contains("probe: interrupts ioapic"), "{c}");
    assert!(c.contains("probe: serial irq ok"), "{c}");
}

#[test]
fn split_irqchip_eight_vcpus_both_entries() {
    for (kernel, entry) in [("vmlinux", "pvh"), ("vmlinux-nopvh", "linux64")] {
        let c = boot_and_poweroff_with(kernel, &["--cpus", "8", "--irqchip", "split"]);
        assert!(c.contains(&format!("probe: entry {entry}")), "{c}");
        assert!(c.contains("probe: cpus 8"), "{c}");
        assert!(c.contains("probe: interrupts ioapic"), "{c}");
        assert!(c.contains("probe: serial irq ok"), "{c}");
    }
}

#[test]
fn kernel_irqchip_gives_the_guest_an_8259() {
    for cpus in ["1", "4"] {
        let c = boot_and_poweroff_with("vmlinux", &["--cpus", cpus, "--irqchip", "kernel"]);
        assert!(c.contains(&format!("probe: cpus {cpus}")), "{c}");
        assert!(c.contains("probe: interrupts 8259"), "{c}");
        assert!(c.contains("probe: serial irq ok"), "{c}");
    }
}

#[test]
fn disk_checksum_and_marker_match_the_host_file() {
    let dir = Scratch::new("disk");
    let disk = dir.path("disk.img");
    let mut data = vec![0u8; 2 << 20];
    let mut x = rand_u64() | 1;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&disk, &data).unwrap();
    let ro = dir.path("ro.img");
    std::fs::write(&ro, &data[..1 << 20]).unwrap();
    let mut vm = Vm::start(
        &dir,
        "vmlinux",
        "probe.poweroff probe.write=vda:16:hello-marker",
        &s(&[
            "--disk",
            &format!("path={}", disk.display()),
            "--disk",
            &format!("path={},readonly=on", ro.display()),
            "--rng",
        ]),
        None,
    );
    assert_eq!(vm.wait_exit(BOOT).code(), Some(0), "{}", vm.console_text());
    let c = vm.console_text();
    let want = format!(
        "probe: disk vda size {} sum {}",
        data.len(),
        probe_sum(&data)
    );
    assert!(c.contains(&want), "want {want:?} in\n{c}");
    let want_ro = format!(
        "probe: disk vdb size {} sum {}",
        1 << 20,
        probe_sum(&data[..1 << 20])
    );
    assert!(c.contains(&want_ro), "want {want_ro:?} in\n{c}");
    assert!(c.contains("probe: marker vda 16 ok"), "{c}");
    assert!(c.contains("probe: rng ok"), "{c}");
    let after = std::fs::read(&disk).unwrap();
    assert!(after[16 * 512..].starts_with(b"STRATO-MARKER hello-marker"));
    // Nothing else changed.
    assert_eq!(after[..16 * 512], data[..16 * 512]);
    assert_eq!(after[17 * 512..], data[17 * 512..]);
}

#[test]
fn user_data_from_config_drive_runs() {
    let dir = Scratch::new("userdata");
    std::fs::write(
        dir.path("user-data"),
        "#!probe\necho hello from user data\nmarker vdb 4 from-user-data\nbogus\npoweroff\n",
    )
    .unwrap();
    sh_ok(&[
        "tar",
        "--label=config-2",
        "-C",
        dir.0.to_str().unwrap(),
        "-cf",
        dir.path("cd.tar").to_str().unwrap(),
        "user-data",
    ]);
    let data = dir.path("data.img");
    std::fs::write(&data, vec![0u8; 1 << 20]).unwrap();
    let mut vm = Vm::start(
        &dir,
        "vmlinux",
        "",
        &s(&[
            "--disk",
            &format!("path={},readonly=on", dir.path("cd.tar").display()),
            "--disk",
            &format!("path={}", data.display()),
        ]),
        None,
    );
    assert_eq!(vm.wait_exit(BOOT).code(), Some(0), "{}", vm.console_text());
    let c = vm.console_text();
    assert!(c.contains("probe: config-drive vda"), "{c}");
    assert!(c.contains("probe: user-data: hello from user data"), "{c}");
    assert!(c.contains("probe: user-data: unknown command bogus"), "{c}");
    let after = std::fs::read(&data).unwrap();
    assert!(after[4 * 512..].starts_with(b"STRATO-MARKER from-user-data"));
}

#[test]
fn api_pause_resume_counters_and_stop() {
    let dir = Scratch::new("api");
    let mut vm = Vm::start(&dir, "vmlinux", "", &s(&["--rng"]), None);
    vm.wait_for("probe: idle", BOOT);
    let st = vm.api(r#"{"op":"state"}"#);
    assert_eq!(st["ok"], true, "{st}");
    assert_eq!(st["state"], "running");
    // KVM's own statistics tell progress: an idle guest is halted (blocking) or leaves
    // the guest (exits); a paused one does neither.
    let kvm = |vm: &Vm| {
        let c = vm.api(r#"{"op":"counters"}"#);
        let v = &c["vcpus"][0];
        (
            v["kvm_exits"].as_u64().unwrap_or_else(|| panic!("{c}")),
            v["kvm_halt_exits"].as_u64().unwrap(),
            v["kvm_blocking"].as_u64().unwrap(),
        )
    };
    let a = kvm(&vm);
    std::thread::sleep(Duration::from_millis(300));
    let b = kvm(&vm);
    assert!(b.0 > a.0 || b.1 > a.1 || b.2 == 1, "idle: {a:?} then {b:?}");
    assert_eq!(vm.api(r#"{"op":"pause"}"#)["state"], "paused");
    assert_eq!(vm.api(r#"{"op":"pause"}"#)["ok"], false);
    let a = kvm(&vm);
    std::thread::sleep(Duration::from_millis(300));
    let b = kvm(&vm);
    assert_eq!((a.0, a.1), (b.0, b.1), "paused vCPUs left the guest");
    assert_eq!(b.2, 0, "a parked vCPU is not blocking in KVM");
    assert_eq!(vm.api(r#"{"op":"resume"}"#)["state"], "running");
    let c = vm.api(r#"{"op":"counters"}"#);
    assert!(c["vcpus"][0]["io_out"].as_u64().unwrap() > 0, "{c}");
    assert!(c["devices"]["serial"].is_object(), "{c}");
    assert!(c["devices"]["rng"].is_object(), "{c}");
    // Split irqchip: COM1's two interrupts went through the userspace IOAPIC, on a
    // level-triggered pin whose ends of interrupt KVM reported (KVM_EXIT_IOAPIC_EOI).
    assert!(
        c["devices"]["ioapic"]["delivered"].as_u64().unwrap() >= 2,
        "{c}"
    );
    assert!(c["devices"]["ioapic"]["eois"].as_u64().unwrap() >= 2, "{c}");
    assert!(c["vcpus"][0]["ioapic_eoi"].as_u64().unwrap() >= 2, "{c}");
    let con = vm.api(r#"{"op":"console","from":0}"#);
    assert!(
        con["data"].as_str().unwrap().contains("probe: ready"),
        "{con}"
    );
    let bad = vm.api(r#"{"op":"launch-missiles"}"#);
    assert_eq!(bad["ok"], false);
    vm.api(r#"{"op":"stop"}"#);
    assert_eq!(vm.wait_exit(Duration::from_secs(10)).code(), Some(4));
}

#[test]
fn ctrl_alt_del_shuts_the_guest_down() {
    let dir = Scratch::new("cad");
    let mut vm = Vm::start(&dir, "vmlinux", "", &[], None);
    vm.wait_for("probe: idle", BOOT);
    assert_eq!(vm.api(r#"{"op":"ctrl-alt-del"}"#)["ok"], true);
    assert_eq!(vm.wait_exit(Duration::from_secs(30)).code(), Some(0));
    assert!(vm.console_text().contains("probe: ctrl-alt-del"));
}

#[test]
fn hot_attached_drive_is_seen_by_the_guest() {
    let dir = Scratch::new("hot");
    let disk = dir.path("hot.img");
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&disk, &data).unwrap();
    let mut vm = Vm::start(&dir, "vmlinux", "", &s(&["--disk", "id=slot0"]), None);
    vm.wait_for("probe: disk vda size 0", BOOT);
    vm.wait_for("probe: idle", BOOT);
    // A jailed monitor opens no paths: the image goes over the socket as a descriptor.
    let by_path = vm.api(&format!(
        r#"{{"op":"attach-drive","id":"slot0","path":"{}"}}"#,
        disk.display()
    ));
    assert_eq!(by_path["ok"], false, "{by_path}");
    assert!(
        by_path["error"].as_str().unwrap().contains("jailed"),
        "{by_path}"
    );
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk)
        .unwrap();
    let mismatch = vm.api_with_fd(r#"{"op":"attach-drive","id":"slot0","readonly":true}"#, &rw);
    assert_eq!(mismatch["ok"], false, "{mismatch}");
    let r = vm.api_with_fd(r#"{"op":"attach-drive","id":"slot0"}"#, &rw);
    assert_eq!(r["ok"], true, "{r}");
    let want = format!(
        "probe: disk vda size {} sum {}",
        data.len(),
        probe_sum(&data)
    );
    vm.wait_for(&want, Duration::from_secs(30));
    assert_eq!(
        vm.api(r#"{"op":"attach-drive","id":"nope","path":"/x"}"#)["ok"],
        false
    );
    // An occupied slot refuses a second file, naming the one it holds, and keeps it.
    let other = dir.path("other.img");
    std::fs::write(&other, [0u8; 4096]).unwrap();
    let other = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&other)
        .unwrap();
    let r = vm.api_with_fd(r#"{"op":"attach-drive","id":"slot0"}"#, &other);
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("occupied"), "{r}");
    let c = vm.api(r#"{"op":"counters"}"#);
    assert_eq!(c["devices"]["slot0"]["config_changes"], 1, "{c}");
    assert_eq!(vm.api(r#"{"op":"detach-drive","id":"slot0"}"#)["ok"], true);
    vm.wait_for("probe: disk vda size 0\n", Duration::from_secs(30));
    vm.api(r#"{"op":"stop"}"#);
    vm.wait_exit(Duration::from_secs(10));
}

/// Boots the probe on a tap in a namespace of its own (`172.30.<subnet>.0/24`) with `flags`,
/// waits until it idles, and pings it. An idle probe masks its tick, so the first answer needs
/// the net device's interrupt.
fn net_round_trip(tag: &str, subnet: u8, flags: &[&str]) -> String {
    let ns = NetNs::with_tap(tag, &format!("172.30.{subnet}.1/24"));
    let dir = Scratch::new(tag);
    let disk = dir.path("disk.img");
    std::fs::write(&disk, vec![0x5au8; 1 << 20]).unwrap();
    let mut args = s(&[
        "--net",
        &format!("tap=tap0,mac=02:00:00:00:{subnet:02x}:02"),
        "--disk",
        &format!("path={}", disk.display()),
    ]);
    args.extend(s(flags));
    let mut vm = Vm::start(
        &dir,
        "vmlinux",
        &format!("ip=172.30.{subnet}.2::172.30.{subnet}.1:255.255.255.0::eth0:off"),
        &args,
        Some(&ns.name),
    );
    vm.wait_for("probe: idle", BOOT);
    let c = vm.console_text();
    assert!(
        c.contains(&format!("probe: net eth0 mac 02:00:00:00:{subnet:02x}:02")),
        "{c}"
    );
    assert!(c.contains("probe: disk vda size 1048576 sum"), "{c}");
    let guest = format!("172.30.{subnet}.2");
    ns.exec_ok(&["arping", "-c", "2", "-w", "20", "-I", "tap0", &guest]);
    ns.exec_ok(&["ping", "-c", "3", "-W", "5", &guest]);
    let counters = vm.api(r#"{"op":"counters"}"#);
    assert!(
        counters["devices"]["net0"]["tx_packets"].as_u64().unwrap() >= 3,
        "{counters}"
    );
    vm.api(r#"{"op":"stop"}"#);
    vm.wait_exit(Duration::from_secs(10));
    c
}

#[test]
fn guest_answers_arp_and_ping_on_its_tap() {
    let c = net_round_trip("net", 5, &[]);
    assert!(c.contains("probe: interrupts ioapic"), "{c}");
}

#[test]
fn split_irqchip_four_vcpus_net_and_disk_interrupts() {
    let c = net_round_trip("net4", 6, &["--cpus", "4", "--irqchip", "split"]);
    assert!(c.contains("probe: cpus 4"), "{c}");
    assert!(c.contains("probe: interrupts ioapic"), "{c}");
}

#[test]
fn kernel_irqchip_net_and_disk_interrupts() {
    let c = net_round_trip("netk", 7, &["--cpus", "2", "--irqchip", "kernel"]);
    assert!(c.contains("probe: interrupts 8259"), "{c}");
}

#[test]
fn kernel_irqchip_ctrl_alt_del() {
    let dir = Scratch::new("cadk");
    let mut vm = Vm::start(&dir, "vmlinux", "", &s(&["--irqchip", "kernel"]), None);
    vm.wait_for("probe: idle", BOOT);
    assert_eq!(vm.api(r#"{"op":"ctrl-alt-del"}"#)["ok"], true);
    assert_eq!(vm.wait_exit(Duration::from_secs(30)).code(), Some(0));
    assert!(vm.console_text().contains("probe: ctrl-alt-del"));
}

#[test]
fn malformed_configuration_is_refused_with_its_name() {
    let dir = Scratch::new("badcfg");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(vmm_bin())
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let kernel = probe_dir().join("vmlinux").display().to_string();
    let (code, err) = run(&["--kernel", &kernel, "--cpus", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--cpus"), "{err}");
    let (code, err) = run(&["--kernel", &kernel, "--disk", "path=/x,redonly=on"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("redonly"), "{err}");
    let (code, err) = run(&["--kernel", &kernel, "--frobnicate"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--frobnicate"), "{err}");
    let cfg = dir.path("vm.json");
    std::fs::write(&cfg, format!(r#"{{"kernel":"{kernel}","memroy_mib":64}}"#)).unwrap();
    let (code, err) = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("memroy_mib"), "{err}");
    let (code, err) = run(&["--kernel", "/nonexistent/vmlinux"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent/vmlinux"), "{err}");
}

#[test]
fn json_config_boots_like_flags() {
    let dir = Scratch::new("json");
    let cfg = dir.path("vm.json");
    let kernel = probe_dir().join("vmlinux");
    std::fs::write(
        &cfg,
        serde_json::json!({
            "kernel": kernel,
            "cmdline": "console=ttyS0 probe.poweroff",
            "cpus": 2,
            "memory_mib": 64,
            "console": dir.path("console.log"),
            "cpu_template": template(),
        })
        .to_string(),
    )
    .unwrap();
    let o = std::process::Command::new(vmm_bin())
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let console = std::fs::read_to_string(dir.path("console.log")).unwrap_or_default();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{console}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(console.contains("probe: cpus 2"), "{console}");
}

/// `ping -6` from `ns` reaches `addr` within a few tries (the tap's own addresses may still
/// be tentative just after the monitor opened it).
fn ping6_ok(ns: &NetNs, addr: &str) {
    let script = format!(
        "for i in 1 2 3 4 5 6; do ping -6 -c 1 -W 2 {addr} && exit 0; sleep 1; done; exit 1"
    );
    ns.exec_ok(&["sh", "-c", &script]);
}

#[test]
fn guest_answers_neighbour_discovery_and_ping_over_ipv6_on_its_tap() {
    // The tap on a bridge that snoops multicast, as a VPC bridge may: the guest's report
    // must put its solicited-node groups on the tap's port.
    let ns = NetNs::with_tap("net6", "172.30.8.1/24");
    let ip = |args: &str| ns.exec_ok(&args.split(' ').collect::<Vec<_>>());
    ip("ip link add br0 type bridge mcast_snooping 1");
    ip("ip link set tap0 master br0");
    ip("ip link set br0 up");
    ip("ip -6 addr add 2001:db8:8::1/64 dev br0 nodad");
    let dir = Scratch::new("net6");
    let args = s(&["--net", "tap=tap0,mac=02:00:00:00:08:02"]);
    let mut vm = Vm::start(
        &dir,
        "vmlinux",
        "probe.noip4 probe.ip6=2001:db8:8::2/64 probe.ip6=2001:db8:8:0:0:0:0:3",
        &args,
        Some(&ns.name),
    );
    vm.wait_for("probe: idle", BOOT);
    let c = vm.console_text();
    for line in [
        "probe: ip6 link-local fe80::ff:fe00:802",
        "probe: ip6 2001:db8:8::2",
        "probe: ip6 2001:db8:8::3",
        // Nobody on the tap sends router advertisements.
        "probe: ip6 router none",
    ] {
        assert!(c.contains(&format!("{line}\n")), "{line}:\n{c}");
    }
    assert!(!c.contains("probe: ip "), "probe.noip4:\n{c}");
    // Neighbour solicitations to the solicited-node groups, then echo, for each address.
    ping6_ok(&ns, "2001:db8:8::2");
    ping6_ok(&ns, "2001:db8:8::3");
    ping6_ok(&ns, "fe80::ff:fe00:802%br0");
    let mdb = ns.exec(&["bridge", "mdb", "show", "dev", "br0"]);
    let mdb = String::from_utf8_lossy(&mdb.stdout).to_string();
    for group in ["ff02::1:ff00:2", "ff02::1:ff00:3", "ff02::1:ff00:802"] {
        assert!(
            mdb.lines()
                .any(|l| l.contains("port tap0") && l.contains(&format!("grp {group} "))),
            "{group}:\n{mdb}"
        );
    }
    let arp = ns.exec(&["arping", "-c", "1", "-w", "2", "-I", "br0", "172.30.8.2"]);
    assert!(!arp.status.success(), "no IPv4, no ARP answer");
    // Duplicate address detection: the host trying the guest's address hears the guest's
    // advertisement (to all nodes, from ::'s solicitation) and gives the address up.
    ns.exec_ok(&["ip", "-6", "addr", "add", "2001:db8:8::3/64", "dev", "br0"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let o = ns.exec(&["ip", "-6", "addr", "show", "dev", "br0"]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        if text.contains("dadfailed") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no DAD failure:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    vm.api(r#"{"op":"stop"}"#);
    vm.wait_exit(Duration::from_secs(10));
}
