#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test
# (unit and end-to-end: real voucherd processes on 127.0.0.1) in the Release
# build, then once more in a checked build (./build-asan: RelWithDebInfo with
# AddressSanitizer, its leak checks and UndefinedBehaviorSanitizer; any report
# fails the test, and VOUCHERD_DCHECK and VOUCHERD_BUG's abort are on, as in a
# Debug build). SKIP_SANITIZE=1 runs the Release build only. Then every fuzz
# target for FUZZ_SECONDS (default 30) in its own clang build (./build-fuzz,
# scripts/fuzz.sh); SKIP_FUZZ=1 skips that. Tests run two at a time
# (TEST_JOBS), except those marked RUN_SERIAL (tests/CMakeLists.txt), which
# keep both cores busy or time how fast something is noticed: they run alone.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" -j "${TEST_JOBS:-2}" --output-on-failure --timeout 900 "$@"
if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  scripts/sanitize.sh address,undefined --skip-setup "$@"
fi
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
