// report.cc — voucher-load's reports: text for people (in the manner of
// ghz and wrk), JSON for machines, and an SVG of the run over time.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/load/load.h"

namespace voucherd::load {
namespace {

double ms(std::uint64_t ns) { return static_cast<double>(ns) / 1e6; }

std::string fixed(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kClaim:
      return "claim";
    case Mode::kRedeem:
      return "redeem";
    case Mode::kMixed:
      return "mixed";
    case Mode::kDraw:
      return "draw";
    case Mode::kApply:
      return "apply";
  }
  return "?";
}

std::int64_t total_issued(const LoadReport& r) {
  std::int64_t n = 0;
  for (const auto& p : r.phases) n += p.issued;
  return n;
}

constexpr double kQuantiles[] = {0.5, 0.9, 0.99, 0.999};

std::string xml_escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string format_text(const LoadReport& r) {
  std::ostringstream out;
  const LoadOptions& o = r.options;
  if (!r.error.empty()) {
    out << "error: " << r.error << "\n";
    return out.str();
  }
  out << "Target " << o.target << ", campaign " << o.campaign_id << ", mode " << mode_name(o.mode)
      << (o.batch > 0 ? ", batches of " + std::to_string(o.batch) : std::string()) << "\n"
      << "Load   " << o.threads << " client thread(s), "
      << (o.rate > 0 ? "open loop at " + fixed(o.rate, 0) + " calls/s"
                     : "closed loop, " + std::to_string(o.concurrency) + " calls in flight")
      << "; crowd " << o.members << " members + " << fixed(o.repeat_share * 100, 0)
      << "% repeat presses\n";
  for (const PhaseReport& p : r.phases) {
    out << "\nPhase " << p.name << "\n"
        << "  Total:        " << fixed(p.elapsed_s) << " s\n"
        << "  Calls:        " << p.calls << " ("
        << fixed(p.elapsed_s > 0 ? static_cast<double>(p.calls) / p.elapsed_s : 0, 0)
        << " calls/s)\n";
    if (p.answers != p.calls) {
      out << "  Answers:      " << p.answers << " (" << fixed(p.throughput(), 0) << " /s)\n";
    }
    out << "  Latency:      mean " << fixed(p.latency.mean_ns() / 1e6, 3) << " ms, min "
        << fixed(ms(p.latency.min_ns()), 3) << " ms"
        << (o.rate > 0 ? " (from each call's intended start)" : "") << "\n"
        << "  Latency distribution:\n";
    for (double q : kQuantiles) {
      out << "    " << fixed(q * 100, q < 0.999 ? 0 : 1) << "% in "
          << fixed(ms(p.latency.value_at_quantile(q)), 3) << " ms\n";
    }
    out << "    max  " << fixed(ms(p.latency.max_ns()), 3) << " ms\n";
    out << "  Status code distribution:\n";
    for (const auto& [code, n] : p.codes) {
      out << "    [" << status_code_name(code) << "]   " << n << " answers\n";
    }
    if (!p.reasons.empty()) {
      out << (p.name == "draw"      ? "  Draws without a prize, and refusals, by reason:\n"
              : p.name == "apply"   ? "  Applications, and refusals, by outcome:\n"
              : p.name == "results" ? "  Outcomes, and refusals, by state:\n"
                                    : "  Refusals by reason:\n");
      for (const auto& [reason, n] : p.reasons) out << "    " << reason << "   " << n << "\n";
    }
    if (p.retries > 0)
      out << "  Retried:      " << p.retries << " (after RESOURCE_EXHAUSTED / UNAVAILABLE)\n";
    if (p.late_sends > 0) {
      out << "  Late sends:   " << p.late_sends
          << " (open loop: sent over 1 ms after their intended start)\n";
    }
    if (p.name == "draw") {
      out << "  Prizes won        " << p.issued << "\n";
    } else if (p.name == "results") {
      out << "  Packs won         " << p.issued << "\n";
    } else if (p.issued + p.already_claimed + p.sold_out > 0) {
      out << "  Vouchers issued   " << p.issued << "\n"
          << "  Already claimed   " << p.already_claimed
          << " (repeat presses answered with the held voucher)\n"
          << "  Sold out          " << p.sold_out << "\n";
      if (p.sellout_s >= 0) {
        out << "  Sold out after    " << fixed(p.sellout_s) << " s from the first press\n";
      }
    }
    if (p.redeemed + p.already_redeemed > 0) {
      out << "  Redeemed          " << p.redeemed << "\n"
          << "  Already redeemed  " << p.already_redeemed << " (repeats of the same request)\n";
    }
    if (p.timed_out) out << "  Stopped at the duration limit before all work was sent\n";
  }
  const CheckReport& c = r.check;
  out << "\nClient check: distinct codes " << c.distinct_codes << ", members with two codes "
      << c.members_with_two_codes << ", codes with two members " << c.codes_with_two_members;
  if (c.codes_redeemed_twice > 0) out << ", codes redeemed twice " << c.codes_redeemed_twice;
  out << "\nStock check:  issued " << total_issued(r);
  if (c.server_issued >= 0) out << " (server says " << c.server_issued << ")";
  if (c.stock >= 0) {
    out << ", stock " << c.stock;
  } else {
    out << ", stock unknown";
  }
  if (!c.stats_error.empty()) out << " [" << c.stats_error << "]";
  if (c.apply) {
    const ApplyReport& a = *c.apply;
    out << "\nAllocation:   ";
    if (a.allocation_done) {
      out << "done " << fixed(a.waited_s) << " s after the applications";
      if (a.allocated_after_s >= 0) {
        out << " (" << fixed(a.allocated_after_s) << " s after allocation_at)";
      }
    } else {
      out << "NOT done within " << fixed(r.options.allocation_wait_s) << " s of allocation_at";
    }
    out << "\nApplicants:   " << a.applicants << " (server counts " << a.server_applications
        << "), applications refused " << a.refused << ", selected " << a.selected
        << ", not selected " << a.not_selected << ", missing " << a.missing << ", still pending "
        << a.pending << ", SKUs over stock " << a.skus_over_stock;
    if (r.options.preferences == 0) {
      out << "\nAny SKU:      selected " << (a.all_stock_allocated ? "==" : "!=")
          << " min(stock, applicants)";
    }
  }
  out << "\nCheck:        " << (c.ok() ? "passed" : "FAILED") << "\n";
  return out.str();
}

std::string format_json(const LoadReport& r) {
  using nlohmann::json;
  const LoadOptions& o = r.options;
  json j;
  j["target"] = o.target;
  j["campaign_id"] = o.campaign_id;
  j["mode"] = mode_name(o.mode);
  j["threads"] = o.threads;
  j["concurrency"] = o.concurrency;
  j["rate"] = o.rate;
  j["batch"] = o.batch;
  j["members"] = o.members;
  j["repeat_share"] = o.repeat_share;
  if (!r.error.empty()) j["error"] = r.error;
  json phases = json::array();
  for (const PhaseReport& p : r.phases) {
    json jp;
    jp["name"] = p.name;
    jp["elapsed_s"] = p.elapsed_s;
    jp["calls"] = p.calls;
    jp["answers"] = p.answers;
    jp["answers_per_s"] = p.throughput();
    jp["calls_per_s"] = p.elapsed_s > 0 ? static_cast<double>(p.calls) / p.elapsed_s : 0;
    jp["retries"] = p.retries;
    jp["late_sends"] = p.late_sends;
    jp["timed_out"] = p.timed_out;
    jp["latency_ms"] = {{"mean", p.latency.mean_ns() / 1e6},
                        {"min", ms(p.latency.min_ns())},
                        {"p50", ms(p.latency.value_at_quantile(0.5))},
                        {"p90", ms(p.latency.value_at_quantile(0.9))},
                        {"p99", ms(p.latency.value_at_quantile(0.99))},
                        {"p999", ms(p.latency.value_at_quantile(0.999))},
                        {"max", ms(p.latency.max_ns())}};
    json codes = json::object();
    for (const auto& [code, n] : p.codes) codes[status_code_name(code)] = n;
    jp["status_codes"] = codes;
    jp["reasons"] = p.reasons;
    jp["issued"] = p.issued;
    jp["already_claimed"] = p.already_claimed;
    jp["sold_out"] = p.sold_out;
    jp["sellout_s"] = p.sellout_s;
    jp["redeemed"] = p.redeemed;
    jp["already_redeemed"] = p.already_redeemed;
    json timeline = json::array();
    for (const SecondStats& s : p.timeline) {
      timeline.push_back({{"calls", s.calls},
                          {"ok", s.ok},
                          {"errors", s.errors},
                          {"p50_ms", ms(s.p50_ns)},
                          {"p99_ms", ms(s.p99_ns)},
                          {"max_ms", ms(s.max_ns)}});
    }
    jp["timeline"] = timeline;
    phases.push_back(jp);
  }
  j["phases"] = phases;
  const CheckReport& c = r.check;
  j["check"] = {{"ok", c.ok()},
                {"issued", total_issued(r)},
                {"distinct_codes", c.distinct_codes},
                {"members_with_two_codes", c.members_with_two_codes},
                {"codes_with_two_members", c.codes_with_two_members},
                {"codes_redeemed_twice", c.codes_redeemed_twice},
                {"stock", c.stock},
                {"server_issued", c.server_issued},
                {"issued_within_stock", c.issued_within_stock},
                {"server_agrees", c.server_agrees},
                {"stats_error", c.stats_error}};
  if (c.apply) {
    const ApplyReport& a = *c.apply;
    j["check"]["apply"] = {{"applicants", a.applicants},
                           {"server_applications", a.server_applications},
                           {"refused", a.refused},
                           {"allocation_done", a.allocation_done},
                           {"waited_s", a.waited_s},
                           {"allocated_after_s", a.allocated_after_s},
                           {"selected", a.selected},
                           {"not_selected", a.not_selected},
                           {"missing", a.missing},
                           {"pending", a.pending},
                           {"won_per_sku", a.won_per_sku},
                           {"skus_over_stock", a.skus_over_stock},
                           {"all_stock_allocated", a.all_stock_allocated}};
  }
  return j.dump(2) + "\n";
}

std::string format_svg(const LoadReport& r) {
  // Two charts, one above the other, sharing the time axis: answers per
  // second (ok and errors), and p50 / p99 latency per second.
  constexpr double kWidth = 900, kChartHeight = 220, kLeft = 70, kRight = 20, kTop = 40, kGap = 70;
  std::vector<SecondStats> t;
  for (const PhaseReport& p : r.phases) t.insert(t.end(), p.timeline.begin(), p.timeline.end());
  const double seconds = std::max<double>(1, static_cast<double>(t.size()));
  double max_rate = 1, max_latency_ms = 0.001;
  for (const SecondStats& s : t) {
    max_rate = std::max(max_rate, static_cast<double>(s.ok + s.errors));
    max_latency_ms = std::max(max_latency_ms, ms(s.p99_ns));
  }
  const double plot_w = kWidth - kLeft - kRight;
  auto x_of = [&](double sec) { return kLeft + plot_w * sec / seconds; };
  std::ostringstream svg;
  const double height = kTop + 2 * kChartHeight + kGap + 40;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << kLeft
      << "\" y=\"20\" font-size=\"14\">voucher-load: " << xml_escaped(r.options.target)
      << ", campaign " << xml_escaped(r.options.campaign_id) << "</text>\n";
  auto chart = [&](double top, const std::string& title, double y_max, const std::string& unit,
                   const std::vector<std::pair<std::string, std::vector<double>>>& series) {
    const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c"};
    svg << "<text x=\"" << kLeft << "\" y=\"" << top - 8 << "\">" << title << "</text>\n"
        << "<rect x=\"" << kLeft << "\" y=\"" << top << "\" width=\"" << plot_w << "\" height=\""
        << kChartHeight << "\" fill=\"none\" stroke=\"#888\"/>\n";
    for (int g = 0; g <= 4; ++g) {
      const double y = top + kChartHeight - kChartHeight * g / 4.0;
      svg << "<line x1=\"" << kLeft << "\" x2=\"" << kLeft + plot_w << "\" y1=\"" << y << "\" y2=\""
          << y << "\" stroke=\"#eee\"/>\n"
          << "<text x=\"" << kLeft - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
          << fixed(y_max * g / 4.0, y_max < 10 ? 2 : 0) << "</text>\n";
    }
    svg << "<text x=\"12\" y=\"" << top + kChartHeight / 2 << "\" transform=\"rotate(-90 12,"
        << top + kChartHeight / 2 << ")\" text-anchor=\"middle\">" << unit << "</text>\n";
    for (std::size_t k = 0; k < series.size(); ++k) {
      svg << "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" << colours[k % 3]
          << "\" points=\"";
      const auto& values = series[k].second;
      for (std::size_t i = 0; i < values.size(); ++i) {
        const double y = top + kChartHeight - kChartHeight * std::min(1.0, values[i] / y_max);
        svg << fixed(x_of(static_cast<double>(i) + 0.5), 1) << "," << fixed(y, 1) << " ";
      }
      svg << "\"/>\n<text x=\"" << kLeft + plot_w - 150 << "\" y=\"" << top + 16 + 14 * k
          << "\" fill=\"" << colours[k % 3] << "\">" << series[k].first << "</text>\n";
    }
  };
  std::vector<double> ok, errors, p50, p99;
  for (const SecondStats& s : t) {
    ok.push_back(static_cast<double>(s.ok));
    errors.push_back(static_cast<double>(s.errors));
    p50.push_back(ms(s.p50_ns));
    p99.push_back(ms(s.p99_ns));
  }
  chart(kTop + 20, "Answers per second", max_rate * 1.1, "answers/s",
        {{"OK", ok}, {"refused", errors}});
  const double lat_top = kTop + 20 + kChartHeight + kGap;
  chart(lat_top, "Latency per second (of the calls answered in it)", max_latency_ms * 1.1, "ms",
        {{"p50", p50}, {"p99", p99}});
  const double axis_y = lat_top + kChartHeight + 16;
  for (int g = 0; g <= 10; ++g) {
    const double sec = seconds * g / 10.0;
    svg << "<text x=\"" << x_of(sec) << "\" y=\"" << axis_y << "\" text-anchor=\"middle\">"
        << fixed(sec, seconds < 20 ? 1 : 0) << " s</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace voucherd::load
