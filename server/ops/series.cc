#include "server/ops/series.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

namespace voucherd {

void Series::sample(std::int64_t now_unix_s, const MetricsSnapshot& now,
                    const std::vector<std::pair<std::string, std::int64_t>>& remaining) {
  if (!previous_) {
    previous_ = now;
    previous_t_ = now_unix_s;
    return;
  }
  const double seconds = static_cast<double>(std::max<std::int64_t>(1, now_unix_s - previous_t_));
  Point p;
  p.t = now_unix_s;
  p.claims_per_s = static_cast<double>(now.claim_calls - previous_->claim_calls) / seconds;
  std::vector<std::uint64_t> delta(now.claim_latency.buckets.size());
  for (std::size_t i = 0; i < delta.size() && i < previous_->claim_latency.buckets.size(); ++i) {
    delta[i] = now.claim_latency.buckets[i] - previous_->claim_latency.buckets[i];
  }
  p.p99_ms =
      static_cast<double>(metrics::quantile_upper_bound(metrics::kLatencyBoundsNs, delta, 0.99)) /
      1e6;
  for (std::size_t code = 1; code < kGrpcCodes; ++code) {
    p.errors[code] = static_cast<std::uint64_t>(
        static_cast<double>(now.codes_all[code] - previous_->codes_all[code]) / seconds);
  }
  for (const auto& [id, left] : remaining) p.remaining[id] = left;
  previous_ = now;
  previous_t_ = now_unix_s;
  points_.push_back(std::move(p));
  while (points_.size() > kSeriesPointsMax) points_.pop_front();
}

std::string Series::json() const {
  using nlohmann::json;
  json out;
  out["interval_s"] = 1;
  json t = json::array(), claims = json::array(), p99 = json::array();
  std::set<std::size_t> codes_seen;
  std::set<std::string> campaigns;
  for (const Point& p : points_) {
    t.push_back(p.t);
    claims.push_back(p.claims_per_s);
    p99.push_back(p.p99_ms);
    for (std::size_t code = 1; code < kGrpcCodes; ++code) {
      if (p.errors[code] != 0) codes_seen.insert(code);
    }
    for (const auto& [id, left] : p.remaining) campaigns.insert(id);
  }
  json errors = json::object();
  for (std::size_t code : codes_seen) {
    json values = json::array();
    for (const Point& p : points_) values.push_back(p.errors[code]);
    errors[grpc_code_name(code)] = std::move(values);
  }
  json remaining = json::object();
  for (const std::string& id : campaigns) {
    json values = json::array();
    // A campaign created during the window has no figure before it: 0 there
    // would read as "sold out", so repeat its first known figure instead.
    std::optional<std::int64_t> first;
    for (const Point& p : points_) {
      if (auto it = p.remaining.find(id); it != p.remaining.end() && !first) first = it->second;
    }
    for (const Point& p : points_) {
      const auto it = p.remaining.find(id);
      values.push_back(it != p.remaining.end() ? it->second : first.value_or(0));
    }
    remaining[id] = std::move(values);
  }
  out["t"] = std::move(t);
  out["claims_per_s"] = std::move(claims);
  out["p99_ms"] = std::move(p99);
  out["errors_per_s"] = std::move(errors);
  out["remaining"] = std::move(remaining);
  return out.dump();
}

}  // namespace voucherd
