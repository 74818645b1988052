// reply_reader.h — a Redis reply made from fuzz input, for the targets that
// drive voucherd's readers of what Redis answers (records, draw log). The
// shape is up to the input: nil, strings, statuses, errors, integers and
// nested arrays, bounded in depth and size.
#pragma once

#include <utility>

#include "fuzz/fuzz_check.h"
#include "server/redis/connection.h"

namespace voucherd::fuzz {

// A string field: short, or as long as the next length byte says.
inline std::string reply_text(InputReader& in) { return std::string(in.bytes(in.byte())); }

inline redis::Reply make_reply(InputReader& in, int depth = 0) {
  using redis::Reply;
  Reply r;
  const std::uint8_t kind = in.byte();
  switch (kind % 8) {
    case 0:
      r.type = Reply::Type::kNil;
      break;
    case 1:
    case 2:
      r.type = Reply::Type::kString;
      r.str = reply_text(in);
      break;
    case 3:
      r.type = Reply::Type::kStatus;
      r.str = reply_text(in);
      break;
    case 4:
      r.type = Reply::Type::kError;
      r.str = reply_text(in);
      break;
    case 5:  // small integers are the ones scripts answer: statuses, counts
      r.type = Reply::Type::kInteger;
      r.integer = static_cast<std::int8_t>(in.byte());
      break;
    case 6:
      r.type = Reply::Type::kInteger;
      r.integer = static_cast<long long>(in.u64());
      break;
    default: {
      r.type = Reply::Type::kArray;
      const std::size_t n = depth < 3 ? in.byte() % 12 : 0;
      for (std::size_t i = 0; i < n && !in.empty(); ++i)
        r.elements.push_back(make_reply(in, depth + 1));
      break;
    }
  }
  return r;
}

}  // namespace voucherd::fuzz
