// cluster.h — a Redis Cluster client over hiredis 0.14 (which has none): the
// router sends each command to the primary that serves its slot (slots.h),
// keeps one blocking Connection per primary, follows redirections, and
// pipelines a whole batch as one pipeline per primary, every primary's
// pipeline written before any is read, so the round trips overlap.
//
// What it does with each answer:
//   -MOVED <slot> <host:port>  the slot lives elsewhere now: the map learns it
//                              (and a full re-read of CLUSTER SLOTS is due),
//                              the command goes to the new primary.
//   -ASK <slot> <host:port>    the slot is being migrated and this key has
//                              gone: the command goes once, after ASKING, to
//                              that node; the map is left as it is.
//   -TRYAGAIN                  a multi-key command whose keys are split by a
//                              migration: sent again after a short pause.
//   -CLUSTERDOWN ...           answered as RouteStatus::kClusterDown.
//   -NOSCRIPT                  for an EVALSHA routed with its Script: SCRIPT
//                              LOAD on the node that answered, then again.
// Every retry loop is bounded (ClusterLimits below).
//
// What a MOVED or ASK retry guarantees: a node that answers MOVED or ASK
// did not run the command (Redis checks the slot before it executes
// anything), and neither does TRYAGAIN or CLUSTERDOWN; so resending a
// redirected command cannot apply it twice. Only a command whose connection
// failed after it was written (RouteStatus::kLost) may have run without its
// answer reaching us; the router never resends those.
//
// Order: the commands of one call that go to one node are written in the
// caller's order, and answers come back in the caller's order. A command
// that is redirected is sent again in a later round, after the commands that
// were not, so order holds across a redirection only between commands that
// were redirected together (all the commands of a slot that moved are).
//
// Usage:
//   auto seeds = parse_seed_list("10.0.0.5:7000,10.0.0.6:7000");
//   ClusterRouter router({*seeds, password, std::chrono::milliseconds(500)});
//   auto replies = router.execute({RoutedCommand::for_key(keys.stock(), {"HGET", keys.stock(),
//   sku}),
//                                  RoutedCommand::eval(claim_script, {keys.stock()}, args)});
//   for (const RoutedReply& r : replies) if (!r.ok()) ...  // UNAVAILABLE for exactly these
//
// Thread-safety: none. A router (its map and its connections) belongs to one
// thread at a time, like a Connection; give each thread its own router.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/redis/connection.h"
#include "server/redis/slots.h"

namespace voucherd::redis {

// The router's bounds, each with its reason.
struct ClusterLimits {
  // Rounds of one call (the first send and its retries). A command meets at
  // most one MOVED (a stale map; the answer names the right node), then one
  // ASK (its slot is mid-migration), then TRYAGAIN while a multi-key
  // command's keys are split; five rounds cover that with three TRYAGAINs
  // to spare, and a command still redirected after them is failed rather
  // than chased around a cluster that is reconfiguring.
  static constexpr int kRoundsMax = 5;
  // No new round starts this long after the call began: a caller (the
  // writer's batch) must not wait on a reshard for longer than a claim's
  // usual deadline budget. A round itself is bounded by the connection's
  // timeout per node.
  static constexpr std::chrono::milliseconds kRetryWindow{1000};
  // Pause before resending after TRYAGAIN: migrating the rest of a slot's
  // keys takes milliseconds; retrying at once would only be refused again.
  static constexpr std::chrono::milliseconds kTryAgainPause{20};
  // Loads of a script per command: NOSCRIPT after a fresh SCRIPT LOAD means
  // the node lost its cache again (restarted again); answer it as an error.
  static constexpr int kScriptReloadsMax = 1;
  // Full re-reads of the map caused by MOVED, CLUSTERDOWN or a lost node
  // happen at most this often: while a node is down every call fails over
  // it, and one CLUSTER SLOTS per 100 ms is enough to notice a failover.
  // refresh() on request is not limited.
  static constexpr std::chrono::milliseconds kRefreshIntervalMin{100};

  static_assert(kRoundsMax >= 3, "room for a MOVED and an ASK before the command runs");
  static_assert(kTryAgainPause * (kRoundsMax - 1) < kRetryWindow,
                "the TRYAGAIN pauses alone cannot use up the window");
};

struct ClusterOptions {
  std::vector<NodeAddress> seeds;  // any nodes of the cluster; at least one
  std::string password;            // for every node; never logged
  // Bounds each connect and each read and write, as for --redis.
  std::chrono::milliseconds timeout{500};
};

// One command of a batch, with the slot that decides where it goes.
struct RoutedCommand {
  Slot slot = 0;
  Command command;
  // Set when `command` is an EVALSHA of this script: reloaded on NOSCRIPT.
  // The script must outlive the call.
  const Script* script = nullptr;

  // A command whose slot is that of `key` (its first key, usually).
  [[nodiscard]] static RoutedCommand for_key(std::string_view key, Command command);
  // EVALSHA of `script`, routed by its first key. REQUIRES: !keys.empty(),
  // and every key in one slot (Redis refuses CROSSSLOT otherwise).
  [[nodiscard]] static RoutedCommand eval(const Script& script,
                                          const std::vector<std::string>& keys,
                                          const std::vector<std::string>& args);
};

// How one routed command ended. Only kReplied carries Redis's answer; every
// other status is one a caller answers UNAVAILABLE, and all but kLost mean
// the command did not run.
enum class RouteStatus : std::uint8_t {
  kReplied,           // Redis answered: `reply` (which may be the command's own error)
  kNotSent,           // the node serving the slot could not be reached: not run
  kLost,              // the connection failed after the command was written: may have run
  kClusterDown,       // the cluster answered CLUSTERDOWN (`reply` holds it): not run
  kNoRoute,           // no node serves the slot, even after re-reading the map: not run
  kRetriesExhausted,  // still redirected when the ClusterLimits ran out: not run
};

[[nodiscard]] constexpr bool may_have_run(RouteStatus status) {
  return status == RouteStatus::kReplied || status == RouteStatus::kLost;
}
// "replied", "not_sent", ...: for logs and test messages.
[[nodiscard]] std::string_view route_status_name(RouteStatus status);

struct RoutedReply {
  RouteStatus status = RouteStatus::kReplied;
  Reply reply;
  std::string error;  // why, when not kReplied; for logs, never parsed

  [[nodiscard]] bool ok() const { return status == RouteStatus::kReplied; }
};

// What the router has done since it was made (for tests and metrics).
struct RouterCounters {
  std::uint64_t moved = 0;         // MOVED answers followed
  std::uint64_t asked = 0;         // ASK answers followed
  std::uint64_t try_again = 0;     // TRYAGAIN answers retried
  std::uint64_t script_loads = 0;  // SCRIPT LOADs after NOSCRIPT
  std::uint64_t refreshes = 0;     // maps read from CLUSTER SLOTS
  std::uint64_t connects = 0;      // connections opened
};

class ClusterRouter final {
 public:
  // Does no I/O: the map is read at the first call (or refresh()), so a
  // router can be made while the cluster is down.
  explicit ClusterRouter(ClusterOptions options);
  ~ClusterRouter();
  ClusterRouter(const ClusterRouter&) = delete;
  ClusterRouter& operator=(const ClusterRouter&) = delete;

  // Sends every command to its slot's primary, as one pipeline per node,
  // following redirections; returns one RoutedReply per command, in order.
  // A node that cannot be reached or whose connection fails fails only its
  // own commands (and makes the map due for a re-read); the other nodes'
  // answers are intact.
  [[nodiscard]] std::vector<RoutedReply> execute(const std::vector<RoutedCommand>& commands);
  // One command, routed by `key`.
  [[nodiscard]] RoutedReply command(std::string_view key, Command command);
  // EVALSHA with reload on NOSCRIPT, routed by keys[0]. REQUIRES: !keys.empty().
  [[nodiscard]] RoutedReply eval(const Script& script, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args);
  // One command to one node, no redirection followed: WAIT after writing to
  // that primary, INFO, CLUSTER commands.
  [[nodiscard]] RoutedReply on_node(const NodeAddress& node, const Command& command);

  // Reads the map again from CLUSTER SLOTS, asking the known primaries
  // (those already connected first) and then the seeds, each at most once;
  // the first good answer wins. Connections to nodes that are no longer
  // primaries are closed.
  [[nodiscard]] std::expected<void, std::string> refresh();
  // The primaries of the current map (read first if it never was, or is
  // due); empty if no node answered.
  [[nodiscard]] std::vector<NodeAddress> primaries();
  [[nodiscard]] const SlotMap& slot_map() const { return map_; }
  [[nodiscard]] const RouterCounters& counters() const { return counters_; }

 private:
  struct Link {
    NodeAddress node;
    std::unique_ptr<Connection> connection;
  };
  struct Attempt;
  struct NodeBatch;

  // The connection to `node`, opened if there is none or it broke; nullptr
  // (with `error` set) if it cannot be opened.
  Connection* link(const NodeAddress& node, std::string* error);
  void drop_link(const NodeAddress& node);
  // refresh() when the map was never read, or is due and was not re-read
  // within kRefreshIntervalMin.
  void refresh_if_due();
  // Reads a round's answers from one node: finished commands go to `out`,
  // those to send again to `next`.
  void read_node(NodeBatch& batch, const std::vector<RoutedCommand>& commands,
                 std::vector<RoutedReply>& out, std::vector<Attempt>& next, bool& pause);

  ClusterOptions options_;
  SlotMap map_;
  bool map_read_ = false;
  bool refresh_due_ = false;
  std::chrono::steady_clock::time_point last_refresh_{};
  // One per node talked to; bounded by the primaries of the map and the
  // seeds, since refresh() closes the rest.
  std::vector<Link> links_;
  RouterCounters counters_;
};

}  // namespace voucherd::redis
