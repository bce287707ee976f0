# SPDX-License-Identifier: ISC
# Thin wrapper over CMake presets (CMakePresets.json). Every target installs
# what is missing first (scripts/deps.sh is idempotent and quick when all is there).
SHELL := /bin/bash
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_FLAGS ?= --output-on-failure -j$(JOBS)
EMENV := source scripts/emenv.sh &&

.PHONY: all deps build build-native build-asan build-wasm test test-native test-asan test-wasm bench vectors clean

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

build: deps
	$(MAKE) build-native build-asan build-wasm

test-native: build-native
	ctest --test-dir build/native $(CTEST_FLAGS)

test-asan: build-asan
	ctest --test-dir build/asan $(CTEST_FLAGS)

test-wasm: build-wasm
	$(EMENV) ctest --test-dir build/wasm $(CTEST_FLAGS)

# Every test: native, ASan+UBSan, and WebAssembly under node.
test: deps
	$(MAKE) test-native test-asan test-wasm

bench: deps build-native build-wasm
	scripts/bench.sh

vectors:
	cd tests/vectors/gen && npm ci --no-audit --no-fund && node gen.mjs

clean:
	rm -rf build
