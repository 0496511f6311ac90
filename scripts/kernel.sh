#!/usr/bin/env bash
# kernel.sh builds ferry's guest kernel from Debian's linux-source-6.1 and the
# committed fragment kernel/ferry-6.1.fragment.config, caches it outside the
# work tree by a hash of its inputs, and installs it where ferry finds it.
#
#   scripts/kernel.sh            build (or reuse the cached build) and install;
#                                waits (saying so) for a build already running
#   scripts/kernel.sh background build and install detached from the caller,
#                                niced, logging to $FERRY_KERNEL_LOG; returns at
#                                once (does nothing when cached or already running)
#   scripts/kernel.sh cached     exit 0 when the current inputs are built (in the cache)
#   scripts/kernel.sh hash       print the input hash (the cache key)
#   scripts/kernel.sh path       print the cache directory of the current inputs
#   scripts/kernel.sh fallback   fetch Debian's linux-image-cloud-amd64 (apt-get
#                                download, unpacked, never installed on the host)
#                                and install it as $FERRY_LIB_DIR/fallback/{vmlinuz,lib/modules/<version>}
#                                (fallback is a link to fallback.<version>, swapped by rename)
#
# Inputs hashed: the fragment, the source tarball's sha256, the compiler
# version and this recipe's version. Same inputs, same cache entry:
#   $FERRY_KERNEL_CACHE/<hash>/{vmlinux,bzImage,config,build-seconds}
# Installed (atomically, by rename) into $FERRY_LIB_DIR:
#   vmlinux (PVH/ELF: QEMU microvm -kernel, Firecracker), bzImage, kernel.config,
#   kernel.hash
#
# Environment: FERRY_KERNEL_SOURCE (tarball), FERRY_KERNEL_FRAGMENT,
# FERRY_KERNEL_CACHE (default /var/cache/ferry/kernel), FERRY_LIB_DIR (default
# /usr/local/lib/ferry), FERRY_KERNEL_JOBS (default nproc), FERRY_KERNEL_LOG
# (default /var/log/ferry-kernel.log), FERRY_FALLBACK_PACKAGE (default
# linux-image-cloud-amd64; or a versioned linux-image-<version>).
set -euo pipefail

recipe=1 # bump when the derivation below changes
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fragment=${FERRY_KERNEL_FRAGMENT:-$root/kernel/ferry-6.1.fragment.config}
tarball=${FERRY_KERNEL_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
cache=${FERRY_KERNEL_CACHE:-/var/cache/ferry/kernel}
libdir=${FERRY_LIB_DIR:-/usr/local/lib/ferry}
jobs=${FERRY_KERNEL_JOBS:-$(nproc)}
log=${FERRY_KERNEL_LOG:-/var/log/ferry-kernel.log}

die() { echo "kernel: $*" >&2; exit 1; }

[ -r "$fragment" ] || die "no fragment at $fragment"
[ -r "$tarball" ] || die "no kernel source at $tarball (run: make deps, which installs linux-source-6.1)"
mkdir -p "$cache/src"

# source_sha prints the tarball's sha256, memoized by path, size and mtime.
source_sha() {
  local stamp memo
  stamp=$(stat -c '%s %Y' "$tarball")
  memo="$cache/src/$(basename "$tarball").sha256"
  if [ -f "$memo" ] && [ "$(sed -n 1p "$memo")" = "$stamp" ]; then
    sed -n 2p "$memo"
    return
  fi
  local sum
  sum=$(sha256sum "$tarball" | cut -d' ' -f1)
  printf '%s\n%s\n' "$stamp" "$sum" >"$memo.tmp" && mv "$memo.tmp" "$memo"
  echo "$sum"
}

input_hash() {
  {
    echo "recipe $recipe"
    echo "source $(source_sha)"
    echo "cc $(gcc -dumpfullversion 2>/dev/null || echo unknown) $(ld --version 2>/dev/null | head -1)"
    echo "fragment"
    cat "$fragment"
  } | sha256sum | cut -c1-16
}

# install_file copies src to dst through a temporary name and a rename, so a
# reader never sees a half-written kernel.
install_file() {
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2.tmp.$$" && chmod 0644 "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

# fallback fetches Debian's cloud kernel package into the cache, unpacks it,
# generates modules.dep with depmod -b, and installs kernel and module tree
# as $libdir/fallback.<version>, then points the link $libdir/fallback at it
# by a rename: a reader sees the old kernel or the new one, never a mix.
fallback() {
  local meta=${FERRY_FALLBACK_PACKAGE:-linux-image-cloud-amd64} pkg d kver
  case "$meta" in
    linux-image-[0-9]*) pkg=$meta ;; # a versioned package: no lookup
    *)
      pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
      if [ -z "$pkg" ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
      fi
      ;;
  esac
  [ -n "$pkg" ] || die "apt knows no $meta (check /etc/apt/sources.list, then apt-get update)"
  kver=${pkg#linux-image-}
  d="$cache/debian/$pkg"
  if [ ! -f "$d/.done" ]; then
    rm -rf "$d" "$d.tmp" && mkdir -p "$d.tmp"
    (cd "$d.tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null) || die "apt-get download $pkg failed"
    dpkg-deb -x "$d.tmp"/*.deb "$d.tmp/root"
    depmod -b "$d.tmp/root" "$kver"
    mv "$d.tmp/root" "$d" && rm -rf "$d.tmp" && touch "$d/.done"
  fi
  local link="$libdir/fallback" dir="$libdir/fallback.$kver"
  if [ "$(readlink "$link" 2>/dev/null)" = "fallback.$kver" ] && [ -f "$dir/.done" ]; then
    echo "kernel: fallback $pkg already installed in $link" >&2
    return
  fi
  mkdir -p "$libdir"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/lib/modules"
  cp "$d/boot/vmlinuz-$kver" "$dir.tmp/vmlinuz" && chmod 0644 "$dir.tmp/vmlinuz"
  cp -a "$d/lib/modules/$kver" "$dir.tmp/lib/modules/"
  touch "$dir.tmp/.done"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  ln -sfn "fallback.$kver" "$link.tmp.$$"
  # A directory left by an older kernel.sh cannot be renamed over: move it
  # aside first (the one moment without a fallback).
  if [ -d "$link" ] && [ ! -L "$link" ]; then rm -rf "$link.old" && mv "$link" "$link.old"; fi
  mv -T "$link.tmp.$$" "$link"
  rm -rf "$link.old"
  for old in "$libdir"/fallback.*; do
    [ "$old" = "$dir" ] || [ ! -d "$old" ] || rm -rf "$old"
  done
  echo "kernel: installed $link/vmlinuz ($pkg)" >&2
}

# background starts this script's build detached from the caller (a new
# session, niced, idle I/O class), logging to $log, unless the kernel is
# cached (then it installs it) or a background build of these inputs is
# running already; it returns at once.
background() {
  if [ -f "$out/vmlinux" ]; then
    exec "$0" build
  fi
  local pidf="$cache/.background-$hash.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "kernel: the background build of $hash is running (pid $(cat "$pidf"); log: $log)" >&2
    return
  fi
  mkdir -p "$(dirname "$log")"
  echo "kernel: $(date -u +%FT%TZ) background build of $hash started" >>"$log"
  setsid nohup nice -n 19 ionice -c 3 "$0" build </dev/null >>"$log" 2>&1 &
  echo $! >"$pidf"
  echo "kernel: building the guest kernel in the background (pid $!; log: $log, which ends with 'kernel: installed' when done)" >&2
}

hash=$(input_hash)
out="$cache/$hash"
case "${1:-build}" in
  hash) echo "$hash"; exit 0 ;;
  path) echo "$out"; exit 0 ;;
  cached) [ -f "$out/vmlinux" ]; exit ;;
  fallback) fallback; exit 0 ;;
  background) background; exit 0 ;;
  build) ;;
  *) die "usage: $0 [build|background|cached|hash|path|fallback]" ;;
esac

# Building takes the lock (one object tree, reused); installing a cached
# build does not, so it never waits for a build of other inputs.
if [ ! -f "$out/vmlinux" ]; then
  exec 9>"$cache/.lock"
  if ! flock -n 9; then
    echo "kernel: waiting for the build already running (lock $cache/.lock; the demo's logs to $log)" >&2
    flock 9
  fi
fi

if [ ! -f "$out/vmlinux" ]; then
  src="$cache/src/$(basename "$tarball" .tar.xz)"
  want="$(source_sha)"
  if [ "$(cat "$src/.ferry-source-sha256" 2>/dev/null)" != "$want" ]; then
    echo "kernel: extracting $tarball" >&2
    rm -rf "$src"
    tar -C "$cache/src" -xJf "$tarball"
    [ -d "$src" ] || die "tarball did not unpack to $src"
    echo "$want" >"$src/.ferry-source-sha256"
  fi
  obj="$cache/build" # one object tree, reused: a fragment change rebuilds incrementally
  mkdir -p "$obj"
  echo "kernel: configuring (tinyconfig + $(basename "$fragment") + olddefconfig)" >&2
  make -s -C "$src" O="$obj" tinyconfig >/dev/null
  "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$fragment" >/dev/null
  make -s -C "$src" O="$obj" olddefconfig >/dev/null

  # Every option the fragment asks for must survive olddefconfig, or the
  # fragment is lying about the kernel it makes.
  bad=0
  while IFS= read -r line; do
    case "$line" in
      CONFIG_*=n) opt=${line%=n}; if grep -q "^$opt=" "$obj/.config"; then echo "kernel: $opt is set, fragment says n" >&2; bad=1; fi ;;
      CONFIG_*=*) grep -qx "$line" "$obj/.config" || { echo "kernel: $line did not stick ($(grep "^${line%%=*}=" "$obj/.config" || echo unset))" >&2; bad=1; } ;;
    esac
  done <"$fragment"
  [ $bad = 0 ] || die "fragment options did not stick; fix $fragment"

  echo "kernel: building vmlinux bzImage with -j$jobs (about 10 minutes on 2 cores)" >&2
  start=$(date +%s)
  make -s -C "$src" O="$obj" -j"$jobs" KBUILD_BUILD_USER=ferry KBUILD_BUILD_HOST=ferry \
    KBUILD_BUILD_TIMESTAMP="$(date -u -d @0)" vmlinux bzImage >"$obj/build.log" 2>&1 ||
    { tail -30 "$obj/build.log" >&2; die "build failed; log in $obj/build.log"; }
  secs=$(($(date +%s) - start))
  mkdir -p "$out.tmp"
  cp "$obj/vmlinux" "$out.tmp/vmlinux"
  cp "$obj/arch/x86/boot/bzImage" "$out.tmp/bzImage"
  cp "$obj/.config" "$out.tmp/config"
  echo "$secs" >"$out.tmp/build-seconds"
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo "kernel: $(date -u +%FT%TZ) built $hash in ${secs}s" >&2
else
  echo "kernel: cached $out" >&2
fi

install_file "$out/vmlinux" "$libdir/vmlinux"
install_file "$out/bzImage" "$libdir/bzImage"
install_file "$out/config" "$libdir/kernel.config"
echo "$hash" >"$libdir/kernel.hash.tmp.$$" && mv -f "$libdir/kernel.hash.tmp.$$" "$libdir/kernel.hash"
echo "kernel: installed $libdir/vmlinux ($hash)" >&2
