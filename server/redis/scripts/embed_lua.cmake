# embed_lua.cmake — turns one Lua script into a C++ header holding its text
# as a string constant, so the scripts live in .lua files and still ship
# inside the binary. Run by the build (server/redis/CMakeLists.txt):
#   cmake -DLUA_IN=<x.lua> -DLUA_OUT=<x.lua.h> -DLUA_NAME=<x> -P embed_lua.cmake
# The header defines voucherd::redis::lua::k<Name> (snake_case -> CamelCase),
# a std::string_view of the file's exact bytes (a raw string literal).
file(READ "${LUA_IN}" text)
set(delimiter "voucherd_lua")
string(FIND "${text}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${LUA_IN} contains )${delimiter}\", which would end the raw string")
endif()
string(REPLACE "_" ";" parts "${LUA_NAME}")
set(camel "")
foreach(part IN LISTS parts)
  string(SUBSTRING "${part}" 0 1 head)
  string(SUBSTRING "${part}" 1 -1 tail)
  string(TOUPPER "${head}" head)
  string(APPEND camel "${head}${tail}")
endforeach()
file(WRITE "${LUA_OUT}"
  "// Generated from server/redis/scripts/${LUA_NAME}.lua by embed_lua.cmake: edit the\n"
  "// .lua file, not this.\n"
  "#pragma once\n\n#include <string_view>\n\n"
  "namespace voucherd::redis::lua {\n\n"
  "inline constexpr std::string_view k${camel} = R\"${delimiter}(${text})${delimiter}\";\n\n"
  "}  // namespace voucherd::redis::lua\n")
