#include "server/redis/primary.h"

#include <algorithm>
#include <charconv>

#include "server/base/log.h"

namespace voucherd::redis {
namespace {

// The watcher waits this long for a message before looking at stop_.
constexpr auto kWatchPoll = std::chrono::milliseconds(200);
// Sentinel commands (connect, ask, subscribe) time out after this long.
constexpr auto kSentinelTimeout = std::chrono::milliseconds(1000);
// With no sentinel reachable, the watcher tries again after this long.
constexpr auto kWatchRetry = std::chrono::milliseconds(500);

std::string text(const Endpoint& e) { return e.host + ":" + std::to_string(e.port); }

std::optional<int> parse_port(std::string_view s) {
  int port = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  if (ec != std::errc() || p != s.data() + s.size() || port <= 0 || port > 65535) {
    return std::nullopt;
  }
  return port;
}

// A connection to one sentinel, authenticated when it has a password.
std::expected<std::unique_ptr<Connection>, std::string> connect_sentinel(
    const Endpoint& s, std::chrono::milliseconds timeout) {
  Endpoint plain = s;
  plain.db = 0;  // sentinels have no databases
  auto conn = Connection::connect(plain, timeout);
  if (!conn) return std::unexpected("Sentinel " + text(s) + ": " + conn.error());
  return conn;
}

}  // namespace

std::expected<std::vector<Endpoint>, std::string> parse_sentinels(std::string_view list,
                                                                  const char* env_password) {
  if (list.empty()) return std::unexpected("--redis-sentinel needs at least one HOST:PORT");
  std::vector<Endpoint> out;
  for (bool more = true; more;) {
    const auto comma = list.find(',');
    const std::string_view one = list.substr(0, comma);
    more = comma != std::string_view::npos;
    if (more) list = list.substr(comma + 1);
    const auto colon = one.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return std::unexpected("--redis-sentinel: \"" + std::string(one) +
                             "\" must look like HOST:PORT");
    }
    const auto port = parse_port(one.substr(colon + 1));
    if (!port) {
      return std::unexpected("--redis-sentinel: the port of \"" + std::string(one) +
                             "\" must be a number from 1 to 65535");
    }
    Endpoint e;
    e.host = std::string(one.substr(0, colon));
    e.port = *port;
    if (env_password != nullptr) e.password = env_password;
    out.push_back(std::move(e));
  }
  return out;
}

PrimaryLocator::PrimaryLocator(Endpoint fixed) : credentials_(fixed), known_(std::move(fixed)) {}

PrimaryLocator::PrimaryLocator(SentinelOptions sentinel, Endpoint credentials)
    : sentinel_(std::move(sentinel)), credentials_(std::move(credentials)) {}

PrimaryLocator::~PrimaryLocator() { stop_watching(); }

void PrimaryLocator::start_watching() {
  if (!sentinel_ || watcher_.joinable()) return;
  stop_.store(false, std::memory_order_relaxed);
  watcher_ = std::thread([this] { watch(); });
}

void PrimaryLocator::stop_watching() {
  // Relaxed: the flag orders nothing; join() below waits for the thread.
  stop_.store(true, std::memory_order_relaxed);
  if (watcher_.joinable()) watcher_.join();
}

std::optional<Endpoint> PrimaryLocator::known() const {
  std::lock_guard lock(mu_);
  return known_;
}

std::string PrimaryLocator::describe() const {
  const auto now = known();
  if (!sentinel_) return "Redis at " + (now ? text(*now) : std::string("?"));
  return "Redis primary \"" + sentinel_->master_name + "\" (Sentinel; " +
         (now ? "now " + text(*now) : std::string("not known yet")) + ")";
}

void PrimaryLocator::set_primary(const std::string& host, int port, const char* how) {
  std::lock_guard lock(mu_);
  if (known_ && known_->host == host && known_->port == port) return;
  Endpoint e = credentials_;
  e.host = host;
  e.port = port;
  const bool first = !known_;
  known_ = std::move(e);
  // Release: a thread that sees the new generation sees known_ too (it
  // also takes mu_ to read it; the order matters for current()).
  generation_.fetch_add(1, std::memory_order_release);
  log::info(
      "Redis primary of \"" + sentinel_->master_name + (first ? "\" is " : "\" is now ") + host +
          ":" + std::to_string(port) + " (" + how + ")",
      {{"redis_master", sentinel_->master_name}, {"redis", host + ":" + std::to_string(port)}});
}

std::expected<Endpoint, std::string> PrimaryLocator::ask_sentinels(
    std::chrono::milliseconds timeout) {
  std::vector<Endpoint> order;
  {
    std::lock_guard lock(mu_);
    order = sentinel_->sentinels;
  }
  std::string why;
  for (const Endpoint& s : order) {
    auto conn = connect_sentinel(s, std::min(timeout, kSentinelTimeout));
    if (!conn) {
      why += (why.empty() ? "" : "; ") + conn.error();
      continue;
    }
    auto r = (*conn)->command({"SENTINEL", "get-master-addr-by-name", sentinel_->master_name});
    if (!r) {
      why += (why.empty() ? "" : "; ") + ("Sentinel " + text(s) + ": " + r.error());
      continue;
    }
    if (r->type != Reply::Type::kArray || r->elements.size() != 2) {
      why += (why.empty() ? "" : "; ") +
             ("Sentinel " + text(s) + " knows no master named \"" + sentinel_->master_name + "\"");
      continue;
    }
    const auto port = parse_port(r->elements[1].str);
    if (!port) {
      why += (why.empty() ? "" : "; ") + ("Sentinel " + text(s) + " answered a bad port");
      continue;
    }
    {
      // The sentinel that answered is asked first from now on.
      std::lock_guard lock(mu_);
      auto& list = sentinel_->sentinels;
      const auto it = std::find_if(list.begin(), list.end(), [&](const Endpoint& e) {
        return e.host == s.host && e.port == s.port;
      });
      if (it != list.end()) std::rotate(list.begin(), it, it + 1);
    }
    set_primary(r->elements[0].str, *port, ("asked Sentinel " + text(s)).c_str());
    auto now = known();
    return *now;
  }
  return std::unexpected(why.empty() ? std::string("no Sentinel is configured") : why);
}

std::expected<Located, std::string> PrimaryLocator::connect(std::chrono::milliseconds timeout) {
  // Reads the generation before the address: a connection is never marked
  // newer than the knowledge it was made with.
  auto attempt = [&](const Endpoint& target,
                     std::uint64_t generation) -> std::expected<Located, std::string> {
    auto conn = Connection::connect(target, timeout);
    if (!conn) return std::unexpected(conn.error());
    auto role = (*conn)->command({"ROLE"});
    if (!role) return std::unexpected(role.error());
    if (role->type != Reply::Type::kArray || role->elements.empty()) {
      return std::unexpected("Redis at " + text(target) + " answered ROLE with " +
                             (role->is_error() ? role->str : std::string("something else")));
    }
    if (role->elements[0].str != "master") {
      return std::unexpected("Redis at " + text(target) + " is a " + role->elements[0].str +
                             ", not a primary (it cannot take writes)");
    }
    return Located{std::move(*conn), generation};
  };
  std::uint64_t generation = generation_.load(std::memory_order_acquire);
  auto target = known();
  if (!sentinel_) return attempt(*target, generation);
  std::string first_error;
  if (target) {
    auto located = attempt(*target, generation);
    if (located) return located;
    first_error = located.error();
  }
  // Not known, gone, or not a primary any more: ask the sentinels.
  auto asked = ask_sentinels(timeout);
  if (!asked) {
    return std::unexpected((first_error.empty() ? "" : first_error + "; ") +
                           "no Sentinel named a primary for \"" + sentinel_->master_name +
                           "\": " + asked.error());
  }
  generation = generation_.load(std::memory_order_acquire);
  return attempt(*asked, generation);
}

void PrimaryLocator::watch() {
  std::size_t next = 0;
  // Relaxed: the flag orders nothing; it only ends the loop.
  while (!stop_.load(std::memory_order_relaxed)) {
    Endpoint s;
    {
      std::lock_guard lock(mu_);
      const auto& list = sentinel_->sentinels;
      s = list[next++ % list.size()];
    }
    auto conn = connect_sentinel(s, kSentinelTimeout);
    std::expected<Reply, std::string> subscribed =
        conn ? (*conn)->command({"SUBSCRIBE", "+switch-master"})
             : std::expected<Reply, std::string>(std::unexpected(conn.error()));
    if (!subscribed) {
      for (int i = 0; i < 5 && !stop_.load(std::memory_order_relaxed); ++i) {
        std::this_thread::sleep_for(kWatchRetry / 5);
      }
      continue;
    }
    // A switch made before the subscription is caught by asking once.
    (void)ask_sentinels(kSentinelTimeout);
    while (!stop_.load(std::memory_order_relaxed)) {
      auto pushed = (*conn)->read_pushed(kWatchPoll);
      if (!pushed) break;  // the sentinel went away: subscribe on the next one
      if (!*pushed) continue;
      // ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"]
      const Reply& m = **pushed;
      if (m.type != Reply::Type::kArray || m.elements.size() != 3) continue;
      const std::string& body = m.elements[2].str;
      std::vector<std::string_view> words;
      std::string_view rest = body;
      while (!rest.empty()) {
        const auto space = rest.find(' ');
        words.push_back(rest.substr(0, space));
        rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
      }
      if (words.size() != 5 || words[0] != sentinel_->master_name) continue;
      const auto port = parse_port(words[4]);
      if (!port) continue;
      set_primary(std::string(words[3]), *port,
                  ("+switch-master from Sentinel " + text(s)).c_str());
    }
  }
}

}  // namespace voucherd::redis
