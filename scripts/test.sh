#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test
# (unit and end-to-end: real voucherd processes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure --timeout 900 "$@"
