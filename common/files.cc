#include "common/files.h"

#include <fstream>
#include <sstream>

namespace voucherd {

std::expected<std::string, std::string> read_file(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  if (in) out << in.rdbuf();
  if (!in) return std::unexpected("cannot read " + std::string(what) + " " + path);
  return out.str();
}

}  // namespace voucherd
