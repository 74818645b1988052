#include "server/grpc/status_map.h"

#include <absl/container/flat_hash_map.h>

#include "engine/limits.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace voucherd {
namespace {

constexpr const char* kDomain = "voucherd";
constexpr int kRetryDelayMs = 200;  // a hint for shed load; callers add jitter

// Whether `b` starts a UTF-8 sequence (is not a continuation byte).
bool starts_char(char b) { return (static_cast<unsigned char>(b) & 0xC0) != 0x80; }

// The first at most `bytes_max` bytes of `s`, cut back to a character
// boundary: a cut inside a UTF-8 sequence would make the proto3 strings of
// the detail unreadable to the client.
std::string_view prefix_of(std::string_view s, std::size_t bytes_max) {
  if (s.size() <= bytes_max) return s;
  std::size_t n = bytes_max;
  while (n > 0 && !starts_char(s[n])) --n;
  return s.substr(0, n);
}

// Appends `s` with control characters as \xNN (and, when `in_quotes`, a
// quote or backslash behind a backslash).
void append_escaped(std::string& out, std::string_view s, bool in_quotes) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char ch : s) {
    const auto b = static_cast<unsigned char>(ch);
    if (b < 0x20 || b == 0x7F) {
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
    } else if (in_quotes && (ch == '"' || ch == '\\')) {
      out.push_back('\\');
      out.push_back(ch);
    } else {
      out.push_back(ch);
    }
  }
}

// A metadata value: the caller's input as it is when short and printable,
// else its escaped prefix marked with "…" when cut.
std::string metadata_value(std::string_view s) {
  const std::string_view head = prefix_of(s, limits::kEchoedInputBytesMax);
  std::string out;
  append_escaped(out, head, false);
  if (head.size() < s.size()) out += "\u2026";
  return out;
}

// The whole message, printable and bounded (a backstop behind
// quoted_input(): messages also quote values that no single rule bounds or
// escapes, such as the ids of a campaign definition that the engine or the
// proto conversion names in their refusals): control characters as \xNN,
// then cut at limits::kErrorMessageBytesMax.
std::string bounded_message(std::string message) {
  if (control_character_at(message) != std::string_view::npos) {
    std::string escaped;
    append_escaped(escaped, message, false);
    message = std::move(escaped);
  }
  if (message.size() <= limits::kErrorMessageBytesMax) return message;
  constexpr std::string_view kCut = "\u2026 (message cut)";
  std::string out(prefix_of(message, limits::kErrorMessageBytesMax - kCut.size()));
  out += kCut;
  return out;
}

grpc::Status make(grpc::StatusCode code, std::string raw_message, Outcome reason,
                  const StatusContext& ctx, bool retry_hint) {
  std::string message = bounded_message(std::move(raw_message));
  google::rpc::Status detail;
  detail.set_code(static_cast<int>(code));
  detail.set_message(message);
  google::rpc::ErrorInfo info;
  info.set_reason(wire_reason(reason));
  info.set_domain(kDomain);
  auto& metadata = *info.mutable_metadata();
  if (!ctx.campaign_id.empty()) metadata["campaign_id"] = metadata_value(ctx.campaign_id);
  if (!ctx.sku_id.empty()) metadata["sku_id"] = metadata_value(ctx.sku_id);
  if (!ctx.site_id.empty()) metadata["site_id"] = metadata_value(ctx.site_id);
  if (!ctx.field.empty()) metadata["field"] = metadata_value(ctx.field);
  detail.add_details()->PackFrom(info);
  if (retry_hint) {
    const std::chrono::milliseconds delay =
        ctx.retry_delay.count() > 0 ? ctx.retry_delay : std::chrono::milliseconds(kRetryDelayMs);
    google::rpc::RetryInfo retry;
    retry.mutable_retry_delay()->set_seconds(delay.count() / 1000);
    retry.mutable_retry_delay()->set_nanos(static_cast<int>(delay.count() % 1000) * 1'000'000);
    detail.add_details()->PackFrom(retry);
  }
  return grpc::Status(code, std::move(message), detail.SerializeAsString());
}

std::string with_detail(std::string message, const StatusContext& ctx) {
  if (!ctx.detail.empty()) message += ": " + ctx.detail;
  return message;
}

}  // namespace

std::string quoted_input(std::string_view s) {
  const std::string_view head = prefix_of(s, limits::kEchoedInputBytesMax);
  std::string out = "\"";
  append_escaped(out, head, true);
  if (head.size() < s.size()) {
    out += "\u2026\" (" + std::to_string(s.size()) + " bytes)";
  } else {
    out += "\"";
  }
  return out;
}

const char* wire_reason(Outcome outcome) {
  return outcome_name(outcome == Outcome::kSkuSoldOut ? Outcome::kSoldOut : outcome);
}

namespace {

grpc::Status make_status(Outcome outcome, const StatusContext& ctx);

// Whether the answer for `outcome` is one a storm repeats for a campaign that
// exists (its sell-out, its window, its mode, a member's day of draws): the
// same text for every press, so worth keeping.
bool repeats(Outcome outcome, const StatusContext& ctx) {
  switch (outcome) {
    case Outcome::kSoldOut:
    case Outcome::kSkuSoldOut:
    case Outcome::kNotOpen:
    case Outcome::kClosed:
    case Outcome::kWrongMode:
    case Outcome::kStockRefilling:
    case Outcome::kDrawLimitReached:
      return ctx.retry_delay.count() == 0 && ctx.site_id.empty() && ctx.field.empty() &&
             ctx.campaign_id.size() <= limits::kIdBytesMax &&
             ctx.sku_id.size() <= limits::kIdBytesMax && ctx.detail.size() <= 256;
    default:
      return false;
  }
}

// Answers made for repeats(), per thread (each completion-queue thread, and a
// claim log's writer thread, keeps its own: no lock). Keyed by the outcome
// and the context's texts. Bounded: a caller pressing a sold-out campaign
// with ever new SKU ids only makes this start again now and then.
constexpr std::size_t kRepeatedAnswersMax = 512;

const grpc::Status& repeated_answer(Outcome outcome, const StatusContext& ctx) {
  thread_local absl::flat_hash_map<std::string, grpc::Status> answers;
  thread_local std::string key;  // reused: no allocation once warm
  key.clear();
  key.push_back(static_cast<char>(outcome));
  key.append(ctx.campaign_id);
  key.push_back('\0');
  key.append(ctx.sku_id);
  key.push_back('\0');
  key.append(ctx.detail);
  if (const auto it = answers.find(key); it != answers.end()) return it->second;
  if (answers.size() >= kRepeatedAnswersMax) answers.clear();
  return answers.emplace(key, make_status(outcome, ctx)).first->second;
}

}  // namespace

grpc::Status to_grpc_status(Outcome outcome, const StatusContext& ctx) {
  // A sold-out storm asks for the same refusal again and again: it is made
  // once (message, ErrorInfo, serialized details) and copied after.
  if (repeats(outcome, ctx)) return repeated_answer(outcome, ctx);
  return make_status(outcome, ctx);
}

namespace {

grpc::Status make_status(Outcome outcome, const StatusContext& ctx) {
  using grpc::StatusCode;
  switch (outcome) {
    case Outcome::kOk:
    case Outcome::kAlreadyClaimed:
      return grpc::Status::OK;
    case Outcome::kInvalidArgument:
      return make(StatusCode::INVALID_ARGUMENT,
                  with_detail(metadata_value(ctx.field) + " must be 1 to " +
                                  std::to_string(limits::kIdBytesMax) + " bytes",
                              ctx),
                  outcome, ctx, false);
    case Outcome::kRequestIdRequired:
      return make(StatusCode::INVALID_ARGUMENT,
                  with_detail("request_id is required: campaign " + quoted_input(ctx.campaign_id) +
                                  " allows more than one pack per member, and request_id tells a "
                                  "retry from a new claim",
                              ctx),
                  outcome, ctx, false);
    case Outcome::kMistypedCode:
      return make(StatusCode::INVALID_ARGUMENT,
                  with_detail("code looks mistyped: expected 30 characters of 0-9 and A-Z "
                              "(without I, L, O, U) whose check character matches",
                              ctx),
                  outcome, ctx, false);
    case Outcome::kCampaignNotFound:
      return make(StatusCode::NOT_FOUND,
                  with_detail("campaign " + quoted_input(ctx.campaign_id) + " not found", ctx),
                  outcome, ctx, false);
    case Outcome::kSkuNotFound:
      return make(StatusCode::NOT_FOUND,
                  with_detail("SKU " + quoted_input(ctx.sku_id) + " not found in campaign " +
                                  quoted_input(ctx.campaign_id),
                              ctx),
                  outcome, ctx, false);
    case Outcome::kVoucherNotFound:
      return make(StatusCode::NOT_FOUND, with_detail("no voucher with this code", ctx), outcome,
                  ctx, false);
    case Outcome::kNotOpen:
      return make(
          StatusCode::FAILED_PRECONDITION,
          with_detail("campaign " + quoted_input(ctx.campaign_id) + " is not open yet", ctx),
          outcome, ctx, false);
    case Outcome::kClosed:
      return make(StatusCode::FAILED_PRECONDITION,
                  with_detail("campaign " + quoted_input(ctx.campaign_id) + " is closed", ctx),
                  outcome, ctx, false);
    case Outcome::kWrongMode:
      return make(
          StatusCode::FAILED_PRECONDITION,
          with_detail("campaign " + quoted_input(ctx.campaign_id) + " is of another mode", ctx),
          outcome, ctx, false);
    case Outcome::kSoldOut:
      return make(StatusCode::FAILED_PRECONDITION,
                  with_detail("campaign " + quoted_input(ctx.campaign_id) + " is sold out", ctx),
                  outcome, ctx, false);
    case Outcome::kSkuSoldOut:
      return make(StatusCode::FAILED_PRECONDITION,
                  with_detail("SKU " + quoted_input(ctx.sku_id) + " of campaign " +
                                  quoted_input(ctx.campaign_id) + " is sold out",
                              ctx),
                  Outcome::kSoldOut, ctx, false);
    case Outcome::kTooManyWaiters:
      return make(StatusCode::RESOURCE_EXHAUSTED,
                  with_detail("too many presses of one member in flight; retry later", ctx),
                  outcome, ctx, true);
    case Outcome::kPressRateLimited:
      return make(
          StatusCode::RESOURCE_EXHAUSTED,
          with_detail("this member presses too often in campaign " + quoted_input(ctx.campaign_id) +
                          "; press again after the RetryInfo delay",
                      ctx),
          outcome, ctx, true);
    case Outcome::kOverloaded:
      return make(StatusCode::RESOURCE_EXHAUSTED,
                  with_detail("voucherd is overloaded; retry later", ctx), outcome, ctx, true);
    case Outcome::kStockRefilling:
      return make(StatusCode::RESOURCE_EXHAUSTED,
                  with_detail("campaign " + quoted_input(ctx.campaign_id) +
                                  ": this replica is refilling its stock; retry shortly",
                              ctx),
                  outcome, ctx, true);
    case Outcome::kLogUnavailable:
      return make(StatusCode::UNAVAILABLE,
                  with_detail("the claim log did not confirm the write; retrying is safe", ctx),
                  outcome, ctx, true);
    case Outcome::kCampaignExists:
      return make(StatusCode::ALREADY_EXISTS,
                  with_detail("campaign " + quoted_input(ctx.campaign_id) +
                                  " already exists with another definition",
                              ctx),
                  outcome, ctx, false);
    case Outcome::kWrongSite:
      return make(
          StatusCode::PERMISSION_DENIED,
          with_detail("this voucher is not redeemable by site " + quoted_input(ctx.site_id), ctx),
          outcome, ctx, false);
    case Outcome::kVoucherExpired:
      return make(StatusCode::FAILED_PRECONDITION, with_detail("this voucher has expired", ctx),
                  outcome, ctx, false);
    case Outcome::kVoucherCancelled:
      return make(StatusCode::FAILED_PRECONDITION, with_detail("this voucher was cancelled", ctx),
                  outcome, ctx, false);
    case Outcome::kAlreadyRedeemed:
      return make(StatusCode::FAILED_PRECONDITION,
                  with_detail("this voucher was already redeemed", ctx), outcome, ctx, false);
    case Outcome::kRedeemThrottled:
      return make(StatusCode::RESOURCE_EXHAUSTED,
                  with_detail("too many codes that are not vouchers (redeemed or looked up) from "
                              "this caller",
                              ctx),
                  outcome, ctx, true);
    case Outcome::kDrawLimitReached:
      return make(StatusCode::RESOURCE_EXHAUSTED,
                  with_detail("the member has used every draw of their day in campaign " +
                                  quoted_input(ctx.campaign_id),
                              ctx),
                  outcome, ctx, false);
    case Outcome::kCampaignNotOver:
      return make(StatusCode::FAILED_PRECONDITION,
                  with_detail("campaign " + quoted_input(ctx.campaign_id) +
                                  " is not over: its seed is revealed once it is",
                              ctx),
                  outcome, ctx, false);
    case Outcome::kApplicationNotFound:
      return make(
          StatusCode::NOT_FOUND,
          with_detail("this member has not applied to campaign " + quoted_input(ctx.campaign_id),
                      ctx),
          outcome, ctx, false);
    case Outcome::kApplicationsFull:
      return make(
          StatusCode::RESOURCE_EXHAUSTED,
          with_detail("campaign " + quoted_input(ctx.campaign_id) +
                          " takes no more applications: it holds " +
                          std::to_string(limits::kApplicationsPerCampaignMax) + ", the limit",
                      ctx),
          outcome, ctx, false);
    case Outcome::kInternal:
      break;
  }
  return make(StatusCode::INTERNAL, with_detail("internal error", ctx), Outcome::kInternal, ctx,
              false);
}

}  // namespace

grpc::Status invalid_argument(std::string_view field, std::string_view message) {
  StatusContext ctx;
  ctx.field = field;
  // The message always names the field, so a person reading a log line knows
  // what to fix without decoding the ErrorInfo.
  std::string text(message);
  if (text.find(field) == std::string::npos) text = std::string(field) + ": " + text;
  return make(grpc::StatusCode::INVALID_ARGUMENT, std::move(text), Outcome::kInvalidArgument, ctx,
              false);
}

grpc::Status invalid_id(std::string_view field, std::string_view id, IdProblem problem) {
  return invalid_argument(field, id_problem_text(field, id, problem));
}

grpc::Status unauthenticated() {
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "missing or unknown bearer token: send \"authorization: Bearer <token>\"");
}

grpc::Status permission_denied(std::string message) {
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, bounded_message(std::move(message)));
}

grpc::Status deadline_passed() {
  return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                      "the call's deadline passed before voucherd could start it");
}

grpc::Status client_gone() {
  return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
}

grpc::Status health_service_unknown(std::string_view service) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      "service " + quoted_input(service) + " is not served here");
}

grpc::Status server_stopping() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "voucherd is shutting down");
}

}  // namespace voucherd
