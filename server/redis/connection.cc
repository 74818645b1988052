#include "server/redis/connection.h"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>

namespace voucherd::redis {
namespace {

Reply convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
  }
  return out;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

std::expected<Endpoint, std::string> parse_url(std::string_view url, const char* env_password) {
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return std::unexpected("--redis must look like redis://HOST:PORT[/DB]");
  }
  std::string_view rest = url.substr(kScheme.size());
  Endpoint ep;
  if (env_password != nullptr) ep.password = env_password;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view auth = rest.substr(0, at);
    if (const auto colon = auth.find(':'); colon != std::string_view::npos)
      auth = auth.substr(colon + 1);
    ep.password = std::string(auth);
    rest = rest.substr(at + 1);
  }
  std::string_view hostport = rest;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), ep.db);
      if (ec != std::errc() || p != db.data() + db.size() || ep.db < 0 || ep.db > 15) {
        return std::unexpected("--redis database must be a number from 0 to 15");
      }
    }
  }
  std::string_view host = hostport;
  if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    const std::string_view port = hostport.substr(colon + 1);
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), ep.port);
    if (ec != std::errc() || p != port.data() + port.size() || ep.port <= 0 || ep.port > 65535) {
      return std::unexpected("--redis port must be a number from 1 to 65535");
    }
  }
  if (host.empty()) return std::unexpected("--redis must name a host");
  ep.host = std::string(host);
  return ep;
}

Script::Script(std::string src) : source(std::move(src)) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(source.data()), source.size(), digest);
  sha1.reserve(2 * SHA_DIGEST_LENGTH);
  for (unsigned char b : digest) {
    char hex[3];
    std::snprintf(hex, sizeof hex, "%02x", b);
    sha1 += hex;
  }
}

std::expected<std::unique_ptr<Connection>, std::string> Connection::connect(
    const Endpoint& endpoint, std::chrono::milliseconds timeout) {
  redisContext* ctx =
      redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, to_timeval(timeout));
  if (ctx == nullptr) return std::unexpected("cannot allocate a Redis connection");
  if (ctx->err != 0) {
    std::string why = "cannot connect to Redis at " + endpoint.host + ":" +
                      std::to_string(endpoint.port) + ": " + ctx->errstr;
    redisFree(ctx);
    return std::unexpected(why);
  }
  redisSetTimeout(ctx, to_timeval(timeout));
  std::unique_ptr<Connection> conn(new Connection(ctx, timeout));
  if (!endpoint.password.empty()) {
    auto r = conn->command({"AUTH", endpoint.password});
    if (!r) return std::unexpected(r.error());
    if (r->is_error()) return std::unexpected("Redis refused AUTH: " + r->str);
  }
  if (endpoint.db != 0) {
    auto r = conn->command({"SELECT", std::to_string(endpoint.db)});
    if (!r) return std::unexpected(r.error());
    if (r->is_error()) return std::unexpected("Redis refused SELECT: " + r->str);
  }
  return conn;
}

Connection::~Connection() { redisFree(ctx_); }

std::string Connection::failure(const char* what) {
  broken_ = true;
  unbound_io();
  if (timed_out_) {
    return std::string("Redis ") + what + " failed: not done within the " +
           std::to_string(timeout_.count()) + " ms timeout";
  }
  if (ctx_->err == 0 && ctx_->reader->err != 0) {
    return std::string("Redis ") + what + " failed: " + ctx_->reader->errstr;
  }
  return std::string("Redis ") + what +
         " failed: " + (ctx_->err != 0 ? ctx_->errstr : "unknown error");
}

bool Connection::bound_io(Clock::time_point deadline) {
  const auto now = Clock::now();
  if (now >= deadline) {
    timed_out_ = true;
    return false;
  }
  // Rounded up: a socket timeout cut down to whole milliseconds would end
  // the exchange up to a millisecond before its deadline.
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
  // A blocking call waits at most the socket's timeout; keep that within
  // what is left (a tenth of the timeout of slack spares the setsockopt
  // calls of an exchange that is going fast).
  if (socket_timeout_ > left + timeout_ / 10) {
    redisSetTimeout(ctx_, to_timeval(left));
    socket_timeout_ = left;
  }
  return true;
}

bool Connection::io_failed() {
  // A blocking call that ran out of its socket timeout (what was left of
  // the deadline) fails with EAGAIN: that is the deadline too.
  if (errno == EAGAIN || errno == EWOULDBLOCK) timed_out_ = true;
  return false;
}

void Connection::unbound_io() {
  if (socket_timeout_ == timeout_) return;
  redisSetTimeout(ctx_, to_timeval(timeout_));
  socket_timeout_ = timeout_;
}

bool Connection::write_all(Clock::time_point deadline) {
  // Each pass writes some bytes, or fails, or waits at most what is left:
  // this ends by the deadline however slowly the server reads.
  int done = 0;
  while (done == 0) {
    if (!bound_io(deadline)) return false;
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return io_failed();
  }
  return true;
}

bool Connection::read_reply(void** reply, Clock::time_point deadline) {
  *reply = nullptr;
  // A reply may already sit in the reader's buffer, read with an earlier one.
  if (redisReaderGetReply(ctx_->reader, reply) != REDIS_OK) return false;
  // Each pass reads some bytes, or fails, or waits at most what is left:
  // this ends by the deadline however slowly the server answers.
  while (*reply == nullptr) {
    if (!bound_io(deadline)) return false;
    if (redisBufferRead(ctx_) != REDIS_OK) return io_failed();
    if (redisReaderGetReply(ctx_->reader, reply) != REDIS_OK) return false;
  }
  return true;
}

std::expected<std::vector<Reply>, std::string> Connection::pipeline(
    const std::vector<Command>& commands) {
  if (broken_) return std::unexpected("Redis connection is broken");
  std::vector<const char*> argv;
  std::vector<std::size_t> argvlen;
  for (const Command& cmd : commands) {
    argv.clear();
    argvlen.clear();
    for (const std::string& a : cmd) {
      argv.push_back(a.data());
      argvlen.push_back(a.size());
    }
    if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), argvlen.data()) !=
        REDIS_OK) {
      return std::unexpected(failure("write"));
    }
  }
  // The whole exchange, from the first write to the last reply, within
  // the timeout.
  const auto deadline = Clock::now() + timeout_;
  timed_out_ = false;
  if (!write_all(deadline)) return std::unexpected(failure("write"));
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (!read_reply(&raw, deadline)) return std::unexpected(failure("read"));
    auto* reply = static_cast<redisReply*>(raw);
    replies.push_back(convert(reply));
    freeReplyObject(reply);
    if (is_readonly(replies.back())) broken_ = true;
  }
  unbound_io();
  return replies;
}

std::expected<Reply, std::string> Connection::command(const Command& args) {
  auto r = pipeline({args});
  if (!r) return std::unexpected(r.error());
  return std::move(r->front());
}

std::expected<void, std::string> Connection::append(const Command& args) {
  if (broken_) return std::unexpected("Redis connection is broken");
  // A command has a handful of arguments; the stack array covers them and
  // longer ones (a script call carrying a batch) use the heap.
  constexpr std::size_t kInlineArgs = 16;
  std::array<const char*, kInlineArgs> inline_argv;
  std::array<std::size_t, kInlineArgs> inline_argvlen;
  std::vector<const char*> heap_argv;
  std::vector<std::size_t> heap_argvlen;
  const char** argv = inline_argv.data();
  std::size_t* argvlen = inline_argvlen.data();
  if (args.size() > kInlineArgs) {
    heap_argv.resize(args.size());
    heap_argvlen.resize(args.size());
    argv = heap_argv.data();
    argvlen = heap_argvlen.data();
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    argvlen[i] = args[i].size();
  }
  if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv, argvlen) != REDIS_OK) {
    return std::unexpected(failure("write"));
  }
  return {};
}

std::expected<void, std::string> Connection::flush() {
  if (broken_) return std::unexpected("Redis connection is broken");
  timed_out_ = false;
  if (!write_all(Clock::now() + timeout_)) return std::unexpected(failure("write"));
  return {};
}

std::expected<void, std::string> Connection::receive(std::size_t count,
                                                     std::vector<Reply>* replies) {
  if (broken_) return std::unexpected("Redis connection is broken");
  // Still queued: flush first.
  if (sdslen(ctx_->obuf) > 0) {
    if (auto flushed = flush(); !flushed) return flushed;
  }
  // A deadline of its own: the cluster router flushes to every primary
  // before it reads any, so this one's replies may have waited while
  // another's were read (each read is bounded all the same).
  deadline_ = Clock::now() + timeout_;
  timed_out_ = false;
  replies->reserve(replies->size() + count);
  for (std::size_t i = 0; i < count; ++i) {
    void* raw = nullptr;
    if (!read_reply(&raw, deadline_)) return std::unexpected(failure("read"));
    auto* reply = static_cast<redisReply*>(raw);
    replies->push_back(convert(reply));
    freeReplyObject(reply);
  }
  unbound_io();
  return {};
}

Command Connection::evalsha(const Script& script, const std::vector<std::string>& keys,
                            const std::vector<std::string>& args) {
  Command cmd;
  cmd.reserve(3 + keys.size() + args.size());
  cmd.emplace_back("EVALSHA");
  cmd.push_back(script.sha1);
  cmd.push_back(std::to_string(keys.size()));
  cmd.insert(cmd.end(), keys.begin(), keys.end());
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

std::expected<void, std::string> Connection::load(const Script& script) {
  auto r = command({"SCRIPT", "LOAD", script.source});
  if (!r) return std::unexpected(r.error());
  if (r->is_error()) return std::unexpected("Redis refused SCRIPT LOAD: " + r->str);
  return {};
}

std::expected<Reply, std::string> Connection::eval(const Script& script,
                                                   const std::vector<std::string>& keys,
                                                   const std::vector<std::string>& args) {
  auto r = command(evalsha(script, keys, args));
  if (!r || !is_noscript(*r)) return r;
  if (auto loaded = load(script); !loaded) return std::unexpected(loaded.error());
  return command(evalsha(script, keys, args));
}

std::int64_t to_int(const Reply& r) {
  if (r.type == Reply::Type::kInteger) return r.integer;
  if (r.type == Reply::Type::kString) {
    std::int64_t v = 0;
    std::from_chars(r.str.data(), r.str.data() + r.str.size(), v);
    return v;
  }
  return 0;
}

std::expected<std::optional<Reply>, std::string> Connection::read_pushed(
    std::chrono::milliseconds wait) {
  if (broken_) return std::unexpected("Redis connection is broken");
  void* raw = nullptr;
  // A message may already sit in hiredis's buffer, read with an earlier one.
  if (redisReaderGetReply(ctx_->reader, &raw) != REDIS_OK) return std::unexpected(failure("read"));
  if (raw == nullptr) {
    pollfd p{ctx_->fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(wait.count()));
    if (ready == 0 || (ready < 0 && errno == EINTR)) return std::nullopt;
    // Readable: a whole message arrives within the timeout.
    timed_out_ = false;
    if (!read_reply(&raw, Clock::now() + timeout_)) return std::unexpected(failure("read"));
    unbound_io();
  }
  auto* reply = static_cast<redisReply*>(raw);
  Reply out = convert(reply);
  freeReplyObject(reply);
  return out;
}

bool Connection::peer_closed() {
  if (broken_) return true;
  // Nothing is due from Redis between our requests: a readable socket
  // means end-of-file (the server went away) or a reset.
  pollfd p{ctx_->fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  char byte = 0;
  const ssize_t n = ::recv(ctx_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;  // unexpected data; the reply parser will judge it
  broken_ = true;
  return true;
}

}  // namespace voucherd::redis
