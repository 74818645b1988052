// files.h — reading a whole file, the one way every program of voucherd
// does it (campaign files, secrets, PEM files, tokens, audit inputs).
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace voucherd {

// The file's bytes, or "cannot read <what> <path>" (`what` names the file
// for the person reading the error, e.g. "--secret-file").
[[nodiscard]] std::expected<std::string, std::string> read_file(const std::string& path,
                                                                std::string_view what = "file");

}  // namespace voucherd
