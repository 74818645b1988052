// ctl.h — what voucherctl's subcommands share: how to reach voucherd (target,
// token, TLS, deadline), how a refusal is reported, and how answers are
// printed (a table for people, `-o json` for scripts).
//
// Exit status of every subcommand: kDone (0) done; kFailed (1) voucherd
// refused or failed the call, could not be reached, or (campaigns validate)
// the file does not add up; kUsage (2) bad usage: flags, unreadable files.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <expected>
#include <memory>
#include <string>
#include <string_view>

#include "client/credentials.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::ctl {

inline constexpr int kDone = 0;
inline constexpr int kFailed = 1;
inline constexpr int kUsage = 2;

enum class Output { kTable, kJson };

// The flags every calling subcommand takes.
struct ConnectionFlags {
  std::string target = "127.0.0.1:50051";
  std::string token_file;  // else VOUCHERCTL_TOKEN
  ClientTls tls;
  int deadline_s = 30;
};

// A channel to voucherd with the token and deadline every call carries.
class Session {
 public:
  // An error names the flag or file that is wrong (exit kUsage).
  static std::expected<Session, std::string> open(const ConnectionFlags& flags);

  void prepare(grpc::ClientContext& ctx) const;
  void prepare(grpc::ClientContext& ctx, std::chrono::seconds deadline) const;
  voucher::v1::AdminService::Stub& admin() const { return *admin_; }
  voucher::v1::VoucherService::Stub& vouchers() const { return *vouchers_; }

 private:
  std::string token_;
  std::chrono::seconds deadline_{30};
  std::shared_ptr<voucher::v1::AdminService::Stub> admin_;
  std::shared_ptr<voucher::v1::VoucherService::Stub> vouchers_;
};

// Prints "voucherctl: <what>: <CODE> (<reason>): <message>" on stderr and
// returns kFailed. The reason is the google.rpc.ErrorInfo reason, if any.
int refused(std::string_view what, const grpc::Status& status);

// The ErrorInfo reason of a refusal ("SOLD_OUT"), or "".
[[nodiscard]] std::string reason_of(const grpc::Status& status);

// One unary call on a fresh context with the session's token and deadline:
// `call(ctx, response)` returns the status. A refusal is reported
// (refused(what, ...)) and becomes the exit status.
template <class Response, class Call>
std::expected<Response, int> unary(const Session& s, std::string_view what, Call&& call) {
  grpc::ClientContext ctx;
  s.prepare(ctx);
  Response response;
  if (const grpc::Status status = call(ctx, response); !status.ok()) {
    return std::unexpected(refused(what, status));
  }
  return response;
}

// Protobuf JSON, field names as in the proto, zeros included, one object
// over several lines.
void print_json(const google::protobuf::Message& message);

// "2024-06-18T02:00:00Z", or "-" when unset.
[[nodiscard]] std::string time_text(const google::protobuf::Timestamp& t);

// An enum value's name without its enum's prefix: "FIRST_COME" for
// CAMPAIGN_MODE_FIRST_COME.
[[nodiscard]] std::string short_name(std::string_view value_name, std::string_view prefix);

// Subcommands; each returns an exit status.
int campaigns_list(const Session& s, Output o);
int campaigns_get(const Session& s, const std::string& id, Output o);
int campaigns_create(const Session& s, const std::string& file, bool replace_before_open);
int campaigns_validate(const std::string& file);
int stats(const Session& s, const std::string& campaign, Output o);
int voucher_get(const Session& s, const std::string& code, Output o);
int voucher_cancel(const Session& s, const std::string& code, Output o);
int reconcile(const Session& s, const std::string& campaign, Output o);
int replicas(const Session& s, const std::string& campaign, Output o);
int export_redemptions(const Session& s, const std::string& campaign, const std::string& site,
                       const std::string& settlement_path, const std::string& detail_path);
int export_draws(const Session& s, const std::string& campaign, const std::string& out_dir);
int export_applications(const Session& s, const std::string& campaign, const std::string& out_dir);

}  // namespace voucherd::ctl
