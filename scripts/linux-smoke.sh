#!/usr/bin/env bash
# The slow check: boots a real Linux kernel (strato's microVM kernel, scripts/build-kernel.sh)
# on the "minimal" image's volumes under strato-vmm, and passes when the console shows
# the kernel's `DMI:` line with the SMBIOS identity given to the monitor, its ACPI tables,
# interpreter and power button, the virtio-blk probe of the root disk, the kernel's IP
# configuration, the ext4 root mount and `Run /sbin/init`, and when the guest kernel answers
# an ARP request and a ping sent through its tap. Then the magic SysRq over the serial
# console: BREAK and `b` (reboot) must end the monitor with the reset status (5); booted
# again on the same volumes, as the daemon reboots an instance in place, the kernel must
# come up again, and BREAK and `o` (power off) must end the monitor with the power-off
# status (0) through ACPI S5. Prints the seconds from the monitor's start to each milestone
# and the CPU seconds the monitor had used by then (steady under load, unlike the first).
#
#   scripts/linux-smoke.sh [--keep] [minimal|debian]
#
# (root; builds or reuses the kernel and the image; `debian` boots the Debian image instead.)
#
# About 30 s of boot on a host whose KVM emulates guest kernel code (HOST-KVM.md),
# where guest user space cannot run: the check ends at init. --keep keeps the work folder
# (console log, monitor stderr). All network objects live in a namespace of our own
# (strato-smoke-<pid>), deleted at the end; no traffic leaves it.
# Environment: SMOKE_TIMEOUT (seconds for the boot, default 240), STRATO_VMM (a strato-vmm
# binary to use instead of building one), SMOKE_CMDLINE_EXTRA (more kernel arguments),
# SMOKE_LINGER (seconds to keep the guest running after the milestones, then ping again),
# SMOKE_IRQCHIP (split or kernel; default: the monitor's default), SMOKE_CPUS (vCPUs, default
# 1), SMOKE_ENTRY (pvh, the default, or linux64: the same vmlinux without its PVH note, booted
# through the 64-bit Linux boot protocol), SMOKE_SYSRQ (0 skips the SysRq reboot and power
# off), SMOKE_KERNEL (a vmlinux to boot instead of the one build-kernel.sh makes, e.g. one
# built from an older fragment with KERNEL_FRAGMENT=..., to compare milestones).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATO_ROOT"

keep=0
image=minimal
for arg in "$@"; do
	case "$arg" in
	--keep) keep=1 ;;
	minimal | debian) image="$arg" ;;
	*)
		echo "usage: $0 [--keep] [minimal|debian]" >&2
		exit 2
		;;
	esac
done
if [ "$(id -u)" -ne 0 ]; then
	echo "linux-smoke.sh: needs root (network namespace, tap)" >&2
	exit 1
fi
ensure_packages ca-certificates gcc libc6-dev binutils make iproute2 iputils-ping iputils-arping python3 jq
ensure_rust
ensure_kvm

TIMEOUT="${SMOKE_TIMEOUT:-240}"
GUEST_IP=172.31.254.2
HOST_IP=172.31.254.1
MAC=02:00:00:00:fe:02
# The identity the daemon would give an instance (EC2's: serial number and UUID the same
# ec2-prefixed UUID, the instance ID as the chassis asset tag).
SMBIOS_UUID=ec2f5a1e-7d3c-4b2a-9e8f-0123456789ab
SMBIOS="product=t3.micro,serial=$SMBIOS_UUID,uuid=$SMBIOS_UUID,asset_tag=i-0123456789abcdef0"

echo "== kernel and $image image (built once, then reused)" >&2
bundle="$(scripts/build-image.sh "$image" | tail -n 1)"
if [ -n "${STRATO_VMM:-}" ]; then
	vmm="$STRATO_VMM"
else
	echo "== strato-vmm" >&2
	cargo build --release --locked -p strato-vmm >&2
	vmm="${CARGO_TARGET_DIR:-$STRATO_ROOT/target}/release/strato-vmm"
fi

mkdir -p "$STRATO_ROOT/target/tmp"
work="$(mktemp -d "$STRATO_ROOT/target/tmp/linux-smoke.XXXXXX")"
ns="strato-smoke-$$"
vmm_pid=""
arp_pid=""
ping_pid=""

cleanup() {
	local p
	for p in $arp_pid $ping_pid; do kill "$p" 2>/dev/null || true; done
	if [ -n "$vmm_pid" ] && kill -0 "$vmm_pid" 2>/dev/null; then
		kill -TERM "$vmm_pid" 2>/dev/null || true
		sleep 0.5
		kill -KILL "$vmm_pid" 2>/dev/null || true
	fi
	ip netns del "$ns" 2>/dev/null || true
	if [ "$keep" -eq 1 ]; then
		echo "work folder kept: $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

# The instance's volumes, in block-device-mapping order (/dev/vda first): copies, so the
# bundle stays pristine.
disks=()
while read -r volume; do
	cp --sparse=always "$bundle/$volume" "$work/$volume"
	disks+=(--disk "path=$work/$volume")
done < <(jq -r '.block_device_mappings | sort_by(.device_name) | .[].volume' "$bundle/manifest.json")

template="$("$vmm" --detect-cpu-template | cut -f1)"
cpus="${SMOKE_CPUS:-1}"
irqchip_args=()
[ -n "${SMOKE_IRQCHIP:-}" ] && irqchip_args=(--irqchip "$SMOKE_IRQCHIP")
kernel="${SMOKE_KERNEL:-$bundle/vmlinux}"
case "${SMOKE_ENTRY:-pvh}" in
pvh) ;;
linux64)
	# Without the Xen note the monitor enters the ELF at e_entry in 64-bit mode.
	objcopy --remove-section .notes "$kernel" "$work/vmlinux-nopvh"
	kernel="$work/vmlinux-nopvh"
	;;
*)
	echo "linux-smoke.sh: SMOKE_ENTRY must be pvh or linux64" >&2
	exit 2
	;;
esac
cmdline="$(jq -r .boot_args "$bundle/manifest.json")"
# panic=0: stay up after init dies (it does here: guest user space cannot run), so the
# kernel keeps answering ARP and ping. ip=: what the daemon will append.
cmdline="$cmdline panic=0 ip=$GUEST_IP::$HOST_IP:255.255.255.0:strato-smoke:eth0:off"
if [ "$template" = emulated-kvm ]; then
	# Skip what the emulating host cannot run or runs slowly (HOST-KVM.md): XSAVE, SMAP/SMEP,
	# POPCNT, CMPXCHG16B (SLUB's cmpxchg_double) and the delay-loop calibration.
	cmdline="$cmdline noxsave clearcpuid=smap,smep,popcnt,cx16 lpj=4000000 tsc=reliable"
fi

# Extra kernel arguments for investigations (e.g. "initcall_debug").
[ -n "${SMOKE_CMDLINE_EXTRA:-}" ] && cmdline="$cmdline $SMOKE_CMDLINE_EXTRA"

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" addr add "$HOST_IP/24" dev tap0
ip -n "$ns" link set tap0 up

echo "== booting $(jq -r .kernel_release "$bundle/manifest.json") (cpu template $template, irqchip ${SMOKE_IRQCHIP:-default}, $cpus vCPUs, entry ${SMOKE_ENTRY:-pvh})" >&2
echo "   cmdline: $cmdline" >&2
# Starts the monitor with the console in $1 (a second boot gets a file of its own).
launch() {
	: >"$1"
	start="$(date +%s.%N)"
	ip netns exec "$ns" "$vmm" --kernel "$kernel" --cmdline "$cmdline" --cpus "$cpus" --memory 128 \
		"${irqchip_args[@]}" "${disks[@]}" --net "tap=tap0,mac=$MAC" --rng --smbios "$SMBIOS" \
		--console "$1" --api-socket "$work/api.sock" --cpu-template "$template" \
		2>>"$work/vmm.stderr" &
	vmm_pid=$!
}
launch "$work/console.log"

elapsed() { echo "$(date +%s.%N) $start" | awk '{printf "%.1f", $1 - $2}'; }
# The CPU seconds the monitor has used (all its threads; the emulated guest kernel runs on
# its vCPU thread): unlike the wall-clock seconds, they barely grow when other work loads
# the machine, so they compare boots measured at different times.
tick="$(getconf CLK_TCK)"
cpu_s() { awk -v t="$tick" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$vmm_pid/stat" 2>/dev/null || echo "?"; }

# Milestones, in the order they usually come: name|pattern (extended regex on the console).
milestones=(
	"linux-version|Linux version "
	"DMI: strato t3.micro|DMI: strato t3\\.micro"
	"ACPI tables (DSDT)|ACPI: DSDT 0x[0-9A-F]+ [0-9A-F]+ \\(v02 STRATO STRATOVM"
	"ACPI interpreter|ACPI: Interpreter enabled"
	"ACPI power button|ACPI: button: Power Button \\[PWRB\\]"
	"virtio-blk root probe|virtio_blk virtio[0-9]+: \\[vda\\]"
	"IP-Config: Complete|IP-Config: Complete"
	"ext4 root mounted|EXT4-fs \\(vda\\): mounted filesystem"
	"Run /sbin/init|Run /sbin/init as init process"
)
# Every vCPU must come up (INIT/SIPI through the local APICs, in either irqchip).
[ "$cpus" -gt 1 ] && milestones=("${milestones[0]}" "all $cpus vCPUs up|smp: Brought up 1 node, $cpus CPUs" "${milestones[@]:1}")
declare -A seen=()
arp_ok="" ping_ok=""
failed=""

# The network probes start as soon as the kernel has configured eth0, in the background,
# each retrying for up to 15 s: on an emulating host the window between IP-Config and init
# is a few seconds (init cannot make system calls there, dies, and the kernel panics).
arp_pid="" ping_pid="" arp_done="" ping_done=""
start_probes() {
	ip netns exec "$ns" arping -f -w 15 -I tap0 "$GUEST_IP" >"$work/arping.log" 2>&1 &
	arp_pid=$!
	ip netns exec "$ns" ping -c 1 -i 0.5 -w 15 "$GUEST_IP" >"$work/ping.log" 2>&1 &
	ping_pid=$!
}
# Collects a finished probe: sets arp_ok/ping_ok to the second it was seen answered.
net_checks() {
	local rc
	if [ -z "$arp_done" ] && ! kill -0 "$arp_pid" 2>/dev/null; then
		arp_done=1
		rc=0
		wait "$arp_pid" || rc=$?
		if [ "$rc" -eq 0 ]; then
			arp_ok="$(elapsed)"
			printf '%7s s  %s\n' "$arp_ok" "ARP request answered by the guest ($GUEST_IP)"
		fi
	fi
	if [ -z "$ping_done" ] && ! kill -0 "$ping_pid" 2>/dev/null; then
		ping_done=1
		rc=0
		wait "$ping_pid" || rc=$?
		if [ "$rc" -eq 0 ]; then
			ping_ok="$(elapsed)"
			printf '%7s s  %s\n' "$ping_ok" "ping answered by the guest"
		fi
	fi
}

while :; do
	for m in "${milestones[@]}"; do
		name="${m%%|*}"
		[ -n "${seen[$name]:-}" ] && continue
		if grep -qE "${m#*|}" "$work/console.log"; then
			seen[$name]="$(elapsed)"
			printf '%7s s  %7s cpu-s  %s\n' "${seen[$name]}" "$(cpu_s)" "$name"
		fi
	done
	# The kernel's network stack answers once IP-Config is done.
	if [ -n "${seen[IP-Config: Complete]:-}" ]; then
		[ -n "$arp_pid" ] || start_probes
		net_checks
		if [ -n "$arp_done" ] && [ -n "$ping_done" ] && { [ -z "$arp_ok" ] || [ -z "$ping_ok" ]; }; then
			failed="the guest did not answer ARP and ping within 15 s of IP-Config"
			break
		fi
	fi
	if [ "${#seen[@]}" -eq "${#milestones[@]}" ] && [ -n "$arp_ok" ] && [ -n "$ping_ok" ]; then
		break
	fi
	if ! kill -0 "$vmm_pid" 2>/dev/null; then
		status=0
		wait "$vmm_pid" || status=$?
		vmm_pid=""
		failed="strato-vmm exited with status $status before every milestone was reached"
		break
	fi
	if awk -v t="$(elapsed)" -v max="$TIMEOUT" 'BEGIN { exit !(t > max) }'; then
		failed="timed out after $TIMEOUT s"
		break
	fi
	sleep 0.25
done

# Investigations: leave the guest running a while longer (SMOKE_LINGER seconds).
if [ -z "$failed" ] && [ -n "${SMOKE_LINGER:-}" ]; then
	sleep "$SMOKE_LINGER"
	if ip netns exec "$ns" ping -q -c 1 -W 5 "$GUEST_IP" >/dev/null 2>&1; then
		printf '%7s s  %s\n' "$(elapsed)" "ping still answered"
	else
		printf '%7s s  %s\n' "$(elapsed)" "ping no longer answered"
	fi
	kill -0 "$vmm_pid" 2>/dev/null || { wait "$vmm_pid" || echo "strato-vmm exited with status $?" >&2; vmm_pid=""; }
fi

# The magic SysRq over the serial console: a BREAK, then the command key, through the
# monitor's control socket (what `strato console` sends for `~B` and the key).
sysrq() {
	python3 - "$work/api.sock" "$1" <<'PY'
import base64, json, socket, sys
def call(request):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sys.argv[1])
    s.sendall((json.dumps(request) + "\n").encode())
    reply = json.loads(s.makefile().readline())
    if not reply.get("ok"):
        sys.exit("monitor refused %s: %s" % (request["op"], reply.get("error")))
call({"op": "console-break"})
call({"op": "console-input", "data": base64.b64encode(sys.argv[2].encode()).decode()})
PY
}
# Waits up to $1 s for the monitor to end; sets vmm_status (empty if it did not end).
wait_vmm() {
	local until
	until=$(($(date +%s) + $1))
	vmm_status=""
	while kill -0 "$vmm_pid" 2>/dev/null; do
		[ "$(date +%s)" -ge "$until" ] && return 0
		sleep 0.25
	done
	vmm_status=0
	wait "$vmm_pid" || vmm_status=$?
	vmm_pid=""
}
# Waits up to $2 s for the extended regex $1 on the console $3; prints the milestone $4.
wait_console() {
	local until
	until=$(($(date +%s) + $2))
	until grep -qE "$1" "$3"; do
		if [ "$(date +%s)" -ge "$until" ] || ! kill -0 "$vmm_pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.25
	done
	printf '%7s s  %s\n' "$(elapsed)" "$4"
}

if [ -z "$failed" ] && [ "${SMOKE_SYSRQ:-1}" != 0 ]; then
	if ! sysrq b; then
		failed="SysRq b could not be sent"
	else
		wait_vmm 60
		if [ "$vmm_status" != 5 ]; then
			failed="after SysRq b the monitor did not end with the reset status 5 (${vmm_status:-still running})"
		else
			printf '%7s s  %s\n' "$(elapsed)" "SysRq b: monitor ended with the reset status (5)"
		fi
	fi
	if [ -z "$failed" ]; then
		# The daemon reboots an instance in place: a fresh monitor on the same volumes.
		launch "$work/console-reboot.log"
		echo "== rebooted: a fresh monitor on the same volumes (seconds from its start)" >&2
		# The console's receiver (and so SysRq) is up once the kernel opened /dev/console,
		# before it mounts the root; power off must come before init dies and the kernel
		# panics (the power-off work then never runs).
		if ! wait_console "Linux version " "$TIMEOUT" "$work/console-reboot.log" "reboot: linux-version" ||
			! wait_console "EXT4-fs \\(vda\\): mounted filesystem" "$TIMEOUT" "$work/console-reboot.log" "reboot: ext4 root mounted"; then
			failed="the kernel did not boot again after SysRq b"
		elif ! sysrq o; then
			failed="SysRq o could not be sent"
		else
			wait_vmm 60
			if [ "$vmm_status" != 0 ]; then
				failed="after SysRq o the monitor did not end with the power-off status 0 (${vmm_status:-still running})"
			elif ! grep -q "reboot: Power down" "$work/console-reboot.log"; then
				failed="the monitor ended after SysRq o, but the kernel did not say 'reboot: Power down'"
			else
				printf '%7s s  %s\n' "$(elapsed)" "SysRq o: monitor ended with the power-off status (0)"
			fi
		fi
	fi
fi

# Stop the monitor through its API (exit status 4), or with SIGTERM.
if [ -n "$vmm_pid" ]; then
	python3 - "$work/api.sock" <<'PY' >/dev/null 2>&1 || kill -TERM "$vmm_pid" 2>/dev/null || true
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b'{"op":"stop"}\n')
s.recv(4096)
PY
	status=0
	wait "$vmm_pid" || status=$?
	vmm_pid=""
	echo "strato-vmm stopped (exit status $status)" >&2
fi

if [ -n "$failed" ]; then
	echo "linux-smoke.sh: FAILED: $failed" >&2
	for m in "${milestones[@]}"; do
		name="${m%%|*}"
		[ -n "${seen[$name]:-}" ] || echo "  missing: $name" >&2
	done
	[ -n "$arp_ok" ] || echo "  missing: ARP answer" >&2
	[ -n "$ping_ok" ] || echo "  missing: ping answer" >&2
	echo "---- console (last 40 lines)" >&2
	tail -n 40 "$work/console.log" >&2
	if [ -f "$work/console-reboot.log" ]; then
		echo "---- console after the reboot (last 40 lines)" >&2
		tail -n 40 "$work/console-reboot.log" >&2
	fi
	echo "---- strato-vmm stderr" >&2
	tail -n 20 "$work/vmm.stderr" >&2
	keep=1
	exit 1
fi
echo "linux-smoke.sh: passed in $(elapsed) s" >&2
