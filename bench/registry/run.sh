#!/usr/bin/env bash
# Registry benchmark: push then pull of a ~100 MB, 4-layer image by 8
# concurrent crane clients, against ferry's registry and Debian's
# docker-registry (vanilla distribution 2.8) on the same storage, same run.
# ferry is measured with an org token through the Docker token flow;
# docker-registry without auth.
#
#   bench/registry/run.sh [ROUNDS]      (env: BENCH_DIR, default /dev/shm/ferry-bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:/usr/local/lib/ferry/tools:$PATH
rounds=${1:-3}
clients=8
W=${BENCH_DIR:-/dev/shm/ferry-bench}
for t in crane docker-registry go; do command -v $t >/dev/null || { echo "needs $t (scripts/deps.sh)" >&2; exit 1; }; done
rm -rf "$W"; mkdir -p "$W"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$W"; }
trap cleanup EXIT

go build -o "$W/ferry" ./cmd/ferry
go run ./bench/registry/mkimage -o "$W/image" -size $((100 << 20)) -layers 4
size=$(du -sb "$W/image/blobs" | cut -f1)

# ferry registry, one org, one token.
"$W/ferry" registry serve --addr 127.0.0.1:5101 --root "$W/ferry-root" 2>"$W/ferry.log" & pids+=($!)
"$W/ferry" registry --root "$W/ferry-root" org create bench >/dev/null
token=$("$W/ferry" registry --root "$W/ferry-root" token create --org bench --format json | sed -E 's/.*"secret":"([^"]+)".*/\1/')
# docker-registry on the same filesystem.
cat >"$W/dist.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/dist-root}, delete: {enabled: true}, cache: {blobdescriptor: inmemory}}
http: {addr: 127.0.0.1:5102}
YML
docker-registry serve "$W/dist.yml" 2>"$W/dist.log" & pids+=($!)
export DOCKER_CONFIG=$W/docker; mkdir -p "$DOCKER_CONFIG"
for i in $(seq 50); do curl -fs -o /dev/null 127.0.0.1:5101/healthz && curl -fs -o /dev/null 127.0.0.1:5102/v2/ && break; sleep 0.1; done
crane auth login 127.0.0.1:5101 -u bench -p "$token" >/dev/null 2>&1

# phase REG ROUND push|pull: 8 clients at once; prints seconds.
phase() {
  local reg=$1 round=$2 op=$3 start end cpids=()
  start=$(date +%s.%N)
  for c in $(seq $clients); do
    ref=$reg/bench/r$round-$c:latest
    if [ "$op" = push ]; then crane push --insecure "$W/image" "$ref" >/dev/null 2>>"$W/crane.log" & cpids+=($!)
    else crane pull --insecure --format oci "$ref" "$W/pull-$c" >/dev/null 2>>"$W/crane.log" & cpids+=($!); fi
  done
  for p in "${cpids[@]}"; do wait "$p" || { echo "crane $op failed, see $W/crane.log (KEEP=1 keeps it)" >&2; exit 1; }; done
  end=$(date +%s.%N)
  rm -rf "$W"/pull-*
  echo "$end - $start" | bc
}

printf "%-16s %-5s %5s %9s %10s\n" registry round op seconds MB/s
declare -A total
for r in $(seq "$rounds"); do
  # alternate who goes first, so neither always gets the warmer page cache
  if (( r % 2 )); then order="ferry dist"; else order="dist ferry"; fi
  for who in $order; do
    reg=127.0.0.1:5101; [ "$who" = dist ] && reg=127.0.0.1:5102
    for op in push pull; do
      s=$(phase "$reg" "$r" "$op")
      mbs=$(echo "scale=1; $clients * $size / 1048576 / $s" | bc)
      printf "%-16s %-5s %5s %9.2f %10s\n" "$who" "$r" "$op" "$s" "$mbs"
      total[$who-$op]=$(echo "${total[$who-$op]:-0} + $s" | bc)
    done
  done
done
echo
for op in push pull; do
  f=${total[ferry-$op]}; d=${total[dist-$op]}
  printf "%s: ferry %.2fs, docker-registry %.2fs over %d rounds -> ferry throughput = %.2fx docker-registry\n" \
    "$op" "$f" "$d" "$rounds" "$(echo "scale=3; $d / $f" | bc)"
done
echo "image: $size bytes in 4 layers; $clients concurrent crane clients; storage: $W ($(df -T "$W" | awk 'NR==2{print $2}'))"
