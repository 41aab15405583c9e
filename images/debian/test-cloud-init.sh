#!/usr/bin/env bash
# Tests the Debian image's cloud-init configuration for real, without booting it: the
# image's own cloud-init (Python, runs natively) in a chroot of the built root tree, seen
# through an overlay so the tree stays untouched, inside a network namespace of our own
# where the test metadata service (images/minimal/test-imds.py) listens on
# 169.254.169.254:80. Checks that cloud-init's datasource search, with the image's settings,
# picks Ec2 and reads instance ID, hostname, SSH key and user data, and that a tar config
# drive (through strato-config-drive) is picked as ConfigDrive first, before any network.
#
#   images/debian/test-cloud-init.sh      (root; needs the built tree: images/debian/build.sh
#                                          --root-only, which needs the Debian mirror)
#
# Every network object lives in the namespace strato-ci-<pid>, deleted on exit.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
HERE="$STRATO_ROOT/images/debian"
IMDS="$STRATO_ROOT/images/minimal/test-imds.py"

if [ "$(id -u)" -ne 0 ]; then
	echo "test-cloud-init.sh: needs root (network namespace, chroot, overlay mount)" >&2
	exit 1
fi
tree="$("$HERE/build.sh" --root-only | tail -n 1)"
tmp="$(mktemp -d /tmp/strato-ci-test.XXXXXX)"
ns="strato-ci-$$"
server_pid=""
merged="$tmp/merged"

unmount_all() {
	umount "$merged/proc" 2>/dev/null || true
	umount "$merged" 2>/dev/null || true
}
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
	unmount_all
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

CHECK_LOG="$tmp/out"

# new_instance: a fresh overlay over the tree (a new instance's root volume).
new_instance() {
	unmount_all
	rm -rf "$tmp/upper" "$tmp/work" "$merged"
	mkdir -p "$tmp/upper" "$tmp/work" "$merged"
	mount -t overlay overlay -o "lowerdir=$tree,upperdir=$tmp/upper,workdir=$tmp/work" "$merged"
	mount -t proc proc "$merged/proc"
}

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 169.254.169.254/32 dev lo
printf '#cloud-config\nruncmd: [ [ touch, /ran ] ]\n' >"$tmp/user-data"
ip netns exec "$ns" python3 "$IMDS" --address 169.254.169.254 --port 80 --user-data "$tmp/user-data" \
	--instance-id i-0000000000000abcd --hostname web1 --public-key "ssh-ed25519 AAAAC3NzaTEST test@strato" \
	--imdsv1 --log "$tmp/imds.log" --ready "$tmp/ready" &
server_pid=$!
for _ in $(seq 100); do
	[ -f "$tmp/ready" ] && break
	sleep 0.05
done

# What cloud-init's init stages do to find the datasource (stages.Init.fetch), with the
# image's /etc/cloud configuration; prints what the datasource found.
probe_datasource() { # local|network
	ip netns exec "$ns" chroot "$merged" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		python3 - "$1" <<'PY'
import logging, sys

from cloudinit import sources, stages
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s: %(message)s", force=True)
deps = [sources.DEP_FILESYSTEM] if sys.argv[1] == "local" else [sources.DEP_FILESYSTEM, sources.DEP_NETWORK]
init = stages.Init(ds_deps=deps)
init.read_cfg()
print("DATASOURCE_LIST", init.cfg.get("datasource_list"))
init.initialize()
ds = init.fetch(existing="trust")
print("DATASOURCE", ds.dsname)
print("INSTANCE_ID", ds.get_instance_id())
print("HOSTNAME", ds.get_hostname().hostname)
print("KEYS", ds.get_public_ssh_keys())
print("USERDATA", repr(ds.get_userdata_raw()))
PY
}

# ---- the metadata service (network stage) ----------------------------------------------
new_instance
: >"$tmp/imds.log"
probe_datasource network >"$tmp/out" 2>&1 || true
check "the image's datasource_list is ConfigDrive, Ec2, None" grep -q "DATASOURCE_LIST \['ConfigDrive', 'Ec2', 'None'\]" "$tmp/out"
check "no config drive: cloud-init picks the Ec2 datasource" grep -qx "DATASOURCE Ec2" "$tmp/out"
check "Ec2: instance ID from meta-data/instance-id" grep -qx "INSTANCE_ID i-0000000000000abcd" "$tmp/out"
check "Ec2: hostname from meta-data/local-hostname" grep -qx "HOSTNAME web1" "$tmp/out"
check "Ec2: the SSH key from meta-data/public-keys/" grep -qF "KEYS ['ssh-ed25519 AAAAC3NzaTEST test@strato']" "$tmp/out"
check "Ec2: the user data" grep -qF "USERDATA b'#cloud-config\\nruncmd: [ [ touch, /ran ] ]\\n'" "$tmp/out"
check "Ec2: no request refused" eval '! grep -q " 40[0-9] " "$tmp/imds.log"'
# cloud-init 22.4 asks for an IMDSv2 token only on platforms it identifies as AWS (from
# DMI, which strato guests do not have): elsewhere it reads without one, so strato's
# metadata service must accept token-less reads (EC2's HttpTokens=optional) for this image.
if grep -q "^PUT /latest/api/token 200" "$tmp/imds.log"; then
	echo "# note: cloud-init used IMDSv2 tokens"
else
	echo "# note: cloud-init read the metadata service without IMDSv2 tokens (IMDSv1)"
fi

# ---- a tar config drive (local stage, before any network) ------------------------------------
new_instance
mkdir -p "$tmp/cd"
printf '#cloud-config\nhostname: from-drive\n' >"$tmp/cd/user-data"
printf 'instance-id: i-00000000000000c0d\nlocal-hostname: cd1\n' >"$tmp/cd/meta-data"
tar --label=config-2 -C "$tmp/cd" -cf "$merged/config-drive.img" user-data meta-data
truncate -s 1M "$merged/config-drive.img"
ip netns exec "$ns" chroot "$merged" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	STRATO_BLOCK_DEVICES=/config-drive.img /usr/local/sbin/strato-config-drive >"$tmp/out" 2>&1 || true
check "strato-config-drive (in the image) seeds cloud-init from the tar drive" grep -q "instance i-00000000000000c0d" "$tmp/out"
: >"$tmp/imds.log"
probe_datasource local >"$tmp/out" 2>&1 || true
check "with the drive: cloud-init's local stage picks ConfigDrive" grep -qx "DATASOURCE ConfigDrive" "$tmp/out"
check "ConfigDrive: instance ID and hostname from the drive's meta-data" \
	eval 'grep -qx "INSTANCE_ID i-00000000000000c0d" "$tmp/out" && grep -qx "HOSTNAME cd1" "$tmp/out"'
check "ConfigDrive: the user data from the drive" grep -qF "USERDATA b'#cloud-config\\nhostname: from-drive\\n'" "$tmp/out"
check "ConfigDrive: the metadata service was not asked" [ ! -s "$tmp/imds.log" ]

checks_done
