# SPDX-License-Identifier: ISC
# Thin wrapper over CMake presets (CMakePresets.json). Every target installs
# what is missing first (scripts/deps.sh is idempotent and quick when all is there).
SHELL := /bin/bash
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_FLAGS ?= --output-on-failure -j$(JOBS)
EMENV := source scripts/emenv.sh &&

.PHONY: all deps build build-native build-asan build-wasm build-fuzz test test-native test-asan test-wasm test-fuzz fuzz bench vectors clean run
FUZZ_SECONDS ?= 300

all: build

deps:
	scripts/deps.sh

build-native:
	cmake --preset native >/dev/null
	cmake --build build/native -j$(JOBS)

build-asan:
	cmake --preset asan >/dev/null
	cmake --build build/asan -j$(JOBS)

build-wasm:
	$(EMENV) cmake --preset wasm >/dev/null
	$(EMENV) cmake --build build/wasm -j$(JOBS)

build-fuzz:
	cmake --preset fuzz >/dev/null
	cmake --build build/fuzz -j$(JOBS)

build: deps
	$(MAKE) build-native build-asan build-wasm build-fuzz

test-native: build-native
	ctest --test-dir build/native $(CTEST_FLAGS)

test-asan: build-asan
	ctest --test-dir build/asan $(CTEST_FLAGS)

test-wasm: build-wasm
	$(EMENV) ctest --test-dir build/wasm $(CTEST_FLAGS)

# libFuzzer targets, briefly (VEIL_FUZZ_SECONDS each, 20 by default).
test-fuzz: build-fuzz
	ctest --test-dir build/fuzz --output-on-failure

# The same targets for FUZZ_SECONDS each, keeping their corpus in build/fuzz.
fuzz: deps
	cmake --preset fuzz -DVEIL_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build build/fuzz -j$(JOBS)
	ctest --test-dir build/fuzz --output-on-failure
	cmake --preset fuzz -UVEIL_FUZZ_SECONDS >/dev/null

# Every test: native, ASan+UBSan, WebAssembly under node, and the fuzzers briefly.
test: deps
	$(MAKE) -k test-native test-asan test-wasm test-fuzz

# The relay with its defaults: 127.0.0.1:8080, store in ./veil-data/relay.db,
# web/ served at /. Stop it with Ctrl-C (SIGINT: it commits and closes cleanly).
# Extra flags: make run RELAY_FLAGS="--port 9000" (see veil-relay --help).
run: deps
	$(MAKE) build-native
	exec build/native/relay/veil-relay $(RELAY_FLAGS)

bench: deps build-native build-wasm
	scripts/bench.sh

vectors:
	cd tests/vectors/gen && npm ci --no-audit --no-fund && node gen.mjs

clean:
	rm -rf build
