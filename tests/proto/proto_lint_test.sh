#!/usr/bin/env bash
# The public contract passes buf lint (STANDARD, less the two rules proto/buf.yaml
# explains) and buf's formatting, and the only lint exception inside the file is
# ErrorReason's unprefixed values (their names are the reasons on the wire).
# buf comes from npm (proto/package.json), installed by `scripts/setup.sh --tests`.
set -euo pipefail
root="$1"
buf="$root/proto/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  echo "FAIL: $buf is missing: run scripts/setup.sh --tests (npm ci in proto/)"
  exit 1
fi
cd "$root/proto"
"$buf" lint .
"$buf" format --diff --exit-code .

ignores="$(grep -n 'buf:lint:ignore' voucher/v1/voucher.proto)"
expected="ENUM_VALUE_PREFIX"
if [ "$(printf '%s\n' "$ignores" | wc -l)" -ne 1 ] || ! grep -q "$expected" <<<"$ignores"; then
  echo "FAIL: expected exactly one buf:lint:ignore ($expected, on ErrorReason), got:"
  printf '%s\n' "$ignores"
  exit 1
fi
line="${ignores%%:*}"
if [ "$(sed -n "$((line + 1))p" voucher/v1/voucher.proto)" != "enum ErrorReason {" ]; then
  echo "FAIL: the buf:lint:ignore on line $line is not the one on enum ErrorReason"
  exit 1
fi
echo "proto lint: OK"
