#!/usr/bin/env bash
# Push then run: a fresh runnable image (busybox + one random layer of
# SIZE bytes, new bytes each round) pushed with crane to the daemon's
# host-local mirror then `ferry run --rm IMG true`, against the same image
# pushed with crane to Debian's docker-registry then `ferry pull` then
# `ferry run --rm`. One daemon (this tree's ferry, QEMU under TCG, its
# network in a netns of its own), same storage, alternating who goes first.
#
#   bench/mirror/run-bench.sh [ROUNDS] [SIZE]   (root; env BENCH_DIR, default /dev/shm/ferry-bench-mirror-run)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:/usr/local/lib/ferry/tools:$PATH
export FERRY_QEMU_ACCEL=${FERRY_QEMU_ACCEL:-tcg}
rounds=${1:-3}
size=${2:-$((64 << 20))}
W=${BENCH_DIR:-/dev/shm/ferry-bench-mirror-run}
NS=ferry-bench-mirror-$$
for t in crane docker-registry go bc ip; do command -v $t >/dev/null || { echo "needs $t (scripts/deps.sh)" >&2; exit 1; }; done
rm -rf "$W"; mkdir -p "$W"
pids=()
cleanup() {
  [ -S "$W/ferry.sock" ] && for id in $("$W/ferry" -H "unix://$W/ferry.sock" ps -a -q 2>/dev/null); do "$W/ferry" -H "unix://$W/ferry.sock" rm -f "$id" >/dev/null 2>&1 || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT

go build -o "$W/ferry" ./cmd/ferry
go build -o "$W/mkrun" ./bench/mirror/mkrun
ip netns add "$NS"
M=127.0.0.1:5113 R=127.0.0.1:5114
"$W/ferry" daemon --root "$W/root" --socket "$W/ferry.sock" --netns "$NS" --mirror-addr $M \
  --insecure-registry $R --docker-socket none 2>"$W/daemon.log" & pids+=($!)
cat >"$W/dist.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/dist-root}, cache: {blobdescriptor: inmemory}}
http: {addr: $R}
YML
docker-registry serve "$W/dist.yml" 2>"$W/dist.log" & pids+=($!)
for i in $(seq 100); do curl -fs -o /dev/null $M/v2/ && curl -fs -o /dev/null $R/v2/ && [ -S "$W/ferry.sock" ] && break; sleep 0.1; done
ferry() { "$W/ferry" -H "unix://$W/ferry.sock" "$@"; }
# Warm the kernel and the guest path once, outside the timing.
"$W/mkrun" -o "$W/warm" -size 1024
crane push --insecure "$W/warm" $M/bench/warm:latest >/dev/null 2>>"$W/crane.log"
ferry run --rm bench/warm:latest true 2>>"$W/run.log"

now() { date +%s.%N; }
via_mirror() { # round
  local s; s=$(now)
  crane push --insecure "$W/img-$1-mirror" $M/bench/m$1:latest >/dev/null 2>>"$W/crane.log"
  ferry run --rm bench/m$1:latest true 2>>"$W/run.log"
  echo "$(now) - $s" | bc
}
via_registry() { # round
  local s; s=$(now)
  crane push --insecure "$W/img-$1-reg" $R/bench/r$1:latest >/dev/null 2>>"$W/crane.log"
  ferry pull --insecure-registry $R $R/bench/r$1:latest >/dev/null
  ferry run --rm $R/bench/r$1:latest true 2>>"$W/run.log"
  echo "$(now) - $s" | bc
}

for r in $(seq "$rounds"); do "$W/mkrun" -o "$W/img-$r-mirror" -size "$size"; "$W/mkrun" -o "$W/img-$r-reg" -size "$size"; done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-9s %-5s %9s\n" path round seconds
declare -A total=([mirror]=0 [registry]=0)
for r in $(seq "$rounds"); do
  if (( r % 2 )); then order="mirror registry"; else order="registry mirror"; fi
  for who in $order; do
    s=$(via_$who $r)
    total[$who]=$(echo "${total[$who]} + $s" | bc)
    printf "%-9s %-5s %9.2f\n" $who $r "$s"
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "push+run via mirror / push+pull+run via registry: %.2fx (total %.1f s vs %.1f s)\n" \
  "$(echo "${total[mirror]} / ${total[registry]}" | bc -l)" "${total[mirror]}" "${total[registry]}"
