// grpc_conventions_e2e_test — proves that a real voucherd serves the
// standard grpc.health.v1.Health service (SERVING for the server and for
// each of voucherd's services, NOT_FOUND for an unknown one; a Watch is told
// SERVING, SERVICE_UNKNOWN for an unknown service, then NOT_SERVING when
// voucherd drains, and ends UNAVAILABLE as it stops) and server
// reflection (it lists voucherd's services), so grpcurl-style tools and
// load-balancer probes work. The calls are made with raw protobuf bytes
// through gRPC's generic API, so no generated code of those services is
// needed.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <optional>
#include <string>

#include "tests/support/grpc_generic.h"
#include "tests/support/health_watch.h"
#include "tests/support/voucherd_process.h"

namespace voucherd::testing {
namespace {

TEST(GrpcConventions, HealthServiceAnswersPerService) {
  TempDir dir;
  VoucherdProcess server(dir, {});
  ASSERT_GT(server.port(), 0);
  EXPECT_EQ(health_status(server.target(), ""), std::optional<int>(1));
  EXPECT_EQ(health_status(server.target(), "voucher.v1.VoucherService"), std::optional<int>(1));
  EXPECT_EQ(health_status(server.target(), "voucher.v1.AdminService"), std::optional<int>(1));
  const Answer unknown =
      unary(server.target(), "/grpc.health.v1.Health/Check", string_field(1, "no.such.Service"));
  EXPECT_EQ(unknown.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

TEST(GrpcConventions, AHealthWatchIsToldOfTheDrainThenEnds) {
  using std::chrono::milliseconds;
  TempDir dir;
  VoucherdProcess server(dir, {});
  ASSERT_GT(server.port(), 0);
  HealthWatch whole(server.target(), "");
  HealthWatch claims(server.target(), "voucher.v1.VoucherService");
  HealthWatch unknown(server.target(), "no.such.Service");
  EXPECT_EQ(whole.next(milliseconds(5000)), std::optional<int>(1));
  EXPECT_EQ(claims.next(milliseconds(5000)), std::optional<int>(1));
  EXPECT_EQ(unknown.next(milliseconds(5000)), std::optional<int>(3));
  // Nothing changes, nothing is sent.
  EXPECT_EQ(whole.next(milliseconds(300)), std::nullopt);
  EXPECT_FALSE(whole.ended(milliseconds(0)).has_value());

  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
  EXPECT_EQ(whole.next(milliseconds(5000)), std::optional<int>(2));
  EXPECT_EQ(claims.next(milliseconds(5000)), std::optional<int>(2));
  EXPECT_EQ(unknown.next(milliseconds(100)), std::nullopt);
  for (HealthWatch* w : {&whole, &claims, &unknown}) {
    const auto end = w->ended(milliseconds(5000));
    ASSERT_TRUE(end.has_value());
    EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE) << end->error_message();
  }
}

TEST(GrpcConventions, ReflectionListsVoucherdsServices) {
  TempDir dir;
  VoucherdProcess server(dir, {});
  ASSERT_GT(server.port(), 0);
  {  // the channel closes before voucherd is stopped
    auto channel = grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::CompletionQueue cq;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto call = stub.PrepareCall(
        &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    void* tag = nullptr;
    bool ok = false;
    // Each step completes before the next starts.
    auto step = [&](std::intptr_t expected) {
      EXPECT_TRUE(cq.Next(&tag, &ok));
      EXPECT_EQ(reinterpret_cast<std::intptr_t>(tag), expected);
      return ok;
    };
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(step(1));
    // ServerReflectionRequest.list_services (field 7) = "".
    call->Write(to_buffer(string_field(7, "")), reinterpret_cast<void*>(2));
    ASSERT_TRUE(step(2));
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(3));
    ASSERT_TRUE(step(3));
    call->WritesDone(reinterpret_cast<void*>(4));
    step(4);
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(5));
    step(5);
    EXPECT_TRUE(status.ok()) << status.error_message();
    const std::string bytes = from_buffer(response);
    for (const char* service :
         {"voucher.v1.VoucherService", "voucher.v1.AdminService", "grpc.health.v1.Health"}) {
      EXPECT_NE(bytes.find(service), std::string::npos) << service;
    }
  }
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

}  // namespace
}  // namespace voucherd::testing
