#!/usr/bin/env bash
# deploy_config_test — proves, without starting anything, that the files
# scripts/cluster.sh runs are accepted by the programs that read them:
#  - haproxy -c accepts deploy/haproxy/haproxy.cfg with its variables set;
#  - promtool accepts deploy/prometheus/prometheus.yml (with alerts.yml and
#    target files next to it, as cluster.sh lays them out);
#  - the Grafana dashboard deploy/grafana/voucherd.json is a dashboard
#    whose every panel and query uses the ${DS_PROMETHEUS} input, whose
#    panel ids are unique, and whose every voucherd_* metric is one that
#    server/ops/metrics.cc exports.
# (cluster_test.sh runs the dashboard's queries against a real Prometheus.)
#   deploy_config_test.sh SOURCE_DIR
set -euo pipefail
SRC="${1:?usage: deploy_config_test.sh SOURCE_DIR}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
status=0

# HAProxy: the variables cluster.sh sets (a variable left unset expands
# to nothing, which haproxy -c refuses where an address or port goes).
VOUCHERD_LB_GRPC=127.0.0.1:1 VOUCHERD_LB_STATS=127.0.0.1:2 \
  VOUCHERD_R1_GRPC=127.0.0.1:3 VOUCHERD_R2_GRPC=127.0.0.1:4 VOUCHERD_R3_GRPC=127.0.0.1:5 \
  VOUCHERD_R1_OPS_PORT=6 VOUCHERD_R2_OPS_PORT=7 VOUCHERD_R3_OPS_PORT=8 \
  haproxy -c -f "$SRC/deploy/haproxy/haproxy.cfg" || { echo "haproxy refuses haproxy.cfg"; status=1; }

# Prometheus: the file as cluster.sh lays it out.
mkdir -p "$WORK/prometheus/targets"
cp "$SRC/deploy/prometheus/prometheus.yml" "$SRC/deploy/prometheus/alerts.yml" "$WORK/prometheus/"
echo '[{"targets": ["127.0.0.1:9464"], "labels": {"replica": "r1"}}]' > "$WORK/prometheus/targets/voucherd.json"
echo '[{"targets": ["127.0.0.1:8404"]}]' > "$WORK/prometheus/targets/haproxy.json"
echo "a-token" > "$WORK/prometheus/voucherd-ops.token"
promtool check config "$WORK/prometheus/prometheus.yml" || { echo "promtool refuses prometheus.yml"; status=1; }
[ "$(grep -c 'job_name: voucherd$' "$SRC/deploy/prometheus/prometheus.yml")" = 1 ] ||
  { echo "prometheus.yml has no job named voucherd (the alerts and the dashboard select it)"; status=1; }

# The dashboard.
D="$SRC/deploy/grafana/voucherd.json"
jq -e '.__inputs | any(.name == "DS_PROMETHEUS" and .pluginId == "prometheus")' "$D" > /dev/null ||
  { echo "voucherd.json has no DS_PROMETHEUS input"; status=1; }
wrong_ds="$(jq -r '.panels[] | select(.type != "row") | (., .targets[]) | .datasource.uid
  | select(. != "${DS_PROMETHEUS}")' "$D" | wc -l)"
[ "$wrong_ds" = 0 ] || { echo "$wrong_ds panels or queries do not use \${DS_PROMETHEUS}"; status=1; }
dup_ids="$(jq -r '.panels[].id' "$D" | sort | uniq -d)"
[ -z "$dup_ids" ] || { echo "panel ids used twice: $dup_ids"; status=1; }
no_expr="$(jq '[.panels[] | select(.type != "row") | select((.targets // []) | length == 0 or any(.expr == null or .expr == ""))] | length' "$D")"
[ "$no_expr" = 0 ] || { echo "$no_expr panels without a query"; status=1; }
for metric in $(jq -r '.. | objects | select(has("expr")) | .expr' "$D" | grep -o 'voucherd_[a-z_]*' |
  sed -E 's/_(bucket|sum|count)$//' | sort -u); do
  if ! grep -q "\"$metric\"" "$SRC/server/ops/metrics.cc"; then
    echo "voucherd.json names $metric, which server/ops/metrics.cc does not export"
    status=1
  fi
done
echo "panels: $(jq '[.panels[] | select(.type != "row")] | length' "$D"), queries: $(jq '[.. | objects | select(has("expr"))] | length' "$D")"
exit "$status"
