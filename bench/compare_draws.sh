#!/usr/bin/env bash
# Draws beside claims, in one run, on one voucherd with the Redis claim log
# (appendfsync always), both driven by voucher-load with the same threads and
# calls in flight: first a claim crowd sells out the Guangdong sample, then a
# draw crowd draws in a lottery of 1,000,000 prizes over 10 SKUs at p = 0.1
# (MEMBERS members x DRAWS draws each on average, default 200,000 x 5 =
# 1,000,000 draws). Prints both rates and Redis memory, commands and CPU per
# draw.
#
#   bench/compare_draws.sh [members] [draws per member] [concurrency]
# Loopback only; every run is bounded by its crowd and by --max-seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS="${1:-200000}"
DRAWS="${2:-5}"
CONC="${3:-64}"
BUILD_DIR="${BUILD_DIR:-build}"
WORK="$(mktemp -d)"
cleanup() { pkill -P $$ 2>/dev/null || true; [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$WORK/secret.hex"
python3 - "$WORK/both.json" <<'PY'
import json, sys
gd = json.load(open("deploy/campaigns/guangdong-2024.json"))
for c in gd["campaigns"]:
    c["startsAt"], c["endsAt"] = "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z"
gd["campaigns"].append({
    "id": "bench-lottery", "name": "Bench lottery", "mode": "CAMPAIGN_MODE_LOTTERY",
    "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
    "sites": [{"id": "site-1", "name": "Spring", "city": "Qingyuan", "kind": "SKU_KIND_HOT_SPRING"}],
    "skus": [{"id": "sku-%d" % i, "siteId": "site-1", "kind": "SKU_KIND_HOT_SPRING", "name": "Pass",
              "faceValueCents": "9800", "stock": "100000"} for i in range(10)],
    "lottery": {"winProbability": 0.1, "drawsPerDay": 100}})
json.dump(gd, open(sys.argv[1], "w"))
PY
PORT=$(( 20000 + RANDOM % 20000 ))
rm -rf "$WORK/redis" && mkdir -p "$WORK/redis"
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" --appendonly yes \
  --appendfsync always --maxmemory-policy noeviction --daemonize no --logfile "$WORK/redis/log" &
REDIS_PID=$!
for _ in $(seq 1 100); do redis-cli -p "$PORT" PING >/dev/null 2>&1 && break; sleep 0.05; done
"$BUILD_DIR/bin/voucherd" --listen 127.0.0.1:0 --port-file "$WORK/port" --ops-listen 127.0.0.1:0 \
  --campaigns "$WORK/both.json" --secret-file "$WORK/secret.hex" --grpc-threads 1 \
  --store redis --redis "redis://127.0.0.1:$PORT" 2>>"$WORK/voucherd.log" &
VPID=$!
for _ in $(seq 1 200); do [ -s "$WORK/port" ] && break; sleep 0.05; done
sleep 0.3
TARGET="127.0.0.1:$(cat "$WORK/port")"

redis_stat() { redis-cli -p "$PORT" INFO "$1" | tr -d '\r'; }
cpu_total() { redis_stat cpu | awk -F: '/^used_cpu_(user|sys):/ {s+=$2} END {printf "%.3f", s}'; }
mem_used() { redis_stat memory | awk -F: '/^used_memory:/ {print $2}'; }
calls_total() { redis_stat commandstats | awk -F'[:=,]' '/^cmdstat_/ {s+=$3} END {print s}'; }

THREADS="${THREADS:-2}"
load() {  # voucher-load flags...
  "$BUILD_DIR/bin/voucher-load" --target "$TARGET" --threads "$THREADS" --concurrency "$CONC" \
    --max-retries 200 --duration 600 --skip-stats "$@" |
    grep -E "^  (Total|Calls|Answers|Latency:|Prizes|Vouchers|Sold out|  50%|  99%|    [A-Z_]+ )|Check|RESULT" || true
}
echo "== claims: Guangdong sample, 120,000 members + 30% repeats, $CONC in flight"
load --campaign guangdong-2024 --members 120000 --repeat-share 0.3

echo "== draws: $MEMBERS members x $DRAWS draws, $CONC in flight"
redis-cli -p "$PORT" CONFIG RESETSTAT >/dev/null
CPU0=$(cpu_total)
MEM0=$(mem_used)
load --mode draw --campaign bench-lottery --members "$MEMBERS" --repeat-share "$((DRAWS - 1))"
CPU1=$(cpu_total)
MEM1=$(mem_used)
CALLS=$(calls_total)
N=$(redis-cli -p "$PORT" GET 'vd:{bench-lottery}:drawn')
awk -v c0="$CPU0" -v c1="$CPU1" -v calls="$CALLS" -v n="$N" -v m0="$MEM0" -v m1="$MEM1" 'BEGIN {
  printf "redis: %d draws logged, %.3f commands per draw, %.1f us Redis CPU per draw, %.0f bytes of Redis memory per draw\n",
         n, calls / n, (c1 - c0) * 1e6 / n, (m1 - m0) / n }'
redis-cli -p "$PORT" INFO commandstats | tr -d '\r' | grep -E "cmdstat_" | sed 's/^/  /'
kill -TERM "$VPID"; wait "$VPID" || true
