#include "engine/random.h"

#include <openssl/rand.h>

#include <array>
#include <cstdlib>
#include <cstring>

#include "engine/check.h"

namespace voucherd {
namespace {

constexpr std::size_t kBufferBytes = 4096;

struct ThreadBuffer {
  std::array<std::uint8_t, kBufferBytes> bytes{};
  std::size_t used = kBufferBytes;  // empty
};

}  // namespace

void SecureRandom::fill(std::span<std::uint8_t> out) {
  thread_local ThreadBuffer buf;
  std::size_t done = 0;
  while (done < out.size()) {
    if (buf.used == buf.bytes.size()) {
      // RAND_bytes only fails if the OS entropy source is broken; minting
      // guessable codes would be worse than stopping.
      VOUCHERD_CHECK(RAND_bytes(buf.bytes.data(), static_cast<int>(buf.bytes.size())) == 1,
                     "OpenSSL's CSPRNG gives bytes (without them no code or seed is safe)");
      buf.used = 0;
    }
    const std::size_t n = std::min(out.size() - done, buf.bytes.size() - buf.used);
    std::memcpy(out.data() + done, buf.bytes.data() + buf.used, n);
    // Wipe what was handed out so a later memory disclosure cannot replay it.
    std::memset(buf.bytes.data() + buf.used, 0, n);
    buf.used += n;
    done += n;
  }
}

void DeterministicRandom::fill(std::span<std::uint8_t> out) {
  std::size_t i = 0;
  while (i < out.size()) {
    // Relaxed: each caller only needs a distinct counter value.
    std::uint64_t z = state_.fetch_add(0x9e3779b97f4a7c15ull, std::memory_order_relaxed);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int b = 0; b < 8 && i < out.size(); ++b)
      out[i++] = static_cast<std::uint8_t>(z >> (8 * b));
  }
}

}  // namespace voucherd
