#include "server/ops/ops_server.h"

#include <nlohmann/json.hpp>

#include "server/base/thread_name.h"
#include "server/ops/asio.h"
#include "server/ops/dashboard.h"
#include "server/ops/series.h"

namespace voucherd {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// One connection: read a request, answer it, keep alive while asked.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, OpsServer& server) : stream_(std::move(socket)), server_(server) {}
  void run() { read(); }

 private:
  void read() {
    request_ = {};
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->close();
                       self->answer();
                     });
  }

  void answer() {
    const std::string_view method(request_.method_string().data(), request_.method_string().size());
    const std::string_view target(request_.target().data(), request_.target().size());
    const auto header = request_[http::field::authorization];
    const std::string_view authorization(header.data(), header.size());
    // The probes and refusals (401) are answered here, without waiting
    // behind store reads.
    if (auto r = server_.answer_before_serving(method, target, authorization)) {
      return respond(std::move(*r));
    }
    if (!OpsServer::reads_store(target)) return respond(server_.serve(target));
    // Answered on the store reader's thread, then written from this one.
    asio::post(server_.store_reader(), [self = shared_from_this(), target = std::string(target)] {
      auto r = self->server_.serve(target);
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r)]() mutable { self->respond(std::move(r)); });
    });
  }

  void respond(OpsServer::Response r) {
    response_ = {};
    response_.version(request_.version());
    response_.result(static_cast<http::status>(r.status));
    response_.set(http::field::content_type, r.content_type);
    response_.set(http::field::cache_control, "no-store");
    if (r.challenge) {
      response_.insert(http::field::www_authenticate, R"(Bearer realm="voucherd ops")");
      response_.insert(http::field::www_authenticate,
                       R"(Basic realm="voucherd ops", charset="UTF-8")");
    }
    response_.keep_alive(request_.keep_alive());
    response_.body() = r.body;
    response_.prepare_payload();
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (ec || !self->response_.keep_alive()) return self->close();
                        self->read();
                      });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  OpsServer& server_;
};

std::string rfc3339(UnixMicros us) {
  const std::time_t secs = static_cast<std::time_t>(us / kMicrosPerSecond);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

struct OpsServer::Impl {
  // The ops thread: accepts, reads requests, answers /healthz and /readyz,
  // writes every answer. Nothing on it waits for the store.
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  // The store reader: what reads the store (/status, /metrics, the
  // dashboard's samples and /series) runs here, so that a store that hangs
  // until its I/O timeout (a link fault, before it is noticed) does not
  // hold /readyz and /healthz up with it. Declared after `io`, so destroyed
  // first: handlers still queued here hold sessions whose sockets are io's.
  asio::io_context store_reader{1};
  asio::steady_timer sampler{store_reader};
  Series series;  // the store reader's alone
  std::thread thread;
  std::thread store_thread;

  void sample_every_second(OpsServer& server) {
    sampler.expires_after(std::chrono::seconds(1));
    sampler.async_wait([this, &server](beast::error_code ec) {
      if (ec) return;  // stopped
      server.sample_series();
      sample_every_second(server);
    });
  }

  void accept(OpsServer& server) {
    acceptor.async_accept([this, &server](beast::error_code ec, tcp::socket socket) {
      if (ec) return;  // stopped
      std::make_shared<Session>(std::move(socket), server)->run();
      accept(server);
    });
  }
};

OpsServer::OpsServer(ClaimEngine& engine, OpsServerOptions options)
    : engine_(engine),
      options_(std::move(options)),
      started_(std::chrono::steady_clock::now()),
      impl_(std::make_unique<Impl>()) {}

OpsServer::~OpsServer() { stop(); }

std::expected<int, std::string> OpsServer::start() {
  const auto colon = options_.listen.rfind(':');
  if (colon == std::string::npos) {
    return std::unexpected("--ops-listen must be HOST:PORT, not \"" + options_.listen + "\"");
  }
  std::string host = options_.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  beast::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return std::unexpected("--ops-listen: bad address in \"" + options_.listen + "\"");
  int port = 0;
  try {
    port = std::stoi(options_.listen.substr(colon + 1));
  } catch (...) {
    return std::unexpected("--ops-listen: bad port in \"" + options_.listen + "\"");
  }
  if (port < 0 || port > 65535) return std::unexpected("--ops-listen: port out of range");
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return std::unexpected("cannot listen on --ops-listen " + options_.listen + ": " +
                           ec.message());
  const int bound = impl_->acceptor.local_endpoint().port();
  impl_->accept(*this);
  if (options_.metrics != nullptr) {
    // The baseline for the first second's rates, then one a second, on the
    // store reader's thread.
    asio::post(impl_->store_reader, [this] {
      sample_series();
      impl_->sample_every_second(*this);
    });
  }
  impl_->thread = std::thread([this] {
    name_this_thread("vd-ops");
    impl_->io.run();
  });
  impl_->store_thread = std::thread([this] {
    name_this_thread("vd-ops-store");
    // Runs until stop(), with or without work queued.
    auto guard = asio::make_work_guard(impl_->store_reader);
    impl_->store_reader.run();
  });
  return bound;
}

void OpsServer::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->io.stop();
  impl_->store_reader.stop();
  impl_->thread.join();
  impl_->store_thread.join();
}

bool OpsServer::reads_store(std::string_view target) {
  if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  return target == "/status" || target == "/metrics" || target == "/series";
}

boost::asio::io_context& OpsServer::store_reader() { return impl_->store_reader; }

std::string OpsServer::readiness_problem() const {
  if (draining_.load(std::memory_order_acquire)) return "draining: shutting down";
  if (!options_.store->connected()) {
    const std::string_view kind = options_.store->kind();
    return kind.substr(0, 5) == "redis" ? "claim log unreachable: Redis is not connected"
                                        : "claim log unreachable: the store is not connected";
  }
  return {};
}

std::string OpsServer::status_json() const {
  using nlohmann::json;
  json out;
  out["version"] = options_.version;
  out["uptime_seconds"] =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  out["store"] = std::string(options_.store->kind());
  out["store_connected"] = options_.store->connected();
  out["auth"] = options_.auth_open ? "OPEN: no --auth-file, anyone may call anything" : "tokens";
  out["ops_auth"] = options_.tokens != nullptr ? "tokens" : "open (no --ops-auth-file)";
  out["transport"] = options_.transport;
  out["draining"] = draining_.load(std::memory_order_acquire);
  const std::string problem = readiness_problem();
  out["ready"] = problem.empty();
  if (!problem.empty()) out["not_ready_because"] = problem;
  json campaigns = json::array();
  for (const CampaignRuntime* c : engine_.campaigns()) {
    const CampaignSpec& spec = c->spec();
    // With Redis, the store-wide counts of every replica.
    const auto stats = best_stats(engine_, *options_.store, spec);
    if (!stats) continue;
    json cj;
    cj["id"] = spec.id;
    cj["name"] = spec.name;
    cj["mode"] = mode_label(spec.mode);
    cj["starts_at"] = rfc3339(spec.starts_at_us);
    cj["ends_at"] = rfc3339(spec.ends_at_us);
    cj["stock"] = stats->stock_total;
    cj["issued"] = stats->issued;
    cj["redeemed"] = stats->redeemed;
    cj["remaining"] = stats->remaining;
    cj["members"] = stats->members;
    // Members the store's holders feed says hold a voucher (any replica's),
    // as this replica has read it; and how the leases stand.
    cj["store_holders_known"] = c->store_holders();
    const LeaseHealth health = options_.store->lease_health(spec.id);
    cj["lease_overdue_replicas"] = health.overdue_replicas;
    cj["lease_stranded_units"] = health.stranded_units;
    cj["lease_reclaimed_units_total"] = health.reclaimed_units_total;
    if (spec.mode == CampaignMode::kApplyThenDraw) {
      // Where the allocation stands, store-wide (docs/operations.md,
      // "Watching an apply campaign's allocation"); left out while the
      // store does not answer.
      if (const auto a = engine_.application_counts(*c)) {
        json aj;
        aj["applications"] = a->applications;
        aj["selected"] = a->selected;
        switch (a->allocation) {
          case ApplicationCounts::Allocation::kNotStarted:
            aj["state"] = "NOT_STARTED";
            break;
          case ApplicationCounts::Allocation::kRunning:
            aj["state"] = "RUNNING";
            break;
          case ApplicationCounts::Allocation::kDone:
            aj["state"] = "DONE";
            aj["not_selected"] = a->applications - a->selected;
            if (a->allocated_at_us > 0) aj["allocated_at"] = rfc3339(a->allocated_at_us);
            break;
        }
        cj["allocation"] = std::move(aj);
      }
    }
    json skus = json::array();
    for (std::size_t i = 0; i < stats->skus.size(); ++i) {
      const SkuStatsView& s = stats->skus[i];
      skus.push_back({{"id", s.sku_id},
                      {"site_id", spec.skus[i].site_id},
                      {"stock", s.stock},
                      {"issued", s.issued},
                      {"redeemed", s.redeemed},
                      {"remaining", s.remaining}});
    }
    cj["skus"] = std::move(skus);
    campaigns.push_back(std::move(cj));
  }
  out["campaigns"] = std::move(campaigns);
  return out.dump();
}

void OpsServer::sample_series() {
  std::vector<std::pair<std::string, std::int64_t>> remaining;
  for (const CampaignRuntime* c : engine_.campaigns()) {
    if (remaining.size() == kSeriesCampaignsMax) break;
    if (const auto stats = best_stats(engine_, *options_.store, c->spec())) {
      remaining.emplace_back(c->spec().id, stats->remaining);
    }
  }
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  impl_->series.sample(now_s, options_.metrics->snapshot(), remaining);
}

std::optional<OpsServer::Response> OpsServer::answer_before_serving(
    std::string_view method, std::string_view target, std::string_view authorization) const {
  if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  if (method != "GET" && method != "HEAD") {
    return Response{405, "text/plain; charset=utf-8", "only GET is served here\n"};
  }
  if (target == "/healthz") return Response{200, "text/plain; charset=utf-8", "ok\n"};
  if (target == "/readyz") {
    const std::string problem = readiness_problem();
    if (problem.empty()) return Response{200, "text/plain; charset=utf-8", "ready\n"};
    return Response{503, "text/plain; charset=utf-8", "not ready: " + problem + "\n"};
  }
  // Past the probes, a token when --ops-auth-file gave some (an unknown
  // path too: without a token, nothing about the port is told).
  if (options_.tokens != nullptr && !options_.tokens->admit(authorization)) {
    return Response{401, "text/plain; charset=utf-8",
                    "a token of --ops-auth-file is needed: \"Authorization: Bearer <token>\", or "
                    "the token as the Basic auth password\n",
                    true};
  }
  return std::nullopt;
}

OpsServer::Response OpsServer::serve(std::string_view target) {
  if (const auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  if (target == "/status") return {200, "application/json", status_json()};
  if (target == "/") return {200, "text/html; charset=utf-8", std::string(dashboard_html())};
  if (target == "/metrics" || target == "/series") {
    if (options_.metrics == nullptr) {
      return {503, "text/plain; charset=utf-8", "metrics are not collected in this process\n"};
    }
    if (target == "/series") return {200, "application/json", impl_->series.json()};
    const bool draining = draining_.load(std::memory_order_acquire);
    return {200, "text/plain; version=0.0.4; charset=utf-8",
            options_.metrics->exposition(readiness_problem().empty(), draining)};
  }
  return {404, "text/plain; charset=utf-8",
          "not found: " + std::string(target) +
              " (try /, /healthz, /readyz, /status, /metrics, /series)\n"};
}

}  // namespace voucherd
