// voucher_code_fuzzer — the voucher code parser and verifier
// (engine/voucher_code.h, and ClaimEngine::get_voucher, which verifies a
// code's check character and MAC before it asks the claim log).
//
// Each input is read twice:
//  1. as a code's text: PackedCode::pack() takes exactly the display form and
//     gives it back; parse_code() agrees with a reference reading written
//     here from the format's description (symbols, aliases, separators,
//     count); a code that parses has its fields in range, re-encodes to the
//     same symbols, and its canonical text parses to the same fields; the
//     engine answers a text that does not parse as mistyped, and finds a
//     voucher only for a code it issued.
//  2. as choices: a code made by the signer for a SKU of the campaign (random
//     part from the input) carries the MAC compute_mac() gives, and the
//     engine takes it for a code of that SKU (NOT_FOUND: not issued, rather
//     than mistyped); any one changed symbol and any swap of two different
//     symbols is caught by the check character; an issued code written in
//     lower case, with aliases or without dashes is found.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/claim_engine.h"
#include "engine/clock.h"
#include "engine/limits.h"
#include "engine/memory_claim_log.h"
#include "engine/random.h"
#include "engine/voucher_code.h"
#include "fuzz/fuzz_check.h"

namespace voucherd {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr UnixMicros kNowUs = INT64_C(1'718'000'000'000'000);
constexpr std::size_t kSkus = 3;

// The format as README and voucher_code.h describe it, read independently
// of voucher_code.cc: the symbol value of `ch`, or -1.
int reference_symbol(char ch) {
  if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  if (ch == 'O') return 0;
  if (ch == 'I' || ch == 'L') return 1;
  const std::size_t at = kAlphabet.find(ch);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

// The symbols of `text`, or nullopt when it is no code's text (a character
// outside the alphabet, or not 30 symbols).
std::optional<std::vector<int>> reference_symbols(std::string_view text) {
  if (text.size() > limits::kCodeTextBytesMax) return std::nullopt;
  std::vector<int> out;
  for (char ch : text) {
    if (ch == '-' || ch == ' ') continue;
    const int v = reference_symbol(ch);
    if (v < 0) return std::nullopt;
    out.push_back(v);
  }
  if (out.size() != limits::kCodeChars) return std::nullopt;
  return out;
}

std::string without_dashes(std::string_view text) {
  std::string out;
  for (char ch : text) {
    if (ch != '-') out.push_back(ch);
  }
  return out;
}

// One engine with one FIRST_COME campaign and a few issued vouchers, made
// once: look-ups change nothing in it.
struct World {
  MemoryClaimLog log;
  FakeClock clock{kNowUs};
  DeterministicRandom random{17};
  std::vector<std::uint8_t> secret = std::vector<std::uint8_t>(32, 0x5a);
  ClaimEngine engine{log, clock, random, secret};
  CodeSigner signer{secret};
  CampaignSpec spec;
  std::array<SkuMacKey, kSkus> keys{};
  std::vector<std::string> issued;

  World() {
    spec.id = "fuzz-2024";
    spec.name = "Fuzz campaign";
    spec.mode = CampaignMode::kFirstCome;
    spec.starts_at_us = kNowUs - kMicrosPerDay;
    spec.ends_at_us = kNowUs + kMicrosPerDay;
    spec.sites = {{"site-001", "Hot spring", "Guangzhou", SkuKind::kHotSpring},
                  {"site-002", "Homestay", "Shaoguan", SkuKind::kHomestay}};
    spec.skus = {{"sku-001", "site-001", SkuKind::kHotSpring, "Ticket", 19'900, 10},
                 {"sku-002", "site-002", SkuKind::kHomestay, "Room", 39'900, 10},
                 {"sku-003", "site-002", SkuKind::kHomestay, "Suite", 99'900, 10}};
    auto created = engine.create_campaign(spec);
    FUZZ_EXPECT(created.has_value(), "the fuzz campaign is valid");
    spec = (*created)->spec();
    for (std::size_t i = 0; i < kSkus; ++i) {
      keys[i] = signer.derive_sku_key(spec.id, spec.skus[i].site_id, spec.skus[i].id);
    }
    struct Claim final : ClaimOp {
      ClaimResult result;
      void on_claim_done(const ClaimResult& r) override { result = r; }
    };
    for (const char* member : {"member-1", "member-2", "member-3"}) {
      Claim claim;
      claim.campaign_id = spec.id;
      claim.member_id = member;
      engine.claim(claim);  // the memory log decides inside claim()
      FUZZ_EXPECT(claim.result.outcome == Outcome::kOk && claim.result.voucher,
                  "a claim on a fresh campaign issues");
      issued.emplace_back(claim.result.voucher->code());
    }
  }
};

World& world() {
  static World* w = new World();  // never destroyed: the fuzzer exits without unwinding
  return *w;
}

struct Lookup final : VoucherLookupOp {
  Outcome outcome = Outcome::kInternal;
  VoucherPtr voucher;
  void on_lookup_done(Outcome o, VoucherPtr v, VoucherState /*visible*/) override {
    outcome = o;
    voucher = std::move(v);
  }
};

Lookup look_up(std::string_view text) {
  Lookup op;
  op.code = text;
  world().engine.get_voucher(op);  // the memory log answers inside get_voucher()
  return op;
}

// The display form, read independently of voucher_code.cc: six groups of
// five upper-case symbols (no aliases) joined by dashes.
bool reference_display_form(std::string_view text) {
  if (text.size() != limits::kCodeChars + 5) return false;
  for (std::size_t at = 0; at < text.size(); ++at) {
    const bool dash_here = at % 6 == 5;
    if (dash_here ? text[at] != '-' : kAlphabet.find(text[at]) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

void check_text(std::string_view text) {
  // A record keeps its code packed: exactly the display form packs, and it
  // comes back as the same text with the key bits the text has.
  const auto packed = PackedCode::pack(text);
  FUZZ_EXPECT(packed.has_value() == reference_display_form(text), "exactly the display form packs");
  if (packed) {
    const CodeText back = packed->text();
    FUZZ_EXPECT(std::string_view(back.data(), back.size()) == text,
                "a packed code's text is its own");
    FUZZ_EXPECT(packed->key_bits() == code_key_bits(text), "packed key bits are the text's");
  }
  const auto parsed = parse_code(text);
  const auto reference = reference_symbols(text);
  if (!reference) {
    FUZZ_EXPECT(!parsed && parsed.error() == CodeParseError::kMalformed,
                "a text that is not 30 symbols of the alphabet is malformed");
  } else {
    std::vector<std::uint8_t> body(reference->begin(), reference->end() - 1);
    const bool check_ok = check_symbol(body) == reference->back();
    FUZZ_EXPECT(parsed.has_value() == check_ok, "30 symbols parse iff the check symbol matches");
    if (!parsed)
      FUZZ_EXPECT(parsed.error() == CodeParseError::kBadCheck, "a bad check is kBadCheck");
  }
  const Lookup lookup = look_up(text);
  if (!parsed) {
    FUZZ_EXPECT(lookup.outcome == Outcome::kMistypedCode, "a text that does not parse is mistyped");
    return;
  }
  const CodeFields& f = *parsed;
  FUZZ_EXPECT(f.campaign_tag < 1024 && f.sku_index < 1024, "tag and SKU index are 10 bits");
  for (std::uint8_t r : f.random) FUZZ_EXPECT(r < 32, "random symbols are 5 bits");
  FUZZ_EXPECT(f.mac < (std::uint64_t{1} << limits::kCodeMacBits), "the MAC is 45 bits");
  const std::string formatted = format_code(f);
  FUZZ_EXPECT(formatted.size() == limits::kCodeChars + 5, "six groups of five and five dashes");
  const auto again = parse_code(formatted);
  FUZZ_EXPECT(again && *again == f, "a parsed code re-encodes to the same fields");
  const std::string canonical = without_dashes(formatted);
  for (std::size_t i = 0; i < canonical.size(); ++i) {
    FUZZ_EXPECT(reference_symbol(canonical[i]) == (*reference)[i],
                "the canonical text holds the symbols read");
  }
  FUZZ_EXPECT(lookup.outcome == Outcome::kOk || lookup.outcome == Outcome::kVoucherNotFound,
              "a code that parses is looked up (found or not)");
  if (lookup.outcome == Outcome::kOk) {
    bool issued = false;
    for (const std::string& code : world().issued) issued = issued || code == formatted;
    FUZZ_EXPECT(issued && lookup.voucher && lookup.voucher->code() == formatted,
                "only an issued code is found, as itself");
  }
}

void check_signed(fuzz::InputReader& in) {
  World& w = world();
  const std::size_t sku = in.byte() % kSkus;
  CodeFields f;
  f.campaign_tag = campaign_tag(w.spec.id);
  f.sku_index = static_cast<std::uint16_t>(sku);
  for (auto& r : f.random) r = in.byte() & 31u;
  f.mac = compute_mac(w.keys[sku], f);
  const std::string code = format_code(f);
  const auto parsed = parse_code(code);
  FUZZ_EXPECT(parsed && *parsed == f, "a signed code parses to its fields");
  FUZZ_EXPECT(compute_mac(w.keys[sku], *parsed) == parsed->mac, "a signed code's MAC verifies");
  for (std::size_t other = 0; other < kSkus; ++other) {
    if (other == sku) continue;
    CodeFields moved = f;
    moved.sku_index = static_cast<std::uint16_t>(other);
    // 2^-45 of random parts would collide; the ones here are fixed by the input, so a
    // collision would be a finding worth reading.
    FUZZ_EXPECT(compute_mac(w.keys[other], moved) != f.mac, "a MAC does not move to another SKU");
  }
  const Lookup lookup = look_up(code);
  FUZZ_EXPECT(lookup.outcome == Outcome::kVoucherNotFound || lookup.outcome == Outcome::kOk,
              "a signed code is not mistyped");

  // Any one changed symbol, and any swap of two different symbols.
  std::string canonical = without_dashes(code);
  const std::size_t p = in.byte() % limits::kCodeChars;
  const std::size_t q = in.byte() % limits::kCodeChars;
  const char replacement = kAlphabet[in.byte() % kAlphabet.size()];
  if (replacement != canonical[p]) {
    std::string changed = canonical;
    changed[p] = replacement;
    const auto r = parse_code(changed);
    FUZZ_EXPECT(!r && r.error() == CodeParseError::kBadCheck, "one changed symbol is caught");
    FUZZ_EXPECT(look_up(changed).outcome == Outcome::kMistypedCode, "the engine says mistyped");
  }
  if (canonical[p] != canonical[q]) {
    std::string swapped = canonical;
    std::swap(swapped[p], swapped[q]);
    const auto r = parse_code(swapped);
    FUZZ_EXPECT(!r && r.error() == CodeParseError::kBadCheck, "a swap of two symbols is caught");
  }

  // An issued code as a person might type it.
  const std::string& real = w.issued[in.byte() % w.issued.size()];
  std::string typed;
  const std::uint8_t style = in.byte();
  for (char ch : real) {
    if (ch == '-' && (style & 1u)) continue;
    if (ch == '0' && (style & 2u)) ch = 'O';
    if (ch == '1' && (style & 4u)) ch = (style & 8u) ? 'l' : 'I';
    if (ch >= 'A' && ch <= 'Z' && (style & 16u)) ch = static_cast<char>(ch - 'A' + 'a');
    typed.push_back(ch);
  }
  const Lookup found = look_up(typed);
  FUZZ_EXPECT(found.outcome == Outcome::kOk && found.voucher && found.voucher->code() == real,
              "an issued code is found however it is typed: " + typed);
}

}  // namespace
}  // namespace voucherd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  voucherd::check_text(std::string_view(reinterpret_cast<const char*>(data), size));
  voucherd::fuzz::InputReader in(data, size);
  voucherd::check_signed(in);
  return 0;
}
