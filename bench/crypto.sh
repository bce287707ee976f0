#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The crypto section of make bench (issue 3, section 5), run by scripts/bench.sh,
# which writes what this prints to build/bench/crypto.json. Needs build/native
# and build/wasm built (make bench does it) and bench/node_modules (scripts/bench.sh).
#
#   1. bench_crypto natively, then its wasm build under node, alternately
#      (VEIL_BENCH_RUNS times, default 5): ratchet vs the libsodium primitives
#      it cannot avoid, DH steps, X3DH, single primitives;
#   2. wasm/native ratio of every time figure;
#   3. callgrind instruction counts of the native ratchet vs primitives (if
#      valgrind is installed): repeatable where times on a shared machine are not;
#   4. crypto_js.mjs (also VEIL_BENCH_RUNS times): veil's wasm through
#      wasm/veil.mjs vs libolm's wasm build;
#   5. the targets, as '#' comment lines (a missed target does not fail).
#
# VEIL_BENCH_ROUNDS (default 7): timed rounds per figure in one run of a
# program (bench_crypto, crypto_js.mjs), which reports their median.
# VEIL_BENCH_CG_MESSAGES (default 2000): messages per callgrind run.
set -euo pipefail
cd "${VEIL_ROOT:-$(dirname "$0")/..}"
# shellcheck source=scripts/emenv.sh
. scripts/emenv.sh

rounds=${VEIL_BENCH_ROUNDS:-7}
runs=${VEIL_BENCH_RUNS:-5}
cg_n=${VEIL_BENCH_CG_MESSAGES:-2000}
native=build/native/bench/bench_crypto
wasm=build/wasm/bench/bench_crypto.js
wasm_dir=$PWD/build/wasm/wasm
for f in "$native" "$wasm" "$wasm_dir/veil.mjs"; do
  if [ ! -f "$f" ]; then
    echo "crypto.sh: $f missing: make build-native build-wasm" >&2
    exit 1
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "name value unit" lines of several runs -> one line per name, with the
# median value, in first-seen order.
median_lines() {
  awk '
    { if (!($1 in cnt)) { order[++n] = $1; unit[$1] = $3 } val[$1, ++cnt[$1]] = $2 + 0 }
    END {
      for (i = 1; i <= n; i++) {
        k = order[i]; m = cnt[k]
        for (j = 1; j <= m; j++) a[j] = val[k, j]
        for (j = 2; j <= m; j++) { x = a[j]; for (l = j - 1; l >= 1 && a[l] > x; l--) a[l + 1] = a[l]; a[l + 1] = x }
        med = m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        printf "%s %.3f %s\n", k, med, unit[k]
      }
    }' "$@"
}

# The machine's load, for whoever reads the figures (shared cores: noisy).
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Native and wasm runs alternate (runs x rounds each), so a burst of load on
# this shared machine falls on both; every figure is the median over the runs,
# and each wasm/native ratio the median of the per-run ratios.
for run in $(seq "$runs"); do
  echo "# run $run/$runs: native, then wasm under node" >&2
  "$native" --prefix native --rounds "$rounds" >"$tmp/native.$run"
  node "$wasm" --prefix wasm --rounds "$rounds" >"$tmp/wasm.$run"
  # wasm.X_us / native.X_us for every time figure of both builds.
  awk '
    $3 == "us" { split($1, p, "."); v[p[1], p[2]] = $2; if (p[1] == "native") names[++n] = p[2] }
    END {
      for (i = 1; i <= n; i++) {
        k = names[i]
        if ((("wasm", k) in v) && v["native", k] > 0) {
          short = k; sub(/_us$/, "", short)
          printf "wasm_vs_native.%s %.3f ratio\n", short, v["wasm", k] / v["native", k]
        }
      }
    }' "$tmp/native.$run" "$tmp/wasm.$run" >"$tmp/ratios.$run"
done
echo "# native and wasm: median of $runs runs of $rounds rounds each"
for part in native wasm ratios; do
  # shellcheck disable=SC2046 # one file per run
  median_lines $(for run in $(seq "$runs"); do echo "$tmp/$part.$run"; done) | tee "$tmp/$part"
done

if command -v valgrind >/dev/null 2>&1; then
  for kind in ratchet primitives; do
    valgrind --tool=callgrind --toggle-collect="cg_${kind}*" --callgrind-out-file="$tmp/cg.$kind" \
      "$native" --callgrind "$kind" "$cg_n" >"$tmp/cg.$kind.log" 2>&1
    awk '/^(totals|summary):/ { print $2; exit }' "$tmp/cg.$kind" >"$tmp/cg.$kind.total"
  done
  awk -v n="$cg_n" -v r="$(cat "$tmp/cg.ratchet.total")" -v p="$(cat "$tmp/cg.primitives.total")" 'BEGIN {
    printf "native.callgrind_ratchet_message_instr %.0f instructions\n", r / n
    printf "native.callgrind_primitives_message_instr %.0f instructions\n", p / n
    printf "native.callgrind_ratchet_vs_primitives %.3f ratio\n", r / p
  }' | tee "$tmp/callgrind"
else
  echo "# valgrind not installed: no instruction counts"
  : >"$tmp/callgrind"
fi

for run in $(seq "$runs"); do
  echo "# run $run/$runs: veil vs olm from JS" >&2
  VEIL_WASM_DIR=$wasm_dir node bench/crypto_js.mjs --rounds "$rounds" >"$tmp/js.$run"
done
echo "# veil vs olm from JS: median of $runs runs of $rounds rounds each"
# shellcheck disable=SC2046 # one file per run
median_lines $(for run in $(seq "$runs"); do echo "$tmp/js.$run"; done) | tee "$tmp/js"

echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# Targets (issue 3, section 5), as comments.
cat "$tmp/native" "$tmp/wasm" "$tmp/ratios" "$tmp/callgrind" "$tmp/js" | awk '
  { v[$1] = $2 }
  function t(name, op, limit) {
    if (!(name in v)) return
    ok = op == "<=" ? v[name] <= limit : v[name] >= limit
    printf "# target %s %s %s: %s %s\n", name, op, limit, v[name], ok ? "met" : "MISSED"
  }
  END {
    t("native.ratchet_vs_primitives", "<=", 1.5)
    t("native.callgrind_ratchet_vs_primitives", "<=", 1.5)
    t("wasm.ratchet_vs_primitives", "<=", 1.5)
    t("wasm_vs_native.ratchet_encrypt", "<=", 3)
    t("wasm_vs_native.ratchet_decrypt", "<=", 3)
    t("wasm_vs_native.ratchet_message", "<=", 3)
    t("wasm_vs_native.ratchet_alternating_message", "<=", 3)
    t("wasm_vs_native.x3dh", "<=", 3)
    t("js.olm_vs_veil_same_direction", ">=", 3)
    t("js.olm_vs_veil_alternating", ">=", 2)
  }'
