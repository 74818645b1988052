#!/usr/bin/env bash
# Applications beside claims and the gRPC ceiling, in one run, on one
# voucherd with the Redis claim log (appendfsync always), all driven by
# voucher-load with the same threads and calls in flight: first the same
# claim crowd against echo-server (one polling thread, as voucherd here);
# then a claim crowd sells out the Guangdong sample
# (120,000 members + 30% repeats); then APPLICANTS new members each claim
# once from a campaign of 1,000,000 packs, so that every claim is a voucher
# written, as every application is; then APPLICANTS members (default
# 1,000,000) apply once each to the Guangdong apply sample (59,000 packs over
# 307 SKUs, each applicant naming 3 at random), whose window is set to close
# WINDOW seconds after it is created and which is allocated at its close;
# voucher-load waits for the allocation, reads every applicant's outcome and
# redeems each pack won. Prints both rates; Redis memory per application
# (the applications' hash); the allocation's wall time as Redis recorded it
# (started_ms to done_ms) and as the replica logged it; and Redis's CPU
# during the allocation.
#
#   bench/compare_apply.sh [applicants] [window seconds] [concurrency]
#
# With PERF_DIR=DIR, perf records voucherd (-F 499 -g) into DIR/claims.data
# over the claims that each write, and into DIR/apply.data over the
# applications (until the apps hash holds them all, or the window closes),
# then prints each thread's samples per call: `perf report -i
# DIR/apply.data` for the rest.
# Loopback only; every run is bounded by its crowd and by --duration and
# --allocation-wait-s.
set -euo pipefail
cd "$(dirname "$0")/.."
APPLICANTS="${1:-1000000}"
WINDOW="${2:-150}"
CONC="${3:-64}"
THREADS="${THREADS:-2}"
BUILD_DIR="${BUILD_DIR:-build}"
CAMPAIGN=guangdong-apply-2024
. bench/lib.sh
require_binaries voucherd voucherctl voucher-load echo-server

# perf over a stage (PERF_DIR): perf_start NAME, then perf_stop NAME CALLS.
PERF_PID=""
if [ -n "${PERF_DIR:-}" ] && ! perf record -q -o /dev/null -- true >/dev/null 2>&1; then
  echo "compare_apply: PERF_DIR is set, but perf cannot record here (installed? perf_event_paranoid?)" >&2
  exit 2
fi
perf_start() {
  [ -n "${PERF_DIR:-}" ] || return 0
  mkdir -p "$PERF_DIR"
  perf record -F 499 -g -p "$SERVER_PID" -o "$PERF_DIR/$1.data" 2>/dev/null &
  PERF_PID=$!
}
perf_stop() {
  [ -n "$PERF_PID" ] || return 0
  kill -INT "$PERF_PID" 2>/dev/null || true
  # (the watcher below is not perf's parent, so it cannot wait for it)
  for _ in $(seq 1 600); do kill -0 "$PERF_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$PERF_PID" 2>/dev/null; then
    echo "perf $1: perf is still writing after 60 s; no figures" >&2
    return 0
  fi
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=""
  { perf report -i "$PERF_DIR/$1.data" -n --no-children --sort comm --stdio -g none 2>/dev/null |
    awk -v calls="$2" -v name="$1" '$2 ~ /^[0-9]+$/ && $3 ~ /^vd-/ {
      printf "perf %s: %s %d samples over %d calls, %.4f per call\n", name, $3, $2, calls, $2 / calls }'
  } || echo "perf $1: perf report failed on $PERF_DIR/$1.data" >&2
}

FAILED=0
load() {  # voucher-load flags...: its report's main lines; FAILED=1 when its check fails
  "$BUILD_DIR/bin/voucher-load" --target "$TARGET" --threads "$THREADS" --concurrency "$CONC" \
    --max-retries 200 "$@" > "$WORK/load.txt" || FAILED=1
  grep -E "^(==|Phase|  (Total|Calls|Answers|Latency:|Vouchers|Packs|Sold out|Redeemed|  50%|  99%|    [A-Z_]+ ))|Allocation|Applicants|Any SKU|Check|RESULT" "$WORK/load.txt" || true
}

echo "== echo-server (the gRPC ceiling), 120,000 members + 30% repeats, $CONC in flight"
start_server "$BUILD_DIR/bin/echo-server" --listen 127.0.0.1:0 --threads 1
TARGET="127.0.0.1:$PORT"
load --campaign echo --members 120000 --repeat-share 0.3 --duration 600 --skip-stats
stop_server

start_redis
start_server "$BUILD_DIR/bin/voucherd" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 \
  --campaigns "$WORK/gd.json" --secret-file "$WORK/secret.hex" --grpc-threads 1 \
  --store redis --redis "redis://127.0.0.1:$REDIS_PORT"
TARGET="127.0.0.1:$PORT"

redis_stat() { redis-cli -p "$REDIS_PORT" INFO "$1" | tr -d '\r'; }
cpu_total() { redis_stat cpu | awk -F: '/^used_cpu_(user|sys):/ {s+=$2} END {printf "%.3f", s}'; }
alloc() { redis-cli -p "$REDIS_PORT" HGET "vd:{$CAMPAIGN}:alloc" "$1" | tr -d '\r'; }

echo "== claims: Guangdong sample, 120,000 members + 30% repeats, $CONC in flight"
load --campaign guangdong-2024 --members 120000 --repeat-share 0.3 --duration 600 --skip-stats

echo "== claims: $(( APPLICANTS < 1000000 ? APPLICANTS : 1000000 )) members claim once each from 1,000,000 packs (every claim a new voucher), $CONC in flight"
write_big_campaign
"$BUILD_DIR/bin/voucherctl" campaigns create "$WORK/big.json" --target "$TARGET" >/dev/null
perf_start claims
load --campaign big --members "$(( APPLICANTS < 1000000 ? APPLICANTS : 1000000 ))" --repeat-share 0 \
  --duration 600 --skip-stats
perf_stop claims "$(( APPLICANTS < 1000000 ? APPLICANTS : 1000000 ))"

# The apply sample, open from now for WINDOW seconds and allocated at its
# close (whole seconds, so the allocation begins at a known moment).
NOW=$(date +%s)
ENDS=$(( NOW + WINDOW ))
python3 - "$WORK/apply.json" "$ENDS" <<'PY'
import datetime, json, sys
ends = datetime.datetime.fromtimestamp(int(sys.argv[2]), datetime.timezone.utc)
text = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
gd = json.load(open("deploy/campaigns/guangdong-apply-2024.json"))
for c in gd["campaigns"]:
    c["startsAt"], c["endsAt"], c["allocationAt"] = "2020-01-01T00:00:00Z", text, text
json.dump(gd, open(sys.argv[1], "w"))
PY
"$BUILD_DIR/bin/voucherctl" campaigns create "$WORK/apply.json" --target "$TARGET" >/dev/null

# Redis's CPU over the allocation: sampled a second before the window
# closes (the applications are over by then) and once the allocation is done.
(
  sleep $(( ENDS - $(date +%s) - 1 > 0 ? ENDS - $(date +%s) - 1 : 0 ))
  C0=$(cpu_total)
  for _ in $(seq 1 6000); do [ "$(alloc state)" = done ] && break; sleep 0.05; done
  echo "$C0 $(cpu_total)" > "$WORK/alloc_cpu"
) &
POLLER=$!
# perf over the applications alone: stopped once the apps hash holds them
# all, or at the window's close; divided by the applications it holds then.
perf_start apply
(
  [ -n "$PERF_PID" ] || exit 0
  held=0
  while [ "$(date +%s)" -lt "$ENDS" ]; do
    held="$(redis-cli -p "$REDIS_PORT" HLEN "vd:{$CAMPAIGN}:apps" | tr -d '\r')"
    [ "${held:-0}" -ge "$APPLICANTS" ] && break
    sleep 0.25
  done
  perf_stop apply "$(( held > 0 ? held : 1 ))"
) &
PERF_WATCH=$!

echo "== applications: $APPLICANTS members to $CAMPAIGN (3 SKUs each), $CONC in flight; window closes in $(( ENDS - $(date +%s) )) s"
load --mode apply --campaign "$CAMPAIGN" --members "$APPLICANTS" --repeat-share 0 \
  --preferences 3 --duration "$WINDOW" --allocation-wait-s 600
wait "$POLLER" || true
wait "$PERF_WATCH" || true

APPS=$(redis-cli -p "$REDIS_PORT" HLEN "vd:{$CAMPAIGN}:apps" | tr -d '\r')
APPS_BYTES=$(redis-cli -p "$REDIS_PORT" MEMORY USAGE "vd:{$CAMPAIGN}:apps" SAMPLES 0 | tr -d '\r')
STARTED=$(alloc started_ms)
DONE=$(alloc done_ms)
read -r C0 C1 < "$WORK/alloc_cpu" || true
LOGGED=$(grep -F "$CAMPAIGN\\\": allocated" "$WORK/server.log" | grep -o '"ms":[0-9]*' |
  cut -d: -f2 || true)
[ "${APPS:-0}" -gt 0 ] || { echo "compare_apply: no application reached Redis" >&2; exit 1; }
awk -v n="$APPS" -v b="$APPS_BYTES" -v s="$STARTED" -v d="$DONE" -v c0="${C0:-0}" \
  -v c1="${C1:-0}" -v logged="${LOGGED:-?}" 'BEGIN {
  printf "redis: %d applications in %.1f MB, %.0f bytes per application (the apps hash)\n",
         n, b / 1e6, b / n
  printf "allocation: %.2f s by Redis (started_ms to done_ms), %s ms as the replica logged it, %.2f s of Redis CPU\n",
         (d - s) / 1000, logged, c1 - c0 }'
redis-cli -p "$REDIS_PORT" INFO memory | tr -d '\r' | grep -E "^used_memory_human" | sed 's/^/  /'
stop_server
[ "$FAILED" = 0 ] || { echo "compare_apply: a voucher-load check failed (above)" >&2; exit 1; }
