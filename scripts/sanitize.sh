#!/usr/bin/env bash
# Runs the whole test suite under a sanitizer, in its own build tree.
#   scripts/sanitize.sh thread              # TSan -> build-tsan
#   scripts/sanitize.sh address,undefined   # ASan + UBSan -> build-asan
# Not part of CI (a sanitizer build of gRPC-heavy tests takes long on two
# cores); run it before submitting changes to concurrent code.
set -euo pipefail
cd "$(dirname "$0")/.."
SAN="${1:?usage: scripts/sanitize.sh thread|address,undefined}"
case "$SAN" in
  thread) DIR=build-tsan ;;
  *) DIR=build-asan ;;
esac
scripts/setup.sh --tests
BUILD_DIR="$DIR" BUILD_TYPE=RelWithDebInfo scripts/build.sh \
  -DVOUCHERD_SANITIZE="$SAN" -DVOUCHERD_BUILD_BENCH=OFF
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
ctest --test-dir "$DIR" --output-on-failure --timeout 1800 "${@:2}"
