#!/usr/bin/env bash
# Installs everything Gregor needs to build, run, test and benchmark, from
# Debian 12 packages (and kafkajs from npm for the black-box tests).
# Safe to run repeatedly: it only installs what is missing.
set -euo pipefail

packages=(
  build-essential clang libclang-rt-14-dev cmake ninja-build pkg-config python3
  libasio-dev libzstd-dev liblz4-dev libsnappy-dev zlib1g-dev libssl-dev
  libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  kcat librdkafka-dev python3-confluent-kafka python3-kafka python3-pytest
  iproute2 nftables
  redis-server nats-server libhiredis-dev libnats-dev   # the peers bench/run.sh measures
  )
# Node.js runs the kafkajs tests; use the machine's node/npm if present.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

# kafkajs for the black-box tests, pinned by tests/blackbox/js/package-lock.json.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$root/tests/blackbox/js/package.json" ] && [ ! -d "$root/tests/blackbox/js/node_modules/kafkajs" ]; then
  echo "install-deps: installing kafkajs (npm)"
  (cd "$root/tests/blackbox/js" && npm ci --no-audit --no-fund --loglevel=error)
fi
