#!/usr/bin/env python3
"""What the jail costs at start-up, measured in one run on this machine.

For 1 and for 10 monitors started at once, unjailed, jailed (--jail) and jailed the daemon's
way (--jail=mountns=N: the jail's mount namespace copied from an empty one that
`strato-vmm --serve-empty-mount-ns` made, not from the host's; then also with netns=M, a
fresh network namespace made ahead for each monitor as the daemon's pool does), interleaved, reports the
median time from exec to the first KVM_RUN (vCPU 0 entering the guest; the monitor reports
CLOCK_MONOTONIC through its API) and the jail's cost as the difference of the medians. Then
the same with MOUNTS extra mounts in the bench's own mount namespace (which the monitors
inherit), to show whether the jail's cost grows with the host's mount table.
Usage: bench_jail.py VMM PROBE_DIR TEMPLATE [ROUNDS] [MOUNTS]
Needs root (it creates a private mount namespace for the extra mounts).
"""
import ctypes
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2


def api(path, req, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            s.close()
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


def empty_mount_ns(vmm):
    """A descriptor of an empty mount namespace, as the daemon makes one."""
    p = subprocess.Popen([vmm, "--serve-empty-mount-ns"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    if p.stdout.readline().strip() != b"ready":
        raise SystemExit("strato-vmm --serve-empty-mount-ns did not get ready")
    fd = os.open(f"/proc/{p.pid}/ns/mnt", os.O_RDONLY)
    p.stdin.close()
    p.wait()
    return fd


def fresh_net_ns():
    """A new network namespace, made on a thread of its own as the daemon's pool makes them
    (ahead of the launch, so outside the timed start)."""
    out = {}

    def make():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            out["err"] = os.strerror(ctypes.get_errno())
            return
        out["fd"] = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "fd" not in out:
        raise SystemExit(f"unshare(CLONE_NEWNET): {out.get('err')}")
    return out["fd"]


def batch(vmm, probe, template, n, mode, ns_fd):
    """Starts n monitors at once; returns each one's exec -> first KVM_RUN in ms."""
    d = tempfile.mkdtemp(prefix="strato-bench-jail-")
    procs = []
    nets = [fresh_net_ns() for _ in range(n)] if mode == "jailed-daemon" else []
    try:
        for i in range(n):
            sock = os.path.join(d, f"api{i}.sock")
            args = [vmm, "--kernel", os.path.join(probe, "vmlinux"), "--cmdline",
                    "console=ttyS0", "--memory", "64", "--api-socket", sock,
                    "--cpu-template", template]
            if mode == "jailed":
                args.append(f"--jail=uid={50000 + i},gid={50000 + i}")
            elif mode == "jailed-empty-ns":
                args.append(f"--jail=uid={50000 + i},gid={50000 + i},mountns={ns_fd}")
            elif mode == "jailed-daemon":
                args.append(f"--jail=uid={50000 + i},gid={50000 + i},mountns={ns_fd},"
                            f"netns={nets[i]}")
            start = time.monotonic_ns()
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, pass_fds=[ns_fd] + nets)
            procs.append((p, sock, start))
        out = []
        for p, sock, start in procs:
            deadline = time.monotonic() + 20
            while True:
                st = api(sock, {"op": "state"})
                first = st.get("first_kvm_run_monotonic_ns") or 0
                if first:
                    out.append((first - start) / 1e6)
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("a monitor never entered the guest")
                time.sleep(0.001)
        return out
    finally:
        for p, sock, _ in procs:
            try:
                api(sock, {"op": "stop"}, timeout=2)
            except OSError:
                p.kill()
        for p, _, _ in procs:
            p.wait(timeout=10)
        for fd in nets:
            os.close(fd)
        shutil.rmtree(d, ignore_errors=True)


MODES = ("unjailed", "jailed", "jailed-empty-ns", "jailed-daemon")


def measure(vmm, probe, template, rounds):
    ns_fd = empty_mount_ns(vmm)
    res = {}
    for n in (1, 10):
        # 1 monitor: `rounds` batches; 10 at once: fewer batches, 10 samples each.
        batches = rounds if n == 1 else max(2, rounds // 5)
        samples = {m: [] for m in MODES}
        for _ in range(batches):
            for m in MODES:
                samples[m] += batch(vmm, probe, template, n, m, ns_fd)
        res[n] = {m: statistics.median(v) for m, v in samples.items()}
        res[n]["count"] = len(samples["jailed"])
    os.close(ns_fd)
    return res


def add_mounts(count):
    """A private mount namespace for this process with `count` more tmpfs mounts."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise SystemExit(f"unshare: {os.strerror(ctypes.get_errno())}")
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise SystemExit(f"mount --make-rprivate /: {os.strerror(ctypes.get_errno())}")
    base = tempfile.mkdtemp(prefix="strato-bench-mounts-")
    for i in range(count):
        p = os.path.join(base, str(i)).encode()
        os.mkdir(p)
        if libc.mount(b"none", p, b"tmpfs", 0, b"size=4k") != 0:
            raise SystemExit(f"mount: {os.strerror(ctypes.get_errno())}")
    return base


def mount_count():
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


def report(label, res):
    print(f"  {label}")
    for n in (1, 10):
        r = res[n]
        base = r["unjailed"]
        print(f"    {n:2d} at once ({r['count']} samples each): unjailed {base:7.2f} ms")
        for m in MODES[1:]:
            print(f"      {m:16s} {r[m]:7.2f} ms: the jail adds {r[m] - base:6.2f} ms "
                  f"(ratio {r[m] / base:.2f})")
    return res


def main():
    vmm, probe, template = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    mounts = int(sys.argv[5]) if len(sys.argv) > 5 else 500
    print(f"exec -> first KVM_RUN, probe guest, 1 vCPU, 64 MiB, template {template}, medians")
    few = report(f"{mount_count()} mounts (this host)", measure(vmm, probe, template, rounds))
    base = add_mounts(mounts)
    many = report(f"{mount_count()} mounts ({mounts} added)", measure(vmm, probe, template, rounds))
    for n in (1, 10):
        for m in MODES[1:]:
            a = few[n][m] - few[n]["unjailed"]
            b = many[n][m] - many[n]["unjailed"]
            print(f"  {n:2d} at once, {m}: jail cost with {mounts} more mounts minus "
                  f"without: {b - a:+.2f} ms")
    aim = 2.0
    for m in MODES[1:]:
        print(f"  aim: the jail adds <= {aim:g} ms at 1 ({m}): ratio to aim "
              f"{(few[1][m] - few[1]['unjailed']) / aim:.2f}")
    remove_mounts(base, mounts)


def remove_mounts(base, count):
    """Detaches the added mounts and removes their directories."""
    libc = ctypes.CDLL(None, use_errno=True)
    for i in range(count):
        libc.umount2(os.path.join(base, str(i)).encode(), MNT_DETACH)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
