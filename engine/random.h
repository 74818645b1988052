// random.h — the randomness seam. Voucher codes take their unguessable bits
// from a RandomSource; production uses the OS CSPRNG (through OpenSSL),
// tests may inject a deterministic source.
//
// Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

namespace voucherd {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual void fill(std::span<std::uint8_t> out) = 0;
};

// OpenSSL's CSPRNG (seeded from the OS), read in 4 KiB blocks into a
// per-thread buffer so that a code costs a memcpy, not a RAND_bytes call.
class SecureRandom final : public RandomSource {
 public:
  void fill(std::span<std::uint8_t> out) override;
};

// Deterministic and NOT secret: splitmix64 over an atomic counter. Tests only.
class DeterministicRandom final : public RandomSource {
 public:
  explicit DeterministicRandom(std::uint64_t seed) : state_(seed) {}
  void fill(std::span<std::uint8_t> out) override;

 private:
  std::atomic<std::uint64_t> state_;
};

}  // namespace voucherd
