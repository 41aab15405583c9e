#!/usr/bin/env bash
# Builds the "debian" image: strato's microVM kernel plus an ext4 root volume holding a
# debootstrapped Debian 12 (bookworm) with systemd, cloud-init (ConfigDrive and Ec2
# datasources), openssh-server and ifupdown/DHCP. cloud-init creates the default user
# ("debian", sudo, no password) and installs the SSH key the metadata service or config drive
# gives; SSH host keys are generated at first boot.
#
#   images/debian/build.sh              the bundle target/images/debian/ (prints its path)
#   images/debian/build.sh --root-only  only the root tree target/image-build/debian/root
#
# Usually run as `scripts/build-image.sh debian`. Needs root (debootstrap) and the Debian
# mirror (DEBIAN_MIRROR, default http://deb.debian.org/debian); takes several minutes the
# first time, then reuses the tree until this folder changes. No loop mounts: the volume is
# made with `mkfs.ext4 -d`.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
ROOT="$STRATO_ROOT"
HERE="$ROOT/images/debian"
WORK="$ROOT/target/image-build/debian"
OUT="$ROOT/target/images/debian"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOT_SIZE_GIB=2
BOOT_ARGS="console=ttyS0 reboot=k panic=1 root=/dev/vda rw net.ifnames=0 i8042.noaux"
# debootstrap installs the base (its dependency resolution is simple); apt inside the tree
# then installs the rest.
BASE_PACKAGES=(systemd-sysv udev dbus)
PACKAGES=(
	ifupdown isc-dhcp-client iproute2 iputils-ping netbase ca-certificates
	openssh-server sudo
	cloud-init cloud-guest-utils python3
	less procps
)

root_only=0
case "${1:-}" in
--root-only) root_only=1 ;;
"") ;;
*)
	echo "usage: $0 [--root-only]" >&2
	exit 2
	;;
esac
if [ "$(id -u)" -ne 0 ]; then
	echo "images/debian/build.sh: needs root (debootstrap)" >&2
	exit 1
fi
ensure_packages debootstrap e2fsprogs ca-certificates

tree="$WORK/root"
tree_inputs="$( (
	echo "suite=$SUITE mirror=$MIRROR base=${BASE_PACKAGES[*]} packages=${PACKAGES[*]}"
	sed -n '/^# ---- the root tree/,/^# ---- end of the root tree/p' "$HERE/build.sh"
	cd "$HERE" && find rootfs -type f -print0 | sort -z | xargs -0 sha256sum
) | sha256sum | cut -c1-16)"

# Anything debootstrap left mounted inside the tree (it mounts proc and sys while it runs).
unmount_tree() {
	local m
	for m in $(awk -v t="$1" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
}

# ---- the root tree -----------------------------------------------------------------
if [ "$(cat "$WORK/root.inputs" 2>/dev/null)" != "$tree_inputs" ] || [ ! -x "$tree/sbin/init" ]; then
	mkdir -p "$WORK/debs"
	unmount_tree "$tree.tmp"
	rm -rf "$tree.tmp"
	echo "debootstrap $SUITE from $MIRROR into $tree.tmp (several minutes)" >&2
	start=$(date +%s)
	if ! debootstrap --variant=minbase --components=main --cache-dir="$WORK/debs" \
		--include="$(
			IFS=,
			echo "${BASE_PACKAGES[*]}"
		)" "$SUITE" "$tree.tmp" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
		unmount_tree "$tree.tmp"
		tail -n 30 "$WORK/debootstrap.log" >&2
		[ -f "$tree.tmp/debootstrap/debootstrap.log" ] && tail -n 30 "$tree.tmp/debootstrap/debootstrap.log" >&2
		echo "images/debian/build.sh: debootstrap failed (full log: $WORK/debootstrap.log)" >&2
		exit 1
	fi
	unmount_tree "$tree.tmp"
	echo "debootstrap done in $(($(date +%s) - start)) s" >&2

	t="$tree.tmp"
	# apt inside the tree: /proc and /sys for the maintainer scripts (plain mounts, no loop
	# devices), the host's resolver, and no service starts.
	echo "apt-get install ${PACKAGES[*]}" >&2
	trap 'unmount_tree "$tree.tmp"' EXIT
	mount -t proc proc "$t/proc"
	mount -t sysfs sysfs "$t/sys"
	cp /etc/resolv.conf "$t/etc/resolv.conf"
	printf '#!/bin/sh\nexit 101\n' >"$t/usr/sbin/policy-rc.d"
	chmod 755 "$t/usr/sbin/policy-rc.d"
	echo "deb $MIRROR $SUITE main" >"$t/etc/apt/sources.list"
	if ! chroot "$t" /usr/bin/env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		sh -c "apt-get update && apt-get install -y --no-install-recommends ${PACKAGES[*]} && apt-get clean" \
		>"$WORK/apt.log" 2>&1; then
		tail -n 30 "$WORK/apt.log" >&2
		echo "images/debian/build.sh: apt-get install in the tree failed (full log: $WORK/apt.log)" >&2
		exit 1
	fi
	rm -f "$t/usr/sbin/policy-rc.d" "$t/etc/resolv.conf"
	unmount_tree "$t"
	trap - EXIT

	cp -a "$HERE/rootfs/." "$t/"
	chmod 755 "$t/usr/local/sbin/strato-config-drive"
	mkdir -p "$t/etc/systemd/system/cloud-init.target.wants"
	ln -sf /etc/systemd/system/strato-config-drive.service \
		"$t/etc/systemd/system/cloud-init.target.wants/strato-config-drive.service"
	cat >"$t/etc/apt/sources.list" <<EOF
deb http://deb.debian.org/debian $SUITE main
deb http://deb.debian.org/debian $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
	echo debian >"$t/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n' >"$t/etc/hosts"
	# ifupdown: cloud-init writes eth0's configuration into interfaces.d at first boot.
	printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' >"$t/etc/network/interfaces"
	# Per-instance identity is made at first boot: machine ID, SSH host keys (cloud-init).
	: >"$t/etc/machine-id"
	rm -f "$t/var/lib/dbus/machine-id" "$t"/etc/ssh/ssh_host_*
	# Smaller volume: no package lists or downloaded .debs (apt update brings the lists back).
	rm -rf "$t"/var/cache/apt/*.bin "$t"/var/cache/apt/archives/*.deb "$t"/var/lib/apt/lists/* "$t"/var/log/*.log
	printf 'name=debian\nsuite=%s\ninputs=%s\n' "$SUITE" "$tree_inputs" >"$t/etc/strato-image"
	# ---- end of the root tree
	unmount_tree "$tree"
	rm -rf "$tree"
	mv "$t" "$tree"
	echo "$tree_inputs" >"$WORK/root.inputs"
fi
if [ "$root_only" -eq 1 ]; then
	echo "$tree"
	exit 0
fi

kernel="$("$ROOT/scripts/build-kernel.sh" | tail -n 1)"
release="$(sed -n 's/^kernelrelease=//p' "$(dirname "$kernel")/version.txt")"
bundle_inputs="$(printf '%s\n' "$tree_inputs" "$kernel" "$BOOT_ARGS" "$ROOT_SIZE_GIB" | sha256sum | cut -c1-16)"
if [ "$(cat "$OUT/.inputs" 2>/dev/null)" = "$bundle_inputs" ] && [ -f "$OUT/manifest.json" ]; then
	echo "$OUT"
	exit 0
fi

mkdir -p "$OUT"
rm -f "$OUT/.inputs"
cp "$kernel" "$OUT/vmlinux.tmp" && mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
echo "making root.img (${ROOT_SIZE_GIB} GiB ext4, sparse) from $tree" >&2
rm -f "$OUT/root.img.tmp"
truncate -s "${ROOT_SIZE_GIB}G" "$OUT/root.img.tmp"
mkfs.ext4 -q -F -L root -d "$tree" "$OUT/root.img.tmp" >&2
mv "$OUT/root.img.tmp" "$OUT/root.img"

cat >"$OUT/manifest.json.tmp" <<EOF
{
  "name": "debian",
  "architecture": "x86_64",
  "kernel": "vmlinux",
  "kernel_release": "$release",
  "boot_args": "$BOOT_ARGS",
  "root_device_name": "/dev/vda",
  "block_device_mappings": [
    {"device_name": "/dev/vda", "volume": "root.img", "size_gib": $ROOT_SIZE_GIB, "delete_on_termination": true}
  ]
}
EOF
mv "$OUT/manifest.json.tmp" "$OUT/manifest.json"
echo "$bundle_inputs" >"$OUT/.inputs"
echo "$OUT"
