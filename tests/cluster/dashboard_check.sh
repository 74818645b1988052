#!/usr/bin/env bash
# dashboard_check — runs every PromQL expression of a Grafana dashboard
# against a Prometheus, and fails unless each one parses (status success)
# and returns data (a non-empty result). cluster_test.sh runs it against
# the local cluster's Prometheus after a load; an operator can run it
# against any Prometheus that scrapes voucherd.
#   dashboard_check.sh PROMETHEUS_URL DASHBOARD_JSON CAMPAIGN
#
# Grafana's variables are substituted first, as Grafana would for a user
# looking at CAMPAIGN: $campaign and ${campaign} -> CAMPAIGN;
# $__rate_interval -> 1m (Grafana's own value is at least four scrape
# intervals, 20 s at deploy/prometheus/prometheus.yml's 5 s; a minute holds
# a dozen scrapes); $__interval -> 15s; $__range -> 5m. An expression left
# with a $ after that names a variable this check does not know, and fails.
# A template variable's label_values(METRIC, LABEL) query is run as
# count by (LABEL) (METRIC).
set -euo pipefail
PROM="${1:?usage: dashboard_check.sh PROMETHEUS_URL DASHBOARD_JSON CAMPAIGN}"
DASHBOARD="${2:?usage: dashboard_check.sh PROMETHEUS_URL DASHBOARD_JSON CAMPAIGN}"
CAMPAIGN="${3:?usage: dashboard_check.sh PROMETHEUS_URL DASHBOARD_JSON CAMPAIGN}"

substitute() {
  # shellcheck disable=SC2016 # the $ are Grafana's, not the shell's
  sed -e 's/\$__rate_interval/1m/g' -e 's/\$__interval/15s/g' -e 's/\$__range/5m/g' \
    -e "s/\\\$campaign/$CAMPAIGN/g" -e "s/\\\${campaign}/$CAMPAIGN/g"
}

exprs="$(mktemp)"
trap 'rm -f "$exprs"' EXIT
# One expression a line (PromQL takes a newline as a space), substituted.
{
  jq -r '.. | objects | select(has("expr")) | .expr | gsub("\n"; " ")' "$DASHBOARD"
  jq -r '.templating.list[]? | .definition // empty' "$DASHBOARD" |
    sed -nE 's/^label_values\((.*), *([a-zA-Z_]+)\)$/count by (\2) (\1)/p'
} | substitute > "$exprs"
total="$(wc -l < "$exprs")"
[ "$total" -gt 0 ] || { echo "no expression found in $DASHBOARD"; exit 1; }

bad=0
nan=0
while IFS= read -r expr; do
  if grep -q '\$' <<< "$expr"; then
    echo "NOT SUBSTITUTED: $expr"
    bad=$((bad + 1))
    continue
  fi
  answer="$(curl -sS --max-time 10 --get --data-urlencode "query=$expr" "$PROM/api/v1/query")"
  # status, number of series, and whether every value is NaN (a quantile
  # of a histogram that recorded nothing in the window, e.g. no draws in a
  # claims-only load: its series exist, Grafana shows a gap).
  read -r status series all_nan < <(jq -r \
    '[.status, (.data.result // [] | length), ([.data.result[]?.value[1]] | all(. == "NaN"))] | @tsv' \
    <<< "$answer")
  if [ "$status" != success ]; then
    echo "DOES NOT PARSE: $expr: $(jq -r .error <<< "$answer")"
    bad=$((bad + 1))
  elif [ "$series" -eq 0 ]; then
    echo "NO DATA: $expr"
    bad=$((bad + 1))
  elif [ "$all_nan" = true ]; then
    nan=$((nan + 1))
  fi
done < "$exprs"
if [ "$bad" -gt 0 ]; then
  echo "$bad of $total expressions of $DASHBOARD do not parse or return no data"
  exit 1
fi
echo "all $total expressions of $(basename "$DASHBOARD") parse and return data ($nan of them only NaN: no events in the window)"
