# embed_text.cmake — turns one text file (a Lua script, the dashboard page)
# into a C++ header holding its exact bytes as a std::string_view constant,
# so the text lives in its own file and still ships inside the binary. Run
# by the build through voucherd_embed_text() (cmake/Embed.cmake):
#   cmake -DIN=<file> -DOUT=<header> -DNAMESPACE=<ns> -DCONSTANT=<kName> -P embed_text.cmake
file(READ "${IN}" text)
set(delimiter "voucherd_text")
string(FIND "${text}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains )${delimiter}\", which would end the raw string")
endif()
file(RELATIVE_PATH source "${ROOT}" "${IN}")
file(WRITE "${OUT}"
  "// Generated from ${source} by cmake/embed_text.cmake: edit that file, not this.\n"
  "#pragma once\n\n#include <string_view>\n\n"
  "namespace ${NAMESPACE} {\n\n"
  "inline constexpr std::string_view ${CONSTANT} = R\"${delimiter}(${text})${delimiter}\";\n\n"
  "}  // namespace ${NAMESPACE}\n")
