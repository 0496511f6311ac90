#!/usr/bin/env bash
# Mirror push throughput: 8 concurrent crane clients each push their own
# ~32 MB, 4-layer image (fresh random bytes per client and round: the
# mirror's store is content-addressed across repositories, so a repeated
# image would upload nothing) to ferry's host-local mirror
# (bench/mirror/serve: internal/mirror over a fresh image store, fsync on)
# and to Debian's docker-registry (vanilla distribution), same storage,
# same run, alternating who goes first.
#
#   bench/mirror/run.sh [ROUNDS]      (env: BENCH_DIR, default /dev/shm/ferry-bench-mirror)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:/usr/local/lib/ferry/tools:$PATH
rounds=${1:-3}
clients=8
W=${BENCH_DIR:-/dev/shm/ferry-bench-mirror}
for t in crane docker-registry go bc; do command -v $t >/dev/null || { echo "needs $t (scripts/deps.sh)" >&2; exit 1; }; done
rm -rf "$W"; mkdir -p "$W"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT

go build -o "$W/serve" ./bench/mirror/serve
go build -o "$W/mkimage" ./bench/registry/mkimage
for r in $(seq "$rounds"); do for c in $(seq $clients); do
  "$W/mkimage" -o "$W/image-$r-$c" -size $((32 << 20)) -layers 4
done; done
size=$(du -sb "$W/image-1-1/blobs" | cut -f1)
"$W/serve" -addr 127.0.0.1:5111 -root "$W/ferry-root" 2>"$W/ferry.log" & pids+=($!)
cat >"$W/dist.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/dist-root}, cache: {blobdescriptor: inmemory}}
http: {addr: 127.0.0.1:5112}
YML
docker-registry serve "$W/dist.yml" 2>"$W/dist.log" & pids+=($!)
for i in $(seq 50); do curl -fs -o /dev/null 127.0.0.1:5111/v2/ && curl -fs -o /dev/null 127.0.0.1:5112/v2/ && break; sleep 0.1; done

push() {
  local reg=$1 round=$2 start end cpids=()
  start=$(date +%s.%N)
  for c in $(seq $clients); do
    crane push --insecure "$W/image-$round-$c" "$reg/bench/r$round-$c:latest" >/dev/null 2>>"$W/crane.log" & cpids+=($!)
  done
  for p in "${cpids[@]}"; do wait "$p" || { echo "crane push failed, see $W/crane.log (KEEP=1 keeps it)" >&2; exit 1; }; done
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-8s %-5s %9s %10s\n" target round seconds MB/s
declare -A total=([mirror]=0 [dist]=0)
for r in $(seq "$rounds"); do
  if (( r % 2 )); then order="mirror dist"; else order="dist mirror"; fi
  for who in $order; do
    if [ $who = mirror ]; then reg=127.0.0.1:5111; else reg=127.0.0.1:5112; fi
    s=$(push $reg $r)
    total[$who]=$(echo "${total[$who]} + $s" | bc)
    printf "%-8s %-5s %9.2f %10.1f\n" $who $r "$s" "$(echo "$clients * $size / 1048576 / $s" | bc -l)"
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "push throughput mirror / docker-registry: %.2fx (total %.1f s vs %.1f s)\n" \
  "$(echo "${total[dist]} / ${total[mirror]}" | bc -l)" "${total[mirror]}" "${total[dist]}"
