#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The crypto section of make bench (issue 3, section 5), run by scripts/bench.sh,
# which writes what this prints to build/bench/crypto.json. Needs build/native
# and build/wasm built (make bench does it) and bench/node_modules (scripts/bench.sh).
#
#   1. bench_crypto natively, then its wasm build under node: ratchet vs the
#      libsodium primitives it cannot avoid, DH steps, X3DH, single primitives;
#   2. wasm/native ratio of every time figure;
#   3. callgrind instruction counts of the native ratchet vs primitives (if
#      valgrind is installed): repeatable where times on a shared machine are not;
#   4. crypto_js.mjs: veil's wasm through wasm/veil.mjs vs libolm's wasm build;
#   5. the targets, as '#' comment lines (a missed target does not fail).
#
# VEIL_BENCH_ROUNDS (default 21): timed rounds per figure, medians reported.
# VEIL_BENCH_CG_MESSAGES (default 2000): messages per callgrind run.
set -euo pipefail
cd "${VEIL_ROOT:-$(dirname "$0")/..}"
# shellcheck source=../scripts/emenv.sh
. scripts/emenv.sh

rounds=${VEIL_BENCH_ROUNDS:-21}
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

"$native" --prefix native --rounds "$rounds" | tee "$tmp/native"
node "$wasm" --prefix wasm --rounds "$rounds" | tee "$tmp/wasm"

# wasm.X_us / native.X_us for every time figure of both builds.
awk '
  $3 == "us" { split($1, p, "."); v[p[1], p[2]] = $2; if (p[1] == "native") names[++n] = p[2] }
  END {
    for (i = 1; i <= n; i++) {
      k = names[i]
      if (("wasm", k) in v && v["native", k] > 0) {
        short = k; sub(/_us$/, "", short)
        printf "wasm_vs_native.%s %.3f ratio\n", short, v["wasm", k] / v["native", k]
      }
    }
  }' "$tmp/native" "$tmp/wasm" | tee "$tmp/ratios"

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

VEIL_WASM_DIR=$wasm_dir node bench/crypto_js.mjs --rounds "$rounds" | tee "$tmp/js"

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
