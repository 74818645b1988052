#!/usr/bin/env bash
# Installs what voucherd needs to build and test, from Debian's packages.
# With --tests, also what only the test suite uses: clang-16 and its
# sanitizer and libFuzzer runtimes (scripts/fuzz.sh), and the npm packages
# (buf, which lints the proto; gRPC for the Node.js client example), at the
# versions their package-lock.json files pin.
# Idempotent: installs nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=0
if [ "${1:-}" = "--tests" ]; then with_tests=1; fi

PACKAGES=(
  g++ cmake make ninja-build pkg-config ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  golang-github-gogo-googleapis-dev
  libhiredis-dev redis-server redis-tools redis-sentinel
  openssl libboost-dev nlohmann-json3-dev libspdlog-dev jq
  prometheus-cpp-dev
  prometheus chromium
  tzdata
  haproxy curl
  systemd strace
  python3-grpcio python3-protobuf
)
# prometheus-cpp-dev: metric families and the text exposition (core only).
# prometheus: promtool, which the /metrics test uses to check the exposition.
# chromium: the dashboard test opens / in it, headless.
# haproxy: the gRPC load balancer of scripts/cluster.sh (the local production
#   cluster, and its test); with prometheus, which that cluster also runs.
#   On a machine with systemd, installing it starts Debian's haproxy.service,
#   whose /etc/haproxy/haproxy.cfg listens on no port: it stays out of the way.
# curl: scripts/cluster.sh and its test probe /readyz, HAProxy's stats and
#   Prometheus' HTTP API with it.
# systemd: systemd-analyze and systemctl --root, which the install test runs
# on the installed unit offline (systemd need not be running); strace: the
# same test records voucherd's system calls to check the unit's sandbox.
# python3-grpcio, python3-protobuf: the Python client example
# (examples/python/claim.py) and its test; grpcio 1.51 is the C++ gRPC's
# version, protobuf 3.21 matches protobuf-compiler (examples/python/generate.sh).

# clang-16, libclang-rt-16-dev: the fuzz targets (fuzz/, scripts/fuzz.sh).
# Debian 12's default clang 14 cannot compile libstdc++ 12's <expected> and
# <source_location>; its libclang-rt-16-dev holds libFuzzer, ASan and UBSan.
if [ "$with_tests" = 1 ]; then
  PACKAGES+=(clang-16 libclang-rt-16-dev)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "$with_tests" = 1 ]; then
  # Node.js and npm: Debian's, unless a newer Node.js (with its own npm) is there.
  if ! command -v npm >/dev/null; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends nodejs npm
  fi
  for dir in proto examples/node; do
    stamp="$dir/node_modules/.package-lock.json"
    if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
      echo "setup: npm ci in $dir"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
fi
