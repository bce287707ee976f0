# SPDX-License-Identifier: ISC
# shellcheck shell=sh
# Environment for Debian 12's emscripten (3.1.6). Source it, don't run it:
#   . scripts/emenv.sh
# POSIX sh on purpose, so that make recipes (/bin/sh = dash) can source it too.
#
# NODE_PATH: emcc runs tools/acorn-optimizer.js under node, which does
# require('acorn'). Debian ships acorn as node-acorn in /usr/share/nodejs, which
# node does not search by default; without this every link fails with
# "Cannot find module 'acorn'".
case ":${NODE_PATH:-}:" in
  *:/usr/share/nodejs:*) ;;
  *) NODE_PATH="/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}" ;;
esac
export NODE_PATH

# EM_CACHE is deliberately NOT set. Debian's /usr/share/emscripten/.emscripten
# sets FROZEN_CACHE = True and ships a prebuilt sysroot (libc, compiler-rt,
# dlmalloc, ... in every variant) in /usr/share/emscripten/cache, which emcc
# only reads, so neither root nor a writable cache is needed. Pointing
# EM_CACHE elsewhere would hide those prebuilt libraries, and a frozen cache
# refuses to rebuild them, so every link would fail.
