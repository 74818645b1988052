#include "server/redis/link.h"

#include <algorithm>
#include <charconv>

namespace voucherd::redis {
namespace {

Command wait_command(int min_replicas, std::chrono::milliseconds wait) {
  return {"WAIT", std::to_string(min_replicas), std::to_string(wait.count())};
}

// Empty when WAIT's answer says enough replicas confirmed; otherwise why not.
std::string replicas_confirmed(const Reply& answer, int min_replicas,
                               std::chrono::milliseconds wait) {
  if (answer.type != Reply::Type::kInteger) return "WAIT answered " + answer.str;
  if (answer.integer < min_replicas) {
    return std::to_string(answer.integer) + " confirmed within " + std::to_string(wait.count()) +
           " ms";
  }
  return "";
}

std::string run_id_of(const Reply& info) {
  const auto at = info.str.find("run_id:");
  if (at == std::string::npos) return "";
  const auto from = at + 7;
  return info.str.substr(from, info.str.find_first_of("\r\n", from) - from);
}

// One primary: a connection to it, made under the locator's generation.
class PrimaryLink final : public Link {
 public:
  // `locator` may be null: a fixed server, never moved.
  PrimaryLink(Located located, PrimaryLocator* locator)
      : conn_(std::move(located.conn)), generation_(located.generation), locator_(locator) {}

  std::expected<std::vector<Reply>, std::string> pipeline(
      const std::vector<Command>& commands) override {
    return conn_->pipeline(commands);
  }

  std::expected<Reply, std::string> eval(const Script& script, const std::vector<std::string>& keys,
                                         const std::vector<std::string>& args) override {
    return conn_->eval(script, keys, args);
  }

  BatchAnswers send_batch(std::vector<Command> commands, const std::vector<const Script*>& scripts,
                          int min_replicas, std::chrono::milliseconds wait) override {
    BatchAnswers out;
    // The WAIT ends the pipeline: the replicas' confirmation costs no round
    // trip of its own.
    if (min_replicas > 0) commands.push_back(wait_command(min_replicas, wait));
    auto answers = conn_->pipeline(commands);
    if (min_replicas > 0) commands.pop_back();
    if (!answers) {
      out.replies.assign(commands.size(), std::unexpected(answers.error()));
      out.not_replicated = answers.error();
      return out;
    }
    // Scripts Redis forgot (it restarted): load and send those calls again.
    // A NOSCRIPT call did not run, so sending it again cannot apply it
    // twice. If a load fails, the rest stay NOSCRIPT errors.
    bool load_failed = false;
    bool sent_again = false;
    for (std::size_t i = 0; i < commands.size() && !load_failed; ++i) {
      if (!is_noscript((*answers)[i]) || scripts[i] == nullptr) continue;
      if (auto loaded = conn_->load(*scripts[i]); !loaded) {
        load_failed = true;
        break;
      }
      if (auto again = conn_->command(commands[i])) (*answers)[i] = std::move(*again);
      sent_again = true;
    }
    if (min_replicas > 0) {
      out.not_replicated = replicas_confirmed(answers->back(), min_replicas, wait);
      if (out.not_replicated.empty() && sent_again) {
        auto again = conn_->command(wait_command(min_replicas, wait));
        out.not_replicated = again ? replicas_confirmed(*again, min_replicas, wait) : again.error();
      }
      answers->pop_back();
    }
    out.replies.reserve(commands.size());
    for (Reply& r : *answers) out.replies.emplace_back(std::move(r));
    return out;
  }

  std::expected<void, std::string> ping() override {
    auto pong = conn_->command({"PING"});
    if (!pong) return std::unexpected(pong.error());
    if (pong->is_error()) return std::unexpected("PING answered " + pong->str);
    return {};
  }

  std::expected<std::string, std::string> server_identity() override {
    auto info = conn_->command({"INFO", "server"});
    if (!info) return std::unexpected(info.error());
    return run_id_of(*info);
  }

  bool broken() const override { return conn_->broken(); }
  bool usable() override {
    return !conn_->peer_closed() && (locator_ == nullptr || locator_->current(generation_));
  }

 private:
  std::unique_ptr<Connection> conn_;
  std::uint64_t generation_;
  PrimaryLocator* locator_;
};

// A Redis Cluster: a router with one connection per primary.
class ClusterLink final : public Link {
 public:
  explicit ClusterLink(const ClusterOptions& options) : router_(options) {}

  std::expected<std::vector<Reply>, std::string> pipeline(
      const std::vector<Command>& commands) override {
    std::vector<RoutedCommand> routed;
    routed.reserve(commands.size());
    for (const Command& c : commands) routed.push_back(RoutedCommand::for_key(first_key(c), c));
    std::vector<RoutedReply> answers = router_.execute(routed);
    std::vector<Reply> out;
    out.reserve(answers.size());
    for (RoutedReply& a : answers) {
      if (!a.ok()) return fail(a);
      out.push_back(std::move(a.reply));
    }
    return out;
  }

  std::expected<Reply, std::string> eval(const Script& script, const std::vector<std::string>& keys,
                                         const std::vector<std::string>& args) override {
    RoutedReply a = router_.eval(script, keys, args);
    if (!a.ok()) return fail(a);
    return std::move(a.reply);
  }

  BatchAnswers send_batch(std::vector<Command> commands, const std::vector<const Script*>& scripts,
                          int min_replicas, std::chrono::milliseconds wait) override {
    std::vector<RoutedCommand> routed;
    routed.reserve(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
      const Slot slot = key_slot(first_key(commands[i]));
      RoutedCommand r{slot, std::move(commands[i]), scripts[i]};
      routed.push_back(std::move(r));
    }
    std::vector<RoutedReply> answers = router_.execute(routed);
    BatchAnswers out;
    out.replies.reserve(answers.size());
    std::vector<NodeAddress> written;  // the primaries that answered
    for (std::size_t i = 0; i < answers.size(); ++i) {
      RoutedReply& a = answers[i];
      if (!a.ok()) {
        out.replies.emplace_back(
            std::unexpected(std::string(route_status_name(a.status)) + ": " + a.error));
        continue;
      }
      out.replies.emplace_back(std::move(a.reply));
      if (const NodeAddress* node = router_.slot_map().primary(routed[i].slot)) {
        if (std::find(written.begin(), written.end(), *node) == written.end()) {
          written.push_back(*node);
        }
      }
    }
    // WAIT on each primary written to, one after the other (each confirms
    // its own writes: a WAIT counts the replicas of its own connection's
    // primary).
    if (min_replicas > 0) {
      for (const NodeAddress& node : written) {
        RoutedReply w = router_.on_node(node, wait_command(min_replicas, wait));
        const std::string why = w.ok() ? replicas_confirmed(w.reply, min_replicas, wait) : w.error;
        if (!why.empty()) {
          out.not_replicated = node.text() + ": " + why;
          break;
        }
      }
    }
    return out;
  }

  std::expected<void, std::string> ping() override {
    const std::vector<NodeAddress> primaries = router_.primaries();
    if (primaries.empty()) return std::unexpected("no node of the Redis Cluster answered");
    for (const NodeAddress& node : primaries) {
      RoutedReply pong = router_.on_node(node, {"PING"});
      if (!pong.ok()) return std::unexpected(node.text() + ": " + pong.error);
      if (pong.reply.is_error()) return std::unexpected(node.text() + ": " + pong.reply.str);
    }
    return {};
  }

  std::expected<std::string, std::string> server_identity() override {
    std::vector<NodeAddress> primaries = router_.primaries();
    if (primaries.empty()) return std::unexpected("no node of the Redis Cluster answered");
    std::sort(primaries.begin(), primaries.end(),
              [](const NodeAddress& a, const NodeAddress& b) { return a.text() < b.text(); });
    std::string out;
    for (const NodeAddress& node : primaries) {
      RoutedReply info = router_.on_node(node, {"INFO", "server"});
      if (!info.ok()) return std::unexpected(node.text() + ": " + info.error);
      out += node.text() + "=" + run_id_of(info.reply) + ";";
    }
    return out;
  }

  bool broken() const override { return broken_; }
  bool usable() override { return !broken_; }

 private:
  std::unexpected<std::string> fail(const RoutedReply& a) {
    // A node that failed: the router reconnects to it by itself, but the
    // caller's view of the store (its leases, its feeds) must start over.
    broken_ = true;
    return std::unexpected(std::string(route_status_name(a.status)) + ": " + a.error);
  }

  ClusterRouter router_;
  bool broken_ = false;
};

}  // namespace

std::expected<Reply, std::string> Link::command(const Command& args) {
  auto r = pipeline({args});
  if (!r) return std::unexpected(r.error());
  return std::move(r->front());
}

std::string_view first_key(const Command& command) {
  if (command.size() < 2) return {};
  if (command[0] == "EVALSHA" || command[0] == "EVAL") {
    if (command.size() < 4) return {};
    std::size_t keys = 0;
    const std::string& n = command[2];
    std::from_chars(n.data(), n.data() + n.size(), keys);
    return keys > 0 ? std::string_view(command[3]) : std::string_view();
  }
  return command[1];
}

LinkFactory::LinkFactory(PrimaryLocator& primary, std::chrono::milliseconds timeout)
    : primary_(&primary), timeout_(timeout) {}

LinkFactory::LinkFactory(ClusterOptions cluster) : cluster_(std::move(cluster)) {}

std::expected<std::unique_ptr<Link>, std::string> LinkFactory::open() const {
  if (primary_ == nullptr) return std::make_unique<ClusterLink>(cluster_);
  auto located = primary_->connect(timeout_);
  if (!located) return std::unexpected(located.error());
  return std::make_unique<PrimaryLink>(std::move(*located), primary_);
}

std::unique_ptr<Link> link_over(std::unique_ptr<Connection> conn) {
  return std::make_unique<PrimaryLink>(Located{std::move(conn), 0}, nullptr);
}

std::string LinkFactory::describe() const {
  if (primary_ != nullptr) return primary_->describe();
  std::string seeds;
  for (const NodeAddress& n : cluster_.seeds) seeds += (seeds.empty() ? "" : ",") + n.text();
  return "Redis Cluster (seeds " + seeds + ")";
}

}  // namespace voucherd::redis
