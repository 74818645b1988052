#!/usr/bin/env bash
# Generates the Python message classes claim.py imports: voucher.v1 (from the
# repository's proto/) and google.rpc.Status / ErrorInfo / RetryInfo (from
# Debian's golang-github-gogo-googleapis-dev; Debian ships no Python package
# of them). Debian's protoc (protobuf-compiler 3.21) matches Debian's
# python3-protobuf 3.21. Only messages are generated: claim.py writes its one
# stub line itself (channel.unary_unary), so no grpc_tools plugin is needed.
#   generate.sh [OUT_DIR]    (default: examples/python/gen, gitignored)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/gen}"
proto_dir="${VOUCHERD_PROTO_DIR:-$here/../../proto}"
googleapis="${GOOGLEAPIS_PROTO_DIR:-/usr/share/gocode/src/github.com/gogo/googleapis}"
if [ ! -f "$googleapis/google/rpc/error_details.proto" ]; then
  echo "generate.sh: $googleapis/google/rpc/error_details.proto is missing:" \
    "apt-get install golang-github-gogo-googleapis-dev" >&2
  exit 1
fi
mkdir -p "$out"
protoc --python_out="$out" -I "$proto_dir" voucher/v1/voucher.proto
protoc --python_out="$out" -I "$googleapis" google/rpc/status.proto google/rpc/error_details.proto
