#!/usr/bin/env bash
# Scale: many partitions on one broker (issue 18 item 5). Creates TOPICS
# topics of 100 partitions, produces one record to every partition and reads
# them back, restarts the broker, and reports: create time, restart time (to
# listening, and to every partition loaded: one acks=all produce per
# partition acknowledged), resident memory, open files, and PASS/MISS against
# the targets (restart under 30 s, RSS under 2 GiB at 100,000 partitions).
#
#   bench/scale.sh                 # 1,000 topics x 100 = 100,000 partitions
#   SCALE_TOPICS=20 bench/scale.sh # a quick look (2,000 partitions)
#
# Env: GREGOR_BIN (default build/gregor), SCALE_TOPICS, SCALE_MAX_OPEN_FILES
# (log.max.open.files, default the broker's), SCALE_TIMEOUT_S (per step, 600).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GREGOR_BIN:-$PWD/build/gregor}
TOPICS=${SCALE_TOPICS:-1000}
STEP_TIMEOUT=${SCALE_TIMEOUT_S:-600}
WORK=$(mktemp -d /tmp/gregor-scale.XXXXXX)
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PID=
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_broker() {
  local extra=()
  [[ -n "${SCALE_MAX_OPEN_FILES:-}" ]] && extra=(--override "log.max.open.files=$SCALE_MAX_OPEN_FILES")
  "$BIN" server --override "listeners=PLAINTEXT://127.0.0.1:$PORT" --override "log.dirs=$WORK/data" \
    --override node.id=1 --override num.partitions=1 "${extra[@]}" >>"$WORK/broker.log" 2>&1 &
  PID=$!
}

echo "scale: $TOPICS topics x 100 partitions, $(uptime)"
t0=$(date +%s.%N)
start_broker
timeout "$STEP_TIMEOUT" /usr/bin/python3 bench/scale_step.py wait-listening "$PORT"
timeout "$STEP_TIMEOUT" /usr/bin/python3 bench/scale_step.py create "$PORT" "$TOPICS"
timeout "$STEP_TIMEOUT" /usr/bin/python3 bench/scale_step.py produce-all "$PORT" "$TOPICS"
timeout "$STEP_TIMEOUT" /usr/bin/python3 bench/scale_step.py consume-all "$PORT" "$TOPICS"
echo "before restart: rss $(awk '/VmRSS/{print $2}' /proc/$PID/status) kB, open files $(ls /proc/$PID/fd | wc -l)"

kill -TERM "$PID"; wait "$PID" || true; PID=
t0=$(date +%s.%N)
start_broker
timeout "$STEP_TIMEOUT" /usr/bin/python3 bench/scale_step.py wait-listening "$PORT"
t_listen=$(echo "$(date +%s.%N) - $t0" | bc)
timeout "$STEP_TIMEOUT" /usr/bin/python3 bench/scale_step.py produce-all "$PORT" "$TOPICS"
t_loaded=$(echo "$(date +%s.%N) - $t0" | bc)
rss_kb=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
fds=$(ls /proc/$PID/fd | wc -l)
echo "restart: listening after ${t_listen} s, every partition loaded (produce acked) after ${t_loaded} s"
echo "after restart: rss ${rss_kb} kB, open files ${fds}"
verdict() { if [[ $(echo "$1" | bc) == 1 ]]; then echo PASS; else echo MISS; fi; }
echo "target restart < 30 s: $(verdict "$t_loaded < 30")"
echo "target rss < 2 GiB: $(verdict "$rss_kb < 2097152")"
