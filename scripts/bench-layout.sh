#!/usr/bin/env bash
# The storage-layout benchmark: Ferry's shared commitlog against a Kafka-style
# per-partition log, topics 1 → 1024, async and sync flush. See docs/LAYOUT.md.
#
#   scripts/bench-layout.sh --dir /mnt/disk-under-test      full sweep, results in docs/
#   scripts/bench-layout.sh --quick --out /tmp/layout-smoke  smoke test (< 2 min); checks the output
#   scripts/bench-layout.sh --help                           every flag
#
# The chart is drawn by a separate command (go run ./bench/layout/plot), so the
# ferry binary does not link the plotting library.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "Go 1.26 is required (https://go.dev/dl/)" >&2; exit 1; }

out=docs
help=
prev=
for a in "$@"; do
  case "$prev" in --out|-out) out=$a ;; esac
  case "$a" in
    --out=*|-out=*) out=${a#*=} ;;
    -h|-help|--help) help=1 ;;
  esac
  prev=$a
done

go run ./cmd/ferry bench layout "$@"
[ -n "$help" ] || go run ./bench/layout/plot --out "$out"
