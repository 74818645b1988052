#include "server/redis/cluster.h"

#include <algorithm>
#include <optional>
#include <thread>

#include "engine/check.h"

namespace voucherd::redis {
namespace {

using Clock = std::chrono::steady_clock;

bool starts_with_word(const Reply& reply, std::string_view word) {
  if (!reply.is_error() || !reply.str.starts_with(word)) return false;
  return reply.str.size() == word.size() || reply.str[word.size()] == ' ';
}

}  // namespace

// One command on its way in the current round. `ask` is set when the
// command goes, after ASKING, to the node an ASK answer named.
struct ClusterRouter::Attempt {
  std::size_t index = 0;  // into the caller's commands
  std::optional<NodeAddress> ask;
  int script_loads = 0;
};

// What one round sends to one node.
struct ClusterRouter::NodeBatch {
  NodeAddress node;
  Connection* connection = nullptr;  // set once the pipeline is written
  std::vector<Attempt> attempts;     // in the caller's order
};

RoutedCommand RoutedCommand::for_key(std::string_view key, Command command) {
  return RoutedCommand{key_slot(key), std::move(command), nullptr};
}

RoutedCommand RoutedCommand::eval(const Script& script, const std::vector<std::string>& keys,
                                  const std::vector<std::string>& args) {
  VOUCHERD_CHECK(!keys.empty(), "a routed script names at least one key");
  return RoutedCommand{key_slot(keys.front()), Connection::evalsha(script, keys, args), &script};
}

std::string_view route_status_name(RouteStatus status) {
  switch (status) {
    case RouteStatus::kReplied:
      return "replied";
    case RouteStatus::kNotSent:
      return "not_sent";
    case RouteStatus::kLost:
      return "lost";
    case RouteStatus::kClusterDown:
      return "cluster_down";
    case RouteStatus::kNoRoute:
      return "no_route";
    case RouteStatus::kRetriesExhausted:
      return "retries_exhausted";
  }
  return "unknown";
}

ClusterRouter::ClusterRouter(ClusterOptions options) : options_(std::move(options)) {
  VOUCHERD_CHECK(!options_.seeds.empty(), "a cluster router has at least one seed");
}

ClusterRouter::~ClusterRouter() = default;

Connection* ClusterRouter::link(const NodeAddress& node, std::string* error) {
  auto it =
      std::find_if(links_.begin(), links_.end(), [&](const Link& l) { return l.node == node; });
  if (it != links_.end() && it->connection != nullptr) {
    // A node that restarted closed our idle connection: find out before
    // writing, so that a command is never lost on a socket known dead.
    if (!it->connection->broken() && !it->connection->peer_closed()) return it->connection.get();
    it->connection.reset();
  }
  Endpoint endpoint;
  endpoint.host = node.host;
  endpoint.port = node.port;
  endpoint.password = options_.password;
  auto connection = Connection::connect(endpoint, options_.timeout);
  if (!connection) {
    *error = connection.error();
    return nullptr;
  }
  ++counters_.connects;
  if (it == links_.end()) {
    links_.push_back(Link{node, nullptr});
    it = links_.end() - 1;
  }
  it->connection = std::move(*connection);
  return it->connection.get();
}

void ClusterRouter::drop_link(const NodeAddress& node) {
  std::erase_if(links_, [&](const Link& l) { return l.node == node; });
  refresh_due_ = true;
}

std::expected<void, std::string> ClusterRouter::refresh() {
  // Candidates: connected primaries, then the other primaries, then the
  // seeds; each once, so a refresh costs at most one connect per node.
  std::vector<NodeAddress> candidates;
  const auto add = [&](const NodeAddress& node) {
    if (std::find(candidates.begin(), candidates.end(), node) == candidates.end()) {
      candidates.push_back(node);
    }
  };
  const std::vector<NodeAddress> primaries = map_.primaries();
  for (const Link& l : links_) {
    if (l.connection != nullptr &&
        std::find(primaries.begin(), primaries.end(), l.node) != primaries.end()) {
      add(l.node);
    }
  }
  for (const NodeAddress& node : primaries) add(node);
  for (const NodeAddress& node : options_.seeds) add(node);

  std::string last_error = "no node to ask";
  for (const NodeAddress& node : candidates) {
    Connection* connection = link(node, &last_error);
    if (connection == nullptr) continue;
    auto answer = connection->command({"CLUSTER", "SLOTS"});
    if (!answer) {
      last_error = answer.error();
      std::erase_if(links_, [&](const Link& l) { return l.node == node; });
      continue;
    }
    auto map = SlotMap::from_cluster_slots(*answer, node.host);
    if (!map) {
      last_error = node.text() + ": " + map.error();
      continue;
    }
    if (map->slots_served() == 0) {
      // A node that has not joined a cluster yet (or knows no endpoints).
      last_error = node.text() + " knows no slot's primary";
      continue;
    }
    map_ = std::move(*map);
    map_read_ = true;
    refresh_due_ = false;
    last_refresh_ = Clock::now();
    ++counters_.refreshes;
    const std::vector<NodeAddress> serving = map_.primaries();
    std::erase_if(links_, [&](const Link& l) {
      return std::find(serving.begin(), serving.end(), l.node) == serving.end();
    });
    return {};
  }
  refresh_due_ = true;
  last_refresh_ = Clock::now();
  return std::unexpected("no cluster node answered CLUSTER SLOTS: " + last_error);
}

void ClusterRouter::refresh_if_due() {
  if (map_read_ && !refresh_due_) return;
  // Also while no map was ever read: a cluster that is down is asked at
  // most this often, not at every call.
  if (Clock::now() - last_refresh_ < ClusterLimits::kRefreshIntervalMin) return;
  // A failure leaves the old map (still the best guess) and the refresh due.
  (void)refresh();
}

std::vector<NodeAddress> ClusterRouter::primaries() {
  refresh_if_due();
  return map_.primaries();
}

std::vector<RoutedReply> ClusterRouter::execute(const std::vector<RoutedCommand>& commands) {
  std::vector<RoutedReply> out(commands.size());
  refresh_if_due();

  std::vector<Attempt> pending;
  pending.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) pending.push_back(Attempt{i, {}, 0});

  const auto window_end = Clock::now() + ClusterLimits::kRetryWindow;
  bool pause = false;
  bool reread_for_no_route = false;
  for (int round = 0; !pending.empty(); ++round) {
    if (round > 0 && (round >= ClusterLimits::kRoundsMax || Clock::now() >= window_end)) {
      for (const Attempt& a : pending) {
        RoutedReply& r = out[a.index];
        r.status = RouteStatus::kRetriesExhausted;
        r.error = "still redirected after " + std::to_string(round) + " rounds: " + r.reply.str;
      }
      break;
    }
    if (pause) {
      std::this_thread::sleep_for(ClusterLimits::kTryAgainPause);
      pause = false;
    }

    // Group by node, keeping the caller's order within each node.
    std::vector<NodeBatch> batches;
    for (Attempt& a : pending) {
      const NodeAddress* node = a.ask ? &*a.ask : map_.primary(commands[a.index].slot);
      if (node == nullptr && !reread_for_no_route) {
        // A hole in the map: read it again (at most once per call, and
        // within kRefreshIntervalMin) before giving up.
        reread_for_no_route = true;
        refresh_due_ = true;
        refresh_if_due();
        node = map_.primary(commands[a.index].slot);
      }
      if (node == nullptr) {
        out[a.index].status = RouteStatus::kNoRoute;
        out[a.index].error = "no node serves slot " + std::to_string(commands[a.index].slot);
        continue;
      }
      auto batch = std::find_if(batches.begin(), batches.end(),
                                [&](const NodeBatch& b) { return b.node == *node; });
      if (batch == batches.end()) {
        batches.push_back(NodeBatch{*node, nullptr, {}});
        batch = batches.end() - 1;
      }
      batch->attempts.push_back(std::move(a));
    }

    // Write every node's pipeline before reading any.
    for (NodeBatch& batch : batches) {
      std::string error;
      Connection* connection = link(batch.node, &error);
      if (connection == nullptr) {
        for (const Attempt& a : batch.attempts) {
          out[a.index].status = RouteStatus::kNotSent;
          out[a.index].error = error;
        }
        refresh_due_ = true;
        continue;
      }
      std::expected<void, std::string> written;
      for (const Attempt& a : batch.attempts) {
        if (a.ask) written = connection->append({"ASKING"});
        if (written) written = connection->append(commands[a.index].command);
        if (!written) break;
      }
      if (written) written = connection->flush();
      if (!written) {
        // Some bytes may have reached the node: these may have run.
        for (const Attempt& a : batch.attempts) {
          out[a.index].status = RouteStatus::kLost;
          out[a.index].error = written.error();
        }
        drop_link(batch.node);
        continue;
      }
      batch.connection = connection;
    }

    // Then read them, in the same order.
    std::vector<Attempt> next;
    for (NodeBatch& batch : batches) {
      if (batch.connection != nullptr) read_node(batch, commands, out, next, pause);
    }
    std::sort(next.begin(), next.end(),
              [](const Attempt& a, const Attempt& b) { return a.index < b.index; });
    pending = std::move(next);
  }
  return out;
}

void ClusterRouter::read_node(NodeBatch& batch, const std::vector<RoutedCommand>& commands,
                              std::vector<RoutedReply>& out, std::vector<Attempt>& next,
                              bool& pause) {
  std::size_t expected_replies = 0;
  for (const Attempt& a : batch.attempts) expected_replies += a.ask ? 2 : 1;
  std::vector<Reply> replies;
  const auto read = batch.connection->receive(expected_replies, &replies);
  if (!read) drop_link(batch.node);

  std::vector<Attempt> reload;  // NOSCRIPT answers, sent again once loaded
  std::size_t k = 0;
  for (Attempt& a : batch.attempts) {
    RoutedReply& r = out[a.index];
    if (a.ask) ++k;  // ASKING's +OK; an error there shows in the command's own answer
    if (k >= replies.size()) {
      r.status = RouteStatus::kLost;
      r.error = read ? "missing reply" : read.error();
      continue;
    }
    r.reply = std::move(replies[k++]);
    const RoutedCommand& command = commands[a.index];
    if (const auto redirect = parse_redirect(r.reply, batch.node.host)) {
      if (redirect->kind == Redirect::Kind::kMoved) {
        ++counters_.moved;
        map_.assign(redirect->slot, redirect->node);
        refresh_due_ = true;
        next.push_back(Attempt{a.index, std::nullopt, a.script_loads});
      } else {
        ++counters_.asked;
        next.push_back(Attempt{a.index, redirect->node, a.script_loads});
      }
      continue;
    }
    if (starts_with_word(r.reply, "TRYAGAIN")) {
      // Asked afresh: the slot's owner decides again where the keys are.
      ++counters_.try_again;
      pause = true;
      next.push_back(Attempt{a.index, std::nullopt, a.script_loads});
      continue;
    }
    if (starts_with_word(r.reply, "CLUSTERDOWN")) {
      r.status = RouteStatus::kClusterDown;
      r.error = r.reply.str;
      refresh_due_ = true;
      continue;
    }
    if (is_noscript(r.reply) && command.script != nullptr &&
        a.script_loads < ClusterLimits::kScriptReloadsMax) {
      ++a.script_loads;
      reload.push_back(std::move(a));
      continue;
    }
    r.status = RouteStatus::kReplied;
    r.error.clear();
  }
  VOUCHERD_DCHECK(!read || k == replies.size(), "every reply of a node's pipeline is used");
  if (reload.empty()) return;

  // SCRIPT LOAD on this node, once per script, then send those commands again.
  std::vector<const Script*> loaded;
  std::string error;
  Connection* connection = read ? batch.connection : link(batch.node, &error);
  for (Attempt& a : reload) {
    const Script* script = commands[a.index].script;
    if (connection != nullptr && std::find(loaded.begin(), loaded.end(), script) == loaded.end()) {
      if (auto ok = connection->load(*script); ok) {
        ++counters_.script_loads;
        loaded.push_back(script);
      } else {
        error = ok.error();
        drop_link(batch.node);
        connection = nullptr;
      }
    }
    if (connection == nullptr) {
      // The NOSCRIPT answer said it did not run, and it was not sent again.
      out[a.index].status = RouteStatus::kNotSent;
      out[a.index].error = error;
      continue;
    }
    next.push_back(std::move(a));
  }
}

RoutedReply ClusterRouter::command(std::string_view key, Command command) {
  auto replies = execute({RoutedCommand::for_key(key, std::move(command))});
  return std::move(replies.front());
}

RoutedReply ClusterRouter::eval(const Script& script, const std::vector<std::string>& keys,
                                const std::vector<std::string>& args) {
  auto replies = execute({RoutedCommand::eval(script, keys, args)});
  return std::move(replies.front());
}

RoutedReply ClusterRouter::on_node(const NodeAddress& node, const Command& command) {
  RoutedReply r;
  std::string error;
  Connection* connection = link(node, &error);
  if (connection == nullptr) {
    r.status = RouteStatus::kNotSent;
    r.error = error;
    refresh_due_ = true;
    return r;
  }
  auto answer = connection->command(command);
  if (!answer) {
    r.status = RouteStatus::kLost;
    r.error = answer.error();
    drop_link(node);
    return r;
  }
  r.reply = std::move(*answer);
  return r;
}

}  // namespace voucherd::redis
