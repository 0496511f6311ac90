#!/usr/bin/env bash
# deps.sh installs the host prerequisites of ferry and its test suite from
# Debian's packages and the Go module proxy. Idempotent; run as root.
#
#   scripts/deps.sh        everything: running machines, building the guest
#                          kernel, and the peers and servers the tests use
#   scripts/deps.sh demo   running machines and building the guest kernel
#                          only (scripts/demo.sh: a first micro-VM sooner)
#   scripts/deps.sh docker a docker CLI 25 or later only, built into
#                          $FERRY_TOOLS_DIR (default /usr/local/lib/ferry/tools)
#                          unless one is on PATH
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
  docker) pkgs=(ca-certificates) ;;  # the module proxy's TLS; Go is checked below
  *) echo "usage: $0 [demo|docker]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# apt_update waits for another apt holding the lists lock (a fresh cloud
# machine runs apt-daily and unattended-upgrades soon after its first boot);
# DPkg::Lock::Timeout covers only the install's dpkg lock.
apt_update() {
  local i out
  for i in $(seq 60); do
    out=$(apt-get update -qq 2>&1) && return 0
    case "$out" in
      *"Could not get lock"*) [ "$i" = 1 ] && echo "deps: another apt holds its lock (apt-daily, unattended-upgrades?); waiting up to 10 min" >&2
        sleep 10 ;;
      *) break ;;
    esac
  done
  echo "$out" >&2
  return 1
}
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "deps: installing ${missing[*]} needs root: run as root" >&2; exit 1; }
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_update
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
fi

# virtiofsd serves bind mounts (virtio-fs): Debian 12's is /usr/lib/qemu/virtiofsd
# (qemu-system-common, installed with qemu-system-x86); Debian 13 ships the Rust
# one as its own package, /usr/libexec/virtiofsd.
if [ "$mode" != docker ] && [ ! -x /usr/libexec/virtiofsd ] && [ ! -x /usr/lib/qemu/virtiofsd ] && apt-cache show virtiofsd >/dev/null 2>&1; then
  echo "deps: installing virtiofsd"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends virtiofsd >/dev/null
fi

# Go: the machine's own toolchain (the module proxy supplies newer ones via GOTOOLCHAIN).
export PATH=/usr/local/go/bin:$PATH
if ! command -v go >/dev/null; then
  echo "deps: no Go toolchain; install Go (1.21 or later) at /usr/local/go (https://go.dev/dl) and re-run" >&2
  exit 1
fi
# Go 1.21 and later fetch the toolchain go.mod names; Debian 12's golang-go is
# 1.19, which cannot.
gov=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || true)
gominor=$(echo "$gov" | sed -n 's/^go1\.\([0-9][0-9]*\).*/\1/p')
if [ -z "$gominor" ] || [ "$gominor" -lt 21 ]; then
  echo "deps: $(command -v go) is ${gov:-of unknown version}; install Go 1.21 or later at /usr/local/go (https://go.dev/dl) and re-run (Debian 12's golang-go is 1.19)" >&2
  exit 1
fi

# Go-based peers used as test oracles and in bench/ (FERRY_TOOLS_DIR: elsewhere).
gobin=${FERRY_TOOLS_DIR:-/usr/local/lib/ferry/tools}

# The docker CLI of the Docker API tests (internal/dockerapi, bench/dockerapi)
# must speak Engine API 1.44 or later: docker 25+. Debian 12's docker.io is 20.10
# (API 1.41) and Docker's downloads are not reachable from every host, so when no
# docker 25+ is on PATH (or in $gobin), build github.com/docker/cli from the Go
# module proxy. It has no go.mod (CalVer: vendor.mod) and its module zip carries no
# vendor/, so build a copy with vendor.mod as go.mod. Static, CGO off; ~3 min
# niced on 2 shared cores, seconds from Go's build cache.
docker_cli_version=28.5.2
docker_major() { "$1" --version 2>/dev/null | sed -n 's/^Docker version \([0-9][0-9]*\)\..*/\1/p'; }
docker_cli_ok() {
  local d m
  for d in $(type -ap docker) "$gobin/docker"; do
    [ -x "$d" ] || continue
    m=$(docker_major "$d")
    [ -n "$m" ] && [ "$m" -ge 25 ] && return 0
  done
  return 1
}
install_docker_cli() (
  set -euo pipefail
  docker_cli_ok && exit 0
  echo "deps: building the docker CLI $docker_cli_version into $gobin (no docker 25 or later on PATH)"
  mod=github.com/docker/cli@v$docker_cli_version+incompatible
  go mod download "$mod"
  tmp=$(mktemp -d /tmp/ferry-docker-cli.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  cp -r "$(go env GOMODCACHE)/$mod/." "$tmp/"
  chmod -R u+w "$tmp"
  rm -rf "$tmp/vendor"
  mv "$tmp/vendor.mod" "$tmp/go.mod"
  mv "$tmp/vendor.sum" "$tmp/go.sum"
  mkdir -p "$gobin"
  cd "$tmp"
  CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 19 go build -trimpath -o "$gobin/docker.new" \
    -ldflags "-s -w -X github.com/docker/cli/cli/version.Version=$docker_cli_version -X github.com/docker/cli/cli/version.GitCommit=v$docker_cli_version" \
    ./cmd/docker
  mv "$gobin/docker.new" "$gobin/docker"
  [ "$(docker_major "$gobin/docker")" = "${docker_cli_version%%.*}" ] || { echo "deps: $gobin/docker does not report docker $docker_cli_version" >&2; exit 1; }
)

case "$mode" in
  docker) install_docker_cli; exit 0 ;;
  all) ;;
  *) exit 0 ;;
esac

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
install_docker_cli
# SeaweedFS (Apache-2.0), the S3-compatible server the registry's replica tests run
# against (weed mini: master, volume, filer and S3 gateway in one process). Its go.mod
# has replace directives, so `go install` refuses it: build it from its module
# directory, niced (a large build: 12 min niced with -p 1 on 2 shared cores, downloads included).
weed_version=v0.0.0-20261109003541-7506e5f91cd6
if [ ! -x "$gobin/weed" ]; then
  go mod download github.com/seaweedfs/seaweedfs@$weed_version
  (cd "$(go env GOMODCACHE)/github.com/seaweedfs/seaweedfs@$weed_version" && GOFLAGS=-mod=mod nice -n 19 go build -o "$gobin/weed" ./weed)
fi
