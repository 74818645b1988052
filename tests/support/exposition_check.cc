#include "tests/support/exposition_check.h"

#include <cctype>
#include <cmath>
#include <set>
#include <sstream>
#include <vector>

namespace voucherd::testing {
namespace {

bool valid_name(const std::string& s, bool allow_colon) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool ok =
        std::isalpha(c) || c == '_' || (allow_colon && c == ':') || (i > 0 && std::isdigit(c));
    if (!ok) return false;
  }
  return true;
}

bool parse_value(const std::string& s, double* out) {
  if (s == "+Inf") return *out = INFINITY, true;
  if (s == "-Inf") return *out = -INFINITY, true;
  if (s == "NaN") return *out = NAN, true;
  if (s.empty()) return false;
  std::size_t used = 0;
  try {
    *out = std::stod(s, &used);
  } catch (...) {
    return false;
  }
  return used == s.size();
}

struct Family {
  std::string type;
};

}  // namespace

std::expected<Exposition, std::string> parse_exposition(const std::string& text) {
  Exposition out;
  std::map<std::string, Family> families;
  std::string current;  // the family whose samples are being read
  // Histogram checks: per series without le, the buckets in order.
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  auto fail = [&](const std::string& why) {
    return std::unexpected("line " + std::to_string(number) + ": " + why + ": \"" + line + "\"");
  };
  if (text.empty() || text.back() != '\n') {
    return std::unexpected(std::string("the exposition must end with a newline"));
  }
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (hash != "#") return fail("a comment must start with \"# \"");
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a plain comment
      if (!valid_name(name, true)) return fail("invalid metric name");
      if (keyword == "TYPE") {
        std::string type, extra;
        words >> type;
        if (words >> extra) return fail("text after the type");
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
            type != "untyped") {
          return fail("unknown type");
        }
        if (families.contains(name)) return fail("family declared twice");
        families[name].type = type;
        current = name;
      }
      continue;
    }
    // name{labels} value [timestamp]
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    const std::string name = line.substr(0, i);
    if (!valid_name(name, true)) return fail("invalid metric name");
    std::map<std::string, std::string> labels;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos) return fail("label without '='");
        const std::string label = line.substr(i, eq - i);
        if (!valid_name(label, false) || label.rfind("__", 0) == 0) {
          return fail("invalid label name");
        }
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') return fail("label value not quoted");
        ++i;
        std::string value;
        for (;;) {
          if (i >= line.size()) return fail("unterminated label value");
          const char c = line[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i >= line.size()) return fail("dangling escape");
            const char e = line[i++];
            if (e == 'n') {
              value.push_back('\n');
            } else if (e == '\\' || e == '"') {
              value.push_back(e);
            } else {
              return fail("invalid escape in label value");
            }
          } else {
            value.push_back(c);
          }
        }
        if (!labels.emplace(label, value).second) return fail("label repeated");
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return fail("unterminated label set");
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') return fail("no space before the value");
    std::istringstream rest(line.substr(i + 1));
    std::string value_text, timestamp, extra;
    rest >> value_text >> timestamp >> extra;
    if (!extra.empty()) return fail("text after the timestamp");
    double value = 0;
    if (!parse_value(value_text, &value)) return fail("value is not a number");
    // Its family: the name itself, or a histogram's _bucket/_sum/_count.
    std::string family = name;
    std::string suffix;
    for (const char* s : {"_bucket", "_sum", "_count"}) {
      const std::string sfx = s;
      if (!families.contains(name) && name.size() > sfx.size() &&
          name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
        family = name.substr(0, name.size() - sfx.size());
        suffix = sfx;
      }
    }
    const auto f = families.find(family);
    if (f == families.end()) return fail("sample without a # TYPE for its family");
    if (family != current) return fail("sample of a family other than the one being read");
    const std::string& type = f->second.type;
    if (!suffix.empty() && type != "histogram" && type != "summary") {
      return fail("suffix " + suffix + " on a " + type);
    }
    if (type == "histogram" && suffix.empty()) return fail("histogram sample without a suffix");
    if (type == "counter" && !(value >= 0)) return fail("negative or NaN counter");
    if (suffix == "_bucket" && !labels.contains("le")) return fail("bucket without le");
    std::string key = name + "{";
    std::string series_without_le = family + "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
      key += (first ? "" : ",") + k + "=\"" + v + "\"";
      if (k != "le") series_without_le += k + "=\"" + v + "\",";
      first = false;
    }
    key += "}";
    series_without_le += "}";
    if (!out.emplace(key, value).second) return fail("series repeated");
    if (suffix == "_bucket") {
      double le = 0;
      if (!parse_value(labels["le"], &le)) return fail("le is not a number");
      buckets[series_without_le].emplace_back(le, value);
    }
  }
  // Histograms: bounds increasing, counts cumulative, +Inf equal to _count.
  for (const auto& [series, list] : buckets) {
    for (std::size_t k = 1; k < list.size(); ++k) {
      if (!(list[k].first > list[k - 1].first)) {
        return std::unexpected(series + ": bucket bounds not increasing");
      }
      if (list[k].second < list[k - 1].second) {
        return std::unexpected(series + ": bucket counts not cumulative");
      }
    }
    if (list.empty() || !std::isinf(list.back().first)) {
      return std::unexpected(series + ": no le=\"+Inf\" bucket");
    }
    const std::string family = series.substr(0, series.find('{'));
    std::string labels = series.substr(series.find('{'));
    if (labels.size() > 2 && labels[labels.size() - 2] == ',') labels.erase(labels.size() - 2, 1);
    const auto count = out.find(family + "_count" + labels);
    if (count == out.end()) return std::unexpected(series + ": no _count");
    if (count->second != list.back().second) {
      return std::unexpected(series + ": +Inf bucket differs from _count");
    }
    if (!out.contains(family + "_sum" + labels)) return std::unexpected(series + ": no _sum");
  }
  return out;
}

double series_value(const Exposition& e, const std::string& key) {
  const auto it = e.find(key);
  return it == e.end() ? 0 : it->second;
}

}  // namespace voucherd::testing
