// clock.h — the time seam. The engine reads time only through Clock so that
// tests can drive windows and expiry with a FakeClock.
//
// Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>

#include "engine/model.h"

namespace voucherd {

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual UnixMicros now_us() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] UnixMicros now_us() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock tests set by hand. Relaxed order is enough: tests only need each
// read to see some value that was set, not ordering against other memory.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(UnixMicros start_us) : now_us_(start_us) {}
  [[nodiscard]] UnixMicros now_us() const override {
    return now_us_.load(std::memory_order_relaxed);
  }
  void set_us(UnixMicros t) { now_us_.store(t, std::memory_order_relaxed); }
  void advance_us(UnixMicros d) { now_us_.fetch_add(d, std::memory_order_relaxed); }

 private:
  std::atomic<UnixMicros> now_us_;
};

}  // namespace voucherd
