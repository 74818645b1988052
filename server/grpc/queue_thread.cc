#include "server/grpc/queue_thread.h"

#include "server/base/thread_name.h"

namespace voucherd {
namespace {

thread_local Inbox* t_inbox = nullptr;

}  // namespace

void Inbox::post(HandedBack* work) {
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      posted_.push_back(work);
      if (!armed_) {
        armed_ = true;
        alarm_.Set(cq_, gpr_inf_past(GPR_CLOCK_MONOTONIC), this);
      }
      return;
    }
  }
  work->resume();
}

void Inbox::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
}

void Inbox::proceed(bool /*ok*/) {
  // An alarm that went off or was cancelled at shutdown: either way, what
  // was posted runs (the mutex orders what the posting threads wrote before
  // post() before what runs here).
  {
    std::lock_guard lock(mu_);
    running_.swap(posted_);
    armed_ = false;
  }
  for (HandedBack* work : running_) work->resume();
  running_.clear();
}

Inbox* current_inbox() { return t_inbox; }

void run_queue(grpc::ServerCompletionQueue* cq, Inbox* inbox) {
  name_this_thread("vd-grpc-queue");
  t_inbox = inbox;
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->proceed(ok);
  t_inbox = nullptr;
}

}  // namespace voucherd
