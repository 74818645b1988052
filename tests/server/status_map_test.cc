// status_map_test — proves server/grpc/status_map.h, the one place engine
// outcomes become gRPC statuses: every Outcome maps to its documented gRPC
// code (OK for kOk and kAlreadyClaimed, with no details); every refusal
// carries a google.rpc.Status payload whose code and message match the
// status and whose ErrorInfo has domain "voucherd", the wire reason
// (SKU_SOLD_OUT goes out as SOLD_OUT) and the campaign / SKU / site / field
// metadata that was given; load shedding alone adds a RetryInfo (200 ms);
// messages name what they are about and append the context's detail;
// invalid_argument() always names its field; and the front's own refusals
// (unauthenticated, permission denied, deadline passed, client gone) have
// their codes and say what to do, with no details. Whatever the caller sent,
// a refusal shows at most a bounded, escaped prefix of it (cut at a UTF-8
// boundary and marked), no message holds a control character, whichever
// layer wrote it, and invalid_id() names the field and the problem.
#include "server/grpc/status_map.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "voucher/v1/voucher.pb.h"

namespace voucherd {
namespace {

using grpc::StatusCode;

// The payload of a refusal, decoded.
struct Details {
  bool parsed = false;
  google::rpc::Status status;
  int error_infos = 0;
  google::rpc::ErrorInfo info;
  int retry_infos = 0;
  google::rpc::RetryInfo retry;
};

Details details_of(const grpc::Status& s) {
  Details d;
  d.parsed = d.status.ParseFromString(s.error_details());
  for (const auto& any : d.status.details()) {
    if (any.Is<google::rpc::ErrorInfo>()) {
      ++d.error_infos;
      EXPECT_TRUE(any.UnpackTo(&d.info));
    } else if (any.Is<google::rpc::RetryInfo>()) {
      ++d.retry_infos;
      EXPECT_TRUE(any.UnpackTo(&d.retry));
    } else {
      ADD_FAILURE() << "unexpected detail " << any.type_url();
    }
  }
  return d;
}

struct Row {
  Outcome outcome;
  StatusCode code;
  const char* reason;    // ErrorInfo.reason on the wire
  bool retry_hint;       // a RetryInfo is attached
  const char* mentions;  // the message says this
};

// Every Outcome but kOk / kAlreadyClaimed, in enum order.
const std::vector<Row>& refusals() {
  static const std::vector<Row> rows = {
      {Outcome::kInvalidArgument, StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT", false,
       "member_id must be 1 to 128 bytes"},
      {Outcome::kMistypedCode, StatusCode::INVALID_ARGUMENT, "MISTYPED_CODE", false,
       "code looks mistyped"},
      {Outcome::kCampaignNotFound, StatusCode::NOT_FOUND, "CAMPAIGN_NOT_FOUND", false,
       "campaign \"gd-2024\" not found"},
      {Outcome::kSkuNotFound, StatusCode::NOT_FOUND, "SKU_NOT_FOUND", false,
       "SKU \"sku-9\" not found in campaign \"gd-2024\""},
      {Outcome::kVoucherNotFound, StatusCode::NOT_FOUND, "VOUCHER_NOT_FOUND", false,
       "no voucher with this code"},
      {Outcome::kNotOpen, StatusCode::FAILED_PRECONDITION, "NOT_OPEN", false,
       "campaign \"gd-2024\" is not open yet"},
      {Outcome::kClosed, StatusCode::FAILED_PRECONDITION, "CLOSED", false,
       "campaign \"gd-2024\" is closed"},
      {Outcome::kWrongMode, StatusCode::FAILED_PRECONDITION, "WRONG_MODE", false,
       "is of another mode"},
      {Outcome::kSoldOut, StatusCode::FAILED_PRECONDITION, "SOLD_OUT", false,
       "campaign \"gd-2024\" is sold out"},
      {Outcome::kSkuSoldOut, StatusCode::FAILED_PRECONDITION, "SOLD_OUT", false,
       "SKU \"sku-9\" of campaign \"gd-2024\" is sold out"},
      {Outcome::kRequestIdRequired, StatusCode::INVALID_ARGUMENT, "REQUEST_ID_REQUIRED", false,
       "request_id is required: campaign \"gd-2024\""},
      {Outcome::kTooManyWaiters, StatusCode::RESOURCE_EXHAUSTED, "TOO_MANY_PRESSES", true,
       "retry later"},
      {Outcome::kPressRateLimited, StatusCode::RESOURCE_EXHAUSTED, "PRESS_RATE_LIMITED", true,
       "this member presses too often in campaign \"gd-2024\""},
      {Outcome::kOverloaded, StatusCode::RESOURCE_EXHAUSTED, "OVERLOADED", true,
       "voucherd is overloaded"},
      {Outcome::kStockRefilling, StatusCode::RESOURCE_EXHAUSTED, "STOCK_REFILLING", true,
       "refilling its stock"},
      {Outcome::kLogUnavailable, StatusCode::UNAVAILABLE, "STORE_UNAVAILABLE", true,
       "retrying is safe"},
      {Outcome::kCampaignExists, StatusCode::ALREADY_EXISTS, "CAMPAIGN_EXISTS", false,
       "already exists with another definition"},
      {Outcome::kWrongSite, StatusCode::PERMISSION_DENIED, "WRONG_SITE", false,
       "not redeemable by site \"site-2\""},
      {Outcome::kVoucherExpired, StatusCode::FAILED_PRECONDITION, "EXPIRED", false, "expired"},
      {Outcome::kVoucherCancelled, StatusCode::FAILED_PRECONDITION, "CANCELLED", false,
       "cancelled"},
      {Outcome::kAlreadyRedeemed, StatusCode::FAILED_PRECONDITION, "ALREADY_REDEEMED", false,
       "already redeemed"},
      {Outcome::kRedeemThrottled, StatusCode::RESOURCE_EXHAUSTED, "REDEEM_THROTTLED", true,
       "too many codes that are not vouchers"},
      {Outcome::kDrawLimitReached, StatusCode::RESOURCE_EXHAUSTED, "DAILY_DRAW_LIMIT", false,
       "every draw of their day in campaign \"gd-2024\""},
      {Outcome::kCampaignNotOver, StatusCode::FAILED_PRECONDITION, "CAMPAIGN_NOT_OVER", false,
       "is not over"},
      {Outcome::kApplicationNotFound, StatusCode::NOT_FOUND, "APPLICATION_NOT_FOUND", false,
       "this member has not applied to campaign \"gd-2024\""},
      {Outcome::kApplicationsFull, StatusCode::RESOURCE_EXHAUSTED, "APPLICATIONS_FULL", false,
       "takes no more applications: it holds 5000000"},
      {Outcome::kInternal, StatusCode::INTERNAL, "INTERNAL", false, "internal error"},
  };
  return rows;
}

StatusContext full_context() {
  StatusContext ctx;
  ctx.campaign_id = "gd-2024";
  ctx.sku_id = "sku-9";
  ctx.site_id = "site-2";
  ctx.field = "member_id";
  return ctx;
}

// The contract documents every reason as a value of voucher.v1.ErrorReason:
// each reason voucherd sends is one, and each one is sent by some outcome.
TEST(StatusMap, WireReasonsAreExactlyTheErrorReasonEnum) {
  std::set<int> sent;
  for (const Row& row : refusals()) {
    const std::string reason = wire_reason(row.outcome);
    voucher::v1::ErrorReason value = voucher::v1::ERROR_REASON_UNSPECIFIED;
    EXPECT_TRUE(voucher::v1::ErrorReason_Parse(reason, &value))
        << reason << " is not a value of voucher.v1.ErrorReason";
    EXPECT_NE(value, voucher::v1::ERROR_REASON_UNSPECIFIED) << reason;
    sent.insert(value);
  }
  const auto* e = voucher::v1::ErrorReason_descriptor();
  for (int i = 0; i < e->value_count(); ++i) {
    const auto* v = e->value(i);
    if (v->number() == voucher::v1::ERROR_REASON_UNSPECIFIED) continue;
    EXPECT_TRUE(sent.contains(v->number())) << v->name() << " is documented but never sent";
  }
}

TEST(StatusMap, OkOutcomesAreOkWithoutDetails) {
  for (Outcome o : {Outcome::kOk, Outcome::kAlreadyClaimed}) {
    const grpc::Status s = to_grpc_status(o, full_context());
    EXPECT_TRUE(s.ok()) << outcome_name(o);
    EXPECT_TRUE(s.error_message().empty());
    EXPECT_TRUE(s.error_details().empty());
  }
}

TEST(StatusMap, EveryRefusalHasItsCodeReasonMessageAndMetadata) {
  // The table covers every outcome after kAlreadyClaimed up to kInternal.
  ASSERT_EQ(refusals().size(), static_cast<std::size_t>(Outcome::kInternal) -
                                   static_cast<std::size_t>(Outcome::kAlreadyClaimed));
  for (const Row& row : refusals()) {
    SCOPED_TRACE(outcome_name(row.outcome));
    const grpc::Status s = to_grpc_status(row.outcome, full_context());
    EXPECT_EQ(s.error_code(), row.code);
    EXPECT_NE(s.error_message().find(row.mentions), std::string::npos) << s.error_message();
    EXPECT_STREQ(wire_reason(row.outcome), row.reason);

    const Details d = details_of(s);
    ASSERT_TRUE(d.parsed);
    // The payload repeats the status, as google.rpc.Status should.
    EXPECT_EQ(d.status.code(), static_cast<int>(row.code));
    EXPECT_EQ(d.status.message(), s.error_message());
    ASSERT_EQ(d.error_infos, 1);
    EXPECT_EQ(d.info.domain(), "voucherd");
    EXPECT_EQ(d.info.reason(), row.reason);
    const std::map<std::string, std::string> metadata(d.info.metadata().begin(),
                                                      d.info.metadata().end());
    EXPECT_EQ(metadata, (std::map<std::string, std::string>{{"campaign_id", "gd-2024"},
                                                            {"sku_id", "sku-9"},
                                                            {"site_id", "site-2"},
                                                            {"field", "member_id"}}));
    EXPECT_EQ(d.retry_infos, row.retry_hint ? 1 : 0);
    if (row.retry_hint) {
      EXPECT_EQ(d.retry.retry_delay().seconds(), 0);
      EXPECT_EQ(d.retry.retry_delay().nanos(), 200'000'000);
    }
  }
}

TEST(StatusMap, ACoolDownsRestIsTheRetryDelay) {
  StatusContext ctx;
  ctx.retry_delay = std::chrono::milliseconds(599'250);
  const Details d = details_of(to_grpc_status(Outcome::kRedeemThrottled, ctx));
  ASSERT_EQ(d.retry_infos, 1);
  EXPECT_EQ(d.retry.retry_delay().seconds(), 599);
  EXPECT_EQ(d.retry.retry_delay().nanos(), 250'000'000);
}

// The refusals a storm repeats are made once per thread and kept: every
// press still gets the answer for its own campaign, SKU and detail, the
// same bytes as the first, also past the bound on what is kept.
TEST(StatusMap, ARepeatedRefusalIsTheAnswerForItsOwnCampaignAndSku) {
  const auto answer = [](const std::string& campaign, const std::string& sku,
                         const std::string& detail) {
    StatusContext ctx;
    ctx.campaign_id = campaign;
    ctx.sku_id = sku;
    ctx.detail = detail;
    return to_grpc_status(sku.empty() ? Outcome::kSoldOut : Outcome::kSkuSoldOut, ctx);
  };
  const grpc::Status first = answer("spring", "", "");
  EXPECT_EQ(first.error_message(), "campaign \"spring\" is sold out");
  for (int round = 0; round < 2; ++round) {
    // More SKUs than are kept, so the second round finds the first gone.
    for (int i = 0; i < 700; ++i) {
      const std::string sku = "sku-" + std::to_string(i);
      const grpc::Status s = answer("spring", sku, "");
      ASSERT_EQ(s.error_message(), "SKU \"" + sku + "\" of campaign \"spring\" is sold out");
      const Details d = details_of(s);
      ASSERT_EQ(d.info.metadata().at("sku_id"), sku);
      ASSERT_EQ(d.info.metadata().at("campaign_id"), "spring");
      ASSERT_EQ(s.error_details(), answer("spring", sku, "").error_details());
    }
  }
  const grpc::Status again = answer("spring", "", "");
  EXPECT_EQ(again.error_code(), first.error_code());
  EXPECT_EQ(again.error_message(), first.error_message());
  EXPECT_EQ(again.error_details(), first.error_details());
  EXPECT_EQ(answer("autumn", "", "").error_message(), "campaign \"autumn\" is sold out");
  EXPECT_EQ(answer("spring", "", "it is a LOTTERY campaign").error_message(),
            "campaign \"spring\" is sold out: it is a LOTTERY campaign");
  // A campaign id and a SKU id that would run together are told apart.
  EXPECT_NE(answer("ab", "c", "").error_details(), answer("a", "bc", "").error_details());
}

TEST(StatusMap, MetadataHoldsOnlyWhatTheContextGives) {
  StatusContext ctx;
  ctx.campaign_id = "spring";
  const Details d = details_of(to_grpc_status(Outcome::kSoldOut, ctx));
  ASSERT_EQ(d.error_infos, 1);
  ASSERT_EQ(d.info.metadata().size(), 1u);
  EXPECT_EQ(d.info.metadata().at("campaign_id"), "spring");

  const Details none = details_of(to_grpc_status(Outcome::kVoucherNotFound, StatusContext{}));
  ASSERT_EQ(none.error_infos, 1);
  EXPECT_TRUE(none.info.metadata().empty());
  EXPECT_EQ(none.info.reason(), "VOUCHER_NOT_FOUND");
}

TEST(StatusMap, TheContextsDetailIsAppendedToTheMessage) {
  StatusContext ctx;
  ctx.campaign_id = "spring";
  ctx.detail = "draws reset at 2026-11-29T00:00:00+08:00";
  const grpc::Status s = to_grpc_status(Outcome::kDrawLimitReached, ctx);
  EXPECT_EQ(s.error_message(),
            "the member has used every draw of their day in campaign \"spring\": draws reset at "
            "2026-11-29T00:00:00+08:00");
  EXPECT_EQ(details_of(s).status.message(), s.error_message());
  ctx.detail.clear();
  EXPECT_EQ(to_grpc_status(Outcome::kSoldOut, ctx).error_message(),
            "campaign \"spring\" is sold out");
}

TEST(StatusMap, InvalidArgumentAlwaysNamesItsField) {
  const grpc::Status named = invalid_argument("claims", "claims must hold 1 to 1000 claims");
  EXPECT_EQ(named.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(named.error_message(), "claims must hold 1 to 1000 claims");
  const grpc::Status unnamed = invalid_argument("page_token", "is not one this server issued");
  EXPECT_EQ(unnamed.error_message(), "page_token: is not one this server issued");
  const Details d = details_of(unnamed);
  ASSERT_EQ(d.error_infos, 1);
  EXPECT_EQ(d.info.reason(), "INVALID_ARGUMENT");
  EXPECT_EQ(d.info.domain(), "voucherd");
  ASSERT_EQ(d.info.metadata().size(), 1u);
  EXPECT_EQ(d.info.metadata().at("field"), "page_token");
  EXPECT_EQ(d.retry_infos, 0);
}

// An echo of unbounded caller input made the trailers outgrow what clients
// accept (the call then hung): every refusal shows at most a bounded,
// escaped prefix of each value, marked as cut, in the message and in the
// metadata, whatever the outcome.
TEST(StatusMap, HugeCallerInputIsCutInMessagesAndMetadata) {
  const std::string campaign(70'000, 'c');
  const std::string sku(300'000, 's');
  const std::string site(70'000, 'x');
  const std::string field(70'000, 'f');
  StatusContext ctx;
  ctx.campaign_id = campaign;
  ctx.sku_id = sku;
  ctx.site_id = site;
  ctx.field = field;
  ctx.detail = std::string(70'000, 'd');
  for (const Row& row : refusals()) {
    SCOPED_TRACE(outcome_name(row.outcome));
    const grpc::Status s = to_grpc_status(row.outcome, ctx);
    EXPECT_LE(s.error_message().size(), 1024u);
    EXPECT_LT(s.error_details().size(), 2048u);
    const Details d = details_of(s);
    ASSERT_TRUE(d.parsed);
    EXPECT_EQ(d.status.message(), s.error_message());
    for (const auto& [key, value] : d.info.metadata()) {
      EXPECT_LE(value.size(), 128u + 3) << key;  // 128 bytes and "…"
      EXPECT_TRUE(value.ends_with("\u2026")) << key << ": " << value;
    }
  }
  // A quoted id says it was cut and how long it was.
  StatusContext one;
  one.campaign_id = campaign;
  const grpc::Status s = to_grpc_status(Outcome::kCampaignNotFound, one);
  EXPECT_EQ(s.error_message(),
            "campaign \"" + std::string(128, 'c') + "\u2026\" (70000 bytes) not found");
}

TEST(StatusMap, ControlCharactersAndQuotesAreEscaped) {
  StatusContext ctx;
  ctx.campaign_id = std::string_view("a\nb\0c\"d\x7f", 8);
  const grpc::Status s = to_grpc_status(Outcome::kCampaignNotFound, ctx);
  EXPECT_EQ(s.error_message(), "campaign \"a\\x0ab\\x00c\\\"d\\x7f\" not found");
  const Details d = details_of(s);
  EXPECT_EQ(d.info.metadata().at("campaign_id"), "a\\x0ab\\x00c\"d\\x7f");
  EXPECT_EQ(quoted_input("gd-2024"), "\"gd-2024\"");
}

// Found by the request-validation fuzzer: a CreateCampaign whose lottery
// weights name a SKU id with control characters was refused with those
// characters raw in the message (proto_convert and the engine's campaign
// checks quote definition ids as they are).
TEST(StatusMap, MessagesFromOtherLayersHaveTheirControlCharactersEscaped) {
  const grpc::Status s =
      invalid_argument("campaign.lottery.sku_weights",
                       "campaign.lottery.sku_weights: \"\x0c\x0c\" is not a SKU of the campaign");
  EXPECT_EQ(s.error_message(),
            "campaign.lottery.sku_weights: \"\\x0c\\x0c\" is not a SKU of the campaign");
  EXPECT_EQ(details_of(s).status.message(), s.error_message());
  const grpc::Status denied = permission_denied("site \"a\nb\"");
  EXPECT_EQ(denied.error_message(), "site \"a\\x0ab\"");
  // Escaping comes before the cut: the message stays within its bound.
  const grpc::Status long_one = invalid_argument("campaign", std::string(2'000, '\x01'));
  EXPECT_LE(long_one.error_message().size(), 1024u);
  EXPECT_TRUE(long_one.error_message().ends_with("(message cut)"));
}

TEST(StatusMap, ACutNeverSplitsAUtf8Character) {
  // 43 three-byte characters: 129 bytes, the 128-byte cut falls inside one.
  std::string id;
  for (int i = 0; i < 43; ++i) id += "\u5e7f";
  StatusContext ctx;
  ctx.campaign_id = id;
  const grpc::Status s = to_grpc_status(Outcome::kCampaignNotFound, ctx);
  const Details d = details_of(s);
  ASSERT_TRUE(d.parsed);  // proto3 strings must stay valid UTF-8
  const std::string& value = d.info.metadata().at("campaign_id");
  std::string kept;
  for (int i = 0; i < 42; ++i) kept += "\u5e7f";
  EXPECT_EQ(value, kept + "\u2026");
  EXPECT_NE(s.error_message().find(kept + "\u2026\" (129 bytes)"), std::string::npos);
}

TEST(StatusMap, InvalidIdNamesTheFieldAndWhatIsWrong) {
  const std::string huge(70'000, 'm');
  const grpc::Status too_long = invalid_id("member_id", huge, id_problem(huge));
  EXPECT_EQ(too_long.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(too_long.error_message(), "member_id is 70000 bytes; the limit is 128");
  const Details d = details_of(too_long);
  ASSERT_EQ(d.error_infos, 1);
  EXPECT_EQ(d.info.metadata().at("field"), "member_id");
  EXPECT_EQ(d.info.metadata().size(), 1u);  // the id itself is not echoed

  const std::string nl = "m\n1";
  EXPECT_EQ(invalid_id("member_id", nl, id_problem(nl)).error_message(),
            "member_id contains a control character (byte 0x0a at offset 1); ids are printable "
            "text");
  EXPECT_EQ(invalid_id("site_id", "", IdProblem::kEmpty).error_message(),
            "site_id must not be empty");
}

TEST(StatusMap, PermissionDeniedMessagesAreBounded) {
  const grpc::Status denied =
      permission_denied("may not redeem for site " + std::string(300'000, 'x'));
  EXPECT_LE(denied.error_message().size(), 1024u);
  EXPECT_TRUE(denied.error_message().ends_with("(message cut)"));
}

TEST(StatusMap, TheFrontsOwnRefusalsHaveTheirCodes) {
  const grpc::Status no_token = unauthenticated();
  EXPECT_EQ(no_token.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_NE(no_token.error_message().find("authorization: Bearer"), std::string::npos)
      << no_token.error_message();
  const grpc::Status denied = permission_denied("Redeem needs a site token");
  EXPECT_EQ(denied.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(denied.error_message(), "Redeem needs a site token");
  const grpc::Status late = deadline_passed();
  EXPECT_EQ(late.error_code(), StatusCode::DEADLINE_EXCEEDED);
  EXPECT_NE(late.error_message().find("deadline"), std::string::npos) << late.error_message();
  const grpc::Status gone = client_gone();
  EXPECT_EQ(gone.error_code(), StatusCode::CANCELLED);
  EXPECT_NE(gone.error_message().find("client"), std::string::npos) << gone.error_message();
  const grpc::Status unknown = health_service_unknown("no.such.Service");
  EXPECT_EQ(unknown.error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(unknown.error_message(), "service \"no.such.Service\" is not served here");
  const grpc::Status stopping = server_stopping();
  EXPECT_EQ(stopping.error_code(), StatusCode::UNAVAILABLE);
  EXPECT_NE(stopping.error_message().find("shutting down"), std::string::npos);
  for (const grpc::Status& s : {no_token, denied, late, gone, unknown, stopping}) {
    EXPECT_TRUE(s.error_details().empty()) << s.error_message();
  }
}

}  // namespace
}  // namespace voucherd
