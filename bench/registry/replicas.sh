#!/usr/bin/env bash
# Registry scale-out benchmark: push then pull of a 4-layer image by
# concurrent crane clients through two `ferry registry serve` replicas
# sharing blobs on S3 (SeaweedFS's weed mini) and metadata on Postgres,
# against one replica on the filesystem with SQLite, in the same run.
# Through the pair, half the clients push to each replica and every client
# pulls from the other replica than the one it pushed to.
#
#   bench/registry/replicas.sh [ROUNDS]   (env: BENCH_DIR, default /dev/shm/ferry-bench-replicas;
#                                          SIZE_MB, default 64; CLIENTS, default 8)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:/usr/local/lib/ferry/tools:$PATH
rounds=${1:-3}
clients=${CLIENTS:-8}
size_mb=${SIZE_MB:-64}
W=${BENCH_DIR:-/dev/shm/ferry-bench-replicas}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
for t in crane weed go psql; do command -v $t >/dev/null || { echo "needs $t (scripts/deps.sh)" >&2; exit 1; }; done
[ -x "$pgbin/initdb" ] || { echo "needs the PostgreSQL server (scripts/deps.sh)" >&2; exit 1; }
rm -rf "$W"; mkdir -p "$W"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${pg_started:-}" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$W/pg/data" -m immediate stop >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$W"
  rm -f /tmp/seaweedfs-*-grpc-531[0-9].sock   # weed mini's local gRPC sockets, named by port
}
trap cleanup EXIT

go build -o "$W/ferry" ./cmd/ferry
go run ./bench/registry/mkimage -o "$W/image" -size $((size_mb << 20)) -layers 4
size=$(du -sb "$W/image/blobs" | cut -f1)

# Postgres on a private socket, no TCP.
mkdir -p "$W/pg/data" "$W/pg/sock"; chown -R postgres "$W/pg"
runuser -u postgres -- "$pgbin/initdb" -D "$W/pg/data" -U postgres -A trust --no-sync >/dev/null
runuser -u postgres -- "$pgbin/pg_ctl" -D "$W/pg/data" -l "$W/pg/log" -o "-k $W/pg/sock -c listen_addresses= -c fsync=off -c synchronous_commit=off" -w start >/dev/null
pg_started=1
psql -h "$W/pg/sock" -U postgres -qc 'CREATE DATABASE ferry' postgres
dsn="postgres:///ferry?host=$W/pg/sock&user=postgres&sslmode=disable"

# S3: SeaweedFS, one process, loopback only.
mkdir -p "$W/s3"
AWS_ACCESS_KEY_ID=benchaccess AWS_SECRET_ACCESS_KEY=benchsecret0123456789 S3_BUCKET=ferry \
  weed -logtostderr mini -dir="$W/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port=5310 -s3.port.grpc=5311 \
  -master.port=5312 -master.port.grpc=5313 -volume.port=5314 -volume.port.grpc=5315 \
  -filer.port=5316 -filer.port.grpc=5317 -admin.port=5318 -admin.port.grpc=5319 -admin.port.legacy=0 \
  -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
  -filer.localSocket="$W/s3/filer.sock" -s3.localSocket="$W/s3/s3.sock" \
  >"$W/weed.log" 2>&1 & pids+=($!)
for i in $(seq 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -I 127.0.0.1:5310/ferry || true)
  [ "$code" = 403 ] || [ "$code" = 200 ] && break; sleep 0.2
done

secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
for r in a b; do
  cat >"$W/replica-$r.yaml" <<YML
root: $W/replica-$r
db: $dsn
secret: $secret
storage:
  s3: {region: us-east-1, regionendpoint: "http://127.0.0.1:5310", bucket: ferry, accesskey: benchaccess,
       secretkey: benchsecret0123456789, forcepathstyle: true, secure: false, rootdirectory: /registry}
YML
done
"$W/ferry" registry serve --config "$W/replica-a.yaml" --addr 127.0.0.1:5301 2>"$W/replica-a.log" & pids+=($!)
"$W/ferry" registry serve --config "$W/replica-b.yaml" --addr 127.0.0.1:5302 2>"$W/replica-b.log" & pids+=($!)
"$W/ferry" registry serve --addr 127.0.0.1:5303 --root "$W/fs-root" 2>"$W/fs.log" & pids+=($!)
for i in $(seq 100); do
  curl -fs -o /dev/null 127.0.0.1:5301/healthz && curl -fs -o /dev/null 127.0.0.1:5302/healthz && curl -fs -o /dev/null 127.0.0.1:5303/healthz && break
  sleep 0.2
done
"$W/ferry" registry --config "$W/replica-a.yaml" org create bench >/dev/null
"$W/ferry" registry --root "$W/fs-root" org create bench >/dev/null
tok_s3=$("$W/ferry" registry --config "$W/replica-a.yaml" token create --org bench --format json | sed -E 's/.*"secret":"([^"]+)".*/\1/')
tok_fs=$("$W/ferry" registry --root "$W/fs-root" token create --org bench --format json | sed -E 's/.*"secret":"([^"]+)".*/\1/')
export DOCKER_CONFIG=$W/docker; mkdir -p "$DOCKER_CONFIG"
crane auth login 127.0.0.1:5301 -u bench -p "$tok_s3" >/dev/null 2>&1
crane auth login 127.0.0.1:5302 -u bench -p "$tok_s3" >/dev/null 2>&1
crane auth login 127.0.0.1:5303 -u bench -p "$tok_fs" >/dev/null 2>&1

# phase SETUP ROUND push|pull: all clients at once; prints seconds.
phase() {
  local setup=$1 round=$2 op=$3 start end cpids=() reg
  start=$(date +%s.%N)
  for c in $(seq "$clients"); do
    if [ "$setup" = fs ]; then reg=127.0.0.1:5303
    elif [ "$op" = push ]; then reg=127.0.0.1:$((5301 + c % 2))
    else reg=127.0.0.1:$((5302 - c % 2)); fi   # pull from the other replica
    ref=$reg/r$round-$c:latest
    if [ "$op" = push ]; then crane push --insecure "$W/image" "$ref" >/dev/null 2>>"$W/crane.log" & cpids+=($!)
    else crane pull --insecure --format oci "$ref" "$W/pull-$c" >/dev/null 2>>"$W/crane.log" & cpids+=($!); fi
  done
  for p in "${cpids[@]}"; do wait "$p" || { echo "crane $op failed, see $W/crane.log (KEEP=1 keeps it)" >&2; exit 1; }; done
  end=$(date +%s.%N)
  rm -rf "$W"/pull-*
  echo "$end - $start" | bc
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-22s %-5s %5s %9s %10s\n" setup round op seconds MB/s
declare -A total
for r in $(seq "$rounds"); do
  if (( r % 2 )); then order="s3 fs"; else order="fs s3"; fi
  for who in $order; do
    for op in push pull; do
      s=$(phase "$who" "$r" "$op")
      mbs=$(echo "scale=1; $clients * $size / 1048576 / $s" | bc)
      label="2 replicas, S3+Postgres"; [ "$who" = fs ] && label="1 replica, filesystem"
      printf "%-22s %-5s %5s %9.2f %10s\n" "$label" "$r" "$op" "$s" "$mbs"
      total[$who-$op]=$(echo "${total[$who-$op]:-0} + $s" | bc)
    done
  done
done
echo
for op in push pull; do
  a=${total[s3-$op]}; f=${total[fs-$op]}
  printf "%s: 2 replicas on S3 %.2fs, 1 replica on the filesystem %.2fs over %d rounds -> replicas' throughput = %.2fx one replica on the filesystem\n" \
    "$op" "$a" "$f" "$rounds" "$(echo "scale=3; $f / $a" | bc)"
done
echo "image: $size bytes in 4 layers; $clients concurrent crane clients; S3 (SeaweedFS) and filesystem on $W ($(df -T "$W" | awk 'NR==2{print $2}')); load after: $(cut -d' ' -f1-3 /proc/loadavg)"
