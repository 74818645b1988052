// series.h — the dashboard's recent history: one point a second, sampled
// on the ops thread from the metrics' counters, kept in a bounded ring.
//
//   GET /series -> {"interval_s":1, "t":[unix s...], "claims_per_s":[...],
//                   "p99_ms":[...], "errors_per_s":{"CODE":[...]},
//                   "remaining":{"<campaign>":[...]}}
// Every array is as long as "t". Errors are non-OK answers of every RPC by
// gRPC status code, listed once a code occurred in the window.
//
// Thread-safety: none; the ops thread owns it (samples and serves it).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "server/ops/metrics.h"

namespace voucherd {

// Five minutes of one-second points.
inline constexpr std::size_t kSeriesPointsMax = 300;
// Campaigns whose remaining stock is sampled each second (the first ones
// loaded): with Redis each costs a round trip a second on the ops thread,
// and a chart of more lines is unreadable anyway. /status shows them all.
inline constexpr std::size_t kSeriesCampaignsMax = 16;

class Series final {
 public:
  // Adds a point from the counters now (`now_unix_s`) and each campaign's
  // remaining stock; the first call only sets the baseline for the rates.
  void sample(std::int64_t now_unix_s, const MetricsSnapshot& now,
              const std::vector<std::pair<std::string, std::int64_t>>& remaining);
  [[nodiscard]] std::string json() const;
  [[nodiscard]] std::size_t size() const { return points_.size(); }

 private:
  struct Point {
    std::int64_t t = 0;
    double claims_per_s = 0;
    double p99_ms = 0;
    std::array<std::uint64_t, kGrpcCodes> errors{};  // per second, by code
    std::map<std::string, std::int64_t> remaining;
  };
  std::optional<MetricsSnapshot> previous_;
  std::int64_t previous_t_ = 0;
  std::deque<Point> points_;
};

}  // namespace voucherd
