// grpc_code_names.h — the canonical names of gRPC status codes ("OK",
// "NOT_FOUND", ...), for metrics labels, logs and voucher-load's reports.
// Header-only, so the load generator uses it without linking the server.
#pragma once

#include <array>
#include <cstddef>

namespace voucherd {

// gRPC status codes 0 (OK) .. 16 (UNAUTHENTICATED).
inline constexpr std::size_t kGrpcCodes = 17;

[[nodiscard]] inline const char* grpc_code_name(std::size_t code) {
  static constexpr std::array<const char*, kGrpcCodes> kNames = {"OK",
                                                                 "CANCELLED",
                                                                 "UNKNOWN",
                                                                 "INVALID_ARGUMENT",
                                                                 "DEADLINE_EXCEEDED",
                                                                 "NOT_FOUND",
                                                                 "ALREADY_EXISTS",
                                                                 "PERMISSION_DENIED",
                                                                 "RESOURCE_EXHAUSTED",
                                                                 "FAILED_PRECONDITION",
                                                                 "ABORTED",
                                                                 "OUT_OF_RANGE",
                                                                 "UNIMPLEMENTED",
                                                                 "INTERNAL",
                                                                 "UNAVAILABLE",
                                                                 "DATA_LOSS",
                                                                 "UNAUTHENTICATED"};
  return code < kNames.size() ? kNames[code] : "UNKNOWN";
}

}  // namespace voucherd
