// config_test — proves voucherd's one configuration precedence: the command
// line beats the environment (VOUCHERD_<FLAG>), which beats the config file
// (--config or VOUCHERD_CONFIG), which beats the default; and that a bad
// value from any source is refused (exit code 2) with a message naming the
// flag and the source, before voucherd listens.
#include "server/app/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "tests/support/voucherd_process.h"

namespace voucherd::testing {
namespace {

// argv and an environment of our own, so tests never touch the process's.
struct Invocation {
  std::vector<std::string> args;
  std::map<std::string, std::string> env;

  ConfigResult parse(std::string* stderr_text = nullptr) const {
    std::vector<std::string> storage{"voucherd"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : storage) argv.push_back(a.data());
    ::testing::internal::CaptureStderr();
    ConfigResult r = parse_config(static_cast<int>(argv.size()), argv.data(),
                                  [this](const char* name) -> const char* {
                                    const auto it = env.find(name);
                                    return it == env.end() ? nullptr : it->second.c_str();
                                  });
    const std::string err = ::testing::internal::GetCapturedStderr();
    if (stderr_text != nullptr) *stderr_text = err;
    return r;
  }
};

TEST(Config, CommandLineBeatsEnvironmentBeatsFileBeatsDefault) {
  TempDir dir;
  const auto file = dir.write("voucherd.conf",
                              "# voucherd settings\n"
                              "ops-listen = 127.0.0.1:1001\n"
                              "grpc_threads = 3\n"
                              "log-level = \"warn\"\n"
                              "rehearse = true\n"
                              "\n");
  Invocation call{{"--config", file.string(), "--ops-listen", "127.0.0.1:1003"},
                  {{"VOUCHERD_OPS_LISTEN", "127.0.0.1:1002"}, {"VOUCHERD_GRPC_THREADS", "4"}}};
  const ConfigResult r = call.parse();
  ASSERT_FALSE(r.should_exit);
  EXPECT_EQ(r.config.ops_listen, "127.0.0.1:1003");  // command line over env and file
  EXPECT_EQ(r.config.grpc_threads, 4);               // env over file
  EXPECT_EQ(r.config.log_level, log::Level::kWarn);  // file over default
  EXPECT_TRUE(r.config.rehearse);                    // a switch from the file
  EXPECT_EQ(r.config.redeem_failure_budget, 100);    // default
  EXPECT_EQ(r.config.config_file, file.string());

  // Without the flag, the environment's value; without either, the file's.
  call.args = {"--config", file.string()};
  EXPECT_EQ(call.parse().config.ops_listen, "127.0.0.1:1002");
  call.env.erase("VOUCHERD_OPS_LISTEN");
  EXPECT_EQ(call.parse().config.ops_listen, "127.0.0.1:1001");
  call.args = {};
  EXPECT_EQ(call.parse().config.ops_listen, "127.0.0.1:9464");  // no file: the default
}

TEST(Config, TheFileCanComeFromTheEnvironmentAndTheFlagWins) {
  TempDir dir;
  const auto a = dir.write("a.conf", "redeem-cooldown-seconds = 7\n");
  const auto b = dir.write("b.conf", "redeem-cooldown-seconds = 9\n");
  Invocation call{{}, {{"VOUCHERD_CONFIG", a.string()}}};
  EXPECT_EQ(call.parse().config.redeem_cooldown_seconds, 7);
  call.args = {"--config=" + b.string()};
  EXPECT_EQ(call.parse().config.redeem_cooldown_seconds, 9);
}

TEST(Config, ABadValueFromAnySourceNamesTheFlagAndTheSource) {
  TempDir dir;
  std::string err;
  // The file: the line and the flag.
  const auto bad = dir.write("bad.conf", "# ok\nlisten = 127.0.0.1:0\ngrpc-threads = 99\n");
  ConfigResult r = Invocation{{"--config", bad.string()}, {}}.parse(&err);
  EXPECT_TRUE(r.should_exit);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(err.find("config file " + bad.string() + ", line 3"), std::string::npos) << err;
  EXPECT_NE(err.find("--grpc-threads"), std::string::npos) << err;
  // Even when the command line sets the same flag well: the file is wrong.
  r = Invocation{{"--config", bad.string(), "--grpc-threads", "2"}, {}}.parse(&err);
  EXPECT_EQ(r.exit_code, 2);

  // The environment: the variable and the flag.
  r = Invocation{{}, {{"VOUCHERD_STORE", "nosuch"}}}.parse(&err);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(err.find("environment variable VOUCHERD_STORE"), std::string::npos) << err;
  EXPECT_NE(err.find("--store"), std::string::npos) << err;

  // The command line: the flag.
  r = Invocation{{"--redeem-failure-budget", "0"}, {}}.parse(&err);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(err.find("--redeem-failure-budget"), std::string::npos) << err;
  EXPECT_NE(err.find("command line"), std::string::npos) << err;

  // A switch with a value that is not true or false.
  const auto maybe = dir.write("maybe.conf", "rehearse = maybe\n");
  r = Invocation{{"--config", maybe.string()}, {}}.parse(&err);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(err.find("--rehearse"), std::string::npos) << err;

  // A replica id that would break lease records ("replica|SKU"), or logs.
  for (const char* id : {"a|b", "a\nb"}) {
    r = Invocation{{"--replica-id", id}, {}}.parse(&err);
    EXPECT_EQ(r.exit_code, 2) << id;
    EXPECT_NE(err.find("--replica-id"), std::string::npos) << err;
  }
  const Invocation fine{{"--replica-id", "replica-a"}, {}};
  EXPECT_EQ(fine.parse().exit_code, 0);
}

TEST(Config, RedisSentinelAndMinReplicasGoWithTheRedisStoreOnly) {
  TempDir dir;
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  auto refused = [&](std::vector<std::string> args, const std::string& says) {
    std::string err;
    const ConfigResult r = Invocation{std::move(args), {}}.parse(&err);
    EXPECT_EQ(r.exit_code, 2) << says;
    EXPECT_NE(err.find(says), std::string::npos) << err;
  };
  refused({"--store", "redis", "--secret-file", secret, "--redis-sentinel", "127.0.0.1:26379"},
          "--redis-sentinel and --redis-master go together");
  refused({"--store", "redis", "--secret-file", secret, "--redis-master", "voucherd"},
          "--redis-sentinel and --redis-master go together");
  refused({"--store", "redis", "--secret-file", secret, "--redis", "redis://127.0.0.1:6379",
           "--redis-sentinel", "127.0.0.1:26379", "--redis-master", "voucherd"},
          "give one of --redis, --redis-sentinel and --redis-cluster");
  refused({"--store", "redis", "--secret-file", secret, "--redis", "redis://127.0.0.1:6379",
           "--redis-cluster", "127.0.0.1:7000"},
          "give one of --redis, --redis-sentinel and --redis-cluster");
  refused({"--redis-cluster", "127.0.0.1:7000"}, "--redis-cluster is only used with --store=redis");
  refused({"--redis-sentinel", "127.0.0.1:26379", "--redis-master", "voucherd"},
          "--redis-sentinel is only used with --store=redis");
  refused({"--redis-min-replicas", "1"}, "--redis-min-replicas is only used with --store=redis");
  refused({"--store", "redis", "--secret-file", secret}, "needs --redis");
  refused({"--redis-min-replicas", "17"}, "--redis-min-replicas");
  refused({"--allocation-lease-ms", "999"}, "--allocation-lease-ms");
  refused({"--allocation-batch-max", "0"}, "--allocation-batch-max");
  refused({"--allocation-batch-max", "513"}, "--allocation-batch-max");
  refused({"--redis-replica-wait-ms", "2000"}, "--redis-replica-wait-ms");

  const ConfigResult ok = Invocation{
      {"--store", "redis", "--secret-file", secret, "--redis-sentinel",
       "127.0.0.1:26379,127.0.0.1:26380", "--redis-master", "voucherd", "--redis-min-replicas", "1",
       "--redis-replica-wait-ms", "250"},
      {}}.parse();
  EXPECT_FALSE(ok.should_exit);
  EXPECT_EQ(ok.config.redis_sentinel, "127.0.0.1:26379,127.0.0.1:26380");
  EXPECT_EQ(ok.config.redis_master, "voucherd");
  EXPECT_EQ(ok.config.redis_min_replicas, 1);
  EXPECT_EQ(ok.config.redis_replica_wait_ms, 250);
  EXPECT_EQ(ok.config.allocation_lease_ms, 10'000);  // the defaults
  EXPECT_EQ(ok.config.allocation_batch_max, 512);
  const ConfigResult tuned =
      Invocation{{"--allocation-lease-ms", "2000", "--allocation-batch-max", "8"}, {}}.parse();
  EXPECT_FALSE(tuned.should_exit);
  EXPECT_EQ(tuned.config.allocation_lease_ms, 2'000);
  EXPECT_EQ(tuned.config.allocation_batch_max, 8);
}

TEST(Config, AnOpsPortBeyondLoopbackNeedsTokensOrSayingItIsInsecure) {
  TempDir dir;
  const std::string tokens =
      dir.write("ops-tokens", "sha256:" + std::string(64, 'a') + " prom\n").string();
  for (const std::string listen : {"0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464", ":::9464"}) {
    std::string err;
    const ConfigResult r = Invocation{{"--ops-listen", listen}, {}}.parse(&err);
    EXPECT_EQ(r.exit_code, 2) << listen;
    EXPECT_NE(err.find("--ops-listen " + listen + " reaches beyond this machine"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("--ops-auth-file"), std::string::npos) << err;
  }
  // The example config's address, from a file: refused the same way.
  const auto file = dir.write("voucherd.conf", "ops-listen = 0.0.0.0:9464\n");
  EXPECT_EQ(Invocation({{"--config", file.string()}, {}}).parse().exit_code, 2);
  for (const std::string listen : {"127.0.0.1:9464", "127.0.0.2:0", "::1:9464"}) {
    EXPECT_FALSE(Invocation({{"--ops-listen", listen}, {}}).parse().should_exit) << listen;
  }
  const ConfigResult with_tokens =
      Invocation{{"--ops-listen", "0.0.0.0:9464", "--ops-auth-file", tokens}, {}}.parse();
  EXPECT_FALSE(with_tokens.should_exit);
  EXPECT_EQ(with_tokens.config.ops_auth_file, tokens);
  const ConfigResult insecure =
      Invocation{{"--ops-listen", "0.0.0.0:9464"}, {{"VOUCHERD_OPS_INSECURE", "true"}}}.parse();
  EXPECT_FALSE(insecure.should_exit);
  EXPECT_TRUE(insecure.config.ops_insecure);
}

TEST(Config, ASecretFileHoldsTheMintingSecretThenOlderOnes) {
  TempDir dir;
  const std::string a(64, 'a'), b(64, 'B'), c(96, 'c');
  auto read = [&](const std::string& content) {
    return read_secret_file(dir.write("secret.hex", content).string());
  };
  const auto one = read(a);
  ASSERT_TRUE(one.has_value()) << one.error();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0], std::vector<std::uint8_t>(32, 0xaa));
  const auto three = read("# rotated on 2026-11-30\n" + b + "  # new\n\n" + a + "\n" +
                          c.substr(0, 48) + " " + c.substr(48) + "\n");
  ASSERT_TRUE(three.has_value()) << three.error();
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ((*three)[0], std::vector<std::uint8_t>(32, 0xbb));
  EXPECT_EQ((*three)[1], std::vector<std::uint8_t>(32, 0xaa));
  EXPECT_EQ((*three)[2], std::vector<std::uint8_t>(48, 0xcc));
  struct Case {
    std::string content, says;
  };
  for (const Case& bad : std::vector<Case>{
           {"", "holds no secret"},
           {"# nothing\n", "holds no secret"},
           {a + "\n" + a.substr(0, 32) + "\n" + a.substr(32) + "\n", "line 2 holds 16 bytes"},
           {a + "x\n", "line 1 must hold hex digits only"},
           {a + "a\n", "line 1 has an odd number of hex digits"},
           {a + "\n" + b + "\n" + a + "\n", "line 3: the same secret appears twice"},
           {a + "\n" + b + "\n" + c + "\n" + std::string(64, 'd') + "\n" + std::string(64, 'e'),
            "holds more than 4 secrets"},
       }) {
    const auto refused = read(bad.content);
    ASSERT_FALSE(refused.has_value()) << bad.content;
    EXPECT_NE(refused.error().find(bad.says), std::string::npos) << refused.error();
  }
}

TEST(Config, AFileThatIsNotAConfigFileIsRefusedWithItsLine) {
  TempDir dir;
  std::string err;
  struct Case {
    const char* content;
    const char* expected;
  };
  for (const Case& c : {Case{"nosuch = 1\n", "unknown setting \"nosuch\""},
                        Case{"listen 127.0.0.1:1\n", "expected \"flag = value\""},
                        Case{"[server]\n", "expected \"flag = value\""},
                        Case{"store = memory\nstore = redis\n", "\"store\" is set twice"},
                        Case{"help = true\n", "unknown setting \"help\""},
                        Case{"config = other.conf\n", "unknown setting \"config\""}}) {
    const auto file = dir.write("x.conf", c.content);
    const ConfigResult r = Invocation{{"--config", file.string()}, {}}.parse(&err);
    EXPECT_EQ(r.exit_code, 2) << c.content;
    EXPECT_NE(err.find(c.expected), std::string::npos) << c.content << " -> " << err;
    EXPECT_NE(err.find(", line "), std::string::npos) << err;
  }
  const ConfigResult missing =
      Invocation{{"--config", (dir.path() / "none.conf").string()}, {}}.parse(&err);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(err.find("cannot read config file"), std::string::npos) << err;
}

TEST(Config, HelpAndVersionAnswerWhateverTheOtherSourcesHold) {
  std::string err;
  const ConfigResult r = Invocation{{"--version"}, {{"VOUCHERD_GRPC_THREADS", "99"}}}.parse(&err);
  EXPECT_TRUE(r.should_exit);
  EXPECT_EQ(r.exit_code, 0);
}

TEST(Config, ARealVoucherdWithABadConfigFileExitsBeforeListening) {
  TempDir dir;
  const auto file = dir.write("voucherd.conf", "ops-listen = 127.0.0.1:0\nstore = nosuch\n");
  const auto port_file = dir.path() / "port";
  std::string err;
  EXPECT_EQ(run_voucherd(dir,
                         {"--config", file.string(), "--listen", "127.0.0.1:0", "--port-file",
                          port_file.string()},
                         &err),
            2);
  EXPECT_NE(err.find("line 2"), std::string::npos) << err;
  EXPECT_NE(err.find("--store"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(port_file));
}

}  // namespace
}  // namespace voucherd::testing
