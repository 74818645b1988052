// config_fuzzer — voucherd's config file (--config FILE: "flag = value"
// lines, server/app/config.h), read the way voucherd reads it at start.
//
// An input is a config file's text. The target reads it as
// parse_config_file() does, and runs parse_config() on a command line that
// names it (--config), with nothing in the environment. It asserts:
//  - a file whose lines are refused makes voucherd exit 2;
//  - the same settings given in the environment (VOUCHERD_<FLAG>) give the
//    same answer and the same configuration: a value means the same from
//    any source;
//  - a configuration voucherd accepts keeps the rules parse_config states:
//    TLS certificate and key together, a store other than memory with its
//    Redis address and a secret file, one Redis address kind, numbers in
//    their ranges, a replica id that is an id without '|'.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/campaign_validation.h"
#include "fuzz/fuzz_check.h"
#include "server/app/config.h"

namespace voucherd {
namespace {

// Where the text is written for --config: one file per fuzzing process.
const std::string& config_path() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir != nullptr ? dir : "/tmp") + "/voucherd-config-fuzz-" +
           std::to_string(::getpid()) + ".conf";
  }();
  return path;
}

// voucherd writes its refusals (and CLI11 its messages) on stderr and
// stdout: thousands a second would drown the fuzzer's own report.
struct Quiet {
  std::ostringstream sink;
  std::streambuf* err = std::cerr.rdbuf(sink.rdbuf());
  std::streambuf* out = std::cout.rdbuf(sink.rdbuf());
  ~Quiet() {
    std::cerr.rdbuf(err);
    std::cout.rdbuf(out);
  }
};

ConfigResult parse(std::vector<std::string> args, const std::map<std::string, std::string>& env) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Quiet quiet;
  return parse_config(static_cast<int>(args.size()), argv.data(), [&env](const char* name) {
    const auto it = env.find(name);
    return it == env.end() ? static_cast<const char*>(nullptr) : it->second.c_str();
  });
}

std::string env_name(std::string_view flag) {
  std::string env = "VOUCHERD_";
  for (char ch : flag) {
    env.push_back(ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 32) : ch);
  }
  return env;
}

void expect_rules(const Config& c) {
  FUZZ_EXPECT(c.tls_cert.empty() == c.tls_key.empty(), "TLS certificate and key go together");
  FUZZ_EXPECT(c.tls_client_ca.empty() || !c.tls_cert.empty(), "client CA needs TLS");
  const int redis_addresses =
      !c.redis_url.empty() + !c.redis_sentinel.empty() + !c.redis_cluster.empty();
  FUZZ_EXPECT(redis_addresses <= 1, "one kind of Redis address");
  FUZZ_EXPECT(c.redis_sentinel.empty() == c.redis_master.empty(), "sentinels name a master");
  if (c.store == StoreKind::kMemory) {
    FUZZ_EXPECT(redis_addresses == 0 && c.redis_min_replicas == 0, "memory needs no Redis");
  } else {
    FUZZ_EXPECT(redis_addresses == 1 && !c.secret_file.empty(),
                "a Redis store has its address and a secret file");
  }
  FUZZ_EXPECT(c.replica_id.empty() ||
                  (id_is_valid(c.replica_id) && c.replica_id.find('|') == std::string::npos),
              "a replica id is an id without '|'");
  // 0: one queue thread per core (default_grpc_threads()).
  FUZZ_EXPECT(c.grpc_threads >= 0 && c.grpc_threads <= 64, "grpc threads in range");
  FUZZ_EXPECT(c.redis_pool >= 1 && c.redis_pool <= 256, "pool in range");
  FUZZ_EXPECT(c.redis_min_replicas >= 0 && c.redis_min_replicas <= 16, "replicas in range");
  FUZZ_EXPECT(c.redis_replica_wait_ms >= 1 && c.redis_replica_wait_ms <= 1500, "wait in range");
  FUZZ_EXPECT(c.lease_timeout_ms >= 600 && c.lease_timeout_ms <= 600'000, "lease in range");
  FUZZ_EXPECT(c.redeem_failure_budget >= 1 && c.redeem_failure_budget <= 1'000'000, "budget");
  FUZZ_EXPECT(c.redeem_cooldown_seconds >= 1 && c.redeem_cooldown_seconds <= 86'400, "cooldown");
}

void check_config(std::string_view text) {
  const std::string& path = config_path();
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    FUZZ_EXPECT(f != nullptr, "the fuzzer can write its config file " + path);
    FUZZ_EXPECT(std::fwrite(text.data(), 1, text.size(), f) == text.size(), "written");
    std::fclose(f);
  }
  const auto settings = parse_config_file(text, path);
  const ConfigResult from_file = parse({"voucherd", "--config", path}, {});
  if (!settings) {
    FUZZ_EXPECT(from_file.should_exit && from_file.exit_code == 2,
                "a file with a bad line makes voucherd exit 2: " + settings.error());
    return;
  }
  if (!from_file.should_exit) {
    FUZZ_EXPECT(from_file.config.config_file == path, "the configuration names its file");
    expect_rules(from_file.config);
  } else {
    FUZZ_EXPECT(from_file.exit_code == 2, "a refused configuration exits 2");
  }
  // The same settings from the environment. A value with a NUL byte cannot
  // be an environment variable's.
  std::map<std::string, std::string> env;
  for (const ConfigSetting& s : *settings) {
    if (s.value.find('\0') != std::string::npos) return;
    env[env_name(s.name)] = s.value;
  }
  const ConfigResult from_env = parse({"voucherd"}, env);
  FUZZ_EXPECT(
      from_env.should_exit == from_file.should_exit && from_env.exit_code == from_file.exit_code,
      "the environment gives the answer the file gives");
  if (!from_env.should_exit) {
    Config c = from_env.config;
    c.config_file = from_file.config.config_file;
    FUZZ_EXPECT(c == from_file.config, "the environment gives the configuration the file gives");
  }
}

}  // namespace
}  // namespace voucherd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  voucherd::check_config(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
