#include "server/ops/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <cctype>
#include <functional>
#include <limits>
#include <unordered_map>

#include "server/base/bug.h"

namespace voucherd {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr const char* kUnknownCampaign = "(unknown)";

// "SOLD_OUT" -> "sold_out": label values in the metrics' own style.
std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// Label values of each outcome slot, per family (kOk reads differently in
// each), computed once.
struct OutcomeLabels {
  std::array<std::string, kOutcomeSlotsMax> claims, redemptions, draws, applications;
  OutcomeLabels() {
    for (std::size_t i = 0; i < kEngineOutcomes; ++i) {
      const std::string name = lower(outcome_name(static_cast<Outcome>(i)));
      claims[i] = redemptions[i] = draws[i] = applications[i] = name;
    }
    claims[0] = "issued";
    redemptions[0] = "redeemed";
    draws[0] = "won";
    applications[0] = "applied";
    draws[kNoPrizeSlot] = "no_prize";
  }
};
const OutcomeLabels& outcome_labels() {
  static const OutcomeLabels labels;
  return labels;
}

ClientMetric labelled(std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  return m;
}

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric gauge(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m = labelled(std::move(labels));
  m.gauge.value = value;
  return m;
}

// A histogram in Prometheus' form: cumulative buckets, scaled to its unit.
ClientMetric histogram(std::vector<ClientMetric::Label> labels, const metrics::Histogram& h,
                       double scale) {
  const metrics::HistogramSnapshot s = h.snapshot();
  ClientMetric m = labelled(std::move(labels));
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < s.buckets.size(); ++i) {
    cumulative += s.buckets[i];
    ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < h.bounds().size() ? static_cast<double>(h.bounds()[i]) * scale
                                          : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(b);
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(s.sum) * scale;
  return m;
}

// Outcomes always shown (at zero too), so dashboards and alerts find their
// series before the first event; the other outcomes appear once they occur.
bool always_shown(std::size_t slot, std::string_view family_name) {
  if (family_name == "claims") {
    return slot == 0 || slot == static_cast<std::size_t>(Outcome::kAlreadyClaimed) ||
           slot == static_cast<std::size_t>(Outcome::kSoldOut);
  }
  if (family_name == "draws") return slot == 0 || slot == kNoPrizeSlot;
  return slot == 0;
}

}  // namespace

const char* rpc_name(Rpc rpc) {
  switch (rpc) {
    case Rpc::kClaim:
      return "Claim";
    case Rpc::kGetVoucher:
      return "GetVoucher";
    case Rpc::kRedeem:
      return "Redeem";
    case Rpc::kListMemberVouchers:
      return "ListMemberVouchers";
    case Rpc::kCancelVoucher:
      return "CancelVoucher";
    case Rpc::kExportRedemptions:
      return "ExportRedemptions";
    case Rpc::kCreateCampaign:
      return "CreateCampaign";
    case Rpc::kGetCampaign:
      return "GetCampaign";
    case Rpc::kGetCampaignStats:
      return "GetCampaignStats";
    case Rpc::kReconcileCampaign:
      return "ReconcileCampaign";
    case Rpc::kDraw:
      return "Draw";
    case Rpc::kClaimBatch:
      return "ClaimBatch";
    case Rpc::kRevealSeed:
      return "RevealSeed";
    case Rpc::kExportDraws:
      return "ExportDraws";
    case Rpc::kListCampaigns:
      return "ListCampaigns";
    case Rpc::kListReplicas:
      return "ListReplicas";
    case Rpc::kApply:
      return "Apply";
    case Rpc::kGetApplication:
      return "GetApplication";
    case Rpc::kExportApplications:
      return "ExportApplications";
    case Rpc::kCount:
      break;
  }
  return "unknown";
}

Metrics::Metrics(const ClaimEngine& engine, MetricsOptions options)
    : engine_(engine),
      options_(std::move(options)),
      slots_(std::make_unique<std::atomic<CampaignCounters*>[]>(limits::kCampaignSlots)) {
  unknown_.id = kUnknownCampaign;
  (void)outcome_labels();  // built here, not on a claim
}

Metrics::~Metrics() = default;

std::size_t Metrics::slot_of(Outcome outcome) {
  const auto i = static_cast<std::size_t>(outcome);
  return i < kEngineOutcomes ? i : static_cast<std::size_t>(Outcome::kInternal);
}

Metrics::CampaignCounters& Metrics::campaign(std::string_view id) {
  constexpr std::size_t kMask = limits::kCampaignSlots - 1;
  const std::size_t h = std::hash<std::string_view>{}(id);
  for (std::size_t probe = 0; probe < limits::kCampaignSlots; ++probe) {
    // Acquire: pairs with the release store below, so a reader that sees
    // the pointer sees the counters' id written before it was published.
    CampaignCounters* c = slots_[(h + probe) & kMask].load(std::memory_order_acquire);
    if (c == nullptr) break;
    if (c->id == id) return *c;
  }
  // Not counted yet: only loaded campaigns get a label of their own.
  if (engine_.find_campaign(id) == nullptr) return unknown_;
  std::lock_guard lock(mu_);
  for (std::size_t probe = 0; probe < limits::kCampaignSlots; ++probe) {
    std::atomic<CampaignCounters*>& slot = slots_[(h + probe) & kMask];
    // Relaxed under mu_: every store to a slot happens under mu_.
    CampaignCounters* c = slot.load(std::memory_order_relaxed);
    if (c != nullptr) {
      if (c->id == id) return *c;
      continue;
    }
    auto fresh = std::make_unique<CampaignCounters>();
    fresh->id = std::string(id);
    c = fresh.get();
    owned_.push_back(std::move(fresh));
    slot.store(c, std::memory_order_release);
    return *c;
  }
  // More campaigns than the engine's registry holds cannot be loaded, so
  // the table (as large as the registry) cannot be full.
  return unknown_;
}

void Metrics::count_claim(std::string_view campaign_id, Outcome outcome) {
  campaign(campaign_id).claims.add(slot_of(outcome));
}

void Metrics::count_redemption(std::string_view campaign_id, Outcome outcome) {
  campaign(campaign_id).redemptions.add(slot_of(outcome));
}

void Metrics::count_draw(std::string_view campaign_id, Outcome outcome, bool won) {
  const std::size_t slot = outcome == Outcome::kOk && !won ? kNoPrizeSlot : slot_of(outcome);
  campaign(campaign_id).draws.add(slot);
}

void Metrics::count_apply(std::string_view campaign_id, Outcome outcome) {
  campaign(campaign_id).applications.add(slot_of(outcome));
}

void Metrics::observe_rpc(Rpc rpc, int grpc_code, std::uint64_t elapsed_ns) {
  RpcCounters& r = rpcs_[static_cast<std::size_t>(rpc)];
  const auto code = static_cast<std::size_t>(grpc_code);
  r.codes.add(code < kGrpcCodes ? code : 2 /* UNKNOWN */);
  r.latency.observe(elapsed_ns);
}

MetricsSnapshot Metrics::snapshot() const {
  MetricsSnapshot s;
  const RpcCounters& claim = rpcs_[static_cast<std::size_t>(Rpc::kClaim)];
  for (std::size_t code = 0; code < kGrpcCodes; ++code) s.claim_calls += claim.codes.value(code);
  s.claim_latency = claim.latency.snapshot();
  for (const RpcCounters& r : rpcs_) {
    for (std::size_t code = 0; code < kGrpcCodes; ++code) s.codes_all[code] += r.codes.value(code);
  }
  return s;
}

std::string Metrics::exposition(bool ready, bool draining) const {
  std::vector<MetricFamily> out;

  MetricFamily build =
      family("voucherd_build_info", "voucherd's version and claim log (store)", MetricType::Gauge);
  const std::string store_kind(options_.store->kind());
  build.metric.push_back(gauge({{"version", options_.version}, {"store", store_kind}}, 1));
  out.push_back(std::move(build));

  if (options_.tls_not_after_seconds) {
    MetricFamily tls = family("voucherd_tls_certificate_not_after_seconds",
                              "when the gRPC port's certificate (--tls-cert) expires, in Unix "
                              "seconds (only with TLS)",
                              MetricType::Gauge);
    tls.metric.push_back(gauge({}, static_cast<double>(*options_.tls_not_after_seconds)));
    out.push_back(std::move(tls));
  }

  const bool connected = options_.store->connected();
  MetricFamily store = family("voucherd_store_connected",
                              "1 while the claim log is reachable (always 1 for the memory store)",
                              MetricType::Gauge);
  store.metric.push_back(gauge({{"store", store_kind}}, connected ? 1 : 0));
  out.push_back(std::move(store));
  MetricFamily ready_f = family("voucherd_ready", "1 while /readyz answers 200", MetricType::Gauge);
  ready_f.metric.push_back(gauge({}, ready ? 1 : 0));
  out.push_back(std::move(ready_f));
  MetricFamily draining_f =
      family("voucherd_draining", "1 once SIGTERM started the drain", MetricType::Gauge);
  draining_f.metric.push_back(gauge({}, draining ? 1 : 0));
  out.push_back(std::move(draining_f));
  MetricFamily bugs = family("voucherd_internal_errors_total",
                             "\"should not happen\" events (VOUCHERD_BUG): each is a bug, logged "
                             "at error with where it happened",
                             MetricType::Counter);
  ClientMetric bug_count = labelled({});
  bug_count.counter.value = static_cast<double>(bug::count());
  bugs.metric.push_back(std::move(bug_count));
  out.push_back(std::move(bugs));
  MetricFamily verified = family("voucherd_voucher_codes_verified_total",
                                 "codes whose MAC verified, by the place in --secret-file of "
                                 "the secret that made it (1: the first, which mints; the "
                                 "others are being rotated out)",
                                 MetricType::Counter);
  for (std::size_t k = 0; k < engine_.secret_count(); ++k) {
    ClientMetric m = labelled({{"secret", std::to_string(k + 1)}});
    m.counter.value = static_cast<double>(engine_.verified_by_secret(k));
    verified.metric.push_back(std::move(m));
  }
  out.push_back(std::move(verified));

  // Outcome counters, by campaign. The table is read under mu_: a scrape is
  // rare, and a count that adds a campaign meanwhile waits a moment.
  std::unordered_map<std::string_view, const CampaignCounters*> counted;
  {
    std::lock_guard lock(mu_);
    for (const auto& c : owned_) counted.emplace(c->id, c.get());
  }
  // Every loaded campaign shows its always-shown series, counted or not.
  std::vector<std::string> loaded;
  for (const CampaignRuntime* c : engine_.campaigns()) loaded.push_back(c->spec().id);
  auto outcome_family = [&](const char* name, const char* help, std::string_view kind,
                            const std::array<std::string, kOutcomeSlotsMax>& labels, auto member) {
    MetricFamily f = family(name, help, MetricType::Counter);
    auto add = [&](const std::string& campaign_id, const CampaignCounters* c) {
      for (std::size_t slot = 0; slot < kOutcomeSlotsMax; ++slot) {
        if (labels[slot].empty()) continue;
        const std::uint64_t v = c != nullptr ? (c->*member).value(slot) : 0;
        if (v == 0 && !always_shown(slot, kind)) continue;
        ClientMetric m = labelled({{"campaign", campaign_id}, {"outcome", labels[slot]}});
        m.counter.value = static_cast<double>(v);
        f.metric.push_back(std::move(m));
      }
    };
    for (const std::string& id : loaded) {
      const auto it = counted.find(id);
      add(id, it != counted.end() ? it->second : nullptr);
    }
    // "(unknown)" only once something was counted there.
    bool any_unknown = false;
    for (std::size_t slot = 0; slot < kOutcomeSlotsMax; ++slot) {
      any_unknown = any_unknown || (unknown_.*member).value(slot) != 0;
    }
    if (any_unknown) add(unknown_.id, &unknown_);
    out.push_back(std::move(f));
  };
  const OutcomeLabels& labels = outcome_labels();
  outcome_family("voucherd_claims_total", "Claim calls answered by the engine, by outcome",
                 "claims", labels.claims, &CampaignCounters::claims);
  outcome_family("voucherd_redemptions_total", "Redeem calls answered by the engine, by outcome",
                 "redemptions", labels.redemptions, &CampaignCounters::redemptions);
  outcome_family("voucherd_draws_total",
                 "lottery draws, by outcome (won, no_prize, or the refusal)", "draws", labels.draws,
                 &CampaignCounters::draws);
  outcome_family("voucherd_applications_total",
                 "Apply calls to APPLY_THEN_DRAW campaigns, by outcome (applied, or the refusal)",
                 "applications", labels.applications, &CampaignCounters::applications);

  MetricFamily codes = family("voucherd_rpc_responses_total", "RPC answers by gRPC status code",
                              MetricType::Counter);
  MetricFamily latency = family("voucherd_rpc_duration_seconds",
                                "time from a call's start to its answer", MetricType::Histogram);
  for (std::size_t r = 0; r < rpcs_.size(); ++r) {
    const std::string rpc = rpc_name(static_cast<Rpc>(r));
    for (std::size_t code = 0; code < kGrpcCodes; ++code) {
      const std::uint64_t v = rpcs_[r].codes.value(code);
      if (v == 0 && code != 0) continue;
      ClientMetric m = labelled({{"rpc", rpc}, {"code", grpc_code_name(code)}});
      m.counter.value = static_cast<double>(v);
      codes.metric.push_back(std::move(m));
    }
    latency.metric.push_back(histogram({{"rpc", rpc}}, rpcs_[r].latency, 1e-9));
  }
  out.push_back(std::move(codes));
  out.push_back(std::move(latency));

  // Stock gauges, computed here and never on the claim path. Remaining is
  // store-wide with Redis; leased is what this replica holds in memory.
  MetricFamily remaining =
      family("voucherd_sku_remaining", "units of an SKU not yet issued (store-wide with Redis)",
             MetricType::Gauge);
  MetricFamily leased = family("voucherd_sku_leased",
                               "units of an SKU this replica holds to hand out (leased from "
                               "Redis; the whole remaining stock with the memory store)",
                               MetricType::Gauge);
  MetricFamily overdue = family("voucherd_lease_overdue_replicas",
                                "replicas holding leased units that missed two beats (dead or "
                                "paused: their units come back when their lease times out)",
                                MetricType::Gauge);
  MetricFamily stranded =
      family("voucherd_lease_stranded_units", "units leased to replicas that missed two beats",
             MetricType::Gauge);
  MetricFamily reclaimed_units =
      family("voucherd_lease_reclaimed_units_total",
             "units this replica gave back to the pool from replicas whose beat lapsed",
             MetricType::Counter);
  MetricFamily reclaimed_replicas = family(
      "voucherd_lease_reclaimed_replicas_total",
      "replicas whose beat lapsed and whose leases this replica took back", MetricType::Counter);
  MetricFamily allocation_due =
      family("voucherd_allocation_due_timestamp_seconds",
             "when an APPLY_THEN_DRAW campaign's packs are allocated (its allocation_at), Unix "
             "seconds",
             MetricType::Gauge);
  MetricFamily allocation_done =
      family("voucherd_allocation_done",
             "1 once this replica has seen an APPLY_THEN_DRAW campaign's allocation done (it wrote "
             "the last step, or its allocating thread found it done), else 0",
             MetricType::Gauge);
  for (const CampaignRuntime* c : engine_.campaigns()) {
    const CampaignSpec& spec = c->spec();
    if (spec.mode == CampaignMode::kApplyThenDraw) {
      allocation_due.metric.push_back(gauge(
          {{"campaign", spec.id}}, static_cast<double>(spec.allocation_at_us) / kMicrosPerSecond));
      allocation_done.metric.push_back(
          gauge({{"campaign", spec.id}}, c->allocation_done() ? 1 : 0));
    }
    const LeaseHealth health = options_.store->lease_health(spec.id);
    overdue.metric.push_back(
        gauge({{"campaign", spec.id}}, static_cast<double>(health.overdue_replicas)));
    stranded.metric.push_back(
        gauge({{"campaign", spec.id}}, static_cast<double>(health.stranded_units)));
    ClientMetric units = labelled({{"campaign", spec.id}});
    units.counter.value = static_cast<double>(health.reclaimed_units_total);
    reclaimed_units.metric.push_back(std::move(units));
    ClientMetric reps = labelled({{"campaign", spec.id}});
    reps.counter.value = static_cast<double>(health.reclaimed_replicas_total);
    reclaimed_replicas.metric.push_back(std::move(reps));
    // With the store down, the engine's own figures (never a blocking read).
    const auto stats = best_stats(engine_, *options_.store, spec);
    if (!stats) continue;
    for (std::size_t i = 0; i < stats->skus.size(); ++i) {
      const std::string& sku = stats->skus[i].sku_id;
      remaining.metric.push_back(gauge({{"campaign", spec.id}, {"sku", sku}},
                                       static_cast<double>(stats->skus[i].remaining)));
      leased.metric.push_back(
          gauge({{"campaign", spec.id}, {"sku", sku}},
                static_cast<double>(c->available(static_cast<std::uint32_t>(i)))));
    }
  }
  out.push_back(std::move(remaining));
  out.push_back(std::move(leased));
  out.push_back(std::move(overdue));
  out.push_back(std::move(stranded));
  out.push_back(std::move(reclaimed_units));
  out.push_back(std::move(reclaimed_replicas));
  out.push_back(std::move(allocation_due));
  out.push_back(std::move(allocation_done));

  // The claim log's writer (Redis store; empty for the others).
  static const metrics::Histogram kNoBatches{kBatchClaimsBounds};
  static const metrics::Histogram kNoWrites{metrics::kLatencyBoundsNs};
  const Store& st = *options_.store;
  MetricFamily batch = family("voucherd_claim_log_batch_claims",
                              "claims per pipelined write to the claim log", MetricType::Histogram);
  batch.metric.push_back(
      histogram({}, st.batch_claims() != nullptr ? *st.batch_claims() : kNoBatches, 1));
  out.push_back(std::move(batch));
  MetricFamily write =
      family("voucherd_claim_log_write_seconds",
             "round trip of one pipelined write to the claim log", MetricType::Histogram);
  write.metric.push_back(
      histogram({}, st.write_latency_ns() != nullptr ? *st.write_latency_ns() : kNoWrites, 1e-9));
  out.push_back(std::move(write));
  MetricFamily depth = family("voucherd_claim_log_queue_depth",
                              "claims waiting for the claim log's writer", MetricType::Gauge);
  depth.metric.push_back(gauge({}, static_cast<double>(st.queue_depth())));
  out.push_back(std::move(depth));

  return prometheus::TextSerializer().Serialize(out);
}

}  // namespace voucherd
