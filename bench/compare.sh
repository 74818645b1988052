#!/usr/bin/env bash
# bench/compare.sh — one command, one run, side by side: the gRPC echo
# ceiling (echo-server), voucherd with the memory claim log, voucherd with
# the Redis claim log (appendfsync always), and the per-claim-script baseline
# (--store=redis-per-claim, always), each driven by voucher-load with the same
# crowd on the Guangdong sample (59,000 packs). Then, for the Redis log: p99
# at 16 and 256 calls in flight; presses after the sell-out with the Redis
# commands they cost; and ClaimBatch (batches of 100) on memory and on Redis.
#
#   bench/compare.sh                     # defaults below
#   MEMBERS=120000 CONC=64 THREADS=2 bench/compare.sh
#
# Loopback only. Every run is bounded by its crowd and by --duration; every
# process started here is stopped on exit. Needs a Release build with the
# benchmarks (scripts/build.sh) and redis-server, jq.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
MEMBERS="${MEMBERS:-120000}"       # distinct members per crowd (+30% repeats)
CONC="${CONC:-64}"                 # calls in flight
THREADS="${THREADS:-2}"            # voucher-load client threads
GRPC_THREADS="${GRPC_THREADS:-2}"  # server polling threads (echo-server and voucherd alike)
LOAD="$BUILD_DIR/bin/voucher-load"
# shellcheck source=bench/lib.sh
source bench/lib.sh
require_binaries voucher-load echo-server voucherd voucherd-baseline

# A campaign that does not sell out during a run ($WORK/big.json), so every
# claim of a batch run is a new durable voucher.
write_big_campaign

voucherd() {  # VOUCHERD=voucherd-baseline for the per-claim-script store
  start_server "$BUILD_DIR/bin/${VOUCHERD:-voucherd}" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 \
    --secret-file "$WORK/secret.hex" --grpc-threads "$GRPC_THREADS" "$@"
}
redis_commands() { redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_/ {s+=$3} END {print s+0}'; }

# load NAME campaign [voucher-load flags...]: one run, its JSON in $WORK/NAME.json.
load() {
  local name="$1" campaign="$2"
  shift 2
  "$LOAD" --target "127.0.0.1:$PORT" --campaign "$campaign" --threads "$THREADS" \
    --max-retries 200 --duration 300 --skip-stats --json "$WORK/$name.json" "$@" > "$WORK/$name.txt" ||
    { cat "$WORK/$name.txt"; echo "compare: the $name run failed its check" >&2; exit 1; }
}
crowd() { load "$1" "${2:-guangdong-2024}" --members "$MEMBERS" --repeat-share 0.3 --concurrency "$CONC" "${@:3}"; }

echo "== echo-server (the gRPC ceiling)"
start_server "$BUILD_DIR/bin/echo-server" --listen 127.0.0.1:0 --threads "$GRPC_THREADS"
crowd echo
stop_server

echo "== voucherd, memory claim log"
voucherd --campaigns "$WORK/gd.json" --store memory
crowd memory
echo "== voucherd, memory claim log: presses after the sell-out"
crowd memory_after guangdong-2024 --member-first 5000000
stop_server

echo "== voucherd, Redis claim log (appendfsync always)"
start_redis
voucherd --campaigns "$WORK/gd.json" --store redis --redis "redis://127.0.0.1:$REDIS_PORT"
crowd redis
echo "== voucherd, Redis claim log: presses after the sell-out"
redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
crowd redis_after guangdong-2024 --member-first 5000000
AFTER_COMMANDS=$(redis_commands)
redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | grep cmdstat_ > "$WORK/after_commandstats.txt" || true
stop_server
stop_redis

for c in 16 256; do
  echo "== voucherd, Redis claim log, $c calls in flight"
  start_redis
  voucherd --campaigns "$WORK/gd.json" --store redis --redis "redis://127.0.0.1:$REDIS_PORT"
  load "redis_c$c" guangdong-2024 --members "$MEMBERS" --repeat-share 0.3 --concurrency "$c"
  stop_server
  stop_redis
done

echo "== baseline: one Redis script per claim (appendfsync always)"
start_redis
VOUCHERD=voucherd-baseline voucherd --campaigns "$WORK/gd.json" --store redis-per-claim --redis "redis://127.0.0.1:$REDIS_PORT" \
  --redis-pool "${POOL:-32}"
crowd per_claim
stop_server
stop_redis

echo "== ClaimBatch, batches of 100, memory claim log (Guangdong crowd: decisions/s)"
voucherd --campaigns "$WORK/gd.json" --store memory
load batch_memory guangdong-2024 --members "$MEMBERS" --repeat-share 0.3 --batch 100 --concurrency 8
stop_server
echo "== ClaimBatch, batches of 100, memory claim log (300,000 new vouchers)"
voucherd --campaigns "$WORK/big.json" --store memory
load batch_memory_big big --members 300000 --repeat-share 0 --batch 100 --concurrency 8
stop_server
echo "== ClaimBatch, batches of 100, Redis claim log, always (300,000 new durable vouchers)"
start_redis
voucherd --campaigns "$WORK/big.json" --store redis --redis "redis://127.0.0.1:$REDIS_PORT"
load batch_redis_big big --members 300000 --repeat-share 0 --batch 100 --concurrency 8
stop_server
stop_redis

# ---- the table ----
j() { jq -r "$2" "$WORK/$1.json"; }
ECHO_RATE=$(j echo '.phases[0].answers_per_s')
row() {  # name label
  local rate p50 p99
  rate=$(j "$1" '.phases[0].answers_per_s')
  p50=$(j "$1" '.phases[0].latency_ms.p50')
  p99=$(j "$1" '.phases[0].latency_ms.p99')
  printf '| %-46s | %9.0f | %7.2f ms | %7.2f ms | %5.2f |\n' "$2" "$rate" "$p50" "$p99" \
    "$(awk -v a="$rate" -v b="$ECHO_RATE" 'BEGIN {print a / b}')"
}
echo
echo "Crowd: $MEMBERS members + 30% repeats, $CONC calls in flight, $THREADS client threads," \
  "$GRPC_THREADS server polling threads; Guangdong sample (59,000 packs)."
echo
echo "| server | claims/s | p50 | p99 | vs echo |"
echo "| --- | --- | --- | --- | --- |"
row echo "echo-server (ceiling)"
row memory "voucherd, memory log"
row redis "voucherd, Redis log, always"
row per_claim "baseline: script per claim, always"
row redis_c16 "voucherd, Redis log, always, 16 in flight"
row redis_c256 "voucherd, Redis log, always, 256 in flight"
row memory_after "memory log, presses after sell-out"
row redis_after "Redis log, presses after sell-out"
echo
for r in memory redis per_claim; do
  printf '%-10s sold out after %.2f s\n' "$r" "$(j $r '.phases[0].sellout_s')"
done
echo "Answers by gRPC code, and presses voucher-load had to send again (it retries"
echo "RESOURCE_EXHAUSTED and UNAVAILABLE; a healthy run needs none):"
for r in memory redis per_claim redis_c16 redis_c256 memory_after redis_after; do
  printf '  %-13s retries %s, %s\n' "$r" "$(j $r '.phases[0].retries')" \
    "$(j $r '.phases[0].status_codes | tojson')"
done
echo "Redis commands during the presses after sell-out: $AFTER_COMMANDS" \
  "($(j redis_after '.phases[0].answers') presses)"
sed 's/^/  /' "$WORK/after_commandstats.txt"
echo
echo "ClaimBatch, batches of 100:"
printf '  memory, Guangdong crowd:  %9.0f claim decisions/s (%d calls/s), p99 %.2f ms per call\n' \
  "$(j batch_memory '.phases[0].answers_per_s')" "$(j batch_memory '.phases[0].calls_per_s | floor')" \
  "$(j batch_memory '.phases[0].latency_ms.p99')"
for r in batch_memory_big batch_redis_big; do
  printf '  %-24s %9.0f new vouchers/s (%d issued in %.2f s), p99 %.2f ms per call\n' "$r:" \
    "$(j $r '.phases[0].issued / .phases[0].elapsed_s')" "$(j $r '.phases[0].issued')" \
    "$(j $r '.phases[0].elapsed_s')" "$(j $r '.phases[0].latency_ms.p99')"
done
