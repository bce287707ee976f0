#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The relay section of make bench (issue 4, section 4), run by scripts/bench.sh,
# which writes what this prints to build/bench/relay.json.
#
# Side by side in one run, with the same load generator (bench/relay/load.mjs)
# against each server:
#   veil  veil-relay (build/native, or VEIL_RELAY_BIN), with its SQLite store in
#         a temporary directory: it decodes, sequences, stores and acknowledges;
#   sio   a Socket.IO 4 room-broadcast server (bench/relay/sio_server.mjs);
#   ws    a bare `ws` broadcast server (bench/relay/ws_server.mjs).
#
# 1. fan-out: 10 rooms x 20 members, 256-octet bodies, every member publishing
#    VEIL_BENCH_RELAY_RATE (default 5) per second; server CPU (utime + stime from
#    /proc) per delivered body, delivery latency p50/p99. The server runs on
#    core 0 and the load generator on core 1 (taskset), as the issue asks.
# 2. idle: VEIL_BENCH_RELAY_IDLE (default 5000) authenticated, joined, silent
#    connections; server RSS per connection above a 100-connection baseline.
# 3. ratios veil vs the peers, and the targets as '#' comments (a missed target
#    does not fail the section).
set -euo pipefail
cd "${VEIL_ROOT:-$(dirname "$0")/..}"

relay=${VEIL_RELAY_BIN:-build/native/relay/veil-relay}
rate=${VEIL_BENCH_RELAY_RATE:-5}
secs=${VEIL_BENCH_RELAY_SECONDS:-10}
idle=${VEIL_BENCH_RELAY_IDLE:-5000}
if [ ! -x "$relay" ]; then
  echo "relay.sh: $relay missing: make build-native" >&2
  exit 1
fi
if [ ! -f bench/relay/node_modules/.package-lock.json ] ||
   [ bench/relay/package-lock.json -nt bench/relay/node_modules/.package-lock.json ]; then
  echo "relay.sh: npm ci in bench/relay" >&2
  (cd bench/relay && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
# 5000 client sockets in one process, and as many on the server side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

server_cpu="" load_cpu=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_cpu="taskset -c 0"
  load_cpu="taskset -c 1"
fi

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_server KIND: sets server_pid and server_port.
start_server() {
  local kind=$1 i
  rm -f "$tmp/port" "$tmp/out"
  case $kind in
    veil)
      rm -rf "$tmp/store"
      $server_cpu "$relay" --host 127.0.0.1 --port 0 --port-file "$tmp/port" --db "$tmp/store/relay.db" \
        --web "$tmp" --log-level warn --max-conns $((idle + 1000)) 2>"$tmp/relay.log" &
      server_pid=$!
      for i in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
      server_port=$(cat "$tmp/port")
      ;;
    sio|ws)
      $server_cpu node "bench/relay/${kind}_server.mjs" 0 >"$tmp/out" 2>&1 &
      server_pid=$!
      for i in $(seq 200); do grep -q listening "$tmp/out" 2>/dev/null && break; sleep 0.05; done
      server_port=$(awk '/listening/ {print $2; exit}' "$tmp/out")
      ;;
  esac
  if [ -z "${server_port:-}" ]; then
    echo "relay.sh: $kind server did not start" >&2
    exit 1
  fi
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

load() {
  # load KIND MODE ARGS...
  local kind=$1 mode=$2
  shift 2
  (cd bench/relay && $load_cpu node --max-old-space-size=4096 load.mjs "$kind" "$server_port" "$server_pid" "$mode" \
    "clk_tck=$(getconf CLK_TCK)" "$@")
}

echo "# relay fan-out: 10 rooms x 20 members, 256-octet bodies, $rate per member per second, ${secs} s measured;"
echo "# server on core 0, load generator on core 1; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in veil sio ws; do
  start_server "$kind"
  load "$kind" fanout "rate=$rate" "seconds=$secs" | tee -a "$tmp/figures"
  stop_server
done
echo "# relay idle connections: $idle, authenticated and joined (rooms of 20)"
for kind in veil sio ws; do
  start_server "$kind"
  load "$kind" idle "conns=$idle" | tee -a "$tmp/figures"
  stop_server
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

fig() { awk -v n="$1" '$1 == n {print $2}' "$tmp/figures"; }
ratio() {
  local a b
  a=$(fig "$1")
  b=$(fig "$2")
  if [ -n "$a" ] && [ -n "$b" ]; then
    awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "0" }'
  else
    echo 0
  fi
}
cpu_sio=$(ratio relay.sio.cpu_per_delivery relay.veil.cpu_per_delivery)
cpu_ws=$(ratio relay.ws.cpu_per_delivery relay.veil.cpu_per_delivery)
p99_sio=$(ratio relay.sio.latency_p99 relay.veil.latency_p99)
mem_sio=$(ratio relay.sio.idle_rss_per_conn relay.veil.idle_rss_per_conn)
echo "relay.cpu_per_delivery_sio_over_veil $cpu_sio x"
echo "relay.cpu_per_delivery_ws_over_veil $cpu_ws x"
echo "relay.latency_p99_sio_over_veil $p99_sio x"
echo "relay.idle_rss_sio_over_veil $mem_sio x"
echo "# targets (issue 4): CPU per delivery at least 8x below Socket.IO (now ${cpu_sio}x);"
echo "#   p99 latency below Socket.IO's (sio/veil = ${p99_sio}x, above 1 is better);"
echo "#   at most 4 KiB RSS per idle joined connection (veil: $(fig relay.veil.idle_rss_per_conn) KiB)."
echo "# not measured here: the highest connection count of one process, publishes/s into one 1000-member room."
