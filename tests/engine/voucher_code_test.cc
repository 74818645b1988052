// voucher_code_test.cc — proves the voucher code format: format_code/parse_code
// round-trip any fields; parsing ignores case, dashes and spaces and reads
// O as 0 and I/L as 1; the check character rejects every single-character
// substitution and every exchange of two different characters at any two
// positions; malformed text is kMalformed; and the MAC binds a code to its
// campaign, site, SKU and server secret.
#include "engine/voucher_code.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "engine/limits.h"
#include "engine/random.h"

namespace voucherd {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

CodeFields random_fields(RandomSource& rng) {
  std::array<std::uint8_t, 8 + kCodeRandomSymbols + 4> bytes{};
  rng.fill(bytes);
  CodeFields f;
  f.campaign_tag = static_cast<std::uint16_t>((bytes[0] | (bytes[1] << 8)) & 0x3ff);
  f.sku_index = static_cast<std::uint16_t>((bytes[2] | (bytes[3] << 8)) & 0x3ff);
  for (std::size_t i = 0; i < f.random.size(); ++i) f.random[i] = bytes[8 + i] & 31u;
  std::uint64_t mac = 0;
  for (int i = 0; i < 8; ++i) mac = (mac << 8) | bytes[4 + i];
  f.mac = mac & ((std::uint64_t{1} << limits::kCodeMacBits) - 1);
  return f;
}

// The 30 code symbols of a display code (dashes removed).
std::string symbols_of(const std::string& code) {
  std::string s;
  for (char c : code) {
    if (c != '-') s.push_back(c);
  }
  return s;
}

std::vector<std::uint8_t> secret_bytes(std::uint8_t first) {
  std::vector<std::uint8_t> s(32);
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(first + i * 7);
  return s;
}

TEST(VoucherCodeTest, ShapeIsSixGroupsOfFiveWithDashes) {
  DeterministicRandom rng(1);
  for (int n = 0; n < 100; ++n) {
    const std::string code = format_code(random_fields(rng));
    ASSERT_EQ(code.size(), 35u) << code;
    EXPECT_EQ(symbols_of(code).size(), limits::kCodeChars) << code;
    EXPECT_EQ(limits::kCodeChars, 30u);
    for (std::size_t i = 0; i < code.size(); ++i) {
      if (i % 6 == 5) {
        EXPECT_EQ(code[i], '-') << code << " at " << i;
      } else {
        EXPECT_NE(kAlphabet.find(code[i]), std::string_view::npos) << code << " at " << i;
      }
    }
  }
}

TEST(VoucherCodeTest, FormatParseRoundTrip) {
  DeterministicRandom rng(42);
  std::set<std::string> seen;
  for (int n = 0; n < 20'000; ++n) {
    const CodeFields f = random_fields(rng);
    const std::string code = format_code(f);
    auto parsed = parse_code(code);
    ASSERT_TRUE(parsed.has_value()) << code;
    ASSERT_EQ(*parsed, f) << code;
    seen.insert(code);
  }
  EXPECT_EQ(seen.size(), 20'000u);  // different fields, different codes
}

TEST(VoucherCodeTest, RoundTripAtFieldExtremes) {
  CodeFields lo;  // all zero
  CodeFields hi;
  hi.campaign_tag = 0x3ff;
  hi.sku_index = 0x3ff;
  hi.random.fill(31);
  hi.mac = (std::uint64_t{1} << limits::kCodeMacBits) - 1;
  for (const CodeFields& f : {lo, hi}) {
    const std::string code = format_code(f);
    auto parsed = parse_code(code);
    ASSERT_TRUE(parsed.has_value()) << code;
    EXPECT_EQ(*parsed, f) << code;
  }
  EXPECT_EQ(format_code(hi).substr(0, 29), "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ");
}

// The key bits pack the tag, the SKU index and the random part, and only
// those: two codes differ in them exactly when their fields other than the
// MAC differ.
TEST(VoucherCodeTest, KeyBitsAreTheTagSkuAndRandomPart) {
  DeterministicRandom rng(5);
  for (int n = 0; n < 2'000; ++n) {
    const CodeFields f = random_fields(rng);
    const auto key = code_key_bits(format_code(f));
    ASSERT_TRUE(key.has_value());
    std::uint64_t hi = (std::uint64_t{f.campaign_tag} << 50) | (std::uint64_t{f.sku_index} << 40);
    for (std::size_t i = 0; i < 8; ++i) hi |= std::uint64_t{f.random[i]} << (35 - 5 * i);
    std::uint64_t lo = 0;
    for (std::size_t i = 8; i < f.random.size(); ++i) lo = (lo << 5) | f.random[i];
    ASSERT_EQ(key->hi, hi) << format_code(f);
    ASSERT_EQ(key->lo, lo) << format_code(f);

    CodeFields other_mac = f;
    other_mac.mac ^= 1;
    EXPECT_EQ(code_key_bits(format_code(other_mac)), key);
    for (std::size_t i = 0; i < f.random.size(); i += 5) {
      CodeFields other = f;
      other.random[i] ^= 1;
      EXPECT_NE(code_key_bits(format_code(other)), key);
    }
  }
}

TEST(VoucherCodeTest, KeyBitsNeedTwentySymbols) {
  const std::string code = format_code(CodeFields{});
  EXPECT_TRUE(code_key_bits(code.substr(0, 24)).has_value());  // 20 symbols, 4 dashes
  EXPECT_FALSE(code_key_bits(code.substr(0, 22)).has_value());
  EXPECT_FALSE(code_key_bits("").has_value());
  EXPECT_FALSE(code_key_bits("00000-0000U-00000-00000-00000").has_value());  // U is not a symbol
  EXPECT_FALSE(code_key_bits(std::string(limits::kCodeTextBytesMax + 1, '0')).has_value());
}

// A packed code gives back its text and its key bits exactly, for minted
// codes and for any other text in display form (a record read back holds
// whatever the store held, MAC and check symbol unchecked).
TEST(PackedCodeTest, DisplayFormTextsRoundTrip) {
  DeterministicRandom rng(7);
  std::set<std::string> texts;
  for (int n = 0; n < 20'000; ++n) {
    const CodeFields f = random_fields(rng);
    const std::string code = format_code(f);
    const auto packed = PackedCode::pack(code);
    ASSERT_TRUE(packed.has_value()) << code;
    EXPECT_EQ(*packed, PackedCode::pack(f)) << code;
    const CodeText text = packed->text();
    ASSERT_EQ(std::string(text.data(), text.size()), code);
    ASSERT_EQ(packed->key_bits(), code_key_bits(code)) << code;
    texts.insert(code);
  }
  // Symbol by symbol, every value at every place, check symbol included.
  std::string code = format_code(CodeFields{});
  for (std::size_t at = 0; at < code.size(); ++at) {
    if (at % 6 == 5) continue;
    for (char symbol : kAlphabet) {
      std::string other = code;
      other[at] = symbol;
      const auto packed = PackedCode::pack(other);
      ASSERT_TRUE(packed.has_value()) << other;
      const CodeText text = packed->text();
      ASSERT_EQ(std::string(text.data(), text.size()), other);
      ASSERT_EQ(packed->key_bits(), code_key_bits(other)) << other;
      ASSERT_EQ(*packed == *PackedCode::pack(code), other == code) << other;
    }
  }
}

TEST(PackedCodeTest, PackedCodesSortAsTheirTexts) {
  DeterministicRandom rng(11);
  std::vector<std::string> texts;
  for (int n = 0; n < 2'000; ++n) texts.push_back(format_code(random_fields(rng)));
  // Codes that differ only late, or in the check symbol.
  const std::string base = format_code(CodeFields{});
  for (std::size_t at : {0u, 12u, 22u, 24u, 28u, 33u, 34u}) {
    for (char symbol : {'0', '1', '9', 'A', 'Z'}) {
      std::string t = base;
      t[at] = symbol;
      texts.push_back(t);
    }
  }
  for (std::size_t i = 0; i + 1 < texts.size(); ++i) {
    const auto a = PackedCode::pack(texts[i]);
    const auto b = PackedCode::pack(texts[i + 1]);
    ASSERT_TRUE(a && b);
    ASSERT_EQ(*a < *b, texts[i] < texts[i + 1]) << texts[i] << " " << texts[i + 1];
    ASSERT_EQ(*b < *a, texts[i + 1] < texts[i]) << texts[i] << " " << texts[i + 1];
  }
}

TEST(PackedCodeTest, OnlyTheDisplayFormPacks) {
  const std::string code = format_code(CodeFields{});  // 00000-00000-...
  std::string lower = "x800b-m8qdh-fbe8t-8f5r0-vhvq0-nxhgb";
  std::string no_dashes = symbols_of(code);
  std::string moved_dash = code;
  std::swap(moved_dash[5], moved_dash[6]);
  std::string alias = code;
  alias[0] = 'O';  // parse_code reads it as 0; the text would not come back
  for (const std::string& text :
       {lower, no_dashes, moved_dash, alias, code.substr(0, 34), code + "0", std::string("CODE-1"),
        std::string(), std::string(35, '-'), code.substr(0, 34) + '\0', code.substr(0, 34) + 'U'}) {
    EXPECT_FALSE(PackedCode::pack(text).has_value()) << text;
  }
  EXPECT_TRUE(PackedCode::pack(code).has_value());
}

TEST(VoucherCodeTest, CheckSymbolIsTheLastCharacter) {
  DeterministicRandom rng(5);
  const CodeFields f = random_fields(rng);
  const std::string syms = symbols_of(format_code(f));
  std::vector<std::uint8_t> body;
  for (std::size_t i = 0; i < 29; ++i)
    body.push_back(static_cast<std::uint8_t>(kAlphabet.find(syms[i])));
  EXPECT_EQ(kAlphabet[check_symbol(body)], syms[29]);
}

TEST(VoucherCodeTest, ParseIgnoresCaseDashesAndSpaces) {
  DeterministicRandom rng(7);
  for (int n = 0; n < 200; ++n) {
    const CodeFields f = random_fields(rng);
    const std::string code = format_code(f);
    std::string lower = code;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
      return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    const std::string plain = symbols_of(code);
    std::string spaced = code;
    std::replace(spaced.begin(), spaced.end(), '-', ' ');
    std::string mixed;
    for (std::size_t i = 0; i < plain.size(); ++i) {
      const char c = plain[i];
      mixed.push_back(i % 2 ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : c);
      if (i % 3 == 2) mixed.push_back('-');
    }
    for (const std::string& text : {lower, plain, spaced, mixed}) {
      auto parsed = parse_code(text);
      ASSERT_TRUE(parsed.has_value()) << text;
      EXPECT_EQ(*parsed, f) << text;
    }
  }
}

TEST(VoucherCodeTest, ParseReadsOAsZeroAndIOrLAsOne) {
  CodeFields f;
  f.campaign_tag = 0x021;                                                 // symbols 1, 1
  f.sku_index = 0x001;                                                    // symbols 0, 1
  for (std::size_t i = 0; i < f.random.size(); ++i) f.random[i] = i % 2;  // 0,1,0,1...
  f.mac = 12345;
  const std::string code = format_code(f);
  ASSERT_NE(code.find('0'), std::string::npos);
  ASSERT_NE(code.find('1'), std::string::npos);

  const std::string aliases_zero = "Oo";
  const std::string aliases_one = "IiLl";
  for (char z : aliases_zero) {
    for (char o : aliases_one) {
      std::string text = code;
      for (char& c : text) {
        if (c == '0')
          c = z;
        else if (c == '1')
          c = o;
      }
      auto parsed = parse_code(text);
      ASSERT_TRUE(parsed.has_value()) << text;
      EXPECT_EQ(*parsed, f) << text;
    }
  }
}

TEST(VoucherCodeTest, EverySingleSubstitutionIsRejected) {
  DeterministicRandom rng(11);
  for (int n = 0; n < 20; ++n) {
    const std::string syms = symbols_of(format_code(random_fields(rng)));
    ASSERT_EQ(syms.size(), 30u);
    int tried = 0;
    for (std::size_t pos = 0; pos < syms.size(); ++pos) {
      for (char other : kAlphabet) {
        if (other == syms[pos]) continue;
        std::string bad = syms;
        bad[pos] = other;
        auto parsed = parse_code(bad);
        ASSERT_FALSE(parsed.has_value()) << syms << " -> " << bad;
        ASSERT_TRUE(parsed.error() == CodeParseError::kBadCheck ||
                    parsed.error() == CodeParseError::kMalformed)
            << bad;
        ++tried;
      }
    }
    EXPECT_EQ(tried, 30 * 31);
  }
}

TEST(VoucherCodeTest, EveryExchangeOfTwoDifferentCharactersIsRejected) {
  DeterministicRandom rng(13);
  for (int n = 0; n < 50; ++n) {
    const std::string syms = symbols_of(format_code(random_fields(rng)));
    int tried = 0;
    for (std::size_t i = 0; i < syms.size(); ++i) {
      for (std::size_t j = i + 1; j < syms.size(); ++j) {
        if (syms[i] == syms[j]) continue;
        std::string bad = syms;
        std::swap(bad[i], bad[j]);
        auto parsed = parse_code(bad);
        ASSERT_FALSE(parsed.has_value()) << syms << " swap " << i << "," << j << " -> " << bad;
        ASSERT_TRUE(parsed.error() == CodeParseError::kBadCheck ||
                    parsed.error() == CodeParseError::kMalformed);
        ++tried;
      }
    }
    EXPECT_GT(tried, 0);
  }
}

TEST(VoucherCodeTest, WrongLengthAndInvalidCharactersAreMalformed) {
  DeterministicRandom rng(17);
  const std::string code = format_code(random_fields(rng));
  const std::string syms = symbols_of(code);

  auto malformed = [](std::string_view text) {
    auto parsed = parse_code(text);
    return !parsed.has_value() && parsed.error() == CodeParseError::kMalformed;
  };
  EXPECT_TRUE(malformed(""));
  EXPECT_TRUE(malformed("-----"));
  EXPECT_TRUE(malformed(syms.substr(0, 29)));  // one short
  EXPECT_TRUE(malformed(syms + "0"));          // one long
  EXPECT_TRUE(malformed(code.substr(0, code.size() - 1)));
  EXPECT_TRUE(malformed(syms + syms));
  EXPECT_TRUE(malformed(std::string(200, '-')));  // over kCodeTextBytesMax
  for (char bad : {'U', 'u', '!', '_', '.', '\0', '\n', '*'}) {
    for (std::size_t pos : {std::size_t{0}, std::size_t{13}, std::size_t{29}}) {
      std::string text = syms;
      text[pos] = bad;
      EXPECT_TRUE(malformed(text)) << "char " << static_cast<int>(bad) << " at " << pos;
    }
  }
  std::string high = syms;
  high[3] = static_cast<char>(0xC3);  // a UTF-8 lead byte
  EXPECT_TRUE(malformed(high));
}

TEST(VoucherCodeTest, CampaignTagIsTenBitsAndStable) {
  EXPECT_EQ(campaign_tag("gd-2024"), campaign_tag("gd-2024"));
  std::set<std::uint16_t> tags;
  for (int i = 0; i < 500; ++i) {
    const std::uint16_t t = campaign_tag("campaign-" + std::to_string(i));
    EXPECT_LT(t, 1024u);
    tags.insert(t);
  }
  EXPECT_GT(tags.size(), 300u);  // a hash, not a constant
}

TEST(VoucherCodeTest, MacBindsCampaignSiteSkuAndSecret) {
  const auto secret = secret_bytes(1);
  const auto other_secret = secret_bytes(2);
  CodeSigner signer(secret);
  CodeSigner other_signer(other_secret);
  CodeSigner same_signer(secret);

  DeterministicRandom rng(23);
  const CodeFields f0 = random_fields(rng);
  const SkuMacKey key = signer.derive_sku_key("gd-2024", "site-001", "sku-001");
  const std::uint64_t mac = compute_mac(key, f0);
  EXPECT_LT(mac, std::uint64_t{1} << limits::kCodeMacBits);
  EXPECT_EQ(mac, compute_mac(key, f0));  // deterministic
  EXPECT_EQ(mac, compute_mac(same_signer.derive_sku_key("gd-2024", "site-001", "sku-001"), f0));

  EXPECT_NE(mac, compute_mac(signer.derive_sku_key("gd-2025", "site-001", "sku-001"), f0));
  EXPECT_NE(mac, compute_mac(signer.derive_sku_key("gd-2024", "site-002", "sku-001"), f0));
  EXPECT_NE(mac, compute_mac(signer.derive_sku_key("gd-2024", "site-001", "sku-002"), f0));
  EXPECT_NE(mac, compute_mac(other_signer.derive_sku_key("gd-2024", "site-001", "sku-001"), f0));
  // Ids are length-prefixed: moving bytes between ids changes the key.
  EXPECT_NE(mac, compute_mac(signer.derive_sku_key("gd-2024s", "ite-001", "sku-001"), f0));
  EXPECT_NE(mac, compute_mac(signer.derive_sku_key("gd-2024", "site-001s", "ku-001"), f0));

  // The MAC covers tag, SKU index and every random symbol.
  CodeFields f = f0;
  f.campaign_tag ^= 1;
  EXPECT_NE(mac, compute_mac(key, f));
  f = f0;
  f.sku_index ^= 1;
  EXPECT_NE(mac, compute_mac(key, f));
  for (std::size_t i = 0; i < f0.random.size(); ++i) {
    f = f0;
    f.random[i] ^= 1;
    EXPECT_NE(mac, compute_mac(key, f)) << "random symbol " << i;
  }
  // The MAC does not cover itself.
  f = f0;
  f.mac = 999;
  EXPECT_EQ(mac, compute_mac(key, f));
}

TEST(VoucherCodeTest, MacsOfManyCodesDiffer) {
  CodeSigner signer(secret_bytes(9));
  const SkuMacKey key = signer.derive_sku_key("c", "s", "k");
  DeterministicRandom rng(29);
  std::set<std::uint64_t> macs;
  for (int i = 0; i < 5'000; ++i) macs.insert(compute_mac(key, random_fields(rng)));
  EXPECT_EQ(macs.size(), 5'000u);  // 45 bits: a collision here means a broken MAC
}

}  // namespace
}  // namespace voucherd
