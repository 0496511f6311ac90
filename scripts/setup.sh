#!/usr/bin/env bash
# setup.sh makes this machine ready to run ferry: installs the prerequisites
# (scripts/deps.sh), builds and installs ferry and ferry-init, fetches
# Debian's fallback kernel, and builds (or reuses from its cache) the
# minimal guest kernel, all under /usr/local. Idempotent; run as root.
#
#   scripts/setup.sh        everything, the kernel built before it returns
#                           (waiting for a build already running): what the
#                           test suite needs (scripts/test.sh)
#   scripts/setup.sh demo   what running machines needs (no test peers), and
#                           the kernel built in the background when it is not
#                           cached: machines boot Debian's fallback kernel
#                           until it is installed, the minimal one from then
#                           on (scripts/demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:/usr/local/lib/ferry/tools:$PATH
mode=${1:-all}
case "$mode" in all | demo) ;; *) echo "usage: $0 [demo]" >&2; exit 2 ;; esac

[ "$(id -u)" = 0 ] || { echo "setup: run as root (ferry creates TAP devices, loop mounts and VMs)" >&2; exit 1; }
t0=$(date +%s)
step() { local s=$(($(date +%s) - t0)); printf 'setup: [%d:%02d] %s\n' $((s / 60)) $((s % 60)) "$*"; }

step "packages (scripts/deps.sh $mode)"
./scripts/deps.sh "$mode"
# go build stamps a checkout with its git state and make lint lists its files:
# git must read it, and it refuses a checkout another user owns (cloned as
# yourself, set up here as root): go build then fails "error obtaining VCS status".
if [ -e .git ] && ! err=$(git rev-parse --is-inside-work-tree 2>&1 >/dev/null); then
  echo "setup: git cannot read $PWD (${err%%$'\n'*}); if another user owns it: git config --global --add safe.directory $PWD" >&2
  exit 1
fi
if [ "$mode" = demo ]; then
  # Started first: niced, it takes the CPU only when the steps below leave
  # it idle.
  step "guest kernel (scripts/kernel.sh background)"
  FERRY_LIB_DIR=/usr/local/lib/ferry ./scripts/kernel.sh background
fi
step "building ferry and ferry-init"
make -s build
make -s install
step "Debian fallback kernel (scripts/kernel.sh fallback)"
FERRY_LIB_DIR=/usr/local/lib/ferry ./scripts/kernel.sh fallback
if [ "$mode" = all ]; then
  step "guest kernel (make kernel)"
  make -s kernel
fi
step "done"
