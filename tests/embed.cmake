# SPDX-License-Identifier: ISC
# Turns every tests/vectors/*.json into a C array, so the tests need no file
# system (the wasm tests run without one). Run with -DSRC=<dir> -DOUT=<file>.
file(GLOB files "${SRC}/*.json")
list(SORT files)
set(body "/* Generated from the JSON files of tests/vectors by tests/embed.cmake. */\n#include <stddef.h>\n#include \"test_util.h\"\n")
set(table "const veil_test_file veil_test_files[] = {\n")
foreach(f ${files})
  get_filename_component(name "${f}" NAME_WE)
  file(READ "${f}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," arr "${hex}")
  string(APPEND body "static const char vec_${name}[] = {${arr}0x00};\n")
  string(APPEND table "    {\"${name}\", vec_${name}, sizeof vec_${name} - 1},\n")
endforeach()
string(APPEND table "    {NULL, NULL, 0}\n};\n")
file(WRITE "${OUT}.tmp" "${body}${table}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
