#!/usr/bin/env bash
# Builds the "minimal" image: strato's microVM kernel plus an ext4 root volume holding
# Debian's busybox-static and a shell-script init (images/minimal/init.sh).
#
#   images/minimal/build.sh              the bundle target/images/minimal/ (prints its path)
#   images/minimal/build.sh --root-only  only the root tree target/image-build/minimal/root
#                                        (no kernel; what images/minimal/test-init.sh needs)
#
# Usually run as `scripts/build-image.sh minimal`. No loop mounts: the volumes are made with
# `mkfs.ext4 -d`. busybox is extracted from its .deb with dpkg-deb -x, never installed on
# the host. Rebuilds only when an input changed (this folder, the busybox version, the kernel).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
ROOT="$STRATO_ROOT"
HERE="$ROOT/images/minimal"
WORK="$ROOT/target/image-build/minimal"
OUT="$ROOT/target/images/minimal"
ROOT_SIZE_MIB=64
DATA_SIZE_MIB=16

# The block device mapping: device, volume file, size in GiB (what the volume is grown to
# at launch), delete on termination, and where the guest mounts it ("-" for the root).
BDM=(
	"/dev/vda root.img 1 true -"
	"/dev/vdb data.img 1 true /data"
)
BOOT_ARGS="console=ttyS0 reboot=k panic=1 root=/dev/vda rw i8042.noaux"

root_only=0
case "${1:-}" in
--root-only) root_only=1 ;;
"") ;;
*)
	echo "usage: $0 [--root-only]" >&2
	exit 2
	;;
esac

ensure_packages e2fsprogs

# busybox-static's .deb, downloaded (not installed) and kept per version.
mkdir -p "$WORK/debs"
bbver="$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: //p')"
if [ -z "$bbver" ] || [ "$bbver" = "(none)" ]; then
	as_root apt-get update >&2
	bbver="$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: //p')"
fi
deb="$WORK/debs/busybox-static_${bbver//:/%3a}_amd64.deb"
if [ ! -f "$deb" ]; then
	echo "downloading busybox-static $bbver" >&2
	(cd "$WORK/debs" && apt-get download -o APT::Sandbox::User=root "busybox-static=$bbver" >&2) ||
		{ as_root apt-get update >&2 && (cd "$WORK/debs" && apt-get download -o APT::Sandbox::User=root "busybox-static=$bbver" >&2); }
fi
[ -f "$deb" ] || {
	echo "build.sh: no $deb after download" >&2
	exit 1
}

# ---- the root tree -----------------------------------------------------------------
tree="$WORK/root"
tree_inputs="$( (
	echo "busybox-static=$bbver"
	printf '%s\n' "${BDM[@]}"
	cd "$HERE" && find init.sh rootfs -type f -print0 | sort -z | xargs -0 sha256sum
) | sha256sum | cut -c1-16)"
if [ "$(cat "$WORK/root.inputs" 2>/dev/null)" != "$tree_inputs" ] || [ ! -x "$tree/sbin/init" ]; then
	echo "assembling the root tree in $tree" >&2
	rm -rf "$tree" "$WORK/deb-x"
	mkdir -p "$tree" "$WORK/deb-x"
	dpkg-deb -x "$deb" "$WORK/deb-x"
	install -D -m 755 "$WORK/deb-x/bin/busybox" "$tree/bin/busybox"
	mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,mnt,var/lib/strato,var/log}
	chmod 1777 "$tree/tmp"
	chmod 700 "$tree/root"
	# One symbolic link per applet, where busybox itself says it belongs.
	"$tree/bin/busybox" --list-full | while read -r applet; do
		[ "$applet" = bin/busybox ] && continue
		ln -sf /bin/busybox "$tree/$applet"
	done
	cp -a "$HERE/rootfs/." "$tree/"
	install -m 755 "$HERE/init.sh" "$tree/sbin/init"
	# The mapping's non-root volumes, for strato-init's volumes step.
	{
		echo "# DEVICE MOUNTPOINT FSTYPE OPTIONS: from the image's block device mapping"
		for m in "${BDM[@]}"; do
			read -r dev _file _size _del mp <<<"$m"
			[ "$mp" = - ] || echo "$dev $mp ext4 defaults"
		done
	} >"$tree/etc/strato/volumes"
	printf 'name=minimal\nbusybox=%s\ninputs=%s\n' "$bbver" "$tree_inputs" >"$tree/etc/strato/image"
	chown -R 0:0 "$tree" 2>/dev/null || true
	echo "$tree_inputs" >"$WORK/root.inputs"
fi
if [ "$root_only" -eq 1 ]; then
	echo "$tree"
	exit 0
fi

# ---- kernel, volumes, manifest ---------------------------------------------------------
kernel="$("$ROOT/scripts/build-kernel.sh" | tail -n 1)"
release="$(sed -n 's/^kernelrelease=//p' "$(dirname "$kernel")/version.txt")"
bundle_inputs="$(printf '%s\n' "$tree_inputs" "$kernel" "$BOOT_ARGS" "$ROOT_SIZE_MIB" "$DATA_SIZE_MIB" | sha256sum | cut -c1-16)"
if [ "$(cat "$OUT/.inputs" 2>/dev/null)" = "$bundle_inputs" ] && [ -f "$OUT/manifest.json" ]; then
	echo "$OUT"
	exit 0
fi

mkdir -p "$OUT"
rm -f "$OUT/.inputs"
cp "$kernel" "$OUT/vmlinux.tmp" && mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"

# mkfs.ext4 -d copies the tree into the new file system: no mount, no loop device.
mkvol() { # FILE SIZE_MIB LABEL DIR
	rm -f "$1.tmp"
	truncate -s "${2}M" "$1.tmp"
	mkfs.ext4 -q -F -L "$3" -d "$4" -E root_owner=0:0 "$1.tmp" >&2
	mv "$1.tmp" "$1"
}
echo "making root.img (${ROOT_SIZE_MIB} MiB ext4) from $tree" >&2
mkvol "$OUT/root.img" "$ROOT_SIZE_MIB" root "$tree"
data="$WORK/data"
rm -rf "$data"
mkdir -p "$data"
echo "strato minimal image: data volume (/dev/vdb, mounted on /data)" >"$data/README"
mkvol "$OUT/data.img" "$DATA_SIZE_MIB" data "$data"

{
	echo "{"
	echo '  "name": "minimal",'
	echo '  "architecture": "x86_64",'
	echo '  "kernel": "vmlinux",'
	echo "  \"kernel_release\": \"$release\","
	echo "  \"boot_args\": \"$BOOT_ARGS\","
	echo '  "root_device_name": "/dev/vda",'
	echo '  "block_device_mappings": ['
	n=0
	for m in "${BDM[@]}"; do
		read -r dev file size del _mp <<<"$m"
		n=$((n + 1))
		sep=","
		[ "$n" -eq "${#BDM[@]}" ] && sep=""
		echo "    {\"device_name\": \"$dev\", \"volume\": \"$file\", \"size_gib\": $size, \"delete_on_termination\": $del}$sep"
	done
	echo "  ]"
	echo "}"
} >"$OUT/manifest.json.tmp"
mv "$OUT/manifest.json.tmp" "$OUT/manifest.json"
echo "$bundle_inputs" >"$OUT/.inputs"
echo "$OUT"
