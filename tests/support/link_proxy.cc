#include "tests/support/link_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

namespace voucherd::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The longest the thread sleeps in poll(): a fault handed over while it
// sleeps is picked up at once anyway (the wake pipe), so this only bounds
// how late a delayed chunk or a slow reader's next read can be.
constexpr auto kPollWaitMax = std::chrono::milliseconds(20);
// Bytes read from a socket at once.
constexpr std::size_t kReadChunkBytes = 64 * 1024;
// Connections accepted, and reads per socket, per pass of the loop: every
// pass ends, whatever the peers send.
constexpr int kAcceptsPerPass = 16;
constexpr int kReadsPerPass = 16;
// A server's side of a reset connection is closed gracefully and drained
// for at most this long (see Loop::drain).
constexpr auto kDrainMax = std::chrono::seconds(5);
// How long set() waits for the thread to put a fault in force.
constexpr auto kApplyWaitMax = std::chrono::seconds(5);

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Closes `fd` with a reset (RST) instead of a FIN.
void close_with_reset(int fd) {
  const linger reset{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  ::close(fd);
}

// A blocking connect to 127.0.0.1:`port` (at most 1 s), then non-blocking;
// -1 when the server is not there.
int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const timeval second{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &second, sizeof second);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  set_nonblocking(fd);
  set_nodelay(fd);
  return fd;
}

struct Chunk {
  std::string bytes;
  std::size_t offset = 0;
  Clock::time_point due;
};

// One direction of a connection: bytes read from `from`, queued, written to
// `to` once due.
struct Flow {
  std::deque<Chunk> queue;
  std::size_t queued = 0;
  bool from_eof = false;          // the sender shut its side (or went away)
  bool to_shut = false;           // FIN sent to the receiver: nothing more goes that way
  Clock::time_point next_read{};  // a slow reader's next read

  [[nodiscard]] bool due(Clock::time_point now) const {
    return !to_shut && !queue.empty() && queue.front().due <= now;
  }
  std::size_t drop() {
    const std::size_t n = queued;
    queue.clear();
    queued = 0;
    return n;
  }
};

struct Conn {
  int client = -1;
  int server = -1;  // -1: never connected (accepted during a blackhole)
  Flow up;          // client -> server
  Flow down;        // server -> client
  // A fault threw bytes away, shut a direction or hid the server's going:
  // the stream is not whole any more; heal() closes it.
  bool damaged = false;
  bool forwarded = true;  // false: accepted during a blackhole, never connected on
  bool dead = false;
};

// What a direction does under a fault.
enum class Act : std::uint8_t { kForward, kDiscard, kHold, kTrickle };

}  // namespace

struct LinkProxy::Loop {
  explicit Loop(LinkProxy& p) : proxy(p) {}

  LinkProxy& proxy;
  Fault fault;
  std::size_t reset_budget = 0;  // kResetAfter: bytes still let through to servers
  // kResetAfter with a marker: the connection that sent it (null: not yet).
  const Conn* armed = nullptr;
  std::vector<std::unique_ptr<Conn>> conns;
  // Server sockets of reset connections, drained until the server closes
  // them (or kDrainMax): a reset reaches the client only. Sent right after
  // the last bytes, a server's RST may make it drop bytes it had received
  // but not yet read, and the cut would not fall where it was asked to.
  std::vector<std::pair<int, Clock::time_point>> draining;

  Act act(LinkDirection d) const {
    switch (fault.mode) {
      case Mode::kBlackhole:
        return Act::kDiscard;
      case Mode::kHalfOpen:
        return d == fault.shut ? Act::kDiscard : Act::kForward;
      case Mode::kSlowReader:
        if (d == LinkDirection::kToClient) return Act::kForward;
        return fault.bytes == 0 ? Act::kHold : Act::kTrickle;
      case Mode::kPass:
      case Mode::kLatency:
      case Mode::kResetNow:
      case Mode::kResetAfter:
        return Act::kForward;
    }
    return Act::kForward;
  }
  // Whether a server's FIN reaches the client now: not under a fault that
  // hides it (a blackhole, a half-open link: the client must find out by
  // itself).
  bool server_close_passes() const {
    return fault.mode != Mode::kBlackhole && fault.mode != Mode::kHalfOpen;
  }

  void discarded(Conn& c, std::size_t n) {
    if (n == 0) return;
    c.damaged = true;
    proxy.bytes_discarded_.fetch_add(n, std::memory_order_relaxed);
  }

  // Shuts `d` of `c`: FIN to its receiver, queued bytes thrown away.
  void shut(Conn& c, LinkDirection d) {
    Flow& f = d == LinkDirection::kToServer ? c.up : c.down;
    const int to = d == LinkDirection::kToServer ? c.server : c.client;
    discarded(c, f.drop());
    if (to >= 0 && !f.to_shut) ::shutdown(to, SHUT_WR);
    f.to_shut = true;
    c.damaged = true;
  }

  void close_conn(Conn& c, bool reset) {
    if (c.dead) return;
    if (armed == &c) armed = nullptr;
    if (c.client >= 0) reset ? close_with_reset(c.client) : (void)::close(c.client);
    if (c.server >= 0 && reset && draining.size() < kConnectionsMax) {
      ::shutdown(c.server, SHUT_WR);
      draining.emplace_back(c.server, Clock::now() + kDrainMax);
    } else if (c.server >= 0) {
      ::close(c.server);
    }
    if (reset) proxy.resets_.fetch_add(1, std::memory_order_relaxed);
    c.client = c.server = -1;
    c.dead = true;
    proxy.open_.fetch_sub(1, std::memory_order_relaxed);
  }

  void reset_all() {
    for (auto& c : conns) close_conn(*c, /*reset=*/true);
  }

  // Puts `next` in force on every open connection.
  void apply(const Fault& next) {
    const auto now = Clock::now();
    fault = next;
    // Connections a blackhole accepted never had a server: they end with it.
    if (fault.mode != Mode::kBlackhole) {
      for (auto& c : conns) {
        if (!c->forwarded) close_conn(*c, /*reset=*/false);
      }
    }
    switch (fault.mode) {
      case Mode::kPass:
        // Healing: a damaged stream cannot be trusted by either end.
        for (auto& c : conns) {
          if (c->damaged) close_conn(*c, /*reset=*/false);
        }
        break;
      case Mode::kLatency:
        break;
      case Mode::kBlackhole:
        for (auto& c : conns) {
          discarded(*c, c->up.drop());
          discarded(*c, c->down.drop());
        }
        break;
      case Mode::kResetNow:
        reset_all();
        fault = Fault{};
        break;
      case Mode::kResetAfter:
        reset_budget = fault.bytes;
        armed = nullptr;
        if (reset_budget == 0 && fault.marker.empty()) {
          // Fired first: a client that sees the reset finds it fired.
          proxy.reset_fired_at_.store(Clock::now().time_since_epoch().count(),
                                      std::memory_order_relaxed);
          proxy.reset_fired_.store(true, std::memory_order_release);
          reset_all();
          fault = Fault{};
        }
        break;
      case Mode::kHalfOpen:
        for (auto& c : conns) shut(*c, fault.shut);
        break;
      case Mode::kSlowReader:
        for (auto& c : conns) c->up.next_read = now;
        break;
    }
  }

  void accept_new() {
    for (int i = 0; i < kAcceptsPerPass; ++i) {
      const int fd = ::accept4(proxy.listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      const std::size_t open = proxy.open_.load(std::memory_order_relaxed);
      if (open >= kConnectionsMax) {
        close_with_reset(fd);
        continue;
      }
      set_nodelay(fd);
      auto c = std::make_unique<Conn>();
      c->client = fd;
      if (fault.mode == Mode::kBlackhole) {
        c->damaged = true;  // accepted, never forwarded
        c->forwarded = false;
      } else {
        c->server = connect_loopback(proxy.server_port_);
        if (c->server < 0) {
          close_with_reset(fd);
          continue;
        }
      }
      proxy.accepted_.fetch_add(1, std::memory_order_relaxed);
      proxy.open_.fetch_add(1, std::memory_order_relaxed);
      if (fault.mode == Mode::kHalfOpen) shut(*c, fault.shut);
      conns.push_back(std::move(c));
    }
  }

  // Reads what `d` of `c` may read now. Returns false when the connection
  // is to be closed.
  bool read_side(Conn& c, LinkDirection d, Clock::time_point now) {
    Flow& f = d == LinkDirection::kToServer ? c.up : c.down;
    const int from = d == LinkDirection::kToServer ? c.client : c.server;
    const Act a = act(d);
    std::array<char, kReadChunkBytes> buf;
    for (int i = 0; i < kReadsPerPass && !f.from_eof; ++i) {
      std::size_t want = buf.size();
      if (a == Act::kHold) return true;
      if (a == Act::kTrickle) {
        if (now < f.next_read) return true;
        want = std::min(want, fault.bytes);
      }
      if (a == Act::kForward && f.queued >= kQueueBytesMax) return true;
      const ssize_t n = ::recv(from, buf.data(), want, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
        return false;  // reset by the peer
      }
      if (n == 0) {
        f.from_eof = true;
        if (d == LinkDirection::kToServer) {
          // The client is gone. Under a fault that does not forward its
          // bytes, there is nothing left to do for it.
          if (a == Act::kDiscard || c.server < 0) return false;
        } else if (!server_close_passes()) {
          c.damaged = true;  // hidden from the client
        }
        return true;
      }
      const auto got = static_cast<std::size_t>(n);
      if (a == Act::kTrickle) f.next_read = now + fault.every;
      if (a == Act::kDiscard || f.to_shut) {
        discarded(c, got);
        continue;
      }
      const auto delay = fault.mode == Mode::kLatency ? fault.delay : std::chrono::milliseconds(0);
      if (fault.mode == Mode::kResetAfter && !fault.marker.empty() && armed == nullptr &&
          d == LinkDirection::kToServer) {
        // The budget starts where the marker does: after what this
        // connection has queued so far and the chunk's bytes before it.
        const auto at = std::string_view(buf.data(), got).find(fault.marker);
        if (at != std::string_view::npos) {
          armed = &c;
          reset_budget += f.queued + at;
        }
      }
      f.queue.push_back(Chunk{std::string(buf.data(), got), 0, now + delay});
      f.queued += got;
      if (a == Act::kTrickle) return true;
    }
    return true;
  }

  // Writes the due chunks of `d` of `c`. Returns false when the connection
  // is to be closed (the receiver went away). May reset every connection
  // (kResetAfter), which ends the pass's work on `c` too.
  bool write_side(Conn& c, LinkDirection d, Clock::time_point now) {
    Flow& f = d == LinkDirection::kToServer ? c.up : c.down;
    const int to = d == LinkDirection::kToServer ? c.server : c.client;
    while (f.due(now)) {
      Chunk& chunk = f.queue.front();
      std::size_t len = chunk.bytes.size() - chunk.offset;
      const bool budgeted = fault.mode == Mode::kResetAfter && d == LinkDirection::kToServer &&
                            (fault.marker.empty() || armed == &c);
      if (budgeted) len = std::min(len, reset_budget);
      const ssize_t n = ::send(to, chunk.bytes.data() + chunk.offset, len, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
        return false;
      }
      const auto sent = static_cast<std::size_t>(n);
      chunk.offset += sent;
      f.queued -= sent;
      (d == LinkDirection::kToServer ? proxy.bytes_to_server_ : proxy.bytes_to_client_)
          .fetch_add(sent, std::memory_order_relaxed);
      if (chunk.offset == chunk.bytes.size()) f.queue.pop_front();
      if (budgeted) {
        reset_budget -= sent;
        if (reset_budget == 0) {
          // Cut exactly here: the server has the first part of what the
          // client sent, and neither end hears from the other again.
          // Fired first: a client that sees the reset finds it fired.
          proxy.reset_fired_at_.store(Clock::now().time_since_epoch().count(),
                                      std::memory_order_relaxed);
          proxy.reset_fired_.store(true, std::memory_order_release);
          reset_all();
          fault = Fault{};
          return false;
        }
      }
    }
    // A FIN passes once everything before it did.
    if (f.from_eof && f.queue.empty() && !f.to_shut && to >= 0) {
      const bool passes = d == LinkDirection::kToServer || server_close_passes();
      if (passes) {
        ::shutdown(to, SHUT_WR);
        f.to_shut = true;
      }
    }
    return true;
  }

  // Reads and throws away what servers of reset connections still send;
  // closes each once it closed its side, failed, or kDrainMax passed.
  void drain(Clock::time_point now) {
    std::array<char, kReadChunkBytes> buf;
    std::erase_if(draining, [&](const std::pair<int, Clock::time_point>& d) {
      for (int i = 0; i < kReadsPerPass; ++i) {
        const ssize_t n = ::recv(d.first, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n > 0) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
        ::close(d.first);  // closed by the server, or failed
        return true;
      }
      if (now < d.second) return false;
      ::close(d.first);
      return true;
    });
  }

  void pass_once() {
    const auto now = Clock::now();
    std::vector<pollfd> fds;
    fds.reserve(2 + 2 * conns.size());
    fds.push_back({proxy.wake_[0], POLLIN, 0});
    fds.push_back({proxy.listen_fd_, POLLIN, 0});
    for (const auto& [fd, until] : draining) fds.push_back({fd, POLLIN, 0});
    auto wait = kPollWaitMax;
    auto sooner = [&](Clock::time_point when) {
      const auto in = std::chrono::duration_cast<std::chrono::milliseconds>(when - now) +
                      std::chrono::milliseconds(1);
      wait = std::clamp(in, std::chrono::milliseconds(0), wait);
    };
    auto wants_read = [&](const Conn& c, LinkDirection d) {
      const Flow& f = d == LinkDirection::kToServer ? c.up : c.down;
      if (f.from_eof) return false;
      switch (act(d)) {
        case Act::kHold:
          return false;
        case Act::kTrickle:
          if (now < f.next_read) {
            sooner(f.next_read);
            return false;
          }
          return f.queued < kQueueBytesMax;
        case Act::kDiscard:
          return true;
        case Act::kForward:
          return f.queued < kQueueBytesMax;
      }
      return false;
    };
    auto wants_write = [&](const Flow& f) {
      if (f.to_shut || f.queue.empty()) return false;
      if (f.queue.front().due > now) {
        sooner(f.queue.front().due);
        return false;
      }
      return true;
    };
    for (const auto& c : conns) {
      short client_events = 0;
      short server_events = 0;
      if (wants_read(*c, LinkDirection::kToServer)) client_events |= POLLIN;
      if (wants_write(c->down)) client_events |= POLLOUT;
      if (c->server >= 0) {
        if (wants_read(*c, LinkDirection::kToClient)) server_events |= POLLIN;
        if (wants_write(c->up)) server_events |= POLLOUT;
      }
      // A socket with nothing asked of it is left out (-1: ignored by
      // poll), so that a hang-up nobody reads yet does not spin the loop.
      if (client_events != 0) fds.push_back({c->client, client_events, 0});
      if (server_events != 0) fds.push_back({c->server, server_events, 0});
    }
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
    if (ready < 0) return;
    if ((fds[0].revents & POLLIN) != 0) {
      std::array<char, 64> wakes;
      while (::read(proxy.wake_[0], wakes.data(), wakes.size()) > 0) {
      }
    }
    if ((fds[1].revents & POLLIN) != 0) accept_new();
    const auto after = Clock::now();
    drain(after);
    // Every connection gets its reads and due writes each pass (delayed
    // chunks fall due without an event); errors show in recv() and send().
    for (std::size_t i = 0; i < conns.size(); ++i) {
      Conn& c = *conns[i];
      if (c.dead) continue;
      bool alive = read_side(c, LinkDirection::kToServer, after);
      if (alive && c.server >= 0) alive = read_side(c, LinkDirection::kToClient, after);
      if (alive && !c.dead && c.server >= 0) alive = write_side(c, LinkDirection::kToServer, after);
      if (alive && !c.dead) alive = write_side(c, LinkDirection::kToClient, after);
      if (!alive) {
        close_conn(c, /*reset=*/false);
        continue;
      }
      if (c.dead) continue;
      // The server closed, and nothing more goes to it: its socket is done
      // (the client's may stay open, when a fault hides the close).
      if (c.server >= 0 && c.down.from_eof && c.down.queue.empty() && c.up.to_shut) {
        ::close(c.server);
        c.server = -1;
      }
      // Both ends said goodbye and everything passed.
      if (c.up.from_eof && c.up.queue.empty() && (c.server < 0 || c.down.from_eof) &&
          c.down.queue.empty()) {
        close_conn(c, /*reset=*/false);
      }
    }
    std::erase_if(conns, [](const std::unique_ptr<Conn>& c) { return c->dead; });
  }
};

LinkProxy::LinkProxy(int server_port, LinkProxyOptions options)
    : server_port_(server_port), options_(options) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (options_.client_receive_buffer_bytes > 0) {
    // Set before listen(): accepted sockets inherit it, window scale included.
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &options_.client_receive_buffer_bytes,
                 sizeof options_.client_receive_buffer_bytes);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    ADD_FAILURE() << "the link proxy cannot listen on 127.0.0.1";
    return;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) {
    ADD_FAILURE() << "the link proxy cannot make its wake pipe";
    return;
  }
  thread_ = std::thread([this] { run(); });
}

LinkProxy::~LinkProxy() {
  stop_.store(true, std::memory_order_relaxed);
  if (wake_[1] >= 0) (void)::write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

void LinkProxy::run() {
  Loop loop(*this);
  // Relaxed: the flag only ends the loop; the destructor joins.
  while (!stop_.load(std::memory_order_relaxed)) {
    {
      std::lock_guard lock(mu_);
      if (applied_generation_ != wanted_generation_) {
        loop.apply(wanted_);
        applied_generation_ = wanted_generation_;
        applied_.notify_all();
      }
    }
    loop.pass_once();
  }
  for (auto& c : loop.conns) loop.close_conn(*c, /*reset=*/false);
  for (const auto& [fd, until] : loop.draining) ::close(fd);
}

void LinkProxy::set(const Fault& fault) {
  std::unique_lock lock(mu_);
  wanted_ = fault;
  const std::uint64_t generation = ++wanted_generation_;
  (void)::write(wake_[1], "x", 1);
  if (!applied_.wait_for(lock, kApplyWaitMax, [&] { return applied_generation_ >= generation; })) {
    ADD_FAILURE() << "the link proxy did not take the fault within 5 s";
  }
}

void LinkProxy::heal() { set(Fault{}); }

void LinkProxy::add_latency(std::chrono::milliseconds each_way) {
  Fault f;
  f.mode = Mode::kLatency;
  f.delay = each_way;
  set(f);
}

void LinkProxy::blackhole() {
  Fault f;
  f.mode = Mode::kBlackhole;
  set(f);
}

void LinkProxy::reset() {
  Fault f;
  f.mode = Mode::kResetNow;
  set(f);
}

void LinkProxy::reset_after_client_bytes(std::size_t bytes, std::string marker) {
  reset_fired_.store(false, std::memory_order_relaxed);
  Fault f;
  f.mode = Mode::kResetAfter;
  f.bytes = bytes;
  f.marker = std::move(marker);
  set(f);
}

void LinkProxy::half_open(LinkDirection shut) {
  Fault f;
  f.mode = Mode::kHalfOpen;
  f.shut = shut;
  set(f);
}

void LinkProxy::slow_reader(std::size_t bytes, std::chrono::milliseconds every) {
  Fault f;
  f.mode = Mode::kSlowReader;
  f.bytes = bytes;
  f.every = every;
  set(f);
}

LinkProxy::Counters LinkProxy::counters() const {
  Counters c;
  c.accepted = accepted_.load(std::memory_order_relaxed);
  c.open = open_.load(std::memory_order_relaxed);
  c.bytes_to_server = bytes_to_server_.load(std::memory_order_relaxed);
  c.bytes_to_client = bytes_to_client_.load(std::memory_order_relaxed);
  c.bytes_discarded = bytes_discarded_.load(std::memory_order_relaxed);
  c.resets = resets_.load(std::memory_order_relaxed);
  return c;
}

}  // namespace voucherd::testing
