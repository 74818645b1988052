// voucherctl_e2e_test — the operators' CLI against real voucherd processes
// (and a real redis-server for the replicas): `campaigns validate` names
// every wrong field of a file offline, with exit 1, and 2 for a file it
// cannot read; `campaigns create` sends nothing unless the whole file adds
// up, and a conflicting definition is ALREADY_EXISTS; `campaigns list|get`,
// `stats`, `voucher get|cancel` and `reconcile` show what voucherd holds, in
// tables and as protobuf JSON; `replicas` lists every replica sharing Redis
// with its leased units, one that stopped beating gone once its units are
// taken back, and listed again when it wakes (a member's first press there
// gets a voucher); the connection flags and exit codes are the same
// everywhere.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/grpc/auth.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/redis_server.h"
#include "tests/support/replicas.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;
using nlohmann::json;

struct Ran {
  int status = -1;
  std::string out;
  std::string err;
};

Ran voucherctl(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), VOUCHERCTL_BINARY);
  Ran r;
  r.status = run_program(dir, args, &r.out, &r.err);
  return r;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string tokens_file(const TempDir& dir) {
  std::string text;
  for (auto [token, role] : {std::pair{"app-secret", "app"}, std::pair{"ops-secret", "admin"}}) {
    text += "sha256:" + token_hash(token) + " " + role + "\n";
  }
  return dir.write("tokens", text).string();
}

// A campaign of two SKUs at one site.
CampaignJson two_skus(const std::string& id, std::int64_t stock_each) {
  return CampaignJson(id, "Spring days")
      .spring_site()
      .sku("day", "Day pass", 9'800, stock_each)
      .sku("night", "Night pass", 19'800, stock_each);
}

TEST(Voucherctl, ValidateNamesEveryWrongFieldOfAFileOffline) {
  TempDir dir;
  const std::string good = two_skus("good", 10).write(dir, "good.json");
  Ran ok = voucherctl(dir, {"campaigns", "validate", good});
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_TRUE(has(ok.out, "1 campaign, 20 packs: valid")) << ok.out;

  // One good campaign and one with four wrong fields.
  json set = json::parse(two_skus("good", 10).text());
  json bad = json::parse(two_skus("bad", 10).text())["campaigns"][0];
  bad["endsAt"] = "2019-01-01T00:00:00Z";  // before startsAt (2020)
  bad["skus"][0]["stock"] = "-5";
  bad["skus"][1]["siteId"] = "no-such-site";
  bad["skus"].push_back(bad["skus"][0]);  // a third SKU with the first one's id
  bad["skus"][2]["stock"] = "1";
  set["campaigns"].push_back(bad);
  const std::string file = dir.write("two.json", set.dump()).string();
  Ran r = voucherctl(dir, {"campaigns", "validate", file});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  for (const char* field :
       {"campaign 1 (\"bad\"): campaign.ends_at: campaign.ends_at must be after",
        "campaign.skus[0].stock: SKU \"day\" stock must be between 0 and",
        "campaign.skus[1].site_id: SKU \"night\" names unknown site \"no-such-site\"",
        "campaign.skus[2].id: duplicate SKU id \"day\"", "4 problems"}) {
    EXPECT_TRUE(has(r.err, field)) << field << "\n" << r.err;
  }
  EXPECT_FALSE(has(r.err, "campaign 0")) << r.err;

  // A name the contract does not have (the value before the enums took
  // their prefixes) is named too; a file that cannot be read is bad usage.
  json old = json::parse(two_skus("old", 1).text());
  old["campaigns"][0]["mode"] = "FIRST_COME";
  Ran o = voucherctl(dir, {"campaigns", "validate", dir.write("old.json", old.dump()).string()});
  EXPECT_EQ(o.status, 1);
  EXPECT_TRUE(has(o.err, "FIRST_COME")) << o.err;
  Ran missing = voucherctl(dir, {"campaigns", "validate", (dir.path() / "nope.json").string()});
  EXPECT_EQ(missing.status, 2);
  EXPECT_TRUE(has(missing.err, "cannot read")) << missing.err;
}

TEST(Voucherctl, AdminsCampaignsStatsAndVouchersOfARealVoucherd) {
  TempDir dir;
  const std::string tokens = tokens_file(dir);
  VoucherdProcess server(dir, {"--auth-file", tokens, "--secret-file",
                               dir.write("secret", test_secret_hex()).string()});
  ASSERT_NE(server.port(), 0);
  const std::string ops = dir.write("ops-token", "ops-secret\n").string();
  const std::vector<std::string> conn = {"--target", server.target(), "--token-file", ops};
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.end(), conn.begin(), conn.end());
    return voucherctl(dir, args);
  };

  // Nothing is sent unless the whole file adds up.
  json set = json::parse(two_skus("spring", 3).text());
  json broken = set["campaigns"][0];
  broken["id"] = "broken";
  broken["skus"][0]["stock"] = "-1";
  set["campaigns"].push_back(broken);
  Ran refused = ctl({"campaigns", "create", dir.write("mixed.json", set.dump()).string()});
  EXPECT_EQ(refused.status, 1);
  EXPECT_TRUE(has(refused.err, "nothing was created")) << refused.err;
  Ran none = ctl({"campaigns", "list", "-o", "json"});
  ASSERT_EQ(none.status, 0) << none.err;
  EXPECT_EQ(json::parse(none.out).value("campaigns", json::array()).size(), 0u) << none.out;

  // Created, listed, shown.
  const std::string spring = two_skus("spring", 3).write(dir, "spring.json");
  Ran created = ctl({"campaigns", "create", spring});
  ASSERT_EQ(created.status, 0) << created.err;
  EXPECT_TRUE(has(created.out, "campaign \"spring\" is served: 1 sites, 2 SKUs, 6 packs"))
      << created.out;
  Ran listed = ctl({"campaigns", "list"});
  ASSERT_EQ(listed.status, 0) << listed.err;
  EXPECT_TRUE(has(listed.out, "spring")) << listed.out;
  EXPECT_TRUE(has(listed.out, "FIRST_COME")) << listed.out;
  Ran got = ctl({"campaigns", "get", "spring", "-o", "json"});
  ASSERT_EQ(got.status, 0) << got.err;
  const json campaign = json::parse(got.out);
  EXPECT_EQ(campaign["mode"], "CAMPAIGN_MODE_FIRST_COME");
  EXPECT_EQ(campaign["skus"].size(), 2u);
  // Another definition of the same id: ALREADY_EXISTS, and the reason.
  Ran clash = ctl({"campaigns", "create", two_skus("spring", 4).write(dir, "spring4.json")});
  EXPECT_EQ(clash.status, 1);
  EXPECT_TRUE(has(clash.err, "ALREADY_EXISTS (CAMPAIGN_EXISTS)")) << clash.err;

  // Members claim 4 of the 6 packs (the app's token), one press each.
  Client app = Client(server.target()).bearer("app-secret");
  std::vector<std::string> codes;
  for (int m = 0; m < 4; ++m) {
    auto claimed = app.claim("spring", "member-" + std::to_string(m));
    ASSERT_TRUE(claimed.ok()) << claimed.status.error_message();
    codes.push_back(claimed.response.voucher().code());
  }
  Ran stats = ctl({"stats", "spring", "-o", "json"});
  ASSERT_EQ(stats.status, 0) << stats.err;
  const json s = json::parse(stats.out);
  EXPECT_EQ(s["issued"], "4");
  EXPECT_EQ(s["remaining"], "2");
  EXPECT_EQ(s["stock_total"], "6");
  Ran table = ctl({"stats", "spring"});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_TRUE(has(table.out, "4 members hold a voucher")) << table.out;

  // A voucher looked up and cancelled by the operator.
  Ran v = ctl({"voucher", "get", codes[0]});
  ASSERT_EQ(v.status, 0) << v.err;
  EXPECT_TRUE(has(v.out, "state            ISSUED")) << v.out;
  EXPECT_TRUE(has(v.out, "member           member-0")) << v.out;
  Ran cancelled = ctl({"voucher", "cancel", codes[0], "-o", "json"});
  ASSERT_EQ(cancelled.status, 0) << cancelled.err;
  EXPECT_EQ(json::parse(cancelled.out)["state"], "VOUCHER_STATE_CANCELLED");
  Ran after = ctl({"stats", "spring", "-o", "json"});
  ASSERT_EQ(after.status, 0) << after.err;
  EXPECT_EQ(json::parse(after.out)["remaining"], "3");
  Ran unknown = ctl({"voucher", "get", "0000-0000-0000-0000-0000-0000-0000-0"});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_TRUE(has(unknown.err, "GetVoucher: ")) << unknown.err;

  // The memory store: no leases, the answering replica alone.
  Ran rec = ctl({"reconcile", "spring"});
  ASSERT_EQ(rec.status, 0) << rec.err;
  EXPECT_TRUE(has(rec.out, "campaign spring: 0 units")) << rec.out;
  Ran reps = ctl({"replicas", "-o", "json"});
  ASSERT_EQ(reps.status, 0) << reps.err;
  const json r = json::parse(reps.out);
  ASSERT_EQ(r["replicas"].size(), 1u) << reps.out;
  EXPECT_EQ(r["replicas"][0]["answering"], true);

  // The same connection flags and exit codes everywhere: no token is
  // refused by voucherd (1); a token file that is not there, or a flag that
  // does not exist, is bad usage (2).
  Ran anonymous = voucherctl(dir, {"stats", "spring", "--target", server.target()});
  EXPECT_EQ(anonymous.status, 1);
  EXPECT_TRUE(has(anonymous.err, "UNAUTHENTICATED")) << anonymous.err;
  Ran app_token = voucherctl(dir, {"campaigns", "list", "--target", server.target(), "--token-file",
                                   dir.write("app", "app-secret\n").string()});
  EXPECT_EQ(app_token.status, 1);
  EXPECT_TRUE(has(app_token.err, "PERMISSION_DENIED")) << app_token.err;
  Ran no_file = voucherctl(dir, {"stats", "spring", "--target", server.target(), "--token-file",
                                 (dir.path() / "none").string()});
  EXPECT_EQ(no_file.status, 2);
  Ran bad_flag = ctl({"stats", "spring", "--colour"});
  EXPECT_EQ(bad_flag.status, 2);
  Ran bad_output = ctl({"stats", "spring", "-o", "yaml"});
  EXPECT_EQ(bad_output.status, 2);
}

// The replicas as Redis sees them, through replica `via`.
json replicas_of(const TempDir& dir, const VoucherdProcess& via) {
  Ran r =
      voucherctl(dir, {"replicas", "--campaign", "shared", "-o", "json", "--target", via.target()});
  EXPECT_EQ(r.status, 0) << r.err;
  return r.status == 0 ? json::parse(r.out) : json::object();
}

std::int64_t leased(const json& replica) {
  std::int64_t units = 0;
  for (const json& c : replica.value("campaigns", json::array())) {
    units += std::stoll(c.value("leased_units", std::string("0")));
  }
  return units;
}

TEST(Voucherctl, ReplicasShowsEveryReplicasLeasesUntilOneStopsBeating) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret", test_secret_hex()).string();
  const std::string campaigns = first_come_campaign("shared", 5'000, 4).write(dir, "c.json");
  auto args = [&](const std::string& id) {
    std::vector<std::string> a = replica_args(redis, secret, campaigns);
    for (const char* f : {"--replica-id", id.c_str()}) a.emplace_back(f);
    for (const char* f : {"--lease-timeout-ms", "1200"}) a.emplace_back(f);
    return a;
  };
  VoucherdProcess a(dir, args("replica-a"));
  VoucherdProcess b(dir, args("replica-b"));
  ASSERT_NE(a.port(), 0);
  ASSERT_NE(b.port(), 0);

  // Both lease a first block once they serve the campaign.
  json seen;
  const bool both_lease = wait_until(
      [&] {
        seen = replicas_of(dir, a);
        const json& list = seen.value("replicas", json::array());
        return list.size() == 2 && leased(list[0]) > 0 && leased(list[1]) > 0;
      },
      std::chrono::seconds(20));
  ASSERT_TRUE(both_lease) << seen.dump(2);
  EXPECT_EQ(seen["replicas"][0]["replica_id"], "replica-a");
  EXPECT_EQ(seen["replicas"][0]["answering"], true);
  EXPECT_EQ(seen["replicas"][1]["replica_id"], "replica-b");
  EXPECT_EQ(seen["replicas"][1]["answering"], false);
  EXPECT_EQ(seen["replicas"][1]["campaigns"][0]["lapsed"], false);
  // The table says the same, with the answering replica marked.
  Ran table = voucherctl(dir, {"replicas", "--target", b.target()});
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_TRUE(has(table.out, "* replica-b")) << table.out;
  EXPECT_TRUE(has(table.out, "  replica-a")) << table.out;

  // B stops beating (paused): once the timeout passes, A's keeper takes its
  // leases back on its own and B's record goes with them; B is no longer
  // listed (the lapsed state itself is shown until then: redis_tests'
  // RedisClaimLog.ReadReplicasShowsBeatsLeasesAndWhoLapsed).
  b.send_signal(SIGSTOP);
  const bool taken_back = wait_until(
      [&] {
        seen = replicas_of(dir, a);
        return seen.value("replicas", json::array()).size() == 1;
      },
      std::chrono::seconds(20));
  EXPECT_TRUE(taken_back) << seen.dump(2);
  EXPECT_EQ(seen["replicas"][0]["replica_id"], "replica-a");
  // Nothing is left for a reconciliation by hand.
  Ran rec = voucherctl(dir, {"reconcile", "shared", "-o", "json", "--target", a.target()});
  ASSERT_EQ(rec.status, 0) << rec.err;
  EXPECT_EQ(json::parse(rec.out)["units_returned"], "0") << rec.out;
  // B wakes and beats again: listed again, live, holding nothing until a
  // member's press makes it lease, and the first press gets a voucher.
  b.send_signal(SIGCONT);
  const bool back = wait_until(
      [&] {
        seen = replicas_of(dir, a);
        const json& list = seen.value("replicas", json::array());
        return list.size() == 2 && list[1]["campaigns"][0]["lapsed"] == false;
      },
      std::chrono::seconds(20));
  EXPECT_TRUE(back) << seen.dump(2);
  const Press pressed = press_once(b.target(), "shared", "member-after-the-pause");
  EXPECT_TRUE(pressed.ok()) << pressed.status.error_message();
  EXPECT_GT(leased(replicas_of(dir, a)["replicas"][1]), 0);
}

}  // namespace
}  // namespace voucherd::testing
