#!/usr/bin/env bash
# Monitor benchmarks, measured in one run on this machine (see docs/performance.md):
# start-up to first KVM_RUN and to the probe's banner, memory overhead per VMM, the jail's
# start-up cost (jailed beside unjailed, 1 and 10 at once, with the host's mounts and with
# 500 more), and virtio-blk throughput through the queue (no guest) against reading the
# file directly.
#
#   scripts/bench-vmm.sh [RUNS]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATO_ROOT"

ensure_packages ca-certificates gcc libc6-dev binutils make python3
ensure_rust
ensure_kvm

probe="$(scripts/build-image.sh probe | tail -n 1)"
cargo build --release --locked -p strato-vmm >&2
vmm="$STRATO_ROOT/target/release/strato-vmm"
template="$("$vmm" --detect-cpu-template | cut -f1)"

echo "== start-up and memory"
python3 scripts/bench_vmm.py "$vmm" "$probe" "$template" "${1:-10}"
echo
echo "== the jail's start-up cost (jailed vs. unjailed, 1 and 10 at once, few and many mounts)"
python3 scripts/bench_jail.py "$vmm" "$probe" "$template" "${1:-10}" 500
echo
echo "== virtio-blk throughput (device driven through its queue, no guest) vs. raw file"
cargo run --release --locked -q -p strato-devices --example blk_throughput
