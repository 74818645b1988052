// voucher_code.h — unguessable, self-checking voucher codes.
//
// A code is 30 Crockford base32 characters, shown in six groups of five:
//
//   TTSSR-RRRRR-RRRRR-RRRRR-MMMMM-MMMMC
//
//   T  campaign tag, 10 bits (a hint: which campaigns to try the MAC against)
//   S  SKU index within the campaign, 10 bits (the SKU fixes the site)
//   R  80 random bits from a CSPRNG: the unguessable part
//   M  45-bit MAC: HMAC-SHA256 under a key derived from the server secret and
//      the campaign, site and SKU ids, over T, S and R. A code cannot be moved
//      to another campaign, site or SKU, and one not made with the secret is
//      rejected without touching storage.
//   C  check character: a GF(32) weighted sum that catches any one mistyped
//      character and any two swapped characters (anywhere in the code).
//
// Parsing ignores case, dashes and spaces and reads O as 0 and I, L as 1, so a
// code read aloud or typed from paper comes back right.
//
// Usage:
//   CodeSigner signer(secret);
//   SkuMacKey key = signer.derive_sku_key("gd-2024", "site-001", "sku-001");
//   CodeFields f{.campaign_tag = campaign_tag("gd-2024"), .sku_index = 0, .random = ...};
//   f.mac = compute_mac(key, f);
//   std::string text = format_code(f);
//   auto parsed = parse_code(text);  // -> CodeFields or CodeParseError
//
// Thread-safety: all functions are pure; SkuMacKey and CodeSigner are
// immutable after construction and safe to share.
#pragma once

#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/limits.h"

namespace voucherd {

inline constexpr std::size_t kCodeRandomSymbols = limits::kCodeRandomBits / 5;

struct CodeFields {
  std::uint16_t campaign_tag = 0;                         // < 2^10
  std::uint16_t sku_index = 0;                            // < 2^10
  std::array<std::uint8_t, kCodeRandomSymbols> random{};  // each < 32
  std::uint64_t mac = 0;                                  // < 2^45
  bool operator==(const CodeFields&) const = default;
};

enum class CodeParseError : std::uint8_t { kMalformed, kBadCheck };

// Precomputed HMAC-SHA256 inner and outer states for one SKU's key, so that a
// MAC costs two SHA-256 compressions and no allocation.
struct SkuMacKey {
  SHA256_CTX inner;
  SHA256_CTX outer;
};

// The server's secrets: the first mints codes; the others (older secrets
// being rotated out) only verify them. A code carries no key id: a verifier
// tries each secret's key in order.
class CodeSigner final {
 public:
  // REQUIRES: secret.size() >= limits::kSecretBytesMin.
  explicit CodeSigner(std::span<const std::uint8_t> secret);
  // REQUIRES: 1 to limits::kSecretsMax secrets, each at least
  // limits::kSecretBytesMin bytes.
  explicit CodeSigner(std::span<const std::vector<std::uint8_t>> secrets);

  // The MAC key of a SKU under secret `secret_index` (0: the minting one).
  [[nodiscard]] SkuMacKey derive_sku_key(std::string_view campaign_id, std::string_view site_id,
                                         std::string_view sku_id,
                                         std::size_t secret_index = 0) const;
  [[nodiscard]] std::size_t secret_count() const { return master_keys_.size(); }

 private:
  std::vector<std::array<std::uint8_t, 32>> master_keys_;  // SHA-256 of each secret
};

// 10-bit tag of a campaign id (a hash; collisions are fine, it is a hint).
[[nodiscard]] std::uint16_t campaign_tag(std::string_view campaign_id);

[[nodiscard]] std::uint64_t compute_mac(const SkuMacKey& key, const CodeFields& fields);

// HMAC-SHA256 with the key's midstates computed once (a SkuMacKey holds
// them): two SHA-256 compressions per short message, no allocation.
// REQUIRES: key.size() <= 64.
[[nodiscard]] SkuMacKey hmac_key(std::span<const std::uint8_t> key);
[[nodiscard]] std::array<std::uint8_t, 32> hmac_sha256(const SkuMacKey& key,
                                                       std::span<const std::uint8_t> msg);

// Display form with dashes, upper case.
[[nodiscard]] std::string format_code(const CodeFields& fields);
// The same text, without allocating.
using CodeText = std::array<char, limits::kCodeDisplayChars>;
[[nodiscard]] CodeText format_code_text(const CodeFields& fields);

[[nodiscard]] std::expected<CodeFields, CodeParseError> parse_code(std::string_view text);

// The 100 bits that set a code apart among its campaign's: the tag, the SKU
// index and the random part (the MAC and the check symbol follow from them).
// `hi` holds the first 12 symbols (the tag, the SKU index and 8 random
// symbols: 60 bits), `lo` the other 8 random symbols (40 bits).
struct CodeKeyBits {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  bool operator==(const CodeKeyBits&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const CodeKeyBits& k) {
    return H::combine(std::move(h), k.hi, k.lo);
  }
};

// The key bits read from the first 20 symbols of `text`, read as parse_code()
// reads them, without checking the MAC or the check symbol; nullopt when
// `text` has fewer symbols or a character that is not one. Only a code's
// canonical form is read the same way each time: a caller that keys records
// by these bits compares the full text before it trusts a match.
[[nodiscard]] std::optional<CodeKeyBits> code_key_bits(std::string_view text);

// A code's display text held by value, for a record that keeps its code
// packed. Read it through view() or a named copy: the implicit view of a
// temporary is refused at compile time, since it would outlive the text.
class CodeString {
 public:
  explicit CodeString(const CodeText& text) : text_(text) {}
  [[nodiscard]] std::string_view view() const { return {text_.data(), text_.size()}; }
  operator std::string_view() const& { return view(); }  // NOLINT: reads as the text
  operator std::string_view() const&& = delete;
  [[nodiscard]] std::string str() const { return std::string(view()); }
  [[nodiscard]] const char* data() const { return text_.data(); }
  [[nodiscard]] static constexpr std::size_t size() { return std::tuple_size_v<CodeText>; }
  friend bool operator==(const CodeString& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const CodeString& a, const CodeString& b) { return a.text_ == b.text_; }
  // The texts' order (for codes, also their symbols' order).
  friend bool operator<(const CodeString& a, const CodeString& b) { return a.view() < b.view(); }
  friend std::ostream& operator<<(std::ostream& out, const CodeString& c) {
    return out << c.view();
  }

 private:
  CodeText text_;
};

// A code's display text kept as its 30 symbols, 5 bits each: 19 bytes
// instead of 35 characters. Only the display form packs (what
// format_code_text() writes: upper-case symbols, dashes between the groups);
// the MAC and the check symbol are kept as they are, not checked, so every
// display-form text round-trips and two packed codes are equal exactly when
// their texts are.
class PackedCode {
 public:
  using Bytes = std::array<std::uint8_t, 19>;

  PackedCode() = default;
  // nullopt unless `text` is in display form.
  [[nodiscard]] static std::optional<PackedCode> pack(std::string_view text);
  [[nodiscard]] static PackedCode pack(const CodeFields& fields);
  [[nodiscard]] CodeText text() const;
  // What code_key_bits() reads from the text, without formatting it.
  [[nodiscard]] CodeKeyBits key_bits() const;
  bool operator==(const PackedCode&) const = default;
  // The order of the texts (the symbols' values follow the alphabet's
  // ASCII order, and the dashes stand at the same places in every text).
  friend bool operator<(const PackedCode& a, const PackedCode& b);

 private:
  // Symbols 0-11 (60 bits) and the low 4 bits of symbols 20-29; symbols
  // 12-19 (40 bits) and the next 24 bits of 20-29; their last 22 bits.
  // Bytes, not words: the record that keeps one has no padding to spare.
  Bytes bytes_{};
};
static_assert(sizeof(PackedCode) == 19 && alignof(PackedCode) == 1);

// Exposed for tests: the check symbol (0..31) of 29 body symbols.
[[nodiscard]] std::uint8_t check_symbol(std::span<const std::uint8_t> body);

}  // namespace voucherd
