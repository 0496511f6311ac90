#!/usr/bin/env bash
# test.sh sets the machine up (scripts/setup.sh) and runs ferry's whole test
# suite: unit tests, fuzz seed corpora, and the integration tests that need
# root, QEMU, network namespaces, a real registry and peer tools.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH=/usr/local/go/bin:/usr/local/lib/ferry/tools:$PATH
echo "test: gofmt + go vet"
make -s lint
echo "test: go test ./..."
go test -count=1 -p 2 -timeout 60m ./... 2>&1 | tee /tmp/ferry-test.log | grep -Ev '^(=== RUN|=== PAUSE|=== CONT|    --- PASS)' 
rc=${PIPESTATUS[0]}
pass=$(grep -c '^ok ' /tmp/ferry-test.log || true)
fail=$(grep -cE '^(FAIL|--- FAIL)' /tmp/ferry-test.log || true)
echo "test: $pass packages ok, $fail failures"
exit "$rc"
