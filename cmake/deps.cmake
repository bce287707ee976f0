# SPDX-License-Identifier: ISC
# Finds libsodium, cmocka and msgpack-c: Debian's packages natively, and for
# Emscripten the static builds that scripts/wasm-deps.sh makes from Debian's
# source packages under build/wasm-deps/prefix.
if(EMSCRIPTEN)
  set(VEIL_WASM_PREFIX "${CMAKE_SOURCE_DIR}/build/wasm-deps/prefix" CACHE PATH "wasm dependency prefix")
  if(NOT EXISTS "${VEIL_WASM_PREFIX}/lib/libsodium.a")
    message(FATAL_ERROR "wasm dependencies missing in ${VEIL_WASM_PREFIX}: run scripts/wasm-deps.sh (make deps)")
  endif()
  foreach(lib sodium cmocka msgpackc)
    add_library(veil_dep_${lib} STATIC IMPORTED GLOBAL)
    set_target_properties(veil_dep_${lib} PROPERTIES
      IMPORTED_LOCATION "${VEIL_WASM_PREFIX}/lib/lib${lib}.a"
      INTERFACE_INCLUDE_DIRECTORIES "${VEIL_WASM_PREFIX}/include")
  endforeach()
  # cmocka's header redefines uintptr_t under Emscripten unless told it exists.
  set_property(TARGET veil_dep_cmocka PROPERTY INTERFACE_COMPILE_DEFINITIONS _UINTPTR_T_DEFINED)
  add_library(veil::sodium ALIAS veil_dep_sodium)
  add_library(veil::cmocka ALIAS veil_dep_cmocka)
  add_library(veil::msgpack ALIAS veil_dep_msgpackc)
  find_program(VEIL_NODE node REQUIRED)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${VEIL_NODE}")
else()
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
  add_library(veil::sodium ALIAS PkgConfig::SODIUM)
  pkg_check_modules(CMOCKA IMPORTED_TARGET cmocka)
  if(CMOCKA_FOUND)
    add_library(veil::cmocka ALIAS PkgConfig::CMOCKA)
  endif()
  pkg_check_modules(MSGPACK IMPORTED_TARGET msgpack)
  if(MSGPACK_FOUND)
    add_library(veil::msgpack ALIAS PkgConfig::MSGPACK)
  endif()
endif()
