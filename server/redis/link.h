// link.h — the Redis store's way to Redis, whatever Redis is: one primary
// (named by --redis, or by Redis Sentinel: PrimaryLink) or a Redis Cluster
// (--redis-cluster: ClusterLink, over the router of cluster.h).
//
// Every command goes to the server that holds its first key (a plain
// command's first argument, a script call's first KEYS entry); with one
// primary that is always the primary. Commands without a key (PING, INFO)
// go to every primary (ping(), server_identity()).
//
// The claim log's writer, its lease keeper and each admin read hold a link
// of their own (LinkFactory::open()); a link that broke or no longer goes to
// the store's primaries (a failover, a node that died) is replaced by its
// owner (usable()).
//
// Thread-safety: none; a link belongs to one thread at a time.
#pragma once

#include <chrono>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "server/redis/cluster.h"
#include "server/redis/connection.h"
#include "server/redis/primary.h"

namespace voucherd::redis {

// The answers to a batch (Link::send_batch).
struct BatchAnswers {
  // Per command: Redis's answer (maybe the command's own error), or why
  // there is none. A command without an answer may or may not have run.
  std::vector<std::expected<Reply, std::string>> replies;
  // With min_replicas: empty when every server written to had them
  // confirmed by enough replicas in time; otherwise why not.
  std::string not_replicated;
};

class Link {
 public:
  virtual ~Link() = default;

  // Sends every command to its key's server and reads every answer, in
  // order. An error: some command has no answer (the link is broken
  // afterwards); the commands may or may not have run.
  [[nodiscard]] virtual std::expected<std::vector<Reply>, std::string> pipeline(
      const std::vector<Command>& commands) = 0;
  [[nodiscard]] std::expected<Reply, std::string> command(const Command& args);
  // EVALSHA of `script`, loaded again on NOSCRIPT. REQUIRES: !keys.empty().
  [[nodiscard]] virtual std::expected<Reply, std::string> eval(
      const Script& script, const std::vector<std::string>& keys,
      const std::vector<std::string>& args) = 0;

  // The writer's batch, taken by value so that it goes out without a copy:
  // `scripts[i]` is the script commands[i] calls (or
  // nullptr), loaded again where Redis forgot it (a NOSCRIPT call did not
  // run, so it is sent again). With `min_replicas` > 0, each server written
  // to is asked to WAIT for that many replicas, at most `wait`. A server
  // that fails fails only its own commands.
  [[nodiscard]] virtual BatchAnswers send_batch(std::vector<Command> commands,
                                                const std::vector<const Script*>& scripts,
                                                int min_replicas,
                                                std::chrono::milliseconds wait) = 0;

  // PING on every primary: an error if one does not answer.
  [[nodiscard]] virtual std::expected<void, std::string> ping() = 0;
  // The run_id of every primary (INFO server), joined: it changes when a
  // server is replaced or restarted.
  [[nodiscard]] virtual std::expected<std::string, std::string> server_identity() = 0;

  // A command failed for want of a connection: replace this link.
  [[nodiscard]] virtual bool broken() const = 0;
  // Not broken, not closed by a server meanwhile, and still going to the
  // store's primaries as now known.
  [[nodiscard]] virtual bool usable() = 0;
};

// Opens links to the store: to the primary (fixed or through Sentinel), or
// to the cluster. Thread-safe.
class LinkFactory {
 public:
  // One primary, as `primary` finds it.
  explicit LinkFactory(PrimaryLocator& primary, std::chrono::milliseconds timeout);
  // A Redis Cluster, from its seeds.
  explicit LinkFactory(ClusterOptions cluster);

  // A new link. With one primary it connects now (an error if it cannot);
  // a cluster link connects to each primary when first used.
  [[nodiscard]] std::expected<std::unique_ptr<Link>, std::string> open() const;
  // For logs: where the store is.
  [[nodiscard]] std::string describe() const;
  [[nodiscard]] bool cluster() const { return primary_ == nullptr; }

 private:
  PrimaryLocator* primary_ = nullptr;
  std::chrono::milliseconds timeout_{0};
  ClusterOptions cluster_;
};

// A link over one connection to a fixed server (tests, the baseline store).
[[nodiscard]] std::unique_ptr<Link> link_over(std::unique_ptr<Connection> conn);

// The first key of a command: a script call's first KEYS entry, otherwise
// the first argument; empty when it has none.
[[nodiscard]] std::string_view first_key(const Command& command);

}  // namespace voucherd::redis
