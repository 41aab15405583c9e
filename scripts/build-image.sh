#!/usr/bin/env bash
# Builds a guest image into target/images/<NAME>/ and prints that folder on the last line.
#
#   scripts/build-image.sh probe     the probe guest kernel (images/probe), see images/probe/README.md
#   scripts/build-image.sh minimal   strato's kernel and a busybox root volume (images/minimal)
#   scripts/build-image.sh debian    strato's kernel and a Debian 12 root volume with cloud-init (images/debian)
#
# Installs the Debian packages it needs when they are missing, and rebuilds only what changed.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	echo "usage: $0 NAME" >&2
	echo "images: probe (the probe guest), minimal (busybox root volume), debian (Debian 12 with cloud-init)" >&2
}

build_probe() {
	local out="$STRATO_ROOT/target/images/probe"
	ensure_packages gcc binutils make
	mkdir -p "$out"
	make -s -C "$STRATO_ROOT/images/probe" OUT="$out" OBJ="$STRATO_ROOT/target/image-build/probe" >&2
	# The kernel command line the image is meant to boot with (monitors append
	# virtio_mmio.device= entries and ip= themselves).
	local manifest_tmp="$out/manifest.json.tmp"
	cat >"$manifest_tmp" <<'JSON'
{
  "name": "probe",
  "architecture": "x86_64",
  "kernel": "vmlinux",
  "boot_args": "console=ttyS0",
  "root_device_name": "/dev/vda",
  "block_device_mappings": []
}
JSON
	if cmp -s "$manifest_tmp" "$out/manifest.json"; then
		rm -f "$manifest_tmp"
	else
		mv "$manifest_tmp" "$out/manifest.json"
	fi
	echo "$out"
}

if [ "$#" -ne 1 ]; then
	usage
	exit 2
fi

case "$1" in
probe)
	build_probe
	;;
minimal | debian)
	# Root-volume recipes: images/<NAME>/build.sh prints the bundle folder last.
	exec "$STRATO_ROOT/images/$1/build.sh"
	;;
-h | --help)
	usage
	;;
*)
	echo "build-image.sh: unknown image name '$1'" >&2
	usage
	exit 2
	;;
esac
