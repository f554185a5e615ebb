#!/usr/bin/env bash
# Runs the benchmarks recorded in docs/BENCHMARKS.md and prints their figures:
# the disk ceiling, commitlog append throughput over ≥ 8 GiB per point,
# recovery of a 10 GiB log, and the broker under `ferry bench` load
# (batch and single sends, end-to-end latency, memory, start-up time).
#
#   scripts/bench.sh [DIR]     DIR: a directory on the disk to measure (default: a temp dir)
#   QUICK=1 scripts/bench.sh   small sizes, to check the script itself
#   BROKER_ONLY=1 scripts/bench.sh   the disk ceiling and the broker loads only
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
dir=${1:-$(mktemp -d)}
mkdir -p "$dir"
quick=${QUICK:-}
n=8400000          # 1 KiB appends per point: a little over 8 GiB of records
recovery=$((10<<30))
dur=15s
if [ -n "$quick" ]; then n=20000; recovery=$((64<<20)); dur=3s; fi

echo "== machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d)"
echo "== disk ceiling ($dir)"
ceiling=../shared/scripts/disk-ceiling.sh
if [ -x "$ceiling" ] || [ -f "$ceiling" ]; then bash "$ceiling" "$dir"; else echo "disk-ceiling.sh not found"; fi

if [ -z "${BROKER_ONLY:-}" ]; then
echo "== commitlog append, 1 KiB, consume-queue-style reader on, ${n} appends per point (sync: 64 appenders)"
FERRY_BENCH_DIR="$dir" go test -run '^$' -count=1 -timeout 2h \
  -bench 'BenchmarkAppend/topics=(1|1024)/flush=async/appenders=(1|64)$/reader=dispatch$' \
  -benchtime "${n}x" ./commitlog/ | grep -E '^Benchmark'
FERRY_BENCH_DIR="$dir" go test -run '^$' -count=1 -timeout 2h \
  -bench 'BenchmarkAppend/topics=(1|1024)/flush=sync/appenders=64$/reader=dispatch$' \
  -benchtime "${n}x" ./commitlog/ | grep -E '^Benchmark'

echo "== commitlog recovery after an unclean stop ($((recovery>>20)) MiB log, current checkpoint)"
FERRY_BENCH_DIR="$dir" FERRY_BENCH_RECOVERY_BYTES=$recovery go test -run '^$' -count=1 -timeout 1h \
  -bench 'BenchmarkRecovery' -benchtime 3x ./commitlog/ | grep -E '^Benchmark'

fi

echo "== broker under ferry bench (client and broker share the machine; a fresh broker per load)"
bin=$(mktemp -d)/ferry
go build -o "$bin" ./cmd/ferry
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null || true' EXIT
# start_broker: a broker on an empty data dir, so that no load inherits the
# write-back of the one before it. The sync waits for the deletion too: on a
# file system mounted with `discard`, freeing gigabytes keeps the disk busy
# for seconds after rm returns.
start_broker() {
  data="$dir/broker-data"
  rm -rf "$data"
  sync
  port=$((20000 + RANDOM % 20000))
  "$bin" server --data-dir "$data" --namesrv-port "$port" --broker-port 0 --http-port -1 \
    --host 127.0.0.1 --advertise-host 127.0.0.1 --log-format json 2>"$dir/broker.log" &
  pid=$!
  for _ in $(seq 100); do grep -q '"broker ready"' "$dir/broker.log" 2>/dev/null && break; sleep 0.05; done
}
stop_broker() {
  echo "broker peak RSS: $(awk '/VmHWM/{printf "%.0f MiB", $2/1024}' /proc/$pid/status)"
  kill $pid; wait $pid 2>/dev/null || true
  pid=
}
b() { "$bin" bench "$@" --namesrv "127.0.0.1:$port" --duration "$dur" --warmup 3s --quiet; }
start_broker
grep -o '"startup":[0-9.]*' "$dir/broker.log" | head -1 | sed 's/"startup":/start-up to ready (ms, logged by the broker): /'
echo "-- batch sends: 4 producers, batches of 32"
b produce --topic Batch --producers 4 --batch 32
stop_broker
start_broker
echo "-- single sends: 64 producers over 8 connections"
b produce --topic Single --producers 64 --conns 8
stop_broker
start_broker
echo "-- single sends: 64 producers sharing one connection (one client instance)"
b produce --topic Single --producers 64 --conns 1
stop_broker
start_broker
echo "-- end to end at 5,000 msg/s (born to delivered to a long-polling consumer), 4 producers"
b consume --topic E2E --producers 4 --rate 5000
stop_broker
start_broker
echo "-- end to end at 5,000 msg/s, 1 producer"
b consume --topic E2E --producers 1 --rate 5000
stop_broker
