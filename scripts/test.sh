#!/usr/bin/env bash
# The test suite: formatting, lints, unit tests, device tests without a guest, KVM tests
# that boot the probe guest, and end-to-end tests (tests/) that drive stratod through the
# strato CLI and gRPC, each in a network namespace of its own. Installs what it needs on a
# fresh Debian 12 (root).
#
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh -- ARGS    extra arguments for `cargo test` (e.g. a test name filter)
#
# The slow real-Linux boot check is separate: scripts/linux-smoke.sh.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATO_ROOT"

ensure_packages ca-certificates gcc libc6-dev binutils make tar iproute2 iputils-ping iputils-arping nftables curl sqlite3 acpica-tools etcd-server etcd-client
ensure_rust
ensure_kvm
# The aws CLI, boto3 and grpcio for the EC2 Query API and stock-client tests.
ensure_query_clients
ensure_chromium

echo "== probe guest image" >&2
STRATO_PROBE_DIR="$(scripts/build-image.sh probe | tail -n 1)"
export STRATO_PROBE_DIR

echo "== rustfmt" >&2
if cargo fmt --version >/dev/null 2>&1; then
	cargo fmt --all -- --check
else
	echo "rustfmt not installed; skipping the format check" >&2
fi

echo "== clippy" >&2
if cargo clippy --version >/dev/null 2>&1; then
	cargo clippy --workspace --all-targets --locked -- -D warnings
else
	echo "clippy not installed; skipping lints" >&2
fi

echo "== image user-space tests (minimal init in a chroot, config drive conversion)" >&2
images/minimal/test-init.sh
images/debian/test-config-drive.sh

echo "== tests" >&2
[ "${1:-}" = "--" ] && shift
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The end-to-end tests run the workspace's binaries (stratod, strato, strato-vmm).
cargo build --workspace --bins --locked
set -o pipefail
cargo test --workspace --locked -- "$@" 2>&1 | tee "$log"
# cargo's last line is often a crate with no tests; close with the totals.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
