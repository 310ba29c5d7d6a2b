#!/usr/bin/env bash
# bench/idempotence.sh: what an idempotent producer costs, in one run on this machine. One
# broker, a topic of 4 partitions, the same client (gregor-loadgen on librdkafka), 1 KiB
# records and acks=all, with enable.idempotence=false and =true taking turns:
#   - produce throughput, median of REPS runs of each mode, the modes alternating (and
#     which goes first alternating too), so that a drift of the machine hits both;
#   - produce latency at fixed rates (LAT_RATES, default 1,000 and 10,000 msgs/s):
#     p50 / p99 / p99.9 / max, median of LAT_REPS runs of each mode, interleaved the same way;
#   - a transactional producer (the same client with transactional.id, committing every
#     TXN_MS, default 100 ms) takes a third turn in the throughput runs;
# with the CPU the broker and the client used, and prints the table: idempotent /
# non-idempotent for every figure, PASS or MISS for throughput against 0.9x, and
# transactional / non-idempotent against 0.8x. See bench/README.md ("Idempotent
# producers"). A run takes ~3 minutes.
#
# Environment (all optional):
#   BUILD_DIR          build directory (default: <repo>/build); nothing is rebuilt except
#                      gregor-loadgen when it is missing (SKIP_BUILD=1: not even that)
#   GREGOR_BIN         broker binary (default: $BUILD_DIR/gregor or $BUILD_DIR/src/app/gregor)
#   LOADGEN            load generator (default: $BUILD_DIR/bench/gregor-loadgen or
#                      $BUILD_DIR/bench-standalone/gregor-loadgen)
#   GREGOR_ARGS        extra arguments for "gregor server" (e.g. "--override num.shards=1")
#   PARTITIONS         partitions of the topic (default 4)
#   RECORD_BYTES       record value size (default 1024)
#   ACKS               producer acks (default all; librdkafka's idempotent producer needs all)
#   TP_SECONDS         seconds per produce-throughput run (default 2)
#   REPS               produce-throughput runs per mode, median reported (default 5)
#   TP_LINGER_MS       linger.ms of the throughput runs (default 5, librdkafka's default)
#   WARMUP_SECONDS     an unmeasured throughput run of each mode first (default 2; 0: none)
#   LAT_RATES          fixed produce rates of the latency runs, msgs/s (default "1000 10000")
#   LAT_SECONDS        measured seconds per latency run (default 4)
#   LAT_WARMUP         unmeasured seconds before that (default 0.5)
#   LAT_REPS           latency runs per rate and mode, median reported (default 3)
#   LAT_LINGER_MS      linger.ms of the latency runs (default 0)
#   TARGET_RATIO       idempotent / non-idempotent throughput to reach (default 0.9)
#   TXN_MS             the transactional producer commits this often (default 100)
#   TXN_TARGET_RATIO   transactional / non-idempotent throughput to reach (default 0.8)
#   PERF               1: after the measurements, one more throughput run of each mode
#                      under `perf record -g -p <broker>` (not counted), the data in
#                      $LOGS_DIR/perf-plain.data and perf-idempotent.data (default 0)
#   START_TIMEOUT_S    how long the broker may take to listen and the topic to get
#                      leaders (default 60)
#   BENCH_MEMORY_GIB   memory cgroup the run happens in, filled first (default 4; 0: none)
#   BENCH_TMPDIR       where the broker's data goes (default $BUILD_DIR)
#   RESULTS_MD         markdown output (default $BUILD_DIR/bench-idempotence.md)
#   RESULTS_JSONL      raw results (default $BUILD_DIR/bench-idempotence.jsonl)
#   LOGS_DIR           the broker's and client's logs of the last run (default
#                      $BUILD_DIR/bench-idempotence-logs)

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
LOG_TAG=bench-idempotence
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

PARTITIONS="${PARTITIONS:-4}"
RECORD_BYTES="${RECORD_BYTES:-1024}"
ACKS="${ACKS:-all}"
TP_SECONDS="${TP_SECONDS:-2}"
REPS="${REPS:-5}"
TP_LINGER_MS="${TP_LINGER_MS:-5}"
WARMUP_SECONDS="${WARMUP_SECONDS:-2}"
read -r -a LAT_RATES <<<"${LAT_RATES:-1000 10000}"
LAT_SECONDS="${LAT_SECONDS:-4}"
LAT_WARMUP="${LAT_WARMUP:-0.5}"
LAT_REPS="${LAT_REPS:-3}"
LAT_LINGER_MS="${LAT_LINGER_MS:-0}"
TARGET_RATIO="${TARGET_RATIO:-0.9}"
TXN_MS="${TXN_MS:-100}"
TXN_TARGET_RATIO="${TXN_TARGET_RATIO:-0.8}"
PERF="${PERF:-0}"
START_TIMEOUT_S="${START_TIMEOUT_S:-60}"
BENCH_MEMORY_GIB="${BENCH_MEMORY_GIB:-4}"
RESULTS_MD="${RESULTS_MD:-$BUILD_DIR/bench-idempotence.md}"
RESULTS_JSONL="${RESULTS_JSONL:-$BUILD_DIR/bench-idempotence.jsonl}"
LOGS_DIR="${LOGS_DIR:-$BUILD_DIR/bench-idempotence-logs}"
TOPIC=bench-idempotence

# The two modes, by the name their results carry, and the client setting each one is.
MODES=(plain idempotent)
declare -A IDEMPOTENCE=([plain]=false [idempotent]=true [transactional]=true)
# The throughput runs have a third: the same client with a transactional.id, committing
# every TXN_MS (the loadgen's --transaction-ms).
TP_MODES=(plain idempotent transactional)
mode_args() {
  if [[ "$1" == transactional ]]; then
    echo "-X enable.idempotence=true -X transactional.id=bench-idempotence-txn --transaction-ms $TXN_MS"
  else
    echo "-X enable.idempotence=${IDEMPOTENCE[$1]}"
  fi
}

command -v python3 >/dev/null || die "python3 is needed for the report"
[[ "$PERF" != 1 ]] || command -v perf >/dev/null || die "PERF=1 needs perf"

# ---------------------------------------------------------------------------------------
# Binaries (the existing build), work directory, results

find_gregor_bin || die "no gregor binary (looked in $BUILD_DIR; set GREGOR_BIN or build it: ninja -C $BUILD_DIR gregor)"
ensure_loadgen
prepare_work bench-idempotence
rm -f "$LOGS_DIR"/perf-*.data   # the last run's
record_machine \
  "partitions=$PARTITIONS" "record_bytes=$RECORD_BYTES" "acks=$ACKS" "tp_seconds=$TP_SECONDS" \
  "reps=$REPS" "tp_linger_ms=$TP_LINGER_MS" "lat_rates=${LAT_RATES[*]}" "lat_seconds=$LAT_SECONDS" \
  "lat_warmup=$LAT_WARMUP" "lat_reps=$LAT_REPS" "lat_linger_ms=$LAT_LINGER_MS" \
  "target_ratio=$TARGET_RATIO" "modes=${TP_MODES[*]}" "txn_ms=$TXN_MS" "txn_target_ratio=$TXN_TARGET_RATIO"
warn_if_busy

# The memory set-up of run.sh and replication.sh: a filled cgroup, then more log than it
# holds written through the broker before the first measurement.
use_memory_cgroup "$WORK"
record "$(printf '{"kind":"memory","mode":"%s"}' "$MEMORY_MODE")"

# in_turn <rep>: the modes in the order run <rep> takes them; the first mode alternates.
in_turn() {
  if (($1 % 2)); then echo "${MODES[@]}"; else echo "${MODES[1]} ${MODES[0]}"; fi
}
# tp_in_turn <rep>: the throughput modes, rotated by one each run.
tp_in_turn() {
  local n=${#TP_MODES[@]} i out=()
  for ((i = 0; i < n; i++)); do out+=("${TP_MODES[$(((i + $1) % n))]}"); done
  echo "${out[@]}"
}

# ---------------------------------------------------------------------------------------
# One broker, one topic

record "{\"kind\":\"setup\",\"setup\":\"broker\",\"brokers\":1,\"rf\":1,\"min_insync\":1,\"topic\":\"$TOPIC\",\"loadavg_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
for mode in "${TP_MODES[@]}"; do
  record "{\"kind\":\"setup\",\"setup\":\"$mode\",\"brokers\":1,\"rf\":1,\"min_insync\":1,\"topic\":\"$TOPIC\",\"enable_idempotence\":${IDEMPOTENCE[$mode]}}"
done
if ! start_cluster broker 1 || ! create_topic "$TOPIC" 1 1; then
  record '{"kind":"setup_failed","setup":"broker"}'
  stop_cluster
  die "the broker or its topic did not come up; see $LOGS_DIR/broker-node1.log"
fi
BROKER_PID="${BROKER_PIDS[0]}"
fill_cgroup_with_log "$BOOTSTRAP" "$PARTITIONS" "$WORK/loadgen.err"

# Does the broker take idempotent producers at all? librdkafka needs InitProducerId (API 22)
# for a producer id; without it the client stops with a fatal error.
log "checking that the broker takes an idempotent producer (InitProducerId)"
if ! timeout -k 5 60 env "${CLIENT_ENV[@]}" "$LOADGEN" produce-throughput --bootstrap "$BOOTSTRAP" \
     --topic "$TOPIC" --record-bytes "$RECORD_BYTES" --acks "$ACKS" --count 1000 --timeout-s 30 \
     -X enable.idempotence=true >/dev/null 2>"$WORK/probe.err"; then
  { echo "===== probe: idempotent producer"; cat "$WORK/probe.err"; } >>"$LOGS_DIR/loadgen.log"
  record "{\"kind\":\"idempotence_unsupported\",\"client_said\":$(tail -5 "$WORK/probe.err" | python3 -c 'import json, sys; print(json.dumps(sys.stdin.read()))')}"
  if grep -qiE 'idempotent producer not supported|UNSUPPORTED_FEATURE|InitProducerId' "$WORK/probe.err"; then
    log "ERROR: the broker does not support idempotent producers: librdkafka found no InitProducerId (API 22)."
    log "  Build a tree that has it (git log --oneline | grep -i InitProducerId); no figures were taken."
  else
    log "ERROR: an idempotent producer could not write 1,000 records; no figures were taken. The client said:"
  fi
  tail -5 "$WORK/probe.err" >&2 || true
  stop_cluster
  exit 3
fi
{ echo "===== probe: idempotent producer"; cat "$WORK/probe.err"; } >>"$LOGS_DIR/loadgen.log"

if [[ "$WARMUP_SECONDS" != 0 ]]; then
  for mode in "${TP_MODES[@]}"; do
    log "warm-up, $mode, ${WARMUP_SECONDS}s unmeasured"
    # shellcheck disable=SC2046 # mode_args is words
    timeout -k 5 90 env "${CLIENT_ENV[@]}" "$LOADGEN" produce-throughput --bootstrap "$BOOTSTRAP" --topic "$TOPIC" \
      --record-bytes "$RECORD_BYTES" --acks "$ACKS" --count 20000000 --duration-s "$WARMUP_SECONDS" \
      --linger-ms "$TP_LINGER_MS" --timeout-s 60 $(mode_args "$mode") \
      >/dev/null 2>>"$LOGS_DIR/loadgen.log" ||
      log "WARNING: the $mode warm-up run did not finish cleanly (see $LOGS_DIR/loadgen.log)"
  done
fi

# ---------------------------------------------------------------------------------------
# The measurements: each run is recorded under its mode's name (measure() in common.sh
# names its results after SETUP).

mark_logs   # the measurements start
log "produce throughput, $RECORD_BYTES B, acks=$ACKS, linger.ms=$TP_LINGER_MS, ${TP_SECONDS}s x $REPS per mode, alternating"
tp_args=(produce-throughput --topic "$TOPIC" --record-bytes "$RECORD_BYTES" --acks "$ACKS" --count 20000000
         --duration-s "$TP_SECONDS" --linger-ms "$TP_LINGER_MS")
for rep in $(seq 1 "$REPS"); do
  for mode in $(tp_in_turn "$rep"); do
    # shellcheck disable=SC2046 # mode_args is words
    SETUP=$mode measure throughput "$rep" 0 $((${TP_SECONDS%.*} + 60)) "${tp_args[@]}" $(mode_args "$mode")
  done
done

log "produce latency at ${LAT_RATES[*]} msgs/s, linger.ms=$LAT_LINGER_MS, ${LAT_SECONDS}s x $LAT_REPS per rate and mode"
for rep in $(seq 1 "$LAT_REPS"); do
  for rate in "${LAT_RATES[@]}"; do
    for mode in $(in_turn "$rep"); do
      SETUP=$mode measure latency "$rep" "$rate" "$(python3 -c "print(int($LAT_SECONDS + $LAT_WARMUP + 60))")" \
        produce-latency --topic "$TOPIC" --record-bytes "$RECORD_BYTES" --acks "$ACKS" --rate "$rate" \
        --duration-s "$LAT_SECONDS" --warmup-s "$LAT_WARMUP" --linger-ms "$LAT_LINGER_MS" \
        -X "enable.idempotence=${IDEMPOTENCE[$mode]}"
    done
  done
done

# PERF=1: where the broker's time goes in each mode, one more (unrecorded) run apiece.
if [[ "$PERF" == 1 ]]; then
  for mode in "${MODES[@]}"; do
    log "perf record -g of the broker during an unrecorded $mode throughput run"
    timeout -k 5 $((${TP_SECONDS%.*} + 30)) perf record -g -q -p "$BROKER_PID" -o "$LOGS_DIR/perf-$mode.data" \
      -- sleep "$TP_SECONDS" >/dev/null 2>>"$LOGS_DIR/perf.log" &
    perf_pid=$!
    sleep 0.3   # perf attaches
    timeout -k 5 $((${TP_SECONDS%.*} + 60)) env "${CLIENT_ENV[@]}" "$LOADGEN" "${tp_args[@]}" --bootstrap "$BOOTSTRAP" \
      --timeout-s 60 -X "enable.idempotence=${IDEMPOTENCE[$mode]}" >/dev/null 2>>"$LOGS_DIR/loadgen.log" || true
    wait "$perf_pid" || log "WARNING: perf record exited with $? (see $LOGS_DIR/perf.log)"
  done
  log "perf data: $LOGS_DIR/perf-*.data (perf report -i FILE --no-children)"
fi

SETUP=broker
record "{\"kind\":\"topic_state\",\"setup\":\"broker\",\"when\":\"end\",\"topic\":\"$TOPIC\",\"state\":$(topic_state "$TOPIC")}"
mark_logs   # the shutdown starts
stop_cluster

record "$(printf '{"kind":"machine_end","loadavg_end":"%s"}' "$(cut -d' ' -f1-3 /proc/loadavg)")"
python3 "$ROOT/bench/idempotence_report.py" "$RESULTS_JSONL" --markdown "$RESULTS_MD"
log "raw results: $RESULTS_JSONL; broker and client logs: $LOGS_DIR"
log "markdown table: $RESULTS_MD"
