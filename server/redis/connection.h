// redis_connection.h — a blocking hiredis connection with timeouts, owned by
// one thread, and the pieces every Redis user in voucherd shares: URL
// parsing, a reply tree we own, pipelining and scripts that survive a Redis
// restart (EVALSHA, reloading on NOSCRIPT).
//
// hiredis 0.14 (Debian 12) has no TLS, RESP3 or Cluster support; voucherd
// runs each connection on its own thread with socket timeouts instead of an
// event-loop adapter.
//
// Usage:
//   auto ep = parse_redis_url("redis://127.0.0.1:6379/0", getenv("REDIS_PASSWORD"));
//   auto conn = RedisConnection::connect(*ep, std::chrono::milliseconds(500));
//   auto replies = (*conn)->pipeline({{"SET", "k", "v"}, {"GET", "k"}});
//
// Thread-safety: none; a connection belongs to one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;

namespace voucherd::redis {

struct Endpoint {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string password;  // never logged
};

// redis://[:password@]host[:port][/db]. The password may also come from
// `env_password` (REDIS_PASSWORD); one in the URL wins.
[[nodiscard]] std::expected<Endpoint, std::string> parse_url(std::string_view url,
                                                             const char* env_password);

struct Reply {
  enum class Type : std::uint8_t { kNil, kString, kStatus, kInteger, kError, kArray };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  long long integer = 0;
  std::vector<Reply> elements;  // kArray

  [[nodiscard]] bool is_error() const { return type == Type::kError; }
};

using Command = std::vector<std::string>;

// A Lua script known by its SHA-1, sent with EVALSHA and loaded again when
// Redis answers NOSCRIPT (its script cache is empty after a restart).
struct Script {
  explicit Script(std::string source);
  std::string source;
  std::string sha1;  // hex
};

class Connection {
 public:
  // Connects, authenticates, selects the db. `timeout` bounds the connect,
  // and each exchange as a whole: a pipeline (or a command) from its first
  // write to its last reply; flush() and receive() each. A server that
  // takes bytes or answers a few at a time cannot hold an exchange longer
  // than `timeout` (plus a tenth of it, see bound_io()).
  [[nodiscard]] static std::expected<std::unique_ptr<Connection>, std::string> connect(
      const Endpoint& endpoint, std::chrono::milliseconds timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends every command, then reads every reply. An error string means the
  // connection failed (timeout, reset): it is unusable afterwards, and the
  // commands may or may not have been applied. Redis errors for single
  // commands come back as Reply::Type::kError, not as a failure; a READONLY
  // error (the server is a replica now: a failover moved the primary) also
  // marks the connection broken, so its owner connects to the primary again.
  [[nodiscard]] std::expected<std::vector<Reply>, std::string> pipeline(
      const std::vector<Command>& commands);
  [[nodiscard]] std::expected<Reply, std::string> command(const Command& args);

  // pipeline() in three steps, so that one thread can write pipelines to
  // several servers before it reads any of them (the cluster router's round
  // trips overlap): append() queues a command in the connection's buffer,
  // flush() writes everything queued, receive() reads `count` replies into
  // `replies`, in order. An error string means the connection failed and is
  // unusable afterwards; receive() has then appended the replies read before
  // the failure (the commands they answer did run), and the commands not
  // answered may or may not have been applied. receive() flushes first if
  // anything is still queued.
  [[nodiscard]] std::expected<void, std::string> append(const Command& args);
  [[nodiscard]] std::expected<void, std::string> flush();
  [[nodiscard]] std::expected<void, std::string> receive(std::size_t count,
                                                         std::vector<Reply>* replies);

  // EVALSHA with `keys` and `args`; on NOSCRIPT, SCRIPT LOAD and retry once.
  [[nodiscard]] std::expected<Reply, std::string> eval(const Script& script,
                                                       const std::vector<std::string>& keys,
                                                       const std::vector<std::string>& args);
  // The EVALSHA command for `script`, for use inside a pipeline.
  [[nodiscard]] static Command evalsha(const Script& script, const std::vector<std::string>& keys,
                                       const std::vector<std::string>& args);
  // Loads `script` into Redis's cache (after a NOSCRIPT inside a pipeline).
  [[nodiscard]] std::expected<void, std::string> load(const Script& script);

  // Waits up to `wait` for a message the server sends unasked (pub/sub,
  // after SUBSCRIBE). nullopt: none came in time.
  [[nodiscard]] std::expected<std::optional<Reply>, std::string> read_pushed(
      std::chrono::milliseconds wait);

  [[nodiscard]] bool broken() const { return broken_; }
  // Whether the server closed the connection while it sat idle (a Redis
  // that restarted): polled without blocking, before a write that must not
  // go out on a dead socket. Marks the connection broken when so.
  [[nodiscard]] bool peer_closed();

 private:
  using Clock = std::chrono::steady_clock;

  Connection(redisContext* ctx, std::chrono::milliseconds timeout)
      : ctx_(ctx), timeout_(timeout), socket_timeout_(timeout) {}
  std::string failure(const char* what);
  // Before a blocking read or write: false when `deadline` has passed;
  // otherwise the socket's own timeout is lowered to what is left of it
  // when that is less (by more than a tenth of the timeout, so that a fast
  // exchange costs no setsockopt).
  bool bound_io(Clock::time_point deadline);
  // After a failed read or write: notes a timeout as such. Returns false.
  bool io_failed();
  // The socket's timeout back to the whole timeout, after an exchange.
  void unbound_io();
  // Writes everything queued by `deadline`; false when it could not.
  bool write_all(Clock::time_point deadline);
  // Reads one reply by `deadline` into `*reply`; false when it could not.
  bool read_reply(void** reply, Clock::time_point deadline);

  redisContext* ctx_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds socket_timeout_;  // as set on the socket now
  Clock::time_point deadline_{};              // of the receive() under way
  bool timed_out_ = false;                    // the last failure was a deadline
  bool broken_ = false;
};

// An integer from an integer reply or a numeric string reply; 0 otherwise.
[[nodiscard]] std::int64_t to_int(const Reply& r);

[[nodiscard]] inline bool is_noscript(const Reply& r) {
  return r.is_error() && r.str.rfind("NOSCRIPT", 0) == 0;
}

// The server is a replica: it refuses writes (after a failover, the old
// primary turned into a replica of the new one).
[[nodiscard]] inline bool is_readonly(const Reply& r) {
  return r.is_error() && r.str.rfind("READONLY", 0) == 0;
}

}  // namespace voucherd::redis
