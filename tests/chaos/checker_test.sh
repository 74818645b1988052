#!/usr/bin/env bash
# The chaos checker can fail: a 2-cycle chaos run whose checker finds one
# acknowledged voucher's record deleted behind its back (--tamper-lose-one)
# must exit 1 and count exactly that: one lost voucher, one SKU whose books
# are off (issued says one more than there are records), nothing else.
set -uo pipefail
source_dir="$1"
out="$(bash "$source_dir/scripts/chaos.sh" 2 --tamper-lose-one 2>/dev/null)"
rc=$?
echo "$out"
fail() { echo "FAILED: $*" >&2; exit 1; }
[[ $rc -eq 1 ]] || fail "chaos.sh exited $rc, expected 1"
row() { grep -E "^  $1 +[0-9]+  " <<<"$out" | awk '{print $(NF-1), $NF}'; }
[[ "$(row 'lost acknowledged vouchers')" == "1 FAIL" ]] || fail "lost: $(row 'lost acknowledged vouchers')"
[[ "$(row 'stock books off')" == "1 FAIL" ]] || fail "books: $(row 'stock books off')"
fails=$(grep -cE '^  .* [0-9]+  FAIL$' <<<"$out")
[[ $fails -eq 2 ]] || fail "$fails rows FAIL, expected 2"
grep -q '^RESULT: FAIL$' <<<"$out" || fail "no RESULT: FAIL"
echo "PASSED"
