#!/usr/bin/env bash
# The storage-layout benchmark: Ferry's shared commitlog against a Kafka-style
# per-partition log, topics 1 → 1024, async and sync flush. See docs/LAYOUT.md.
#
#   scripts/bench-layout.sh --dir /mnt/disk-under-test      full sweep, results in docs/
#   scripts/bench-layout.sh --quick --out /tmp/layout-smoke  smoke test (< 2 min); checks the output
#   scripts/bench-layout.sh --help                           every flag
#
# Arguments must not contain spaces while `ferry bench layout` is not wired
# into cmd/ferry (they pass through an environment variable to a Go test).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "Go 1.26 is required (https://go.dev/dl/)" >&2; exit 1; }

if grep -qs 'ferry/bench/layout"' cmd/ferry/*.go; then
  exec go run ./cmd/ferry bench layout "$@"
fi
# Until `ferry bench layout` is wired into cmd/ferry, run the same entry point
# (layout.Main) through a test.
FERRY_BENCH_LAYOUT_ARGS="$*" FERRY_BENCH_LAYOUT_CWD="$PWD" \
  exec go test -count=1 -timeout 3h -run '^TestScriptEntry$' ./bench/layout -v
