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
#   ws    a bare `ws` broadcast server (bench/relay/ws_server.mjs);
#   lws   (fan-out only) a minimal libwebsockets broadcast server with the
#         relay's write batching and nothing else (bench/relay/lws_server.c,
#         built as bench_lws_broadcast next to the relay): the floor any lws
#         server starts from on this machine, so how far below Socket.IO an
#         lws server can get here at all.
#
# 1. fan-out: 10 rooms x 20 members, 256-octet bodies, every member publishing
#    RATE per second, for each RATE of VEIL_BENCH_RELAY_RATES (default
#    "5 10 20": 1000, 2000 and 4000 publishes/s). The issue names no rate but
#    gives the figures of "that load" on this kind of machine: Socket.IO 9-11
#    us per delivery, the minimal lws server 0.85-0.95 us. Here rate 10 gives
#    those (Socket.IO about 10 us, lws 0.9-1.0 us); the per-delivery cost of
#    every server falls as the load grows, because more frames share each
#    wake-up and each write (lws: about 1.6 us at rate 5, 0.7 us at rate 20),
#    so the lighter and the heavier load are reported beside it. Server CPU
#    (every thread's, in ns from /proc/PID/task/*/schedstat; /proc/PID/stat
#    counts 10 ms ticks) per delivered body, delivery latency p50/p99. The
#    server runs on core 0 and the load generator on core 1 (taskset), as the
#    issue asks. VEIL_BENCH_RELAY_ROUNDS (default 3) rounds, each measuring
#    veil, sio, ws and lws in turn for VEIL_BENCH_RELAY_SECONDS (default 8) s:
#    the figures are the medians over the rounds, and the ratios the medians
#    of the ratios within each round (the machine's speed drifts between
#    rounds more than between the servers of one round). Figures are named
#    relay.rRATE.KIND.*.
# 2. idle: VEIL_BENCH_RELAY_IDLE (default 5000) authenticated, joined, silent
#    connections; server RSS per connection above a 100-connection baseline.
# 3. scale (veil only): the most authenticated, joined connections one relay
#    process holds, up to VEIL_BENCH_RELAY_MAXCONNS (default 50000; 0 skips),
#    with the soft descriptor limit raised to the hard one, and the relay's CPU
#    while it holds them idle for 12 s (--idle 10: pings every 5 s); and publishes per
#    second into one room of VEIL_BENCH_RELAY_ROOM (default 1000) members, 20
#    of them publishing with 16 PUBLISHes in flight each (closed loop), the
#    relay's rate limit lifted for that run.
# 4. ratios veil vs the peers, and the targets as '#' comments (a missed target
#    does not fail the section).
set -euo pipefail
cd "${VEIL_ROOT:-$(dirname "$0")/..}"

relay=${VEIL_RELAY_BIN:-build/native/relay/veil-relay}
lws=${VEIL_LWS_BIN:-$(dirname "$relay")/../bench/bench_lws_broadcast}
rates=${VEIL_BENCH_RELAY_RATES:-${VEIL_BENCH_RELAY_RATE:-5 10 20}}
secs=${VEIL_BENCH_RELAY_SECONDS:-8}
rounds=${VEIL_BENCH_RELAY_ROUNDS:-3}
idle=${VEIL_BENCH_RELAY_IDLE:-5000}
maxconns=${VEIL_BENCH_RELAY_MAXCONNS:-50000}
roomsize=${VEIL_BENCH_RELAY_ROOM:-1000}
if [ ! -x "$relay" ]; then
  echo "relay.sh: $relay missing: make build-native" >&2
  exit 1
fi
if [ ! -f bench/relay/node_modules/.package-lock.json ] ||
   [ bench/relay/package-lock.json -nt bench/relay/node_modules/.package-lock.json ]; then
  echo "relay.sh: npm ci in bench/relay" >&2
  (cd bench/relay && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
# 5000 client sockets in one process, and as many on the server side; the
# scale run holds as many as the limit allows (the relay raises its own soft
# limit to fit --max-conns, up to the hard limit).
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

# start_server KIND [RELAY FLAGS...]: sets server_pid and server_port.
start_server() {
  local kind=$1 i
  shift
  server_port=""
  rm -f "$tmp/port" "$tmp/out"
  case $kind in
    veil)
      rm -rf "$tmp/store"
      $server_cpu "$relay" --host 127.0.0.1 --port 0 --port-file "$tmp/port" --db "$tmp/store/relay.db" \
        --web "$tmp" --log-level warn --max-conns $((idle + 1000)) "$@" 2>"$tmp/relay.log" &
      server_pid=$!
      for i in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
      server_port=$(cat "$tmp/port")
      ;;
    lws)
      $server_cpu "$lws" 0 >"$tmp/out" 2>&1 &
      server_pid=$!
      for i in $(seq 200); do grep -q listening "$tmp/out" 2>/dev/null && break; sleep 0.05; done
      server_port=$(awk '/listening/ {print $2; exit}' "$tmp/out")
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

fanout_kinds="veil sio ws"
if [ -x "$lws" ]; then
  fanout_kinds="$fanout_kinds lws"
else
  echo "# $lws missing (make build-native): no lws floor"
fi
for rate in $rates; do
  echo "# relay fan-out: 10 rooms x 20 members, 256-octet bodies, $rate per member per second ($((rate * 200)) publishes/s),"
  echo "#   ${secs} s measured, $rounds rounds; server on core 0, load generator on core 1; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  for round in $(seq "$rounds"); do
    for kind in $fanout_kinds; do
      start_server "$kind"
      load "$kind" fanout "rate=$rate" "seconds=$secs" "warmup=2" | sed "s/^relay\./relay.r$rate./" >"$tmp/fanout.$rate.$round.$kind"
      stop_server
      grep '^#' "$tmp/fanout.$rate.$round.$kind" || true
      grep -v '^#' "$tmp/fanout.$rate.$round.$kind" >>"$tmp/rounds.$rate"
      awk -v r="$round" '!/^#/ {print "round" r "." $0}' "$tmp/fanout.$rate.$round.$kind" >>"$tmp/perround"
    done
    echo "# rate $rate, round $round: $(awk '$1 ~ /cpu_per_delivery$/ {sub(/^relay\.r[0-9]+\./, "", $1); sub(/\.cpu_per_delivery$/, "", $1); printf "%s %s us/delivery  ", $1, $2}' "$tmp/fanout.$rate.$round."*)"
  done
  # Median of each figure over the rounds.
  awk '{v[$1] = v[$1] " " $2; u[$1] = $3; if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
    END {
      for (i = 0; i < n; i++) {
        k = order[i]; m = split(substr(v[k], 2), a, " ")
        for (x = 1; x <= m; x++) for (y = x + 1; y <= m; y++) if (a[y] + 0 < a[x] + 0) { t = a[x]; a[x] = a[y]; a[y] = t }
        med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        print k, med, u[k]
      }
    }' "$tmp/rounds.$rate" | tee -a "$tmp/figures"
done
echo "# relay idle connections: $idle, authenticated and joined (rooms of 20)"
for kind in veil sio ws; do
  start_server "$kind"
  load "$kind" idle "conns=$idle" | tee -a "$tmp/figures"
  stop_server
done
if [ "$maxconns" -gt 0 ]; then
  echo "# relay scale: connections of one process (descriptor limit: soft $(ulimit -n), hard $(ulimit -Hn); cap $maxconns)"
  # --idle 10: a ping every 5 s, so that holding them for 12 s (max_conns_idle_cpu) includes pings and pongs.
  start_server veil --max-conns $((maxconns + 1000)) --idle 10
  # Client processes of at most 15000 connections (and within the descriptor limit) each.
  per=$(( $(ulimit -n) - 200 ))
  [ "$per" -gt 15000 ] && per=15000
  load veil maxconns "conns=$maxconns" "workers=$(( (maxconns + per - 1) / per ))" "batch=200" "hold=12" | tee -a "$tmp/figures"
  stop_server
  grep -h 'level=\(warn\|error\)' "$tmp/relay.log" | sort | uniq -c | sort -rn | head -3 | sed 's/^/# relay log: /' || true
fi
if [ "$roomsize" -gt 1 ]; then
  sleep 2
  echo "# relay scale: one room of $roomsize members (rate limit lifted: --rate 1000000 --burst 1000000); load average $(cut -d' ' -f1 /proc/loadavg)"
  start_server veil --rate 1000000 --burst 1000000 --max-members $((roomsize + 24))
  load veil room "roomsize=$roomsize" "publishers=20" "window=16" "seconds=5" "warmup=2" | tee -a "$tmp/figures"
  stop_server
fi
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
# Median over the rounds of the ratio within each round.
round_ratio() {
  awk -v a="$1" -v b="$2" '{ k = $1; sub(/^round[0-9]+\./, "", k); r = substr($1, 6, index($1, ".") - 6)
      if (k == a) x[r] = $2; if (k == b) y[r] = $2 }
    END {
      m = 0
      for (r in x) if ((r in y) && y[r] > 0) q[++m] = x[r] / y[r]
      if (m == 0) { print 0; exit }
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (q[j] < q[i]) { t = q[i]; q[i] = q[j]; q[j] = t }
      printf "%.2f\n", (m % 2) ? q[(m + 1) / 2] : (q[m / 2] + q[m / 2 + 1]) / 2
    }' "$tmp/perround"
}
mem_sio=$(ratio relay.sio.idle_rss_per_conn relay.veil.idle_rss_per_conn)
summary=""
for rate in $rates; do
  p=relay.r$rate
  cpu_sio=$(round_ratio $p.sio.cpu_per_delivery $p.veil.cpu_per_delivery)
  cpu_sio_lws=$(round_ratio $p.sio.cpu_per_delivery $p.lws.cpu_per_delivery)
  p99_sio=$(round_ratio $p.sio.latency_p99 $p.veil.latency_p99)
  echo "$p.cpu_per_delivery_sio_over_veil $cpu_sio x"
  echo "$p.cpu_per_delivery_ws_over_veil $(round_ratio $p.ws.cpu_per_delivery $p.veil.cpu_per_delivery) x"
  echo "$p.cpu_per_delivery_lws_over_veil $(round_ratio $p.lws.cpu_per_delivery $p.veil.cpu_per_delivery) x"
  echo "$p.cpu_per_delivery_sio_over_lws $cpu_sio_lws x"
  echo "$p.latency_p99_sio_over_veil $p99_sio x"
  summary="$summary
#   rate $rate ($((rate * 200)) publishes/s): CPU per delivery sio/veil = ${cpu_sio}x (target 8x; the bare lws floor,
#     no store and no protocol, is ${cpu_sio_lws}x below Socket.IO at this load); p99 sio/veil = ${p99_sio}x (target above 1)"
done
echo "relay.idle_rss_sio_over_veil $mem_sio x"
echo "# targets (issue 4), side by side in this run:$summary"
echo "#   at most 4 KiB RSS per idle joined connection (veil: $(fig relay.veil.idle_rss_per_conn) KiB)."
