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
