#include "tests/support/grpc_generic.h"

#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <vector>

namespace voucherd::testing {

grpc::ByteBuffer to_buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string from_buffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

std::string string_field(int number, const std::string& value) {
  std::string out(1, static_cast<char>((number << 3) | 2));
  out.push_back(static_cast<char>(value.size()));  // REQUIRES: value.size() < 128
  return out + value;
}

Answer unary(const std::string& target, const std::string& method, const std::string& request) {
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareUnaryCall(&ctx, method, to_buffer(request), &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  Answer answer;
  call->Finish(&response, &answer.status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  EXPECT_TRUE(cq.Next(&tag, &ok));
  if (answer.status.ok()) answer.bytes = from_buffer(response);
  return answer;
}

// HealthCheckResponse.status: field 1, varint; SERVING is 1 (an empty
// message would mean UNKNOWN, 0).
std::optional<int> health_status(const std::string& target, const std::string& service) {
  const Answer a = unary(target, "/grpc.health.v1.Health/Check",
                         service.empty() ? std::string() : string_field(1, service));
  if (!a.status.ok()) return std::nullopt;
  if (a.bytes.size() == 2 && a.bytes[0] == 0x08) return a.bytes[1];
  return a.bytes.empty() ? 0 : -1;
}

}  // namespace voucherd::testing
