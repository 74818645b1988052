#!/usr/bin/env bash
# bench/compare_front.sh — the gRPC front against its ceiling (issue 13's
# table): at each setting (calls in flight / client threads, default 16/1 and
# 64/2), the echo server (answering every claim, then, with --refuse,
# refusing every press with voucherd's SOLD_OUT: the ceiling of a refusal),
# voucherd with the memory claim log (claims, then
# presses after the sell-out), voucherd with the Redis claim log
# (appendfsync always; claims, then presses after the sell-out) and the
# per-claim-script baseline, each driven by one voucher-load crowd on the
# Guangdong sample. REPS rounds, interleaved (echo, memory, Redis, baseline,
# then again), so drift of the machine hits every server alike; the table
# gives each figure's median over the rounds and its ratio to the echo's.
#
#   bench/compare_front.sh                          # 16/1 and 64/2, 3 rounds
#   SETTINGS="16:1" REPS=5 GRPC_THREADS=1 bench/compare_front.sh
#   BEFORE_BUILD_DIR=../old/build bench/compare_front.sh   # + an older voucherd's two stores
#
# Loopback only. Every run is bounded by its crowd and by --duration; every
# process started here is stopped on exit. Needs a Release build with the
# benchmarks (scripts/build.sh), redis-server, jq and perf (the server's CPU
# time and context switches per call come from perf stat).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
MEMBERS="${MEMBERS:-120000}"         # distinct members per crowd
REPEATS="${REPEATS:-0.2}"            # + this share of repeat presses
SETTINGS="${SETTINGS:-16:1 64:2}"    # calls in flight:client threads
REPS="${REPS:-3}"
GRPC_THREADS="${GRPC_THREADS:-}"     # empty: voucherd's default, and as many for the echo
BEFORE_BUILD_DIR="${BEFORE_BUILD_DIR:-}"  # another build's voucherd, run the same way, for before/after
LOAD="$BUILD_DIR/bin/voucher-load"
# shellcheck source=bench/lib.sh
source bench/lib.sh
require_binaries voucher-load echo-server voucherd voucherd-baseline
THREAD_FLAG=()
ECHO_THREADS="$GRPC_THREADS"
if [ -n "$GRPC_THREADS" ]; then THREAD_FLAG=(--grpc-threads "$GRPC_THREADS"); else
  # voucherd's default (what its --help says it is here), for the echo too.
  ECHO_THREADS=$("$BUILD_DIR/bin/voucherd" --help | sed -n 's/.*one per core (\([0-9]*\) here).*/\1/p')
  [ -n "$ECHO_THREADS" ] || { echo "compare_front: cannot read voucherd's --grpc-threads default" >&2; exit 2; }
fi

voucherd() {  # binary store flags... (binary: a name in $BUILD_DIR/bin, or a path)
  local bin="$1"
  shift
  [[ "$bin" == */* ]] || bin="$BUILD_DIR/bin/$bin"
  start_server "$bin" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 \
    --secret-file "$WORK/secret.hex" "${THREAD_FLAG[@]}" --campaigns "$WORK/gd.json" "$@"
}
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

# crowd NAME CONC THREADS [voucher-load flags...]: one run; its JSON in
# $WORK/NAME.json, and the server's CPU time and context switches during it
# (perf stat on the server process) in $WORK/NAME.perf.
crowd() {
  local name="$1" conc="$2" threads="$3" perf_pid
  shift 3
  perf stat -x, -e task-clock,context-switches -p "$SERVER_PID" -o "$WORK/$name.perf" &
  perf_pid=$!
  sleep 0.2
  "$LOAD" --target "127.0.0.1:$PORT" --campaign guangdong-2024 --threads "$threads" \
    --concurrency "$conc" --members "$MEMBERS" --repeat-share "$REPEATS" --max-retries 200 \
    --duration 300 --skip-stats --json "$WORK/$name.json" "$@" > "$WORK/$name.txt" ||
    { cat "$WORK/$name.txt"; echo "compare_front: the $name run failed its check" >&2; exit 1; }
  kill -INT "$perf_pid"
  wait "$perf_pid" 2>/dev/null || true
}

for setting in $SETTINGS; do
  conc="${setting%:*}"
  threads="${setting#*:}"
  for rep in $(seq 1 "$REPS"); do
    tag="c${conc}t${threads}r${rep}"
    echo "== $conc in flight, $threads client thread(s), round $rep"
    start_server "$BUILD_DIR/bin/echo-server" --listen 127.0.0.1:0 --threads "$ECHO_THREADS"
    crowd "echo_$tag" "$conc" "$threads"
    stop_server
    start_server "$BUILD_DIR/bin/echo-server" --listen 127.0.0.1:0 --threads "$ECHO_THREADS" --refuse
    crowd "echo_refuse_$tag" "$conc" "$threads" --member-first 5000000
    stop_server
    voucherd voucherd --store memory
    crowd "memory_$tag" "$conc" "$threads"
    crowd "memory_after_$tag" "$conc" "$threads" --member-first 5000000
    stop_server
    start_redis
    voucherd voucherd --store redis --redis "$REDIS_URL"
    crowd "redis_$tag" "$conc" "$threads"
    crowd "redis_after_$tag" "$conc" "$threads" --member-first 5000000
    stop_server
    stop_redis
    start_redis
    voucherd voucherd-baseline --store redis-per-claim --redis "$REDIS_URL" --redis-pool "${POOL:-32}"
    crowd "per_claim_$tag" "$conc" "$threads"
    stop_server
    stop_redis
    if [ -n "$BEFORE_BUILD_DIR" ]; then
      voucherd "$BEFORE_BUILD_DIR/bin/voucherd" --store memory
      crowd "before_memory_$tag" "$conc" "$threads"
      stop_server
      start_redis
      voucherd "$BEFORE_BUILD_DIR/bin/voucherd" --store redis --redis "$REDIS_URL"
      crowd "before_redis_$tag" "$conc" "$threads"
      stop_server
      stop_redis
    fi
  done
done

# ---- the table: medians over the rounds ----
median() { sort -g | awk '{v[NR] = $1} END {printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
figure() {  # server conc threads jq-path: the median over the rounds
  for rep in $(seq 1 "$REPS"); do jq -r "$4" "$WORK/$1_c$2t$3r$rep.json"; done | median
}
per_call() {  # server conc threads event: the server's median per answered call (task-clock in us)
  for rep in $(seq 1 "$REPS"); do
    local f="$WORK/$1_c$2t$3r$rep"
    awk -F, -v e="$4" -v n="$(jq -r '.phases[0].answers' "$f.json")" \
      '$3 == e { print (e == "task-clock" ? $1 * 1000 : $1) / n }' "$f.perf"
  done | median
}
echo
echo "Crowd: $MEMBERS members + $REPEATS repeats on the Guangdong sample (59,000 packs);" \
  "server threads: ${GRPC_THREADS:-voucherd default} (echo: $ECHO_THREADS); medians of $REPS rounds."
for setting in $SETTINGS; do
  conc="${setting%:*}"
  threads="${setting#*:}"
  echo
  echo "$conc calls in flight, $threads client thread(s):"
  echo
  echo "| server | calls/s | vs echo | p50 | p99 | server CPU per call | context switches per call | each round's calls/s |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  echo_rate=$(figure echo "$conc" "$threads" '.phases[0].answers_per_s')
  servers=(echo echo_refuse memory memory_after redis redis_after per_claim)
  [ -z "$BEFORE_BUILD_DIR" ] || servers+=(before_memory before_redis)
  for s in "${servers[@]}"; do
    case "$s" in
      echo) label="echo-server (the ceiling)" ;;
      echo_refuse) label="echo-server refusing every press (SOLD_OUT)" ;;
      memory) label="voucherd, memory store" ;;
      memory_after) label="memory store, presses after the sell-out" ;;
      redis) label="voucherd, Redis store (always)" ;;
      redis_after) label="Redis store, presses after the sell-out" ;;
      per_claim) label="baseline: a script per claim (always)" ;;
      before_memory) label="before: $BEFORE_BUILD_DIR voucherd, memory store" ;;
      before_redis) label="before: $BEFORE_BUILD_DIR voucherd, Redis store (always)" ;;
    esac
    rate=$(figure "$s" "$conc" "$threads" '.phases[0].answers_per_s')
    p50=$(figure "$s" "$conc" "$threads" '.phases[0].latency_ms.p50')
    p99=$(figure "$s" "$conc" "$threads" '.phases[0].latency_ms.p99')
    rounds=$(for rep in $(seq 1 "$REPS"); do
      jq -r '.phases[0].answers_per_s | floor' "$WORK/${s}_c${conc}t${threads}r$rep.json"
    done | paste -sd' ')
    printf '| %s | %.0f | %.2f | %.3f ms | %.3f ms | %.1f us | %.2f | %s |\n' "$label" "$rate" \
      "$(awk -v a="$rate" -v b="$echo_rate" 'BEGIN {print a / b}')" "$p50" "$p99" \
      "$(per_call "$s" "$conc" "$threads" task-clock)" \
      "$(per_call "$s" "$conc" "$threads" context-switches)" "$rounds"
  done
  redis_rate=$(figure redis "$conc" "$threads" '.phases[0].answers_per_s')
  base_rate=$(figure per_claim "$conc" "$threads" '.phases[0].answers_per_s')
  awk -v a="$redis_rate" -v b="$base_rate" 'BEGIN {printf "\nRedis store / per-claim baseline: %.2fx\n", a / b}'
  refuse_rate=$(figure echo_refuse "$conc" "$threads" '.phases[0].answers_per_s')
  awk -v m="$(figure memory_after "$conc" "$threads" '.phases[0].answers_per_s')" \
    -v r="$(figure redis_after "$conc" "$threads" '.phases[0].answers_per_s')" -v e="$refuse_rate" \
    'BEGIN {printf "Presses after the sell-out / the refusing echo: memory %.2f, Redis %.2f\n", m / e, r / e}'
done
