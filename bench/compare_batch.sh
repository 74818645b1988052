#!/usr/bin/env bash
# bench/compare_batch.sh — ClaimBatch with batches of 100 (issue 13's goals:
# 1,000,000 claim decisions/s, 150,000 durable vouchers/s), REPS rounds,
# each a fresh voucherd:
#   1. the memory store, the Guangdong sample: a crowd of 120,000 members
#      + 30% repeats (the sale and its refusals), then 1,000,000 new members
#      pressing after the sell-out (claim decisions/s, each a refusal);
#   2. the memory store, 300,000 new vouchers of a campaign that does not
#      sell out (new vouchers/s);
#   3. the Redis store (a fresh redis-server, appendfsync always), the same
#      300,000 (durable vouchers/s, and Redis's CPU per voucher from INFO).
# With BEFORE_BUILD_DIR, an older build's voucherd runs each step of each
# round right after this one's, the same way. Prints each figure's median
# over the rounds, and every round's.
#
#   bench/compare_batch.sh                                  # 3 rounds, 8 calls in flight
#   REPS=5 BEFORE_BUILD_DIR=../old/build bench/compare_batch.sh
#   CONC=32 bench/compare_batch.sh
#
# Loopback only. Every run is bounded by its crowd and by --duration; every
# process started here is stopped on exit. Needs a Release build
# (scripts/build.sh), redis-server and jq.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
REPS="${REPS:-3}"
CONC="${CONC:-8}"      # batches in flight
THREADS="${THREADS:-2}"  # voucher-load client threads
BEFORE_BUILD_DIR="${BEFORE_BUILD_DIR:-}"
LOAD="$BUILD_DIR/bin/voucher-load"
# shellcheck source=bench/lib.sh
source bench/lib.sh
require_binaries voucher-load voucherd
if [ -n "$BEFORE_BUILD_DIR" ] && [ ! -x "$BEFORE_BUILD_DIR/bin/voucherd" ]; then
  echo "compare_batch: $BEFORE_BUILD_DIR/bin/voucherd is missing" >&2
  exit 2
fi
write_big_campaign

# load NAME CAMPAIGN [voucher-load flags...]: one run, its JSON in $WORK/NAME.json.
load() {
  local name="$1" campaign="$2"
  shift 2
  "$LOAD" --target "127.0.0.1:$PORT" --campaign "$campaign" --threads "$THREADS" --batch 100 \
    --concurrency "$CONC" --max-retries 200 --duration 300 --skip-stats --json "$WORK/$name.json" \
    "$@" > "$WORK/$name.txt" ||
    { cat "$WORK/$name.txt"; echo "compare_batch: the $name run failed its check" >&2; exit 1; }
}
redis_cpu_s() {
  redis-cli -p "$REDIS_PORT" INFO cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.6f", s}'
}

VOUCHERD_BIN=""
voucherd_on() {
  start_server "$VOUCHERD_BIN" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 \
    --secret-file "$WORK/secret.hex" "$@"
}

# round BUILD TAG: the three steps on BUILD's voucherd.
round() {
  local tag="$2" cpu0
  VOUCHERD_BIN="$1/bin/voucherd"
  voucherd_on --campaigns "$WORK/gd.json" --store memory
  load "sale_$tag" guangdong-2024 --members 120000 --repeat-share 0.3
  load "after_$tag" guangdong-2024 --members 1000000 --member-first 5000000 --repeat-share 0
  stop_server
  voucherd_on --campaigns "$WORK/big.json" --store memory
  load "new_$tag" big --members 300000 --repeat-share 0
  stop_server
  start_redis
  voucherd_on --campaigns "$WORK/big.json" --store redis --redis "redis://127.0.0.1:$REDIS_PORT"
  cpu0=$(redis_cpu_s)
  load "durable_$tag" big --members 300000 --repeat-share 0
  awk -v a="$(redis_cpu_s)" -v b="$cpu0" -v n="$(jq -r '.phases[0].issued' "$WORK/durable_$tag.json")" \
    'BEGIN {printf "%.3f\n", (a - b) * 1e6 / n}' > "$WORK/durable_$tag.redis_us"
  stop_server
  stop_redis
}

builds=(now)
[ -z "$BEFORE_BUILD_DIR" ] || builds+=(before)
for rep in $(seq 1 "$REPS"); do
  echo "== round $rep"
  round "$BUILD_DIR" "now_r$rep"
  [ -z "$BEFORE_BUILD_DIR" ] || round "$BEFORE_BUILD_DIR" "before_r$rep"
done

median() { sort -g | awk '{v[NR] = $1} END {printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
rounds() {  # step build jq-path: every round's figure, one line
  for rep in $(seq 1 "$REPS"); do jq -r "$3 | floor" "$WORK/$1_$2_r$rep.json"; done | paste -sd' '
}
echo
echo "ClaimBatch, batches of 100, $CONC in flight, $THREADS client threads; medians of $REPS rounds" \
  "(then each round's):"
echo
echo "| step | build | per second | each round |"
echo "| --- | --- | ---: | --- |"
for b in "${builds[@]}"; do
  label="this build"
  [ "$b" = now ] || label="$BEFORE_BUILD_DIR"
  for step in sale after new durable; do
    case "$step" in
      sale) what="Guangdong crowd, claim decisions" path='.phases[0].answers_per_s' ;;
      after) what="1,000,000 presses after the sell-out, claim decisions" path='.phases[0].answers_per_s' ;;
      new) what="memory store, new vouchers" path='.phases[0].issued / .phases[0].elapsed_s' ;;
      durable) what="Redis store (always), new durable vouchers" path='.phases[0].issued / .phases[0].elapsed_s' ;;
    esac
    all=$(rounds "$step" "$b" "$path")
    printf '| %s | %s | %.0f | %s |\n' "$what" "$label" "$(tr ' ' '\n' <<< "$all" | median)" "$all"
  done
done
echo
for b in "${builds[@]}"; do
  label="this build"
  [ "$b" = now ] || label="$BEFORE_BUILD_DIR"
  printf 'Redis CPU per durable voucher (%s): %s us (rounds: %s)\n' "$label" \
    "$(for rep in $(seq 1 "$REPS"); do cat "$WORK/durable_${b}_r$rep.redis_us"; done | median)" \
    "$(for rep in $(seq 1 "$REPS"); do cat "$WORK/durable_${b}_r$rep.redis_us"; done | paste -sd' ')"
done
