#!/usr/bin/env bash
# The main job: a rehearsal of the Guangdong giveaway. Installs what is
# missing, builds, starts voucherd on the sample campaign (59,000 packs from
# 139 sites, window opened now), and lets a crowd of 200,000 members (plus
# repeat presses) claim until every pack is gone. Prints the report and the
# correctness check; exits non-zero if anything does not add up. Extra
# arguments go to voucher-load (e.g. --json report.json --plot run.svg).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh

BUILD_DIR="${BUILD_DIR:-build}"
WORK="$(mktemp -d)"
trap 'kill "$VOUCHERD_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
# A fresh random MAC secret for this rehearsal (64 hex digits).
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$WORK/secret.hex"

"$BUILD_DIR/bin/voucherd" --campaigns deploy/campaigns/guangdong-2024.json --rehearse \
  --secret-file "$WORK/secret.hex" --listen 127.0.0.1:0 --port-file "$WORK/port" \
  --ops-listen 127.0.0.1:0 \
  2> "$WORK/voucherd.log" &
VOUCHERD_PID=$!
for _ in $(seq 1 200); do [ -s "$WORK/port" ] && break; sleep 0.05; done
if [ ! -s "$WORK/port" ]; then cat "$WORK/voucherd.log"; echo "voucherd did not start"; exit 1; fi
PORT="$(cat "$WORK/port")"
echo "voucherd is serving the Guangdong sample on 127.0.0.1:$PORT; here comes the crowd..."

# Two client threads (a connection and completion queue each) with 256
# calls in flight: one client thread cannot keep voucherd busy on this box
# (bench/README.md). Repeat presses, the report and the checks as in any
# voucher-load run; --expect-sold-out fails the run unless all 59,000 went.
status=0
"$BUILD_DIR/bin/voucher-load" --target "127.0.0.1:$PORT" --campaign guangdong-2024 \
  --members 200000 --repeat-share 0.3 --threads "${THREADS:-2}" --concurrency "${CONCURRENCY:-256}" \
  --duration 300 --expect-sold-out --progress "$@" || status=$?

kill -TERM "$VOUCHERD_PID"
wait "$VOUCHERD_PID" || true
exit "$status"
