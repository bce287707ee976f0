#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
#
# Builds static WebAssembly (emscripten) versions of the C libraries veil
# uses -- libsodium, cmocka, msgpack-c and cJSON -- from Debian's own source
# packages, so that the wasm build runs the same upstream code, with the same
# Debian patches (security fixes included), as the native build that links the
# Debian -dev packages.
#
# Result, used by the wasm CMake preset:
#   build/wasm-deps/prefix/include/{sodium.h,sodium/,cmocka.h,cmocka_pbc.h,
#                                   msgpack.h,msgpack/,cjson/cJSON.h}
#   build/wasm-deps/prefix/lib/{libsodium.a,libcmocka.a,libmsgpackc.a,libcjson.a}
#
# Idempotent: every library has a stamp naming its upstream version and the
# build recipe revision; when all four stamps and archives exist the script
# prints one line and exits. Delete build/wasm-deps to rebuild from scratch.
#
# Needs (installed by scripts/deps.sh): emscripten, node-acorn, cmake,
# dpkg-dev (dpkg-source), autoconf, automake, libtool, network access to the
# Debian mirror the system already uses.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# NODE_PATH for emcc's acorn; shared with the main project's wasm build.
. scripts/emenv.sh

W=$ROOT/build/wasm-deps
PREFIX=$W/prefix
STAMPS=$W/stamps
JOBS=$(nproc 2>/dev/null || echo 2)

# Bump when the build recipe (flags, options) changes, to force a rebuild.
RECIPE=1

# Debian source package | upstream version Debian 12 ships | native -dev
# package (used to pin the exact Debian revision) | installed archive
LIBS=(
  "libsodium|1.0.18|libsodium-dev|libsodium.a"
  "cmocka|1.1.5|libcmocka-dev|libcmocka.a"
  "msgpack-c|4.0.0|libmsgpack-dev|libmsgpackc.a"
  "cjson|1.7.15|libcjson-dev|libcjson.a"
)

stamp_of() { echo "$STAMPS/$1-$2-r$RECIPE.stamp"; }

# ---------------------------------------------------------------- cache check
find_todo() {
  todo=()
  local entry src up dev lib
  for entry in "${LIBS[@]}"; do
    IFS='|' read -r src up dev lib <<<"$entry"
    if [ -f "$(stamp_of "$src" "$up")" ] && [ -f "$PREFIX/lib/$lib" ]; then
      continue
    fi
    todo+=("$entry")
  done
}
up_to_date() {
  echo "wasm-deps: up to date in build/wasm-deps/prefix (libsodium, cmocka, msgpack-c, cjson)"
  exit 0
}
find_todo
[ ${#todo[@]} -gt 0 ] || up_to_date

# Several callers (deps.sh, make, CI steps) may start this at once: build under
# a lock, and look again once we hold it.
mkdir -p "$W"
exec 9>"$W/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
  find_todo
  [ ${#todo[@]} -gt 0 ] || up_to_date
fi

for tool in emcc emcmake emconfigure emmake cmake apt-get apt-cache dpkg-source autoreconf libtoolize; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "wasm-deps: '$tool' not found; run scripts/deps.sh first" >&2
    exit 1
  }
done

# Output of the noisy steps goes to a log per library; shown on failure.
LOGS=$W/logs
mkdir -p "$PREFIX/include" "$PREFIX/lib" "$STAMPS" "$LOGS" "$W/src" "$W/build"
run_logged() {
  local log=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    echo "wasm-deps: command failed: $*" >&2
    echo "---- last lines of $log ----" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
}

# ------------------------------------------------------- private apt sources
# apt-get source needs deb-src entries, which Debian 12 doesn't enable by
# default. Rather than touching the system's apt configuration (or writing a
# mirror address into the repository), derive deb-src entries from the
# system's own sources and give apt a private source list, lists directory
# and cache. Nothing under /etc/apt or /var/lib/apt is written.
APTDIR=$W/apt
rm -rf "$APTDIR/sources.list.d"
mkdir -p "$APTDIR/sources.list.d" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  # deb822 format (Debian 12 default): make every stanza a source stanza.
  sed -E 's/^Types:.*$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    >"$APTDIR/sources.list.d/debian.sources"
elif [ -f /etc/apt/sources.list ] && grep -Eq '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list; then
  # Classic one-line format: turn the binary "deb" lines into "deb-src".
  sed -nE 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' /etc/apt/sources.list \
    >"$APTDIR/sources.list.d/debian-src.list"
else
  echo "wasm-deps: no Debian apt sources found (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)" >&2
  exit 1
fi
APT_OPTS=(
  -o Dir::Etc::SourceParts="$APTDIR/sources.list.d"
  -o Dir::Etc::SourceList=/dev/null
  -o Dir::State::Lists="$APTDIR/lists"
  -o Dir::Cache="$APTDIR/cache"
)
# As root apt drops privileges to _apt for downloading, and _apt can't write
# into this checkout; download as root instead of getting a warning.
if [ "$(id -u)" = 0 ]; then APT_OPTS+=(-o APT::Sandbox::User=root); fi

echo "wasm-deps: fetching Debian source index"
run_logged "$LOGS/apt.log" apt-get "${APT_OPTS[@]}" update

# The Debian version to build: the one of the installed native -dev package
# when it is installed (so wasm and native run identical code), otherwise the
# newest one the configured suites offer. Its upstream part must be $up.
debian_version() {
  local src=$1 up=$2 dev=$3 inst avail best="" v
  inst=$(dpkg-query -W -f='${db:Status-Abbrev}|${source:Version}' "$dev" 2>/dev/null || true)
  avail=$(apt-cache "${APT_OPTS[@]}" showsrc "$src" 2>/dev/null | awk '/^Version:/ {print $2}' | sort -u || true)
  case $inst in
    ii*)
      inst=${inst#*|}
      if grep -qxF -- "$inst" <<<"$avail"; then echo "$inst"; return; fi
      echo "wasm-deps: $src $inst (installed $dev) is no longer on the mirror; using the newest available" >&2
      ;;
  esac
  for v in $avail; do
    if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
  done
  echo "$best"
}

# Download (apt checks it against the signed index) and unpack with the
# Debian patches applied, into a fresh build/wasm-deps/src/<pkg>.
fetch_source() {
  local src=$1 up=$2 ver=$3 log=$4 nover
  nover=${ver#*:}   # .dsc file names carry no epoch
  (cd "$W/src" && run_logged "$log" apt-get "${APT_OPTS[@]}" source --download-only "$src=$ver")
  rm -rf "${W:?}/src/$src"
  run_logged "$log" dpkg-source -x "$W/src/${src}_${nover}.dsc" "$W/src/$src"
}

# ------------------------------------------------------------------ builders
# Speed matters (benchmarks compare wasm with native), so build optimised.
# No -g, no LTO: Debian's frozen emscripten cache has no LTO system libraries.
OPT_CFLAGS="-O3"

build_libsodium() {
  local s=$1 log=$2
  cd "$s"
  # Debian's source is a git snapshot without a generated configure.
  # autogen.sh would also try to curl config.guess/config.sub off the net,
  # so run autoreconf directly; automake's config.sub knows wasm32-emscripten.
  if [ ! -x configure ]; then run_logged "$log" autoreconf -fi; fi
  # --disable-asm: no x86 asm in wasm; --disable-ssp: no stack protector in
  # emscripten; --without-pthreads: single-threaded wasm; --disable-pie:
  # static archive only. randombytes uses crypto.getRandomValues / node's
  # crypto module via EM_ASM (see randombytes.c).
  run_logged "$log" env CFLAGS="$OPT_CFLAGS" emconfigure ./configure \
    --host=wasm32-unknown-emscripten --prefix="$PREFIX" \
    --disable-shared --enable-static --disable-ssp --disable-asm \
    --without-pthreads --disable-pie
  run_logged "$log" emmake make -j"$JOBS"
  run_logged "$log" emmake make install
  cd "$ROOT"
}

cmake_lib() {
  local s=$1 log=$2 name=$3; shift 3
  local b=$W/build/$name
  rm -rf "$b"
  # Release = -O3 -DNDEBUG. Doxygen is hidden so that no docs get generated.
  run_logged "$log" emcmake cmake -S "$s" -B "$b" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_INSTALL_INCLUDEDIR=include \
    -DBUILD_SHARED_LIBS=OFF \
    -DCMAKE_DISABLE_FIND_PACKAGE_Doxygen=ON \
    "$@"
  run_logged "$log" cmake --build "$b" -j"$JOBS"
  run_logged "$log" cmake --install "$b"
}

build_cmocka() {
  # cmocka.h typedefs uintptr_t itself unless _UINTPTR_T_DEFINED is set, which
  # clashes with emscripten's libc; the same define is needed by every user
  # of cmocka.h under emcc. cmocka 1.1.5 always adds a SHARED "cmocka" target;
  # CMake's Emscripten platform can't do shared libraries and builds it as
  # libcmocka.a instead (with a warning), which is exactly what we want, so
  # the separate cmocka-static target (WITH_STATIC_LIB) stays off.
  cmake_lib "$1" "$2" cmocka \
    -DCMAKE_C_FLAGS="-D_UINTPTR_T_DEFINED" \
    -DWITH_STATIC_LIB=OFF -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF \
    -DPICKY_DEVELOPER=OFF
}

build_msgpack-c() {
  # msgpack-c 4.0.0 derives MSGPACK_ENABLE_SHARED=OFF / MSGPACK_ENABLE_STATIC=ON
  # from BUILD_SHARED_LIBS=OFF; the tests option only exists when GTest is
  # found, setting it OFF anyway is harmless.
  cmake_lib "$1" "$2" msgpack-c \
    -DMSGPACK_BUILD_TESTS=OFF -DMSGPACK_BUILD_EXAMPLES=OFF \
    -DMSGPACK_ENABLE_SHARED=OFF -DMSGPACK_ENABLE_STATIC=ON
}

build_cjson() {
  # ENABLE_CUSTOM_COMPILER_FLAGS adds -Werror, -std=c89,
  # -fstack-protector-strong and friends: not wanted for a third-party build
  # (and stack protectors don't exist in emscripten). The header goes to
  # include/cjson/cJSON.h, as with Debian's libcjson-dev.
  cmake_lib "$1" "$2" cjson \
    -DENABLE_CUSTOM_COMPILER_FLAGS=OFF \
    -DENABLE_CJSON_TEST=OFF -DENABLE_CJSON_UTILS=OFF \
    -DBUILD_SHARED_AND_STATIC_LIBS=OFF -DENABLE_TARGET_EXPORT=OFF
}

# ---------------------------------------------------------------------- main
for entry in "${todo[@]}"; do
  IFS='|' read -r src up dev lib <<<"$entry"
  log=$LOGS/$src.log
  : >"$log"
  ver=$(debian_version "$src" "$up" "$dev")
  if [ -z "$ver" ]; then
    echo "wasm-deps: source package $src not found in the Debian sources" >&2
    exit 1
  fi
  vup=${ver#*:}; vup=${vup%-*}
  if [ "$vup" != "$up" ]; then
    echo "wasm-deps: Debian offers $src $ver, but this script expects upstream $up; update LIBS in $0" >&2
    exit 1
  fi
  echo "wasm-deps: building $src $ver (log: build/wasm-deps/logs/$src.log)"
  rm -f "$(stamp_of "$src" "$up")"
  fetch_source "$src" "$up" "$ver" "$log"
  "build_$src" "$W/src/$src" "$log"
  [ -f "$PREFIX/lib/$lib" ] || { echo "wasm-deps: $src built but $PREFIX/lib/$lib is missing" >&2; exit 1; }
  printf 'package=%s\nversion=%s\nrecipe=%s\nemcc=%s\n' "$src" "$ver" "$RECIPE" \
    "$(emcc --version 2>/dev/null | head -n1)" >"$(stamp_of "$src" "$up")"
done

# Keep the prefix to headers + the four archives: drop libtool archives,
# pkg-config and CMake package files, whose absolute paths would only invite
# mixing them up with the native ones.
rm -rf "$PREFIX/lib/pkgconfig" "$PREFIX/lib/cmake" "$PREFIX/share"
rm -f "$PREFIX"/lib/*.la

echo "wasm-deps: done, libraries in build/wasm-deps/prefix"
