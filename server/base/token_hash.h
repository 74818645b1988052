// token_hash.h — bearer tokens as the tokens files hold them: never the
// token, only its SHA-256 ("sha256:<64 hex digits>"). Shared by the gRPC
// front's --auth-file and the ops port's --ops-auth-file.
#pragma once

#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace voucherd {

// Hex SHA-256 of a token (lower case).
[[nodiscard]] std::string token_hash(std::string_view token);

// The hex hash of a tokens file's "sha256:<64 hex digits>" (lower case), or
// nothing when `key` is not one.
[[nodiscard]] std::optional<std::string> parse_token_key(std::string_view key);

// One line of a tokens file: "sha256:<64 hex digits> <word>".
struct TokenLine {
  std::string hash;   // hex SHA-256 of the token (lower case)
  std::string word;   // what follows it: a role, a name
  std::string where;  // "<flag> <path> line N: ", to refuse the word with
};

// The lines of a tokens file, `flag` naming it in errors ("--auth-file"),
// `word` naming what follows each hash ("role"). Blank lines and '#'
// comments are skipped. Refused, naming the file and line: a line that is
// not "sha256:<64 hex digits> <word>", a token given twice, no token at all.
[[nodiscard]] std::expected<std::vector<TokenLine>, std::string> read_token_lines(
    const std::string& path, std::string_view flag, std::string_view word);

}  // namespace voucherd
