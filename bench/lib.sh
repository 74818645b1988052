# bench/lib.sh — what bench/compare.sh, bench/compare_front.sh and bench/process_memory.sh share,
# sourced after cd to the repository and BUILD_DIR set: a work directory
# removed on exit with every process started here, a fresh MAC secret, the
# Guangdong sample with its window open for the whole run ($WORK/gd.json),
# a campaign of 1,000,000 packs on demand (write_big_campaign),
# and starting and stopping a server (voucherd, echo-server) and a fresh
# redis-server (AOF, appendfsync always) on 127.0.0.1.
BENCH_NAME="$(basename "$0" .sh)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

require_binaries() {  # names in $BUILD_DIR/bin
  local bin
  for bin in "$@"; do
    [ -x "$BUILD_DIR/bin/$bin" ] || { echo "$BENCH_NAME: $BUILD_DIR/bin/$bin is missing; run scripts/build.sh" >&2; exit 2; }
  done
}

od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$WORK/secret.hex"
sed 's/"startsAt": "2024-06-18T02:00:00Z"/"startsAt": "2020-01-01T00:00:00Z"/; s/"endsAt": "2024-12-31T16:00:00Z"/"endsAt": "2099-01-01T00:00:00Z"/' \
  deploy/campaigns/guangdong-2024.json > "$WORK/gd.json"
REDIS_PORT=$(( 20000 + RANDOM % 20000 ))

# $WORK/big.json: campaign "big", 1,000,000 packs (10 SKUs of 100,000 at one
# site), open for the whole run.
write_big_campaign() {
  {
    printf '{"campaigns":[{"id":"big","name":"Big","mode":"CAMPAIGN_MODE_FIRST_COME","startsAt":"2020-01-01T00:00:00Z",'
    printf '"endsAt":"2099-01-01T00:00:00Z","sites":[{"id":"s1","name":"Spring","city":"Qingyuan","kind":"SKU_KIND_HOT_SPRING"}],"skus":['
    for i in 0 1 2 3 4 5 6 7 8 9; do
      [ "$i" = 0 ] || printf ','
      printf '{"id":"k%s","siteId":"s1","kind":"SKU_KIND_HOT_SPRING","name":"T","faceValueCents":"100","stock":"100000"}' "$i"
    done
    printf ']}]}\n'
  } > "$WORK/big.json"
}

SERVER_PID=""
start_server() {  # binary args...: starts it with --port-file, waits for the port ($PORT)
  rm -f "$WORK/port"
  "$@" --port-file "$WORK/port" 2>>"$WORK/server.log" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 200); do [ -s "$WORK/port" ] && break; sleep 0.05; done
  [ -s "$WORK/port" ] || { cat "$WORK/server.log"; echo "$BENCH_NAME: server did not start" >&2; exit 1; }
  sleep 0.3
  PORT="$(cat "$WORK/port")"
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }

REDIS_PID=""
start_redis() {  # a fresh redis-server on $REDIS_PORT, AOF with appendfsync always
  rm -rf "$WORK/redis" && mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" --appendonly yes \
    --appendfsync always --maxmemory-policy noeviction --daemonize no --logfile "$WORK/redis/log" &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.05; done
}
stop_redis() { kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; }
