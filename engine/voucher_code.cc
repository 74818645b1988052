// SHA-256 midstates are copied as plain structs: OpenSSL 3 marks the SHA256_*
// calls deprecated in favour of EVP, whose context copy costs an allocation per
// MAC; this is the hot path, so we keep the low-level API on purpose.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "engine/voucher_code.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <cstring>
#include <tuple>

#include "engine/check.h"

namespace voucherd {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr std::size_t kBodySymbols = limits::kCodeBodyChars;  // 29
constexpr std::size_t kGroupChars = 5;

// GF(32) with the primitive polynomial x^5 + x^2 + 1.
struct Gf32 {
  std::array<std::uint8_t, 62> exp{};
  std::array<std::uint8_t, 32> log{};
  constexpr Gf32() {
    unsigned x = 1;
    for (unsigned i = 0; i < 31; ++i) {
      exp[i] = static_cast<std::uint8_t>(x);
      exp[i + 31] = static_cast<std::uint8_t>(x);
      log[x] = static_cast<std::uint8_t>(i);
      x <<= 1;
      if (x & 32u) x ^= 0x25u;
    }
  }
  constexpr std::uint8_t mul_by_alpha_pow(std::uint8_t v, std::size_t power) const {
    if (v == 0) return 0;
    return exp[(log[v] + power % 31) % 31];
  }
};
constexpr Gf32 kGf;

// weight_table[i][v] = alpha^(i+1) * v: the check symbol becomes 29 lookups.
struct WeightTable {
  std::array<std::array<std::uint8_t, 32>, limits::kCodeBodyChars> w{};
  constexpr WeightTable() {
    for (std::size_t i = 0; i < w.size(); ++i) {
      for (unsigned v = 0; v < 32; ++v) {
        w[i][v] = kGf.mul_by_alpha_pow(static_cast<std::uint8_t>(v), i + 1);
      }
    }
  }
};
constexpr WeightTable kWeights;

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
    const char lower = kAlphabet[i] >= 'A' ? static_cast<char>(kAlphabet[i] - 'A' + 'a') : 0;
    if (lower) t[static_cast<unsigned char>(lower)] = static_cast<std::int8_t>(i);
  }
  // Crockford's aliases for characters people confuse.
  t['O'] = t['o'] = 0;
  t['I'] = t['i'] = t['L'] = t['l'] = 1;
  return t;
}
constexpr std::array<std::int8_t, 256> kDecode = make_decode_table();

std::array<std::uint8_t, kBodySymbols> body_symbols(const CodeFields& f) {
  std::array<std::uint8_t, kBodySymbols> s{};
  std::size_t i = 0;
  s[i++] = static_cast<std::uint8_t>((f.campaign_tag >> 5) & 31u);
  s[i++] = static_cast<std::uint8_t>(f.campaign_tag & 31u);
  s[i++] = static_cast<std::uint8_t>((f.sku_index >> 5) & 31u);
  s[i++] = static_cast<std::uint8_t>(f.sku_index & 31u);
  for (std::uint8_t r : f.random) s[i++] = r;
  for (int shift = 40; shift >= 0; shift -= 5) {
    s[i++] = static_cast<std::uint8_t>((f.mac >> shift) & 31u);
  }
  VOUCHERD_DCHECK(i == kBodySymbols, "a code body is exactly kBodySymbols symbols");
  return s;
}

}  // namespace

CodeSigner::CodeSigner(std::span<const std::uint8_t> secret) {
  VOUCHERD_CHECK(secret.size() >= limits::kSecretBytesMin,
                 "the secret file's reader refuses secrets shorter than kSecretBytesMin");
  SHA256(secret.data(), secret.size(), master_keys_.emplace_back().data());
}

CodeSigner::CodeSigner(std::span<const std::vector<std::uint8_t>> secrets) {
  VOUCHERD_CHECK(!secrets.empty() && secrets.size() <= limits::kSecretsMax,
                 "the secret file's reader gives 1 to kSecretsMax secrets");
  for (const std::vector<std::uint8_t>& secret : secrets) {
    VOUCHERD_CHECK(secret.size() >= limits::kSecretBytesMin,
                   "the secret file's reader refuses secrets shorter than kSecretBytesMin");
    SHA256(secret.data(), secret.size(), master_keys_.emplace_back().data());
  }
}

SkuMacKey CodeSigner::derive_sku_key(std::string_view campaign_id, std::string_view site_id,
                                     std::string_view sku_id, std::size_t secret_index) const {
  VOUCHERD_CHECK(secret_index < master_keys_.size(), "a secret index names one of the secrets");
  const std::array<std::uint8_t, 32>& master_key = master_keys_[secret_index];
  // k_sku = HMAC-SHA256(master, "voucherd/sku-key/v1" || lp(campaign) || lp(site) || lp(sku))
  std::string msg = "voucherd/sku-key/v1";
  for (std::string_view part : {campaign_id, site_id, sku_id}) {
    msg.push_back(static_cast<char>(part.size()));
    msg.append(part);
  }
  std::array<std::uint8_t, 32> k_sku{};
  unsigned int k_len = 0;
  HMAC(EVP_sha256(), master_key.data(), static_cast<int>(master_key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), k_sku.data(), &k_len);
  VOUCHERD_CHECK(k_len == k_sku.size(), "HMAC-SHA256 writes 32 bytes");

  SkuMacKey key = hmac_key(k_sku);
  OPENSSL_cleanse(k_sku.data(), k_sku.size());
  return key;
}

std::uint16_t campaign_tag(std::string_view campaign_id) {
  std::array<std::uint8_t, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(campaign_id.data()), campaign_id.size(),
         digest.data());
  return static_cast<std::uint16_t>(((digest[0] << 8) | digest[1]) & 0x3ffu);
}

SkuMacKey hmac_key(std::span<const std::uint8_t> key_bytes) {
  VOUCHERD_CHECK(key_bytes.size() <= 64, "an HMAC-SHA256 key fits one 64-byte block");
  std::array<std::uint8_t, 64> ipad{};
  std::array<std::uint8_t, 64> opad{};
  for (std::size_t i = 0; i < 64; ++i) {
    const std::uint8_t k = i < key_bytes.size() ? key_bytes[i] : 0;
    ipad[i] = k ^ 0x36u;
    opad[i] = k ^ 0x5cu;
  }
  SkuMacKey key{};
  SHA256_Init(&key.inner);
  SHA256_Update(&key.inner, ipad.data(), ipad.size());
  SHA256_Init(&key.outer);
  SHA256_Update(&key.outer, opad.data(), opad.size());
  OPENSSL_cleanse(ipad.data(), ipad.size());
  OPENSSL_cleanse(opad.data(), opad.size());
  return key;
}

std::array<std::uint8_t, 32> hmac_sha256(const SkuMacKey& key, std::span<const std::uint8_t> msg) {
  std::array<std::uint8_t, 32> inner_digest{};
  SHA256_CTX ctx = key.inner;
  SHA256_Update(&ctx, msg.data(), msg.size());
  SHA256_Final(inner_digest.data(), &ctx);
  std::array<std::uint8_t, 32> mac{};
  ctx = key.outer;
  SHA256_Update(&ctx, inner_digest.data(), inner_digest.size());
  SHA256_Final(mac.data(), &ctx);
  return mac;
}

std::uint64_t compute_mac(const SkuMacKey& key, const CodeFields& f) {
  std::array<std::uint8_t, 4 + kCodeRandomSymbols> msg{};
  msg[0] = static_cast<std::uint8_t>(f.campaign_tag >> 8);
  msg[1] = static_cast<std::uint8_t>(f.campaign_tag);
  msg[2] = static_cast<std::uint8_t>(f.sku_index >> 8);
  msg[3] = static_cast<std::uint8_t>(f.sku_index);
  std::memcpy(msg.data() + 4, f.random.data(), f.random.size());

  const std::array<std::uint8_t, 32> mac = hmac_sha256(key, msg);
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | mac[i];
  return v >> (64 - limits::kCodeMacBits);
}

std::uint8_t check_symbol(std::span<const std::uint8_t> body) {
  // c = sum_i alpha^(i+1) * v_i over GF(32). Weights are distinct and non-zero
  // for fewer than 31 positions, so one changed symbol or two exchanged
  // symbols always change c.
  VOUCHERD_DCHECK(body.size() <= kWeights.w.size(), "a body is shorter than the weights table");
  std::uint8_t c = 0;
  for (std::size_t i = 0; i < body.size(); ++i) c ^= kWeights.w[i][body[i] & 31u];
  return c;
}

std::string format_code(const CodeFields& f) {
  const CodeText text = format_code_text(f);
  return std::string(text.data(), text.size());
}

CodeText format_code_text(const CodeFields& f) {
  const auto body = body_symbols(f);
  const std::uint8_t check = check_symbol(body);
  CodeText text{};
  std::size_t n = 0;
  for (std::size_t i = 0; i < limits::kCodeChars; ++i) {
    if (i > 0 && i % kGroupChars == 0) text[n++] = '-';
    text[n++] = kAlphabet[i < body.size() ? body[i] : check];
  }
  VOUCHERD_DCHECK(n == text.size(), "a code's text is exactly its groups and dashes");
  return text;
}

std::expected<CodeFields, CodeParseError> parse_code(std::string_view text) {
  if (text.size() > limits::kCodeTextBytesMax) return std::unexpected(CodeParseError::kMalformed);
  std::array<std::uint8_t, limits::kCodeChars> sym{};
  std::size_t n = 0;
  for (char ch : text) {
    if (ch == '-' || ch == ' ') continue;
    const std::int8_t v = kDecode[static_cast<unsigned char>(ch)];
    if (v < 0 || n == sym.size()) return std::unexpected(CodeParseError::kMalformed);
    sym[n++] = static_cast<std::uint8_t>(v);
  }
  if (n != sym.size()) return std::unexpected(CodeParseError::kMalformed);
  const std::span<const std::uint8_t> body(sym.data(), kBodySymbols);
  if (check_symbol(body) != sym[kBodySymbols]) return std::unexpected(CodeParseError::kBadCheck);

  CodeFields f;
  std::size_t i = 0;
  f.campaign_tag = static_cast<std::uint16_t>((sym[0] << 5) | sym[1]);
  f.sku_index = static_cast<std::uint16_t>((sym[2] << 5) | sym[3]);
  i = 4;
  for (auto& r : f.random) r = sym[i++];
  for (int k = 0; k < 9; ++k) f.mac = (f.mac << 5) | sym[i++];
  return f;
}

namespace {

constexpr std::array<std::int8_t, 256> make_canonical_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  }
  return t;
}
// Only the symbols format_code_text() writes: no lower case, no aliases.
constexpr std::array<std::int8_t, 256> kCanonical = make_canonical_table();

constexpr std::size_t kHiSymbols = 12;   // symbols 0-11: CodeKeyBits::hi
constexpr std::size_t kMidSymbols = 8;   // symbols 12-19: CodeKeyBits::lo
constexpr std::size_t kLowSymbols = 10;  // symbols 20-29
static_assert(kHiSymbols + kMidSymbols + kLowSymbols == limits::kCodeChars);
constexpr std::uint64_t kHiMask = (std::uint64_t{1} << 60) - 1;
constexpr std::uint64_t kMidMask = (std::uint64_t{1} << 40) - 1;

struct CodeWords {
  std::uint64_t hi = 0, mid = 0, low = 0;  // 60, 40 and 50 bits
};

PackedCode::Bytes store(const CodeWords& w) {
  const std::uint64_t w0 = w.hi | ((w.low & 0xF) << 60);
  const std::uint64_t w1 = w.mid | (((w.low >> 4) & 0xFFFFFF) << 40);
  const std::uint64_t w2 = w.low >> 28;  // 22 bits
  PackedCode::Bytes b{};
  std::memcpy(b.data(), &w0, 8);
  std::memcpy(b.data() + 8, &w1, 8);
  for (std::size_t i = 0; i < 3; ++i) b[16 + i] = static_cast<std::uint8_t>(w2 >> (8 * i));
  return b;
}

CodeWords load(const PackedCode::Bytes& b) {
  std::uint64_t w0 = 0, w1 = 0, w2 = 0;
  std::memcpy(&w0, b.data(), 8);
  std::memcpy(&w1, b.data() + 8, 8);
  for (std::size_t i = 0; i < 3; ++i) w2 |= std::uint64_t{b[16 + i]} << (8 * i);
  return {w0 & kHiMask, w1 & kMidMask, (w0 >> 60) | ((w1 >> 40) << 4) | (w2 << 28)};
}

}  // namespace

std::optional<PackedCode> PackedCode::pack(std::string_view text) {
  if (text.size() != limits::kCodeDisplayChars) return std::nullopt;
  for (std::size_t at = kGroupChars; at < text.size(); at += kGroupChars + 1) {
    if (text[at] != '-') return std::nullopt;
  }
  // Symbol n is at n + n / 5 (a dash after each group). A character that
  // is not a symbol reads as -1: its sign bit is kept in `bad`, so the loops
  // have no branch.
  int bad = 0;
  const auto read = [&](std::size_t first, std::size_t count) {
    std::uint64_t word = 0;
    for (std::size_t n = first; n < first + count; ++n) {
      const int v = kCanonical[static_cast<unsigned char>(text[n + n / kGroupChars])];
      bad |= v;
      word = (word << 5) | static_cast<std::uint64_t>(v & 31);
    }
    return word;
  };
  CodeWords w;
  w.hi = read(0, kHiSymbols);
  w.mid = read(kHiSymbols, kMidSymbols);
  w.low = read(kHiSymbols + kMidSymbols, kLowSymbols);
  if (bad < 0) return std::nullopt;
  PackedCode p;
  p.bytes_ = store(w);
  return p;
}

PackedCode PackedCode::pack(const CodeFields& fields) {
  const auto body = body_symbols(fields);
  const std::uint8_t check = check_symbol(body);
  CodeWords w;
  for (std::size_t n = 0; n < limits::kCodeChars; ++n) {
    std::uint64_t& word = n < kHiSymbols ? w.hi : n < kHiSymbols + kMidSymbols ? w.mid : w.low;
    word = (word << 5) | (n < body.size() ? body[n] : check);
  }
  PackedCode p;
  p.bytes_ = store(w);
  return p;
}

CodeText PackedCode::text() const {
  const CodeWords w = load(bytes_);
  CodeText text{};
  std::size_t at = text.size();
  const auto put = [&](std::uint64_t word, std::size_t symbols, std::size_t first) {
    for (std::size_t i = 0; i < symbols; ++i) {
      const std::size_t n = first + symbols - 1 - i;  // the symbol's number, from the end
      if (n % kGroupChars == kGroupChars - 1 && n + 1 < limits::kCodeChars) text[--at] = '-';
      text[--at] = kAlphabet[word & 31u];
      word >>= 5;
    }
  };
  put(w.low, kLowSymbols, kHiSymbols + kMidSymbols);
  put(w.mid, kMidSymbols, kHiSymbols);
  put(w.hi, kHiSymbols, 0);
  VOUCHERD_DCHECK(at == 0, "a code's text is exactly its groups and dashes");
  return text;
}

bool operator<(const PackedCode& a, const PackedCode& b) {
  const CodeWords x = load(a.bytes_);
  const CodeWords y = load(b.bytes_);
  return std::tie(x.hi, x.mid, x.low) < std::tie(y.hi, y.mid, y.low);
}

CodeKeyBits PackedCode::key_bits() const {
  const CodeWords w = load(bytes_);
  return {w.hi, w.mid};
}

std::optional<CodeKeyBits> code_key_bits(std::string_view text) {
  constexpr std::size_t kKeySymbols = kHiSymbols + kMidSymbols;  // 20: 100 bits, 60 in hi
  static_assert(kKeySymbols == 4 + kCodeRandomSymbols, "the tag, the SKU index, the random part");
  if (text.size() > limits::kCodeTextBytesMax) return std::nullopt;
  CodeKeyBits k;
  std::size_t n = 0;
  for (char ch : text) {
    if (n == kKeySymbols) break;
    if (ch == '-' || ch == ' ') continue;
    const std::int8_t v = kDecode[static_cast<unsigned char>(ch)];
    if (v < 0) return std::nullopt;
    std::uint64_t& word = n < kHiSymbols ? k.hi : k.lo;
    word = (word << 5) | static_cast<std::uint8_t>(v);
    ++n;
  }
  if (n != kKeySymbols) return std::nullopt;
  return k;
}

}  // namespace voucherd
