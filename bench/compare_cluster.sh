#!/usr/bin/env bash
# Side by side, in one run: CAMPAIGNS first-come campaigns (default six,
# each with its own stock) sold at once by the same crowd, against
#   (a) voucherd on ONE redis-server, and
#   (b) voucherd on a Redis Cluster of PRIMARIES primaries (default three,
#       no replicas), through --redis-cluster.
# Every Redis server has the AOF on (appendfsync FSYNC, default always), as
# in compare_stores.sh. Both runs use the same voucherd replicas and threads,
# the same campaign ids and the same voucher-load crowds: one voucher-load
# process per campaign, all started together.
#
# For each run it prints, per campaign and over all of them: calls/s,
# vouchers issued/s, sell-out time and p50/p99 (voucher-load's own figures);
# and per Redis primary: the campaigns it holds (found by EXISTS
# vd:{<campaign>}:def on each node), the vouchers issued there, its CPU over
# the storm (INFO cpu, used_cpu_user + used_cpu_sys, after - before) per
# voucher, and commands per voucher (INFO commandstats); then the total.
#
# The campaign ids are chosen so that they spread evenly over the cluster's
# primaries (CLUSTER KEYSLOT and each node's own slot ranges); the one-server
# run uses the same ids.
#
#   bench/compare_cluster.sh [members per campaign] [calls in flight per campaign]
#   PRIMARIES=3 CAMPAIGNS=6 STOCK=10000 bench/compare_cluster.sh 13000 16
#
# Settings (environment): PRIMARIES (>= 3, what redis-cli --cluster create
# accepts; default 3), CAMPAIGNS (6), STOCK (packs per campaign, 10000), SKUS
# (SKUs per campaign, 10), REPLICAS (voucherd replicas, 1; the campaigns'
# crowds are dealt to them in turn), GRPC_THREADS (per replica, 2), THREADS
# (client threads per voucher-load, 1), REPEAT_SHARE (0.3), DURATION (seconds
# a voucher-load may send, 120), FSYNC (always), BUILD_DIR (build), KEEP=1
# keeps the work directory (logs, voucher-load's JSON) and prints its path.
#
# Loopback only; free ports picked at random; every run is bounded by its
# crowd (--members) and by time (--duration, and a hard timeout around each
# voucher-load); every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS="${1:-13000}"
CONC="${2:-16}"
PRIMARIES="${PRIMARIES:-3}"
CAMPAIGNS="${CAMPAIGNS:-6}"
STOCK="${STOCK:-10000}"
SKUS="${SKUS:-10}"
REPLICAS="${REPLICAS:-1}"
GRPC_THREADS="${GRPC_THREADS:-2}"
THREADS="${THREADS:-1}"
REPEAT_SHARE="${REPEAT_SHARE:-0.3}"
DURATION="${DURATION:-120}"
FSYNC="${FSYNC:-always}"
BUILD_DIR="${BUILD_DIR:-build}"
VOUCHERD="$BUILD_DIR/bin/voucherd"
LOAD="$BUILD_DIR/bin/voucher-load"

die() { echo "compare_cluster: $*" >&2; exit 2; }
for bin in "$VOUCHERD" "$LOAD"; do [ -x "$bin" ] || die "$bin is missing; run scripts/build.sh"; done
for tool in redis-server redis-cli jq ss timeout; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/setup.sh)"
done
[ "$PRIMARIES" -ge 3 ] || die "PRIMARIES must be >= 3 (redis-cli --cluster create needs three)"
[ "$CAMPAIGNS" -ge 1 ] || die "CAMPAIGNS must be >= 1"
[ "$REPLICAS" -ge 1 ] || die "REPLICAS must be >= 1"
[ "$STOCK" -ge "$SKUS" ] || die "STOCK must be at least SKUS"

WORK="$(mktemp -d)"
PIDS=()  # every process started here, stopped on exit
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
forget_pid() {  # PID: stopped already, no need to stop it on exit
  local kept=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}
stop() {  # PID...: SIGTERM, then wait for each
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; forget_pid "$p"; done
}

# ---- free loopback ports, never the same one twice in a run ----
TAKEN=" "
free_port() {  # VAR: sets VAR to a port nobody uses on this host now
  local p
  for _ in $(seq 1 500); do
    p=$(( 20000 + RANDOM % 40000 ))
    case "$TAKEN" in *" $p "*) continue ;; esac
    if [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; then
      TAKEN+="$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  die "no free loopback port found"
}

# ---- Redis ----
rcli() { local port="$1"; shift; redis-cli -h 127.0.0.1 -p "$port" "$@" | tr -d '\r'; }
start_redis() {  # DIR PORT [redis-server flags...]: starts it, waits for PING
  local dir="$1" port="$2"
  shift 2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly yes \
    --appendfsync "$FSYNC" --maxmemory-policy noeviction --daemonize no --logfile "$dir/log" "$@" &
  PIDS+=("$!")
  for _ in $(seq 1 200); do
    [ "$(rcli "$port" PING 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  cat "$dir/log" >&2
  die "redis-server on port $port did not start"
}
cpu_s() { rcli "$1" INFO cpu | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'; }
commands() { rcli "$1" INFO commandstats | awk -F'[:=,]' '/^cmdstat_/ {s += $3} END {print s + 0}'; }

# ---- the cluster: made first, because the campaign ids are chosen on it ----
CLUSTER_PORTS=()
CLUSTER_PIDS=()
SEEDS=""
port="" bus="" single_port=""  # set by free_port
for i in $(seq 1 "$PRIMARIES"); do
  free_port port
  free_port bus  # Redis 7 takes the bus port from cluster-port; port + 10000 may be taken
  start_redis "$WORK/cluster/node$i" "$port" --cluster-enabled yes --cluster-port "$bus" \
    --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --cluster-require-full-coverage no
  CLUSTER_PORTS+=("$port")
  CLUSTER_PIDS+=("${PIDS[-1]}")
  SEEDS+="${SEEDS:+,}127.0.0.1:$port"
done
create=(redis-cli --cluster create)
for p in "${CLUSTER_PORTS[@]}"; do create+=("127.0.0.1:$p"); done
timeout 60 "${create[@]}" --cluster-replicas 0 --cluster-yes >"$WORK/cluster-create.log" 2>&1 ||
  { cat "$WORK/cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
cluster_ok() {
  local p info
  for p in "${CLUSTER_PORTS[@]}"; do
    info="$(rcli "$p" CLUSTER INFO 2>/dev/null)" || return 1
    grep -qx "cluster_state:ok" <<<"$info" || return 1
    grep -qx "cluster_slots_ok:16384" <<<"$info" || return 1
    grep -qx "cluster_known_nodes:$PRIMARIES" <<<"$info" || return 1
  done
}
for _ in $(seq 1 300); do cluster_ok && break; sleep 0.1; done
cluster_ok || die "the cluster did not reach cluster_state:ok"

owner_of_slot() {  # SLOT: prints the port of the primary that serves it
  local p
  for p in "${CLUSTER_PORTS[@]}"; do
    # CLUSTER NODES, the "myself" line: fields 9.. are this node's slots, "a-b" or "a".
    if rcli "$p" CLUSTER NODES | awk -v s="$1" '$3 ~ /myself/ {
         for (i = 9; i <= NF; i++) { n = split($i, r, "-"); if (n == 1) r[2] = r[1];
           if (r[1] ~ /^[0-9]+$/ && s >= r[1] && s <= r[2]) found = 1 }
       } END { exit found ? 0 : 1 }'; then
      echo "$p"
      return 0
    fi
  done
  die "no primary serves slot $1"
}

# Campaign ids cmp-1, cmp-2, ... taken in order while their primary holds
# fewer than its share, so that CAMPAIGNS spread over PRIMARIES evenly.
share=$(( (CAMPAIGNS + PRIMARIES - 1) / PRIMARIES ))
declare -A HELD=()
IDS=()
for n in $(seq 1 2000); do
  [ "${#IDS[@]}" -lt "$CAMPAIGNS" ] || break
  slot="$(rcli "${CLUSTER_PORTS[0]}" CLUSTER KEYSLOT "vd:{cmp-$n}:def")"
  owner="$(owner_of_slot "$slot")"
  [ "${HELD[$owner]:-0}" -lt "$share" ] || continue
  HELD[$owner]=$(( ${HELD[$owner]:-0} + 1 ))
  IDS+=("cmp-$n")
done
[ "${#IDS[@]}" -eq "$CAMPAIGNS" ] || die "could not find $CAMPAIGNS ids that spread"

# ---- the campaigns: one file, each campaign with its own stock, open now ----
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$WORK/secret.hex"
{
  printf '{"campaigns":['
  first=1
  for id in "${IDS[@]}"; do
    [ "$first" = 1 ] || printf ','
    first=0
    printf '{"id":"%s","name":"Bench %s","mode":"CAMPAIGN_MODE_FIRST_COME","perMemberLimit":1,' "$id" "$id"
    printf '"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z",'
    printf '"sites":[{"id":"s1","name":"Spring","city":"Qingyuan","kind":"SKU_KIND_HOT_SPRING"}],"skus":['
    for k in $(seq 0 $((SKUS - 1))); do
      [ "$k" = 0 ] || printf ','
      printf '{"id":"k%d","siteId":"s1","kind":"SKU_KIND_HOT_SPRING","name":"Pass","faceValueCents":"9800","stock":"%d"}' \
        "$k" $(( STOCK / SKUS + (k < STOCK % SKUS ? 1 : 0) ))
    done
    printf ']}'
  done
  printf ']}\n'
} >"$WORK/campaigns.json"

table() {  # tab-separated lines in, aligned columns out (two spaces in)
  awk -F'\t' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }
                 if (NF > nf) nf = NF; n = NR }
       END { for (r = 1; r <= n; r++) { line = " "
               for (i = 1; i <= nf; i++) line = line sprintf(" %-" w[i] "s", c[r, i])
               sub(/ +$/, "", line); print line } }'
}

# ---- voucherd ----
ready() {  # OPS_PORT: true when /readyz answers 200
  local line
  line="$( (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 &&
            IFS= read -r -t 2 line <&3 && echo "$line") 2>/dev/null)" || return 1
  [[ "$line" == *" 200"* ]]
}
VPIDS=()
TARGETS=()
start_voucherds() {  # LABEL store flags...: REPLICAS replicas, one after the other, each ready
  local label="$1" r dir
  shift
  VPIDS=()
  TARGETS=()
  for r in $(seq 1 "$REPLICAS"); do
    dir="$WORK/$label/voucherd$r"
    mkdir -p "$dir"
    "$VOUCHERD" --listen 127.0.0.1:0 --port-file "$dir/port" --ops-listen 127.0.0.1:0 \
      --ops-port-file "$dir/ops-port" --campaigns "$WORK/campaigns.json" \
      --secret-file "$WORK/secret.hex" --grpc-threads "$GRPC_THREADS" --store redis "$@" \
      2>"$dir/log" &
    PIDS+=("$!")
    VPIDS+=("$!")
    for _ in $(seq 1 600); do
      [ -s "$dir/port" ] && [ -s "$dir/ops-port" ] && ready "$(cat "$dir/ops-port")" && break
      sleep 0.05
    done
    ready "$(cat "$dir/ops-port" 2>/dev/null || echo 1)" ||
      { tail -20 "$dir/log" >&2; die "voucherd replica $r ($label) did not become ready"; }
    TARGETS+=("127.0.0.1:$(cat "$dir/port")")
  done
}

# run LABEL TITLE "PORT..." voucherd-flags...: one storm of every campaign at
# once against fresh voucherd replicas on the Redis primaries PORT...
run() {
  local label="$1" title="$2" ports p i id rc n
  read -r -a ports <<<"$3"
  shift 3
  start_voucherds "$label" "$@"
  declare -A cpu0=()
  for p in "${ports[@]}"; do
    rcli "$p" CONFIG RESETSTAT >/dev/null
    cpu0[$p]="$(cpu_s "$p")"
  done
  local loads=()
  for i in "${!IDS[@]}"; do
    id="${IDS[$i]}"
    timeout -k 5 $(( DURATION + 60 )) "$LOAD" --target "${TARGETS[$(( i % REPLICAS ))]}" \
      --campaign "$id" --members "$MEMBERS" --repeat-share "$REPEAT_SHARE" --seed "$(( i + 1 ))" \
      --concurrency "$CONC" --threads "$THREADS" --max-retries 200 --duration "$DURATION" \
      --skip-stats --expect-stock "$STOCK" --json "$WORK/$label/$id.json" \
      >"$WORK/$label/$id.txt" 2>&1 &
    PIDS+=("$!")
    loads+=("$!")
  done
  local failed=0
  for p in "${loads[@]}"; do
    rc=0
    wait "$p" || rc=$?
    forget_pid "$p"
    [ "$rc" = 0 ] || failed=$(( failed + 1 ))
  done
  # Where each campaign lives, and what it issued there.
  declare -A node_of=() issued_on=() campaigns_on=()
  for p in "${ports[@]}"; do
    # The campaign registry, which every replica reads every 200 ms, lives on one primary.
    if [ "$(rcli "$p" EXISTS 'vd:{registry}:campaigns')" = 1 ]; then campaigns_on[$p]="registry"; fi
  done
  for id in "${IDS[@]}"; do
    for p in "${ports[@]}"; do
      if [ "$(rcli "$p" EXISTS "vd:{$id}:def")" = 1 ]; then
        node_of[$id]="$p"
        n="$(rcli "$p" HGET "vd:{$id}:issued" _members)"
        issued_on[$p]=$(( ${issued_on[$p]:-0} + ${n:-0} ))
        campaigns_on[$p]+="${campaigns_on[$p]:+ }$id"
      fi
    done
  done
  echo
  echo "== $title: $REPLICAS voucherd replica(s) x $GRPC_THREADS gRPC threads; $CAMPAIGNS campaigns x $STOCK packs;" \
       "$MEMBERS members + $(awk -v s="$REPEAT_SHARE" 'BEGIN {print s * 100}')% repeats, $CONC calls in flight per campaign"
  {
    printf 'campaign\tprimary\tcalls\tcalls/s\tissued\tsold_out_s\tp50_ms\tp99_ms\tretried\tcheck\n'
    for id in "${IDS[@]}"; do
      if [ -s "$WORK/$label/$id.json" ]; then
        jq -r --arg id "$id" --arg node "${node_of[$id]:-?}" '
          [ $id, $node, ([.phases[].calls] | add),
            ((([.phases[].calls] | add) / ([.phases[].elapsed_s] | add)) | floor),
            ([.phases[].issued] | add), (.phases[0].sellout_s * 100 | round / 100),
            (.phases[0].latency_ms.p50 * 1000 | round / 1000),
            (.phases[0].latency_ms.p99 * 1000 | round / 1000),
            ([.phases[].retries] | add), (if .check.ok then "passed" else "FAILED" end) ] | @tsv' \
          "$WORK/$label/$id.json"
      else
        printf '%s\t%s\t-\t-\t-\t-\t-\t-\t-\tNO REPORT: %s\n' "$id" "${node_of[$id]:-?}" \
          "$(tail -1 "$WORK/$label/$id.txt" | tr '\t' ' ')"
      fi
    done
  } | table
  # Over all campaigns: they ran at once, so the span is the longest run.
  # p50 and p99 are per campaign (voucher-load's histograms are not merged):
  # the median of the campaigns' p50s, and the worst p99.
  jq -s -r '
    def med: sort | if length % 2 == 1 then .[length / 2 | floor]
                    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    ([.[].phases[].calls] | add) as $calls | ([.[].phases[].issued] | add) as $issued
    | ([.[] | [.phases[].elapsed_s] | add] | max) as $span
    | ([.[].phases[0].sellout_s] | max) as $sold
    | [ $calls, $span, ($calls / $span), $issued, ($issued / $span),
        (if ([.[].phases[0].sellout_s] | min) >= 0 then $sold else -1 end),
        ([.[].phases[0].latency_ms.p50] | med), ([.[].phases[0].latency_ms.p99] | max) ] | @tsv' \
    "$WORK/$label"/*.json >"$WORK/$label/all.tsv"
  read -r calls span calls_s issued issued_s sold p50 p99 <"$WORK/$label/all.tsv"
  awk -v calls="$calls" -v span="$span" -v cs="$calls_s" -v n="$issued" -v ns="$issued_s" \
      -v sold="$sold" -v p50="$p50" -v p99="$p99" -v k="$CAMPAIGNS" 'BEGIN {
    printf "  all %d campaigns: %d calls in %.2f s = %.0f calls/s; %d vouchers issued = %.0f vouchers/s", k, calls, span, cs, n, ns
    if (sold >= 0) printf "; all sold out after %.2f s", sold; else printf "; NOT all sold out"
    printf "\n  latency: p50 %.3f ms (median of the campaigns), p99 %.3f ms (worst campaign)\n", p50, p99 }'
  [ "$failed" = 0 ] || echo "  WARNING: $failed voucher-load run(s) failed (see the table; KEEP=1 keeps their output)"
  # Redis CPU per voucher, per primary and in total: from the replicas ready
  # to the last voucher-load's exit (their lease calls and beats included).
  local cpu_total=0 issued_total=0 cpu busiest=0
  for p in "${ports[@]}"; do
    cpu="$(awk -v a="${cpu0[$p]}" -v b="$(cpu_s "$p")" 'BEGIN {printf "%.3f", b - a}')"
    awk -v p="$p" -v c="$cpu" -v n="${issued_on[$p]:-0}" -v cmds="$(commands "$p")" \
        -v ids="${campaigns_on[$p]:-none}" 'BEGIN {
      printf "  redis %s: %.3f s CPU, %d vouchers", p, c, n
      if (n > 0) printf ", %.1f us CPU per voucher, %.2f commands per voucher", c * 1e6 / n, cmds / n
      printf "  [%s]\n", ids }'
    cpu_total="$(awk -v a="$cpu_total" -v b="$cpu" 'BEGIN {print a + b}')"
    issued_total=$(( issued_total + ${issued_on[$p]:-0} ))
    busiest="$(awk -v a="$busiest" -v c="$cpu" -v n="${issued_on[$p]:-0}" \
               'BEGIN {v = 0; if (n > 0) v = c * 1e6 / n; if (v > a) a = v; print a}')"
  done
  awk -v c="$cpu_total" -v n="$issued_total" -v k="${#ports[@]}" 'BEGIN {
    printf "  redis total over %d primar%s: %.3f s CPU, %d vouchers, %.1f us CPU per voucher\n",
           k, (k == 1 ? "y" : "ies"), c, n, (n > 0 ? c * 1e6 / n : 0) }'
  [ "$issued_total" = "$issued" ] ||
    echo "  WARNING: Redis holds $issued_total vouchers, voucher-load saw $issued issued"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$title" "$calls_s" "$issued_s" "$sold" "$p50" "$p99" \
    "$(awk -v c="$cpu_total" -v n="$issued_total" 'BEGIN {v = 0; if (n > 0) v = c * 1e6 / n; print v}')" \
    "$busiest" >>"$WORK/summary.tsv"
  stop "${VPIDS[@]}"
}

echo "compare_cluster: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
echo "campaigns and where the cluster keeps them (CLUSTER KEYSLOT):"
for id in "${IDS[@]}"; do
  slot="$(rcli "${CLUSTER_PORTS[0]}" CLUSTER KEYSLOT "vd:{$id}:def")"
  echo "  $id: slot $slot on primary $(owner_of_slot "$slot")"
done

free_port single_port
start_redis "$WORK/single" "$single_port"
single_pid="${PIDS[-1]}"
run single "one redis-server" "$single_port" --redis "redis://127.0.0.1:$single_port"
stop "$single_pid"

run cluster "cluster of $PRIMARIES primaries" "${CLUSTER_PORTS[*]}" --redis-cluster "$SEEDS"
stop "${CLUSTER_PIDS[@]}"

echo
echo "== side by side (cluster / one is the ratio of the two runs above)"
awk -F'\t' '
  { t[NR] = $1; for (i = 2; i <= 8; i++) v[NR, i] = $i }
  END {
    printf "  %-24s %10s %11s %9s %8s %8s %14s %14s\n", "", "calls/s", "vouchers/s", "sold out", "p50 ms",
           "p99 ms", "Redis us/vch", "worst prim."
    for (r = 1; r <= NR; r++)
      printf "  %-24s %10.0f %11.0f %9s %8.3f %8.3f %14.1f %14.1f\n", t[r], v[r, 2], v[r, 3],
             (v[r, 4] >= 0 ? sprintf("%.2f s", v[r, 4]) : "no"), v[r, 5], v[r, 6], v[r, 7], v[r, 8]
    if (NR == 2) {
      printf "  %-24s %10.2f %11.2f %9s %8.2f %8.2f %14.2f %14.2f\n", "cluster / one",
             v[2, 2] / v[1, 2], v[2, 3] / v[1, 3], "", v[2, 5] / v[1, 5], v[2, 6] / v[1, 6],
             (v[1, 7] > 0 ? v[2, 7] / v[1, 7] : 0), (v[1, 8] > 0 ? v[2, 8] / v[1, 8] : 0)
    }
  }' "$WORK/summary.tsv"
echo "  (Redis us/vch: all primaries' CPU over all vouchers; worst prim.: the highest CPU per voucher"
echo "   of one primary over the vouchers issued on it. Client, voucherd and every primary share"
echo "   this machine's cores: the cluster run shows the cost of the cluster path, not its scaling.)"
