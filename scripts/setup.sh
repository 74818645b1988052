#!/usr/bin/env bash
# Installs what voucherd needs to build and test, from Debian's packages only.
# Idempotent: installs nothing when everything is already there.
set -euo pipefail

PACKAGES=(
  g++ cmake make pkg-config ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  golang-github-gogo-googleapis-dev
  libhiredis-dev redis-server redis-tools redis-sentinel
  openssl libboost-dev nlohmann-json3-dev libspdlog-dev jq
  prometheus-cpp-dev
  prometheus chromium
  tzdata
  systemd strace
)
# prometheus-cpp-dev: metric families and the text exposition (core only).
# prometheus: promtool, which the /metrics test uses to check the exposition.
# chromium: the dashboard test opens / in it, headless.
# systemd: systemd-analyze and systemctl --root, which the install test runs
# on the installed unit offline (systemd need not be running); strace: the
# same test records voucherd's system calls to check the unit's sandbox.

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
