#include "server/base/token_hash.h"

#include <openssl/sha.h>

#include <array>
#include <cctype>

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

}  // namespace voucherd
