// thread_name.h — names voucherd's own threads, so that top -H, perf and a
// debugger tell them apart (docs/architecture.md, "Thread model").
#pragma once

#include <pthread.h>

namespace voucherd {

// REQUIRES: at most 15 characters (the kernel's limit), e.g. "vd-redis-writer".
inline void name_this_thread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace voucherd
