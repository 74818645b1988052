#!/usr/bin/env bash
# Configures and builds voucherd in ./build (Release) with two jobs.
# Extra arguments go to cmake's configure step, e.g. -DVOUCHERD_SANITIZE=thread.
# BUILD_DIR, BUILD_TYPE, JOBS and BUILD_TARGET (one target instead of all)
# change what is built where.
#
# A new tree is generated for Ninja when it is installed: Ninja starts a
# target's compiles as soon as the headers they include are generated, where
# Make waits until every library the target links is built, which leaves a
# core idle for much of a build (docs/reliability.md, "What it costs"). A
# tree that exists keeps the generator it was made with.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
generator=()
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] && command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@" \
  >/dev/null
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
