#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Installs what veil needs on Debian 12, idempotently: Debian packages first
# (apt-get update only when something is missing), then the WebAssembly builds
# of libsodium, cmocka and msgpack-c from Debian's own source packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake pkg-config git ca-certificates xz-utils
  libsodium-dev libcmocka-dev libmsgpack-dev libwebsockets-dev libev-dev libsqlite3-dev libcjson-dev
  clang libclang-rt-14-dev valgrind
  emscripten node-acorn nodejs npm
  dpkg-dev autoconf automake libtool
)

missing=()
for p in "${PKGS[@]}"; do
  # nodejs may come from another origin (e.g. a newer build): a working node counts.
  if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "deps: Debian packages present"
fi

scripts/wasm-deps.sh

# npm packages of the test tools, from their committed lock files (once, and
# again whenever a lock file changes).
npm_ci() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "deps: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}
npm_ci tests/vectors/gen
# ws and @msgpack/msgpack for the relay protocol test from plain Node (tests/node).
npm_ci tests/node
