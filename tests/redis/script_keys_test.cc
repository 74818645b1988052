// script_keys_test — proves, with no network, that every Lua script voucherd
// sends to Redis (server/redis/scripts/*.lua and the benchmark baseline's
// scripts in bench/baseline/per_claim_log.cc) touches only keys it declares:
// every key argument of every redis.call/redis.pcall is a KEYS[...]
// expression, or a local assigned only from KEYS[...]. In Redis Cluster a
// key a script builds from ARGV or from data it read is checked only when
// touched, so during a slot migration such a script can fail half-way, after
// some of its writes (docs/redis.md, "Every script declares every key").
//
// This is a small lint, not a Lua parser: it knows Lua's comments, strings
// and brackets, the key positions of the commands our scripts use, and one
// reviewed exception (kAllowed). It is meant to fail on anything it does not
// understand. The lint's own tests come first.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace voucherd::testing {
namespace {

// Arguments the lint cannot see are keys, checked by a reviewer instead.
struct Allowed {
  const char* file;
  const char* command;
  const char* argument;
  const char* why;
};
constexpr Allowed kAllowed[] = {
    {"claim.lua", "MSET", "unpack(records)",
     "records alternates each written claim's voucher key (vk, from KEYS) with its record"},
};

// The source with comments blanked out (strings kept, positions kept).
std::string strip_comments(const std::string& src) {
  std::string out = src;
  std::size_t i = 0;
  while (i < out.size()) {
    const char c = out[i];
    if (c == '\'' || c == '"') {
      for (++i; i < out.size() && out[i] != c; ++i) {
        if (out[i] == '\\') ++i;
      }
      ++i;
    } else if (c == '-' && i + 1 < out.size() && out[i + 1] == '-') {
      while (i < out.size() && out[i] != '\n') out[i++] = ' ';
    } else {
      ++i;
    }
  }
  return out;
}

std::string trim(std::string s) {
  const auto blank = [](unsigned char ch) { return std::isspace(ch) != 0; };
  s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), blank));
  s.erase(std::find_if_not(s.rbegin(), s.rend(), blank).base(), s.end());
  return s;
}

// Splits `src` from `at` (just past an opening bracket) at top-level commas
// until the matching closing bracket; `end` is set past it. Empty when the
// brackets do not close.
std::vector<std::string> split_args(const std::string& src, std::size_t at, std::size_t* end) {
  std::vector<std::string> args;
  std::string cur;
  int depth = 0;
  for (std::size_t i = at; i < src.size(); ++i) {
    const char c = src[i];
    if (c == '\'' || c == '"') {
      const std::size_t start = i;
      for (++i; i < src.size() && src[i] != c; ++i) {
        if (src[i] == '\\') ++i;
      }
      cur.append(src, start, i - start + 1);
      continue;
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') {
      if (depth == 0) {
        args.push_back(trim(cur));
        if (end != nullptr) *end = i + 1;
        return args;
      }
      --depth;
    }
    if (c == ',' && depth == 0) {
      args.push_back(trim(cur));
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  return {};
}

// KEYS[<balanced>] and nothing else.
bool is_keys_expression(const std::string& arg) {
  if (arg.rfind("KEYS[", 0) != 0 || arg.back() != ']') return false;
  int depth = 0;
  for (std::size_t i = 4; i < arg.size(); ++i) {
    if (arg[i] == '[') ++depth;
    if (arg[i] == ']' && --depth == 0) return i == arg.size() - 1;
  }
  return false;
}

bool is_identifier(const std::string& s) {
  static const std::regex name("[A-Za-z_][A-Za-z0-9_]*");
  return std::regex_match(s, name);
}

// Whether local `name` is assigned at least once, and only ever from a
// KEYS[...] expression (a, b = KEYS[1], KEYS[2] included), and is no loop
// variable or function parameter.
bool assigned_only_from_keys(const std::string& src, const std::string& name) {
  const std::regex loop_or_param("(for\\s+[^\\n]*\\b" + name +
                                 "\\b[^\\n]*\\bin\\b)|(function\\s*[\\w.]*\\s*\\([^)]*\\b" + name +
                                 "\\b)");
  if (std::regex_search(src, loop_or_param)) return false;
  // <local>? a, b, c = <rest of the line>, where '=' is not part of ==, ~=, <=, >=.
  const std::regex assign(
      "(?:^|[^\\w.])((?:[A-Za-z_]\\w*\\s*,\\s*)*[A-Za-z_]\\w*)\\s*=(?!=)([^\\n]*)");
  int from_keys = 0;
  for (auto it = std::sregex_iterator(src.begin(), src.end(), assign); it != std::sregex_iterator();
       ++it) {
    const std::string lhs = (*it)[1].str();
    std::vector<std::string> names;
    std::stringstream lhs_stream(lhs);
    for (std::string n; std::getline(lhs_stream, n, ',');) names.push_back(trim(n));
    const auto pos = std::find(names.begin(), names.end(), name);
    if (pos == names.end()) continue;
    // The right side, up to the line's end, split at top-level commas.
    std::vector<std::string> values = split_args((*it)[2].str() + ")", 0, nullptr);
    const auto index = static_cast<std::size_t>(pos - names.begin());
    if (index >= values.size() || !is_keys_expression(values[index])) return false;
    ++from_keys;
  }
  return from_keys > 0;
}

// Where a command's keys are among its arguments; by default, the first
// argument after the command's name.
struct KeyPositions {
  bool none = false;       // TIME
  bool all = false;        // DEL, EXISTS, MGET, ...
  bool alternate = false;  // MSET: key, value, key, value
};
KeyPositions key_positions(const std::string& command) {
  static const std::set<std::string> keyless{"TIME"};
  static const std::set<std::string> all_keys{"DEL", "EXISTS", "MGET", "UNLINK", "TOUCH"};
  static const std::set<std::string> pairs{"MSET", "MSETNX"};
  KeyPositions p;
  p.none = keyless.contains(command);
  p.all = all_keys.contains(command);
  p.alternate = pairs.contains(command);
  return p;
}

// Every problem of one script: "<file>: <what>".
std::vector<std::string> lint(const std::string& file, const std::string& source) {
  std::vector<std::string> problems;
  const std::string src = strip_comments(source);
  const std::regex call("redis\\s*\\.\\s*p?call");
  for (auto it = std::sregex_iterator(src.begin(), src.end(), call); it != std::sregex_iterator();
       ++it) {
    std::size_t at = static_cast<std::size_t>(it->position() + it->length());
    while (at < src.size() && std::isspace(static_cast<unsigned char>(src[at])) != 0) ++at;
    const std::string where = file + " offset " + std::to_string(it->position());
    if (at >= src.size() || src[at] != '(') {
      problems.push_back(where + ": redis.call used other than as a call");
      continue;
    }
    std::size_t end = 0;
    const std::vector<std::string> args = split_args(src, at + 1, &end);
    if (args.empty() || args[0].size() < 2 || (args[0].front() != '\'' && args[0].front() != '"') ||
        args[0].back() != args[0].front()) {
      problems.push_back(where + ": the command is not a string literal");
      continue;
    }
    std::string command = args[0].substr(1, args[0].size() - 2);
    std::transform(command.begin(), command.end(), command.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    const KeyPositions p = key_positions(command);
    if (p.none) continue;
    std::vector<std::size_t> keys;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (p.all || (p.alternate && i % 2 == 1) || (!p.all && !p.alternate && i == 1)) {
        keys.push_back(i);
      }
    }
    if (keys.empty()) problems.push_back(where + ": " + command + " names no key");
    for (const std::size_t i : keys) {
      const std::string& arg = args[i];
      if (is_keys_expression(arg)) continue;
      if (is_identifier(arg) && assigned_only_from_keys(src, arg)) continue;
      const bool allowed =
          std::any_of(std::begin(kAllowed), std::end(kAllowed), [&](const Allowed& a) {
            return file.ends_with(a.file) && command == a.command && arg == a.argument;
          });
      if (!allowed)
        problems.push_back(where + ": " + command + " touches an undeclared key: " + arg);
    }
  }
  return problems;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The lint itself: what it accepts and what it refuses.
TEST(ScriptKeysLint, AcceptsDeclaredKeysAndLocalsAssignedFromThem) {
  EXPECT_TRUE(lint("t.lua", "redis.call('GET', KEYS[1])").empty());
  EXPECT_TRUE(lint("t.lua", "redis.call('GET', KEYS[held_key[held]])").empty());
  EXPECT_TRUE(lint("t.lua", "local mk = KEYS[4 + 2 * i]\nredis.call('HGET', mk, 'n')").empty());
  EXPECT_TRUE(
      lint("t.lua", "local dk, mk, vk = KEYS[4], KEYS[5], KEYS[6]\nredis.call('SET', vk, ARGV[1])")
          .empty());
  EXPECT_TRUE(lint("t.lua", "redis.call('DEL', KEYS[3], KEYS[6])").empty());
  EXPECT_TRUE(lint("t.lua", "local t = redis.call('TIME')").empty());
  EXPECT_TRUE(lint("t.lua", "-- redis.call('GET', ARGV[1])\nredis.call('GET', KEYS[1])").empty());
  EXPECT_TRUE(lint("t.lua", "redis.call('RPUSH', KEYS[7], '-' .. #m .. ':' .. m)").empty());
}

TEST(ScriptKeysLint, RefusesKeysMadeFromArgvOrData) {
  EXPECT_EQ(lint("t.lua", "redis.call('GET', ARGV[1] .. c)").size(), 1u);
  EXPECT_EQ(lint("t.lua", "redis.call('GET', KEYS[4] .. ':' .. c)").size(), 1u);
  EXPECT_EQ(lint("t.lua", "local mk = ARGV[4] .. member\nredis.call('DEL', mk)").size(), 1u);
  EXPECT_EQ(lint("t.lua", "local k = KEYS[1]\nk = ARGV[1]\nredis.call('GET', k)").size(), 1u);
  EXPECT_EQ(lint("t.lua", "for _, k in ipairs(KEYS) do redis.call('GET', k) end").size(), 1u);
  EXPECT_EQ(lint("t.lua", "local a, b = KEYS[1], ARGV[1]\nredis.call('GET', b)").size(), 1u);
  EXPECT_EQ(lint("t.lua", "redis.call('DEL', KEYS[1], ARGV[2])").size(), 1u);
  EXPECT_EQ(lint("t.lua", "redis.call('MSET', unpack(records))").size(), 1u);
  EXPECT_EQ(lint("t.lua", "local c = redis.call\nc('GET', KEYS[1])").size(), 1u);
  EXPECT_EQ(lint("t.lua", "redis.call(cmd, KEYS[1])").size(), 1u);
  EXPECT_EQ(lint("t.lua", "redis.pcall('GET', prefix .. code)").size(), 1u);
}

TEST(ScriptKeys, EveryStoreScriptDeclaresEveryKeyItTouches) {
  const std::filesystem::path dir =
      std::filesystem::path(VOUCHERD_SOURCE_DIR) / "server" / "redis" / "scripts";
  int scripts = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".lua") continue;
    ++scripts;
    const std::string name = entry.path().filename().string();
    const std::string text = read_file(entry.path());
    EXPECT_NE(text.find("KEYS"), std::string::npos) << name << " says nothing of its KEYS";
    for (const std::string& problem : lint(name, text)) ADD_FAILURE() << problem;
  }
  // Ten scripts and two preludes today: a moved directory must not pass empty.
  EXPECT_GE(scripts, 12);
}

TEST(ScriptKeys, EveryBaselineScriptDeclaresEveryKeyItTouches) {
  const std::string source = read_file(std::filesystem::path(VOUCHERD_SOURCE_DIR) / "bench" /
                                       "baseline" / "per_claim_log.cc");
  int scripts = 0;
  for (std::size_t at = source.find("R\"lua("); at != std::string::npos;
       at = source.find("R\"lua(", at + 1)) {
    const std::size_t begin = at + 6;
    const std::size_t end = source.find(")lua\"", begin);
    ASSERT_NE(end, std::string::npos);
    ++scripts;
    for (const std::string& problem : lint("per_claim_log.cc script " + std::to_string(scripts),
                                           source.substr(begin, end - begin))) {
      ADD_FAILURE() << problem;
    }
  }
  EXPECT_EQ(scripts, 3);
}

}  // namespace
}  // namespace voucherd::testing
