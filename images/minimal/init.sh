#!/bin/sh
# shellcheck shell=dash
# strato "minimal" image: /sbin/init (busybox ash).
#
#   /sbin/init                   as PID 1: run every boot step in order, then hand over to
#                                busybox init (/etc/inittab: console shell, Ctrl-Alt-Del)
#   /sbin/init --step STEP...    run only the named steps, in the order given, and exit
#                                non-zero if one of them failed
#   . /sbin/init --source        define the functions and settings only (for tests)
#
# Steps (the boot order):
#   mounts      /proc, /sys, /dev, /dev/pts, /run, /tmp; root read-write; hostname
#   network     lo up; eth0 keeps the kernel's ip= address, else DHCP with udhcpc
#   volumes     mount what /etc/strato/volumes names (baked from the image's block device
#               mapping), then the metadata service's block-device-mapping/ entries
#   user-data   fetch user data (config drive, else the metadata service with the IMDSv2
#               token flow), run it if it starts with #!, once per instance
# Extra steps for tests and debugging: token (print an IMDSv2 token), fetch-user-data (print
# the user data), config-drive (print the config drive's device), instance-id.
#
# Every step logs one or more "strato-init: ..." lines to stdout, which is /dev/console
# when the kernel starts us. Settings (environment, for tests):
#   STRATO_IMDS           metadata service base URL      (http://169.254.169.254)
#   STRATO_BLOCK_DEVICES  devices/files to look for a config drive on (/dev/vd[a-z] ...)
#   STRATO_STATE          state folder on the root volume (/var/lib/strato)
#   STRATO_RUN            per-boot folder (/run/strato)
#   STRATO_IFACE          network interface (eth0)
#   STRATO_HTTP_TIMEOUT   seconds per metadata request (5)
#   STRATO_TOKEN_TTL      IMDSv2 token lifetime asked for, seconds (21600)

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

STRATO_IMDS="${STRATO_IMDS:-http://169.254.169.254}"
STRATO_STATE="${STRATO_STATE:-/var/lib/strato}"
STRATO_RUN="${STRATO_RUN:-/run/strato}"
STRATO_IFACE="${STRATO_IFACE:-eth0}"
STRATO_HTTP_TIMEOUT="${STRATO_HTTP_TIMEOUT:-5}"
STRATO_TOKEN_TTL="${STRATO_TOKEN_TTL:-21600}"
STRATO_VOLUMES_FILE="${STRATO_VOLUMES_FILE:-/etc/strato/volumes}"
USER_DATA_MARKER="$STRATO_STATE/user-data.done"

log() {
	echo "strato-init: $*"
}

is_mounted() {
	grep -q "^[^ ]* $1 " /proc/mounts 2>/dev/null
}

# ---- mounts ----------------------------------------------------------------------------
step_mounts() {
	[ -e /proc/self ] || mount -t proc -o nosuid,nodev,noexec proc /proc || log "mounts: /proc failed"
	is_mounted /sys || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || log "mounts: /sys failed"
	is_mounted /dev || mount -t devtmpfs -o nosuid,mode=755 devtmpfs /dev || log "mounts: /dev failed"
	mkdir -p /dev/pts /dev/shm
	is_mounted /dev/pts || mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts /dev/pts || log "mounts: /dev/pts failed"
	is_mounted /run || mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs /run || log "mounts: /run failed"
	is_mounted /tmp || mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp || log "mounts: /tmp failed"
	mount -o remount,rw / 2>/dev/null || log "mounts: cannot remount / read-write"
	[ -s /etc/hostname ] && hostname -F /etc/hostname
	log "mounts: done ($(awk '{printf "%s ", $2}' /proc/mounts 2>/dev/null))"
}

# ---- network ---------------------------------------------------------------------------
ipv4_of() {
	ip -4 -o addr show dev "$1" 2>/dev/null | awk '{print $4; exit}'
}

step_network() {
	local addr
	ip link set lo up
	if ! ip link show "$STRATO_IFACE" >/dev/null 2>&1; then
		log "network: no $STRATO_IFACE, no network"
		return 1
	fi
	ip link set "$STRATO_IFACE" up
	addr="$(ipv4_of "$STRATO_IFACE")"
	if [ -n "$addr" ]; then
		log "network: $STRATO_IFACE $addr (kernel ip= configuration)"
		return 0
	fi
	log "network: $STRATO_IFACE: asking DHCP"
	if udhcpc -i "$STRATO_IFACE" -n -q -t 5 -T 2 -s /etc/strato/udhcpc.script 2>&1 | sed 's/^/strato-init: network: udhcpc: /'; then
		addr="$(ipv4_of "$STRATO_IFACE")"
	fi
	if [ -z "$addr" ]; then
		log "network: $STRATO_IFACE: no DHCP lease"
		return 1
	fi
	log "network: $STRATO_IFACE $addr (DHCP)"
}

# ---- metadata service (IMDSv2) ---------------------------------------------------------
imds_host() {
	echo "$STRATO_IMDS" | sed -e 's|^[a-z]*://||' -e 's|/.*$||' -e 's|:.*$||'
}

imds_port() {
	local p
	p="$(echo "$STRATO_IMDS" | sed -e 's|^[a-z]*://||' -e 's|/.*$||' | sed -n 's|^.*:\([0-9][0-9]*\)$|\1|p')"
	echo "${p:-80}"
}

# Prints an IMDSv2 session token: PUT /latest/api/token with the TTL header. busybox wget
# cannot PUT, so the request goes out raw through nc. The token is kept for this boot in
# $STRATO_RUN/imds-token.
imds_token() {
	local host port resp status token
	if [ -s "$STRATO_RUN/imds-token" ]; then
		cat "$STRATO_RUN/imds-token"
		return 0
	fi
	host="$(imds_host)"
	port="$(imds_port)"
	resp="$(printf 'PUT /latest/api/token HTTP/1.0\r\nHost: %s\r\nX-aws-ec2-metadata-token-ttl-seconds: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' \
		"$host" "$STRATO_TOKEN_TTL" | timeout "$STRATO_HTTP_TIMEOUT" nc -w "$STRATO_HTTP_TIMEOUT" "$host" "$port" 2>/dev/null | tr -d '\r')"
	status="$(printf '%s\n' "$resp" | head -n 1 | cut -d ' ' -f 2)"
	if [ "$status" != 200 ]; then
		log "metadata: token request to $host:$port failed (${status:-no answer})" >&2
		return 1
	fi
	token="$(printf '%s\n' "$resp" | sed '1,/^$/d')"
	if [ -z "$token" ]; then
		log "metadata: empty token from $host:$port" >&2
		return 1
	fi
	mkdir -p "$STRATO_RUN" && (umask 077 && printf '%s' "$token" >"$STRATO_RUN/imds-token")
	printf '%s\n' "$token"
}

# imds_get PATH FILE: GETs $STRATO_IMDS/PATH into FILE with the session token. Returns 0 on
# 200, 4 on 404 (nothing there), 1 on any other failure. A 401 (token expired or refused)
# gets one retry with a fresh token.
imds_get() {
	local _ token err
	for _ in 1 2; do
		token="$(imds_token)" || return 1
		# (Debian's busybox wget crashes on -T, hence timeout.)
		err="$(timeout "$STRATO_HTTP_TIMEOUT" wget -q -O "$2.part" --header "X-aws-ec2-metadata-token: $token" \
			"$STRATO_IMDS/$1" 2>&1)" && {
			mv "$2.part" "$2"
			return 0
		}
		rm -f "$2.part"
		case "$err" in
		*" 404"*) return 4 ;;
		*" 401"*) rm -f "$STRATO_RUN/imds-token" ;;
		*)
			log "metadata: GET /$1 failed: $err" >&2
			return 1
			;;
		esac
	done
	log "metadata: GET /$1 refused the token (401)" >&2
	return 1
}

# ---- config drive ----------------------------------------------------------------------
block_devices() {
	local d
	if [ -n "${STRATO_BLOCK_DEVICES+set}" ]; then
		echo "$STRATO_BLOCK_DEVICES"
		return
	fi
	for d in /dev/vd[a-z] /dev/vd[a-z][a-z]; do
		[ -b "$d" ] && echo "$d"
	done
}

# A config drive is a GNU tar whose first block is a volume label header named config-2.
is_config_drive() {
	[ -r "$1" ] || return 1
	[ "$(dd if="$1" bs=100 count=1 2>/dev/null | tr -d '\000')" = config-2 ] &&
		[ "$(dd if="$1" bs=1 skip=156 count=1 2>/dev/null)" = V ]
}

config_drive() {
	local d
	for d in $(block_devices); do
		if is_config_drive "$d"; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

# config_drive_member DEVICE NAME FILE: extracts NAME (or ./NAME) into FILE. busybox tar
# refuses the label header, so the archive is read from the second block on.
config_drive_member() {
	local member
	member="$(dd if="$1" bs=512 skip=1 2>/dev/null | tar -tf - 2>/dev/null | grep -m 1 -x -e "$2" -e "\./$2")" || return 4
	dd if="$1" bs=512 skip=1 2>/dev/null | tar -xOf - "$member" >"$3.part" 2>/dev/null || {
		rm -f "$3.part"
		return 1
	}
	mv "$3.part" "$3"
}

step_config_drive() {
	local d
	if d="$(config_drive)"; then
		log "config-drive: $d"
		echo "$d"
	else
		log "config-drive: none"
		return 1
	fi
}

# ---- instance identity -----------------------------------------------------------------
# Prints the instance ID: the config drive's meta-data member ("instance-id: i-..."), else
# the metadata service's meta-data/instance-id; nothing when neither says.
instance_id() {
	local d
	mkdir -p "$STRATO_RUN"
	if d="$(config_drive)"; then
		config_drive_member "$d" meta-data "$STRATO_RUN/meta-data" 2>/dev/null &&
			sed -n 's/^instance-id:[[:space:]]*//p' "$STRATO_RUN/meta-data" | head -n 1
		return 0
	fi
	imds_get latest/meta-data/instance-id "$STRATO_RUN/instance-id" 2>/dev/null && cat "$STRATO_RUN/instance-id"
	return 0
}

# ---- volumes ---------------------------------------------------------------------------
# Maps an EC2 device name (sdb, /dev/sdb, xvdb, /dev/vdb) to this guest's /dev/vdX.
guest_device() {
	local n
	n="${1#/dev/}"
	case "$n" in
	xvd*) n="vd${n#xvd}" ;;
	sd*) n="vd${n#sd}" ;;
	esac
	echo "/dev/$n"
}

mount_volume() { # DEVICE MOUNTPOINT FSTYPE OPTIONS
	local err
	if is_mounted "$2"; then
		log "volumes: $2 already mounted"
		return 0
	fi
	if [ ! -b "$1" ]; then
		log "volumes: $1 not attached, $2 not mounted"
		return 1
	fi
	mkdir -p "$2"
	if err="$(mount -t "${3:-auto}" -o "${4:-defaults}" "$1" "$2" 2>&1)"; then
		log "volumes: mounted $1 on $2"
	else
		log "volumes: $1 on $2 failed: $err"
		return 1
	fi
}

step_volumes() {
	local rc=0 dev mp fstype opts name
	if [ -r "$STRATO_VOLUMES_FILE" ]; then
		while read -r dev mp fstype opts; do
			case "$dev" in "" | "#"*) continue ;; esac
			mount_volume "$dev" "$mp" "$fstype" "$opts" || rc=1
		done <"$STRATO_VOLUMES_FILE"
	fi
	# The metadata service's view of the block device mapping (volumes added at launch).
	if config_drive >/dev/null; then
		return $rc
	fi
	mkdir -p "$STRATO_RUN"
	if imds_get latest/meta-data/block-device-mapping/ "$STRATO_RUN/bdm" 2>/dev/null; then
		# shellcheck disable=SC2013 # one name per line, no blanks in names
		for name in $(cat "$STRATO_RUN/bdm"); do
			case "$name" in ami | root | swap*) continue ;; esac
			imds_get "latest/meta-data/block-device-mapping/$name" "$STRATO_RUN/bdm-$name" 2>/dev/null || continue
			dev="$(guest_device "$(cat "$STRATO_RUN/bdm-$name")")"
			grep -q "^$dev " /proc/mounts 2>/dev/null && continue
			mount_volume "$dev" "/mnt/$name" auto defaults || true
		done
	else
		log "volumes: no block-device-mapping from the metadata service"
	fi
	return $rc
}

# ---- user data -------------------------------------------------------------------------
# Prints the user data (and says where it came from on stderr). Returns 4 when there is
# none, 1 when it could not be fetched.
fetch_user_data() {
	local f d rc src
	mkdir -p "$STRATO_RUN"
	f="$STRATO_RUN/user-data"
	rm -f "$f"
	if d="$(config_drive)"; then
		config_drive_member "$d" user-data "$f"
		rc=$?
		src="config drive $d"
	else
		imds_get latest/user-data "$f"
		rc=$?
		src="metadata service $STRATO_IMDS"
	fi
	case $rc in
	0)
		log "user-data: $(wc -c <"$f") bytes from $src" >&2
		cat "$f"
		;;
	4) log "user-data: none in $src" >&2 ;;
	*) log "user-data: cannot read it from $src" >&2 ;;
	esac
	return $rc
}

marker_field() {
	sed -n "s/^$1=//p" "$USER_DATA_MARKER" 2>/dev/null | head -n 1
}

# Runs the user data once per instance. The marker on the root volume records the instance
# it ran for; it is written before the script starts, so a script that reboots the machine
# is not run a second time.
step_user_data() {
	local iid prev rc script sum
	mkdir -p "$STRATO_STATE" "$STRATO_RUN"
	iid="$(instance_id)"
	if [ -f "$USER_DATA_MARKER" ]; then
		prev="$(marker_field instance-id)"
		if [ -z "$iid" ] || [ -z "$prev" ] || [ "$iid" = "$prev" ]; then
			log "user-data: already handled for ${prev:-this instance} ($(marker_field status)), not run again"
			return 0
		fi
		log "user-data: the root volume comes from instance $prev, this is $iid: handling user data again"
	fi
	fetch_user_data >"$STRATO_RUN/user-data.fetched"
	rc=$?
	case $rc in
	0) ;;
	4)
		printf 'instance-id=%s\nstatus=none\nat=%s\n' "$iid" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$USER_DATA_MARKER"
		return 0
		;;
	*) return 1 ;;
	esac
	script="$STRATO_STATE/user-data"
	cp "$STRATO_RUN/user-data.fetched" "$script"
	sum="$(sha256sum <"$script" | cut -d ' ' -f 1)"
	if [ "$(head -c 2 "$script")" != "#!" ]; then
		log "user-data: does not start with #!, not a script: not run"
		printf 'instance-id=%s\nsha256=%s\nstatus=not-a-script\nat=%s\n' "$iid" "$sum" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$USER_DATA_MARKER"
		sync
		return 0
	fi
	chmod 700 "$script"
	printf 'instance-id=%s\nsha256=%s\nstatus=started\nat=%s\n' "$iid" "$sum" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$USER_DATA_MARKER"
	sync
	log "user-data: running it (sha256 $sum)"
	(cd / && HOME=/root "$script" </dev/null 2>&1)
	rc=$?
	printf 'instance-id=%s\nsha256=%s\nstatus=exit-%s\nat=%s\n' "$iid" "$sum" "$rc" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$USER_DATA_MARKER"
	sync
	log "user-data: finished, exit status $rc"
	return 0
}

# ---- dispatch --------------------------------------------------------------------------
run_step() {
	case "$1" in
	mounts) step_mounts ;;
	network) step_network ;;
	volumes) step_volumes ;;
	user-data) step_user_data ;;
	config-drive) step_config_drive ;;
	token) imds_token ;;
	fetch-user-data) fetch_user_data ;;
	instance-id) instance_id ;;
	*)
		log "unknown step '$1'" >&2
		return 2
		;;
	esac
}

boot() {
	log "starting (pid $$)"
	for s in mounts network volumes user-data; do
		run_step "$s" || log "$s: failed, going on"
	done
	log "boot steps done after $(cut -d ' ' -f 1 /proc/uptime 2>/dev/null) s of uptime; starting busybox init"
	# shellcheck disable=SC2093 # exec fails only when busybox is missing
	exec /bin/busybox init
	log "cannot start busybox init; running a shell"
	exec /bin/sh
}

case "${1:-}" in
--source) ;;
--step)
	shift
	[ "$#" -gt 0 ] || {
		log "usage: $0 --step STEP..." >&2
		exit 2
	}
	rc=0
	for s in "$@"; do
		run_step "$s" || rc=$?
	done
	exit $rc
	;;
"")
	boot
	;;
*)
	# The kernel passes unknown command-line words to init; ignore them.
	[ "$$" = 1 ] && boot
	log "usage: $0 [--step STEP... | --source]" >&2
	exit 2
	;;
esac
