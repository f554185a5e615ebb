#!/usr/bin/env bash
# Replication benchmarks recorded in docs/BENCHMARKS.md, all in one run so
# that every ratio compares figures of the same hour on the same machine:
#
#   (a) a single broker (acks=1), batch sends: 4 producers x batches of 32, 1 KiB
#       (BATCH_PRODUCERS=N for another number of producers, on both sides)
#   (b) the same load against the master of a 3-replica group (acks=all); b/a
#   (c) end to end at 5,000 msg/s (1 and 4 producers) on both
#   (d) catch-up: a slave starting empty while the master holds CATCHUP_GIB,
#       against the disk ceiling measured at the start of the run (1 GiB, and
#       CATCHUP_GIB: past the page cache's dirty limits the disk sets the pace)
#
# (a)-(c) run ROUNDS times, alternating which side goes first; every broker
# and cluster starts on an empty data directory.
#
#   scripts/bench-replication.sh [DIR]    DIR: where data, logs and profiles go
#                                         (default: a temp dir; it must be on the disk to measure)
#   ROUNDS=2         rounds of (a)-(c)
#   DUR=15s          measured time of each load (after a 3 s warm-up)
#   CATCHUP_GIB=4    the master's log before the slave starts (the disk needs ~2x free)
#   PARTS="throughput latency catchup"   which parts to run
#   PROFILE=1        CPU profiles (10 s, /debug/pprof) of the master and a slave
#                    during (b) and of both sides during (d), under DIR/profiles
#   FERRY=path       use that binary instead of building one
#   CEILING=0        skip the disk ceiling; SIDES=cluster runs only the group's side of (a)-(c)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$PATH:/usr/local/go/bin"
dir=${1:-$(mktemp -d)}
bp=${BATCH_PRODUCERS:-4}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rounds=${ROUNDS:-2}
dur=${DUR:-15s}
gib=${CATCHUP_GIB:-4}
parts=${PARTS:-throughput latency catchup}
profile=${PROFILE:-}
ferry=${FERRY:-}
if [ -z "$ferry" ]; then
  ferry="$dir/ferry"
  go build -o "$ferry" ./cmd/ferry
fi
export FERRY="$ferry"
if [ -n "$profile" ]; then export FERRY_PPROF=1; mkdir -p "$dir/profiles"; fi

has() { [[ " $parts " == *" $1 "* ]]; }

echo "== machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "${CEILING:-1}" = 1 ]; then
  echo "== disk ceiling ($dir)"
  bash scripts/disk-ceiling.sh "$dir"
  if has catchup; then
    # The 1 GiB ceiling above fits under the kernel's dirty-page limits; a
    # catch-up of CATCHUP_GIB does not, so it is also compared with buffered
    # sequential writes of that size ending in an fsync, like the slave's.
    f="$dir/ceiling-catchup.$$"
    fio --name=seq --filename="$f" --size="${gib}G" --bs=1M --rw=write --ioengine=psync --end_fsync=1 \
      --output-format=terse --terse-version=3 2>/dev/null | awk -F';' -v g="$gib" '{printf "seq_write_%sGiB_MiBps=%.0f\n", g, $48/1024}'
    rm -f "$f"
  fi
fi

single_pid=
cleanup() {
  [ -n "$single_pid" ] && kill "$single_pid" 2>/dev/null || true
  [ -d "$dir/cluster" ] && scripts/cluster.sh down "$dir/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A single broker (name server and broker in one process) on an empty data dir.
single_up() {
  local d="$dir/single"
  rm -rf "$d"; mkdir -p "$d"; sync
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  "$ferry" server --data-dir "$d/data" --namesrv-port "$port" --broker-port 0 --http-port -1 \
    --host 127.0.0.1 --advertise-host 127.0.0.1 --log-format json 2>"$d/log" &
  single_pid=$!
  pids=$single_pid
  for _ in $(seq 200); do grep -q '"broker ready"' "$d/log" 2>/dev/null && break; sleep 0.05; done
  grep -q '"broker ready"' "$d/log" || { echo "single broker did not start; see $d/log" >&2; exit 1; }
  ns="127.0.0.1:$port"
}
single_down() { kill "$single_pid"; wait "$single_pid" 2>/dev/null || true; single_pid=; }

# The 3-replica group on an empty data dir; ns is its first name server.
cluster_up() {
  rm -rf "$dir/cluster"; sync
  local out
  out=$(scripts/cluster.sh up "$dir/cluster" | tail -1)
  ns=${out#NAMESRV=}; ns=${ns%%;*}
  pids="$(cat "$dir"/cluster/broker{1,2,3}/pid | tr '\n' ' ')"
}
cluster_down() { scripts/cluster.sh down "$dir/cluster" >/dev/null; }

# broker_json N: broker N's GET /v1/broker.
broker_json() { curl -sf "http://127.0.0.1:$(cut -d' ' -f2 "$dir/cluster/broker$1/ports")/v1/broker"; }
# master: the replica that is master.
master() {
  for i in 1 2 3; do
    if broker_json "$i" 2>/dev/null | grep -q '"role":"master"'; then echo "$i"; return; fi
  done
  echo "no master" >&2; exit 1
}
# cpu_profile N FILE: a 10 s CPU profile of broker N, in the background.
cpu_profile() {
  curl -sf -o "$2" "http://127.0.0.1:$(cut -d' ' -f2 "$dir/cluster/broker$1/ports")/debug/pprof/profile?seconds=10" &
}

# b runs a load against $ns and prints its figures and the CPU the brokers
# ($pids: the single broker, or replicas 1 2 3) used over it, warm-up included.
b() {
  local before=() p i=0 t0 out=""
  for p in $pids; do before+=("$(awk '{print $14+$15}' "/proc/$p/stat")"); done
  t0=$(date +%s.%N)
  "$ferry" bench "$@" --namesrv "$ns" --duration "$dur" --warmup 3s --quiet | grep -E 'produced|consumed|send rtt|end to end'
  for p in $pids; do
    out+=" $(python3 -c "import time; print('%.2f' % (($(awk '{print $14+$15}' "/proc/$p/stat")-${before[$i]})/$(getconf CLK_TCK)/(time.time()-$t0)))")"
    i=$((i+1))
  done
  echo "broker CPU (cores):$out"
}

throughput_round() { # $1: single|cluster
  if [ "$1" = single ]; then
    single_up
    echo "-- (a) single broker, acks=1: batch sends, $bp producers x 32"
    b produce --topic Batch --producers "$bp" --batch 32
    single_down
  else
    cluster_up
    local m; m=$(master)
    echo "-- (b) 3-replica group, acks=all (master: replica $m; CPU below of replicas 1 2 3): batch sends, $bp producers x 32"
    if [ -n "$profile" ]; then
      local s=$(( m % 3 + 1 ))
      cpu_profile "$m" "$dir/profiles/acksall-master-r$round.pb"
      cpu_profile "$s" "$dir/profiles/acksall-slave-r$round.pb"
    fi
    b produce --topic Batch --producers "$bp" --batch 32
    wait
    cluster_down
  fi
}

latency_round() { # $1: single|cluster
  if [ "$1" = single ]; then single_up; else cluster_up; fi
  # Raw sends wait for each answer before the next, so a producer sends at
  # most 1/rtt a second: 16 producers keep 5,000 msg/s within reach of an
  # acks=all round trip (each sends 312 a second). The SDK producer
  # pipelines (README workload W3r).
  echo "-- (c) $1: end to end at 5,000 msg/s, 16 raw producers"
  b consume --topic E2E16 --producers 16 --rate 5000
  echo "-- (c) $1: end to end at 5,000 msg/s, 1 SDK producer (W3r)"
  b consume --topic E2Esdk --sdk-window 256 --producers 1 --rate 5000
  if [ "$1" = single ]; then single_down; else cluster_down; fi
}

if has throughput || has latency; then
  for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 1 ]; then order="single cluster"; else order="cluster single"; fi
    if [ -n "${SIDES:-}" ]; then order=$SIDES; fi
    echo "== round $round ($order)"
    for side in $order; do
      if has throughput; then throughput_round "$side"; fi
    done
    for side in $order; do
      if has latency; then latency_round "$side"; fi
    done
  done
fi

if has catchup; then
  echo "== (d) catch-up of an empty slave from a master holding $gib GiB (df: $(df -h --output=avail "$dir" | tail -1 | tr -d ' ') free)"
  if [ "$(df --output=avail -B1G "$dir" | tail -1 | tr -d ' ')" -lt $((2 * gib + 8)) ]; then
    echo "not enough free disk for two copies of $gib GiB and a margin of 8 GiB; set CATCHUP_GIB lower" >&2
    exit 1
  fi
  cluster_up
  m=$(master)
  others=()
  for i in 1 2 3; do [ "$i" != "$m" ] && others+=("$i"); done
  s=${others[0]}
  # Both slaves stop while the master fills its log (the disk holds two
  # copies, not three); the first comes back empty, from the same command line.
  mapfile -d '' cmd <"/proc/$(cat "$dir/cluster/broker$s/pid")/cmdline"
  for i in "${others[@]}"; do
    pid=$(cat "$dir/cluster/broker$i/pid")
    kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$dir/cluster/broker$i/pid"
    rm -rf "$dir/cluster/broker$i/data"
  done
  target=$((gib << 30))
  offset() { broker_json "$m" | python3 -c 'import json,sys; print(json.load(sys.stdin)["replication"]["max_offset"])'; }
  filling=$(date +%s.%N)
  "$ferry" bench produce --namesrv "$ns" --topic Fill --producers 4 --batch 32 --duration 1h --warmup 0s --quiet \
    >"$dir/fill.log" 2>&1 &
  fill=$!
  while [ "$(offset)" -lt "$target" ]; do
    kill -0 "$fill" 2>/dev/null || { echo "the fill load stopped; see $dir/fill.log" >&2; exit 1; }
    sleep 1
  done
  kill "$fill"; wait "$fill" 2>/dev/null || true
  end=$(offset)
  echo "master filled to $((end >> 20)) MiB in $(python3 -c "import time; print(round(time.time()-$filling, 1))") s"
  sync
  start=$(date +%s.%N)
  "${cmd[@]}" >>"$dir/cluster/broker$s/log" 2>&1 &
  echo $! >"$dir/cluster/broker$s/pid"
  if [ -n "$profile" ]; then
    for _ in $(seq 100); do broker_json "$s" >/dev/null 2>&1 && break; sleep 0.05; done
    cpu_profile "$m" "$dir/profiles/catchup-master.pb"
    profiles="$!"
    cpu_profile "$s" "$dir/profiles/catchup-slave.pb"
    profiles="$profiles $!"
  fi
  acked() {
    broker_json "$m" | python3 -c "
import json,sys
r=json.load(sys.stdin)['replication']
print(next((x.get('acked_offset',0) for x in r.get('replicas',[]) if x['id']==$s), 0))"
  }
  while :; do
    a=$(acked 2>/dev/null || echo 0)
    [ "$a" -ge "$end" ] && break
    sleep 0.2
  done
  python3 -c "
import os, time
t=time.time()-$start
print('slave $s caught up %d MiB in %.1f s: %.0f MiB/s written (from its start, process start-up included)' % ($end>>20, t, $end/t/2**20))
# As the ceiling's fio run ends with an fsync: the slave's segments synced.
d='$dir/cluster/broker$s/data/commitlog'
for n in os.listdir(d):
    fd=os.open(os.path.join(d, n), os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
t=time.time()-$start
print('with its commitlog synced after: %.1f s: %.0f MiB/s' % (t, $end/t/2**20))"
  # The profiles only: a bare wait would also wait for the slave started above.
  [ -z "${profiles:-}" ] || wait $profiles
  cluster_down
fi
