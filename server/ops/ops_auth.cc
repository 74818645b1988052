#include "server/ops/ops_auth.h"

#include <array>
#include <cctype>

#include "server/base/token_hash.h"

namespace voucherd {
namespace {

// Whether `header` starts with the auth scheme `scheme` and a space (schemes
// are case-insensitive); the credentials after it.
std::optional<std::string_view> credentials(std::string_view header, std::string_view scheme) {
  if (header.size() <= scheme.size() || header[scheme.size()] != ' ') return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return std::nullopt;
  }
  std::string_view rest = header.substr(scheme.size() + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  return rest;
}

// Standard base64 (RFC 4648 §4, padding required), or nothing when `in` is
// not that.
std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  auto value = [](char ch) -> int {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    std::array<int, 4> v{};
    int padding = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char ch = in[i + k];
      if (ch == '=' && last && k >= 2) {
        ++padding;
        v[k] = 0;
        continue;
      }
      if (padding > 0) return std::nullopt;  // data after '='
      v[k] = value(ch);
      if (v[k] < 0) return std::nullopt;
    }
    const unsigned bits = (static_cast<unsigned>(v[0]) << 18) |
                          (static_cast<unsigned>(v[1]) << 12) | (static_cast<unsigned>(v[2]) << 6) |
                          static_cast<unsigned>(v[3]);
    out.push_back(static_cast<char>((bits >> 16) & 0xFF));
    if (padding < 2) out.push_back(static_cast<char>((bits >> 8) & 0xFF));
    if (padding < 1) out.push_back(static_cast<char>(bits & 0xFF));
  }
  return out;
}

}  // namespace

std::expected<OpsTokens, std::string> OpsTokens::load(const std::string& path) {
  auto lines = read_token_lines(path, "--ops-auth-file", "name");
  if (!lines) return std::unexpected(lines.error());
  OpsTokens tokens;
  for (TokenLine& line : *lines) {
    tokens.names_by_hash_.emplace(std::move(line.hash), std::move(line.word));
  }
  return tokens;
}

std::optional<std::string> OpsTokens::admit(std::string_view authorization) const {
  std::optional<std::string> token;
  if (auto bearer = credentials(authorization, "bearer")) {
    token = std::string(*bearer);
  } else if (auto basic = credentials(authorization, "basic")) {
    // "user:password", the token being the password.
    auto pair = base64_decode(*basic);
    if (!pair) return std::nullopt;
    const auto colon = pair->find(':');
    if (colon == std::string::npos) return std::nullopt;
    token = pair->substr(colon + 1);
  }
  if (!token || token->empty()) return std::nullopt;
  const auto it = names_by_hash_.find(token_hash(*token));
  if (it == names_by_hash_.end()) return std::nullopt;
  return it->second;
}

}  // namespace voucherd
