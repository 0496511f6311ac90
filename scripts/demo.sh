#!/usr/bin/env bash
# demo.sh sets the machine up for running machines (scripts/setup.sh demo:
# no test peers; the minimal guest kernel builds in the background, logged
# to /var/log/ferry-kernel.log, and Debian's kernel boots until it is
# installed), starts the ferry daemon if none answers, builds a small
# busybox image locally (no internet needed), loads it into ferry's image
# cache and runs it as a micro-VM. Run as root; repeatable.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh demo
export PATH=/usr/local/go/bin:$PATH

if ! ferry images -q >/dev/null 2>&1; then
  echo "demo: starting ferry daemon (log: /var/log/ferry-daemon.log)"
  setsid ferry daemon >>/var/log/ferry-daemon.log 2>&1 < /dev/null &
  for _ in $(seq 150); do ferry images -q >/dev/null 2>&1 && break; sleep 0.2; done
  ferry images -q >/dev/null || { echo "demo: the daemon did not answer in 30 s; see /var/log/ferry-daemon.log" >&2; exit 1; }
fi

echo "demo: building busybox:local from Debian's busybox-static"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
go run ./internal/testimage/mkimage -o "$tmp/busybox.tar" -t busybox:local busybox
ferry load -i "$tmp/busybox.tar"
ferry images

if [ -f /usr/local/lib/ferry/vmlinux ]; then
  kernel="ferry's minimal kernel"
else
  kernel="Debian's kernel while ferry's minimal one builds (log: /var/log/ferry-kernel.log; later runs use it)"
fi
echo "demo: ferry run --rm busybox:local, booting $kernel (a micro-VM; under TCG emulation this takes a few seconds)"
ferry run --rm --hostname demo busybox:local \
  sh -c 'echo "hello from $(hostname), a micro-VM running $(uname -sr) on $(cat /proc/cpuinfo | grep -m1 "model name" | cut -d: -f2)"; cat /etc/os-release 2>/dev/null || true; df -h /'
