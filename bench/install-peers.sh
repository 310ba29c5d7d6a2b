#!/usr/bin/env bash
# bench/install-peers.sh: installs the peers bench/run.sh measures Gregor against, from
# Debian: Redis (Streams) and the NATS server (JetStream), and the C client libraries their
# load generators (bench/peers_loadgen.cc) are built on. Idempotent; does nothing when
# everything is present. Needs root (or sudo) and the Debian archive; bounded by timeouts.
# PEERS_NO_INSTALL=1: only report what is missing.
set -euo pipefail

want=(redis-server nats-server libhiredis-dev libnats-dev)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "[install-peers] all present: ${want[*]}" >&2
  exit 0
fi
echo "[install-peers] missing: ${missing[*]}" >&2
if [[ "${PEERS_NO_INSTALL:-0}" == 1 ]]; then
  exit 1
fi
sudo=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "[install-peers] not root and no sudo; install ${missing[*]} by hand" >&2; exit 1; }
  sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
# Only the packages' files are wanted: their own services are not started (the benchmark
# starts its servers on free ports with data in a temporary directory).
policy_rc="/usr/sbin/policy-rc.d"
made_policy=0
if [[ ! -e $policy_rc && $(id -u) == 0 ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy_rc" && chmod +x "$policy_rc" && made_policy=1
fi
trap '[[ $made_policy == 1 ]] && rm -f "$policy_rc"' EXIT
timeout 300 "${sudo[@]}" apt-get update -qq >&2 || echo "[install-peers] apt-get update failed; trying the install anyway" >&2
timeout 600 "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
echo "[install-peers] installed: ${missing[*]}" >&2
