#include "server/grpc/health.h"

#include <grpcpp/alarm.h>

#include <algorithm>

#include "server/grpc/call.h"

namespace voucherd {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// Health calls kept posted per completion queue: probes come one at a time.
constexpr int kPostedHealthCalls = 4;

// A tag that calls Owner::*Event with the completion's ok.
template <class Owner, void (Owner::*Event)(bool)>
class EventTag final : public Tag {
 public:
  explicit EventTag(Owner* owner) : owner_(owner) {}
  void proceed(bool ok) override { (owner_->*Event)(ok); }

 private:
  Owner* owner_;
};

}  // namespace

// Check: the status now, or NOT_FOUND.
class HealthService::CheckCall final : public Tag {
 public:
  CheckCall(HealthService& health, grpc::ServerCompletionQueue* cq)
      : health_(health), cq_(cq), responder_(&ctx_) {
    health_.service_.RequestCheck(&ctx_, &request_, &responder_, cq_, cq_, this);
  }

  void proceed(bool ok) override {
    if (!ok || answered_) {  // shutting down before a call came, or answered
      delete this;
      return;
    }
    answered_ = true;
    new CheckCall(health_, cq_);
    if (!health_.knows(request_.service())) {
      responder_.FinishWithError(health_service_unknown(request_.service()), this);
      return;
    }
    HealthCheckResponse response;
    {
      std::lock_guard lock(health_.mu_);
      response.set_status(health_.status_locked(true));
    }
    responder_.Finish(response, grpc::Status::OK, this);
  }

 private:
  HealthService& health_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  HealthCheckRequest request_;
  grpc::ServerAsyncResponseWriter<HealthCheckResponse> responder_;
  bool answered_ = false;
};

// Watch: the status now, then each change, until the client leaves or the
// service stops. One operation of the stream at a time (a Write, the alarm
// that says the status changed, or the Finish), plus gRPC's "done" event.
//
// Between writes the watch is kIdle in the service's list; set_serving()
// and stop() move an idle watch to kAlarmed and set its alarm, so that the
// write happens on the call's own thread. The object is deleted once both
// its Finish and its done event have come back.
class HealthService::WatchCall final : public Tag {
 public:
  WatchCall(HealthService& health, grpc::ServerCompletionQueue* cq)
      : health_(health), cq_(cq), writer_(&ctx_), alarm_tag_(this), done_tag_(this) {
    ctx_.AsyncNotifyWhenDone(&done_tag_);
    health_.service_.RequestWatch(&ctx_, &request_, &writer_, cq_, cq_, this);
  }

  // Request, Write and Finish completions.
  void proceed(bool ok) override {
    switch (step_) {
      case Step::kPosted:
        // Not ok: the server shuts down before a call came (no done event
        // follows a call that never started).
        if (!ok) {
          delete this;
          return;
        }
        new WatchCall(health_, cq_);
        known_ = health_.knows(request_.service());
        {
          std::lock_guard lock(health_.mu_);
          if (health_.stopped_) return finish_locked();
          health_.watches_.push_back(this);
          state_ = State::kBusy;
          write_locked();
        }
        return;
      case Step::kWriting: {
        std::lock_guard lock(health_.mu_);
        if (!ok || done_) return finish_locked();  // the client left
        return settle_locked();
      }
      case Step::kFinishing:
        finished_ = true;
        if (done_) delete this;
        return;
    }
  }

  // The status changed, or the service stops: an idle watch is woken on its
  // own thread (a busy one looks again when its Write is done; an alarmed
  // one when its alarm goes off). REQUIRES: mu_ held.
  void wake_locked() {
    if (state_ != State::kIdle) return;
    state_ = State::kAlarmed;
    alarm_.Set(cq_, gpr_inf_past(GPR_CLOCK_MONOTONIC), &alarm_tag_);
  }

 private:
  enum class Step : std::uint8_t { kPosted, kWriting, kFinishing };
  // Who holds the call between its events (by mu_).
  enum class State : std::uint8_t {
    kBusy,     // its thread: a Write or Finish under way
    kIdle,     // waiting for a change, in the list
    kAlarmed,  // its alarm is set
  };

  void on_alarm(bool /*ok*/) {
    std::lock_guard lock(health_.mu_);
    state_ = State::kBusy;
    if (done_) return finish_locked();
    settle_locked();
  }

  // The call is over (finished, or the client left). Its last event.
  void on_done(bool /*ok*/) {
    State state;
    {
      std::lock_guard lock(health_.mu_);
      done_ = true;
      state = state_;
      if (state == State::kIdle) {
        state_ = State::kBusy;
        finish_locked();  // its completion deletes the call
        return;
      }
    }
    // kAlarmed: the alarm's event finishes the call. kBusy: the Write's
    // completion does, or the Finish has already come back.
    if (state == State::kBusy && finished_) delete this;
  }

  // After a write or an alarm: write what changed (a drain's NOT_SERVING
  // too, before the end), else end if the service stops, else wait for a
  // change. REQUIRES: mu_ held, kBusy.
  void settle_locked() {
    if (health_.status_locked(known_) != sent_) return write_locked();
    if (health_.stopped_) return finish_locked();
    state_ = State::kIdle;
  }

  // REQUIRES: mu_ held, kBusy.
  void write_locked() {
    sent_ = health_.status_locked(known_);
    response_.set_status(sent_);
    step_ = Step::kWriting;
    writer_.Write(response_, this);
  }

  // REQUIRES: mu_ held, kBusy.
  void finish_locked() {
    auto& watches = health_.watches_;
    watches.erase(std::remove(watches.begin(), watches.end(), this), watches.end());
    step_ = Step::kFinishing;
    writer_.Finish(health_.stopped_ ? server_stopping() : grpc::Status::OK, this);
  }

  HealthService& health_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  HealthCheckRequest request_;
  HealthCheckResponse response_;
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_;
  grpc::Alarm alarm_;
  EventTag<WatchCall, &WatchCall::on_alarm> alarm_tag_;
  EventTag<WatchCall, &WatchCall::on_done> done_tag_;
  Step step_ = Step::kPosted;
  State state_ = State::kBusy;  // by mu_
  bool known_ = false;
  bool done_ = false;  // by mu_ (read after the Finish on the call's thread)
  bool finished_ = false;
  HealthCheckResponse::ServingStatus sent_ = HealthCheckResponse::UNKNOWN;
};

HealthService::HealthService(std::vector<std::string> services) : services_(std::move(services)) {}

void HealthService::post_calls(grpc::ServerCompletionQueue* cq) {
  for (int i = 0; i < kPostedHealthCalls; ++i) {
    new CheckCall(*this, cq);
    new WatchCall(*this, cq);
  }
}

void HealthService::set_serving(bool serving) {
  std::lock_guard lock(mu_);
  if (serving_ == serving) return;
  serving_ = serving;
  for (WatchCall* w : watches_) w->wake_locked();
}

void HealthService::stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  for (WatchCall* w : watches_) w->wake_locked();
}

bool HealthService::knows(const std::string& service) const {
  return service.empty() ||
         std::find(services_.begin(), services_.end(), service) != services_.end();
}

HealthCheckResponse::ServingStatus HealthService::status_locked(bool known) const {
  if (!known) return HealthCheckResponse::SERVICE_UNKNOWN;
  return serving_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

}  // namespace voucherd
