// queue_thread.h — what runs on a completion-queue thread (internal to
// server/grpc/): the tag every event comes back as, the thread's loop, and
// the inbox through which work decided on another thread (the claim log's
// writer) is handed back to it.
//
// Why an inbox: a call answered from the writer thread makes gRPC do the
// answer's work there (and often on its executor thread too, as the writer
// is not one of its pollers), then wakes the call's queue thread for the
// Finish event: two or three threads and a wake-up per call. Handed back,
// the call is answered on its own queue thread, and a batch of decisions
// costs one wake-up (a grpc::Alarm set when the inbox was empty).
//
//   GrpcServer:   Inbox inbox(cq);  std::thread(run_queue, cq, &inbox);
//   a call:       if (!on_queue_thread(inbox_)) return inbox_->post(this);  // resume() later
//
// Thread-safety: post() and close() from any thread; the rest on the
// queue's one thread.
#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <mutex>
#include <vector>

namespace voucherd {

// A completion-queue tag: every event of a call comes back as proceed(ok).
class Tag {
 public:
  virtual ~Tag() = default;
  virtual void proceed(bool ok) = 0;
};

// Work handed back to a queue thread: resume() runs there.
class HandedBack {
 public:
  virtual void resume() = 0;

 protected:
  ~HandedBack() = default;
};

class Inbox final : public Tag {
 public:
  explicit Inbox(grpc::ServerCompletionQueue* cq) : cq_(cq) {}
  // Queues `work` for the inbox's thread, and wakes that thread unless a
  // wake-up is already on its way. After close(), runs it on this thread.
  void post(HandedBack* work);
  // Before the queue shuts down: later work runs where it is posted.
  void close();
  // The alarm: runs what was posted, in order (queue thread).
  void proceed(bool ok) override;

 private:
  grpc::ServerCompletionQueue* const cq_;
  std::mutex mu_;
  std::vector<HandedBack*> posted_;  // by mu_
  bool armed_ = false;               // by mu_: the alarm is set
  bool closed_ = false;              // by mu_
  grpc::Alarm alarm_;
  std::vector<HandedBack*> running_;  // queue thread: the batch being run
};

// The inbox of the queue thread this runs on; nullptr on any other thread.
[[nodiscard]] Inbox* current_inbox();

// A queue thread: every event of `cq` until it is shut down and drained.
void run_queue(grpc::ServerCompletionQueue* cq, Inbox* inbox);

}  // namespace voucherd
