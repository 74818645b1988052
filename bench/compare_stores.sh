#!/usr/bin/env bash
# Side by side, in one run: voucherd with the memory claim log, with the
# Redis claim log under appendfsync always and everysec, and with the
# per-claim-script baseline (one Lua call per claim, a pool of POOL
# connections, default 32) under always. The same crowd is
# driven by voucher-load against each. For each Redis run, it also reports
# Redis commands and Redis CPU per issued voucher (INFO commandstats / cpu).
#
#   bench/compare_stores.sh [members] [concurrency]
# Loopback only; every run is bounded by its crowd and by --max-seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS="${1:-120000}"
CONC="${2:-64}"
BUILD_DIR="${BUILD_DIR:-build}"
WORK="$(mktemp -d)"
cleanup() { pkill -P $$ 2>/dev/null || true; [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$WORK/secret.hex"
sed 's/"startsAt": "2024-06-18T02:00:00Z"/"startsAt": "2020-01-01T00:00:00Z"/; s/"endsAt": "2024-12-31T16:00:00Z"/"endsAt": "2099-01-01T00:00:00Z"/' \
  deploy/campaigns/guangdong-2024.json > "$WORK/gd.json"
PORT=$(( 20000 + RANDOM % 20000 ))

start_voucherd() {  # args...
  rm -f "$WORK/port"
  "$BUILD_DIR/bin/${VOUCHERD:-voucherd}" --listen 127.0.0.1:0 --port-file "$WORK/port" --ops-listen 127.0.0.1:0 --campaigns "$WORK/gd.json" \
    --secret-file "$WORK/secret.hex" --grpc-threads 1 "$@" 2>>"$WORK/voucherd.log" &
  VPID=$!
  for _ in $(seq 1 200); do [ -s "$WORK/port" ] && break; sleep 0.05; done
  sleep 0.3
}
stop_voucherd() { kill -TERM "$VPID"; wait "$VPID" || true; }
storm() {
  "$BUILD_DIR/bin/voucher-load" --target "127.0.0.1:$(cat "$WORK/port")" --campaign guangdong-2024 \
    --members "$MEMBERS" --repeat-share 0.3 --concurrency "$CONC" --max-retries 200 --duration 300 \
    --skip-stats || true
}
redis_stat() { redis-cli -p "$PORT" INFO "$1" | tr -d '\r'; }
cpu_total() { redis_stat cpu | awk -F: '/^used_cpu_(user|sys):/ {s+=$2} END {printf "%.3f", s}'; }
mem_used() { redis_stat memory | awk -F: '/^used_memory:/ {print $2}'; }
calls_total() { redis_stat commandstats | awk -F'[:=,]' '/^cmdstat_/ {s+=$3} END {print s}'; }

echo "== memory store"
start_voucherd --store memory
storm | grep -E "Calls:|% in|Sold out after|Client check"
stop_voucherd

# run_redis STORE FSYNC [voucherd flags...]: a fresh redis-server, one voucherd, one storm.
run_redis() {
  local store="$1" fsync="$2"
  shift 2
  rm -rf "$WORK/redis" && mkdir -p "$WORK/redis"
  redis-server --port "$PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" --appendonly yes \
    --appendfsync "$fsync" --maxmemory-policy noeviction --daemonize no --logfile "$WORK/redis/log" &
  REDIS_PID=$!
  for _ in $(seq 1 100); do redis-cli -p "$PORT" PING >/dev/null 2>&1 && break; sleep 0.05; done
  start_voucherd --store "$store" --redis "redis://127.0.0.1:$PORT" "$@"
  redis-cli -p "$PORT" CONFIG RESETSTAT >/dev/null
  CPU0=$(cpu_total)
  MEM0=$(mem_used)
  echo "== $store store, appendfsync $fsync"
  storm | grep -E "Calls:|% in|Sold out after|Client check|Retried"
  CPU1=$(cpu_total)
  MEM1=$(mem_used)
  CALLS=$(calls_total)
  ISSUED=$(redis-cli -p "$PORT" HGET 'vd:{guangdong-2024}:issued' _members)
  [ -z "$ISSUED" ] && ISSUED=$(redis-cli -p "$PORT" HLEN 'vdb:{guangdong-2024}:members')
  awk -v c0="$CPU0" -v c1="$CPU1" -v calls="$CALLS" -v n="$ISSUED" -v m0="$MEM0" -v m1="$MEM1" 'BEGIN {
    printf "redis: %d vouchers, %.3f commands per voucher, %.1f us Redis CPU per voucher, %.0f bytes of Redis memory per voucher\n",
           n, calls / n, (c1 - c0) * 1e6 / n, (m1 - m0) / n }'
  redis-cli -p "$PORT" INFO commandstats | tr -d '\r' | grep -E "cmdstat_" | sed 's/^/  /'
  stop_voucherd
  kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=""
}

run_redis redis always
run_redis redis everysec
VOUCHERD=voucherd-baseline run_redis redis-per-claim always --redis-pool "${POOL:-32}"
