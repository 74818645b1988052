#include "tools/ctl/csv.h"

namespace voucherd::ctl {

std::string csv_field(std::string_view field) {
  const bool formula =
      !field.empty() && (field.front() == '=' || field.front() == '+' || field.front() == '-' ||
                         field.front() == '@' || field.front() == '\t' || field.front() == '\r');
  if (!formula && field.find_first_of(",\"\r\n") == std::string_view::npos) {
    return std::string(field);
  }
  std::string out = formula ? "\"'" : "\"";
  for (const char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace voucherd::ctl
