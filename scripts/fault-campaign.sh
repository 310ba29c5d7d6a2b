#!/usr/bin/env bash
# The long replication fault campaign: N runs (default 1000) of each fault class
# (kill -9 / SIGSTOP of a partition leader, the leader cut off from its followers
# or from the active controller, rolling restarts) against three gregor nodes in
# network namespaces, with an acks=all producer and a consumer group running.
# One progress line per run, a summary per class at the end. Exits non-zero if
# any run lost an acknowledged record, broke a key's order, saw committed offsets
# go back, crashed a node or could not be judged. Needs root (namespaces, nftables).
#
#   scripts/fault-campaign.sh                          # 1000 runs of every class
#   scripts/fault-campaign.sh --runs 50 --faults kill9_leader,rolling_restart
#   GREGOR_BIN=/path/to/gregor scripts/fault-campaign.sh --runs 20 --stop-on-failure
#
# Options go to tests/blackbox/fault_campaign.py (--help lists them). The binary
# ($GREGOR_BIN, default build/gregor) is copied into the campaign's directory
# first, so a rebuild during the campaign does not change what is tested.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${GREGOR_BIN:-$root/build/gregor}"
if [ ! -x "$bin" ]; then
  echo "fault-campaign: no gregor binary at $bin (build it, or set GREGOR_BIN)" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "fault-campaign: needs root (network namespaces and nftables)" >&2
  exit 2
fi
workdir=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --workdir) workdir="${args[$((i + 1))]:-}" ;;
    --workdir=*) workdir="${args[$i]#--workdir=}" ;;
  esac
done
if [ -z "$workdir" ]; then
  workdir="$(mktemp -d /tmp/gregor-faults-XXXXXX)"
  args+=(--workdir "$workdir")
fi
mkdir -p "$workdir"
cp "$bin" "$workdir/gregor"
export GREGOR_BIN="$workdir/gregor"
exec /usr/bin/python3 "$root/tests/blackbox/fault_campaign.py" "${args[@]}"
