// keys.h — the Redis key schema of voucherd, in one place. Every key name the
// Redis store (and the benchmark baseline) writes or reads is made here; no
// other file under server/redis/ spells one.
//
// Hash tags. Every key of a campaign C is "<prefix>{C}:<suffix>": Redis
// Cluster hashes only what is inside the first braces, so all of a
// campaign's keys live in one slot, and a script may touch any of them
// atomically (a script must not touch keys of two slots). Different
// campaigns spread over a cluster's nodes. The registry has a tag of its own
// ({registry}), so its two keys share a slot too.
//
// The store's keys (prefix "vd:"; docs/redis.md has the full table):
//   vd:{C}:def             string: the campaign definition (Campaign protobuf bytes)
//   vd:{C}:opens           string: starts_at (Unix µs), for replace-before-open
//   vd:{C}:stock           hash SKU -> units in the shared pool
//   vd:{C}:leases          hash "<replica>|<SKU>" -> units leased to that replica
//   vd:{C}:leased          hash SKU -> sum of the leases of all replicas
//   vd:{C}:issued          hash SKU -> vouchers issued; _members -> members holding one
//   vd:{C}:redeemed        hash SKU -> vouchers redeemed
//   vd:{C}:redeemed_codes  set of redeemed codes (the settlement export)
//   vd:{C}:cancelled       hash SKU -> vouchers cancelled
//   vd:{C}:expiring        hash "<SKU>|<minute>" -> ISSUED vouchers expiring then
//   vd:{C}:returns         string: how many take-backs and cancellations gave units back
//   vd:{C}:alive           hash replica -> latest beat (Unix ms, Redis's clock)
//   vd:{C}:holders         list: the holders feed (records.h)
//   vd:{C}:seed            string: a LOTTERY's seed (64 hex digits)
//   vd:{C}:drawn           string: draws logged; vd:{C}:drawn:<k> the log's chunk k
//   vd:{C}:m:<member>      string (limit 1: the code) or hash (n, last, r:<request>)
//   vd:{C}:v:<code>        string: the voucher record (records.h)
//   vd:{C}:d:<member>      string: a LOTTERY member's draws (lottery_log.h)
//   vd:{C}:apps            hash member -> an APPLY_THEN_DRAW application (apply_log.h)
//   vd:{C}:alloc           hash: the allocation's state, turn and cursor (apply_log.h)
//   vd:{C}:won             hash member -> SKU index won by the allocation (apply_log.h)
//   vd:{registry}:campaigns  hash campaign id -> definition
//   vd:{registry}:version    string: moves whenever the registry changes
//
// The claim script takes a member id and a code from the tail of their
// keys (m: and v: are equally long), so that shape is load-bearing. No
// script builds a key name: every key a script touches is declared in KEYS
// (the draw log's chunks drawn:<k> included; docs/redis.md).
//
// The benchmark baseline (bench/baseline/per_claim_log.cc) uses the same
// helper with the prefix "vdb:", so it never touches the store's keys; of
// the keys above it uses stock, issued, redeemed, redeemed_codes, expiring
// and v:<code>, plus one of its own, vdb:{C}:members (hash member -> code).
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace voucherd::redis {

inline constexpr std::string_view kStoreKeyPrefix = "vd:";
inline constexpr std::string_view kBaselineKeyPrefix = "vdb:";

inline constexpr std::string_view kRegistryKey = "vd:{registry}:campaigns";
inline constexpr std::string_view kRegistryVersionKey = "vd:{registry}:version";

// "<prefix>{<campaign id>}:<suffix>", e.g. vd:{guangdong-2024}:stock.
[[nodiscard]] std::string campaign_key(std::string_view prefix, std::string_view campaign_id,
                                       std::string_view suffix);

// The keys of one campaign. Holds "<prefix>{C}:" once; each key is that and
// a suffix.
class CampaignKeys {
 public:
  explicit CampaignKeys(std::string_view campaign_id, std::string_view prefix = kStoreKeyPrefix);

  [[nodiscard]] std::string def() const { return key("def"); }
  [[nodiscard]] std::string opens() const { return key("opens"); }
  [[nodiscard]] std::string stock() const { return key("stock"); }
  [[nodiscard]] std::string leases() const { return key("leases"); }
  [[nodiscard]] std::string leased() const { return key("leased"); }
  [[nodiscard]] std::string issued() const { return key("issued"); }
  [[nodiscard]] std::string redeemed() const { return key("redeemed"); }
  [[nodiscard]] std::string redeemed_codes() const { return key("redeemed_codes"); }
  [[nodiscard]] std::string cancelled() const { return key("cancelled"); }
  [[nodiscard]] std::string expiring() const { return key("expiring"); }
  [[nodiscard]] std::string returns() const { return key("returns"); }
  [[nodiscard]] std::string alive() const { return key("alive"); }
  [[nodiscard]] std::string holders() const { return key("holders"); }
  [[nodiscard]] std::string seed() const { return key("seed"); }
  [[nodiscard]] std::string drawn() const { return key("drawn"); }
  [[nodiscard]] std::string drawn_chunk(std::int64_t k) const;
  // APPLY_THEN_DRAW campaigns (apply_log.h).
  [[nodiscard]] std::string applications() const { return key("apps"); }
  [[nodiscard]] std::string allocation() const { return key("alloc"); }
  [[nodiscard]] std::string won() const { return key("won"); }
  // The baseline's allowances (one hash for the campaign).
  [[nodiscard]] std::string members() const { return key("members"); }

  // A member's allowance key, and its prefix (what the scripts strip).
  [[nodiscard]] std::string member(std::string_view member_id) const;
  [[nodiscard]] std::string member_prefix() const { return key("m:"); }
  // A voucher's record key, and its prefix.
  [[nodiscard]] std::string voucher(std::string_view code) const;
  [[nodiscard]] std::string voucher_prefix() const { return key("v:"); }
  // A LOTTERY member's draw record.
  [[nodiscard]] std::string draws(std::string_view member_id) const;

 private:
  [[nodiscard]] std::string key(std::string_view suffix) const;

  std::string tagged_;  // "<prefix>{<campaign id>}:"
};

}  // namespace voucherd::redis
