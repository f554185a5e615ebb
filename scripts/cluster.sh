#!/usr/bin/env bash
# Starts or stops a replicated Ferry cluster on loopback: three name
# servers running the control plane (three raft voters) and one broker
# group, broker-a, of three replicas (replica ids 1, 2, 3). Ports are
# picked free; data, configs, logs and pids go under DIR.
#
#   scripts/cluster.sh up DIR     start it, wait for a master, and print
#                                 NAMESRV=<addr>;<addr>;<addr> as the last line
#   scripts/cluster.sh down DIR   stop it (SIGTERM, then SIGKILL after 10 s)
#
# FERRY=path/to/ferry uses that binary instead of building one into DIR.
# Each broker's ports are in DIR/brokerN/ports (remoting http replication).
set -euo pipefail
cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 up|down DIR" >&2
  exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$PATH:/usr/local/go/bin"

freeport() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

stop_all() {
  local pids=()
  for f in "$dir"/*/pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$f"
  done
  for _ in $(seq 100); do
    alive=0
    for pid in "${pids[@]+"${pids[@]}"}"; do
      if kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]+"${pids[@]}"}"; do kill -9 "$pid" 2>/dev/null || true; done
}

case "$cmd" in
down)
  stop_all
  echo "cluster in $dir stopped"
  ;;
up)
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  ferry=${FERRY:-}
  if [ -z "$ferry" ]; then
    ferry="$dir/ferry"
    (cd "$root" && go build -o "$ferry" ./cmd/ferry)
  fi
  ns_ports=() ctl_ports=() peers=()
  for i in 1 2 3; do
    ns_ports+=("$(freeport)")
    ctl_ports+=("$(freeport)")
    peers+=("\"ns$i@127.0.0.1:${ctl_ports[$((i-1))]}\"")
  done
  peer_list=$(IFS=,; echo "${peers[*]}")
  addrs=()
  for i in 1 2 3; do
    d="$dir/namesrv$i"
    mkdir -p "$d"
    cat > "$d/namesrv.toml" <<EOF
[namesrv]
controller_port = ${ctl_ports[$((i-1))]}
controller_id = "ns$i"
controller_peers = [$peer_list]
controller_dir = "$d/controller"
EOF
    "$ferry" namesrv --config "$d/namesrv.toml" --host 127.0.0.1 --namesrv-port "${ns_ports[$((i-1))]}" \
      --log-format json >"$d/log" 2>&1 &
    echo $! >"$d/pid"
    addrs+=("127.0.0.1:${ns_ports[$((i-1))]}")
  done
  namesrv=$(IFS=';'; echo "${addrs[*]}")
  for i in 1 2 3; do
    d="$dir/broker$i"
    mkdir -p "$d"
    bp=$(freeport) hp=$(freeport) rp=$(freeport)
    echo "$bp $hp $rp" >"$d/ports"
    "$ferry" broker run --namesrv "$(IFS=,; echo "${addrs[*]}")" --data-dir "$d/data" --host 127.0.0.1 \
      --advertise-host 127.0.0.1 --broker-name broker-a --broker-port "$bp" --http-port "$hp" \
      --replication-port "$rp" --replica-id "$i" --log-format json >"$d/log" 2>&1 &
    echo $! >"$d/pid"
  done
  # Wait for a master: one broker's GET /v1/broker says so.
  deadline=$((SECONDS + 60))
  while :; do
    for i in 1 2 3; do
      hp=$(cut -d' ' -f2 "$dir/broker$i/ports")
      if curl -sf "http://127.0.0.1:$hp/v1/broker" 2>/dev/null | grep -q '"role":"master"'; then
        echo "broker-a: replica $i is master"
        echo "NAMESRV=$namesrv"
        exit 0
      fi
    done
    if [ $SECONDS -ge $deadline ]; then
      echo "no master after 60 s; logs under $dir" >&2
      stop_all
      exit 1
    fi
    sleep 0.2
  done
  ;;
*)
  echo "usage: $0 up|down DIR" >&2
  exit 2
  ;;
esac
