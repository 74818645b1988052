// request_checks_fuzzer — what every RPC checks of its request before the
// engine or the store see it (server/grpc/request_checks.h, with the
// campaign validation CreateCampaign runs next, and status_map.cc, which
// words every refusal).
//
// An input is one request of one RPC: a byte naming the RPC (kRpcs below),
// then the request message as gRPC receives it on the wire. The target
// decodes it as the server does (a message that does not decode never
// reaches voucherd's code), runs the RPC's check, and asserts:
//  - a request is accepted exactly when its ids and codes follow the rules
//    (a reference written here from the API's description), and a refusal
//    names the first field that breaks them;
//  - every refusal is INVALID_ARGUMENT with a message of at most
//    limits::kErrorMessageBytesMax bytes, valid UTF-8 and free of control
//    characters, and a google.rpc.Status detail that says the same and
//    echoes no more than a bounded prefix of the caller's input;
//  - CreateCampaign: a campaign that converts is accepted by
//    validate_and_normalize() exactly when campaign_problems() finds
//    nothing, which refuses with the first problem and leaves it unchanged;
//    an accepted campaign goes to the wire and back unchanged;
//  - ListCampaigns: a page token is accepted exactly when it is one
//    page_token_of() makes, and names the id it was made of.
//
// The mutator (LLVMFuzzerCustomMutator) changes requests through protobuf
// reflection, field by field (strings, numbers, enums, nested and repeated
// fields), keeping strings valid UTF-8 as a real client's encoder does, and
// sometimes hands the bytes to another RPC or to libFuzzer's own mutations.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/campaign_validation.h"
#include "engine/limits.h"
#include "fuzz/fuzz_check.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/grpc/proto_convert.h"
#include "server/grpc/request_checks.h"
#include "server/grpc/status_map.h"
#include "voucher/v1/voucher.pb.h"

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

namespace voucherd {
namespace {

namespace v1 = voucher::v1;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// ---------------------------------------------------------------------------
// The properties.

// Whether `s` is well-formed UTF-8 (no overlong forms, no surrogates, at
// most U+10FFFF), as protobuf requires of proto3 strings.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      n = 1, cp = b & 0x1Fu;
    } else if ((b & 0xF0) == 0xE0) {
      n = 2, cp = b & 0x0Fu;
    } else if ((b & 0xF8) == 0xF0) {
      n = 3, cp = b & 0x07u;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // the sequence is cut short
    for (std::size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3Fu);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

bool has_control_character(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char ch) {
    const auto b = static_cast<unsigned char>(ch);
    return b < 0x20 || b == 0x7F;
  });
}

// What every refusal of a request check must be. `field`: the field the
// reference says is wrong, when it knows.
void expect_refusal(const grpc::Status& status, std::string_view field = {}) {
  FUZZ_EXPECT(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT,
              "a request check refuses with INVALID_ARGUMENT");
  const std::string& message = status.error_message();
  FUZZ_EXPECT(!message.empty(), "a refusal says why");
  FUZZ_EXPECT(message.size() <= limits::kErrorMessageBytesMax,
              "a refusal's message is bounded: " + std::to_string(message.size()) + " bytes");
  FUZZ_EXPECT(valid_utf8(message), "a refusal's message is UTF-8");
  FUZZ_EXPECT(!has_control_character(message),
              "a refusal's message has no control character: " + quoted_input(message));
  // The detail: code and message again, and an ErrorInfo whose metadata
  // echoes at most a bounded prefix of each value (escaped: 4 bytes for
  // each byte, and the mark of a cut).
  const std::string& details = status.error_details();
  FUZZ_EXPECT(details.size() <= 4096,
              "a refusal's detail is bounded: " + std::to_string(details.size()));
  google::rpc::Status detail;
  FUZZ_EXPECT(detail.ParseFromString(details), "the detail is a google.rpc.Status");
  FUZZ_EXPECT(detail.code() == static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT) &&
                  detail.message() == message,
              "the detail says what the status says");
  bool has_info = false;
  for (const auto& any : detail.details()) {
    google::rpc::ErrorInfo info;
    if (!any.UnpackTo(&info)) continue;
    has_info = true;
    FUZZ_EXPECT(info.domain() == "voucherd" && info.reason() == "INVALID_ARGUMENT",
                "ErrorInfo names voucherd and the reason");
    for (const auto& [key, value] : info.metadata()) {
      FUZZ_EXPECT(valid_utf8(value) && !has_control_character(value),
                  "ErrorInfo metadata is printable UTF-8");
      FUZZ_EXPECT(value.size() <= 4 * limits::kEchoedInputBytesMax + 3,
                  "ErrorInfo metadata echoes a bounded prefix: " + key);
    }
    if (!field.empty()) {
      const auto it = info.metadata().find("field");
      FUZZ_EXPECT(it != info.metadata().end() && it->second == field,
                  "the refusal names the field " + std::string(field));
    }
  }
  FUZZ_EXPECT(has_info, "a refusal carries an ErrorInfo");
}

// The reference: an id rule and a code rule, from the API's description
// (README, proto comments): an id is 1 to 128 bytes without control
// characters, and may be left empty where optional; a code is 1 to 64 bytes.
struct Rule {
  std::string_view field;
  std::string_view value;
  enum Kind : std::uint8_t { kRequiredId, kOptionalId, kCode } kind;
};

bool follows(const Rule& r) {
  if (r.kind == Rule::kCode) return !r.value.empty() && r.value.size() <= limits::kCodeTextBytesMax;
  if (r.value.empty()) return r.kind == Rule::kOptionalId;
  return r.value.size() <= limits::kIdBytesMax && !has_control_character(r.value);
}

// Checks `refusal` against the rules, in the order the RPC applies them.
void expect_rules(const std::optional<grpc::Status>& refusal, std::initializer_list<Rule> rules) {
  const Rule* broken = nullptr;
  for (const Rule& r : rules) {
    if (!follows(r)) {
      broken = &r;
      break;
    }
  }
  if (broken == nullptr) {
    FUZZ_EXPECT(!refusal.has_value(), "a request that follows the rules is accepted: " +
                                          (refusal ? refusal->error_message() : ""));
    return;
  }
  FUZZ_EXPECT(refusal.has_value(),
              "a request that breaks a rule is refused: " + std::string(broken->field));
  expect_refusal(*refusal, broken->field);
}

using R = Rule;

void check(const v1::ClaimRequest& r) {
  expect_rules(check_request(r), {R{"campaign_id", r.campaign_id(), R::kRequiredId},
                                  R{"member_id", r.member_id(), R::kRequiredId},
                                  R{"sku_id", r.sku_id(), R::kOptionalId},
                                  R{"request_id", r.request_id(), R::kOptionalId}});
}

void check(const v1::ClaimBatchRequest& r) {
  const auto refusal = check_request(r);
  const bool counted = r.claims_size() >= 1 &&
                       static_cast<std::size_t>(r.claims_size()) <= limits::kClaimBatchClaimsMax;
  FUZZ_EXPECT(refusal.has_value() != counted, "a batch holds 1 to kClaimBatchClaimsMax claims");
  if (refusal) return expect_refusal(*refusal, "claims");
  for (const v1::ClaimRequest& claim : r.claims()) check(claim);  // each on its own
}

void check(const v1::DrawRequest& r) {
  expect_rules(check_request(r), {R{"campaign_id", r.campaign_id(), R::kRequiredId},
                                  R{"member_id", r.member_id(), R::kRequiredId},
                                  R{"request_id", r.request_id(), R::kRequiredId}});
}

// The ids, then the preferences: at most kApplicationPreferencesMax, each
// an id, each named once.
void check(const v1::ApplyRequest& r) {
  const auto refusal = check_request(r);
  for (const Rule& rule : {R{"campaign_id", r.campaign_id(), R::kRequiredId},
                           R{"member_id", r.member_id(), R::kRequiredId},
                           R{"request_id", r.request_id(), R::kRequiredId}}) {
    if (follows(rule)) continue;
    FUZZ_EXPECT(refusal.has_value(),
                "an Apply with a bad id is refused: " + std::string(rule.field));
    return expect_refusal(*refusal, rule.field);
  }
  const auto& preferred = r.preferred_sku_ids();
  bool ok = static_cast<std::size_t>(preferred.size()) <= limits::kApplicationPreferencesMax;
  for (int i = 0; ok && i < preferred.size(); ++i) {
    ok = follows(R{"preferred_sku_ids", preferred[i], R::kRequiredId}) &&
         std::find(preferred.begin(), preferred.begin() + i, preferred[i]) == preferred.begin() + i;
  }
  FUZZ_EXPECT(refusal.has_value() != ok,
              "an Apply is accepted exactly when its preferences are at most 16 ids, each once");
  if (refusal) expect_refusal(*refusal, "preferred_sku_ids");
}

void check(const v1::GetApplicationRequest& r) {
  expect_rules(check_request(r), {R{"campaign_id", r.campaign_id(), R::kRequiredId},
                                  R{"member_id", r.member_id(), R::kRequiredId}});
}

void check(const v1::GetVoucherRequest& r) {
  expect_rules(check_request(r), {R{"code", r.code(), R::kCode}});
}

void check(const v1::RedeemRequest& r) {
  expect_rules(check_request(r),
               {R{"code", r.code(), R::kCode}, R{"site_id", r.site_id(), R::kRequiredId},
                R{"request_id", r.request_id(), R::kOptionalId}});
}

void check(const v1::ListMemberVouchersRequest& r) {
  expect_rules(check_request(r), {R{"member_id", r.member_id(), R::kRequiredId},
                                  R{"campaign_id", r.campaign_id(), R::kOptionalId}});
}

void check(const v1::CancelVoucherRequest& r) {
  expect_rules(check_request(r), {R{"code", r.code(), R::kCode}});
}

void check(const v1::ExportRedemptionsRequest& r) {
  expect_rules(check_request(r), {R{"campaign_id", r.campaign_id(), R::kRequiredId},
                                  R{"site_id", r.site_id(), R::kOptionalId}});
}

void check(const v1::ListReplicasRequest& r) {
  expect_rules(check_request(r), {R{"campaign_id", r.campaign_id(), R::kOptionalId}});
}

// The requests that name one campaign and nothing else to check.
template <class Request>
void check_named(const Request& r) {
  expect_rules(check_request(r), {R{"campaign_id", r.campaign_id(), R::kRequiredId}});
}

// Whether validate_and_normalize left `after` as `before` was. The
// defaulted == is not enough: a NaN win probability (refused) is not equal
// to itself, so the one double is compared by its bits.
bool unchanged(CampaignSpec before, CampaignSpec after) {
  const bool same_probability = std::bit_cast<std::uint64_t>(before.lottery.win_probability) ==
                                std::bit_cast<std::uint64_t>(after.lottery.win_probability);
  before.lottery.win_probability = after.lottery.win_probability = 0;
  return same_probability && before == after;
}

void check(const v1::CreateCampaignRequest& r) {
  auto spec = check_request(r);
  if (!spec) {
    expect_refusal(spec.error());
    FUZZ_EXPECT(!r.has_campaign() || !campaign_from_proto(r.campaign()),
                "only a missing campaign or one that does not convert is refused here");
    return;
  }
  // What the engine does next (ClaimEngine::create_campaign), as pure functions.
  const std::vector<InvalidField> problems = campaign_problems(*spec);
  CampaignSpec normalized = *spec;
  const auto valid = validate_and_normalize(normalized);
  FUZZ_EXPECT(valid.has_value() == problems.empty(),
              "validate_and_normalize accepts exactly what campaign_problems finds nothing in");
  if (!valid) {
    FUZZ_EXPECT(unchanged(*spec, normalized), "a refused campaign is left unchanged");
    FUZZ_EXPECT(valid.error().field == problems.front().field &&
                    valid.error().message == problems.front().message,
                "validate_and_normalize refuses with the first problem");
    // CreateCampaign answers it as the call does.
    expect_refusal(invalid_argument(valid.error().field, valid.error().message));
    return;
  }
  FUZZ_EXPECT(campaign_problems(normalized).empty(), "a normalized campaign has no problem");
  CampaignSpec again = normalized;
  FUZZ_EXPECT(validate_and_normalize(again).has_value() && again == normalized,
              "normalizing is idempotent");
  FUZZ_EXPECT(id_is_valid(normalized.id), "an accepted campaign's id is valid");
  for (const SiteSpec& site : normalized.sites) FUZZ_EXPECT(id_is_valid(site.id), "site id");
  for (const SkuSpec& sku : normalized.skus) FUZZ_EXPECT(id_is_valid(sku.id), "SKU id");
  v1::Campaign wire;
  campaign_to_proto(normalized, &wire);
  auto back = campaign_from_proto(wire);
  FUZZ_EXPECT(back.has_value() && *back == normalized,
              "an accepted campaign goes to the wire and back unchanged");
}

void check(const v1::ListCampaignsRequest& r) {
  auto page = check_request(r);
  if (r.page_size() < 0) {
    FUZZ_EXPECT(!page, "a negative page size is refused");
    return expect_refusal(page.error(), "page_size");
  }
  const std::optional<std::string> id =
      r.page_token().empty() ? std::nullopt : id_of_page_token(r.page_token());
  if (!r.page_token().empty() && !id) {
    FUZZ_EXPECT(!page, "a page token voucherd did not make is refused");
    return expect_refusal(page.error(), "page_token");
  }
  FUZZ_EXPECT(page.has_value(), "a page asked for properly is served");
  FUZZ_EXPECT(page->size >= 1 && page->size <= kListPageSizeMax, "a page holds 1 to 1000");
  FUZZ_EXPECT(page->size == (r.page_size() == 0 ? kListPageSizeDefault
                                                : std::min(r.page_size(), kListPageSizeMax)),
              "the page size asked for, bounded");
  FUZZ_EXPECT(page->after == id, "the page starts after the token's id");
  if (id) {
    FUZZ_EXPECT(page_token_of(*id) == r.page_token(), "a token voucherd accepts is one it makes");
    FUZZ_EXPECT(!id->empty() && id->size() <= limits::kIdBytesMax, "a token names an id");
  }
}

// Any id: its page token names it.
void check_page_token_of(std::string_view id) {
  if (id.empty() || id.size() > limits::kIdBytesMax) return;
  const std::string token = page_token_of(id);
  FUZZ_EXPECT(id_of_page_token(token) == std::string(id), "a page token names its id");
  FUZZ_EXPECT(valid_utf8(token) && !has_control_character(token), "a page token is printable");
}

// ---------------------------------------------------------------------------
// The RPCs: an input's first byte names one.

struct Rpc {
  const char* name;
  const Message* prototype;
  void (*run)(const Message&);
};

template <class Request>
void run_check(const Message& m) {
  check(static_cast<const Request&>(m));
}
template <class Request>
void run_named(const Message& m) {
  check_named(static_cast<const Request&>(m));
}

const Rpc kRpcs[] = {
    {"Claim", &v1::ClaimRequest::default_instance(), run_check<v1::ClaimRequest>},
    {"ClaimBatch", &v1::ClaimBatchRequest::default_instance(), run_check<v1::ClaimBatchRequest>},
    {"Draw", &v1::DrawRequest::default_instance(), run_check<v1::DrawRequest>},
    {"GetVoucher", &v1::GetVoucherRequest::default_instance(), run_check<v1::GetVoucherRequest>},
    {"Redeem", &v1::RedeemRequest::default_instance(), run_check<v1::RedeemRequest>},
    {"ListMemberVouchers", &v1::ListMemberVouchersRequest::default_instance(),
     run_check<v1::ListMemberVouchersRequest>},
    {"CreateCampaign", &v1::CreateCampaignRequest::default_instance(),
     run_check<v1::CreateCampaignRequest>},
    {"GetCampaign", &v1::GetCampaignRequest::default_instance(), run_named<v1::GetCampaignRequest>},
    {"ListCampaigns", &v1::ListCampaignsRequest::default_instance(),
     run_check<v1::ListCampaignsRequest>},
    {"GetCampaignStats", &v1::GetCampaignStatsRequest::default_instance(),
     run_named<v1::GetCampaignStatsRequest>},
    {"ReconcileCampaign", &v1::ReconcileCampaignRequest::default_instance(),
     run_named<v1::ReconcileCampaignRequest>},
    {"CancelVoucher", &v1::CancelVoucherRequest::default_instance(),
     run_check<v1::CancelVoucherRequest>},
    {"ExportRedemptions", &v1::ExportRedemptionsRequest::default_instance(),
     run_check<v1::ExportRedemptionsRequest>},
    {"RevealSeed", &v1::RevealSeedRequest::default_instance(), run_named<v1::RevealSeedRequest>},
    {"ExportDraws", &v1::ExportDrawsRequest::default_instance(), run_named<v1::ExportDrawsRequest>},
    {"ListReplicas", &v1::ListReplicasRequest::default_instance(),
     run_check<v1::ListReplicasRequest>},
    // Added last, so that the corpus' first bytes keep naming their RPCs.
    {"Apply", &v1::ApplyRequest::default_instance(), run_check<v1::ApplyRequest>},
    {"GetApplication", &v1::GetApplicationRequest::default_instance(),
     run_check<v1::GetApplicationRequest>},
    {"ExportApplications", &v1::ExportApplicationsRequest::default_instance(),
     run_named<v1::ExportApplicationsRequest>},
};
constexpr std::size_t kRpcCount = sizeof(kRpcs) / sizeof(kRpcs[0]);

// The request an input holds, decoded as gRPC decodes it; nullptr when it
// does not decode.
std::unique_ptr<Message> decode(const std::uint8_t* data, std::size_t size, std::size_t* rpc) {
  if (size == 0) return nullptr;
  *rpc = data[0] % kRpcCount;
  std::unique_ptr<Message> m(kRpcs[*rpc].prototype->New());
  if (!m->ParseFromArray(data + 1, static_cast<int>(size - 1))) return nullptr;
  return m;
}

// ---------------------------------------------------------------------------
// The mutator.

// `s` made valid UTF-8: each byte that does not start or continue a
// well-formed sequence becomes '?'.
std::string to_utf8(std::string s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = 1;
    while (n <= 4 && i + n <= s.size() && !valid_utf8(std::string_view(s).substr(i, n))) ++n;
    if (n <= 4 && i + n <= s.size()) {
      i += n;
    } else {
      s[i] = '?';
      ++i;
    }
  }
  return s;
}

class Mutator {
 public:
  explicit Mutator(unsigned seed) : rng_(seed) {}

  void mutate(Message& m, int depth) {
    const auto* d = m.GetDescriptor();
    if (d->field_count() == 0) return;
    const FieldDescriptor* f = d->field(static_cast<int>(below(d->field_count())));
    if (f->is_repeated()) return mutate_repeated(m, f, depth);
    const Reflection* r = m.GetReflection();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(&m, f, mutate_string(r->GetString(m, f)));
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(&m, f, static_cast<std::int32_t>(mutate_int(r->GetInt32(m, f))));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(&m, f, mutate_int(r->GetInt64(m, f)));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(&m, f, static_cast<std::uint32_t>(mutate_int(r->GetUInt32(m, f))));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(
            &m, f,
            static_cast<std::uint64_t>(mutate_int(static_cast<std::int64_t>(r->GetUInt64(m, f)))));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->SetDouble(&m, f, mutate_double(r->GetDouble(m, f)));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->SetFloat(&m, f, static_cast<float>(mutate_double(r->GetFloat(m, f))));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(&m, f, !r->GetBool(m, f));
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnumValue(&m, f, static_cast<int>(below(8)) - 1);  // known values and beyond
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (below(8) == 0) {
          r->ClearField(&m, f);
        } else if (depth < 4) {
          mutate(*r->MutableMessage(&m, f), depth + 1);
        }
        break;
    }
  }

  std::size_t below(std::size_t n) { return n == 0 ? 0 : rng_() % n; }

 private:
  void mutate_repeated(Message& m, const FieldDescriptor* f, int depth) {
    const Reflection* r = m.GetReflection();
    const int n = r->FieldSize(m, f);
    const std::size_t op = below(6);
    if (op == 0 && n > 0) {  // drop the last
      r->RemoveLast(&m, f);
    } else if (op == 1 && n > 0 && n < 1100) {  // copy one to the end
      copy_element(m, f, static_cast<int>(below(static_cast<std::size_t>(n))));
    } else if (op == 2 && n > 1) {
      r->SwapElements(&m, f, static_cast<int>(below(static_cast<std::size_t>(n))), n - 1);
    } else if (n == 0 || op == 3) {  // a new element
      add_element(m, f);
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && depth < 4) {
      mutate(
          *r->MutableRepeatedMessage(&m, f, static_cast<int>(below(static_cast<std::size_t>(n)))),
          depth + 1);
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      const int i = static_cast<int>(below(static_cast<std::size_t>(n)));
      r->SetRepeatedString(&m, f, i, mutate_string(r->GetRepeatedString(m, f, i)));
    } else {
      r->RemoveLast(&m, f);
    }
  }

  void copy_element(Message& m, const FieldDescriptor* f, int i) {
    const Reflection* r = m.GetReflection();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        std::unique_ptr<Message> copy(r->GetRepeatedMessage(m, f, i).New());
        copy->CopyFrom(r->GetRepeatedMessage(m, f, i));
        r->AddAllocatedMessage(&m, f, copy.release());
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING:
        r->AddString(&m, f, r->GetRepeatedString(m, f, i));
        break;
      default:
        add_element(m, f);
        break;
    }
  }

  void add_element(Message& m, const FieldDescriptor* f) {
    const Reflection* r = m.GetReflection();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE:
        mutate(*r->AddMessage(&m, f), 4);
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->AddString(&m, f, mutate_string(""));
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        r->AddInt32(&m, f, static_cast<std::int32_t>(mutate_int(0)));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->AddInt64(&m, f, mutate_int(0));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->AddDouble(&m, f, mutate_double(0));
        break;
      default:
        break;
    }
  }

  std::string mutate_string(const std::string& in) {
    switch (below(16)) {
      case 0:
        return {};
      case 1:  // just past a bound: ids, codes, the echoed prefix
        return std::string(limits::kIdBytesMax + below(3), static_cast<char>('a' + below(26)));
      case 2:  // far past every bound (issue 17's attack sent 70 KB; any size past the
               // bounds tells the same, and the fuzz runs stay fast)
        return std::string(limits::kIdBytesMax * (2 + below(30)), 'x') + in;
      case 3: {  // a multi-byte character across the echoed prefix's cut
        std::string s(limits::kEchoedInputBytesMax - below(4), 'a');
        for (int i = 0; i < 8; ++i) s += "\xe6\xb8\xa9";  // 温
        return s;
      }
      case 4: {  // a control character somewhere (inside a character, that one breaks)
        std::string s = in;
        s.insert(below(s.size() + 1), 1, static_cast<char>(below(32)));
        return to_utf8(std::move(s));
      }
      default: {
        std::vector<std::uint8_t> buf(in.begin(), in.end());
        const std::size_t max_size = std::max<std::size_t>(2 * buf.size(), 64);
        buf.resize(max_size);
        const std::size_t n = LLVMFuzzerMutate(buf.data(), std::min(in.size(), max_size), max_size);
        return to_utf8(std::string(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n)));
      }
    }
  }

  std::int64_t mutate_int(std::int64_t v) {
    static constexpr std::int64_t kInteresting[] = {0,
                                                    1,
                                                    -1,
                                                    2,
                                                    50,
                                                    999,
                                                    1000,
                                                    1001,
                                                    1024,
                                                    INT32_MAX,
                                                    INT32_MIN,
                                                    INT64_MAX,
                                                    INT64_MIN,
                                                    86'400,
                                                    253'402'300'799,
                                                    253'402'300'800,
                                                    -62'135'596'800,
                                                    -62'135'596'801};
    switch (below(4)) {
      case 0:
        return kInteresting[below(std::size(kInteresting))];
      case 1:
        // Wraps around at the ends instead of overflowing.
        return static_cast<std::int64_t>(static_cast<std::uint64_t>(v) + below(21) -
                                         std::uint64_t{10});
      case 2:
        return static_cast<std::int64_t>(rng_());
      default:
        return static_cast<std::int64_t>(static_cast<std::uint64_t>(v) ^
                                         (std::uint64_t{1} << below(64)));
    }
  }

  double mutate_double(double v) {
    static constexpr double kInteresting[] = {0.0, 1.0, -1.0, 0.5, 1e-9, 1.0000001, 2.0, 1e308};
    switch (below(3)) {
      case 0:
        return kInteresting[below(std::size(kInteresting))];
      case 1:
        return v * 0.5;
      default:
        return static_cast<double>(rng_() % 1'000'001) / 1e6;
    }
  }

  std::minstd_rand rng_;
};

}  // namespace
}  // namespace voucherd

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Inputs that are not valid UTF-8 are refused by the decoder, as gRPC
  // refuses them; protobuf would log each one.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace voucherd;
  std::size_t rpc = 0;
  const auto request = decode(data, size, &rpc);
  if (!request) return -1;  // gRPC would refuse it before voucherd's code: not worth keeping
  kRpcs[rpc].run(*request);
  // Every string of the request as an id of a page token.
  const auto* d = request->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING && !f->is_repeated()) {
      check_page_token_of(request->GetReflection()->GetString(*request, f));
    }
  }
  return 0;
}

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                               std::size_t max_size, unsigned int seed) {
  using namespace voucherd;
  Mutator mutator(seed);
  std::size_t rpc = 0;
  auto request = decode(data, size, &rpc);
  // One time in 16 (and for what does not decode): libFuzzer's own byte
  // mutations, which also try what a hostile client's encoder might send.
  if (!request || mutator.below(16) == 0) return LLVMFuzzerMutate(data, size, max_size);
  if (mutator.below(16) == 0) {  // the same fields, another RPC
    data[0] = static_cast<std::uint8_t>(mutator.below(kRpcCount));
    return size;
  }
  const std::size_t rounds = 1 + mutator.below(3);
  for (std::size_t i = 0; i < rounds; ++i) mutator.mutate(*request, 0);
  std::string out;
  if (!request->SerializeToString(&out) || out.size() + 1 > max_size) return size;
  data[0] = static_cast<std::uint8_t>(rpc);
  std::memcpy(data + 1, out.data(), out.size());
  return out.size() + 1;
}
