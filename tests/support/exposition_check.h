// exposition_check.h — a strict parser of the Prometheus text exposition
// format (0.0.4), for tests of GET /metrics.
//
// It refuses what Prometheus would refuse or misread: a sample before its
// family's # TYPE, a family declared twice or split in two, an invalid
// metric or label name, a badly quoted or escaped label value, a value that
// is not a number, the same series twice, a histogram whose buckets are not
// cumulative or lack le="+Inf" equal to _count, a counter that is negative.
#pragma once

#include <expected>
#include <map>
#include <string>

namespace voucherd::testing {

// Series key: name{label="value",...} with the labels sorted by name, so
// tests can look a series up whatever order voucherd wrote them in.
using Exposition = std::map<std::string, double>;

// The parsed samples, or the first problem found (with its line number).
[[nodiscard]] std::expected<Exposition, std::string> parse_exposition(const std::string& text);

// The value of a series, or 0 if it is absent (counters not yet counted).
[[nodiscard]] double series_value(const Exposition& e, const std::string& key);

}  // namespace voucherd::testing
