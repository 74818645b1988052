// slots.h — Redis Cluster's key-to-slot hashing and the slot map: which
// primary serves each of the 16,384 slots, as read from CLUSTER SLOTS and
// patched by MOVED answers. No I/O here; cluster.h does the talking.
//
// A key's slot is CRC16 (the XMODEM variant: polynomial 0x1021, initial
// value 0, no reflection) of the key mod 16384, computed over the hash tag
// instead of the whole key when the key has one: the bytes between the first
// '{' and the first '}' after it, when there is at least one byte between
// them. So "vd:{C}:stock" and "vd:{C}:m:alice" hash "C" and share a slot
// (keys.h), while "a{}b" and "a{b" hash whole.
//
// Usage:
//   const Slot slot = key_slot(CampaignKeys("guangdong-2024").stock());
//   auto map = SlotMap::from_cluster_slots(reply, "10.0.0.5");
//   if (const NodeAddress* node = map->primary(slot)) ...
//
// Thread-safety: the functions are pure; a SlotMap is a value (const
// methods may be called from many threads, changes need one owner).
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/redis/connection.h"

namespace voucherd::redis {

using Slot = std::uint16_t;
// Fixed by the Redis Cluster specification.
inline constexpr std::size_t kSlotCount = 16384;

// CRC16-XMODEM of `bytes` (the checksum itself, for tests and tools).
[[nodiscard]] std::uint16_t crc16_xmodem(std::string_view bytes);
// The part of `key` that is hashed: the hash tag if there is one, else the key.
[[nodiscard]] std::string_view hashed_part(std::string_view key);
// The cluster slot of `key`.
[[nodiscard]] Slot key_slot(std::string_view key);

// A node as clients reach it.
struct NodeAddress {
  std::string host;
  int port = 0;

  [[nodiscard]] std::string text() const { return host + ":" + std::to_string(port); }
  friend bool operator==(const NodeAddress&, const NodeAddress&) = default;
};

// HOST:PORT (the host may itself hold colons, as an IPv6 address does: the
// port follows the last one).
[[nodiscard]] std::expected<NodeAddress, std::string> parse_node_address(std::string_view text);
// HOST:PORT[,HOST:PORT...], at least one; the seeds a router asks for the map.
[[nodiscard]] std::expected<std::vector<NodeAddress>, std::string> parse_seed_list(
    std::string_view text);

// A redirection answer: "-MOVED <slot> <host>:<port>" or "-ASK <slot> <host>:<port>".
struct Redirect {
  enum class Kind : std::uint8_t { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  Slot slot = 0;
  NodeAddress node;
};
// The redirection `reply` carries, if it is one. An empty host in the answer
// (a node that does not know its own address) means the host of the node
// that answered, `answering_host`.
[[nodiscard]] std::optional<Redirect> parse_redirect(const Reply& reply,
                                                     std::string_view answering_host);

// Which primary serves each slot. Replicas are not kept: the router writes
// to primaries only.
//
// Invariant: every owner_ entry is kUnowned or an index into nodes_.
class SlotMap {
 public:
  // An empty map: no slot has a primary.
  SlotMap();

  // Reads a CLUSTER SLOTS answer, asked of a node whose host is
  // `answering_host` (used where the answer leaves a primary's host empty).
  // Ranges whose primary has an unknown endpoint ("?") are left unowned. An
  // answer of the wrong shape is an error, never a partial map.
  [[nodiscard]] static std::expected<SlotMap, std::string> from_cluster_slots(
      const Reply& reply, std::string_view answering_host);

  // The primary serving `slot`, or nullptr if none is known. REQUIRES: slot < kSlotCount.
  [[nodiscard]] const NodeAddress* primary(Slot slot) const;
  // `node` serves `slot` now (a MOVED answer said so). REQUIRES: slot < kSlotCount.
  void assign(Slot slot, const NodeAddress& node);

  // The primaries that serve at least one slot, each once.
  [[nodiscard]] std::vector<NodeAddress> primaries() const;
  // How many slots have a primary (kSlotCount once the cluster is whole).
  [[nodiscard]] std::size_t slots_served() const;

 private:
  static constexpr std::uint16_t kUnowned = 0xffff;
  // Distinct primaries ever named in this map; bounded by the slot count,
  // since a node enters only with a slot.
  std::vector<NodeAddress> nodes_;
  std::vector<std::uint16_t> owner_;  // kSlotCount entries
};

}  // namespace voucherd::redis
