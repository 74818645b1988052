#include "server/base/token_hash.h"

#include <openssl/sha.h>

#include <array>
#include <cctype>
#include <fstream>
#include <sstream>
#include <unordered_set>

namespace voucherd {

std::string token_hash(std::string_view token) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> d{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * d.size());
  for (unsigned char b : d) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::optional<std::string> parse_token_key(std::string_view key) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!key.starts_with(kPrefix) || key.size() != kPrefix.size() + 2 * SHA256_DIGEST_LENGTH) {
    return std::nullopt;
  }
  std::string hex;
  for (const char ch : key.substr(kPrefix.size())) {
    if (!std::isxdigit(static_cast<unsigned char>(ch))) return std::nullopt;
    hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
  }
  return hex;
}

std::expected<std::vector<TokenLine>, std::string> read_token_lines(const std::string& path,
                                                                    std::string_view flag,
                                                                    std::string_view word) {
  const std::string file = std::string(flag) + " " + path;
  std::ifstream in(path);
  if (!in) return std::unexpected("cannot read " + file);
  std::vector<TokenLine> out;
  std::unordered_set<std::string> seen;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string key, value, extra;
    if (!(words >> key)) continue;  // blank or comment
    const std::string where = file + " line " + std::to_string(number) + ": ";
    if (!(words >> value) || (words >> extra)) {
      return std::unexpected(where + "expected \"sha256:<64 hex digits> <" + std::string(word) +
                             ">\"");
    }
    auto hash = parse_token_key(key);
    if (!hash) {
      return std::unexpected(where +
                             "the token must be given as sha256:<64 hex digits> (its hash, "
                             "never the token itself; voucherctl hash-token makes it)");
    }
    if (!seen.insert(*hash).second) return std::unexpected(where + "the same token appears twice");
    out.push_back({std::move(*hash), std::move(value), where});
  }
  if (out.empty()) return std::unexpected(file + " holds no token");
  return out;
}

}  // namespace voucherd
