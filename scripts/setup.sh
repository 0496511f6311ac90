#!/usr/bin/env bash
# setup.sh makes this machine ready to run ferry: installs the prerequisites
# (scripts/deps.sh), builds ferry and ferry-init, builds (or reuses from its
# cache) the guest kernel, fetches Debian's fallback kernel, and installs them
# under /usr/local. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:/usr/local/lib/ferry/tools:$PATH

[ "$(id -u)" = 0 ] || { echo "setup: run as root (ferry creates TAP devices, loop mounts and VMs)" >&2; exit 1; }
./scripts/deps.sh
echo "setup: building ferry"
make -s build
make -s install
echo "setup: guest kernel"
make -s kernel
echo "setup: Debian fallback kernel (for hosts that do not build one; the tests boot it too)"
./scripts/kernel.sh fallback
