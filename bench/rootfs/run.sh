#!/usr/bin/env bash
# run.sh times image → bootable ext4 base for a generated ~180 MB / 4-layer
# image (never downloaded) in one run, against the peer pipelines, and
# warm per-machine rootfs creation. Needs root (overlay mount), umoci,
# mkfs.ext4. Usage (as root): bench/rootfs/run.sh [runs]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
work=${FERRY_BENCH_WORK:-/var/tmp/ferry-bench-rootfs}
mb=${FERRY_BENCH_MB:-180}
mkdir -p "$work"
export FERRY_BENCH_LAYOUT=$work/layout FERRY_BENCH_DIR=$work
cleanup() { mountpoint -q "$work/merged" 2>/dev/null && umount "$work/merged"; rm -rf "$work"/peer-* "$work"/root-*; }
trap cleanup EXIT

if [ ! -f "$work/layout/index.json" ]; then
  rm -rf "$work/layout"
  FERRY_BENCH_MB=$mb go test -count=1 -run TestWriteLayout ./bench/rootfs/ >/dev/null
fi
manifest=$(jq -r '.manifests[0].digest' "$work/layout/index.json" | cut -d: -f2)
mapfile -t layers < <(jq -r '.layers[].digest' "$work/layout/blobs/sha256/$manifest" | cut -d: -f2)
blob() { echo "$work/layout/blobs/sha256/$1"; }
go test -c -o "$work/rootfs.test" ./bench/rootfs/

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A wall cpu
# measure NAME CMD...: wall seconds and CPU seconds (user+sys, children
# included); CPU time is the fairer number on a shared, loaded machine.
measure() {
  local name=$1; shift
  local out
  out=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>&1; } 2>&1 | tail -1)
  wall[$name]+="$(awk '{print $1}' <<<"$out") "
  cpu[$name]+="$(awk '{print $2 + $3}' <<<"$out") "
}

peer_umoci() { # umoci unpack + mkfs.ext4 -d
  local d=$work/peer-umoci; rm -rf "$d" "$d.ext4"
  umoci unpack --image "$work/layout:latest" "$d" >/dev/null
  local kb; kb=$(du -sk "$d/rootfs" | cut -f1)
  mkfs.ext4 -q -F -d "$d/rootfs" "$d.ext4" "$(( kb * 12 / 10 + 65536 ))k"
}
peer_mount() { # containerd-style: one snapshot dir per layer, overlay mount, mkfs.ext4 -d
  local d=$work/peer-mount; rm -rf "$d" "$d.ext4"; mkdir -p "$d" "$work/merged"
  local lower=""
  for i in "${!layers[@]}"; do
    mkdir -p "$d/l$i"; tar --xattrs --numeric-owner -xzf "$(blob "${layers[$i]}")" -C "$d/l$i"
    lower="$d/l$i${lower:+:$lower}"
  done
  mount -t overlay overlay -o "ro,lowerdir=$lower" "$work/merged"
  local kb; kb=$(du -sk "$work/merged" | cut -f1)
  mkfs.ext4 -q -F -d "$work/merged" "$d.ext4" "$(( kb * 12 / 10 + 65536 ))k"
  umount "$work/merged"
}
floor_gzip() { for l in "${layers[@]}"; do gzip -dc "$(blob "$l")" >/dev/null & done; wait; }
ferry_cold() { "$work/rootfs.test" -test.run '^$' -test.bench ColdBase -test.benchtime 1x; }
floor_go() { "$work/rootfs.test" -test.run '^$' -test.bench Floor -test.benchtime 1x; }

names=(ferry floor_go floor_gzip umoci mount)
for r in $(seq "$runs"); do
  cat "$work"/layout/blobs/sha256/* >/dev/null # blobs in page cache, as after a pull
  measure ferry ferry_cold
  measure floor_go floor_go
  measure floor_gzip floor_gzip
  measure umoci peer_umoci
  measure mount peer_mount
  echo "run $r done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done

printf '| pipeline (%s MB, %d layers, median of %d) | wall s | CPU s (user+sys) |\n|---|---|---|\n' "$mb" "${#layers[@]}" "$runs"
for k in "${names[@]}"; do
  printf '| %s | %.2f | %.2f |\n' "$k" "$(tr ' ' '\n' <<<"${wall[$k]}" | grep . | median)" "$(tr ' ' '\n' <<<"${cpu[$k]}" | grep . | median)"
done
"$work/rootfs.test" -test.run '^$' -test.bench WarmPrepare -test.benchtime 50x | grep -E '^BenchmarkWarm'
