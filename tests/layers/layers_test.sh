#!/usr/bin/env bash
# layers_test.sh BUILD_DIR — proves that the include roots enforce the
# layers: each forbidden probe must fail to compile because the header is
# not on its include path ("No such file"), and the allowed probe must build.
set -uo pipefail
BUILD_DIR="$1"
status=0
build() { cmake --build "$BUILD_DIR" --target "$1" 2>&1; }

if ! out=$(build layer_probe_allowed); then
  echo "FAIL: the allowed include does not build:"; echo "$out"; status=1
fi
for probe in engine_to_store:server/store/store.h redis_to_ops:server/ops/metrics.h \
             ops_to_redis:server/redis/redis_claim_log.h load_to_server:server/grpc/status_map.h; do
  target="layer_probe_${probe%%:*}" header="${probe#*:}"
  if out=$(build "$target"); then
    echo "FAIL: $target built: $header is reachable from a layer that must not include it"
    status=1
  elif ! grep -q "$header: No such file or directory" <<<"$out"; then
    echo "FAIL: $target failed, but not for want of $header:"; echo "$out"; status=1
  else
    echo "ok: $target cannot include $header"
  fi
done
exit $status
