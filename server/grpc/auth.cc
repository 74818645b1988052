#include "server/grpc/auth.h"

#include <cctype>

namespace voucherd {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool admits(Access access, Role role) {
  switch (access) {
    case Access::kApp:
      return role == Role::kApp;
    case Access::kLookup:
      return role == Role::kApp || role == Role::kSite || role == Role::kAdmin;
    case Access::kSite:
      return role == Role::kSite;
    case Access::kAdmin:
      return role == Role::kAdmin;
  }
  return false;
}

}  // namespace

std::expected<Authenticator, std::string> Authenticator::load(const std::string& path) {
  auto lines = read_token_lines(path, "--auth-file", "role");
  if (!lines) return std::unexpected(lines.error());
  Authenticator auth;
  for (TokenLine& line : *lines) {
    Principal p;
    p.token_hash = std::move(line.hash);
    const std::string& role = line.word;
    if (role == "app") {
      p.role = Role::kApp;
    } else if (role == "admin") {
      p.role = Role::kAdmin;
    } else if (role.rfind("site:", 0) == 0 && role.size() > 5) {
      p.role = Role::kSite;
      p.site_id = role.substr(5);
    } else {
      return std::unexpected(line.where + "role must be app, admin or site:<site id>, not \"" +
                             role + "\"");
    }
    auth.by_hash_.emplace(p.token_hash, p);
  }
  return auth;
}

std::expected<Principal, Authenticator::Refusal> Authenticator::admit(
    std::string_view authorization, Access access) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() ||
      lower(authorization.substr(0, kBearer.size())) != "bearer ") {
    return std::unexpected(Refusal::kUnauthenticated);
  }
  auto it = by_hash_.find(token_hash(authorization.substr(kBearer.size())));
  if (it == by_hash_.end()) return std::unexpected(Refusal::kUnauthenticated);
  if (!admits(access, it->second.role)) return std::unexpected(Refusal::kPermissionDenied);
  return it->second;
}

std::expected<void, std::chrono::seconds> RedeemGuard::check(const std::string& caller,
                                                             Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(caller);
  if (it == entries_.end() || now >= it->second.blocked_until) return {};
  return std::unexpected(std::chrono::ceil<std::chrono::seconds>(it->second.blocked_until - now));
}

void RedeemGuard::failed(const std::string& caller, Clock::time_point now) {
  // Callers are tokens (a few) or, without --auth-file, site names a client
  // chooses: bound the table by forgetting callers not in a cool-down.
  constexpr std::size_t kCallersMax = 65'536;
  std::lock_guard lock(mu_);
  if (entries_.size() >= kCallersMax && !entries_.contains(caller)) {
    std::erase_if(entries_, [&](const auto& kv) { return kv.second.blocked_until <= now; });
  }
  Entry& e = entries_[caller];
  if (++e.failures >= budget_) {
    e.failures = 0;
    e.blocked_until = now + cooldown_;
  }
}

void RedeemGuard::succeeded(const std::string& caller, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(caller);
  if (it != entries_.end() && now >= it->second.blocked_until) entries_.erase(it);
}

}  // namespace voucherd
