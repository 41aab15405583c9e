# Shared helpers for strato's scripts. Source it; it defines functions only.

STRATO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Runs a command as root (directly when we are root, else through sudo).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the given Debian packages unless dpkg already has them.
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	echo "installing: ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
		{ as_root apt-get update >&2 && as_root apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

# Installs Debian's Chromium for the web view's page tests (tests/e2e/web.rs); where it
# cannot be installed those tests skip and say so.
ensure_chromium() {
	ensure_packages chromium ||
		echo "chromium could not be installed: the web view's page tests will skip" >&2
}

# Makes cargo available: a rustup install in ~/.cargo if there is one, else Debian's.
ensure_rust() {
	if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
		# shellcheck disable=SC1091
		. "$HOME/.cargo/env"
	fi
	if ! command -v cargo >/dev/null 2>&1; then
		ensure_packages cargo rustc
	fi
	command -v cargo >/dev/null 2>&1 || { echo "cargo not found" >&2; return 1; }
	# etcd-client's build script compiles etcd's protos with the system protoc (and its
	# well-known types, in libprotobuf-dev).
	ensure_packages protobuf-compiler libprotobuf-dev
}

# Checks that this host can run VMs at all.
ensure_kvm() {
	if [ ! -c /dev/kvm ]; then
		echo "/dev/kvm is missing: strato needs KVM" >&2
		return 1
	fi
	[ -c /dev/net/tun ] || as_root modprobe tun 2>/dev/null || true
	# Security groups filter bridged traffic in the inet hooks, which needs br_netfilter.
	[ -d /proc/sys/net/bridge ] || as_root modprobe br_netfilter 2>/dev/null || true
}

# TAP-style checks for the shell test scripts: `check DESCRIPTION COMMAND...` runs COMMAND
# and prints ok/not ok; on failure the tail of $CHECK_LOG (if set and present) is shown.
# `checks_done` prints the totals and fails if any check failed.
checks=0
failures=0
check() {
	local d="$1"
	shift
	checks=$((checks + 1))
	if "$@"; then
		echo "ok $checks - $d"
	else
		failures=$((failures + 1))
		echo "not ok $checks - $d"
		if [ -n "${CHECK_LOG:-}" ] && [ -f "$CHECK_LOG" ]; then
			sed 's/^/#   /' "$CHECK_LOG" | tail -n 40
		fi
	fi
}
checks_done() {
	echo "# $checks checks, $failures failed"
	[ "$failures" -eq 0 ]
}

# The real clients of the EC2 Query API and of the gRPC API that the end-to-end tests drive
# (the aws CLI, boto3, grpcio), pinned, in a virtual environment under target/ so that a
# clean clone can make it. Idempotent: a stamp records what is installed.
QUERY_CLIENTS="awscli==1.45.11 botocore==1.43.11 boto3==1.43.11 grpcio==1.85.1 grpcio-reflection==1.85.1 grpcio-health-checking==1.85.1"
ensure_query_clients() {
	local venv="$STRATO_ROOT/target/query-venv"
	if [ -f "$venv/stamp" ] && [ "$(cat "$venv/stamp")" = "$QUERY_CLIENTS" ]; then
		return 0
	fi
	command -v python3 >/dev/null 2>&1 || ensure_packages python3
	python3 -m venv --help >/dev/null 2>&1 || ensure_packages python3-venv
	echo "installing the Query API's test clients into $venv: $QUERY_CLIENTS" >&2
	rm -rf "$venv"
	python3 -m venv "$venv" >&2 || { ensure_packages python3-venv && python3 -m venv "$venv" >&2; }
	# shellcheck disable=SC2086
	"$venv/bin/python" -m pip install --disable-pip-version-check -q $QUERY_CLIENTS >&2
	echo "$QUERY_CLIENTS" >"$venv/stamp"
}

# Builds the release binaries and links strato, stratod and strato-vmm into /usr/local/bin
# (run.sh and install.sh). Prints the probe image's folder on stdout.
build_and_link() {
	local probe b
	probe="$(scripts/build-image.sh probe | tail -n 1)"
	cargo build --release --locked -p stratod -p strato-cli -p strato-vmm >&2
	for b in strato stratod strato-vmm; do
		as_root ln -sf "$STRATO_ROOT/target/release/$b" "/usr/local/bin/$b"
	done
	echo "$probe"
}

# Prints the AMI named "probe", registering the probe bundle $1 under that name first if
# there is none. Talks to the daemon at $STRATO_ENDPOINT.
ensure_probe_ami() {
	local bundle="$1" images ami
	images="$(as_root "$STRATO_ROOT/target/release/strato" --endpoint "$STRATO_ENDPOINT" \
		describe-images --filters Name=name,Values=probe --output json)" || return 1
	ami="$(printf '%s' "$images" |
		python3 -c 'import json,sys; i=json.load(sys.stdin).get("Images",[]); print(i[0]["ImageId"] if i else "")')"
	if [ -z "$ami" ]; then
		ami="$(as_root "$STRATO_ROOT/target/release/strato" --endpoint "$STRATO_ENDPOINT" \
			register-image --name probe \
			--description "strato's probe guest with a blank 1 GiB root volume" --bundle "$bundle" \
			--block-device-mappings '[{"DeviceName":"/dev/vda","Ebs":{"VolumeSize":1,"DeleteOnTermination":true}}]')" ||
			return 1
	fi
	echo "$ami"
}
