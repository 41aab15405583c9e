#!/usr/bin/env python3
"""A VM's whole life, measured in one run on this machine: strato-vmm against a bare KVM
program (and Firecracker when given), on a tiny guest that writes one byte to COM1 and pulses
the i8042 reset line.

Every program runs ROUNDS times, interleaved (one of each per round), so all see the same
load. For each run the harness takes CLOCK_MONOTONIC right before posix_spawn, when the byte
arrives on the program's stdout (a pipe), and when waitpid returns:
  - whole process: spawn -> exit,
  - exec -> output: spawn -> the guest's byte (set-up plus a handful of guest instructions),
  - teardown: the guest's byte -> exit (the reset, stopping the vCPU, destroying the VM,
    leaving the process).
It prints medians (min..max) and the ratios of medians.

Usage: bench_lifecycle.py VMM BARE_KVM TEMPLATE ROUNDS [FIRECRACKER]
"""
import json
import os
import select
import statistics
import struct
import sys
import tempfile
import time

# 64-bit code at 1 MiB: mov dx, 0x3f8; mov al, '!'; out dx, al; mov al, 0xfe; out 0x64, al;
# then hlt forever.
GUEST_CODE = bytes([0x66, 0xBA, 0xF8, 0x03, 0xB0, 0x21, 0xEE, 0xB0, 0xFE, 0xE6, 0x64,
                    0xF4, 0xEB, 0xFD])
LOAD_ADDR = 0x100000


def tiny_elf():
    """An ELF64 executable with one PT_LOAD segment of GUEST_CODE at 1 MiB, entered there in
    64-bit mode (the Linux 64-bit boot entry, which both monitors use for an ELF without a
    PVH note)."""
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, 0x3E, 1, LOAD_ADDR, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, LOAD_ADDR, LOAD_ADDR,
                       len(GUEST_CODE), len(GUEST_CODE), 0x1000)
    image = ehdr + phdr
    return image + b"\0" * (0x1000 - len(image)) + GUEST_CODE


def run_once(argv):
    """(whole_ms, output_ms, teardown_ms) of one run of argv, which must print one byte."""
    r, w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, w, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2),
        (os.POSIX_SPAWN_CLOSE, r),
    ]
    start = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    os.close(w)
    os.close(devnull)
    out_at = None
    data = b""
    deadline = time.monotonic() + 30
    while out_at is None:
        if not select.select([r], [], [], max(0.0, deadline - time.monotonic()))[0]:
            os.kill(pid, 9)
            raise SystemExit(f"{argv[0]}: no output within 30 s")
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
        if b"!" in data:
            out_at = time.monotonic_ns()
    _, status = os.waitpid(pid, 0)
    end = time.monotonic_ns()
    os.close(r)
    if out_at is None:
        raise SystemExit(f"{argv[0]}: exited ({status}) without the guest's output")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)}: exit status {os.waitstatus_to_exitcode(status)}")
    return ((end - start) / 1e6, (out_at - start) / 1e6, (end - out_at) / 1e6)


def main():
    vmm, bare, template, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    firecracker = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
    work = tempfile.mkdtemp(prefix="strato-bench-")
    kernel = os.path.join(work, "tiny.elf")
    with open(kernel, "wb") as f:
        f.write(tiny_elf())
    programs = [
        ("bare KVM program (no irqchip)", [bare]),
        ("bare KVM program + split irqchip", [bare, "--irqchip", "split"]),
        ("bare KVM program + in-kernel irqchip and PIT", [bare, "--irqchip", "kernel-pit"]),
    ]
    for mode in ("split", "kernel"):
        programs.append((f"strato-vmm --irqchip {mode}",
                         [vmm, "--kernel", kernel, "--memory", "16", "--console", "/dev/stdout",
                          "--cpu-template", template, "--irqchip", mode]))
    if firecracker:
        cfg = os.path.join(work, "firecracker.json")
        with open(cfg, "w") as f:
            json.dump({
                "boot-source": {"kernel_image_path": kernel, "boot_args": "console=ttyS0"},
                "drives": [],
                "machine-config": {"vcpu_count": 1, "mem_size_mib": 16},
            }, f)
        programs.append(("Firecracker", [firecracker, "--no-api", "--config-file", cfg,
                                         "--level", "Error"]))
    results = {name: [] for name, _ in programs}
    try:
        for _ in range(rounds):
            for name, argv in programs:
                results[name].append(run_once(argv))
    finally:
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)

    def med(name, i):
        return statistics.median(r[i] for r in results[name])

    def span(name, i):
        vals = [r[i] for r in results[name]]
        return f"{statistics.median(vals):8.2f} ({min(vals):.2f}..{max(vals):.2f})"

    print(f"tiny guest (one byte to COM1, then i8042 reset), 1 vCPU, {rounds} interleaved "
          f"rounds, medians in ms (min..max), template {template}")
    print(f"  {'program':46s} {'whole process':>24s} {'exec -> output':>24s} "
          f"{'teardown':>24s}")
    for name, _ in programs:
        print(f"  {name:46s} {span(name, 0):>24s} {span(name, 1):>24s} {span(name, 2):>24s}")
    bare_name = programs[0][0]
    print("ratios of medians:")
    for mode in ("split", "kernel"):
        name = f"strato-vmm --irqchip {mode}"
        print(f"  {name} / bare KVM program, whole process: "
              f"{med(name, 0) / med(bare_name, 0):.2f} (aim <= 3)")
    if firecracker:
        for mode in ("split", "kernel"):
            name = f"strato-vmm --irqchip {mode}"
            print(f"  {name} / Firecracker, whole process: "
                  f"{med(name, 0) / med('Firecracker', 0):.2f}")
    print(f"  strato-vmm --irqchip split teardown: {med('strato-vmm --irqchip split', 2):.2f} ms"
          f" (aim < 1 ms: ratio to aim {med('strato-vmm --irqchip split', 2) / 1.0:.2f})")
    print(f"  strato-vmm teardown, kernel / split: "
          f"{med('strato-vmm --irqchip kernel', 2) / med('strato-vmm --irqchip split', 2):.1f}")


if __name__ == "__main__":
    main()
