#!/usr/bin/env bash
# The main job: stratod on its embedded defaults (data in /var/lib/strato, the API on the
# owner-only socket /var/lib/strato/stratod.sock), with the probe guest registered as the AMI
# "probe", so that the CLI works at once:
#
#   scripts/run.sh                      # keeps running in the foreground; Ctrl-C stops it
#   strato run-instances --image-id <ami from the banner> --instance-type custom-1-64 --wait
#   strato describe-instance-status
#
# Installs what it needs on Debian 12 (packages, Rust, the probe image), builds release
# binaries and links strato, stratod and strato-vmm into /usr/local/bin. Idempotent.
# STRATO_DATA_DIR moves the data directory; extra arguments go to stratod. VMs keep running
# when the daemon stops and are adopted again when it starts. One daemon per data directory:
# a second run.sh while one runs stops with the first daemon's PID. scripts/install.sh runs
# the same daemon as a systemd service instead.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATO_ROOT"
if [ "${1:-}" = --install ]; then
	shift
	exec scripts/install.sh "$@"
fi

ensure_packages ca-certificates gcc libc6-dev binutils make tar python3 nftables
ensure_rust
ensure_kvm

probe="$(build_and_link)"
bin="$STRATO_ROOT/target/release"

DATA="${STRATO_DATA_DIR:-/var/lib/strato}"
SOCK="$DATA/stratod.sock"
export STRATO_ENDPOINT="unix:$SOCK"
cli() { as_root "$bin/strato" --endpoint "$STRATO_ENDPOINT" "$@"; }

# The daemon itself is the background job (not a function or subshell around it), so that
# $! is its PID; under sudo it is sudo's, which passes signals on to the daemon.
if [ "$(id -u)" -eq 0 ]; then
	"$bin/stratod" --data-dir "$DATA" "$@" &
else
	sudo "$bin/stratod" --data-dir "$DATA" "$@" &
fi
pid=$!
# Running, not a zombie waiting to be reaped.
alive() {
	local st
	st="$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" && [ "$st" != Z ]
}
# SIGINT and SIGTERM stop the daemon and wait for it (its VMs keep running).
stop() {
	trap - INT TERM
	as_root kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	exit 0
}
trap stop INT TERM

# Ready when the daemon answers on its socket: a socket file alone may be a stale one, and
# a daemon that exits (say, because another one holds the data directory) ends the script
# with its message and status.
ready=
for _ in $(seq 1 600); do
	if ! alive; then
		code=0
		wait "$pid" || code=$?
		echo "stratod exited with status $code before it was ready" >&2
		exit "$code"
	fi
	# Answering, and still alive afterwards: the answer was not another daemon's.
	if [ -S "$SOCK" ] && cli describe-regions >/dev/null 2>&1 && alive; then
		ready=1
		break
	fi
	sleep 0.1
done
if [ -z "$ready" ]; then
	echo "stratod did not answer on $SOCK within 60 s; stopping it" >&2
	stop
fi
# The daemon's own PID, from its lock on the data directory.
daemon_pid="$(as_root cat "$DATA/stratod.lock" 2>/dev/null || echo "$pid")"

ami="$(ensure_probe_ami "$probe")" || {
	echo "cannot find or register the probe AMI; stopping stratod" >&2
	stop
}
cat >&2 <<MSG

stratod is running (pid $daemon_pid, data $DATA). The probe guest is AMI $ami. Try:

  export STRATO_ENDPOINT=$STRATO_ENDPOINT
  strato run-instances --image-id $ami --instance-type custom-1-64 --wait
  strato describe-instance-status
  strato get-console-output --instance-id i-...

Ctrl-C (or SIGTERM to this script) stops the daemon; its VMs keep running.
MSG
wait "$pid"
