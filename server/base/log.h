// log.h — voucherd's logs: one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-28T14:03:08.123Z","level":"info","msg":"listening ...","port":50051}
// Written through spdlog (levels, a thread-safe sink); the records are built
// with nlohmann::json, so message text is always escaped. Nothing is logged
// per claim at info level, and secrets and tokens are never passed here.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

namespace voucherd::log {

enum class Level : std::uint8_t { kDebug, kInfo, kWarn, kError };

// "debug", "info", "warn", "error".
[[nodiscard]] std::optional<Level> parse_level(std::string_view name);
void set_level(Level level);
// Whether a line at `level` would be written: check before building the
// fields of a per-request debug line.
[[nodiscard]] bool enabled(Level level);

void write(Level level, std::string_view message, const nlohmann::json& fields = {});
inline void debug(std::string_view m, const nlohmann::json& f = {}) { write(Level::kDebug, m, f); }
inline void info(std::string_view m, const nlohmann::json& f = {}) { write(Level::kInfo, m, f); }
inline void warn(std::string_view m, const nlohmann::json& f = {}) { write(Level::kWarn, m, f); }
inline void error(std::string_view m, const nlohmann::json& f = {}) { write(Level::kError, m, f); }

}  // namespace voucherd::log
