#include "server/grpc/call.h"

#include <algorithm>
#include <vector>

namespace voucherd {

Outcome refusal_on_wire(const GrpcServer::Core& core, Outcome outcome) {
  const bool store_down = !core.store.connected();
  return outcome == Outcome::kStockRefilling && store_down ? Outcome::kLogUnavailable : outcome;
}

UnixMicros deadline_us(const grpc::ServerContext& ctx) {
  const auto deadline = ctx.deadline();
  if (deadline - std::chrono::system_clock::now() > std::chrono::hours(24)) return 0;
  return std::chrono::duration_cast<std::chrono::microseconds>(deadline.time_since_epoch()).count();
}

std::string peer_host(const grpc::ServerContext& ctx) {
  std::string peer = ctx.peer();
  if (const auto colon = peer.rfind(':'); colon != std::string::npos && colon > peer.find(':')) {
    peer.resize(colon);
  }
  return peer;
}

namespace {

const char* access_text(Access access) {
  switch (access) {
    case Access::kApp:
      return "an app token";
    case Access::kLookup:
      return "an app, site or admin token";
    case Access::kSite:
      return "a site token";
    case Access::kAdmin:
      return "an admin token";
  }
  return "another token";
}

}  // namespace

std::optional<grpc::Status> check_access(const GrpcServer::Core& core,
                                         const grpc::ServerContext& ctx, Access access,
                                         std::optional<Principal>* principal) {
  if (core.auth == nullptr) return std::nullopt;
  const auto& metadata = ctx.client_metadata();
  const auto it = metadata.find("authorization");
  const std::string_view value = it == metadata.end()
                                     ? std::string_view()
                                     : std::string_view(it->second.data(), it->second.size());
  auto admitted = core.auth->admit(value, access);
  if (admitted) {
    *principal = std::move(*admitted);
    return std::nullopt;
  }
  if (admitted.error() == Authenticator::Refusal::kUnauthenticated) return unauthenticated();
  return permission_denied(std::string("this call needs ") + access_text(access) +
                           "; the token presented has another role");
}

std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point since) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - since)
          .count());
}

namespace {

bool fits_call_arena(const google::protobuf::Descriptor& d,
                     std::vector<const google::protobuf::Descriptor*>& seen) {
  if (std::find(seen.begin(), seen.end(), &d) != seen.end()) return true;
  seen.push_back(&d);
  for (int i = 0; i < d.field_count(); ++i) {
    const google::protobuf::FieldDescriptor& f = *d.field(i);
    if (f.cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (!f.is_repeated() || f.is_map()) return false;
    if (!fits_call_arena(*f.message_type(), seen)) return false;
  }
  return true;
}

}  // namespace

bool fits_call_arena(const google::protobuf::Descriptor& request) {
  std::vector<const google::protobuf::Descriptor*> seen;
  return fits_call_arena(request, seen);
}

std::uint64_t next_call_number() {
  static std::atomic<std::uint64_t> next{0};
  // Relaxed: the number only has to be unique, not ordered with anything.
  return next.fetch_add(1, std::memory_order_relaxed) + 1;
}

std::string wrong_mode_detail(const ClaimEngine& engine, std::string_view campaign_id) {
  const CampaignRuntime* c = engine.find_campaign(campaign_id);
  if (c == nullptr) return {};
  const CampaignMode mode = c->spec().mode;
  const char* rpc = mode == CampaignMode::kLottery         ? "Draw"
                    : mode == CampaignMode::kApplyThenDraw ? "Apply"
                                                           : "Claim";
  return "it is a " + std::string(mode_label(mode)) + " campaign: use " + rpc;
}

StatusContext campaign_context(std::string_view campaign_id) {
  StatusContext ctx;
  ctx.campaign_id = campaign_id;
  ctx.field = "campaign_id";
  return ctx;
}

}  // namespace voucherd
