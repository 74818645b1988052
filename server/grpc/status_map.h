// status_map.h — the one place gRPC statuses are made: engine outcomes, and
// the front's own refusals (auth, deadlines, a client gone). No other file
// constructs a grpc::Status.
//
// No error carries more than a bounded, escaped prefix of what the caller
// sent (limits::kEchoedInputBytesMax): ids are quoted with quoted_input(),
// the ErrorInfo metadata values are cut the same way (marked with "…"), and
// every message is cut at limits::kErrorMessageBytesMax.
//
// Final business refusals (sold out, not open, closed, wrong mode, ...) carry a
// google.rpc.ErrorInfo detail: domain "voucherd", reason = outcome_name(), and
// metadata naming the campaign / SKU, so app backends can tell "all gone"
// (final) from overload (RESOURCE_EXHAUSTED with a google.rpc.RetryInfo).
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <string>
#include <string_view>

#include "engine/campaign_validation.h"
#include "engine/outcome.h"

namespace voucherd {

struct StatusContext {
  std::string_view campaign_id;
  std::string_view sku_id;
  std::string_view site_id;
  std::string_view field;  // for kInvalidArgument
  std::string detail;      // extra text appended to the message
  // For answers that carry a google.rpc.RetryInfo: the delay it gives when
  // it is known (a cool-down's rest); zero gives the shed-load hint.
  std::chrono::milliseconds retry_delay{0};
};

[[nodiscard]] grpc::Status to_grpc_status(Outcome outcome, const StatusContext& ctx);

// `s` (caller input) for an error message: in quotes, control characters,
// quotes and backslashes escaped, and past limits::kEchoedInputBytesMax bytes
// cut at a character boundary and marked with its length: "abc…" (70000 bytes).
[[nodiscard]] std::string quoted_input(std::string_view s);

// The google.rpc.ErrorInfo reason to_grpc_status() attaches for `outcome`
// (a choice of SKU sold out is SOLD_OUT on the wire, like the whole campaign).
[[nodiscard]] const char* wire_reason(Outcome outcome);

// INVALID_ARGUMENT naming a field, for checks made in the adapter itself.
[[nodiscard]] grpc::Status invalid_argument(std::string_view field, std::string_view message);

// INVALID_ARGUMENT for an id the caller sent that breaks the id rules
// (engine/campaign_validation.h: id_problem), naming the field and what is
// wrong (its length, or where the control character is); REQUIRES: a problem.
[[nodiscard]] grpc::Status invalid_id(std::string_view field, std::string_view id,
                                      IdProblem problem);

// The front's own refusals, which no engine outcome names.
// UNAUTHENTICATED: no bearer token, or one voucherd does not know.
[[nodiscard]] grpc::Status unauthenticated();
// PERMISSION_DENIED: a known token that this call does not admit; `message`
// says what the call needs.
[[nodiscard]] grpc::Status permission_denied(std::string message);
// DEADLINE_EXCEEDED: the call's deadline passed before it was started.
[[nodiscard]] grpc::Status deadline_passed();
// CANCELLED: a streaming call's client went away mid-stream.
[[nodiscard]] grpc::Status client_gone();
// NOT_FOUND: grpc.health.v1.Health/Check of a service not served here.
[[nodiscard]] grpc::Status health_service_unknown(std::string_view service);
// UNAVAILABLE: a health Watch ended because voucherd is shutting down.
[[nodiscard]] grpc::Status server_stopping();

}  // namespace voucherd
