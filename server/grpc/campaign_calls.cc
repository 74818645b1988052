// campaign_calls.cc — the campaign RPCs (AdminService): CreateCampaign, GetCampaign,
// ListCampaigns, GetCampaignStats and ReconcileCampaign.
#include <algorithm>
#include <map>

#include "engine/campaign_validation.h"
#include "server/grpc/call.h"

namespace voucherd {
namespace {

class CreateCampaignCall final
    : public UnaryCall<CreateCampaignCall, v1::CreateCampaignRequest, v1::Campaign> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kCreateCampaign;
  void request() {
    core_.admin_service.RequestCreateCampaign(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    auto spec = check_request(request_);
    if (!spec) return fail(spec.error());
    // Registering a campaign writes it to the store (Redis: the definition,
    // the stock, the registry): on the admin worker, never on a queue thread.
    const bool posted = core_.admin_worker.post([this, spec = std::move(*spec)]() mutable {
      auto created = core_.engine.create_campaign(
          std::move(spec), request_.replace_before_open() ? StoredDefinition::kReplaceBeforeOpen
                                                          : StoredDefinition::kMustMatch);
      if (!created) {
        const CreateError& e = created.error();
        if (e.outcome == Outcome::kInvalidArgument) {
          return fail(invalid_argument(e.field.field, e.field.message));
        }
        StatusContext ctx;
        ctx.campaign_id = request_.campaign().id();
        ctx.detail = e.field.message;  // the engine's or the store's words
        return fail(to_grpc_status(e.outcome, ctx));
      }
      v1::Campaign& response = new_response();
      campaign_to_proto((*created)->spec(), &response);
      response.set_seed_commitment((*created)->seed_commitment());
      reply(response);
    });
    if (!posted) fail(to_grpc_status(Outcome::kOverloaded, StatusContext{}));
  }
};

class GetCampaignCall final
    : public UnaryCall<GetCampaignCall, v1::GetCampaignRequest, v1::Campaign> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kGetCampaign;
  void request() {
    core_.admin_service.RequestGetCampaign(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (auto refused = check_request(request_)) return fail(*refused);
    const CampaignRuntime* c = named_campaign(request_.campaign_id());
    if (c == nullptr) return;
    v1::Campaign& response = new_response();
    campaign_to_proto(c->spec(), &response);
    response.set_seed_commitment(c->seed_commitment());
    reply(response);
  }
};

class ListCampaignsCall final
    : public UnaryCall<ListCampaignsCall, v1::ListCampaignsRequest, v1::ListCampaignsResponse> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kListCampaigns;
  void request() {
    core_.admin_service.RequestListCampaigns(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    auto page = check_request(request_);
    if (!page) return fail(page.error());
    const int size = page->size;
    const std::optional<std::string>& after = page->after;
    std::vector<const CampaignRuntime*> all = core_.engine.campaigns();
    std::sort(all.begin(), all.end(), [](const CampaignRuntime* a, const CampaignRuntime* b) {
      return a->spec().id < b->spec().id;
    });
    auto it = all.begin();
    if (after) {
      it = std::upper_bound(
          all.begin(), all.end(), *after,
          [](const std::string& id, const CampaignRuntime* c) { return id < c->spec().id; });
    }
    v1::ListCampaignsResponse& response = new_response();
    for (; it != all.end() && response.campaigns_size() < size; ++it) {
      v1::Campaign* out = response.add_campaigns();
      campaign_to_proto((*it)->spec(), out);
      out->set_seed_commitment((*it)->seed_commitment());
    }
    if (it != all.end() && response.campaigns_size() > 0) {
      response.set_next_page_token(
          page_token_of(response.campaigns(response.campaigns_size() - 1).id()));
    }
    reply(response);
  }
};

class GetCampaignStatsCall final
    : public UnaryCall<GetCampaignStatsCall, v1::GetCampaignStatsRequest, v1::CampaignStats> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kGetCampaignStats;
  void request() {
    core_.admin_service.RequestGetCampaignStats(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (auto refused = check_request(request_)) return fail(*refused);
    const CampaignRuntime* c = named_campaign(request_.campaign_id());
    if (c == nullptr) return;
    auto stats = core_.engine.campaign_stats(request_.campaign_id());
    if (!stats) return fail(to_grpc_status(stats.error(), campaign_context(c->spec().id)));
    // Expired vouchers (and, with Redis, the store-wide counts of every
    // replica) are read from the store: on the admin worker.
    const bool posted = core_.admin_worker.post([this, c, local = std::move(*stats)]() mutable {
      auto expired = core_.engine.expired_counts(c->spec());
      if (!expired) return fail_store(expired.error(), c->spec().id);
      local.expired = 0;
      for (std::size_t i = 0; i < local.skus.size(); ++i) {
        local.skus[i].expired = (*expired)[i];
        local.expired += (*expired)[i];
      }
      auto counts = core_.store.read_counts(c->spec());
      if (!counts) return fail_store(counts.error(), c->spec().id);
      if (*counts) apply_counts(**counts, local);
      if (c->spec().mode == CampaignMode::kApplyThenDraw) {
        auto applications = core_.engine.application_counts(*c);
        if (!applications) return fail_store(applications.error(), c->spec().id);
        local.applications = *applications;
      }
      v1::CampaignStats& response = new_response();
      stats_to_proto(local, &response);
      reply(response);
    });
    if (!posted) fail(to_grpc_status(Outcome::kOverloaded, campaign_context(c->spec().id)));
  }
};

class ReconcileCampaignCall final
    : public UnaryCall<ReconcileCampaignCall, v1::ReconcileCampaignRequest,
                       v1::ReconcileCampaignResponse> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kReconcileCampaign;
  void request() {
    core_.admin_service.RequestReconcileCampaign(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (auto refused = check_request(request_)) return fail(*refused);
    const CampaignRuntime* c = named_campaign(request_.campaign_id());
    if (c == nullptr) return;
    const bool posted = core_.admin_worker.post([this, c] {
      auto returned = core_.store.reconcile(c->spec());
      if (!returned) return fail_store(returned.error(), c->spec().id);
      v1::ReconcileCampaignResponse& response = new_response();
      response.set_campaign_id(c->spec().id);
      std::int64_t total = 0;
      for (std::size_t i = 0; i < c->spec().skus.size(); ++i) {
        auto* s = response.add_skus();
        s->set_sku_id(c->spec().skus[i].id);
        s->set_units_returned((*returned)[i]);
        total += (*returned)[i];
      }
      response.set_units_returned(total);
      reply(response);
    });
    if (!posted) fail(to_grpc_status(Outcome::kOverloaded, campaign_context(c->spec().id)));
  }
};

// Beats and leases of every replica, per campaign, read from the store on
// the admin worker; the answering replica is always listed.
class ListReplicasCall final
    : public UnaryCall<ListReplicasCall, v1::ListReplicasRequest, v1::ListReplicasResponse> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kListReplicas;
  void request() {
    core_.admin_service.RequestListReplicas(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (auto refused = check_request(request_)) return fail(*refused);
    std::vector<const CampaignRuntime*> campaigns;
    if (request_.campaign_id().empty()) {
      campaigns = core_.engine.campaigns();
      std::sort(campaigns.begin(), campaigns.end(),
                [](const CampaignRuntime* a, const CampaignRuntime* b) {
                  return a->spec().id < b->spec().id;
                });
    } else {
      const CampaignRuntime* c = named_campaign(request_.campaign_id());
      if (c == nullptr) return;
      campaigns.push_back(c);
    }
    const bool posted = core_.admin_worker.post([this, campaigns = std::move(campaigns)] {
      const std::string self(core_.store.replica_id());
      std::map<std::string, v1::ReplicaInfo> replicas;
      replicas[self].set_replica_id(self);
      for (const CampaignRuntime* c : campaigns) {
        const CampaignSpec& spec = c->spec();
        auto read = core_.store.read_replicas(spec);
        if (!read) return fail_store(read.error(), spec.id);
        for (const ReplicaLeases& r : *read) {
          v1::ReplicaInfo& info = replicas[r.replica_id];
          info.set_replica_id(r.replica_id);
          v1::ReplicaCampaign* out = info.add_campaigns();
          out->set_campaign_id(spec.id);
          if (r.last_beat_ms) timestamp_to_proto(*r.last_beat_ms * 1000, out->mutable_last_beat());
          out->set_beat_age_ms(r.beat_age_ms);
          out->set_lapsed(r.lapsed);
          std::int64_t total = 0;
          for (std::size_t i = 0; i < r.leased.size() && i < spec.skus.size(); ++i) {
            if (r.leased[i] == 0) continue;
            v1::SkuLease* lease = out->add_leases();
            lease->set_sku_id(spec.skus[i].id);
            lease->set_units(r.leased[i]);
            total += r.leased[i];
          }
          out->set_leased_units(total);
        }
      }
      // A stack answer: the entries are moved into it (onto an arena, a
      // move would be a copy).
      v1::ListReplicasResponse response;
      for (auto& [id, info] : replicas) {
        info.set_answering(id == self);
        *response.add_replicas() = std::move(info);
      }
      reply(response);
    });
    if (!posted) fail(to_grpc_status(Outcome::kOverloaded, StatusContext{}));
  }
};

}  // namespace

void post_campaign_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq) {
  post_calls<CreateCampaignCall>(core, cq);
  post_calls<GetCampaignCall>(core, cq);
  post_calls<ListCampaignsCall>(core, cq);
  post_calls<GetCampaignStatsCall>(core, cq);
  post_calls<ReconcileCampaignCall>(core, cq);
  post_calls<ListReplicasCall>(core, cq);
}

}  // namespace voucherd
