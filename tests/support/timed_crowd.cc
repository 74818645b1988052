#include "tests/support/timed_crowd.h"

#include <algorithm>
#include <memory>

#include "tests/support/client.h"
#include "tests/support/http_get.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;
using Clock = std::chrono::steady_clock;

// How long the crowd's thread waits for a completion before it looks at its
// pacing and its stop flag again.
constexpr auto kCompletionWait = std::chrono::milliseconds(5);
// /readyz is asked this often.
constexpr auto kReadyzEvery = std::chrono::milliseconds(20);

struct Call {
  grpc::ClientContext ctx;
  v1::ClaimRequest request;
  v1::ClaimResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ClaimResponse>> reader;
  TimedAnswer answer;
};

}  // namespace

long long ms_between(SteadyTime from, SteadyTime to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

TimedCrowd::TimedCrowd(TimedCrowdOptions options) : options_(std::move(options)) {
  thread_ = std::thread([this] { run(); });
}

TimedCrowd::~TimedCrowd() { stop(); }

void TimedCrowd::stop() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

void TimedCrowd::finish() {
  if (thread_.joinable()) thread_.join();
}

void TimedCrowd::run() {
  auto channel = grpc::CreateChannel(options_.target, grpc::InsecureChannelCredentials());
  auto stub = v1::VoucherService::NewStub(channel);
  grpc::CompletionQueue cq;
  const std::int64_t total = options_.members.empty()
                                 ? options_.members_max
                                 : static_cast<std::int64_t>(options_.members.size());
  const auto started = Clock::now();
  const auto end_by = started + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(options_.max_seconds));
  std::int64_t next = 0;
  int outstanding = 0;
  auto paced = [&](Clock::time_point now) {
    if (options_.presses_per_second <= 0) return true;
    const double elapsed_s = std::chrono::duration<double>(now - started).count();
    return static_cast<double>(next) < options_.presses_per_second * elapsed_s + 1;
  };
  auto start_one = [&](Clock::time_point now) {
    auto* call = new Call;
    const std::string member = options_.members.empty()
                                   ? options_.member_prefix + std::to_string(next)
                                   : options_.members[static_cast<std::size_t>(next)];
    const auto i = static_cast<std::size_t>(next);
    const std::string& campaign =
        !options_.campaigns_of_members.empty() ? options_.campaigns_of_members[i]
        : !options_.campaign_ids.empty() ? options_.campaign_ids[i % options_.campaign_ids.size()]
                                         : options_.campaign_id;
    call->request.set_campaign_id(campaign);
    call->answer.campaign_id = campaign;
    call->request.set_member_id(member);
    call->ctx.set_deadline(std::chrono::system_clock::now() + options_.deadline);
    call->answer.member_id = member;
    call->answer.sent_at = now;
    call->reader = stub->PrepareAsyncClaim(&call->ctx, call->request, &cq);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
    ++outstanding;
    ++next;
  };
  // Bounded: no press starts after end_by, and each one in flight ends by
  // its deadline.
  for (;;) {
    auto now = Clock::now();
    const bool may_start = !stop_.load(std::memory_order_relaxed) && next < total && now < end_by;
    while (may_start && next < total && outstanding < options_.in_flight && paced(now)) {
      start_one(now);
    }
    if (outstanding == 0 && !may_start) break;
    void* tag = nullptr;
    bool ok = false;
    const auto got = cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + kCompletionWait);
    if (got != grpc::CompletionQueue::GOT_EVENT) continue;
    std::unique_ptr<Call> call(static_cast<Call*>(tag));
    --outstanding;
    TimedAnswer& a = call->answer;
    a.answered_at = Clock::now();
    a.code = call->status.error_code();
    if (call->status.ok()) {
      a.voucher_code = call->response.voucher().code();
      a.already_claimed = call->response.already_claimed();
    } else {
      a.reason = reason_of(call->status);
    }
    answers_.push_back(std::move(a));
    if (call->status.ok()) answered_ok_.fetch_add(1, std::memory_order_release);
    answered_.fetch_add(1, std::memory_order_release);
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
}

ReadyzWatch::ReadyzWatch(int ops_port) : port_(ops_port) {
  thread_ = std::thread([this] {
    while (!stop_.load(std::memory_order_relaxed)) {
      Sample s;
      s.asked_at = Clock::now();
      s.status = http_get(port_, "/readyz").status;
      s.answered_at = Clock::now();
      {
        std::lock_guard lock(mu_);
        samples_.push_back(s);
      }
      std::this_thread::sleep_for(kReadyzEvery);
    }
  });
}

ReadyzWatch::~ReadyzWatch() {
  stop_.store(true, std::memory_order_relaxed);
  thread_.join();
}

std::vector<ReadyzWatch::Sample> ReadyzWatch::samples() const {
  std::lock_guard lock(mu_);
  return samples_;
}

std::optional<ReadyzWatch::Sample> ReadyzWatch::first(SteadyTime from, int status) const {
  std::lock_guard lock(mu_);
  for (const Sample& s : samples_) {
    if (s.answered_at >= from && s.status == status) return s;
  }
  return std::nullopt;
}

std::optional<ReadyzWatch::Sample> ReadyzWatch::last_before(SteadyTime until) const {
  std::lock_guard lock(mu_);
  std::optional<Sample> out;
  for (const Sample& s : samples_) {
    if (s.answered_at < until) out = s;
  }
  return out;
}

int ReadyzWatch::count(SteadyTime from, SteadyTime until, int status) const {
  std::lock_guard lock(mu_);
  return static_cast<int>(std::count_if(samples_.begin(), samples_.end(), [&](const Sample& s) {
    return s.answered_at >= from && s.answered_at < until && s.status == status;
  }));
}

std::chrono::milliseconds ReadyzWatch::slowest(SteadyTime from, SteadyTime until) const {
  std::lock_guard lock(mu_);
  std::chrono::milliseconds out{0};
  for (const Sample& s : samples_) {
    if (s.asked_at >= from && s.asked_at < until) {
      out = std::max(
          out, std::chrono::duration_cast<std::chrono::milliseconds>(s.answered_at - s.asked_at));
    }
  }
  return out;
}

}  // namespace voucherd::testing
