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
# when the daemon stops and are adopted again when it starts.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATO_ROOT"

ensure_packages ca-certificates gcc libc6-dev binutils make tar python3 nftables
ensure_rust
ensure_kvm

probe="$(scripts/build-image.sh probe | tail -n 1)"
cargo build --release --locked -p stratod -p strato-cli -p strato-vmm >&2
bin="$STRATO_ROOT/target/release"
for b in strato stratod strato-vmm; do
	as_root ln -sf "$bin/$b" "/usr/local/bin/$b"
done

DATA="${STRATO_DATA_DIR:-/var/lib/strato}"
SOCK="$DATA/stratod.sock"
export STRATO_ENDPOINT="unix:$SOCK"

as_root "$bin/stratod" --data-dir "$DATA" "$@" &
pid=$!
trap 'as_root kill -TERM $pid 2>/dev/null || true' INT TERM
for _ in $(seq 1 200); do
	[ -S "$SOCK" ] && break
	kill -0 $pid 2>/dev/null || { wait $pid; exit $?; }
	sleep 0.05
done

ami="$(as_root "$bin/strato" --endpoint "$STRATO_ENDPOINT" describe-images --filters Name=name,Values=probe --output json |
	python3 -c 'import json,sys; i=json.load(sys.stdin).get("Images",[]); print(i[0]["ImageId"] if i else "")')"
if [ -z "$ami" ]; then
	ami="$(as_root "$bin/strato" --endpoint "$STRATO_ENDPOINT" register-image --name probe \
		--description "strato's probe guest with a blank 1 GiB root volume" --bundle "$probe" \
		--block-device-mappings '[{"DeviceName":"/dev/vda","Ebs":{"VolumeSize":1,"DeleteOnTermination":true}}]')"
fi
cat >&2 <<MSG

stratod is running (pid $pid, data $DATA). The probe guest is AMI $ami. Try:

  export STRATO_ENDPOINT=$STRATO_ENDPOINT
  strato run-instances --image-id $ami --instance-type custom-1-64 --wait
  strato describe-instance-status
  strato get-console-output --instance-id i-...

MSG
wait $pid
