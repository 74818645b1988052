// tls_e2e_test — voucherd serves gRPC over TLS with --tls-cert/--tls-key, and
// requires client certificates with --tls-client-ca (mutual TLS): a
// plaintext client and a client without a certificate get nowhere (voucherctl
// included, which reaches it with its TLS flags); the certificate's expiry is
// exported for the alert; bad TLS flags exit 2 before listening. Certificates are made by `openssl`
// in the test's temp dir.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/http_get.h"
#include "tests/support/voucherd_process.h"

namespace voucherd::testing {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A CA, a server certificate for 127.0.0.1 and a client certificate.
void make_certificates(const TempDir& dir) {
  const std::string d = dir.path().string();
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string script =
      "cd " + d + " && exec >openssl.log 2>&1 && " + "openssl req -x509" + ec +
      " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca && " + "openssl req" + ec +
      " -keyout server.key -out server.csr -subj /CN=127.0.0.1 && " +
      "printf 'subjectAltName=IP:127.0.0.1' > san.ext && " +
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
      "-out server.pem -days 2 -extfile san.ext && " +
      "openssl req" + ec + " -keyout client.key -out client.csr -subj /CN=desk && " +
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
      "-out client.pem -days 2";
  ASSERT_EQ(std::system(script.c_str()), 0) << slurp(dir.path() / "openssl.log");
}

std::string campaign_file(const TempDir& dir) {
  return CampaignJson("tls", "TLS")
      .spring_site()
      .sku("spa", "Spa", 19'800, 10)
      .write(dir, "tls-campaign.json");
}

grpc::Status claim(const std::string& target,
                   const std::shared_ptr<grpc::ChannelCredentials>& creds) {
  return Client(target, creds)
      .with_deadline(std::chrono::seconds(5))
      .claim("tls", "member-1")
      .status;
}

TEST(TlsEndToEnd, ServesOverTlsAndRequiresClientCertificatesWhenAsked) {
  TempDir dir;
  make_certificates(dir);
  const auto p = [&](const char* name) { return (dir.path() / name).string(); };
  grpc::SslCredentialsOptions trust;
  trust.pem_root_certs = slurp(p("ca.pem"));
  grpc::SslCredentialsOptions with_cert = trust;
  with_cert.pem_cert_chain = slurp(p("client.pem"));
  with_cert.pem_private_key = slurp(p("client.key"));
  {
    VoucherdProcess tls(dir, {"--campaigns", campaign_file(dir), "--tls-cert", p("server.pem"),
                              "--tls-key", p("server.key")});
    ASSERT_GT(tls.port(), 0);
    EXPECT_TRUE(claim(tls.target(), grpc::SslCredentials(trust)).ok());
    EXPECT_EQ(claim(tls.target(), grpc::InsecureChannelCredentials()).error_code(),
              grpc::StatusCode::UNAVAILABLE);
    // The certificate's notAfter (made for 2 days) is exported for the
    // expiry alert.
    const HttpAnswer metrics = http_get(tls.ops_port(), "/metrics");
    const std::string name = "voucherd_tls_certificate_not_after_seconds ";
    const auto at = metrics.body.find("\n" + name);
    ASSERT_NE(at, std::string::npos) << metrics.body.substr(0, 2000);
    const double not_after = std::stod(metrics.body.substr(at + 1 + name.size()));
    const double in_two_days =
        static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()) +
        2 * 86'400;
    EXPECT_NEAR(not_after, in_two_days, 600);
    // voucherctl reaches it with --tls-ca, and not without.
    std::string out, err;
    EXPECT_EQ(run_program(dir,
                          {VOUCHERCTL_BINARY, "campaigns", "list", "--target", tls.target(),
                           "--tls-ca", p("ca.pem")},
                          &out, &err),
              0)
        << err;
    EXPECT_NE(out.find("tls"), std::string::npos) << out;
    EXPECT_EQ(run_program(dir,
                          {VOUCHERCTL_BINARY, "campaigns", "list", "--target", tls.target(),
                           "--deadline-s", "2"},
                          &out, &err),
              1);
    EXPECT_NE(err.find("UNAVAILABLE"), std::string::npos) << err;
    EXPECT_EQ(tls.stop(SIGTERM), std::optional<int>(0));
    EXPECT_NE(tls.stderr_text().find(", TLS)"), std::string::npos) << tls.stderr_text();
  }
  {
    VoucherdProcess mtls(dir, {"--campaigns", campaign_file(dir), "--tls-cert", p("server.pem"),
                               "--tls-key", p("server.key"), "--tls-client-ca", p("ca.pem")});
    ASSERT_GT(mtls.port(), 0);
    EXPECT_TRUE(claim(mtls.target(), grpc::SslCredentials(with_cert)).ok());
    EXPECT_EQ(claim(mtls.target(), grpc::SslCredentials(trust)).error_code(),
              grpc::StatusCode::UNAVAILABLE);
    // voucherctl with its client certificate; without one it gets nowhere,
    // and a certificate without its key is bad usage.
    std::string out, err;
    const std::vector<std::string> stats = {VOUCHERCTL_BINARY, "stats",        "tls",
                                            "--target",        mtls.target(),  "--tls-ca",
                                            p("ca.pem"),       "--deadline-s", "2"};
    auto with = [&](std::vector<std::string> more) {
      std::vector<std::string> argv = stats;
      argv.insert(argv.end(), more.begin(), more.end());
      return run_program(dir, argv, &out, &err);
    };
    EXPECT_EQ(with({"--tls-cert", p("client.pem"), "--tls-key", p("client.key")}), 0) << err;
    EXPECT_NE(out.find("ALL"), std::string::npos) << out;
    EXPECT_EQ(with({}), 1);
    EXPECT_EQ(with({"--tls-cert", p("client.pem")}), 2);
    EXPECT_NE(err.find("--tls-key"), std::string::npos) << err;
    EXPECT_EQ(mtls.stop(SIGTERM), std::optional<int>(0));
  }
}

TEST(TlsEndToEnd, BadTlsFlagsExitBeforeListening) {
  TempDir dir;
  make_certificates(dir);
  const auto p = [&](const char* name) { return (dir.path() / name).string(); };
  std::string err;
  EXPECT_EQ(run_voucherd(dir, {"--tls-cert", p("server.pem")}, &err), 2);
  EXPECT_NE(err.find("--tls-key"), std::string::npos) << err;
  EXPECT_EQ(run_voucherd(dir, {"--tls-client-ca", p("ca.pem")}, &err), 2);
  EXPECT_NE(err.find("--tls-client-ca"), std::string::npos) << err;
  EXPECT_EQ(run_voucherd(dir, {"--tls-cert", p("san.ext"), "--tls-key", p("server.key")}, &err), 2);
  EXPECT_NE(err.find("PEM"), std::string::npos) << err;
}

}  // namespace
}  // namespace voucherd::testing
