// token_hash.h — bearer tokens as the tokens files hold them: never the
// token, only its SHA-256 ("sha256:<64 hex digits>"). Shared by the gRPC
// front's --auth-file and the ops port's --ops-auth-file.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace voucherd {

// Hex SHA-256 of a token (lower case).
[[nodiscard]] std::string token_hash(std::string_view token);

// The hex hash of a tokens file's "sha256:<64 hex digits>" (lower case), or
// nothing when `key` is not one.
[[nodiscard]] std::optional<std::string> parse_token_key(std::string_view key);

}  // namespace voucherd
