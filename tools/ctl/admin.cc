// admin.cc — voucherctl stats, voucher get | cancel, reconcile, replicas.
#include <cstdio>
#include <iostream>

#include "tools/ctl/ctl.h"

namespace voucherd::ctl {
namespace {

namespace v1 = voucher::v1;

void print_voucher(const v1::Voucher& v) {
  std::cout << "code             " << v.code() << "\n"
            << "state            " << short_name(v1::VoucherState_Name(v.state()), "VOUCHER_STATE_")
            << "\n"
            << "campaign         " << v.campaign_id() << "\n"
            << "site             " << v.site_id() << "\n"
            << "SKU              " << v.sku_id() << " ("
            << short_name(v1::SkuKind_Name(v.sku_kind()), "SKU_KIND_") << ")\n"
            << "member           " << v.member_id() << "\n"
            << "face value       " << v.face_value_cents() / 100 << "."
            << (v.face_value_cents() % 100 < 10 ? "0" : "") << v.face_value_cents() % 100
            << " yuan\n"
            << "issued at        " << time_text(v.issued_at()) << "\n"
            << "expires at       " << time_text(v.expires_at()) << "\n";
  if (v.state() == v1::VOUCHER_STATE_REDEEMED) {
    std::cout << "redeemed at      " << time_text(v.redeemed_at()) << " by site "
              << v.redeemed_site_id() << " (request " << v.redeem_request_id() << ")\n";
  }
}

int show_voucher(Output o, const std::expected<v1::Voucher, int>& v) {
  if (!v) return v.error();
  if (o == Output::kJson) {
    print_json(*v);
  } else {
    print_voucher(*v);
  }
  return kDone;
}

}  // namespace

int stats(const Session& s, const std::string& campaign, Output o) {
  v1::GetCampaignStatsRequest req;
  req.set_campaign_id(campaign);
  auto got = unary<v1::CampaignStats>(s, "GetCampaignStats", [&](auto& ctx, auto& out) {
    return s.admin().GetCampaignStats(&ctx, req, &out);
  });
  if (!got) return got.error();
  const v1::CampaignStats& st = *got;
  if (o == Output::kJson) {
    print_json(st);
    return kDone;
  }
  const char* row = "%-24s %10lld %10lld %10lld %10lld %10lld\n";
  std::printf("campaign %s: %lld members hold a voucher\n", st.campaign_id().c_str(),
              static_cast<long long>(st.members()));
  std::printf("%-24s %10s %10s %10s %10s %10s\n", "SKU", "STOCK", "ISSUED", "REDEEMED", "REMAINING",
              "EXPIRED");
  for (const v1::SkuStats& k : st.skus()) {
    std::printf(row, k.sku_id().c_str(), static_cast<long long>(k.stock()),
                static_cast<long long>(k.issued()), static_cast<long long>(k.redeemed()),
                static_cast<long long>(k.remaining()), static_cast<long long>(k.expired()));
  }
  std::printf(row, "ALL", static_cast<long long>(st.stock_total()),
              static_cast<long long>(st.issued()), static_cast<long long>(st.redeemed()),
              static_cast<long long>(st.remaining()), static_cast<long long>(st.expired()));
  switch (st.allocation()) {
    case v1::ALLOCATION_STATE_NOT_STARTED:
      std::printf("%lld applications; not allocated yet\n",
                  static_cast<long long>(st.applications()));
      break;
    case v1::ALLOCATION_STATE_RUNNING:
      std::printf("%lld applications (frozen); allocating: %lld selected so far\n",
                  static_cast<long long>(st.applications()), static_cast<long long>(st.selected()));
      break;
    case v1::ALLOCATION_STATE_DONE:
      std::printf("%lld applications; allocated%s%s: %lld selected, %lld not selected\n",
                  static_cast<long long>(st.applications()), st.has_allocated_at() ? " at " : "",
                  st.has_allocated_at() ? time_text(st.allocated_at()).c_str() : "",
                  static_cast<long long>(st.selected()), static_cast<long long>(st.not_selected()));
      break;
    default:  // not an APPLY_THEN_DRAW campaign
      break;
  }
  return kDone;
}

int voucher_get(const Session& s, const std::string& code, Output o) {
  v1::GetVoucherRequest req;
  req.set_code(code);
  return show_voucher(o, unary<v1::Voucher>(s, "GetVoucher", [&](auto& ctx, auto& out) {
                        return s.vouchers().GetVoucher(&ctx, req, &out);
                      }));
}

int voucher_cancel(const Session& s, const std::string& code, Output o) {
  v1::CancelVoucherRequest req;
  req.set_code(code);
  return show_voucher(o, unary<v1::Voucher>(s, "CancelVoucher", [&](auto& ctx, auto& out) {
                        return s.admin().CancelVoucher(&ctx, req, &out);
                      }));
}

int reconcile(const Session& s, const std::string& campaign, Output o) {
  v1::ReconcileCampaignRequest req;
  req.set_campaign_id(campaign);
  auto got = unary<v1::ReconcileCampaignResponse>(
      s, "ReconcileCampaign",
      [&](auto& ctx, auto& out) { return s.admin().ReconcileCampaign(&ctx, req, &out); });
  if (!got) return got.error();
  const v1::ReconcileCampaignResponse& r = *got;
  if (o == Output::kJson) {
    print_json(r);
    return kDone;
  }
  std::printf("campaign %s: %lld units of lapsed replicas' leases returned to the pool\n",
              r.campaign_id().c_str(), static_cast<long long>(r.units_returned()));
  for (const v1::SkuReturned& k : r.skus()) {
    if (k.units_returned() != 0) {
      std::printf("  %-24s %10lld\n", k.sku_id().c_str(),
                  static_cast<long long>(k.units_returned()));
    }
  }
  return kDone;
}

int replicas(const Session& s, const std::string& campaign, Output o) {
  v1::ListReplicasRequest req;
  req.set_campaign_id(campaign);
  auto got = unary<v1::ListReplicasResponse>(s, "ListReplicas", [&](auto& ctx, auto& out) {
    return s.admin().ListReplicas(&ctx, req, &out);
  });
  if (!got) return got.error();
  const v1::ListReplicasResponse& r = *got;
  if (o == Output::kJson) {
    print_json(r);
    return kDone;
  }
  // One line per replica and campaign; '*' marks the replica that answered.
  std::printf("  %-40s %-24s %12s %-7s %10s\n", "REPLICA", "CAMPAIGN", "LAST BEAT", "STATE",
              "LEASED");
  for (const v1::ReplicaInfo& rep : r.replicas()) {
    const char* mark = rep.answering() ? "*" : " ";
    if (rep.campaigns().empty()) {
      std::printf("%s %-40s %-24s %12s %-7s %10s\n", mark, rep.replica_id().c_str(), "-", "-", "-",
                  "-");
    }
    for (const v1::ReplicaCampaign& c : rep.campaigns()) {
      const std::string age =
          c.has_last_beat() ? std::to_string(c.beat_age_ms()) + " ms ago" : std::string("never");
      std::printf("%s %-40s %-24s %12s %-7s %10lld\n", mark, rep.replica_id().c_str(),
                  c.campaign_id().c_str(), age.c_str(), c.lapsed() ? "lapsed" : "live",
                  static_cast<long long>(c.leased_units()));
    }
  }
  return kDone;
}

}  // namespace voucherd::ctl
