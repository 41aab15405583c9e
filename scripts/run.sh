#!/usr/bin/env bash
# The main job. Until the control daemon lands this boots the probe guest under
# strato-vmm with a scratch disk, a config drive and its API socket, and shows its console
# until the guest powers off or you press Ctrl-C. Installs what it needs on Debian 12.
#
#   scripts/run.sh [extra strato-vmm flags...]
#
# While it runs, talk to the monitor:  echo '{"op":"counters"}' | socat - UNIX:$RUN/api.sock
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATO_ROOT"

ensure_packages ca-certificates gcc libc6-dev binutils make tar
ensure_rust
ensure_kvm

probe="$(scripts/build-image.sh probe | tail -n 1)"
cargo build --release --locked -p strato-vmm >&2
vmm="$STRATO_ROOT/target/release/strato-vmm"
template="$("$vmm" --detect-cpu-template | cut -f1)"

RUN="${STRATO_RUN_DIR:-$STRATO_ROOT/target/run}"
mkdir -p "$RUN"
# A 64 MiB data disk and a config drive whose user data greets and leaves a marker.
[ -f "$RUN/data.img" ] || truncate -s 64M "$RUN/data.img"
printf '#!probe\necho hello from user data\nmarker vdb 8 written-by-user-data\n' >"$RUN/user-data"
tar --label=config-2 -C "$RUN" -cf "$RUN/config.tar" user-data
: >"$RUN/console.log"

echo "strato-vmm: cpu template $template; API socket $RUN/api.sock; console $RUN/console.log" >&2
"$vmm" --kernel "$probe/vmlinux" --cmdline "console=ttyS0" --cpus 1 --memory 64 \
	--disk "path=$RUN/config.tar,readonly=on" --disk "path=$RUN/data.img" --rng \
	--console "$RUN/console.log" --api-socket "$RUN/api.sock" --cpu-template "$template" "$@" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM
tail -n +1 -f "$RUN/console.log" --pid=$pid &
status=0
wait $pid || status=$?
echo "strato-vmm exited with status $status" >&2
exit $status
