#include "server/redis/slots.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "engine/check.h"

namespace voucherd::redis {
namespace {

// One table entry per byte value: the CRC16-XMODEM register after shifting
// that byte through, eight bits at a time (polynomial 0x1021, MSB first).
constexpr std::array<std::uint16_t, 256> make_crc16_table() {
  std::array<std::uint16_t, 256> table{};
  for (unsigned byte = 0; byte < 256; ++byte) {
    std::uint16_t crc = static_cast<std::uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<std::uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<std::uint16_t, 256> kCrc16Table = make_crc16_table();

constexpr std::uint16_t crc16_of(std::string_view bytes) {
  std::uint16_t crc = 0;
  for (const char c : bytes) {
    const auto byte = static_cast<std::uint8_t>(c);
    crc = static_cast<std::uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ byte) & 0xff]);
  }
  return crc;
}
// The catalogue's check value of CRC16-XMODEM, also the Redis Cluster
// specification's example.
static_assert(crc16_of("123456789") == 0x31c3);

// A cluster has at most about a thousand primaries (the size Redis Cluster
// is designed for); the map forgets primaries that serve no slot when it
// names more than this, so MOVED answers cannot grow it without bound.
constexpr std::size_t kMapNodesMax = 1000;

std::optional<int> parse_port(std::string_view text) {
  int port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port <= 0 || port > 65535) {
    return std::nullopt;
  }
  return port;
}

}  // namespace

std::uint16_t crc16_xmodem(std::string_view bytes) { return crc16_of(bytes); }

std::string_view hashed_part(std::string_view key) {
  const auto open = key.find('{');
  if (open == std::string_view::npos) return key;
  const auto close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

Slot key_slot(std::string_view key) {
  // 16384 is a power of two: the modulo is a mask of the low 14 bits.
  static_assert((kSlotCount & (kSlotCount - 1)) == 0);
  return static_cast<Slot>(crc16_xmodem(hashed_part(key)) & (kSlotCount - 1));
}

std::expected<NodeAddress, std::string> parse_node_address(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return std::unexpected("a cluster node must look like HOST:PORT, not '" + std::string(text) +
                           "'");
  }
  const auto port = parse_port(text.substr(colon + 1));
  if (!port) {
    return std::unexpected("a cluster node's port must be a number from 1 to 65535, not '" +
                           std::string(text) + "'");
  }
  return NodeAddress{std::string(text.substr(0, colon)), *port};
}

std::expected<std::vector<NodeAddress>, std::string> parse_seed_list(std::string_view text) {
  std::vector<NodeAddress> seeds;
  while (true) {
    const auto comma = text.find(',');
    auto node = parse_node_address(text.substr(0, comma));
    if (!node) return std::unexpected(node.error());
    seeds.push_back(std::move(*node));
    if (comma == std::string_view::npos) break;
    text = text.substr(comma + 1);
  }
  return seeds;
}

std::optional<Redirect> parse_redirect(const Reply& reply, std::string_view answering_host) {
  if (!reply.is_error()) return std::nullopt;
  std::string_view text = reply.str;
  Redirect redirect;
  if (text.starts_with("MOVED ")) {
    redirect.kind = Redirect::Kind::kMoved;
    text.remove_prefix(6);
  } else if (text.starts_with("ASK ")) {
    redirect.kind = Redirect::Kind::kAsk;
    text.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  unsigned slot = 0;
  const std::string_view slot_text = text.substr(0, space);
  const auto [end, ec] =
      std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), slot);
  if (ec != std::errc() || end != slot_text.data() + slot_text.size() || slot >= kSlotCount) {
    return std::nullopt;
  }
  redirect.slot = static_cast<Slot>(slot);
  const std::string_view node = text.substr(space + 1);
  const auto colon = node.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto port = parse_port(node.substr(colon + 1));
  if (!port) return std::nullopt;
  redirect.node.host =
      colon == 0 ? std::string(answering_host) : std::string(node.substr(0, colon));
  redirect.node.port = *port;
  return redirect;
}

SlotMap::SlotMap() : owner_(kSlotCount, kUnowned) {}

std::expected<SlotMap, std::string> SlotMap::from_cluster_slots(const Reply& reply,
                                                                std::string_view answering_host) {
  if (reply.is_error()) return std::unexpected("CLUSTER SLOTS refused: " + reply.str);
  if (reply.type != Reply::Type::kArray) {
    return std::unexpected("CLUSTER SLOTS did not answer an array");
  }
  SlotMap map;
  for (const Reply& range : reply.elements) {
    // [first slot, last slot, primary, replica...]; a node is [host, port, id, ...].
    if (range.type != Reply::Type::kArray || range.elements.size() < 3 ||
        range.elements[0].type != Reply::Type::kInteger ||
        range.elements[1].type != Reply::Type::kInteger ||
        range.elements[2].type != Reply::Type::kArray || range.elements[2].elements.size() < 2 ||
        range.elements[2].elements[1].type != Reply::Type::kInteger) {
      return std::unexpected("CLUSTER SLOTS answered a range of the wrong shape");
    }
    const long long first = range.elements[0].integer;
    const long long last = range.elements[1].integer;
    if (first < 0 || last < first || last >= static_cast<long long>(kSlotCount)) {
      return std::unexpected("CLUSTER SLOTS answered a range outside 0..16383");
    }
    const Reply& host_reply = range.elements[2].elements[0];
    const long long port = range.elements[2].elements[1].integer;
    if (port <= 0 || port > 65535) return std::unexpected("CLUSTER SLOTS answered a bad port");
    NodeAddress node;
    if (host_reply.type == Reply::Type::kNil ||
        (host_reply.type == Reply::Type::kString && host_reply.str.empty())) {
      // Redis 7: no preferred endpoint; reach it at the host we asked.
      node.host = std::string(answering_host);
    } else if (host_reply.type == Reply::Type::kString) {
      // "?" is an endpoint the cluster does not know: leave the range unowned.
      if (host_reply.str == "?") continue;
      node.host = host_reply.str;
    } else {
      return std::unexpected("CLUSTER SLOTS answered a host that is not a string");
    }
    node.port = static_cast<int>(port);
    for (long long slot = first; slot <= last; ++slot) map.assign(static_cast<Slot>(slot), node);
  }
  return map;
}

const NodeAddress* SlotMap::primary(Slot slot) const {
  VOUCHERD_CHECK(slot < kSlotCount, "a slot is below 16384");
  const std::uint16_t owner = owner_[slot];
  if (owner == kUnowned) return nullptr;
  VOUCHERD_DCHECK(owner < nodes_.size(), "a slot's owner is a known node");
  return &nodes_[owner];
}

void SlotMap::assign(Slot slot, const NodeAddress& node) {
  VOUCHERD_CHECK(slot < kSlotCount, "a slot is below 16384");
  auto it = std::find(nodes_.begin(), nodes_.end(), node);
  if (it == nodes_.end()) {
    if (nodes_.size() >= kMapNodesMax) {
      // Forget the nodes that serve nothing any more, renumbering the rest.
      std::vector<std::uint16_t> renumbered(nodes_.size(), kUnowned);
      std::vector<NodeAddress> kept;
      for (std::uint16_t& owner : owner_) {
        if (owner == kUnowned) continue;
        if (renumbered[owner] == kUnowned) {
          renumbered[owner] = static_cast<std::uint16_t>(kept.size());
          kept.push_back(std::move(nodes_[owner]));
        }
        owner = renumbered[owner];
      }
      nodes_ = std::move(kept);
    }
    // There are at most kSlotCount distinct owners, so this fits (and stays
    // below kUnowned).
    VOUCHERD_CHECK(nodes_.size() < kMapNodesMax + kSlotCount, "the map's nodes are bounded");
    nodes_.push_back(node);
    it = nodes_.end() - 1;
  }
  owner_[slot] = static_cast<std::uint16_t>(it - nodes_.begin());
}

std::vector<NodeAddress> SlotMap::primaries() const {
  std::vector<bool> serving(nodes_.size(), false);
  for (const std::uint16_t owner : owner_) {
    if (owner != kUnowned) serving[owner] = true;
  }
  std::vector<NodeAddress> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (serving[i]) out.push_back(nodes_[i]);
  }
  return out;
}

std::size_t SlotMap::slots_served() const {
  return static_cast<std::size_t>(
      std::count_if(owner_.begin(), owner_.end(), [](std::uint16_t o) { return o != kUnowned; }));
}

}  // namespace voucherd::redis
