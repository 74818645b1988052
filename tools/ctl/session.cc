#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "proto/grpc_code_names.h"
#include "tools/ctl/ctl.h"

namespace voucherd::ctl {

std::expected<Session, std::string> Session::open(const ConnectionFlags& flags) {
  if (flags.tls.cert_file.empty() != flags.tls.key_file.empty() ||
      (!flags.tls.cert_file.empty() && flags.tls.ca_file.empty())) {
    return std::unexpected("--tls-cert and --tls-key go together, with --tls-ca");
  }
  if (flags.deadline_s < 1) return std::unexpected("--deadline-s must be at least 1");
  auto credentials = client_credentials(flags.tls);
  if (!credentials) return std::unexpected(credentials.error());
  Session s;
  if (!flags.token_file.empty()) {
    std::ifstream in(flags.token_file);
    if (!in) return std::unexpected("cannot read --token-file " + flags.token_file);
    std::getline(in, s.token_);
    if (s.token_.empty()) {
      return std::unexpected("--token-file " + flags.token_file +
                             " has no token on its first line");
    }
  } else if (const char* env = std::getenv("VOUCHERCTL_TOKEN")) {
    s.token_ = env;
  }
  s.deadline_ = std::chrono::seconds(flags.deadline_s);
  auto channel = grpc::CreateChannel(flags.target, *credentials);
  s.admin_ = voucher::v1::AdminService::NewStub(channel);
  s.vouchers_ = voucher::v1::VoucherService::NewStub(channel);
  return s;
}

void Session::prepare(grpc::ClientContext& ctx) const { prepare(ctx, deadline_); }

void Session::prepare(grpc::ClientContext& ctx, std::chrono::seconds deadline) const {
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  if (!token_.empty()) ctx.AddMetadata("authorization", "Bearer " + token_);
}

std::string reason_of(const grpc::Status& status) {
  google::rpc::Status detail;
  if (status.error_details().empty() || !detail.ParseFromString(status.error_details())) return {};
  for (const auto& any : detail.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return {};
}

int refused(std::string_view what, const grpc::Status& status) {
  std::cerr << "voucherctl: " << what << ": "
            << grpc_code_name(static_cast<std::size_t>(status.error_code()));
  if (const std::string reason = reason_of(status); !reason.empty()) {
    std::cerr << " (" << reason << ")";
  }
  std::cerr << ": " << status.error_message() << "\n";
  return kFailed;
}

void print_json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.add_whitespace = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(message, &text, options);
  std::cout << text;
  if (text.empty() || text.back() != '\n') std::cout << '\n';
}

std::string time_text(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return google::protobuf::util::TimeUtil::ToString(t);
}

std::string short_name(std::string_view value_name, std::string_view prefix) {
  if (value_name.starts_with(prefix)) value_name.remove_prefix(prefix.size());
  return std::string(value_name);
}

}  // namespace voucherd::ctl
