#!/usr/bin/env bash
# scripts/chaos.sh N [voucherd-chaos flags...]: N cycles of faults against
# three voucherd replicas and one redis-server on 127.0.0.1 while a crowd
# claims, redeems and draws; then every answer is checked against Redis and
# a table is printed (tests/chaos/chaos.cc says what each check means).
# Exits non-zero on any violation.
#
#   scripts/chaos.sh 25                       # the suite's short run
#   scripts/chaos.sh 500 --seed 7 --out build/chaos-500
#
# Builds ./build first (JOBS=1 by default: this box is shared), unless
# CHAOS_BIN names the program (ctest does). The run is bounded: at most
# CHAOS_TIMEOUT_S seconds (default: 30 + 10 per cycle).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 CYCLES [--seed S] [--crowd-ms MS] [--out DIR] [--tamper-lose-one]" >&2
  exit 2
fi
cycles="$1"
shift
bin="${CHAOS_BIN:-}"
if [[ -z "$bin" ]]; then
  JOBS="${JOBS:-1}" scripts/build.sh >/dev/null
  cmake --build "${BUILD_DIR:-build}" --target voucherd-chaos -j "${JOBS:-1}" >/dev/null
  bin="${BUILD_DIR:-build}/bin/voucherd-chaos"
fi
exec timeout --kill-after=20 "${CHAOS_TIMEOUT_S:-$((30 + 10 * cycles))}" \
  "$bin" --cycles "$cycles" "$@"
