// fuzz_check.h — what every fuzz target of fuzz/ shares: FUZZ_EXPECT, the
// property check that is on in every build and aborts (so libFuzzer records
// the input as a crash), and a reader that splits a fuzz input into choices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

// A property the target asserts of what the code under test answered.
// Prints the property and what broke it, then aborts.
#define FUZZ_EXPECT(cond, what)                                                                  \
  do {                                                                                           \
    if (!(cond)) [[unlikely]] {                                                                  \
      std::fprintf(stderr, "fuzz property broken at %s:%d: %s: %s\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                                   \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

namespace voucherd::fuzz {

// Takes choices off the front of a fuzz input; past its end every choice is 0
// and every string empty, so a short input is as good as any other.
class InputReader {
 public:
  InputReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | byte();
    return v;
  }
  std::uint64_t u64() { return (std::uint64_t{u32()} << 32) | u32(); }
  // The next `n` bytes or fewer.
  std::string_view bytes(std::size_t n) {
    const std::size_t take = n < size_ - pos_ ? n : size_ - pos_;
    std::string_view out(reinterpret_cast<const char*>(data_ + pos_), take);
    pos_ += take;
    return out;
  }
  // Whatever is left.
  std::string_view rest() { return bytes(size_ - pos_); }
  bool empty() const { return pos_ == size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace voucherd::fuzz
