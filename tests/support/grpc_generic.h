// grpc_generic.h — test support: unary calls with raw protobuf bytes through
// gRPC's generic API, for services whose generated code the tests do not
// have (the standard health service, reflection).
#pragma once

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>

namespace voucherd::testing {

grpc::ByteBuffer to_buffer(const std::string& bytes);
std::string from_buffer(const grpc::ByteBuffer& buffer);
// A length-delimited protobuf field (wire type 2) holding `value`.
// REQUIRES: value.size() < 128.
std::string string_field(int number, const std::string& value);

// One unary call through the generic stub: the response bytes, or the status.
struct Answer {
  grpc::Status status;
  std::string bytes;
};
Answer unary(const std::string& target, const std::string& method, const std::string& request);

// grpc.health.v1.Health/Check of `service` ("" for the server): the
// HealthCheckResponse status (1 SERVING, 2 NOT_SERVING), or nullopt when
// the call failed.
std::optional<int> health_status(const std::string& target, const std::string& service);

}  // namespace voucherd::testing
