#!/usr/bin/env bash
# Builds strato's microVM guest kernel (an uncompressed ELF vmlinux with the PVH note) from
# Debian's linux-source package and prints the path of the vmlinux on the last line.
#
#   scripts/build-kernel.sh            build (or reuse) target/kernel/<hash>/vmlinux
#   scripts/build-kernel.sh --print    print that path if it is built, fail otherwise
#
# The configuration is `make tinyconfig` plus images/linux/microvm.config, merged with
# allnoconfig semantics. Builds are cached under target/kernel/<hash>/, where <hash> covers
# the fragment, the linux-source package version and this script's build recipe, so a second
# run is instant. The unpacked source lives in target/kernel/src/ (never in the repository).
# Environment: LINUX_SOURCE_PACKAGE (default linux-source-6.1), JOBS (default nproc),
# KERNEL_FRAGMENT (another fragment than images/linux/microvm.config, e.g. an older one to
# compare boot times against; cached under its own hash like any other).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$STRATO_ROOT"

PKG="${LINUX_SOURCE_PACKAGE:-linux-source-6.1}"
FRAGMENT="${KERNEL_FRAGMENT:-$ROOT/images/linux/microvm.config}"
# Bump when the way the kernel is built changes (not the fragment: it is hashed itself).
RECIPE=1
KDIR="$ROOT/target/kernel"

print_only=0
case "${1:-}" in
--print) print_only=1 ;;
"") ;;
*)
	echo "usage: $0 [--print]" >&2
	exit 2
	;;
esac

if [ "$print_only" -eq 0 ]; then
	ensure_packages "$PKG" bc bison flex libelf-dev libssl-dev make gcc libc6-dev xz-utils
fi
pkgver="$(dpkg-query -W -f '${Version}' "$PKG" 2>/dev/null)" || {
	echo "build-kernel.sh: $PKG is not installed" >&2
	exit 1
}
hash="$( (
	cat "$FRAGMENT"
	echo "package=$PKG $pkgver recipe=$RECIPE"
) | sha256sum | cut -c1-16)"
out="$KDIR/$hash"

if [ -f "$out/vmlinux" ] && [ -f "$out/version.txt" ]; then
	echo "$out/vmlinux"
	exit 0
fi
if [ "$print_only" -eq 1 ]; then
	echo "build-kernel.sh: no kernel built for this fragment yet ($out)" >&2
	exit 1
fi

mkdir -p "$KDIR"
# One build at a time (the smoke test and build-image.sh may both ask for it).
exec 9>"$KDIR/.lock"
flock 9
if [ -f "$out/vmlinux" ] && [ -f "$out/version.txt" ]; then
	echo "$out/vmlinux"
	exit 0
fi

# Unpack the source once per package version.
src="$KDIR/src/$PKG-$pkgver"
tarball="$(dpkg -L "$PKG" | grep -E '/usr/src/linux-source-[^/]*\.tar\.(xz|bz2|gz)$' | head -n1)"
[ -n "$tarball" ] || {
	echo "build-kernel.sh: $PKG ships no source tarball" >&2
	exit 1
}
if [ ! -f "$src/.unpacked" ]; then
	echo "unpacking $tarball into $src" >&2
	rm -rf "$src" "$src.tmp"
	mkdir -p "$src.tmp"
	tar -xf "$tarball" -C "$src.tmp" --strip-components=1
	mv "$src.tmp" "$src"
	touch "$src/.unpacked"
fi

# Out-of-tree build, one build folder per source version: the source stays pristine, and a
# changed fragment rebuilds only what the change touches.
build="$KDIR/build/$PKG-$pkgver"
mkdir -p "$build"
jobs="${JOBS:-$(nproc)}"
kmake() { make -C "$src" O="$build" ARCH=x86_64 "$@"; }

echo "configuring: tinyconfig + $(basename "$FRAGMENT") in $build" >&2
{ kmake -s tinyconfig && (cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -n -O "$build" "$build/.config" "$FRAGMENT"); } >"$build/merge.log" 2>&1 || {
	cat "$build/merge.log" >&2
	exit 1
}

# Every option the fragment sets must have survived (Kconfig silently drops options whose
# dependencies are not met).
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qxF -- "$line" "$build/.config" || {
			echo "build-kernel.sh: fragment asks for '$line' but .config has '$(grep -E "^(# )?${line%%=*}[= ]" "$build/.config" || echo "nothing")'" >&2
			bad=1
		}
		;;
	"# CONFIG_"*" is not set")
		opt="${line#\# }"
		opt="${opt%% *}"
		if grep -qE "^$opt=" "$build/.config"; then
			echo "build-kernel.sh: fragment turns $opt off but .config has '$(grep -E "^$opt=" "$build/.config")'" >&2
			bad=1
		fi
		;;
	esac
done <"$FRAGMENT"
[ "$bad" -eq 0 ] || exit 1

echo "building vmlinux with -j$jobs (a few minutes)" >&2
start=$(date +%s)
kmake -j"$jobs" vmlinux >"$build/build.log" 2>&1 || {
	tail -n 40 "$build/build.log" >&2
	echo "build-kernel.sh: kernel build failed, full log: $build/build.log" >&2
	exit 1
}
release="$(kmake -s kernelrelease)"

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp "$build/vmlinux" "$out.tmp/vmlinux"
cp "$build/.config" "$out.tmp/config"
cp "$FRAGMENT" "$out.tmp/microvm.config"
cat >"$out.tmp/version.txt" <<EOF
kernelrelease=$release
package=$PKG
package_version=$pkgver
fragment_sha256=$(sha256sum "$FRAGMENT" | cut -d' ' -f1)
recipe=$RECIPE
build_seconds=$(($(date +%s) - start))
built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
rm -rf "$out"
mv "$out.tmp" "$out"
echo "built Linux $release ($PKG $pkgver) in $(($(date +%s) - start)) s" >&2
echo "$out/vmlinux"
