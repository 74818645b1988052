// proto_convert_test — proves server/grpc/proto_convert.h: a campaign (first
// come, and a lottery with weights and its release schedule) goes to
// voucher.v1.Campaign and back unchanged, an apply-then-draw one with its
// allocation time (which the other modes leave unset); an application
// carries its preferences, state and proof; unknown modes and kinds come back
// as "unspecified" for validation to refuse; timestamps out of range and
// lottery rules that do not fit the campaign are refused naming the field;
// equal specs give equal definition bytes and different ones different
// bytes; a voucher carries every field, its visible state, and the
// redemption only when it was redeemed; draw entries round trip for every
// outcome, and a record that does not fit the campaign is refused saying
// why, and so do application outcomes (PENDING only before the allocation
// is done, and refused on the way back); stats carry every count, per SKU too; and timestamps
// convert once, to the microsecond, with their RFC 3339 text.
#include "server/grpc/proto_convert.h"

#include <gtest/gtest.h>

#include "engine/limits.h"
#include "tests/support/engine/campaign_spec.h"

namespace voucherd {
namespace {

namespace v1 = voucher::v1;
using testing::SpecBuilder;

constexpr UnixMicros kStart = 1'700'000'000LL * kMicrosPerSecond + 250;  // sub-second too
constexpr UnixMicros kEnd = kStart + 7 * kMicrosPerDay;

CampaignSpec first_come() {
  CampaignSpec s = SpecBuilder("gd-2024", "Guangdong winter giveaway")
                       .window(kStart, kEnd)
                       .per_member_limit(2)
                       .voucher_valid_days(10)
                       .guangdong_sites_and_skus(100, 50, 7, 5'000);
  s.voucher_valid_seconds = 3600;
  s.cancel_keeps_allowance = true;
  return s;
}

CampaignSpec weighted_lottery() {
  CampaignSpec s = SpecBuilder("lucky", "Lucky")
                       .lottery(0.25)
                       .window(kStart, kEnd)
                       .site("site-1", "Hangzhou", SkuKind::kHotel, "Lakeside Inn")
                       .sku("sku-a", 30, 9'800, "Day pass")
                       .sku("sku-b", 10, 19'800, "Night pass");
  s.lottery.draws_per_day = 5;
  s.lottery.time_zone = "Asia/Shanghai";
  s.lottery.prizes_per_member = 2;
  s.lottery.sku_choice = SkuChoice::kWeighted;
  s.lottery.sku_weights = {3, 1};
  s.lottery.release = ReleaseSchedule::kEqualPerDay;
  return s;
}

CampaignSpec round_trip(const CampaignSpec& spec) {
  v1::Campaign proto;
  campaign_to_proto(spec, &proto);
  auto back = campaign_from_proto(proto);
  EXPECT_TRUE(back.has_value()) << back.error().field << ": " << back.error().message;
  return back.value_or(CampaignSpec{});
}

TEST(ProtoConvert, CampaignsRoundTrip) {
  const CampaignSpec plain = first_come();
  EXPECT_EQ(round_trip(plain), plain);
  const CampaignSpec lottery = weighted_lottery();
  EXPECT_EQ(round_trip(lottery), lottery);

  v1::Campaign proto;
  campaign_to_proto(lottery, &proto);
  EXPECT_EQ(proto.mode(), v1::CAMPAIGN_MODE_LOTTERY);
  EXPECT_EQ(proto.starts_at().seconds(), 1'700'000'000);
  EXPECT_EQ(proto.starts_at().nanos(), 250'000);
  ASSERT_EQ(proto.skus_size(), 2);
  EXPECT_EQ(proto.skus(1).kind(), v1::SKU_KIND_HOTEL);
  EXPECT_EQ(proto.skus(1).face_value_cents(), 19'800);
  EXPECT_EQ(proto.lottery().sku_choice(), v1::SKU_CHOICE_WEIGHTED);
  EXPECT_EQ(proto.lottery().release(), v1::RELEASE_SCHEDULE_EQUAL_PER_DAY);
  ASSERT_EQ(proto.lottery().sku_weights_size(), 2);
  EXPECT_EQ(proto.lottery().sku_weights(1).sku_id(), "sku-b");
  EXPECT_EQ(proto.lottery().sku_weights(1).weight(), 1);
  // A FIRST_COME campaign carries no lottery rules.
  v1::Campaign plain_proto;
  campaign_to_proto(plain, &plain_proto);
  EXPECT_FALSE(plain_proto.has_lottery());
}

TEST(ProtoConvert, AnApplyCampaignCarriesItsAllocationTimeAndOnlyIt) {
  CampaignSpec apply = weighted_lottery();
  apply.mode = CampaignMode::kApplyThenDraw;
  apply.lottery = LotterySpec{};
  apply.allocation_at_us = kEnd + 3 * kMicrosPerSecond + 7;
  EXPECT_EQ(round_trip(apply), apply);
  v1::Campaign proto;
  campaign_to_proto(apply, &proto);
  EXPECT_EQ(proto.mode(), v1::CAMPAIGN_MODE_APPLY_THEN_DRAW);
  EXPECT_FALSE(proto.has_lottery());
  EXPECT_EQ(proto.allocation_at().seconds(), 1'700'000'000 + 7 * 86'400 + 3);
  EXPECT_EQ(proto.allocation_at().nanos(), 257'000);
  // The other modes leave it unset, so their stored definitions keep their
  // bytes.
  v1::Campaign plain;
  campaign_to_proto(first_come(), &plain);
  EXPECT_FALSE(plain.has_allocation_at());
  // One out of range is refused naming it.
  proto.mutable_allocation_at()->set_seconds(-1);
  const auto refused = campaign_from_proto(proto);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().field, "campaign.allocation_at");
}

TEST(ProtoConvert, AnApplicationCarriesItsPreferencesStateVoucherAndProof) {
  CampaignSpec spec = weighted_lottery();
  spec.mode = CampaignMode::kApplyThenDraw;
  ApplicationResult r;
  r.outcome = Outcome::kOk;
  r.application.member_id = "m-1";
  r.application.preferred = {1, 0};
  r.application.applied_at_us = kStart + 5'000;
  r.state = ApplicationState::kPending;
  v1::Application pending;
  application_to_proto(spec, r, kStart, &pending);
  EXPECT_EQ(pending.campaign_id(), "lucky");
  EXPECT_EQ(pending.member_id(), "m-1");
  ASSERT_EQ(pending.preferred_sku_ids_size(), 2);
  EXPECT_EQ(pending.preferred_sku_ids(0), "sku-b");
  EXPECT_EQ(pending.preferred_sku_ids(1), "sku-a");
  EXPECT_EQ(pending.applied_at().seconds(), 1'700'000'000);
  EXPECT_EQ(pending.applied_at().nanos(), 5'250'000);
  EXPECT_EQ(pending.state(), v1::APPLICATION_STATE_PENDING);
  EXPECT_FALSE(pending.has_voucher());
  EXPECT_TRUE(pending.proof().empty());

  r.state = ApplicationState::kNotSelected;
  r.proof = "rank HMAC-SHA256 00ff";
  v1::Application lost;
  application_to_proto(spec, r, kStart, &lost);
  EXPECT_EQ(lost.state(), v1::APPLICATION_STATE_NOT_SELECTED);
  EXPECT_EQ(lost.proof(), "rank HMAC-SHA256 00ff");
  EXPECT_FALSE(lost.has_voucher());
}

TEST(ProtoConvert, UnknownModesAndKindsComeBackUnspecified) {
  v1::Campaign proto;
  campaign_to_proto(first_come(), &proto);
  proto.set_mode(static_cast<v1::CampaignMode>(9));
  proto.mutable_sites(0)->set_kind(static_cast<v1::SkuKind>(17));
  proto.mutable_skus(0)->set_kind(v1::SKU_KIND_UNSPECIFIED);
  proto.mutable_skus(1)->set_kind(static_cast<v1::SkuKind>(5));
  auto spec = campaign_from_proto(proto);
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->mode, CampaignMode::kUnspecified);
  EXPECT_EQ(spec->sites[0].kind, SkuKind::kUnspecified);
  EXPECT_EQ(spec->skus[0].kind, SkuKind::kUnspecified);
  EXPECT_EQ(spec->skus[1].kind, SkuKind::kUnspecified);
  EXPECT_EQ(spec->skus[2].kind, SkuKind::kScenic);
}

TEST(ProtoConvert, TimestampsOutOfRangeAreRefusedNamingTheField) {
  v1::Campaign proto;
  campaign_to_proto(first_come(), &proto);
  v1::Campaign early = proto;
  early.mutable_starts_at()->set_seconds(-1);
  auto refused = campaign_from_proto(early);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().field, "campaign.starts_at");
  EXPECT_EQ(refused.error().message, "campaign.starts_at is out of range");

  v1::Campaign late = proto;
  late.mutable_ends_at()->set_seconds(253'402'300'800);  // 10000-01-01
  refused = campaign_from_proto(late);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().field, "campaign.ends_at");

  v1::Campaign bad_nanos = proto;
  bad_nanos.mutable_ends_at()->set_nanos(1'000'000'000);
  refused = campaign_from_proto(bad_nanos);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().field, "campaign.ends_at");

  // The last second of 9999 is fine; so is a campaign without timestamps
  // (validation refuses that, not the conversion).
  v1::Campaign last = proto;
  last.mutable_ends_at()->set_seconds(253'402'300'799);
  EXPECT_TRUE(campaign_from_proto(last).has_value());
  v1::Campaign none = proto;
  none.clear_starts_at();
  none.clear_ends_at();
  auto unset = campaign_from_proto(none);
  ASSERT_TRUE(unset.has_value());
  EXPECT_EQ(unset->starts_at_us, 0);
  EXPECT_EQ(unset->ends_at_us, 0);
}

TEST(ProtoConvert, LotteryRulesThatDoNotFitAreRefusedNamingTheField) {
  v1::Campaign proto;
  campaign_to_proto(weighted_lottery(), &proto);
  struct Case {
    const char* name;
    void (*spoil)(v1::LotteryRules&);
    const char* field;
    const char* message;
  };
  const Case cases[] = {
      {"unknown SKU choice",
       [](v1::LotteryRules& l) { l.set_sku_choice(static_cast<v1::SkuChoice>(7)); },
       "campaign.lottery.sku_choice",
       "campaign.lottery.sku_choice must be SKU_CHOICE_PROPORTIONAL_TO_REMAINING or "
       "SKU_CHOICE_WEIGHTED"},
      {"unknown release",
       [](v1::LotteryRules& l) { l.set_release(static_cast<v1::ReleaseSchedule>(7)); },
       "campaign.lottery.release",
       "campaign.lottery.release must be RELEASE_SCHEDULE_LINEAR or "
       "RELEASE_SCHEDULE_EQUAL_PER_DAY"},
      {"weight of an unknown SKU",
       [](v1::LotteryRules& l) { l.mutable_sku_weights(1)->set_sku_id("sku-z"); },
       "campaign.lottery.sku_weights",
       "campaign.lottery.sku_weights: \"sku-z\" is not a SKU of the campaign"},
      {"SKU weighted twice",
       [](v1::LotteryRules& l) { l.mutable_sku_weights(1)->set_sku_id("sku-a"); },
       "campaign.lottery.sku_weights", "campaign.lottery.sku_weights: \"sku-a\" is weighted twice"},
      {"SKU without a weight", [](v1::LotteryRules& l) { l.mutable_sku_weights()->RemoveLast(); },
       "campaign.lottery.sku_weights",
       "campaign.lottery.sku_weights gives SKU \"sku-b\" no weight"},
  };
  for (const Case& c : cases) {
    v1::Campaign spoilt = proto;
    c.spoil(*spoilt.mutable_lottery());
    auto refused = campaign_from_proto(spoilt);
    ASSERT_FALSE(refused.has_value()) << c.name;
    EXPECT_EQ(refused.error().field, c.field) << c.name;
    EXPECT_EQ(refused.error().message, c.message) << c.name;
  }
  // No weights at all: fine (proportional to what remains).
  v1::Campaign unweighted = proto;
  unweighted.mutable_lottery()->clear_sku_weights();
  unweighted.mutable_lottery()->set_sku_choice(v1::SKU_CHOICE_UNSPECIFIED);
  unweighted.mutable_lottery()->set_release(v1::RELEASE_SCHEDULE_UNSPECIFIED);
  auto spec = campaign_from_proto(unweighted);
  ASSERT_TRUE(spec.has_value());
  EXPECT_TRUE(spec->lottery.sku_weights.empty());
  EXPECT_EQ(spec->lottery.sku_choice, SkuChoice::kProportionalToRemaining);
  EXPECT_EQ(spec->lottery.release, ReleaseSchedule::kLinear);
}

TEST(ProtoConvert, EqualSpecsGiveEqualDefinitionBytes) {
  const std::string bytes = encode_campaign_definition(first_come());
  EXPECT_EQ(encode_campaign_definition(first_come()), bytes);
  CampaignSpec more = first_come();
  more.skus[0].stock += 1;
  EXPECT_NE(encode_campaign_definition(more), bytes);
  // The bytes are the Campaign message.
  v1::Campaign decoded;
  ASSERT_TRUE(decoded.ParseFromString(bytes));
  auto spec = campaign_from_proto(decoded);
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(*spec, first_come());
}

VoucherFields a_voucher() {
  VoucherFields v;
  v.code = "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB";
  v.campaign_id = "gd-2024";
  v.sku_id = "sku-001";
  v.site_id = "site-001";
  v.member_id = "member-1";
  v.request_id = "req-1";
  v.sku_kind = SkuKind::kHotSpring;
  v.face_value_cents = 19'900;
  v.issued_at_us = kStart;
  v.expires_at_us = kStart + 10 * kMicrosPerDay;
  v.redeemed_site_id = "site-001";
  v.redeemed_at_us = kStart + kMicrosPerDay;
  v.redeem_request_id = "desk-1";
  return v;
}

TEST(ProtoConvert, VouchersCarryEveryFieldAndTheRedemptionOnlyWhenRedeemed) {
  const VoucherPtr issued_ptr = VoucherRecord::make(a_voucher());
  const VoucherRecord& issued = *issued_ptr;
  v1::Voucher out;
  voucher_to_proto(issued, VoucherState::kExpired, &out);  // the visible state is what goes out
  EXPECT_EQ(out.code(), issued.code());
  EXPECT_EQ(out.campaign_id(), "gd-2024");
  EXPECT_EQ(out.sku_id(), "sku-001");
  EXPECT_EQ(out.site_id(), "site-001");
  EXPECT_EQ(out.member_id(), "member-1");
  EXPECT_EQ(out.request_id(), "req-1");
  EXPECT_EQ(out.state(), v1::VOUCHER_STATE_EXPIRED);
  EXPECT_EQ(out.sku_kind(), v1::SKU_KIND_HOT_SPRING);
  EXPECT_EQ(out.face_value_cents(), 19'900);
  EXPECT_EQ(out.issued_at().seconds(), 1'700'000'000);
  EXPECT_EQ(out.issued_at().nanos(), 250'000);
  EXPECT_EQ(out.expires_at().seconds(), 1'700'000'000 + 10 * 86'400);
  // Stored ISSUED: no redemption goes out, whatever the record holds.
  EXPECT_FALSE(out.has_redeemed_at());
  EXPECT_TRUE(out.redeemed_site_id().empty());
  EXPECT_TRUE(out.redeem_request_id().empty());

  VoucherFields redeemed_fields = a_voucher();
  redeemed_fields.state = VoucherState::kRedeemed;
  const VoucherPtr redeemed = VoucherRecord::make(redeemed_fields);
  v1::Voucher r;
  voucher_to_proto(*redeemed, VoucherState::kRedeemed, &r);
  EXPECT_EQ(r.state(), v1::VOUCHER_STATE_REDEEMED);
  ASSERT_TRUE(r.has_redeemed_at());
  EXPECT_EQ(r.redeemed_at().seconds(), 1'700'000'000 + 86'400);
  EXPECT_EQ(r.redeemed_site_id(), "site-001");
  EXPECT_EQ(r.redeem_request_id(), "desk-1");
}

TEST(ProtoConvert, ASelectedApplicationCarriesItsVoucherInTheStateSeenNow) {
  CampaignSpec spec = weighted_lottery();
  spec.mode = CampaignMode::kApplyThenDraw;
  VoucherFields won = a_voucher();
  won.request_id.clear();  // the allocation issued it, not a press
  ApplicationResult r;
  r.outcome = Outcome::kOk;
  r.application.member_id = "member-1";
  r.application.applied_at_us = kStart - 5'000;
  r.state = ApplicationState::kSelected;
  r.voucher = VoucherRecord::make(won);
  r.proof = "rank HMAC-SHA256 0a0b";

  v1::Application selected;
  application_to_proto(spec, r, kStart + kMicrosPerDay, &selected);
  EXPECT_EQ(selected.state(), v1::APPLICATION_STATE_SELECTED);
  EXPECT_EQ(selected.preferred_sku_ids_size(), 0);  // named none: any SKU
  EXPECT_EQ(selected.proof(), "rank HMAC-SHA256 0a0b");
  ASSERT_TRUE(selected.has_voucher());
  EXPECT_EQ(selected.voucher().code(), r.voucher->code());
  EXPECT_EQ(selected.voucher().member_id(), "member-1");
  EXPECT_EQ(selected.voucher().sku_id(), "sku-001");
  EXPECT_TRUE(selected.voucher().request_id().empty());
  EXPECT_EQ(selected.voucher().state(), v1::VOUCHER_STATE_ISSUED);

  // Read after the voucher's validity: the member sees it EXPIRED.
  v1::Application later;
  application_to_proto(spec, r, kStart + 11 * kMicrosPerDay, &later);
  EXPECT_EQ(later.state(), v1::APPLICATION_STATE_SELECTED);
  EXPECT_EQ(later.voucher().state(), v1::VOUCHER_STATE_EXPIRED);
}

TEST(ProtoConvert, DrawEntriesRoundTripForEveryOutcome) {
  const CampaignSpec spec = weighted_lottery();
  for (DrawOutcome o : {DrawOutcome::kWon, DrawOutcome::kUnlucky, DrawOutcome::kPaused,
                        DrawOutcome::kAllGone, DrawOutcome::kAlreadyWon}) {
    DrawEntry entry;
    entry.member_id = "m-7";
    entry.draw_number = 3;
    entry.at_us = kStart + 42;
    entry.outcome = o;
    entry.sku = o == DrawOutcome::kWon ? 1 : kNoSku;
    entry.released = 12;
    entry.remaining = 9;
    v1::DrawRecord record;
    draw_entry_to_proto(spec, entry, &record);
    EXPECT_EQ(record.won(), o == DrawOutcome::kWon);
    EXPECT_EQ(record.sku_id(), o == DrawOutcome::kWon ? "sku-b" : "");
    if (o != DrawOutcome::kWon) {
      EXPECT_EQ(static_cast<int>(record.reason()), static_cast<int>(o));
    }
    auto back = draw_entry_from_proto(spec, record);
    ASSERT_TRUE(back.has_value()) << outcome_name(o) << ": " << back.error();
    EXPECT_EQ(*back, entry) << outcome_name(o);
  }
}

TEST(ProtoConvert, DrawRecordsThatDoNotFitTheCampaignAreRefused) {
  const CampaignSpec spec = weighted_lottery();
  v1::DrawRecord won;
  won.set_member_id("m-1");
  won.set_draw_number(1);
  won.set_won(true);
  won.set_sku_id("sku-z");
  auto refused = draw_entry_from_proto(spec, won);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), "won SKU \"sku-z\", which the campaign does not have");

  v1::DrawRecord lost;
  lost.set_member_id("m-1");
  lost.set_draw_number(1);
  for (int reason : {0, 5, 99}) {
    lost.set_reason(static_cast<v1::NoPrizeReason>(reason));
    refused = draw_entry_from_proto(spec, lost);
    ASSERT_FALSE(refused.has_value()) << reason;
    EXPECT_EQ(refused.error(), "neither won nor a reason for no prize") << reason;
  }
}

TEST(ProtoConvert, ApplicationOutcomesRoundTripAndPendingOnlyBeforeTheEnd) {
  CampaignSpec spec = weighted_lottery();
  spec.mode = CampaignMode::kApplyThenDraw;
  ApplicationOutcome won{ApplicationEntry{"m-1", {1, 0}, kStart + 5'000}, 0};
  ApplicationOutcome lost{ApplicationEntry{"m-2", {}, kStart + 7'000}, kNoSku};
  v1::ApplicationRecord record;
  application_outcome_to_proto(spec, won, /*allocation_done=*/true, &record);
  EXPECT_EQ(record.member_id(), "m-1");
  ASSERT_EQ(record.preferred_sku_ids_size(), 2);
  EXPECT_EQ(record.preferred_sku_ids(0), "sku-b");
  EXPECT_EQ(record.preferred_sku_ids(1), "sku-a");
  EXPECT_EQ(record.applied_at().nanos(), 5'250'000);
  EXPECT_EQ(record.state(), v1::APPLICATION_STATE_SELECTED);
  EXPECT_EQ(record.sku_id(), "sku-a");
  auto back = application_outcome_from_proto(spec, record);
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(*back, won);
  // Running: a winner is SELECTED, the rest PENDING, which has no outcome
  // to audit.
  application_outcome_to_proto(spec, won, /*allocation_done=*/false, &record);
  EXPECT_EQ(record.state(), v1::APPLICATION_STATE_SELECTED);
  EXPECT_EQ(record.preferred_sku_ids_size(), 2);  // the message is filled afresh
  v1::ApplicationRecord waiting;
  application_outcome_to_proto(spec, lost, /*allocation_done=*/false, &waiting);
  EXPECT_EQ(waiting.state(), v1::APPLICATION_STATE_PENDING);
  EXPECT_EQ(waiting.sku_id(), "");
  EXPECT_EQ(waiting.preferred_sku_ids_size(), 0);
  auto refused = application_outcome_from_proto(spec, waiting);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(),
            "PENDING: the export was taken before the allocation was done; export again once "
            "GetCampaignStats says DONE");
  v1::ApplicationRecord done;
  application_outcome_to_proto(spec, lost, /*allocation_done=*/true, &done);
  EXPECT_EQ(done.state(), v1::APPLICATION_STATE_NOT_SELECTED);
  back = application_outcome_from_proto(spec, done);
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(*back, lost);
}

TEST(ProtoConvert, ApplicationRecordsThatDoNotFitTheCampaignAreRefused) {
  CampaignSpec spec = weighted_lottery();
  spec.mode = CampaignMode::kApplyThenDraw;
  auto refusal = [&](const v1::ApplicationRecord& r) {
    auto out = application_outcome_from_proto(spec, r);
    EXPECT_FALSE(out.has_value());
    return out.has_value() ? std::string() : out.error();
  };
  v1::ApplicationRecord r;
  r.set_state(v1::APPLICATION_STATE_NOT_SELECTED);
  EXPECT_EQ(refusal(r), "no member_id");
  r.set_member_id("m-1");
  r.add_preferred_sku_ids("sku-z");
  EXPECT_EQ(refusal(r), "prefers SKU \"sku-z\", which the campaign does not have");
  r.clear_preferred_sku_ids();
  r.set_sku_id("sku-a");
  EXPECT_EQ(refusal(r), "NOT_SELECTED, and names SKU \"sku-a\"");
  r.set_state(v1::APPLICATION_STATE_SELECTED);
  r.set_sku_id("sku-z");
  EXPECT_EQ(refusal(r), "SELECTED for SKU \"sku-z\", which the campaign does not have");
  for (int state : {0, 9}) {
    r.set_state(static_cast<v1::ApplicationState>(state));
    EXPECT_EQ(refusal(r), "no state (SELECTED or NOT_SELECTED)") << state;
  }
}

TEST(ProtoConvert, StatsCarryEveryCountPerSkuToo) {
  CampaignStatsView view;
  view.campaign_id = "gd-2024";
  view.stock_total = 150;
  view.issued = 40;
  view.redeemed = 12;
  view.remaining = 110;
  view.expired = 3;
  view.members = 39;
  view.skus = {{"sku-001", 100, 30, 10, 70, 2}, {"sku-002", 50, 10, 2, 40, 1}};
  v1::CampaignStats out;
  stats_to_proto(view, &out);
  EXPECT_EQ(out.campaign_id(), "gd-2024");
  EXPECT_EQ(out.stock_total(), 150);
  EXPECT_EQ(out.issued(), 40);
  EXPECT_EQ(out.redeemed(), 12);
  EXPECT_EQ(out.remaining(), 110);
  EXPECT_EQ(out.expired(), 3);
  EXPECT_EQ(out.members(), 39);
  ASSERT_EQ(out.skus_size(), 2);
  for (int i = 0; i < 2; ++i) {
    const SkuStatsView& want = view.skus[static_cast<std::size_t>(i)];
    EXPECT_EQ(out.skus(i).sku_id(), want.sku_id);
    EXPECT_EQ(out.skus(i).stock(), want.stock);
    EXPECT_EQ(out.skus(i).issued(), want.issued);
    EXPECT_EQ(out.skus(i).redeemed(), want.redeemed);
    EXPECT_EQ(out.skus(i).remaining(), want.remaining);
    EXPECT_EQ(out.skus(i).expired(), want.expired);
  }
  // Not an APPLY_THEN_DRAW campaign: no application counts.
  EXPECT_EQ(out.allocation(), v1::ALLOCATION_STATE_UNSPECIFIED);
  EXPECT_EQ(out.applications(), 0);
  EXPECT_FALSE(out.has_allocated_at());
}

TEST(ProtoConvert, AnApplyCampaignsStatsSayWhereTheAllocationStands) {
  CampaignStatsView view;
  view.campaign_id = "gd-apply";
  ApplicationCounts counts;
  counts.applications = 120;
  counts.selected = 0;
  view.applications = counts;
  v1::CampaignStats open;
  stats_to_proto(view, &open);
  EXPECT_EQ(open.allocation(), v1::ALLOCATION_STATE_NOT_STARTED);
  EXPECT_EQ(open.applications(), 120);
  EXPECT_EQ(open.not_selected(), 0);

  view.applications->allocation = ApplicationCounts::Allocation::kRunning;
  view.applications->selected = 40;
  v1::CampaignStats running;
  stats_to_proto(view, &running);
  EXPECT_EQ(running.allocation(), v1::ALLOCATION_STATE_RUNNING);
  EXPECT_EQ(running.selected(), 40);
  EXPECT_EQ(running.not_selected(), 0);  // not known until it is done
  EXPECT_FALSE(running.has_allocated_at());

  view.applications->allocation = ApplicationCounts::Allocation::kDone;
  view.applications->selected = 59;
  view.applications->allocated_at_us = kStart + 1'500;
  v1::CampaignStats done;
  stats_to_proto(view, &done);
  EXPECT_EQ(done.allocation(), v1::ALLOCATION_STATE_DONE);
  EXPECT_EQ(done.selected(), 59);
  EXPECT_EQ(done.not_selected(), 61);
  EXPECT_EQ(done.allocated_at().seconds(), 1'700'000'000);
  EXPECT_EQ(done.allocated_at().nanos(), 1'750'000);
}

TEST(ProtoConvert, TimestampsConvertToTheMicrosecondWithTheirText) {
  google::protobuf::Timestamp ts;
  timestamp_to_proto(kStart, &ts);
  EXPECT_EQ(ts.seconds(), 1'700'000'000);
  EXPECT_EQ(ts.nanos(), 250'000);
  timestamp_to_proto(0, &ts);
  EXPECT_EQ(ts.seconds(), 0);
  EXPECT_EQ(ts.nanos(), 0);
  EXPECT_EQ(timestamp_text(1'718'676'000LL * kMicrosPerSecond), "2024-06-18T02:00:00Z");
  EXPECT_EQ(timestamp_text(kStart), "2023-11-14T22:13:20.000250Z");
}

}  // namespace
}  // namespace voucherd
