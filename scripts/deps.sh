#!/usr/bin/env bash
# deps.sh installs the host prerequisites of ferry and its test suite from
# Debian's packages and the Go module proxy. Idempotent; run as root.
#
#   scripts/deps.sh        everything: running machines, building the guest
#                          kernel, and the peers and servers the tests use
#   scripts/deps.sh demo   running machines and building the guest kernel
#                          only (scripts/demo.sh: a first micro-VM sooner)
set -euo pipefail
mode=${1:-all}

pkgs=(
  build-essential git make ca-certificates curl jq zstd cpio time   # time: GNU time, peak RSS in bench/
  qemu-system-x86                 # the VMM on hosts without Firecracker
  e2fsprogs                       # mkfs/e2fsck/debugfs
  iproute2 iptables nftables      # bridge, TAP, NAT
  busybox-static                  # images built without the internet (the demo's, the tests')
  linux-source-6.1 flex bison bc libelf-dev libssl-dev dwarves  # guest kernel build
  kmod                            # depmod for the Debian fallback kernel (scripts/kernel.sh fallback)
  cryptsetup-bin                  # LUKS2 headers of encrypted volumes (ferry volume create); luksDump in tests
)
test_pkgs=(
  xfsprogs btrfs-progs            # reflink filesystems for tests
  bind9-dnsutils iputils-ping iputils-arping iperf3  # network tests' clients (dig, ping, arping) and bench/network
  skopeo umoci docker-registry    # peers and oracles in tests and bench/
  podman                          # registry interop tests
  buildah runc                    # ferry build's peer in bench/build (runc: crun fails on hybrid cgroups)
  postgresql                      # registry Postgres metadata tests (initdb/postgres only; no service)
  fio                             # volume benchmarks (bench/volumes: inside the guest and on the host)
)
case "$mode" in
  all) pkgs+=("${test_pkgs[@]}") ;;
  demo) ;;
  *) echo "usage: $0 [demo]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
fi

# virtiofsd serves bind mounts (virtio-fs): Debian 12's is /usr/lib/qemu/virtiofsd
# (qemu-system-common, installed with qemu-system-x86); Debian 13 ships the Rust
# one as its own package, /usr/libexec/virtiofsd.
if [ ! -x /usr/libexec/virtiofsd ] && [ ! -x /usr/lib/qemu/virtiofsd ] && apt-cache show virtiofsd >/dev/null 2>&1; then
  echo "deps: installing virtiofsd"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends virtiofsd >/dev/null
fi

# Go: the machine's own toolchain (the module proxy supplies newer ones via GOTOOLCHAIN).
export PATH=/usr/local/go/bin:$PATH
if ! command -v go >/dev/null; then
  echo "deps: no Go toolchain; install Go (1.21 or later) at /usr/local/go (https://go.dev/dl) and re-run" >&2
  exit 1
fi

[ "$mode" = all ] || exit 0

# Go-based peers used as test oracles and in bench/.
gobin=/usr/local/lib/ferry/tools
mkdir -p "$gobin"
if [ ! -x "$gobin/crane" ]; then
  GOBIN=$gobin go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
fi
[ -x "$gobin/oras" ] || GOBIN=$gobin go install oras.land/oras/cmd/oras@v1.3.6  # registry interop tests

# docker compose v2, a docker CLI plugin, for the Docker API tests (internal/dockerapi).
# v5.6.0's go.mod has exclude directives, so `go install` refuses it: build it from its
# module directory. The tests link it into their own DOCKER_CONFIG/cli-plugins.
if [ ! -x "$gobin/docker-compose" ]; then
  go mod download github.com/docker/compose/v5@v5.6.0
  (cd "$(go env GOMODCACHE)/github.com/docker/compose/v5@v5.6.0" && GOFLAGS=-mod=mod go build -o "$gobin/docker-compose" ./cmd)
fi
# SeaweedFS (Apache-2.0), the S3-compatible server the registry's replica tests run
# against (weed mini: master, volume, filer and S3 gateway in one process). Its go.mod
# has replace directives, so `go install` refuses it: build it from its module
# directory, niced (a large build: 12 min niced with -p 1 on 2 shared cores, downloads included).
weed_version=v0.0.0-20261109003541-7506e5f91cd6
if [ ! -x "$gobin/weed" ]; then
  go mod download github.com/seaweedfs/seaweedfs@$weed_version
  (cd "$(go env GOMODCACHE)/github.com/seaweedfs/seaweedfs@$weed_version" && GOFLAGS=-mod=mod nice -n 19 go build -o "$gobin/weed" ./weed)
fi
# The docker CLI itself (API 1.44 or later: docker 25+) is not packaged by Debian 12
# (docker.io is 20.10); the tests use the one on PATH.
