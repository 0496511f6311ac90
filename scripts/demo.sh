#!/usr/bin/env bash
# demo.sh sets the machine up (scripts/setup.sh), starts the ferry daemon if
# none answers, builds a small busybox image locally (no internet needed),
# loads it into ferry's image cache and runs it as a micro-VM.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH=/usr/local/go/bin:$PATH

if ! ferry images -q >/dev/null 2>&1; then
  echo "demo: starting ferry daemon (log: /var/log/ferry-daemon.log)"
  setsid ferry daemon >>/var/log/ferry-daemon.log 2>&1 < /dev/null &
  for _ in $(seq 50); do ferry images -q >/dev/null 2>&1 && break; sleep 0.2; done
fi

echo "demo: building busybox:local from Debian's busybox-static"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
go run ./internal/testimage/mkimage -o "$tmp/busybox.tar" -t busybox:local busybox
ferry load -i "$tmp/busybox.tar"
ferry images

echo "demo: ferry run --rm busybox:local (a micro-VM; under TCG emulation this takes a few seconds)"
ferry run --rm --hostname demo busybox:local \
  sh -c 'echo "hello from $(hostname), a micro-VM running $(uname -sr) on $(cat /proc/cpuinfo | grep -m1 "model name" | cut -d: -f2)"; cat /etc/os-release 2>/dev/null || true; df -h /'
