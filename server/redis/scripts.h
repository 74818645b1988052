// scripts.h — voucherd's Lua scripts as Script objects (EVALSHA by SHA-1,
// loaded again on NOSCRIPT; connection.h).
//
// The sources live in server/redis/scripts/*.lua, one script a file, each
// opening with its KEYS, ARGV and answers; the build embeds each file's text
// (scripts/embed_lua.cmake) and scripts.cc composes the Script objects once,
// on first use: a script that needs Redis's clock gets the now_ms.lua prelude
// in front, one that reads voucher records the record_fields.lua prelude.
// What the scripts answer is named in script_replies.h.
//
// Also defined here, declared next to their commands: redeem_script(),
// cancel_script(), member_vouchers_script(), record_fields_lua()
// (records.h), draw_script() (lottery_log.h) and the apply campaigns'
// scripts (apply_log.h).
//
// Thread-safety: every function may be called from any thread (the objects
// are function-local statics, built once).
#pragma once

#include <span>
#include <string_view>

#include "server/redis/connection.h"

namespace voucherd::redis {

[[nodiscard]] const Script& index_script();         // index.lua
[[nodiscard]] const Script& register_script();      // register.lua
[[nodiscard]] const Script& lease_script();         // now_ms.lua + lease.lua
[[nodiscard]] const Script& beat_script();          // now_ms.lua + beat.lua
[[nodiscard]] const Script& return_units_script();  // return_units.lua
[[nodiscard]] const Script& claim_script();         // claim.lua
[[nodiscard]] const Script& replicas_script();      // now_ms.lua + replicas.lua

struct NamedScript {
  std::string_view name;  // the .lua file's name, without .lua
  const Script* script;
};
// Every script voucherd sends (not the preludes), for tests and tools.
[[nodiscard]] std::span<const NamedScript> all_scripts();

}  // namespace voucherd::redis
