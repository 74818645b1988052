// ops_auth.h — who may read the operators' port. --ops-auth-file holds
// bearer tokens as hashes, one per line:
//
//   sha256:<64 hex digits> <name>     # e.g. prometheus, oncall
//
// With it, every path but /healthz and /readyz (which load balancers and
// orchestrators probe without credentials, and which tell nothing but
// "ready") asks for a token: "Authorization: Bearer <token>" (Prometheus'
// scrape `authorization`), or the token as the password of HTTP Basic auth,
// with any user name (a browser opening the dashboard asks for it once and
// sends it with the dashboard's own requests).
//
// Thread-safety: immutable after load().
#pragma once

#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace voucherd {

class OpsTokens {
 public:
  // The tokens of `path`, or why it is refused (naming the file and line).
  [[nodiscard]] static std::expected<OpsTokens, std::string> load(const std::string& path);

  // The name of the token an Authorization header carries, when it is one
  // of these; nothing otherwise (no header, another scheme, an unknown token).
  [[nodiscard]] std::optional<std::string> admit(std::string_view authorization) const;

  [[nodiscard]] std::size_t size() const { return names_by_hash_.size(); }

 private:
  std::unordered_map<std::string, std::string> names_by_hash_;  // hex SHA-256 -> name
};

}  // namespace voucherd
