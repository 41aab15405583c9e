#!/usr/bin/env bash
# stratod as a systemd service: builds what run.sh builds, links strato, stratod and
# strato-vmm into /usr/local/bin, installs /etc/systemd/system/stratod.service (from
# scripts/stratod.service), starts and enables it, and registers the probe guest as the AMI
# "probe":
#
#   scripts/install.sh                  # or: scripts/run.sh --install
#   strato run-instances --image-id <ami from the banner> --instance-type custom-1-64 --wait
#   journalctl -u stratod               # the daemon's log: one line per lifecycle event
#
# The service is Type=notify (`systemctl start` returns once the API answers), restarts on
# failure, and stops only the daemon: VMs keep running across a restart, a stop or an
# upgrade, and the daemon adopts them again when it starts. Idempotent: run it again after
# pulling to rebuild and restart. STRATO_DATA_DIR moves the data directory; arguments after
# `--` go to stratod; STRATO_BIN_DIR points the unit at other binaries.
#
#   scripts/install.sh --unit           # print the unit it would install, and nothing else
#   scripts/install.sh --uninstall      # stop and remove the service (VMs keep running)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATO_ROOT"

usage() {
	sed -n '2,19s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

mode=install
extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	--unit) mode=unit ;;
	--uninstall) mode=uninstall ;;
	-h | --help) usage ;;
	--)
		shift
		extra=("$@")
		break
		;;
	*)
		echo "install.sh: unknown argument $1 (arguments for stratod go after --)" >&2
		usage
		;;
	esac
	shift
done

DATA="${STRATO_DATA_DIR:-/var/lib/strato}"
UNIT=/etc/systemd/system/stratod.service
BIN="${STRATO_BIN_DIR:-/usr/local/bin}"

# The unit with this host's paths. Arguments are quoted for systemd's command line.
render_unit() {
	local args="" a
	for a in "${extra[@]+"${extra[@]}"}"; do
		a="${a//\\/\\\\}"
		args+=" \"${a//\"/\\\"}\""
	done
	echo "# stratod.service, installed by strato's scripts/install.sh from scripts/stratod.service."
	# The template's own header (what the placeholders are) stays behind.
	sed -e '1,/^\[Unit\]/{/^#/d}' -e "s|@BIN@|$BIN|g" -e "s|@DATA@|$DATA|g" -e "s|@ARGS@|${args# }|" \
		scripts/stratod.service
}

if [ "$mode" = unit ]; then
	render_unit
	exit 0
fi

# systemd manages services only where it is the init system.
if [ ! -d /run/systemd/system ]; then
	echo "systemd is not running on this host (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)):" \
		"run the daemon with scripts/run.sh instead" >&2
	exit 1
fi

if [ "$mode" = uninstall ]; then
	as_root systemctl disable --now stratod.service 2>/dev/null || true
	as_root rm -f "$UNIT"
	as_root systemctl daemon-reload
	echo "stratod.service removed; its VMs keep running (data in $DATA)" >&2
	exit 0
fi

ensure_packages ca-certificates gcc libc6-dev binutils make tar python3 nftables
ensure_rust
ensure_kvm
probe="$(build_and_link)"

tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
render_unit >"$tmp"
as_root install -m 0644 "$tmp" "$UNIT"
as_root systemctl daemon-reload
as_root systemctl enable stratod.service >&2
# restart, not start: a rerun after a rebuild runs the new binaries. Type=notify makes this
# wait until the daemon is ready, or fail with its status.
if ! as_root systemctl restart stratod.service; then
	echo "stratod did not start; its log:" >&2
	as_root journalctl -u stratod.service -n 30 --no-pager >&2 || true
	exit 1
fi

export STRATO_ENDPOINT="unix:$DATA/stratod.sock"
ami="$(ensure_probe_ami "$probe")" || {
	echo "cannot find or register the probe AMI (the service keeps running)" >&2
	exit 1
}
cat >&2 <<MSG

stratod.service is running (data $DATA). The probe guest is AMI $ami. Try:

  export STRATO_ENDPOINT=$STRATO_ENDPOINT
  strato run-instances --image-id $ami --instance-type custom-1-64 --wait
  strato describe-instance-status
  journalctl -u stratod -f

systemctl stop stratod stops the daemon; its VMs keep running and are adopted again on start.
MSG
