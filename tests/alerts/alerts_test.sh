#!/usr/bin/env bash
# alerts_test — proves deploy/prometheus/alerts.yml: promtool accepts the
# rules, every alert's unit tests in alerts_test.yml pass (each alert firing
# and not firing), every voucherd_* metric the rules name is one voucherd
# exports (server/ops/metrics.cc), and every runbook link has its section in
# docs/runbook.md.
#   alerts_test.sh SOURCE_DIR
set -euo pipefail
SRC="${1:?usage: alerts_test.sh SOURCE_DIR}"
RULES="$SRC/deploy/prometheus/alerts.yml"
promtool check rules "$RULES"
(cd "$SRC/deploy/prometheus" && promtool test rules alerts_test.yml)
status=0
for metric in $(grep -o 'voucherd_[a-z_]*' "$RULES" | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
  if ! grep -q "\"$metric\"" "$SRC/server/ops/metrics.cc"; then
    echo "alerts.yml names $metric, which server/ops/metrics.cc does not export"
    status=1
  fi
done
for anchor in $(grep -o 'runbook.md#[a-z0-9-]*' "$RULES" | sed 's/.*#//' | sort -u); do
  # A Markdown heading's anchor: lower case, spaces to hyphens.
  if ! grep -E '^#+ ' "$SRC/docs/runbook.md" | tr 'A-Z' 'a-z' | sed -E 's/^#+ //; s/[^a-z0-9 -]//g; s/ /-/g' |
      grep -qx "$anchor"; then
    echo "alerts.yml links docs/runbook.md#$anchor, which has no such section"
    status=1
  fi
done
exit "$status"
