#!/usr/bin/env bash
# Runs the test suite under a sanitizer, in its own build tree
# (-O1 -g1, no NDEBUG; VOUCHERD_DCHECK and VOUCHERD_BUG's abort on).
#   scripts/sanitize.sh thread [ctest args...]             # TSan -> build-tsan
#   scripts/sanitize.sh address,undefined [ctest args...]  # ASan + UBSan -> build-asan
# scripts/test.sh (CI) runs the second one over the whole suite; run the
# first before submitting changes to concurrent code. --skip-setup (first
# after the sanitizer) leaves out scripts/setup.sh.
#
# Every sanitized process (the test programs, and the voucherd and tool
# processes the end-to-end tests start) writes its ASan, LSan and TSan
# reports into <tree>/sanitizer-reports/ instead of stderr, so that a report
# from a process whose exit no test looks at (a leak found when a voucherd
# the test stopped exits) is not lost: any file there fails the run, and is
# printed. UBSan linked with ASan ignores log_path and writes to stderr (the
# test's output, or the log of the voucherd that met it); halt_on_error ends
# the process at its first report, so a test fails when its program, or the
# voucherd it is talking to, meets one.
set -euo pipefail
cd "$(dirname "$0")/.."
SAN="${1:?usage: scripts/sanitize.sh thread|address,undefined [--skip-setup] [ctest args...]}"
shift
case "$SAN" in
  thread) DIR=build-tsan ;;
  *) DIR=build-asan ;;
esac
if [ "${1:-}" = --skip-setup ]; then shift; else scripts/setup.sh --tests; fi
# -O1 -g1 (line tables): the sanitizers' advice, and less than half the
# compile time of -O2 -g (docs/reliability.md, "Sanitizers in CI").
BUILD_DIR="$DIR" BUILD_TYPE=RelWithDebInfo scripts/build.sh \
  -DVOUCHERD_SANITIZE="$SAN" -DVOUCHERD_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1"
REPORTS="$PWD/$DIR/sanitizer-reports"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$REPORTS/asan"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$REPORTS/tsan"
status=0
ctest --test-dir "$DIR" -j "${TEST_JOBS:-2}" --output-on-failure --timeout 1800 "$@" || status=$?
if [ -n "$(ls -A "$REPORTS")" ]; then
  for f in "$REPORTS"/*; do
    echo "==== sanitizer report $f" >&2
    head -c 20000 "$f" >&2
  done
  echo "sanitize: $(find "$REPORTS" -type f | wc -l) sanitizer report(s) in $REPORTS" >&2
  status=1
fi
exit "$status"
