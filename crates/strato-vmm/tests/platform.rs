//! KVM tests of the guest platform: ACPI (power-off through S5, the power button), SMBIOS
//! identity, the reset exit status, and console input and BREAK, seen by the probe guest.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use strato_vmm_api::control::Request;
use strato_vmm_api::exit::ExitStatus;

const BOOT: Duration = Duration::from_secs(60);
const SERIAL: &str = "ec2a1b2c-3d4e-456f-8790-0123456789ab";

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn smbios_flags() -> Vec<String> {
    s(&[
        "--smbios",
        &format!("product=t3.micro,serial={SERIAL},uuid={SERIAL},asset_tag=i-0123456789abcdef0"),
    ])
}

fn code(status: ExitStatus) -> Option<i32> {
    Some(status.code())
}

#[test]
fn acpi_tables_and_smbios_identity_are_found_on_both_entries() {
    for (kernel, entry) in [("vmlinux", "pvh"), ("vmlinux-nopvh", "linux64")] {
        let dir = Scratch::new("acpi");
        let mut vm = Vm::start(&dir, kernel, "probe.poweroff", &smbios_flags(), None);
        // The probe powers off through ACPI S5: a reset (its fallback) would exit 5.
        assert_eq!(
            vm.wait_exit(BOOT).code(),
            code(ExitStatus::PowerOff),
            "{}",
            vm.console_text()
        );
        let c = vm.console_text();
        assert!(c.contains(&format!("probe: entry {entry}")), "{c}");
        assert!(c.contains("probe: acpi ok\n"), "{c}");
        assert!(
            c.contains(&format!("probe: smbios strato t3.micro {SERIAL}\n")),
            "{c}"
        );
        assert!(c.contains("probe: poweroff"), "{c}");
    }
}

#[test]
fn smbios_without_an_identity_names_the_monitor() {
    let dir = Scratch::new("smbios");
    let mut vm = Vm::start(&dir, "vmlinux", "probe.poweroff", &[], None);
    vm.wait_exit(BOOT);
    let c = vm.console_text();
    assert!(c.contains("probe: smbios strato strato-vmm none\n"), "{c}");
}

#[test]
fn guest_reboot_ends_the_monitor_with_the_reset_status() {
    let dir = Scratch::new("reboot");
    let cd = config_drive(&dir, "#!probe\necho rebooting\nreboot\necho not reached\n");
    let mut vm = Vm::start(
        &dir,
        "vmlinux",
        "",
        &s(&["--disk", &format!("path={},readonly=on", cd.display())]),
        None,
    );
    assert_eq!(
        vm.wait_exit(BOOT).code(),
        code(ExitStatus::Reset),
        "{}",
        vm.console_text()
    );
    let c = vm.console_text();
    assert!(c.contains("probe: reboot\n"), "{c}");
    assert!(!c.contains("not reached"), "{c}");
}

/// Both interrupt-controller modes: the GED's GSI through the userspace IOAPIC (split) or
/// KVM's PIC and IOAPIC (kernel).
const IRQCHIPS: [&str; 2] = ["split", "kernel"];

#[test]
fn power_button_powers_the_guest_off() {
    for irqchip in IRQCHIPS {
        let dir = Scratch::new("pwrbtn");
        let mut vm = Vm::start(&dir, "vmlinux", "", &s(&["--irqchip", irqchip]), None);
        vm.wait_for("probe: idle", BOOT);
        let r = vm.api(&Request::PowerButton {}.encode());
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(
            vm.wait_exit(Duration::from_secs(30)).code(),
            code(ExitStatus::PowerOff),
            "{irqchip}: {}",
            vm.console_text()
        );
        assert!(
            vm.console_text().contains("probe: power-button\n"),
            "{irqchip}"
        );
    }
}

#[test]
fn a_guest_that_ignores_the_power_button_keeps_running() {
    let dir = Scratch::new("pwrbtn-ignored");
    let cd = config_drive(&dir, "ignore-power-button\n");
    let mut vm = Vm::start(
        &dir,
        "vmlinux",
        "",
        &s(&["--disk", &format!("path={},readonly=on", cd.display())]),
        None,
    );
    vm.wait_for("probe: idle", BOOT);
    assert_eq!(vm.api(&Request::PowerButton {}.encode())["ok"], true);
    vm.wait_for("probe: power-button ignored\n", Duration::from_secs(30));
    // Pressed twice, ignored twice: the event register is read and cleared each time.
    assert_eq!(vm.api(&Request::PowerButton {}.encode())["ok"], true);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while vm
        .console_text()
        .matches("probe: power-button ignored")
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            vm.console_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = vm.api(r#"{"op":"state"}"#);
    assert_eq!(st["state"], "running", "{st}");
    let counters = vm.api(r#"{"op":"counters"}"#);
    assert_eq!(
        counters["devices"]["ged"]["power_button_presses"], 2,
        "{counters}"
    );
    vm.api(r#"{"op":"stop"}"#);
    assert_eq!(
        vm.wait_exit(Duration::from_secs(10)).code(),
        code(ExitStatus::Stopped)
    );
}

#[test]
fn console_input_and_break_reach_the_guest() {
    for irqchip in IRQCHIPS {
        console_round_trip(irqchip);
    }
}

fn console_round_trip(irqchip: &str) {
    let dir = Scratch::new("console-in");
    let mut vm = Vm::start(&dir, "vmlinux", "", &s(&["--irqchip", irqchip]), None);
    vm.wait_for("probe: idle", BOOT);
    let input = |vm: &Vm, data: &[u8]| {
        vm.api(
            &Request::ConsoleInput {
                data: data.to_vec(),
            }
            .encode(),
        )
    };
    let r = input(&vm, b"hello from the host\r");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["accepted"], 20, "{r}");
    vm.wait_for(
        "probe: console hello from the host\n",
        Duration::from_secs(30),
    );
    // A BREAK between two lines: the probe sees the line status register's break bit.
    input(&vm, b"before");
    assert_eq!(vm.api(&Request::ConsoleBreak {}.encode())["ok"], true);
    input(&vm, b"after\n");
    let c = vm.wait_for("probe: console after\n", Duration::from_secs(30));
    let tail = &c[c.find("hello from the host").unwrap()..];
    let before = tail
        .find("probe: console before\n")
        .expect("line before the break");
    let brk = tail.find("probe: console break\n").expect("the break");
    let after = tail.find("probe: console after\n").unwrap();
    assert!(before < brk && brk < after, "{tail}");
    let counters = vm.api(r#"{"op":"counters"}"#);
    assert_eq!(counters["devices"]["serial"]["breaks"], 1, "{counters}");
    let bad = vm.api(r#"{"op":"console-input","data":"not base64!"}"#);
    assert_eq!(bad["ok"], false, "{bad}");
    vm.api(r#"{"op":"stop"}"#);
    vm.wait_exit(Duration::from_secs(10));
}
