#!/usr/bin/env python3
"""Monitor start-up and footprint benchmark, measured in one run on this machine.

Boots the probe guest N times under strato-vmm with each irqchip (split and kernel, runs
interleaved) and reports, per irqchip, medians of:
  - exec -> first KVM_RUN (vCPU 0 entering the guest; the monitor reports the
    CLOCK_MONOTONIC time through its API, compared with the time taken before exec),
  - exec -> "probe: ready" on the serial console (read from a FIFO as it is written),
  - monitor memory: resident set size minus the guest memory the guest touched
    (and the proportional set size the same way), in MiB,
  - stop -> exit: from sending the API's `stop` (the guest idle, its IOAPIC routes set) to
    the process's exit: the teardown of a VM that has booted a guest.
Usage: bench_vmm.py VMM PROBE_DIR TEMPLATE [RUNS]
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def api(path, req, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)
    s.sendall((json.dumps(req) + "\n").encode())
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data)


def mem_overhead(pid, guest_bytes):
    """(rss, pss) of the process minus the guest memory mapping's, in MiB."""
    rss = pss = g_rss = g_pss = 0
    cur_is_guest = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur_is_guest = (hi - lo) == guest_bytes
                continue
            if parts[0] == "Rss:":
                kb = int(parts[1])
                rss += kb
                if cur_is_guest:
                    g_rss += kb
            elif parts[0] == "Pss:":
                kb = int(parts[1])
                pss += kb
                if cur_is_guest:
                    g_pss += kb
    return (rss - g_rss) / 1024.0, (pss - g_pss) / 1024.0


def one_run(vmm, probe, template, irqchip, mem_mib=64):
    d = tempfile.mkdtemp(prefix="strato-bench-")
    fifo = os.path.join(d, "console")
    sock = os.path.join(d, "api.sock")
    os.mkfifo(fifo)
    ready_at = []

    def reader():
        with open(fifo, "rb") as f:
            buf = b""
            while True:
                chunk = f.read1(4096)
                if not chunk:
                    return
                buf += chunk
                if not ready_at and b"probe: ready" in buf:
                    ready_at.append(time.monotonic_ns())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    args = [vmm, "--kernel", os.path.join(probe, "vmlinux"), "--cmdline", "console=ttyS0",
            "--memory", str(mem_mib), "--console", fifo, "--api-socket", sock,
            "--cpu-template", template, "--irqchip", irqchip]
    start = time.monotonic_ns()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not ready_at and time.monotonic() < deadline:
        time.sleep(0.001)
    if not ready_at:
        p.kill()
        raise SystemExit("probe never printed 'probe: ready'")
    # Let the guest settle into its idle loop before measuring memory.
    time.sleep(0.3)
    st = api(sock, {"op": "state"})
    first_run = st["first_kvm_run_monotonic_ns"]
    rss, pss = mem_overhead(p.pid, mem_mib << 20)
    stop_at = time.monotonic_ns()
    api(sock, {"op": "stop"})
    p.wait(timeout=10)
    exit_at = time.monotonic_ns()
    t.join(timeout=2)
    for f in (fifo, sock):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
    os.rmdir(d)
    return {
        "first_kvm_run_ms": (first_run - start) / 1e6,
        "ready_ms": (ready_at[0] - start) / 1e6,
        "rss_overhead_mib": rss,
        "pss_overhead_mib": pss,
        "stop_ms": (exit_at - stop_at) / 1e6,
    }


def main():
    vmm, probe, template = sys.argv[1:4]
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    modes = ("split", "kernel")
    results = {m: [] for m in modes}
    for _ in range(runs):
        for m in modes:
            results[m].append(one_run(vmm, probe, template, m))
    for m in modes:
        print(f"strato-vmm start-up, probe guest, 1 vCPU, 64 MiB, template {template}, "
              f"irqchip {m}, median of {runs} runs (min..max)")
        for key, label, aim in [
            ("first_kvm_run_ms", "exec -> first KVM_RUN (ms)", 10.0),
            ("ready_ms", "exec -> 'probe: ready' (ms)", 1000.0),
            ("rss_overhead_mib", "monitor RSS minus guest memory (MiB)", 5.0),
            ("pss_overhead_mib", "monitor PSS minus guest memory (MiB)", 5.0),
            ("stop_ms", "API stop -> process exit (ms)", 1.0),
        ]:
            vals = [r[key] for r in results[m]]
            med = statistics.median(vals)
            print(f"  {label:42s} {med:9.2f}   ({min(vals):.2f}..{max(vals):.2f})   "
                  f"aim <= {aim:g}: ratio to aim {med / aim:.2f}")


if __name__ == "__main__":
    main()
