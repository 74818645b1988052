#!/usr/bin/env bash
# Configures and builds voucherd in ./build (Release) with two jobs.
# Extra arguments go to cmake's configure step, e.g. -DVOUCHERD_SANITIZE=thread.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "${JOBS:-2}"
