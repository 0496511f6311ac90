#!/usr/bin/env bash
# test.sh sets the machine up (scripts/setup.sh, which builds the guest
# kernel or waits for the build the demo started) and runs ferry's whole
# test suite: unit tests, fuzz seed corpora, and the integration tests that
# need root, QEMU, network namespaces, a real registry and peer tools.
#
# It prints what go test prints for failures, then counts: packages, tests
# (subtests included) passed, failed and skipped, each skipped test with its
# reason (internal/testutil/testsummary). FERRY_TEST_STRICT=1 (what .ci/run
# sets) fails the run when any test skips: on a machine set up by this
# script nothing should. Never -short. The raw `go test -json` stream is kept
# in $FERRY_TEST_LOG (default /tmp/ferry-test.json).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH=/usr/local/go/bin:/usr/local/lib/ferry/tools:$PATH
log=${FERRY_TEST_LOG:-/tmp/ferry-test.json}
strict=()
[ "${FERRY_TEST_STRICT:-0}" = 1 ] && strict=(-strict)

echo "test: gofmt + go vet + go mod tidy"
make -s lint
summary=$(mktemp -d)/testsummary
trap 'rm -rf "$(dirname "$summary")"' EXIT
go build -o "$summary" ./internal/testutil/testsummary

echo "test: go test ./... ${strict[*]:+(strict: any skip fails)}"
start=$(date +%s)
set +e
go test -json -count=1 -p 2 -timeout 60m ./... 2>&1 | tee "$log" | "$summary" "${strict[@]}"
rcs=("${PIPESTATUS[@]}")
set -e
secs=$(($(date +%s) - start))
echo "test: wall $((secs / 60)) min $((secs % 60)) s, load $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; go test -json in $log"
[ "${rcs[0]}" = 0 ] && [ "${rcs[2]}" = 0 ]
