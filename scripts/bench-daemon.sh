#!/usr/bin/env bash
# Control-plane benchmark: RunInstances → running and → status ok for 1 and 20 probe guests
# (64 MiB each), and stratod's resident memory; one table from one run. Then a bounded load
# run (tests/bench/bench_load.rs): 32 gRPC clients, a mix of describes and mutations, 30 s,
# 20 running guests. Then DescribeInstances of 100 instances through the EC2 Query API
# beside gRPC (tests/bench/bench_query.rs). Each daemon runs in a network namespace the benchmark creates and
# removes. Figures: docs/performance.md.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATO_ROOT"

ensure_packages ca-certificates gcc libc6-dev binutils make tar iproute2
ensure_rust
ensure_kvm
# botocore signs the Query benchmark's request.
ensure_query_clients
STRATO_PROBE_DIR="$(scripts/build-image.sh probe | tail -n 1)"
export STRATO_PROBE_DIR
cargo build --release --locked --workspace --bins >&2
cargo run --release --locked -p strato-e2e --example bench-daemon
# The bounded load run: 32 gRPC clients, a mix of describes and mutations, 30 s, 20 VMs.
cargo run --release --locked -p strato-e2e --example bench-load -- 32 30
# DescribeInstances of 100 running guests, Query API beside gRPC, 200 calls each.
cargo run --release --locked -p strato-e2e --example bench-query -- 100 200
