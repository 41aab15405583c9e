#!/usr/bin/env bash
# Monitor benchmarks, measured in one run on this machine (see docs/performance.md):
#  1. a VM's whole life: strato-vmm (both irqchips) against a bare KVM program and, with
#     FIRECRACKER=path, Firecracker, on a tiny guest that prints one byte and resets
#     (whole process, exec -> output, teardown);
#  2. start-up to first KVM_RUN and to the probe's banner, and memory overhead per VMM, for
#     both irqchips;
#  3. the real Linux kernel's time to `Run /sbin/init` (scripts/linux-smoke.sh) with each
#     irqchip (skipped with BENCH_LINUX=0; the first run builds the kernel and its image);
#  4. virtio-blk throughput through the queue (no guest) against reading the file directly.
#  5. the jail's start-up cost: jailed beside unjailed, 1 and 10 at once, with the host's
#     mounts and with 500 more.
#
#   scripts/bench-vmm.sh [RUNS]        RUNS: rounds of 1 and runs of 2 (default 30 and 10)
#
# Environment: FIRECRACKER (path to a firecracker binary), BENCH_LINUX (0 to skip part 3),
# LINUX_RUNS (boots per irqchip in part 3, default 1).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATO_ROOT"

ensure_packages ca-certificates gcc libc6-dev binutils make python3
ensure_rust
ensure_kvm

probe="$(scripts/build-image.sh probe | tail -n 1)"
cargo build --release --locked -p strato-vmm --bin strato-vmm --example bare_kvm >&2
vmm="$STRATO_ROOT/target/release/strato-vmm"
bare="$STRATO_ROOT/target/release/examples/bare_kvm"
template="$("$vmm" --detect-cpu-template | cut -f1)"

echo "== machine"
echo "  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== whole process"
python3 scripts/bench_lifecycle.py "$vmm" "$bare" "$template" "${1:-30}" "${FIRECRACKER:-}"
echo
echo "== start-up and memory"
python3 scripts/bench_vmm.py "$vmm" "$probe" "$template" "${1:-10}"
echo
if [ "${BENCH_LINUX:-1}" != 0 ]; then
	echo "== real kernel: seconds from exec to 'Run /sbin/init' (scripts/linux-smoke.sh, 1 vCPU)"
	declare -A init_s=()
	for round in $(seq "${LINUX_RUNS:-1}"); do
		for mode in split kernel; do
			out="$(STRATO_VMM="$vmm" SMOKE_IRQCHIP="$mode" scripts/linux-smoke.sh 2>/dev/null)" || {
				echo "linux-smoke.sh failed with irqchip $mode" >&2
				exit 1
			}
			t="$(awk '/Run \/sbin\/init/ { print $1 }' <<<"$out")"
			echo "  irqchip $mode, boot $round: $t s"
			init_s[$mode]="${init_s[$mode]:-} $t"
		done
	done
	python3 - "${init_s[split]}" "${init_s[kernel]}" <<'PY'
import statistics, sys
split, kernel = ([float(x) for x in a.split()] for a in sys.argv[1:3])
s, k = statistics.median(split), statistics.median(kernel)
print(f"  median: split {s:.1f} s, kernel {k:.1f} s; split / kernel {s / k:.2f}")
PY
	echo
fi
echo "== the jail's start-up cost (jailed vs. unjailed, 1 and 10 at once, few and many mounts)"
python3 scripts/bench_jail.py "$vmm" "$probe" "$template" "${1:-10}" 500
echo
echo "== virtio-blk throughput (device driven through its queue, no guest) vs. raw file"
cargo run --release --locked -q -p strato-devices --example blk_throughput
