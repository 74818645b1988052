// auth.h — who may call what: bearer tokens mapped to roles, and the guard
// against guessing voucher codes at a site's desk.
//
// Tokens file (--auth-file), one token per line, '#' starts a comment:
//
//   sha256:<64 hex digits of SHA-256(token)> <role>
//
// where <role> is `app`, `admin` or `site:<site id>`. Only hashes are stored,
// so the file reveals no token; make a line with
// `printf '%s' "$TOKEN" | sha256sum` (or `voucherctl hash-token`). Tokens are
// never logged.
//
// Callers send `authorization: Bearer <token>` in gRPC metadata.
//   app          Claim, GetVoucher, ListMemberVouchers
//   site:<id>    Redeem at its own site, GetVoucher of its own site's vouchers
//   admin        AdminService
// No token or an unknown one: UNAUTHENTICATED. A known token of the wrong
// role or site: PERMISSION_DENIED.
//
// Thread-safety: Authenticator is immutable after load(); RedeemGuard is
// safe from any thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "server/base/token_hash.h"

namespace voucherd {

enum class Role : std::uint8_t { kApp, kSite, kAdmin };

struct Principal {
  Role role = Role::kApp;
  std::string site_id;     // for Role::kSite
  std::string token_hash;  // hex; names the caller in the redeem guard (never the token)
};

// Which callers an RPC admits.
enum class Access : std::uint8_t {
  kApp,     // app
  kLookup,  // app, a site (the handler checks the voucher's site), or admin
  kSite,    // a site (the handler checks the site)
  kAdmin,   // admin
};

class Authenticator {
 public:
  // Reads a tokens file. The error names the file and line.
  [[nodiscard]] static std::expected<Authenticator, std::string> load(const std::string& path);

  // The caller behind an `authorization` metadata value ("Bearer <token>"),
  // or an error: kUnauthenticated (missing, malformed, unknown) or
  // kPermissionDenied (known, but not admitted by `access`).
  enum class Refusal : std::uint8_t { kUnauthenticated, kPermissionDenied };
  [[nodiscard]] std::expected<Principal, Refusal> admit(std::string_view authorization,
                                                        Access access) const;

  [[nodiscard]] std::size_t size() const { return by_hash_.size(); }

 private:
  std::unordered_map<std::string, Principal> by_hash_;  // hex SHA-256 -> principal
};

// Counts consecutive failed redemptions and lookups (codes that are not
// vouchers) per caller. Beyond `budget`, the caller is refused for `cooldown`
// (NIST SP 800-63B's rate limiting for secrets under 64 bits of guessing
// resistance). Only a success that changes something (a fresh redemption)
// resets the count, and it does not end a cool-down under way: replaying one
// real redemption must not buy a guesser a new budget. Real vouchers are
// never refused (callers check the guard only after a code proved false).
class RedeemGuard {
 public:
  using Clock = std::chrono::steady_clock;
  RedeemGuard(int budget, std::chrono::seconds cooldown) : budget_(budget), cooldown_(cooldown) {}

  // Whether `caller` may try now; if not, how long until it may.
  [[nodiscard]] std::expected<void, std::chrono::seconds> check(const std::string& caller,
                                                                Clock::time_point now);
  void failed(const std::string& caller, Clock::time_point now);
  // A fresh redemption by `caller`: its failure count starts again, unless
  // it is cooling down.
  void succeeded(const std::string& caller, Clock::time_point now);

 private:
  struct Entry {
    int failures = 0;
    Clock::time_point blocked_until{};
  };
  const int budget_;
  const std::chrono::seconds cooldown_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace voucherd
