// link_proxy.h — test support: a loopback TCP proxy between voucherd and
// Redis whose link the test breaks on purpose, while it runs.
//
// The proxy listens on a free 127.0.0.1 port; each connection accepted is
// paired with a connection of its own to the server's port, and bytes are
// forwarded both ways by one thread (a poll loop over non-blocking
// sockets). The test changes what the link does at any moment; each call
// is in force when it returns, and replaces the fault before it:
//   heal()          pass-through. Connections a fault damaged (bytes thrown
//                   away, a direction shut, the server gone) are closed
//                   (FIN), as a real peer would give up on them; the others
//                   carry on, and bytes held back are delivered now.
//   add_latency(d)  every chunk is delivered d after it was read, each way,
//                   in order: a slow link, nothing lost.
//   blackhole()     bytes vanish both ways (read and thrown away);
//                   connections stay open; new connections are accepted but
//                   never reach the server.
//   reset()         every open connection is reset now: RST to the client
//                   (SO_LINGER 0); the server's side is closed with a FIN
//                   after the bytes it was sent, so it runs what arrived
//                   before the cut. The link then passes.
//   reset_after_client_bytes(n, marker)
//                   passes until n more bytes from clients have reached the
//                   server, cut exactly there (a batch torn in the middle),
//                   then resets every open connection and passes. With a
//                   marker, the n bytes are counted on the first connection
//                   that sends it, from where it starts (so the cut falls
//                   inside the command that carries it).
//   half_open(d)    the direction `d` is shut (FIN to its receiver, nothing
//                   more forwarded that way); the other one still passes.
//                   New connections are shut the same way at once.
//   slow_reader(n, every)
//                   the proxy reads at most n bytes per `every` from each
//                   client (n = 0: nothing at all), so the client's writes
//                   back up in its socket buffers; what it read reaches the
//                   server, and replies pass.
//
// Bounded: at most kConnectionsMax connections, at most kQueueBytesMax
// bytes queued per direction (reading stops until they drain), a poll wait
// of at most 20 ms. The destructor stops the thread and closes everything.
//
// Usage:
//   LinkProxy proxy(redis.port());
//   ... voucherd --redis proxy.url() ...
//   proxy.blackhole();
//   ... proxy.heal();
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace voucherd::testing {

// A direction of the link: client (voucherd) to server (Redis), or back.
enum class LinkDirection : std::uint8_t { kToServer, kToClient };

struct LinkProxyOptions {
  // SO_RCVBUF of the accepted (client-side) sockets, 0 for the kernel's
  // default; a small one makes a slow reader's client block sooner.
  int client_receive_buffer_bytes = 0;
};

class LinkProxy {
 public:
  static constexpr std::size_t kConnectionsMax = 64;
  static constexpr std::size_t kQueueBytesMax = std::size_t{4} << 20;

  // Listens on 127.0.0.1, port 0, and forwards to 127.0.0.1:`server_port`.
  explicit LinkProxy(int server_port, LinkProxyOptions options = {});
  ~LinkProxy();
  LinkProxy(const LinkProxy&) = delete;
  LinkProxy& operator=(const LinkProxy&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  void heal();
  void add_latency(std::chrono::milliseconds each_way);
  void blackhole();
  void reset();
  void reset_after_client_bytes(std::size_t bytes, std::string marker = "");
  void half_open(LinkDirection shut);
  void slow_reader(std::size_t bytes, std::chrono::milliseconds every);

  // What has passed since the proxy started (relaxed reads of counters the
  // proxy's thread writes; a test reads them after the fact).
  struct Counters {
    std::uint64_t accepted = 0;         // client connections accepted
    std::uint64_t open = 0;             // client connections open now
    std::uint64_t bytes_to_server = 0;  // delivered to the server
    std::uint64_t bytes_to_client = 0;  // delivered to clients
    std::uint64_t bytes_discarded = 0;  // thrown away by a fault
    std::uint64_t resets = 0;           // connections reset
  };
  [[nodiscard]] Counters counters() const;
  // Whether the reset armed by reset_after_client_bytes() has happened.
  [[nodiscard]] bool reset_fired() const { return reset_fired_.load(std::memory_order_acquire); }
  // When it happened (REQUIRES: reset_fired()).
  [[nodiscard]] std::chrono::steady_clock::time_point reset_fired_at() const {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(reset_fired_at_.load(std::memory_order_relaxed)));
  }

 private:
  enum class Mode : std::uint8_t {
    kPass,
    kLatency,
    kBlackhole,
    kResetNow,
    kResetAfter,
    kHalfOpen,
    kSlowReader
  };
  struct Fault {
    Mode mode = Mode::kPass;
    std::chrono::milliseconds delay{0};
    std::size_t bytes = 0;  // kResetAfter: bytes to let through; kSlowReader: per interval
    std::chrono::milliseconds every{0};
    LinkDirection shut = LinkDirection::kToServer;
    std::string marker;  // kResetAfter: count from this, on its connection
  };
  struct Loop;  // the thread's own state (link_proxy.cc)

  // Hands `fault` to the thread and waits until it is in force.
  void set(const Fault& fault);
  void run();

  int listen_fd_ = -1;
  int port_ = 0;
  int server_port_ = 0;
  LinkProxyOptions options_;
  int wake_[2] = {-1, -1};  // a pipe: the test's end wakes the thread's poll

  std::mutex mu_;  // guards wanted_, wanted_generation_, applied_generation_
  std::condition_variable applied_;
  Fault wanted_;
  std::uint64_t wanted_generation_ = 0;
  std::uint64_t applied_generation_ = 0;

  // Written by the proxy's thread only; relaxed: counters, ordering nothing.
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> open_{0};
  std::atomic<std::uint64_t> bytes_to_server_{0};
  std::atomic<std::uint64_t> bytes_to_client_{0};
  std::atomic<std::uint64_t> bytes_discarded_{0};
  std::atomic<std::uint64_t> resets_{0};
  // Set before the reset is sent (release; the test's read acquires), so a
  // client that saw its connection reset finds it fired.
  std::atomic<bool> reset_fired_{false};
  // Stored before reset_fired_ (its release publishes it).
  std::atomic<std::chrono::steady_clock::rep> reset_fired_at_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace voucherd::testing
