#!/usr/bin/env bash
# run.sh starts a real `ferry daemon` (own root and socket, network side in
# its own netns) and asks it to build the rootfs base of each image of a
# generated corpus of hostile layers (corpus_test.go), recording the
# daemon's peak RSS (VmHWM of a daemon started fresh for that image, after
# the image was loaded by another) and the time to reject. Peers on the same layers: `umoci unpack` of the same OCI layout
# and GNU tar extracting the layer blobs in order, each in a 2 GiB tmpfs
# and under `timeout 60`; their peak RSS from GNU time. Needs root.
# Usage (as root): bench/layers/run.sh     (FERRY_BENCH_WORK, default /var/tmp/ferry-bench-layers)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
work=${FERRY_BENCH_WORK:-/var/tmp/ferry-bench-layers}
ns=ferry-bench-layers
corpus=$work/corpus
mkdir -p "$work/peer"
if [ ! -f "$corpus/index.tsv" ]; then
  rm -rf "$corpus"
  FERRY_BENCH_CORPUS=$corpus go test -count=1 -timeout 30m -run TestWriteCorpus ./bench/layers/ >/dev/null
fi
go build -o "$work/ferry" ./cmd/ferry

pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  mountpoint -q "$work/peer" && umount "$work/peer"
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work/root" "$work"/*.tar
}
trap cleanup EXIT
ip netns add "$ns" 2>/dev/null || true
mount -t tmpfs -o size=2g,nr_inodes=4m ferry-bench-layers "$work/peer"
rm -rf "$work/root"
start_daemon() {
  rm -f "$work/ferry.sock"
  "$work/ferry" daemon --root "$work/root" --socket "$work/ferry.sock" --netns "$ns" --prewarm=false >>"$work/daemon.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -S "$work/ferry.sock" ] && break; sleep 0.1; done
}
stop_daemon() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
export FERRY_HOST=unix://$work/ferry.sock
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user+sys CPU, in 1/100 s
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

# peer CMD...: "result seconds peak-MiB" for CMD under timeout 60 in the tmpfs.
peer() {
  rm -rf "${work:?}/peer/"*
  local rc=0
  /usr/bin/time -f '%e %M' -o "$work/time.out" timeout 60 "$@" >/dev/null 2>"$work/peer.err" || rc=$?
  local res=ok
  if [ "$rc" = 124 ]; then res=timeout
  elif [ "$rc" != 0 ]; then
    if grep -qi 'no space' "$work/peer.err"; then res=ENOSPC; else res=error; fi
  fi
  read -r secs maxkb < <(tail -1 "$work/time.out")
  echo "$res $secs $(( maxkb / 1024 ))"
}
tar_layers() { # extract the image's layer blobs in order, as a plain unpacker would
  local dir=$1 m
  m=$(jq -r '.manifests[0].digest' "$dir/index.json" | cut -d: -f2)
  mkdir -p "$work/peer/t"
  for l in $(jq -r '.layers[].digest' "$dir/blobs/sha256/$m" | cut -d: -f2); do
    tar --xattrs --numeric-owner -xf "$dir/blobs/sha256/$l" -C "$work/peer/t" || return
  done
}
export -f tar_layers
export work

printf '| image | layers claim | ferry: verdict | s (CPU s) | peak RSS MiB (idle) | umoci unpack: result | s | MiB | GNU tar: result | s | MiB | RSS ferry/umoci |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n'
while IFS=$'\t' read -r name claim; do
  tar -C "$corpus/$name" -cf "$work/$name.tar" .
  start_daemon
  "$work/ferry" load -q -i "$work/$name.tar" >/dev/null
  stop_daemon
  rm -f "$work/$name.tar"
  start_daemon # a fresh daemon per image: its peak is this image's
  idle=$(( $(kb "$pid" VmRSS) / 1024 ))
  cpu0=$(ticks "$pid")
  start=$(date +%s.%N)
  if out=$("$work/ferry" image rootfs "hostile/$name:latest" 2>&1); then verdict=built; else verdict=rejected; fi
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  hwm=$(( $(kb "$pid" VmHWM) / 1024 ))
  cpu=$(awk -v a="$cpu0" -v b="$(ticks "$pid")" 'BEGIN { printf "%.2f", (b - a) / 100 }')
  stop_daemon
  echo "$name: $out" >>"$work/errors.log"
  read -r ures usecs umib < <(peer umoci unpack --image "$corpus/$name:latest" "$work/peer/u")
  read -r tres tsecs tmib < <(peer bash -c "tar_layers $corpus/$name")
  ratio=$(awk -v a="$hwm" -v b="$umib" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  printf '| %s | %s | %s | %.2f (%s) | %d (%d) | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$claim" "$verdict" "$secs" "$cpu" "$hwm" "$idle" "$ures" "$usecs" "$umib" "$tres" "$tsecs" "$tmib" "$ratio"
done <"$corpus/index.tsv"
echo "error lines: $work/errors.log; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
