#!/usr/bin/env bash
# bench/process_memory.sh — what a whole voucherd process holds once
# MEMBERS members each hold a voucher: voucherd with the memory store, a
# campaign of 1,000,000 packs (10 SKUs of 100,000), a crowd of MEMBERS new
# members claiming over gRPC (ClaimBatch, batches of 100). Prints voucherd's
# resident memory (VmRSS) with no campaign, once the campaign opened and
# after the crowd, and the growth per member from the server with no
# campaign (what the campaign's tables take when it opens counts, as in
# member_memory_bench). member_memory_bench measures the engine alone; this
# is the server as deployed, gRPC and all.
#
#   bench/process_memory.sh                 # 1,000,000 members, about 2 minutes
#   MEMBERS=200000 bench/process_memory.sh
#
# Loopback only. The crowd is bounded by MEMBERS and by --duration; every
# process started here is stopped on exit. Needs a Release build
# (scripts/build.sh) and jq.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
MEMBERS="${MEMBERS:-1000000}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
require_binaries voucher-load voucherd
[ "$MEMBERS" -le 1000000 ] || { echo "process_memory: MEMBERS is at most the stock, 1000000" >&2; exit 2; }

write_big_campaign

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }

serve() {
  start_server "$BUILD_DIR/bin/voucherd" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 \
    --secret-file "$WORK/secret.hex" --store memory "$@"
}
serve
empty=$(rss_kb)
stop_server
serve --campaigns "$WORK/big.json"
before=$(rss_kb)
"$BUILD_DIR/bin/voucher-load" --target "127.0.0.1:$PORT" --campaign big --members "$MEMBERS" \
  --repeat-share 0 --batch 100 --concurrency 8 --max-retries 200 --duration 600 --skip-stats \
  --json "$WORK/crowd.json" > "$WORK/crowd.txt" ||
  { cat "$WORK/crowd.txt"; echo "process_memory: the crowd failed its check" >&2; exit 1; }
issued=$(jq -r '.check.issued' "$WORK/crowd.json")
[ "$issued" = "$MEMBERS" ] || { cat "$WORK/crowd.txt"; echo "process_memory: $issued vouchers issued, not $MEMBERS" >&2; exit 1; }
after=$(rss_kb)
stop_server

awk -v e="$empty" -v b="$before" -v a="$after" -v n="$MEMBERS" 'BEGIN {
  mb = 1024 / 1e6
  printf "members holding a voucher: %d\n", n
  printf "voucherd resident with no campaign: %.1f MB; the campaign opened: %.1f MB; after the crowd: %.1f MB\n", e * mb, b * mb, a * mb
  printf "grown by %.1f MB since the server had no campaign (%.1f MB since the campaign opened)\n", (a - e) * mb, (a - b) * mb
  printf "bytes per member: %.0f\n", (a - e) * 1024 / n
}'
