// allocator.h — the allocating thread ("vd-allocator") of APPLY_THEN_DRAW
// campaigns (docs/apply-then-draw.md, "The allocation run").
//
// Every replica runs one. Every `poll` it asks the engine to allocate each
// APPLY_THEN_DRAW campaign that is past its allocation time and not yet
// known done; the store's turn decides which replica writes, and the others
// learn from it when the allocation is done (their engines may then reveal
// the seed). A step the store leaves unanswered is sent again, the same
// step, with a growing pause, for at most `retry_for`; then the next poll
// resumes from where the store says the allocation stands.
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
};

class Allocator {
 public:
  // `engine` must outlive the allocator.
  Allocator(ClaimEngine& engine, std::string replica_id, AllocatorOptions options = {});
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  void start();
  // Ends the thread: a step in flight finishes (or its retries stop), and
  // what is not written is resumed by another replica or a restart.
  void stop();

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
  // The allocating thread's own.
  absl::flat_hash_set<std::string> done_;                       // campaigns known done
  absl::flat_hash_map<std::string, std::string> last_problem_;  // logged once until it changes
};

}  // namespace voucherd
