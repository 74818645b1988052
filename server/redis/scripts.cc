#include "server/redis/scripts.h"

#include <array>
#include <string>

#include "lua/alloc_batch.lua.h"
#include "lua/alloc_release.lua.h"
#include "lua/alloc_take.lua.h"
#include "lua/application.lua.h"
#include "lua/apply.lua.h"
#include "lua/beat.lua.h"
#include "lua/cancel.lua.h"
#include "lua/claim.lua.h"
#include "lua/draw.lua.h"
#include "lua/index.lua.h"
#include "lua/lease.lua.h"
#include "lua/member_vouchers.lua.h"
#include "lua/now_ms.lua.h"
#include "lua/record_fields.lua.h"
#include "lua/redeem.lua.h"
#include "lua/register.lua.h"
#include "lua/replicas.lua.h"
#include "lua/return_units.lua.h"
#include "server/redis/apply_log.h"
#include "server/redis/lottery_log.h"
#include "server/redis/records.h"

namespace voucherd::redis {
namespace {

// A prelude's text followed by the script's.
std::string after(std::string_view prelude, std::string_view script) {
  std::string source;
  source.reserve(prelude.size() + script.size());
  source.append(prelude).append(script);
  return source;
}

}  // namespace

const Script& index_script() {
  static const Script script{std::string(lua::kIndex)};
  return script;
}

const Script& register_script() {
  static const Script script{std::string(lua::kRegister)};
  return script;
}

const Script& lease_script() {
  static const Script script{after(lua::kNowMs, lua::kLease)};
  return script;
}

const Script& beat_script() {
  static const Script script{after(lua::kNowMs, lua::kBeat)};
  return script;
}

const Script& return_units_script() {
  static const Script script{std::string(lua::kReturnUnits)};
  return script;
}

const Script& claim_script() {
  static const Script script{std::string(lua::kClaim)};
  return script;
}

const std::string& record_fields_lua() {
  static const std::string prelude{lua::kRecordFields};
  return prelude;
}

const Script& redeem_script() {
  static const Script script{after(lua::kRecordFields, lua::kRedeem)};
  return script;
}

const Script& cancel_script() {
  static const Script script{after(lua::kRecordFields, lua::kCancel)};
  return script;
}

const Script& member_vouchers_script() {
  static const Script script{std::string(lua::kMemberVouchers)};
  return script;
}

const Script& draw_script() {
  static const Script script{std::string(lua::kDraw)};
  return script;
}

const Script& replicas_script() {
  static const Script script{after(lua::kNowMs, lua::kReplicas)};
  return script;
}

const Script& apply_script() {
  static const Script script{after(lua::kNowMs, lua::kApply)};
  return script;
}

const Script& application_script() {
  static const Script script{std::string(lua::kApplication)};
  return script;
}

const Script& alloc_take_script() {
  static const Script script{after(lua::kNowMs, lua::kAllocTake)};
  return script;
}

const Script& alloc_release_script() {
  static const Script script{std::string(lua::kAllocRelease)};
  return script;
}

const Script& alloc_batch_script() {
  static const Script script{after(lua::kNowMs, lua::kAllocBatch)};
  return script;
}

std::span<const NamedScript> all_scripts() {
  static const std::array<NamedScript, 16> scripts{{
      {"index", &index_script()},
      {"register", &register_script()},
      {"lease", &lease_script()},
      {"beat", &beat_script()},
      {"return_units", &return_units_script()},
      {"claim", &claim_script()},
      {"redeem", &redeem_script()},
      {"cancel", &cancel_script()},
      {"member_vouchers", &member_vouchers_script()},
      {"draw", &draw_script()},
      {"replicas", &replicas_script()},
      {"apply", &apply_script()},
      {"application", &application_script()},
      {"alloc_take", &alloc_take_script()},
      {"alloc_release", &alloc_release_script()},
      {"alloc_batch", &alloc_batch_script()},
  }};
  return scripts;
}

}  // namespace voucherd::redis
