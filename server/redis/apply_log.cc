#include "server/redis/apply_log.h"

#include <algorithm>
#include <charconv>

#include "engine/limits.h"
#include "server/redis/keys.h"
#include "server/redis/records.h"
#include "server/redis/script_replies.h"

namespace voucherd::redis {
namespace {

constexpr char kSep = '\x1f';
// Arguments per winner of alloc_batch.lua after its four.
constexpr std::size_t kWinnerArgs = 6;

bool parse_int(std::string_view s, std::int64_t& out) {
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool integer_at(const Reply& r, std::size_t i, std::int64_t& out) {
  if (i >= r.elements.size() || r.elements[i].type != Reply::Type::kInteger) return false;
  out = r.elements[i].integer;
  return true;
}

bool string_at(const Reply& r, std::size_t i, std::string& out) {
  if (i >= r.elements.size() || r.elements[i].type != Reply::Type::kString) return false;
  out = r.elements[i].str;
  return true;
}

// The first whole millisecond at or after `us` (times are not negative:
// campaign_validation).
std::int64_t ms_at_or_after(UnixMicros us) { return us / 1000 + (us % 1000 > 0 ? 1 : 0); }

// {owner, epoch, next, total} at elements 1..4 of `r`, checked.
bool parse_turn_head(const Reply& r, AllocationTurn& turn) {
  return string_at(r, 1, turn.owner) && integer_at(r, 2, turn.epoch) &&
         integer_at(r, 3, turn.next) && integer_at(r, 4, turn.total) && turn.epoch >= 0 &&
         turn.total >= 0 && turn.next >= 0 && turn.next <= turn.total;
}

}  // namespace

std::string encode_preferences(std::span<const std::uint32_t> preferred) {
  std::string out;
  for (std::uint32_t sku : preferred) {
    if (!out.empty()) out.push_back(',');
    out += std::to_string(sku);
  }
  return out;
}

std::optional<ApplicationEntry> decode_application(const CampaignSpec& spec,
                                                   std::string_view member_id,
                                                   std::string_view value,
                                                   std::string* request_id) {
  const std::size_t first = value.find(kSep);
  if (first == std::string_view::npos) return std::nullopt;
  const std::size_t second = value.find(kSep, first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  std::int64_t ms = 0;
  ApplicationEntry e;
  if (!parse_int(value.substr(0, first), ms) || ms < 0 ||
      __builtin_mul_overflow(ms, 1000, &e.applied_at_us)) {
    return std::nullopt;
  }
  std::string_view rest = value.substr(second + 1);
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    std::int64_t sku = 0;
    if (!parse_int(rest.substr(0, comma), sku) || sku < 0 ||
        sku >= static_cast<std::int64_t>(spec.skus.size()) ||
        e.preferred.size() == limits::kApplicationPreferencesMax ||
        std::find(e.preferred.begin(), e.preferred.end(), sku) != e.preferred.end()) {
      return std::nullopt;
    }
    e.preferred.push_back(static_cast<std::uint32_t>(sku));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
    if (rest.empty()) return std::nullopt;  // a trailing comma
  }
  e.member_id = std::string(member_id);
  if (request_id != nullptr) request_id->assign(value.substr(first + 1, second - first - 1));
  return e;
}

Command apply_command(const CampaignSpec& spec, std::span<ApplicationLogWrite* const> writes,
                      std::int64_t bound) {
  const CampaignKeys campaign(spec.id);
  // The window in Redis's milliseconds: it opens at the first whole one at or
  // after starts_at (never before, so a definition replaced until starts_at
  // has no application), and closes at the one ends_at falls in.
  std::vector<std::string> args{std::to_string(ms_at_or_after(spec.starts_at_us)),
                                std::to_string(spec.ends_at_us / 1000), std::to_string(bound)};
  args.reserve(args.size() + 3 * writes.size());
  for (const ApplicationLogWrite* w : writes) {
    args.emplace_back(w->application.member_id);
    args.emplace_back(w->application.request_id);
    args.push_back(encode_preferences(w->application.preferred));
  }
  return Connection::evalsha(apply_script(), {campaign.applications(), campaign.allocation()},
                             args);
}

std::expected<std::vector<ApplyReply>, std::string> parse_apply_reply(
    const CampaignSpec& spec, std::span<ApplicationLogWrite* const> writes, const Reply& reply) {
  if (reply.is_error()) return std::unexpected("apply script failed: " + reply.str);
  if (reply.type != Reply::Type::kArray || reply.elements.size() != writes.size()) {
    return std::unexpected("apply script: expected " + std::to_string(writes.size()) + " answers");
  }
  std::vector<ApplyReply> out(writes.size());
  for (std::size_t i = 0; i < writes.size(); ++i) {
    const Reply& r = reply.elements[i];
    std::int64_t status = 0;
    if (r.type != Reply::Type::kArray || !integer_at(r, 0, status)) {
      return std::unexpected("apply script: answer " + std::to_string(i) + " is not {status, ...}");
    }
    namespace a = replies::apply;
    switch (status) {
      case a::kNotOpen:
        out[i].status = ApplyLogStatus::kNotOpen;
        continue;
      case a::kClosed:
        out[i].status = ApplyLogStatus::kClosed;
        continue;
      case a::kFull:
        out[i].status = ApplyLogStatus::kFull;
        continue;
      case a::kRecorded:
        out[i].status = ApplyLogStatus::kRecorded;
        break;
      case a::kReplaced:
        out[i].status = ApplyLogStatus::kReplaced;
        break;
      case a::kRepeat:
        out[i].status = ApplyLogStatus::kRepeat;
        break;
      default:
        return std::unexpected("apply script: unknown status " + std::to_string(status));
    }
    std::string value;
    std::optional<ApplicationEntry> stored;
    if (r.elements.size() == 2 && string_at(r, 1, value)) {
      stored = decode_application(spec, writes[i]->application.member_id, value);
    }
    if (!stored) {
      return std::unexpected("apply script: answer " + std::to_string(i) +
                             " holds no readable application");
    }
    out[i].stored = std::move(*stored);
  }
  return out;
}

Command application_command(const CampaignSpec& spec, std::string_view member_id,
                            std::string_view record_code) {
  const CampaignKeys campaign(spec.id);
  std::vector<std::string> keys{campaign.applications(), campaign.won(), campaign.allocation(),
                                campaign.member(member_id)};
  if (!record_code.empty()) keys.push_back(campaign.voucher(record_code));
  return Connection::evalsha(application_script(), keys,
                             {std::string(member_id), campaign.voucher_prefix()});
}

std::expected<ApplicationReply, std::string> parse_application_reply(const CampaignSpec& spec,
                                                                     std::string_view member_id,
                                                                     const Reply& reply) {
  if (reply.is_error()) return std::unexpected("application script failed: " + reply.str);
  std::int64_t kind = 0;
  if (reply.type != Reply::Type::kArray || !integer_at(reply, 0, kind)) {
    return std::unexpected("application script: the answer is not {kind, ...}");
  }
  namespace a = replies::application;
  ApplicationReply out;
  const auto bad = [&](const char* what) {
    return std::unexpected(std::string("application script: ") + what + " for member \"" +
                           std::string(member_id) + "\"");
  };
  if (kind == a::kNotFound) {
    if (reply.elements.size() != 1) return bad("an answer of another shape");
    out.kind = ApplicationReply::Kind::kNotFound;
    return out;
  }
  if (kind == a::kRecordKey) {
    if (reply.elements.size() != 2 || !string_at(reply, 1, out.code)) {
      return bad("an answer of another shape");
    }
    out.kind = ApplicationReply::Kind::kRecordKey;
    return out;
  }
  std::string value;
  const std::size_t expected = kind == a::kSelected ? 5 : 2;
  if ((kind != a::kPending && kind != a::kSelected && kind != a::kNotSelected) ||
      reply.elements.size() != expected || !string_at(reply, 1, value)) {
    return bad("an answer of another shape");
  }
  auto application = decode_application(spec, member_id, value);
  if (!application) return bad("an unreadable application");
  out.kind = ApplicationReply::Kind::kFound;
  out.application = std::move(*application);
  if (kind == a::kPending) {
    out.state = ApplicationState::kPending;
    return out;
  }
  if (kind == a::kNotSelected) {
    out.state = ApplicationState::kNotSelected;
    return out;
  }
  std::int64_t sku = 0;
  std::string record;
  if (!integer_at(reply, 2, sku) || !string_at(reply, 3, out.code) ||
      !string_at(reply, 4, record) || sku < 0 ||
      sku >= static_cast<std::int64_t>(spec.skus.size())) {
    return bad("an answer of another shape");
  }
  out.voucher = decode_voucher(spec.id, out.code, record);
  if (!out.voucher || out.voucher->member_id() != member_id ||
      out.voucher->sku_id() != spec.skus[static_cast<std::size_t>(sku)].id) {
    return bad("an unreadable voucher record");
  }
  out.state = ApplicationState::kSelected;
  return out;
}

Command alloc_take_command(const CampaignSpec& spec, std::string_view replica,
                           std::chrono::milliseconds lease) {
  const CampaignKeys campaign(spec.id);
  std::vector<std::string> args{std::string(replica), std::to_string(lease.count()),
                                std::to_string(ms_at_or_after(spec.allocation_at_us))};
  for (const SkuSpec& s : spec.skus) args.push_back(s.id);
  return Connection::evalsha(alloc_take_script(),
                             {campaign.allocation(), campaign.applications(), campaign.stock()},
                             args);
}

std::expected<AllocationTurn, std::string> parse_alloc_take_reply(const CampaignSpec& spec,
                                                                  const Reply& reply) {
  if (reply.is_error()) return std::unexpected("alloc_take script failed: " + reply.str);
  AllocationTurn turn;
  std::int64_t kind = 0;
  if (reply.type != Reply::Type::kArray || reply.elements.size() != 5 + spec.skus.size() ||
      !integer_at(reply, 0, kind) || !parse_turn_head(reply, turn)) {
    return std::unexpected("alloc_take script: an answer of another shape");
  }
  namespace a = replies::alloc_take;
  switch (kind) {
    case a::kTooEarly:
      turn.kind = AllocationTurn::Kind::kTooEarly;
      break;
    case a::kBusy:
      turn.kind = AllocationTurn::Kind::kBusy;
      break;
    case a::kTaken:
      turn.kind = AllocationTurn::Kind::kTaken;
      break;
    case a::kDone:
      turn.kind = AllocationTurn::Kind::kDone;
      break;
    default:
      return std::unexpected("alloc_take script: unknown kind " + std::to_string(kind));
  }
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    std::int64_t left = 0;
    if (!integer_at(reply, 5 + i, left) || left < 0) {
      return std::unexpected("alloc_take script: SKU \"" + spec.skus[i].id +
                             "\" has no stock count");
    }
    turn.stock_left.push_back(left);
  }
  return turn;
}

Command alloc_release_command(const CampaignSpec& spec, std::string_view replica) {
  return Connection::evalsha(alloc_release_script(), {CampaignKeys(spec.id).allocation()},
                             {std::string(replica)});
}

Command alloc_batch_command(const CampaignSpec& spec, const AllocationTurn& turn, std::int64_t from,
                            std::int64_t to, std::span<const AllocatedVoucher> winners) {
  const CampaignKeys campaign(spec.id);
  std::vector<std::string> keys{campaign.allocation(), campaign.stock(), campaign.issued(),
                                campaign.expiring(), campaign.won()};
  keys.reserve(keys.size() + 2 * winners.size());
  std::vector<std::string> args{turn.owner, std::to_string(turn.epoch), std::to_string(from),
                                std::to_string(to)};
  args.reserve(args.size() + kWinnerArgs * winners.size());
  for (const AllocatedVoucher& w : winners) {
    const VoucherRecord& v = *w.voucher;
    const std::string code(v.code());
    keys.push_back(campaign.member(v.member_id()));
    keys.push_back(campaign.voucher(code));
    args.emplace_back(v.member_id());
    args.push_back(code);
    args.push_back(spec.skus[w.sku].id);
    args.push_back(std::to_string(w.sku));
    args.push_back(encode_voucher(v));
    args.push_back(expiry_bucket(v.expires_at_us()));
  }
  return Connection::evalsha(alloc_batch_script(), keys, args);
}

std::expected<AllocBatchReply, std::string> parse_alloc_batch_reply(const Reply& reply) {
  if (reply.is_error()) return std::unexpected("alloc_batch script failed: " + reply.str);
  std::int64_t kind = 0;
  if (reply.type != Reply::Type::kArray || !integer_at(reply, 0, kind)) {
    return std::unexpected("alloc_batch script: the answer is not {kind, ...}");
  }
  namespace a = replies::alloc_batch;
  AllocBatchReply out;
  if (kind == a::kHeld || kind == a::kShort || kind == a::kBadStep) {
    if (reply.elements.size() != 2 || !string_at(reply, 1, out.name)) {
      return std::unexpected("alloc_batch script: an answer of another shape");
    }
    out.kind = kind == a::kHeld    ? AllocBatchReply::Kind::kHeld
               : kind == a::kShort ? AllocBatchReply::Kind::kShort
                                   : AllocBatchReply::Kind::kBadStep;
    return out;
  }
  std::int64_t done = 0;
  if ((kind != a::kWritten && kind != a::kMoved) || reply.elements.size() != 6 ||
      !parse_turn_head(reply, out.turn) || !integer_at(reply, 5, done) ||
      (done != 0 && done != 1) || (done == 1 && out.turn.next != out.turn.total)) {
    return std::unexpected("alloc_batch script: an answer of another shape");
  }
  out.kind = kind == a::kWritten ? AllocBatchReply::Kind::kWritten : AllocBatchReply::Kind::kMoved;
  out.turn.kind = done == 1 ? AllocationTurn::Kind::kDone : AllocationTurn::Kind::kTaken;
  return out;
}

namespace {

// Every field of the hash `key`, page by page (HSCAN): `field` for each pair
// (an error from it ends the scan with that error), `after_page` after each
// page. HSCAN may return a field twice (the hash was resized meanwhile).
StoreResult<void> scan_hash(
    Link& conn, const std::string& key,
    const std::function<StoreResult<void>(const std::string&, const std::string&)>& field,
    const std::function<StoreResult<void>()>& after_page) {
  const std::string count = std::to_string(kApplicationsScanCount);
  std::string cursor = "0";
  do {
    auto page = conn.command({"HSCAN", key, cursor, "COUNT", count});
    if (!page) return store_unavailable(page.error());
    if (page->type != Reply::Type::kArray || page->elements.size() != 2 ||
        page->elements[1].type != Reply::Type::kArray || page->elements[1].elements.size() % 2) {
      return store_bad_reply("unexpected HSCAN reply from " + key + ": " + page->str);
    }
    cursor = page->elements[0].str;
    const std::vector<Reply>& fields = page->elements[1].elements;
    for (std::size_t i = 0; i < fields.size(); i += 2) {
      if (auto kept = field(fields[i].str, fields[i + 1].str); !kept) return kept;
    }
    if (after_page) {
      if (auto going = after_page(); !going) return going;
    }
  } while (cursor != "0");
  return {};
}

}  // namespace

StoreResult<std::vector<ApplicationEntry>> read_applications(
    Link& conn, const CampaignSpec& spec, const std::function<StoreResult<void>()>& after_page) {
  const std::string key = CampaignKeys(spec.id).applications();
  std::vector<ApplicationEntry> out;
  auto read = scan_hash(
      conn, key,
      [&](const std::string& member, const std::string& value) -> StoreResult<void> {
        auto e = decode_application(spec, member, value);
        if (!e) return store_bad_reply("unreadable application of \"" + member + "\" in " + key);
        out.push_back(std::move(*e));
        return {};
      },
      after_page);
  if (!read) return std::unexpected(std::move(read.error()));
  // A member read twice: the same frozen application, kept once.
  std::sort(out.begin(), out.end(), [](const ApplicationEntry& x, const ApplicationEntry& y) {
    return x.member_id < y.member_id;
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const ApplicationEntry& x, const ApplicationEntry& y) {
                          return x.member_id == y.member_id;
                        }),
            out.end());
  return out;
}

StoreResult<absl::flat_hash_map<std::string, std::uint32_t>> read_winners(
    Link& conn, const CampaignSpec& spec) {
  const std::string key = CampaignKeys(spec.id).won();
  absl::flat_hash_map<std::string, std::uint32_t> out;
  auto read =
      scan_hash(conn, key,
                [&](const std::string& member, const std::string& value) -> StoreResult<void> {
                  std::uint32_t sku = 0;
                  const char* end = value.data() + value.size();
                  auto [p, ec] = std::from_chars(value.data(), end, sku);
                  if (ec != std::errc{} || p != end || value.empty() || sku >= spec.skus.size()) {
                    return store_bad_reply("unreadable SKU index \"" + value + "\" of \"" + member +
                                           "\" in " + key);
                  }
                  out.insert_or_assign(member, sku);
                  return {};
                },
                {});
  if (!read) return std::unexpected(std::move(read.error()));
  return out;
}

}  // namespace voucherd::redis
