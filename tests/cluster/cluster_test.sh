#!/usr/bin/env bash
# cluster_test — proves scripts/cluster.sh end to end, on one cluster run:
#  - `up` starts redis-server, three voucherd replicas, HAProxy and
#    Prometheus on 127.0.0.1 and writes endpoints.json; a second `up` says
#    it is already up; `status` says all is well;
#  - the Guangdong rehearsal through HAProxy (200,000 members and repeat
#    presses) issues exactly 59,000 vouchers: as the client saw them, as
#    GetCampaignStats and every replica's /status say, as the replicas'
#    counters add up to, and as Prometheus sums them after a scrape that
#    started once the load was over; every replica got its share;
#  - Prometheus loaded every alert of deploy/prometheus/alerts.yml;
#  - an APPLY_THEN_DRAW campaign created through HAProxy reaches every
#    replica, whose metrics say when it is due and that it is not done;
#  - every PromQL expression of the Grafana dashboard
#    (deploy/grafana/voucherd.json) parses and returns data from the
#    cluster's Prometheus (Grafana's variables substituted as
#    dashboard_check.sh says);
#  - with one replica killed (kill -9), members who press once each all get
#    an answer through HAProxy (their voucher, or sold out), both before
#    HAProxy's health check notices and after it marked the replica DOWN;
#  - `down` stops every process and removes the state; a second `down` is
#    fine.
#   cluster_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC="$(cd "${1:?usage: cluster_test.sh SOURCE_DIR BUILD_DIR}" && pwd)"
BUILD="$(cd "${2:?usage: cluster_test.sh SOURCE_DIR BUILD_DIR}" && pwd)"
CLUSTER="$SRC/scripts/cluster.sh"
LOAD="$BUILD/bin/voucher-load"
CAMPAIGN=guangdong-2024
STOCK=59000
export BUILD_DIR="$BUILD"
# A state directory of its own, so that a cluster the user runs from this
# build (build/cluster) is left alone.
CLUSTER_DIR="$(mktemp -d "$BUILD/cluster-test.XXXXXX")"
export CLUSTER_DIR
WORK="$(mktemp -d)"
T0=$SECONDS

step() { echo "== [$((SECONDS - T0))s] $*"; }
fail() {
  echo "FAILED: $*" >&2
  exit 1
}
expect_eq() { # WHAT ACTUAL EXPECTED
  if [ "$2" != "$3" ]; then fail "$1: got '$2', expected '$3'"; fi
  echo "ok: $1 = $2"
}

finish() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -d "$CLUSTER_DIR/logs" ]; then
    for f in "$CLUSTER_DIR"/logs/*.log; do
      echo "----- $(basename "$f") (last 30 lines) -----" >&2
      tail -n 30 "$f" >&2
    done
  fi
  timeout 60 "$CLUSTER" down > /dev/null || echo "cluster.sh down failed" >&2
  rm -rf "$WORK"
  rmdir "$CLUSTER_DIR" 2> /dev/null || true
  echo "cluster_test: $((SECONDS - T0)) s"
  exit "$rc"
}
trap finish EXIT
# A signal (ctest's timeout, Ctrl-C) ends the script through finish too,
# which takes the cluster down: its daemons run in sessions of their own.
trap 'exit 143' TERM
trap 'exit 130' INT

prom_get() { # PATH [QUERY]: the JSON answer of Prometheus' HTTP API
  if [ $# -gt 1 ]; then
    curl -sS --max-time 10 --get --data-urlencode "query=$2" "$PROM$1"
  else
    curl -sS --max-time 10 "$PROM$1"
  fi
}
prom_value() { prom_get /api/v1/query "$1" | jq -r '.data.result[0].value[1] // "none"'; }

# ---- up ----------------------------------------------------------------------
step "scripts/cluster.sh up (CLUSTER_DIR=$CLUSTER_DIR)"
timeout 180 "$CLUSTER" up
E="$CLUSTER_DIR/endpoints.json"
[ -s "$E" ] || fail "up wrote no endpoints.json"
LB="$(jq -r .grpc "$E")"
PROM="$(jq -r .prometheus "$E")"
STATS="$(jq -r .haproxy_stats "$E")"
expect_eq "replicas in endpoints.json" "$(jq '.replicas | length' "$E")" 3
# Every address is on loopback, each port different.
addresses="$(jq -r '.grpc, .prometheus, .redis, .haproxy_stats, (.replicas[] | .grpc, .ops)' "$E")"
expect_eq "addresses not on 127.0.0.1" \
  "$(grep -cv '^\(redis://\|http://\)\?127\.0\.0\.1:[0-9]\+\(/stats\)\?$' <<< "$addresses" || true)" 0
expect_eq "distinct ports" "$(sed -E 's/.*:([0-9]+).*/\1/' <<< "$addresses" | sort -u | wc -l)" 10
# shellcheck disable=SC1090,SC1091
. "$(jq -r .env "$E")"

step "a second up, and status"
again="$("$CLUSTER" up)"
grep -q "already up" <<< "$again" || fail "a second up did not say it is already up: $again"
"$CLUSTER" status > "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status exited non-zero"; }
echo "ok: a second up says 'already up'; status exits 0"

# ---- the rehearsal through HAProxy ---------------------------------------------
step "voucher-load through HAProxy ($LB): 200,000 members + 30% repeat presses"
timeout 300 "$LOAD" --target "$LB" --campaign "$CAMPAIGN" --members 200000 --repeat-share 0.3 \
  --threads 2 --concurrency 256 --duration 240 --expect-sold-out --json "$WORK/load.json" |
  tail -n 8 || fail "voucher-load (the rehearsal) failed"
load_end_s="$(date +%s)"
R="$WORK/load.json"
expect_eq "issued (client)" "$(jq .check.issued "$R")" "$STOCK"
expect_eq "issued (GetCampaignStats)" "$(jq .check.server_issued "$R")" "$STOCK"
expect_eq "distinct codes" "$(jq .check.distinct_codes "$R")" "$STOCK"
expect_eq "members with two codes" "$(jq .check.members_with_two_codes "$R")" 0
expect_eq "codes with two members" "$(jq .check.codes_with_two_members "$R")" 0
expect_eq "answers other than OK and FAILED_PRECONDITION" \
  "$(jq '[.phases[].status_codes | to_entries[] | select(.key != "OK" and .key != "FAILED_PRECONDITION") | .value] | add // 0' "$R")" 0

step "server side: every replica's /status and /metrics (with the ops token; 401 without)"
counter_sum=0
[ -n "${VOUCHERD_OPS_TOKEN:-}" ] || fail "the cluster's env file exports no VOUCHERD_OPS_TOKEN"
ops_auth=(-H "Authorization: Bearer $VOUCHERD_OPS_TOKEN")
for ops in $(jq -r '.replicas[].ops' "$E"); do
  for path in /status /metrics /; do
    expect_eq "$ops$path without a token" \
      "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$ops$path")" 401
  done
  expect_eq "$ops/readyz without a token" \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$ops/readyz")" 200
  status="$(curl -sS --max-time 5 "${ops_auth[@]}" "$ops/status")"
  expect_eq "$ops /status issued (store-wide)" \
    "$(jq --arg c "$CAMPAIGN" '.campaigns[] | select(.id == $c) | .issued' <<< "$status")" "$STOCK"
  expect_eq "$ops /status remaining" \
    "$(jq --arg c "$CAMPAIGN" '.campaigns[] | select(.id == $c) | .remaining' <<< "$status")" 0
  n="$(curl -sS --max-time 5 "${ops_auth[@]}" "$ops/metrics" |
    awk -v s="voucherd_claims_total{campaign=\"$CAMPAIGN\",outcome=\"issued\"}" '$1 == s { print $2 }')"
  if [ -z "$n" ] || [ "$n" -le 0 ]; then
    fail "$ops issued no voucher (counter '$n'): HAProxy did not spread the load"
  fi
  echo "ok: $ops issued $n"
  counter_sum=$((counter_sum + n))
done
expect_eq "the replicas' issued counters, added up" "$counter_sum" "$STOCK"

# ---- Prometheus ------------------------------------------------------------------
step "Prometheus ($PROM): a scrape of every replica that started after the load"
scraped_after() {
  prom_get /api/v1/targets | jq -e --argjson t "$load_end_s" '
    [.data.activeTargets[] | select(.labels.job == "voucherd")] as $v
    | ($v | length) == 3
      and all($v[]; .health == "up"
        and (.lastScrape | sub("\\.[0-9]+"; "") | sub("\\+00:00$"; "Z") | fromdateiso8601) > $t)' \
    > /dev/null
}
deadline=$((SECONDS + 30))
until scraped_after; do
  [ "$SECONDS" -lt "$deadline" ] || fail "Prometheus did not scrape every replica within 30 s after the load"
  sleep 0.5
done
expect_eq "Prometheus: sum of the replicas' issued counters" \
  "$(prom_value "sum(voucherd_claims_total{job=\"voucherd\",campaign=\"$CAMPAIGN\",outcome=\"issued\"})")" "$STOCK"
expect_eq "Prometheus: replicas that issued vouchers" \
  "$(prom_value "count(voucherd_claims_total{job=\"voucherd\",campaign=\"$CAMPAIGN\",outcome=\"issued\"} > 0)")" 3
expect_eq "Prometheus: remaining stock (store-wide, max over replicas)" \
  "$(prom_value "max(sum by (instance) (voucherd_sku_remaining{job=\"voucherd\",campaign=\"$CAMPAIGN\"}))")" 0

step "Prometheus loaded every alert of deploy/prometheus/alerts.yml"
want="$(sed -nE 's/^ *- alert: *([A-Za-z0-9_]+).*/\1/p' "$SRC/deploy/prometheus/alerts.yml" | sort)"
have="$(prom_get /api/v1/rules | jq -r '.data.groups[].rules[] | select(.type == "alerting") | .name' | sort)"
[ -n "$want" ] || fail "no alert found in alerts.yml"
if [ "$want" != "$have" ]; then
  diff <(echo "$want") <(echo "$have") || true
  fail "the alerts Prometheus loaded differ from alerts.yml"
fi
echo "ok: $(wc -l <<< "$have") alerts loaded"

# ---- an APPLY_THEN_DRAW campaign, for the dashboard's allocation panels ---------
step "an APPLY_THEN_DRAW campaign created through HAProxy reaches every replica's metrics"
cat > "$WORK/apply.json" <<'JSON'
{"campaigns":[{"id":"cluster-apply","name":"Cluster apply","mode":"CAMPAIGN_MODE_APPLY_THEN_DRAW",
 "startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","allocationAt":"2099-01-01T00:00:00Z",
 "perMemberLimit":1,"sites":[{"id":"s1","name":"Spring","city":"Qingyuan","kind":"SKU_KIND_HOT_SPRING"}],
 "skus":[{"id":"k1","siteId":"s1","kind":"SKU_KIND_HOT_SPRING","name":"T","faceValueCents":"100","stock":"10"}]}]}
JSON
"$BUILD/bin/voucherctl" campaigns create "$WORK/apply.json" --target "$LB" > "$WORK/create.txt" ||
  { cat "$WORK/create.txt"; fail "voucherctl campaigns create (the apply campaign) failed"; }
deadline=$((SECONDS + 60))
until [ "$(prom_value 'count(voucherd_allocation_done{job="voucherd",campaign="cluster-apply"} == 0)')" = 3 ]; do
  [ "$SECONDS" -lt "$deadline" ] ||
    fail "Prometheus did not see the apply campaign on all 3 replicas, not done, within 60 s"
  sleep 0.5
done
expect_eq "Prometheus: the apply campaign's allocation time (Unix s)" \
  "$(prom_value 'max(voucherd_allocation_due_timestamp_seconds{job="voucherd",campaign="cluster-apply"})')" 4070908800

# ---- the Grafana dashboard ---------------------------------------------------------
step "every PromQL expression of deploy/grafana/voucherd.json against Prometheus"
bash "$SRC/tests/cluster/dashboard_check.sh" "$PROM" "$SRC/deploy/grafana/voucherd.json" "$CAMPAIGN" ||
  fail "the dashboard's expressions (above)"

# ---- one replica killed --------------------------------------------------------------
press_once() { # MEMBERS FIRST JSON: members FIRST.. press once each, no retries
  timeout 60 "$LOAD" --target "$LB" --campaign "$CAMPAIGN" --members "$1" --member-first "$2" \
    --repeat-share 0 --threads 1 --concurrency 16 --max-retries 0 --timeout-ms 5000 \
    --json "$3" > "$WORK/press.txt" || { cat "$WORK/press.txt"; fail "voucher-load (press once) failed"; }
  local ok sold other
  ok="$(jq '[.phases[].status_codes.OK // 0] | add' "$3")"
  sold="$(jq '[.phases[].status_codes.FAILED_PRECONDITION // 0] | add' "$3")"
  other="$(jq '[.phases[].status_codes | to_entries[] | select(.key != "OK" and .key != "FAILED_PRECONDITION") | .value] | add // 0' "$3")"
  expect_eq "members answered (voucher or sold out)" "$((ok + sold))" "$1"
  expect_eq "members answered otherwise (UNAVAILABLE, ...)" "$other" 0
  expect_eq "answered with the voucher they hold" "$(jq '[.phases[].already_claimed] | add' "$3")" "$ok"
  expect_eq "new vouchers issued" "$(jq .check.issued "$3")" 0
  [ "$ok" -gt 0 ] || fail "no member of the crowd got their voucher back"
}
haproxy_state() { # SERVER: its status in HAProxy's stats
  curl -sS --max-time 5 "$STATS;csv" | awk -F, -v s="$1" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "voucherd" && $2 == s { print $col["status"] }'
}
r3_pid="$(awk '$1 == "r3" { print $2 }' "$CLUSTER_DIR/pids")"
r3_port="$(cat "$CLUSTER_DIR/r3/grpc.port")"
step "kill -9 replica r3 (pid $r3_pid); members press at once, before HAProxy's check notices"
# A killed process's sockets close only when the kernel has taken its memory
# down (much memory under ASan): until then its port still accepts, and a call
# sent there is lost like one in flight (UNAVAILABLE). Members press from the
# moment the port refuses connections, which HAProxy retries elsewhere.
killed_at=$(date +%s%N)
kill -KILL "$r3_pid"
deadline=$((SECONDS + 10))
while (exec 3<>"/dev/tcp/127.0.0.1/$r3_port") 2> /dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "r3's port still accepts 10 s after kill -9"
  sleep 0.01
done
echo "(r3's port refused connections $((($(date +%s%N) - killed_at) / 1000000)) ms after kill -9)"
press_once 2000 0 "$WORK/press1.json"
redispatched="$(curl -sS --max-time 5 "$STATS;csv" | awk -F, '
  NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
  $1 == "voucherd" && $2 == "r3" { print $col["wredis"] }')"
echo "(HAProxy sent $redispatched calls meant for r3 to another replica)"
step "HAProxy marks r3 DOWN; members press again"
deadline=$((SECONDS + 15))
until [ "$(haproxy_state r3)" = DOWN ]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "HAProxy did not mark the killed replica DOWN within 15 s"
  sleep 0.2
done
expect_eq "HAProxy: r1" "$(haproxy_state r1)" UP
expect_eq "HAProxy: r2" "$(haproxy_state r2)" UP
press_once 1000 2000 "$WORK/press2.json"
if "$CLUSTER" status > "$WORK/status.txt"; then fail "status exits 0 with a replica killed"; fi
grep -q "r3 pid $r3_pid: NOT running" "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status does not say r3 is not running"; }
echo "ok: status names the dead replica and exits non-zero"

# ---- down ----------------------------------------------------------------------
step "scripts/cluster.sh down"
pids="$(awk '{ print $2 }' "$CLUSTER_DIR/pids")"
timeout 60 "$CLUSTER" down
for pid in $pids; do
  if [ -r "/proc/$pid/stat" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat")" != Z ]; then
    fail "process $pid still runs after down"
  fi
done
[ ! -e "$CLUSTER_DIR" ] || fail "down left $CLUSTER_DIR behind: $(ls -A "$CLUSTER_DIR")"
"$CLUSTER" down | grep -q "nothing runs" || fail "a second down did not say nothing runs"
echo "ok: down stopped every process and removed the state; a second down is fine"
echo "cluster_test: passed"
