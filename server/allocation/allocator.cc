#include "server/allocation/allocator.h"

#include <algorithm>
#include <utility>

#include "server/base/log.h"
#include "server/base/thread_name.h"

namespace voucherd {

Allocator::Allocator(ClaimEngine& engine, std::string replica_id, AllocatorOptions options)
    : engine_(engine), replica_id_(std::move(replica_id)), options_(options) {}

Allocator::~Allocator() { stop(); }

void Allocator::start() {
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { run(); });
}

void Allocator::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Allocator::pause(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return !wake_.wait_for(lock, d, [this] { return stopping_; });
}

void Allocator::run() {
  name_this_thread("vd-allocator");
  do {
    pass();
  } while (pause(options_.poll));
}

void Allocator::pass() {
  passes_.fetch_add(1, std::memory_order_relaxed);
  for (const CampaignRuntime* c : engine_.campaigns()) {
    if (c->spec().mode != CampaignMode::kApplyThenDraw || done_.contains(c->spec().id)) continue;
    if (engine_.clock().now_us() < c->spec().allocation_at_us) continue;
    if (const auto held = held_.find(c->spec().id);
        held != held_.end() && std::chrono::steady_clock::now() < held->second.until) {
      continue;
    }
    allocate(*c);
    std::lock_guard lock(mu_);
    if (stopping_) return;
  }
}

void Allocator::allocate(const CampaignRuntime& c) {
  const std::string& id = c.spec().id;
  AllocationOptions options;
  options.batch_max = options_.batch_max;
  // Each unanswered step gets retry_for of resends, with a growing pause.
  std::chrono::steady_clock::time_point give_up_at;
  std::chrono::milliseconds backoff{50};
  options.retry_wait = [&](int attempt) {
    if (attempt == 1) {
      give_up_at = std::chrono::steady_clock::now() + options_.retry_for;
      backoff = std::chrono::milliseconds(50);
    }
    if (std::chrono::steady_clock::now() >= give_up_at || !pause(backoff)) return false;
    backoff = std::min(2 * backoff, std::chrono::milliseconds(1000));
    return true;
  };
  options.keep_going = [this] {
    std::lock_guard lock(mu_);
    return !stopping_;
  };
  auto problem = [&](const std::string& what) {
    std::string& last = last_problem_[id];
    if (last != what) log::warn("campaign \"" + id + "\": allocation: " + what);
    last = what;
  };
  const auto started = std::chrono::steady_clock::now();
  auto run = engine_.allocate(id, replica_id_, options);
  if (!run && run.error().kind == StoreErrorKind::kBadReply) {
    Hold& hold = held_[id];
    hold.wait = std::clamp(2 * hold.wait, std::chrono::milliseconds(1000), options_.hold_max);
    hold.until = std::chrono::steady_clock::now() + hold.wait;
    return problem(run.error().message + "; tried again in " +
                   std::to_string(hold.wait.count() / 1000) + " s");
  }
  held_.erase(id);
  if (!run) return problem(run.error().message);
  switch (run->result) {
    case AllocationRun::Result::kTooEarly:
    case AllocationRun::Result::kBusy:
      last_problem_.erase(id);
      return;
    case AllocationRun::Result::kStopped:
      log::info("campaign \"" + id + "\": allocation stopped with the replica",
                {{"written_here", run->written}});
      return;
    case AllocationRun::Result::kLost:
      return problem("another replica took the turn after " + std::to_string(run->written) +
                     " rank positions written here");
    case AllocationRun::Result::kDone:
      break;
  }
  done_.insert(id);
  last_problem_.erase(id);
  if (run->written > 0) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    log::info("campaign \"" + id + "\": allocated", {{"applications", run->applications},
                                                     {"written_here", run->written},
                                                     {"selected_here", run->selected},
                                                     {"ms", ms}});
  } else {
    log::info("campaign \"" + id + "\": the allocation is done");
  }
}

}  // namespace voucherd
