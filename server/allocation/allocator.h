// allocator.h — the allocating thread ("vd-allocator") of APPLY_THEN_DRAW
// campaigns (docs/apply-then-draw.md, "The allocation run").
//
// Every replica runs one. Every `poll` it asks the engine to allocate each
// APPLY_THEN_DRAW campaign that is past its allocation time and not yet
// known done; the store's turn decides which replica writes, and the others
// learn from it when the allocation is done (their engines may then reveal
// the seed). A step the store leaves unanswered is sent again, the same
// step, with a growing pause, for at most `retry_for`; then the next poll
// resumes from where the store says the allocation stands. A pass that
// meets a store it cannot use (an answer voucherd cannot read, a stock or
// an application that does not add up: kBadReply) is not tried again at
// every poll, re-reading every application: the campaign waits, 1 s after
// the first such pass, then twice as long after each, up to `hold_max`, so
// its turn lapses and another replica may try.
//
// Usage:
//   Allocator allocator(engine, store.replica_id());
//   allocator.start();
//   ...
//   allocator.stop();  // after the front has drained, before the store stops
//
// Thread-safety: start() and stop() from one thread; the rest is the
// allocating thread's own.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>

#include "engine/claim_engine.h"
#include "engine/limits.h"

namespace voucherd {

struct AllocatorOptions {
  // How often campaigns are looked at: an allocation starts within this of
  // its time.
  std::chrono::milliseconds poll{250};
  // How long one unanswered step is sent again before the pass gives up.
  std::chrono::milliseconds retry_for{10'000};
  std::size_t batch_max = limits::kAllocationBatchMax;  // winners per step
  // The longest wait after passes that met a store it cannot use.
  std::chrono::milliseconds hold_max{60'000};
};

class Allocator {
 public:
  // `engine` must outlive the allocator.
  Allocator(ClaimEngine& engine, std::string replica_id, AllocatorOptions options = {});
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  void start();
  // Ends the thread: the allocation in hand stops after its step in flight
  // (or that step's resends stop), and what is not written is resumed by
  // another replica, or by this one once it restarts (a store that keeps
  // the turn, Redis; the memory store's turn dies with the process).
  void stop();

  // Passes begun over the campaigns since start (tests wait on it).
  [[nodiscard]] std::int64_t passes() const { return passes_.load(std::memory_order_relaxed); }

 private:
  void run();
  // One look at every campaign.
  void pass();
  void allocate(const CampaignRuntime& c);
  // Waits `d`, or less when stopped: false when stopping.
  bool pause(std::chrono::milliseconds d);

  ClaimEngine& engine_;
  const std::string replica_id_;
  const AllocatorOptions options_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
  std::atomic<std::int64_t> passes_{0};
  // The allocating thread's own.
  absl::flat_hash_set<std::string> done_;                       // campaigns known done
  absl::flat_hash_map<std::string, std::string> last_problem_;  // logged once until it changes
  // Campaigns held back after a kBadReply pass: until when, and the wait.
  struct Hold {
    std::chrono::steady_clock::time_point until;
    std::chrono::milliseconds wait{0};
  };
  absl::flat_hash_map<std::string, Hold> held_;
};

}  // namespace voucherd
