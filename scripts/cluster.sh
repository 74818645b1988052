#!/usr/bin/env bash
# cluster.sh — voucherd's production layout on this machine, one command:
# one redis-server (deploy/redis/redis.conf), three voucherd replicas on it
# (--store=redis, one secret, one tokens file, the Guangdong sample with its
# window opened now), HAProxy in front of them as the gRPC load balancer
# (deploy/haproxy/haproxy.cfg, health-checking each replica's /readyz), and
# Prometheus scraping the replicas with deploy/prometheus/prometheus.yml and
# its alerts. Everything listens on 127.0.0.1 only, each on a port picked
# free; everything comes from Debian packages.
#
#   scripts/cluster.sh up       start it; returns once every part really
#                               serves, or fails showing the logs
#   scripts/cluster.sh status   what runs, what HAProxy and Prometheus see
#   scripts/cluster.sh down     stop all it started, remove its state
#
# `up` writes $CLUSTER_DIR/endpoints.json (the addresses) and
# $CLUSTER_DIR/env (the tokens, as voucher-load and voucherctl read them:
# `. build/cluster/env`). docs/operations.md, "A local production cluster",
# describes the layout.
#
# Environment: BUILD_DIR (default build) where the programs are;
# CLUSTER_DIR (default $BUILD_DIR/cluster) the state directory. Relative
# paths are taken from the repository root, as scripts/build.sh does.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
CLUSTER_DIR="${CLUSTER_DIR:-$BUILD_DIR/cluster}"
case "$CLUSTER_DIR" in /*) ;; *) CLUSTER_DIR="$ROOT/$CLUSTER_DIR" ;; esac
CLUSTER_DIR="${CLUSTER_DIR%/}"

CAMPAIGNS="$ROOT/deploy/campaigns/guangdong-2024.json"
REPLICAS=(r1 r2 r3)           # deploy/haproxy/haproxy.cfg has these three servers
MARKER="$CLUSTER_DIR/.voucherd-cluster"
PIDS="$CLUSTER_DIR/pids"      # lines: NAME PID, in start order
LOGS="$CLUSTER_DIR/logs"
# Bounds on every wait (seconds): generous for a busy 2-core machine.
START_WAIT_S="${CLUSTER_START_WAIT_S:-60}"
STOP_WAIT_S=20

say() { echo "cluster: $*"; }
fail() { echo "cluster: $*" >&2; exit 1; }

# ---- processes ---------------------------------------------------------------

# A PID is one of ours while it runs with a path in our state directory on
# its command line (every daemon started here has one), so a PID reused by
# another process after ours ended is never signalled. A zombie is dead.
ours() {
  local pid="$1" state
  [ -r "/proc/$pid/cmdline" ] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [ "$state" != Z ] || return 1
  { tr '\0' '\n' < "/proc/$pid/cmdline"; } 2> /dev/null | grep -qF -- "$CLUSTER_DIR/"
}

# start NAME CMD...: runs CMD in its own session (so it outlives this
# script and a terminal's signals), stdout and stderr to logs/NAME.log.
start() {
  local name="$1"
  shift
  setsid "$@" > "$LOGS/$name.log" 2>&1 < /dev/null &
  local pid=$! tries=0
  echo "$name $pid" >> "$PIDS"
  # Until the child has become CMD (its command line names CLUSTER_DIR),
  # ours() takes it for someone else's: a busy machine may take a while to
  # fork and exec. At most 10 s; a CMD that ended at once is left to the
  # caller's wait_for to report.
  while ! ours "$pid" && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" != Z ] &&
    [ $((tries += 1)) -le 100 ]; do
    sleep 0.1
  done
}

pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$PIDS" 2>/dev/null | tail -n 1; }

# stop NAME...: SIGTERM to each that is ours, then waits for all of them;
# SIGKILL to any still running after STOP_WAIT_S.
stop() {
  local name pid pids=() deadline
  for name in "$@"; do
    pid="$(pid_of "$name")"
    if [ -n "$pid" ] && ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  deadline=$((SECONDS + STOP_WAIT_S))
  for pid in "${pids[@]}"; do
    while ours "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if ours "$pid"; then
      say "process $pid did not stop within ${STOP_WAIT_S}s of SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

running_count() {
  local n=0 name pid
  while read -r name pid; do
    if ours "$pid"; then n=$((n + 1)); fi
  done < "$PIDS"
  echo "$n"
}

show_logs() {
  local f
  for f in "$LOGS"/*.log; do
    [ -e "$f" ] || continue
    echo "----- $(basename "$f") (last 40 lines) -----" >&2
    tail -n 40 "$f" >&2
  done
}

# ---- ports and probes --------------------------------------------------------

# free_ports N: N distinct ports that 127.0.0.1 can bind now, each tried
# with a real bind. Candidates are drawn from 20000-31999, below Linux's
# ephemeral range (32768 and up), where other programs' port-0 binds and
# outgoing connections take their ports; every socket is held until all N
# are found, so the N are distinct. Perl's IO::Socket is in perl-base
# (Essential in Debian).
free_ports() {
  perl -MIO::Socket::INET -e '
    my ($n, @held, @ports) = ($ARGV[0]);
    for (1 .. 2000) {
      last if @ports == $n;
      my $p = 20000 + int(rand(12000));
      my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $p,
                                    Proto => "tcp", Listen => 1, ReuseAddr => 0) or next;
      push @held, $s;
      push @ports, $p;
    }
    die "no free ports\n" unless @ports == $n;
    print "@ports\n";' "$1"
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }
# A replica's ops port past its probes, with the cluster's ops token.
ops_get() {
  curl -sf --max-time 2 -H "Authorization: Bearer $(cat "$CLUSTER_DIR/secrets/ops.token")" "$1"
}

# wait_for WHAT PID CMD...: until CMD succeeds; fails (with the logs) if
# process PID ends first or START_WAIT_S pass.
wait_for() {
  local what="$1" pid="$2" deadline=$((SECONDS + START_WAIT_S))
  shift 2
  until "$@"; do
    if ! ours "$pid"; then fail "$what: the process ended (see its log above)"; fi
    if [ "$SECONDS" -ge "$deadline" ]; then fail "$what: not within ${START_WAIT_S}s"; fi
    sleep 0.2
  done
}

redis_pong() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

replica_serves() {
  local dir="$CLUSTER_DIR/$1" ops status id
  [ -s "$dir/grpc.port" ] && [ -s "$dir/ops.port" ] || return 1
  ops="http://127.0.0.1:$(cat "$dir/ops.port")"
  [ "$(http_code "$ops/readyz")" = 200 ] || return 1
  # Ready means "can serve"; the campaign may still be on its way from the
  # store's registry (up to a second): wait until this replica serves it.
  status="$(ops_get "$ops/status")" || return 1
  for id in $(campaign_ids); do
    jq -e --arg id "$id" 'any(.campaigns[]; .id == $id)' <<< "$status" > /dev/null || return 1
  done
}

campaign_ids() { jq -r '(.campaigns // [.])[].id' "$CAMPAIGNS"; }

# HAProxy's view of the replicas: "r1 UP L7OK" lines, from /stats;csv.
haproxy_servers() {
  curl -s --max-time 2 "http://$(jq -r .haproxy_stats_addr "$CLUSTER_DIR/ports.json")/stats;csv" |
    awk -F, '
      NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
      $1 == "voucherd" && $2 != "BACKEND" { print $2, $col["status"], $col["check_status"] }'
}

haproxy_all_up() {
  local n
  n="$(haproxy_servers | awk '$2 == "UP" && $3 == "L7OK"' | wc -l)"
  [ "$n" -eq "${#REPLICAS[@]}" ]
}

prom_query() {
  curl -s --max-time 5 --get --data-urlencode "query=$2" "$1/api/v1/query"
}

# Prometheus has scraped every replica (up == 1) and HAProxy's exporter.
prometheus_scraped_all() {
  local prom="$1" ready haproxy
  [ "$(http_code "$prom/-/ready")" = 200 ] || return 1
  ready="$(prom_query "$prom" 'count(up{job="voucherd"} == 1)' | jq -r '.data.result[0].value[1] // 0')"
  haproxy="$(prom_query "$prom" 'count(up{job="haproxy"} == 1)' | jq -r '.data.result[0].value[1] // 0')"
  [ "$ready" = "${#REPLICAS[@]}" ] && [ "$haproxy" = 1 ]
}

# ---- up ----------------------------------------------------------------------

need_tools() {
  local missing=0 tool
  for tool in redis-server redis-cli haproxy prometheus promtool jq curl perl setsid; do
    command -v "$tool" > /dev/null || missing=1
  done
  if [ "$missing" = 1 ]; then "$ROOT/scripts/setup.sh"; fi
  local bin
  for bin in voucherd voucher-load voucherctl; do
    if [ ! -x "$BUILD_DIR/bin/$bin" ]; then
      BUILD_DIR="$BUILD_DIR" "$ROOT/scripts/build.sh"
      break
    fi
  done
}

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

make_secrets() {
  local s="$CLUSTER_DIR/secrets" role token
  mkdir -p "$s"
  chmod 700 "$s"
  random_hex 32 > "$s/secret.hex"
  : > "$s/tokens"
  # One token per role: the members' app backend, an administrator, and
  # the front desk of site-001 (the sample's first site).
  for role in app admin site:site-001; do
    token="$(random_hex 24)"
    printf '%s\n' "$token" > "$s/${role#site:}.token"
    printf 'sha256:%s %s\n' "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)" "$role" >> "$s/tokens"
  done
  # The ops ports ask for a token too (all but /healthz and /readyz):
  # Prometheus scrapes with it, and `up` reads each /status with it.
  token="$(random_hex 24)"
  printf '%s\n' "$token" > "$s/ops.token"
  printf 'sha256:%s prometheus\n' "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)" \
    > "$s/ops-tokens"
  chmod 600 "$s"/*
  {
    echo "# scripts/cluster.sh: the local cluster's addresses and tokens. Source it."
    echo "export VOUCHERD_TARGET=127.0.0.1:$LB_PORT"
    echo "export VOUCHERCTL_TARGET=127.0.0.1:$LB_PORT"
    echo "export VOUCHER_LOAD_TOKEN=$(cat "$s/app.token")"
    echo "export VOUCHER_LOAD_ADMIN_TOKEN=$(cat "$s/admin.token")"
    echo "export VOUCHER_LOAD_SITE_TOKEN=$(cat "$s/site-001.token")"
    echo "export VOUCHERCTL_TOKEN=$(cat "$s/admin.token")"
    echo "export VOUCHERD_OPS_TOKEN=$(cat "$s/ops.token")"
  } > "$CLUSTER_DIR/env"
  chmod 600 "$CLUSTER_DIR/env"
}

start_replicas() {
  local r args
  for r in "${REPLICAS[@]}"; do
    mkdir -p "$CLUSTER_DIR/$r"
    args=(--store redis --redis "redis://127.0.0.1:$REDIS_PORT"
      --secret-file "$CLUSTER_DIR/secrets/secret.hex" --auth-file "$CLUSTER_DIR/secrets/tokens"
      --listen 127.0.0.1:0 --port-file "$CLUSTER_DIR/$r/grpc.port"
      --ops-listen 127.0.0.1:0 --ops-port-file "$CLUSTER_DIR/$r/ops.port"
      --ops-auth-file "$CLUSTER_DIR/secrets/ops-tokens"
      --replica-id "$r")
    # The first replica puts the campaign in the store, its window opened
    # now; the others serve it from the store's registry, as replicas
    # started without --campaigns do (a second --rehearse would be a
    # different definition of an open campaign, which the store refuses).
    if [ "$r" = r1 ]; then args+=(--campaigns "$CAMPAIGNS" --rehearse); fi
    start "$r" "$BUILD_DIR/bin/voucherd" "${args[@]}"
  done
  for r in "${REPLICAS[@]}"; do
    wait_for "voucherd $r ready and serving $(campaign_ids | tr '\n' ' ')" "$(pid_of "$r")" \
      replica_serves "$r"
  done
}

start_haproxy() {
  local i=0 r envs=()
  for r in "${REPLICAS[@]}"; do
    i=$((i + 1))
    envs+=("VOUCHERD_R${i}_GRPC=127.0.0.1:$(cat "$CLUSTER_DIR/$r/grpc.port")"
      "VOUCHERD_R${i}_OPS_PORT=$(cat "$CLUSTER_DIR/$r/ops.port")")
  done
  mkdir -p "$CLUSTER_DIR/haproxy"
  envs+=("VOUCHERD_LB_GRPC=127.0.0.1:$LB_PORT" "VOUCHERD_LB_STATS=127.0.0.1:$STATS_PORT")
  printf '%s\n' "${envs[@]}" > "$CLUSTER_DIR/haproxy/env"
  env "${envs[@]}" haproxy -c -q -f "$ROOT/deploy/haproxy/haproxy.cfg" ||
    fail "haproxy refuses deploy/haproxy/haproxy.cfg"
  # -db: in the foreground of its own session, logging to stderr.
  start haproxy env "${envs[@]}" haproxy -db -f "$ROOT/deploy/haproxy/haproxy.cfg" \
    -p "$CLUSTER_DIR/haproxy/haproxy.pid"
  wait_for "HAProxy sees all ${#REPLICAS[@]} replicas UP" "$(pid_of haproxy)" haproxy_all_up
}

start_prometheus() {
  local p="$CLUSTER_DIR/prometheus" r
  mkdir -p "$p/targets" "$p/data"
  # The checked-in files, unchanged; the targets next to them.
  cp "$ROOT/deploy/prometheus/prometheus.yml" "$ROOT/deploy/prometheus/alerts.yml" "$p/"
  install -m 600 "$CLUSTER_DIR/secrets/ops.token" "$p/voucherd-ops.token"
  for r in "${REPLICAS[@]}"; do
    jq -n --arg t "127.0.0.1:$(cat "$CLUSTER_DIR/$r/ops.port")" --arg r "$r" \
      '{targets: [$t], labels: {replica: $r}}'
  done | jq -s . > "$p/targets/voucherd.json"
  jq -n --arg t "127.0.0.1:$STATS_PORT" '[{targets: [$t]}]' > "$p/targets/haproxy.json"
  promtool check config "$p/prometheus.yml" > "$LOGS/promtool.log" 2>&1 ||
    { cat "$LOGS/promtool.log" >&2; fail "promtool refuses deploy/prometheus/prometheus.yml"; }
  start prometheus prometheus --config.file="$p/prometheus.yml" --storage.tsdb.path="$p/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --storage.tsdb.retention.time=1d
  wait_for "Prometheus has scraped all ${#REPLICAS[@]} replicas (up == 1) and HAProxy" \
    "$(pid_of prometheus)" prometheus_scraped_all "http://127.0.0.1:$PROM_PORT"
}

write_endpoints() {
  local r replicas=()
  for r in "${REPLICAS[@]}"; do
    replicas+=("$(jq -n --arg g "127.0.0.1:$(cat "$CLUSTER_DIR/$r/grpc.port")" \
      --arg o "http://127.0.0.1:$(cat "$CLUSTER_DIR/$r/ops.port")" --arg n "$r" \
      '{name: $n, grpc: $g, ops: $o}')")
  done
  printf '%s\n' "${replicas[@]}" | jq -s \
    --arg grpc "127.0.0.1:$LB_PORT" --arg prom "http://127.0.0.1:$PROM_PORT" \
    --arg redis "redis://127.0.0.1:$REDIS_PORT" --arg stats "http://127.0.0.1:$STATS_PORT/stats" \
    --arg env "$CLUSTER_DIR/env" \
    '{grpc: $grpc, prometheus: $prom, redis: $redis, replicas: ., haproxy_stats: $stats, env: $env}' \
    > "$CLUSTER_DIR/endpoints.json.tmp"
  mv "$CLUSTER_DIR/endpoints.json.tmp" "$CLUSTER_DIR/endpoints.json"
}

describe() {
  local e="$CLUSTER_DIR/endpoints.json"
  echo "voucherd cluster on 127.0.0.1 (state in $CLUSTER_DIR):"
  echo "  gRPC, through HAProxy:  $(jq -r .grpc "$e")   (HAProxy's stats: $(jq -r .haproxy_stats "$e"))"
  jq -r '.replicas[] | "  replica \(.name):             gRPC \(.grpc), ops \(.ops)"' "$e"
  echo "  Redis:                  $(jq -r .redis "$e")"
  echo "  Prometheus:             $(jq -r .prometheus "$e")"
  echo "  tokens:                 . $(jq -r .env "$e")   (VOUCHER_LOAD_TOKEN, VOUCHER_LOAD_ADMIN_TOKEN, ...)"
  echo "  the same as JSON:       $e"
}

cmd_up() {
  if [ -e "$PIDS" ]; then
    local total running
    total="$(wc -l < "$PIDS")"
    running="$(running_count)"
    if [ "$running" -eq "$total" ] && [ -s "$CLUSTER_DIR/endpoints.json" ]; then
      say "already up; 'scripts/cluster.sh down' stops it"
      describe
      return 0
    fi
    if [ "$running" -gt 0 ]; then
      fail "not fully up ($running of $total processes run, in $CLUSTER_DIR): another 'up' may be starting it; else run 'scripts/cluster.sh down' first"
    fi
    say "a cluster that is no longer running left its state in $CLUSTER_DIR; removing it"
    remove_state
  fi
  if [ -d "$CLUSTER_DIR" ] && [ -n "$(ls -A "$CLUSTER_DIR")" ] && [ ! -e "$MARKER" ]; then
    fail "$CLUSTER_DIR is not empty and not a cluster's state directory: choose another CLUSTER_DIR"
  fi
  need_tools
  mkdir -p "$CLUSTER_DIR" "$LOGS"
  : > "$MARKER"
  : > "$PIDS"
  # From here, a failure shows the logs and stops what was started.
  # So does a signal: Ctrl-C, a kill, or stdout's reader gone (SIGPIPE),
  # which would otherwise end bash without its EXIT trap. (On stderr, as
  # stdout may be that pipe.)
  trap 'status=$?; if [ "$status" -ne 0 ]; then { show_logs; say "up failed; stopping what it started"; stop_all; remove_state; } >&2; fi' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  trap 'exit 141' PIPE

  local ports
  ports="$(free_ports 4)" || fail "cannot find 4 free ports on 127.0.0.1"
  read -r REDIS_PORT LB_PORT STATS_PORT PROM_PORT <<< "$ports"
  jq -n --arg s "127.0.0.1:$STATS_PORT" '{haproxy_stats_addr: $s}' > "$CLUSTER_DIR/ports.json"
  make_secrets

  mkdir -p "$CLUSTER_DIR/redis"
  # deploy/redis/redis.conf as in production (AOF, appendfsync always, no
  # eviction); the command line overrides where it listens and writes.
  # --set-proc-title no keeps the command line (with our state directory)
  # for ours().
  start redis redis-server "$ROOT/deploy/redis/redis.conf" --port "$REDIS_PORT" \
    --bind 127.0.0.1 --dir "$CLUSTER_DIR/redis" --daemonize no --set-proc-title no
  wait_for "redis-server answers PING" "$(pid_of redis)" redis_pong "$REDIS_PORT"
  say "redis-server up on 127.0.0.1:$REDIS_PORT"

  start_replicas
  say "${#REPLICAS[@]} voucherd replicas ready, serving $(campaign_ids | tr '\n' ' ')"
  start_haproxy
  say "HAProxy on 127.0.0.1:$LB_PORT sees all ${#REPLICAS[@]} replicas UP"
  start_prometheus
  say "Prometheus on 127.0.0.1:$PROM_PORT has scraped every replica"
  write_endpoints
  trap - EXIT INT TERM HUP PIPE
  describe
}

# ---- down --------------------------------------------------------------------

stop_all() {
  [ -e "$PIDS" ] || return 0
  # Front to back: nothing new reaches a replica once HAProxy is gone, and
  # Redis stays until the replicas have drained and handed their leases back.
  stop prometheus
  stop haproxy
  stop "${REPLICAS[@]}"
  stop redis
}

# Only what `up` creates, so a CLUSTER_DIR pointed at the wrong place loses
# nothing else; the directory itself goes if that leaves it empty.
remove_state() {
  rm -rf "${CLUSTER_DIR:?}/"{redis,prometheus,haproxy,secrets,logs,r1,r2,r3}
  rm -f "${CLUSTER_DIR:?}/"{endpoints.json,endpoints.json.tmp,env,ports.json,pids}
  rm -f "$MARKER"
  rmdir "$CLUSTER_DIR" 2> /dev/null || true
}

cmd_down() {
  if [ ! -e "$MARKER" ]; then
    say "nothing runs (no cluster state in $CLUSTER_DIR)"
    return 0
  fi
  local running=0
  if [ -e "$PIDS" ]; then running="$(running_count)"; fi
  stop_all
  remove_state
  say "stopped $running processes; removed $CLUSTER_DIR"
}

# ---- status ------------------------------------------------------------------

cmd_status() {
  if [ ! -e "$PIDS" ]; then
    say "not running (no cluster state in $CLUSTER_DIR)"
    return 3
  fi
  local ok=0 name pid r code
  echo "processes:"
  while read -r name pid; do
    if ours "$pid"; then
      echo "  $name pid $pid: running"
    else
      echo "  $name pid $pid: NOT running"
      ok=1
    fi
  done < "$PIDS"
  if [ ! -s "$CLUSTER_DIR/endpoints.json" ]; then
    say "not (yet) up: no endpoints.json"
    return 1
  fi
  echo "replicas (/readyz):"
  for r in "${REPLICAS[@]}"; do
    code="$(http_code "http://127.0.0.1:$(cat "$CLUSTER_DIR/$r/ops.port")/readyz")"
    echo "  $r: $code"
    [ "$code" = 200 ] || ok=1
  done
  echo "HAProxy's view (server status last-check):"
  { haproxy_servers | sed 's/^/  /'; } || true
  haproxy_all_up || ok=1
  echo "Prometheus targets (job instance health):"
  curl -s --max-time 2 "$(jq -r .prometheus "$CLUSTER_DIR/endpoints.json")/api/v1/targets" |
    jq -r '.data.activeTargets[] | "  \(.labels.job) \(.labels.instance) \(.health)"' ||
    { echo "  (Prometheus does not answer)"; ok=1; }
  describe
  return "$ok"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    echo "usage: scripts/cluster.sh up|status|down   (BUILD_DIR, CLUSTER_DIR: see the script's header)" >&2
    exit 2
    ;;
esac
