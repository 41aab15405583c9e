#!/usr/bin/env bash
# Tests the minimal image's init (images/minimal/init.sh) for real, without booting it: its
# network-independent steps run in a chroot of the built root tree (busybox runs natively),
# inside a network namespace of our own where a test metadata service (test-imds.py) listens
# on 169.254.169.254:80. Checks the IMDSv2 token flow, user data run exactly once across two
# "boots", once per instance, the config-drive path, and the failure cases.
#
#   images/minimal/test-init.sh        (as root; about 10 s; prints one line per check)
#
# Every network object lives in the namespace strato-init-<pid>, deleted on exit.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
HERE="$STRATO_ROOT/images/minimal"

if [ "$(id -u)" -ne 0 ]; then
	echo "test-init.sh: needs root (network namespace, chroot)" >&2
	exit 1
fi
ensure_packages python3 iproute2 tar

tree="$("$HERE/build.sh" --root-only | tail -n 1)"
tmp="$(mktemp -d /tmp/strato-init-test.XXXXXX)"
ns="strato-init-$$"
server_pid=""

cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

checks=0
failures=0
ok() {
	checks=$((checks + 1))
	echo "ok $checks - $*"
}
not_ok() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	echo "not ok $checks - $*"
	if [ -f "$tmp/out" ]; then sed 's/^/#   /' "$tmp/out"; fi
}
check() { # DESCRIPTION COMMAND...
	local d="$1"
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 169.254.169.254/32 dev lo

# start_imds [ARGS...]: (re)starts the metadata service in the namespace.
start_imds() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -f "$tmp/ready"
	ip netns exec "$ns" python3 "$HERE/test-imds.py" --address 169.254.169.254 --port 80 \
		--log "$tmp/imds.log" --ready "$tmp/ready" "$@" &
	server_pid=$!
	for _ in $(seq 100); do
		[ -f "$tmp/ready" ] && return 0
		sleep 0.05
	done
	echo "test-init.sh: the test metadata service did not start" >&2
	exit 1
}

# new_root: a fresh copy of the built root tree, i.e. a new instance's root volume.
new_root() {
	rm -rf "$tmp/root"
	cp -a "$tree" "$tmp/root"
	mknod -m 666 "$tmp/root/dev/null" c 1 3
	mknod -m 666 "$tmp/root/dev/zero" c 1 5
	mknod -m 444 "$tmp/root/dev/urandom" c 1 9
}

# reboot_root: what a reboot does to the root volume: /run starts empty.
reboot_root() {
	rm -rf "$tmp/root/run"
	mkdir -p "$tmp/root/run"
}

# init STEP... (env: BLOCKS, IMDS, TTL): runs /sbin/init --step in the chroot, in the
# namespace; output in $tmp/out.
init() {
	ip netns exec "$ns" chroot "$tmp/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		STRATO_BLOCK_DEVICES="${BLOCKS:-}" STRATO_IMDS="${IMDS:-http://169.254.169.254}" \
		STRATO_TOKEN_TTL="${TTL:-21600}" STRATO_HTTP_TIMEOUT=3 \
		/sbin/init --step "$@" >"$tmp/out" 2>&1
}

out_has() { grep -qF -- "$1" "$tmp/out"; }
count_in() { grep -cF -- "$1" "$2" 2>/dev/null || true; }
marker() { sed -n "s/^$1=//p" "$tmp/root/var/lib/strato/user-data.done" 2>/dev/null; }

printf '#!/bin/sh\necho "hello from user data"\necho ran >>/var/lib/ran-count\n' >"$tmp/user-data"

# ---- the metadata service itself -------------------------------------------------------
start_imds --user-data "$tmp/user-data" --instance-id i-00000000000000001
http() { # METHOD PATH [HEADER=VALUE]: prints the status code, from inside the namespace
	ip netns exec "$ns" python3 - "$@" <<'PY'
import http.client, sys
method, path, *hdrs = sys.argv[1:]
c = http.client.HTTPConnection("169.254.169.254", 80, timeout=5)
c.request(method, path, headers=dict(h.split("=", 1) for h in hdrs))
print(c.getresponse().status)
PY
}
check "IMDS: PUT token without the TTL header is refused (400)" [ "$(http PUT /latest/api/token)" = 400 ]
check "IMDS: PUT token with TTL 0 is refused (400)" [ "$(http PUT /latest/api/token X-aws-ec2-metadata-token-ttl-seconds=0)" = 400 ]
check "IMDS: PUT token with TTL 21601 is refused (400)" [ "$(http PUT /latest/api/token X-aws-ec2-metadata-token-ttl-seconds=21601)" = 400 ]
check "IMDS: GET user-data without a token is refused (401)" [ "$(http GET /latest/user-data)" = 401 ]
check "IMDS: GET user-data with a made-up token is refused (401)" [ "$(http GET /latest/user-data X-aws-ec2-metadata-token=bogus)" = 401 ]

# ---- the token flow from the guest side --------------------------------------------------
new_root
: >"$tmp/imds.log"
if init token && [ -n "$(cat "$tmp/out")" ] && [ "$(count_in "PUT /latest/api/token 200" "$tmp/imds.log")" = 1 ]; then
	ok "init --step token: gets an IMDSv2 token with PUT /latest/api/token (busybox nc)"
else not_ok "init --step token"; fi
reboot_root
if ! TTL=0 init token && out_has "token request" && out_has "(400)"; then
	ok "init --step token: a refused TTL fails the step and says why"
else not_ok "init --step token with TTL 0"; fi
reboot_root
if init fetch-user-data && out_has 'echo "hello from user data"' && out_has "bytes from metadata service"; then
	ok "init --step fetch-user-data: fetches the user data with the token"
else not_ok "init --step fetch-user-data"; fi
reboot_root
if init instance-id && out_has i-00000000000000001; then
	ok "init --step instance-id: reads meta-data/instance-id"
else not_ok "init --step instance-id"; fi

# ---- user data: exactly once across reboots -----------------------------------------------
new_root
: >"$tmp/imds.log"
init user-data || true
if out_has "hello from user data" && out_has "finished, exit status 0" &&
	[ "$(count_in ran "$tmp/root/var/lib/ran-count")" = 1 ]; then
	ok "boot 1: user data from the metadata service runs"
else not_ok "boot 1: user data runs"; fi
check "boot 1: the marker records the instance and the exit status" \
	[ "$(marker instance-id)" = i-00000000000000001 -a "$(marker status)" = exit-0 ]
check "boot 1: the user data is fetched once, with a token" \
	[ "$(count_in "GET /latest/user-data 200 token" "$tmp/imds.log")" = 1 -a "$(count_in "GET /latest/user-data 401" "$tmp/imds.log")" = 0 ]
reboot_root
init user-data || true
if out_has "already handled" && ! out_has "hello from user data" &&
	[ "$(count_in ran "$tmp/root/var/lib/ran-count")" = 1 ] &&
	[ "$(count_in "GET /latest/user-data" "$tmp/imds.log")" = 1 ]; then
	ok "boot 2: the user data does not run again and is not fetched again"
else not_ok "boot 2: user data does not run again"; fi

# The same root volume under another instance (an image made from this instance).
start_imds --user-data "$tmp/user-data" --instance-id i-00000000000000002
reboot_root
init user-data || true
if out_has "handling user data again" && out_has "hello from user data" &&
	[ "$(count_in ran "$tmp/root/var/lib/ran-count")" = 2 ] && [ "$(marker instance-id)" = i-00000000000000002 ]; then
	ok "another instance booting this root volume runs its user data once"
else not_ok "another instance runs its user data"; fi
reboot_root
init user-data || true
check "... and not again on its next boot" [ "$(count_in ran "$tmp/root/var/lib/ran-count")" = 2 ]

# ---- user data that is not a script, no user data, unreachable service -------------------
printf 'just some text\n' >"$tmp/plain"
start_imds --user-data "$tmp/plain"
new_root
init user-data || true
check "user data without #! is not run and is marked not-a-script" \
	eval 'out_has "not a script" && [ "$(marker status)" = not-a-script ]'

start_imds
new_root
init user-data || true
check "no user data (404): nothing runs, marked none" eval 'out_has "none in metadata service" && [ "$(marker status)" = none ]'

new_root
if ! IMDS=http://169.254.169.254:81 init user-data && [ ! -e "$tmp/root/var/lib/strato/user-data.done" ]; then
	ok "metadata service unreachable: the step fails and leaves no marker (next boot tries again)"
else not_ok "metadata service unreachable"; fi

# ---- config drive ---------------------------------------------------------------------
start_imds --user-data "$tmp/user-data"
mkdir -p "$tmp/cd"
printf '#!/bin/sh\necho "hello from the config drive"\necho cd >>/var/lib/ran-count\n' >"$tmp/cd/user-data"
printf 'instance-id: i-0000000000000c0de\n' >"$tmp/cd/meta-data"
new_root
tar --label=config-2 -C "$tmp/cd" -cf "$tmp/root/config-drive.img" user-data meta-data
truncate -s 1M "$tmp/root/config-drive.img"
head -c 4096 /dev/zero >"$tmp/root/not-a-drive.img"
: >"$tmp/imds.log"
if BLOCKS="/not-a-drive.img /config-drive.img" init config-drive && out_has "config-drive: /config-drive.img"; then
	ok "init --step config-drive: finds the tar volume labelled config-2"
else not_ok "init --step config-drive"; fi
BLOCKS="/not-a-drive.img /config-drive.img" init user-data || true
if out_has "hello from the config drive" && [ "$(count_in cd "$tmp/root/var/lib/ran-count")" = 1 ] &&
	[ "$(marker instance-id)" = i-0000000000000c0de ] && [ ! -s "$tmp/imds.log" ]; then
	ok "config drive boot 1: its user data runs, without asking the metadata service"
else not_ok "config drive boot 1"; fi
reboot_root
BLOCKS="/not-a-drive.img /config-drive.img" init user-data || true
if out_has "already handled" && [ "$(count_in cd "$tmp/root/var/lib/ran-count")" = 1 ]; then
	ok "config drive boot 2: it does not run again"
else not_ok "config drive boot 2"; fi

new_root
tar --label=config-2 -C "$tmp/cd" -cf "$tmp/root/config-drive.img" ./user-data
BLOCKS="/config-drive.img" init user-data || true
check "a config drive whose member is ./user-data (no meta-data) works too" \
	eval 'out_has "hello from the config drive" && [ "$(marker status)" = exit-0 ]'

# ---- volumes (no block devices in a chroot: checks what the step asks for) ---------------
start_imds --bdm ebs1=sdc --bdm ephemeral0=/dev/xvdd
new_root
init volumes || true
if out_has "volumes: /dev/vdb not attached, /data not mounted" &&
	out_has "volumes: /dev/vdc not attached, /mnt/ebs1 not mounted" &&
	out_has "volumes: /dev/vdd not attached, /mnt/ephemeral0 not mounted"; then
	ok "init --step volumes: mounts the baked mapping and the metadata service's block-device-mapping/"
else not_ok "init --step volumes"; fi

# ---- helpers ---------------------------------------------------------------------------
new_root
ip netns exec "$ns" chroot "$tmp/root" /bin/sh -c '. /sbin/init --source; for d in sdb /dev/sdc xvdd /dev/vde; do guest_device $d; done' >"$tmp/out" 2>&1 || true
check "EC2 device names map to /dev/vdX (sdb, /dev/sdc, xvdd, /dev/vde)" \
	[ "$(tr '\n' ' ' <"$tmp/out")" = "/dev/vdb /dev/vdc /dev/vdd /dev/vde " ]

echo "# $checks checks, $failures failed"
[ "$failures" -eq 0 ]
