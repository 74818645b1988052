#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test
# (unit and end-to-end: real voucherd processes on 127.0.0.1) in the Release
# build, then once more in a Debug build (./build-debug), where
# VOUCHERD_DCHECK and VOUCHERD_BUG's abort are on (engine/check.h).
# SKIP_DEBUG=1 runs the Release build only. Then every fuzz target for
# FUZZ_SECONDS (default 30) in its own clang build (./build-fuzz,
# scripts/fuzz.sh); SKIP_FUZZ=1 skips that.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure --timeout 900 "$@"
if [ "${SKIP_DEBUG:-0}" != 1 ]; then
  BUILD_DIR=build-debug BUILD_TYPE=Debug scripts/build.sh -DVOUCHERD_BUILD_BENCH=OFF
  ctest --test-dir build-debug --output-on-failure --timeout 900 "$@"
fi
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
