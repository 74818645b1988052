// seed_hmac.h — how the messages a campaign's seed signs are framed: a
// fixed domain string, then each field as lp(x), a 4-byte big-endian
// length followed by the bytes, and numbers as big-endian bytes. A lottery
// draw's randomness (lottery.h) and an applicant's rank (apply.h) are
// HMAC-SHA256 of such messages, keyed by the seed.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace voucherd {

inline void append_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

// lp(bytes): their length as 4 bytes big-endian, then the bytes.
inline void append_lp(std::string& out, std::string_view bytes) {
  append_u32(out, static_cast<std::uint32_t>(bytes.size()));
  out.append(bytes);
}

}  // namespace voucherd
