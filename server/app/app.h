// app.h — voucherd as a program: parse the configuration once, build the
// store, the engine, the gRPC front and the ops port, serve until SIGTERM or
// SIGINT, drain, return the exit code.
//
// `main` only calls run_voucherd. The benchmark baseline
// (bench/baseline/, the voucherd-baseline program) is the same program with
// one more store, handed in through AppOptions, so that the production
// binary carries no benchmark code.
//
//   int main(int argc, char** argv) { return voucherd::run_voucherd(argc, argv, {}); }
#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <string>

#include "server/app/config.h"
#include "server/store/store.h"

namespace voucherd {

struct AppOptions {
  // Builds the store for --store=redis-per-claim; empty: that store is
  // refused with a message naming voucherd-baseline.
  std::function<std::expected<std::unique_ptr<Store>, std::string>(const Config&)> per_claim_store;
};

// REQUIRES: called once, from main, before any other thread starts (it
// blocks SIGTERM and SIGINT for every thread it will start).
[[nodiscard]] int run_voucherd(int argc, char** argv, const AppOptions& options);

}  // namespace voucherd
