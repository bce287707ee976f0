#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# make bench: runs every benchmark section bench/NAME.sh (all of them, or the
# NAMEs given as arguments), shows its output, and writes the figures it
# printed to build/bench/NAME.json as {"figure": {"value": v, "unit": "u"}, ...}.
#
# A section is a bash script that prints one "name value unit" line per
# figure; lines starting with '#' are comments (kept on screen, not in the
# JSON). A new section (e.g. bench/relay.sh -> build/bench/relay.json) needs
# nothing here. make bench builds build/native and build/wasm first.
#
# Benchmarks measure and report; they never fail on a missed target. This
# script fails only when a section itself fails.
set -euo pipefail
cd "$(dirname "$0")/.."
VEIL_ROOT=$PWD
VEIL_BENCH_OUT=$VEIL_ROOT/build/bench
export VEIL_ROOT VEIL_BENCH_OUT
mkdir -p "$VEIL_BENCH_OUT"

# JS peers (libolm, ...) come from bench/package.json, pinned by its lock file:
# installed when missing or older than the lock file.
if [ ! -f bench/node_modules/.package-lock.json ] || [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  echo "bench: npm ci in bench/" >&2
  (cd bench && npm ci --no-audit --no-fund >&2)
fi

# "name value unit" lines -> JSON object; anything else but comments is reported.
to_json() {
  awk '
    BEGIN { n = 0; printf "{" }
    /^#/ || /^[[:space:]]*$/ { next }
    NF == 3 && $1 ~ /^[A-Za-z0-9_.-]+$/ && $2 ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ && $3 ~ /^[A-Za-z0-9_%\/.-]+$/ {
      printf "%s\n  \"%s\": {\"value\": %s, \"unit\": \"%s\"}", (n++ ? "," : ""), $1, $2, $3
      next
    }
    { print "bench: not a figure line, left out of the JSON: " $0 > "/dev/stderr" }
    END { printf "%s}\n", (n ? "\n" : "") }
  ' "$1"
}

if [ $# -gt 0 ]; then
  sections=()
  for name in "$@"; do sections+=("bench/$name.sh"); done
else
  sections=(bench/*.sh)
fi

status=0
for sh in "${sections[@]}"; do
  name=$(basename "$sh" .sh)
  if [ ! -f "$sh" ]; then
    echo "bench: no section $sh" >&2
    status=1
    continue
  fi
  echo "== $name"
  txt="$VEIL_BENCH_OUT/$name.txt"
  if bash "$sh" | tee "$txt"; then
    to_json "$txt" >"$VEIL_BENCH_OUT/$name.json.tmp"
    mv "$VEIL_BENCH_OUT/$name.json.tmp" "$VEIL_BENCH_OUT/$name.json"
    echo "== $name: wrote ${VEIL_BENCH_OUT#"$VEIL_ROOT"/}/$name.json"
  else
    echo "bench: section $name failed" >&2
    status=1
  fi
done
exit $status
