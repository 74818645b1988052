// workloads.h — what each voucher-load mode sends: the crowd's presses
// (Claim, ClaimBatch with --batch, Draw, or mixed claims and redemptions)
// and the redemptions of issued codes, as Workloads for a Worker to run.
//
// Internal to bench/load (namespace detail): load.cc asks for a phase's
// workload here and runs it on the machinery of worker.h.
//
// Thread-safety: a workload is shared by all the client threads of a phase;
// make() reads only what was fixed at construction and the calling
// Worker's own state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/load/load.h"
#include "bench/load/worker.h"

namespace voucherd::load::detail {

// The crowd's presses for `options.mode`, and the crowd's size.
struct CrowdWorkload {
  std::unique_ptr<Workload> workload;
  std::int64_t crowd_size = 0;  // distinct members plus repeats
  const char* phase_name = "";  // "claim", "claim-batch", "draw", "mixed" or "apply"
};

// The first phase of a run: in mixed mode claims with each thread redeeming
// the vouchers it got; otherwise Draw (draw mode), ClaimBatch (batch > 0) or
// Claim. The workload keeps a reference to `options`, which must outlive it.
[[nodiscard]] CrowdWorkload make_crowd_workload(const LoadOptions& options);

// Apply mode's presses: the crowd applying, each application naming
// options.preferences of `sku_ids` (drawn per member and press kind, so a
// retry names the same).
[[nodiscard]] CrowdWorkload make_apply_workload(const LoadOptions& options,
                                                std::vector<std::string> sku_ids);

// GetApplication of each of `members` (work index i reads members[i]).
// REQUIRES: `members` is not empty.
[[nodiscard]] std::unique_ptr<Workload> make_results_workload(const LoadOptions& options,
                                                              std::vector<std::string> members);

// Redemptions of (code, site) pairs; work index i redeems codes[i % size].
// REQUIRES: `codes` is not empty.
[[nodiscard]] std::unique_ptr<Workload> make_redeem_workload(
    std::vector<std::pair<std::string, std::string>> codes);

}  // namespace voucherd::load::detail
