#!/usr/bin/env bash
# run.sh times `ferry build` against `buildah bud --layers --runtime runc`
# (Debian's buildah; runc because crun fails on this host's hybrid
# cgroups) on the same Dockerfile and the same locally built busybox base,
# in one run: a cold build (--no-cache: every step runs; ferry boots its
# builder VM under TCG), a fully cached rebuild, and a rebuild after a
# one-line change to a copied file. RUN steps have no network on both
# sides (buildah's needs CNI configuration this host lacks). Needs root,
# QEMU, the guest kernel, buildah, runc.
# Usage: bench/build/run.sh [runs]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
work=${FERRY_BENCH_WORK:-/var/tmp/ferry-bench-build}
ns=ferry-bench-build
rm -rf "$work"; mkdir -p "$work/lib" "$work/ctx/src"
export PATH=/usr/local/go/bin:$PATH

# This tree's ferry and ferry-init (the builder helper lives in ferry-init).
go build -o "$work/ferry" ./cmd/ferry
CGO_ENABLED=0 go build -o "$work/lib/ferry-init" ./cmd/ferry-init
for f in vmlinux fallback; do [ -e /usr/local/lib/ferry/$f ] && ln -s /usr/local/lib/ferry/$f "$work/lib/$f"; done
export FERRY_LIB=$work/lib FERRY_QEMU_ACCEL=${FERRY_QEMU_ACCEL:-tcg}
go run ./internal/testimage/mkimage -o "$work/busybox.tar" -t busybox:local busybox

ip netns add "$ns"
sock=$work/ferry.sock
cleanup() {
  [ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  buildah --root "$work/buildah" --runroot "$work/buildah-run" rm -a >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$work/ferry" daemon --root "$work/root" --socket "$sock" --netns "$ns" --prewarm=false >"$work/daemon.log" 2>&1 &
dpid=$!
ferry() { "$work/ferry" --host "unix://$sock" "$@"; }
for _ in $(seq 100); do ferry images >/dev/null 2>&1 && break; sleep 0.1; done
ferry load -i "$work/busybox.tar" >/dev/null
bah() { buildah --root "$work/buildah" --runroot "$work/buildah-run" --storage-driver overlay "$@"; }
bah pull -q "docker-archive:$work/busybox.tar" >/dev/null
bah tag "$(bah images -q | head -1)" localhost/busybox:local

cat >"$work/ctx/Dockerfile" <<'DF_END'
ARG BASE
FROM ${BASE}
WORKDIR /app
COPY src/ /app/src/
RUN mkdir -p /app/out && for i in $(seq 1 500); do echo "line $i" >> /app/out/gen.txt; done
RUN sha256sum /app/src/* > /app/out/sums && tar -C / -cf /app/out/src.tar app/src
COPY config.txt /app/config.txt
RUN wc -l /app/config.txt > /app/out/lines && rm /app/out/src.tar
ENV MODE=prod
CMD ["cat", "/app/out/sums"]
DF_END
for i in $(seq 1 20); do head -c 65536 /dev/urandom | base64 >"$work/ctx/src/file$i.txt"; done
seq 1 100 >"$work/ctx/config.txt"

ferry_build() { ferry build -q --network none --build-arg BASE=busybox:local "$@" -t bench:ferry "$work/ctx"; }
buildah_build() { bah bud -q --layers --runtime runc --network none --build-arg BASE=localhost/busybox:local "$@" -t bench:buildah "$work/ctx"; }

declare -A t
measure() { # measure NAME CMD...
  local name=$1; shift
  local s e; s=$(date +%s.%N); "$@" >/dev/null 2>>"$work/errors.log"; e=$(date +%s.%N)
  t[$name]+="$(echo "$e - $s" | bc) "
}
change=0
for r in $(seq "$runs"); do
  for tool in ferry buildah; do
    measure "$tool-cold" "${tool}_build" --no-cache
    measure "$tool-cached" "${tool}_build"
    change=$((change + 1)); sed -i "1s/.*/changed $change/" "$work/ctx/config.txt"
    measure "$tool-oneline" "${tool}_build"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-10s %10s %10s %8s\n' case ferry buildah ratio
for c in cold cached oneline; do
  f=$(echo "${t[ferry-$c]}" | median); b=$(echo "${t[buildah-$c]}" | median)
  printf '%-10s %9.2fs %9.2fs %7.2fx\n' "$c" "$f" "$b" "$(echo "$f / $b" | bc -l)"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -s "$work/errors.log" ] && { echo "errors:"; cat "$work/errors.log"; }
