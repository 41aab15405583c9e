#!/usr/bin/env bash
# Tests strato-config-drive (the Debian image's tar config drive -> cloud-init ConfigDrive
# seed translation) with the host's python3, on files instead of block devices.
#
#   images/debian/test-config-drive.sh      (about 1 s; needs python3 and GNU tar)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOL="$HERE/rootfs/usr/local/sbin/strato-config-drive"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

run() { STRATO_SEED="$tmp/seed" STRATO_BLOCK_DEVICES="$*" python3 "$TOOL" >"$tmp/out" 2>&1; }
seed="$tmp/seed/openstack/latest"
md() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$1)" "$seed/meta_data.json"; }

mkdir -p "$tmp/in"
printf '#cloud-config\nruncmd: [ [ touch, /ran ] ]\n' >"$tmp/in/user-data"
printf 'instance-id: i-0123456789abcdef0\nlocal-hostname: web1\n' >"$tmp/in/meta-data"
printf 'ssh-ed25519 AAAAC3Nza key-one\nssh-ed25519 AAAAC3Nzb key-two\n' >"$tmp/in/public-keys"
tar --label=config-2 -C "$tmp/in" -cf "$tmp/cd.tar" user-data meta-data public-keys
truncate -s 1M "$tmp/cd.tar"
head -c 4096 /dev/zero >"$tmp/blank.img"

run "$tmp/blank.img" "$tmp/cd.tar"
check "finds the tar config drive among other disks" grep -q "cd.tar: instance i-0123456789abcdef0" "$tmp/out"
check "user-data becomes the seed's user_data" cmp -s "$tmp/in/user-data" "$seed/user_data"
check "instance-id becomes uuid (cloud-init's instance-id)" [ "$(md "['uuid']")" = i-0123456789abcdef0 ]
check "local-hostname becomes hostname" [ "$(md "['hostname']")" = web1 ]
check "public-keys become public_keys" [ "$(md "['public_keys']['key1']")" = "ssh-ed25519 AAAAC3Nzb key-two" ]

run "$tmp/blank.img"
check "no config drive any more: the seed it wrote is removed" [ ! -e "$tmp/seed" ]

tar --label=config-2 -C "$tmp/in" -cf "$tmp/cd2.tar" ./user-data
run "$tmp/cd2.tar"
uuid1="$(md "['uuid']")"
run "$tmp/cd2.tar"
check "./user-data alone: an instance ID derived from the user data, stable across boots" \
	[ "${uuid1#cd-}" != "$uuid1" -a "$(md "['uuid']")" = "$uuid1" ]

printf '{"uuid": "i-00000000000000042", "name": "x"}' >"$tmp/in/meta_data.json"
tar --label=config-2 -C "$tmp/in" -cf "$tmp/cd3.tar" user-data meta_data.json
run "$tmp/cd3.tar"
check "an OpenStack meta_data.json member is used as it is" [ "$(md "['name']")" = x ]

mkdir -p "$tmp/seed/openstack/latest"
echo '{"uuid": "theirs"}' >"$tmp/seed/openstack/latest/meta_data.json"
rm -f "$tmp/seed/.strato"
run "$tmp/blank.img"
check "a seed it did not write is left alone" [ -f "$tmp/seed/openstack/latest/meta_data.json" ]

checks_done
