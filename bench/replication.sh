#!/usr/bin/env bash
# bench/replication.sh: what replication costs, in one run on this machine. With the same
# client (gregor-loadgen on librdkafka), 1 KiB records and acks=all, it measures
#   1. one broker, a topic with replication factor 1, then stops it;
#   2. three brokers on 127.0.0.1 (every one broker and controller), a topic with
#      replication factor 3 and min.insync.replicas=2;
# produce throughput (median of REPS runs) and produce latency at fixed rates that leave
# the cores room (LAT_RATES), with the CPU the brokers and the client used, and prints
# the table: replicated / unreplicated for every figure, PASS or MISS for throughput
# against 0.5x. See bench/README.md ("Replication"). A run takes ~2.5 minutes.
#
# Environment (all optional):
#   BUILD_DIR          build directory (default: <repo>/build); nothing is rebuilt except
#                      gregor-loadgen when it is missing (SKIP_BUILD=1: not even that)
#   GREGOR_BIN         broker binary (default: $BUILD_DIR/gregor or $BUILD_DIR/src/app/gregor)
#   LOADGEN            load generator (default: $BUILD_DIR/bench/gregor-loadgen or
#                      $BUILD_DIR/bench-standalone/gregor-loadgen)
#   GREGOR_ARGS        extra arguments for every "gregor server" (e.g. "--override num.shards=1")
#   PARTITIONS         partitions of the topic (default 4)
#   RECORD_BYTES       record value size (default 1024)
#   ACKS               producer acks (default all)
#   REPLICAS           brokers and replication factor of the replicated setup (default 3)
#   MIN_INSYNC         min.insync.replicas of the replicated topic (default 2)
#   TP_SECONDS         seconds per produce-throughput run (default 2)
#   REPS               produce-throughput runs per setup, median reported (default 3)
#   TP_LINGER_MS       linger.ms of the throughput runs (default 5, librdkafka's default)
#   WARMUP_SECONDS     an unmeasured throughput run before the measured ones (default 2; 0: none)
#   LAT_RATES          fixed produce rates of the latency runs, msgs/s (default "1000 5000 10000")
#   LAT_SECONDS        measured seconds per latency run (default 4)
#   LAT_WARMUP         unmeasured seconds before that (default 0.5)
#   LAT_REPS           latency runs per rate, median reported (default 3)
#   LAT_LINGER_MS      linger.ms of the latency runs (default 0)
#   TARGET_RATIO       replicated / unreplicated throughput to reach (default 0.5)
#   START_TIMEOUT_S    how long brokers may take to listen and a topic to get its ISR (default 60)
#   BENCH_MEMORY_GIB   memory cgroup the run happens in, filled first (default 4; 0: none)
#   BENCH_TMPDIR       where the brokers' data goes (default $BUILD_DIR)
#   RESULTS_MD         markdown output (default $BUILD_DIR/bench-replication.md)
#   RESULTS_JSONL      raw results (default $BUILD_DIR/bench-replication.jsonl)
#   LOGS_DIR           brokers' and client's logs of the last run (default
#                      $BUILD_DIR/bench-replication-logs)

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
LOG_TAG=bench-replication
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

PARTITIONS="${PARTITIONS:-4}"
RECORD_BYTES="${RECORD_BYTES:-1024}"
ACKS="${ACKS:-all}"
REPLICAS="${REPLICAS:-3}"
MIN_INSYNC="${MIN_INSYNC:-2}"
TP_SECONDS="${TP_SECONDS:-2}"
REPS="${REPS:-3}"
TP_LINGER_MS="${TP_LINGER_MS:-5}"
WARMUP_SECONDS="${WARMUP_SECONDS:-2}"
read -r -a LAT_RATES <<<"${LAT_RATES:-1000 5000 10000}"
LAT_SECONDS="${LAT_SECONDS:-4}"
LAT_WARMUP="${LAT_WARMUP:-0.5}"
LAT_REPS="${LAT_REPS:-3}"
LAT_LINGER_MS="${LAT_LINGER_MS:-0}"
TARGET_RATIO="${TARGET_RATIO:-0.5}"
START_TIMEOUT_S="${START_TIMEOUT_S:-60}"
BENCH_MEMORY_GIB="${BENCH_MEMORY_GIB:-4}"
RESULTS_MD="${RESULTS_MD:-$BUILD_DIR/bench-replication.md}"
RESULTS_JSONL="${RESULTS_JSONL:-$BUILD_DIR/bench-replication.jsonl}"
LOGS_DIR="${LOGS_DIR:-$BUILD_DIR/bench-replication-logs}"

command -v python3 >/dev/null || die "python3 is needed for the report"
((MIN_INSYNC <= REPLICAS)) || die "MIN_INSYNC ($MIN_INSYNC) must not exceed REPLICAS ($REPLICAS)"

# ---------------------------------------------------------------------------------------
# Binaries: the existing build. Only the load generator is built, and only when missing.

find_gregor_bin || die "no gregor binary (looked in $BUILD_DIR; set GREGOR_BIN or build it: ninja -C $BUILD_DIR gregor)"
ensure_loadgen

# ---------------------------------------------------------------------------------------
# Work directory (removed on any exit), the binary both setups run, results

prepare_work bench-replication
record_machine \
  "partitions=$PARTITIONS" "record_bytes=$RECORD_BYTES" "acks=$ACKS" "replicas=$REPLICAS" \
  "min_insync=$MIN_INSYNC" "tp_seconds=$TP_SECONDS" "reps=$REPS" "tp_linger_ms=$TP_LINGER_MS" \
  "lat_rates=${LAT_RATES[*]}" "lat_seconds=$LAT_SECONDS" "lat_warmup=$LAT_WARMUP" "lat_reps=$LAT_REPS" \
  "lat_linger_ms=$LAT_LINGER_MS" "target_ratio=$TARGET_RATIO"
warn_if_busy

# Every process of the run in one memory cgroup whose page cache is filled first; the
# single broker then writes more log than the cgroup holds (fill_cgroup_with_log), so that
# both setups write into pages reclaimed from log data, as a broker that has run for a
# while does. The three brokers reclaim the single broker's log, kept until the end.
use_memory_cgroup "$WORK"
record "$(printf '{"kind":"memory","mode":"%s"}' "$MEMORY_MODE")"

# ---------------------------------------------------------------------------------------
# The two setups (the cluster functions and measure() are in common.sh)

# run_setup <setup> <nodes> <replication factor> <min.insync.replicas>
run_setup() {
  local setup=$1 n=$2 rf=$3 min_isr=$4 topic="bench-repl-$1"
  record "{\"kind\":\"setup\",\"setup\":\"$setup\",\"brokers\":$n,\"rf\":$rf,\"min_insync\":$min_isr,\"topic\":\"$topic\",\"loadavg_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
  if ! start_cluster "$setup" "$n" || ! create_topic "$topic" "$rf" "$min_isr"; then
    record "{\"kind\":\"setup_failed\",\"setup\":\"$setup\"}"
    stop_cluster
    return 0
  fi
  ((n > 1)) || fill_cgroup_with_log "$BOOTSTRAP" "$PARTITIONS" "$WORK/loadgen.err"
  if [[ "$WARMUP_SECONDS" != 0 ]]; then
    log "$setup: warm-up, ${WARMUP_SECONDS}s unmeasured"
    timeout -k 5 90 env "${CLIENT_ENV[@]}" "$LOADGEN" produce-throughput --bootstrap "$BOOTSTRAP" --topic "$topic" \
      --record-bytes "$RECORD_BYTES" --acks "$ACKS" --count 20000000 --duration-s "$WARMUP_SECONDS" \
      --linger-ms "$TP_LINGER_MS" --timeout-s 60 >/dev/null 2>>"$LOGS_DIR/loadgen.log" ||
      log "$setup: WARNING: the warm-up run did not finish cleanly (see $LOGS_DIR/loadgen.log)"
  fi
  mark_logs   # the measurements start
  log "$setup: produce throughput, $RECORD_BYTES B, acks=$ACKS, linger.ms=$TP_LINGER_MS, ${TP_SECONDS}s x $REPS"
  for rep in $(seq 1 "$REPS"); do
    measure throughput "$rep" 0 $((${TP_SECONDS%.*} + 60)) produce-throughput --topic "$topic" \
      --record-bytes "$RECORD_BYTES" --acks "$ACKS" --count 20000000 --duration-s "$TP_SECONDS" \
      --linger-ms "$TP_LINGER_MS"
  done
  log "$setup: produce latency at ${LAT_RATES[*]} msgs/s, linger.ms=$LAT_LINGER_MS, ${LAT_SECONDS}s x $LAT_REPS"
  for rep in $(seq 1 "$LAT_REPS"); do
    for rate in "${LAT_RATES[@]}"; do
      measure latency "$rep" "$rate" "$(python3 -c "print(int($LAT_SECONDS + $LAT_WARMUP + 60))")" \
        produce-latency --topic "$topic" --record-bytes "$RECORD_BYTES" --acks "$ACKS" --rate "$rate" \
        --duration-s "$LAT_SECONDS" --warmup-s "$LAT_WARMUP" --linger-ms "$LAT_LINGER_MS"
    done
  done
  # Did any replica fall out of the ISR under the load?
  record "{\"kind\":\"topic_state\",\"setup\":\"$setup\",\"when\":\"end\",\"topic\":\"$topic\",\"state\":$(topic_state "$topic")}"
  mark_logs   # the shutdown starts
  stop_cluster
}

run_setup rf1 1 1 1
run_setup "rf$REPLICAS" "$REPLICAS" "$REPLICAS" "$MIN_INSYNC"

record "$(printf '{"kind":"machine_end","loadavg_end":"%s"}' "$(cut -d' ' -f1-3 /proc/loadavg)")"
python3 "$ROOT/bench/replication_report.py" "$RESULTS_JSONL" --markdown "$RESULTS_MD"
log "raw results: $RESULTS_JSONL; broker and client logs: $LOGS_DIR"
log "markdown table: $RESULTS_MD"
