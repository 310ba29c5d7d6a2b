#!/usr/bin/env bash
# bench/run.sh: one command that measures Gregor and, as the reference, librdkafka's
# in-memory mock cluster with the same client, plus this machine's loopback TCP and
# sequential disk write bandwidth and the CPU cost of appending to the page cache, and
# prints/writes the results table.
# See bench/README.md. Every step is bounded by a timeout; a full run takes ~7 minutes.
#
# Environment (all optional):
#   BUILD_DIR          build directory (default: <repo>/build, configured Release)
#   GREGOR_BIN         broker binary (default: $BUILD_DIR/gregor or $BUILD_DIR/src/app/gregor)
#   GREGOR_ARGS        extra arguments for "gregor server"
#   SKIP_BUILD=1       do not run cmake/ninja
#   SKIP_GREGOR=1      measure the mock cluster (and the machine) only
#   PARTITIONS         partitions of the produce topics (default 4)
#   TP_SECONDS         seconds per produce-throughput run (default 2)
#   REPS               repetitions of each throughput point, median reported (default 5)
#   LAT_SECONDS        measured seconds per latency run (default 4)
#   LAT_REPS           repetitions of each latency point, median reported (default 3)
#   LAT_WARMUP         unmeasured seconds before that (default 0.5)
#   LAT_LINGER_MS      linger.ms of the latency runs (default 0)
#   TP_LINGER_MS       linger.ms of the throughput runs (default 5, librdkafka's default)
#   DISK_MIB           MiB written by the disk test (default 1024)
#   PRODUCE_SIZES      record sizes of the produce runs (default "100 1024")
#   PRODUCE_ACKS       acks of the produce runs (default "1 all")
#   CONSUME_SIZES      record sizes of the consume runs (default "100 1024 65536"; empty: none)
#   CONSUME_CONSUMERS  consumers reading each consume topic side by side, one client and
#                      connection each (default "1 N", N = cores > 1); every count is a row
#   BENCH_MEMORY_GIB   size of the memory cgroup the run happens in (default 4; 0: none)
#   BENCH_TMPDIR       where the broker's log dir and the disk test file go (default $BUILD_DIR)
#   RESULTS_MD         markdown output (default $BUILD_DIR/bench-results.md)
#   RESULTS_JSONL      raw results, one JSON object per run (default $BUILD_DIR/bench-results.jsonl)

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
PARTITIONS="${PARTITIONS:-4}"
TP_SECONDS="${TP_SECONDS:-2}"
REPS="${REPS:-5}"
LAT_SECONDS="${LAT_SECONDS:-4}"
LAT_REPS="${LAT_REPS:-3}"
LAT_WARMUP="${LAT_WARMUP:-0.5}"
LAT_LINGER_MS="${LAT_LINGER_MS:-0}"
TP_LINGER_MS="${TP_LINGER_MS:-5}"
DISK_MIB="${DISK_MIB:-1024}"
RESULTS_MD="${RESULTS_MD:-$BUILD_DIR/bench-results.md}"
RESULTS_JSONL="${RESULTS_JSONL:-$BUILD_DIR/bench-results.jsonl}"
# Consume topics: sized so that librdkafka's mock (which keeps at most 5 MiB and 100k
# records per partition) holds every record; partitions are filled evenly.
CONSUME_100_PARTITIONS="${CONSUME_100_PARTITIONS:-64}"
CONSUME_100_PER_PARTITION="${CONSUME_100_PER_PARTITION:-40000}"   # ~4.4 MB per partition
CONSUME_1K_PARTITIONS="${CONSUME_1K_PARTITIONS:-128}"
CONSUME_1K_PER_PARTITION="${CONSUME_1K_PER_PARTITION:-4000}"      # ~4.2 MB per partition
# 64 KiB records: the client's per-record cost no longer sets the pace, so this
# topic measures how fast the broker serves bytes from the page cache.
CONSUME_64K_PARTITIONS="${CONSUME_64K_PARTITIONS:-256}"
CONSUME_64K_PER_PARTITION="${CONSUME_64K_PER_PARTITION:-64}"      # ~4.2 MB per partition

# log, die, CLIENT_ENV (the client's and the mock's malloc settings), the memory cgroup,
# cpu_ticks: shared with bench/replication.sh.
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

command -v python3 >/dev/null || die "python3 is needed for the report"

# ---------------------------------------------------------------------------------------
# Build

BENCH_BIN_DIR=""
BUILT_BENCH_DIR=""   # where this run built the tools, if it did
find_bench_bins() {
  for d in $BUILT_BENCH_DIR "$BUILD_DIR/bench" "$BUILD_DIR/bench-standalone"; do
    if [[ -x "$d/gregor-loadgen" && -x "$d/gregor-mock-cluster" && -x "$d/gregor-netdisk" ]]; then
      BENCH_BIN_DIR="$d"
      return 0
    fi
  done
  return 1
}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  command -v cmake >/dev/null || die "cmake not found"
  command -v ninja >/dev/null || die "ninja not found"
  build_type=""
  if [[ -f "$BUILD_DIR/CMakeCache.txt" ]]; then
    build_type="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")"
  fi
  configured=1
  # An existing optimised build is used as it is (the tree's own default is RelWithDebInfo,
  # which an empty CMAKE_BUILD_TYPE means); anything else is reconfigured to Release.
  if [[ ! -f "$BUILD_DIR/build.ninja" || ! "$build_type" =~ ^(|Release|RelWithDebInfo)$ ]]; then
    log "configuring $BUILD_DIR (Release)"
    mkdir -p "$BUILD_DIR"
    if ! cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$BUILD_DIR/cmake-bench.log" 2>&1; then
      configured=0
      log "configuring the whole tree failed (see $BUILD_DIR/cmake-bench.log); building bench/ on its own"
    fi
  fi
  targets=(gregor-loadgen gregor-mock-cluster gregor-netdisk)
  if [[ $configured == 1 ]]; then
    if [[ "${SKIP_GREGOR:-0}" != 1 ]] && ninja -C "$BUILD_DIR" -t targets all 2>/dev/null | awk '/^gregor:/ { f = 1 } END { exit !f }'; then
      targets+=(gregor)
    fi
    log "building ${targets[*]}"
    BUILT_BENCH_DIR="$BUILD_DIR/bench"
    if ! ninja -C "$BUILD_DIR" "${targets[@]}" >&2; then
      if [[ " ${targets[*]} " == *" gregor "* ]]; then
        log "building the broker failed; building the bench tools alone"
        ninja -C "$BUILD_DIR" gregor-loadgen gregor-mock-cluster gregor-netdisk >&2 || configured=0
      else
        configured=0
      fi
    fi
  fi
  if [[ $configured == 0 ]]; then
    BUILT_BENCH_DIR="$BUILD_DIR/bench-standalone"
    cmake -S "$ROOT/bench" -B "$BUILD_DIR/bench-standalone" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
    ninja -C "$BUILD_DIR/bench-standalone" gregor-loadgen gregor-mock-cluster gregor-netdisk >&2
  fi
fi
find_bench_bins || die "bench tools not built (looked in $BUILD_DIR/bench and $BUILD_DIR/bench-standalone)"
LOADGEN="$BENCH_BIN_DIR/gregor-loadgen"
MOCK_BIN="$BENCH_BIN_DIR/gregor-mock-cluster"
NETDISK="$BENCH_BIN_DIR/gregor-netdisk"

RUN_GREGOR=1
if [[ "${SKIP_GREGOR:-0}" == 1 ]]; then
  RUN_GREGOR=0
else
  if ! find_gregor_bin; then
    log "WARNING: no gregor binary found (set GREGOR_BIN); measuring the mock cluster only"
    RUN_GREGOR=0
  fi
fi

# ---------------------------------------------------------------------------------------
# Work directory, cleanup

mkdir -p "${BENCH_TMPDIR:-$BUILD_DIR}"
WORK="$(mktemp -d "${BENCH_TMPDIR:-$BUILD_DIR}/bench-run.XXXXXX")"
GREGOR_PID=""
MOCK_PID=""
cleanup() {
  set +e
  if [[ -n "$GREGOR_PID" ]] && kill -0 "$GREGOR_PID" 2>/dev/null; then
    stop_pids 10 "$GREGOR_PID"
    ((${#KILLED_PIDS[@]} == 0)) || log "gregor did not stop on SIGTERM; killed it"
  fi
  if [[ -n "$MOCK_PID" ]] && kill -0 "$MOCK_PID" 2>/dev/null; then
    kill -TERM "$MOCK_PID" 2>/dev/null
    wait "$MOCK_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
  leave_memory_cgroup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

: >"$RESULTS_JSONL"   # record() appends to it

# ---------------------------------------------------------------------------------------
# The machine

cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
build_type_now="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)"
record "$(printf '{"kind":"machine","build_type":"%s","nproc":%d,"cpu":"%s","kernel":"%s","loadavg_start":"%s","git":"%s","date":"%s","gregor_bin":"%s","partitions":%d,"tp_seconds":%s,"reps":%d,"lat_seconds":%s,"lat_reps":%d,"lat_linger_ms":%d,"tp_linger_ms":%d}' \
  "${build_type_now:-RelWithDebInfo}" "$(nproc)" "${cpu_model//\"/}" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(tree_description)" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${GREGOR_BIN:-}" "$PARTITIONS" "$TP_SECONDS" "$REPS" "$LAT_SECONDS" \
  "$LAT_REPS" "$LAT_LINGER_MS" "$TP_LINGER_MS")"
warn_if_busy

# Memory: every process of the run in a memory cgroup whose page cache is filled first
# (BENCH_MEMORY_GIB, default 4; 0: none). Why: see bench/common.sh and README.md.
BENCH_MEMORY_GIB="${BENCH_MEMORY_GIB:-4}"
use_memory_cgroup "$WORK"
record "$(printf '{"kind":"memory","mode":"%s"}' "$MEMORY_MODE")"

# What appending to the page cache costs one core, measured first, while the cgroup is
# full of the fill and nothing has just been freed: that is where a broker's appends
# take their pages from. Free page reporting returns freed guest memory to the host
# within moments, so on this project's VMs even a full cgroup gives the page cache
# pages the host must fault in again: new pages cost many times what cached ones do.
log "measuring the CPU cost of appending to the page cache"
if out="$(timeout -k 5 120 "$NETDISK" --skip-loopback --skip-disk --disk-dir "$WORK" --page-cache-mib 512 --page-cache-reps "$REPS")"; then
  record "{\"kind\":\"netdisk\",\"rep\":0,\"result\":$out}"
else
  log "WARNING: gregor-netdisk (page cache) failed"
fi
log "measuring loopback TCP and sequential disk write bandwidth ($REPS times)"
for rep in $(seq 1 "$REPS"); do
  if out="$(timeout -k 5 120 "$NETDISK" --skip-page-cache --loopback-seconds 1.5 --disk-dir "$WORK" --disk-mib "$DISK_MIB" --timeout-s 60)"; then
    record "{\"kind\":\"netdisk\",\"rep\":$rep,\"result\":$out}"
  else
    log "WARNING: gregor-netdisk failed"
  fi
done

# ---------------------------------------------------------------------------------------
# The two targets

read -r -a SIZES <<<"${PRODUCE_SIZES:-100 1024}"
read -r -a ACKS <<<"${PRODUCE_ACKS:-1 all}"
read -r -a CONSUME_SIZES <<<"${CONSUME_SIZES-100 1024 65536}"
default_consumers=1
(($(nproc) > 1)) && default_consumers="1 $(nproc)"
read -r -a CONSUME_CONSUMERS <<<"${CONSUME_CONSUMERS:-$default_consumers}"
size_name() {
  case $1 in
    1024) echo 1k ;;
    65536) echo 64k ;;
    *) echo "$1" ;;
  esac
}

mock_topics=()
for s in "${SIZES[@]}"; do
  for a in "${ACKS[@]}"; do
    mock_topics+=(--topic "bench-tp-$(size_name "$s")-$a:$PARTITIONS" --topic "bench-lat-$(size_name "$s")-$a:$PARTITIONS")
  done
done
mock_topics+=(--topic "bench-consume-100:$CONSUME_100_PARTITIONS" --topic "bench-consume-1k:$CONSUME_1K_PARTITIONS"
             --topic "bench-consume-64k:$CONSUME_64K_PARTITIONS")

log "starting librdkafka's mock cluster"
mkfifo "$WORK/mock.in"
env "${CLIENT_ENV[@]}" "$MOCK_BIN" "${mock_topics[@]}" <"$WORK/mock.in" >"$WORK/mock.out" 2>"$WORK/mock.log" &
MOCK_PID=$!
exec 7>"$WORK/mock.in"   # the mock stays up while this stays open
MOCK_BOOTSTRAP=""
for _ in $(seq 1 100); do
  MOCK_BOOTSTRAP="$(head -1 "$WORK/mock.out" 2>/dev/null || true)"
  [[ -n "$MOCK_BOOTSTRAP" ]] && break
  kill -0 "$MOCK_PID" 2>/dev/null || { cat "$WORK/mock.log" >&2; die "mock cluster exited"; }
  sleep 0.1
done
[[ -n "$MOCK_BOOTSTRAP" ]] || die "mock cluster did not print its bootstrap servers"
log "mock cluster at $MOCK_BOOTSTRAP"

GREGOR_BOOTSTRAP=""
if [[ $RUN_GREGOR == 1 ]]; then
  port="$(free_port)"
  mkdir -p "$WORK/gregor-logs"
  log "starting $GREGOR_BIN on 127.0.0.1:$port"
  # shellcheck disable=SC2086
  "$GREGOR_BIN" server \
    --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "log.dirs=$WORK/gregor-logs" \
    --override node.id=1 \
    --override "num.partitions=$PARTITIONS" \
    ${GREGOR_ARGS:-} </dev/null >"$WORK/gregor.log" 2>&1 &
  GREGOR_PID=$!
  if wait_listening "$GREGOR_PID" "$port" 300; then
    GREGOR_BOOTSTRAP="127.0.0.1:$port"
    log "gregor is accepting connections at $GREGOR_BOOTSTRAP"
  else
    log "WARNING: gregor did not start (last lines of its log follow); measuring the mock only"
    tail -20 "$WORK/gregor.log" >&2 || true
    RUN_GREGOR=0
  fi
fi

TARGETS=(mock)
[[ $RUN_GREGOR == 1 ]] && TARGETS+=(gregor)
bootstrap_of() { [[ $1 == mock ]] && echo "$MOCK_BOOTSTRAP" || echo "$GREGOR_BOOTSTRAP"; }
GREGOR_EXIT_NOTED=0
GREGOR_FAILS=0   # consecutive gregor runs without a result; after 3 the rest are skipped
gregor_alive() {
  [[ -n "$GREGOR_PID" ]] && kill -0 "$GREGOR_PID" 2>/dev/null && return 0
  if [[ -n "$GREGOR_PID" && $GREGOR_EXIT_NOTED == 0 ]]; then
    GREGOR_EXIT_NOTED=1
    local status=0
    wait "$GREGOR_PID" 2>/dev/null || status=$?
    log "WARNING: gregor exited during the run (status $status$( ((status > 128)) && echo ", signal $((status - 128))")); last lines of its log:"
    tail -20 "$WORK/gregor.log" >&2 || true
    record "{\"kind\":\"gregor_exit\",\"status\":$status}"
  fi
  return 1
}

# loadgen <target> <kind> <size> <acks> <rep> <timeout> <loadgen args...>
# Runs one measurement and records it (result null when it produced nothing).
loadgen() {
  local target=$1 kind=$2 size=$3 acks=$4 rep=$5 tmo=$6
  shift 6
  if [[ $target == gregor ]]; then
    local why=""
    if ! gregor_alive; then
      why="gregor is not running"
    elif ((GREGOR_FAILS >= 3)); then
      why="gregor failed the last $GREGOR_FAILS runs"
    fi
    if [[ -n "$why" ]]; then
      log "  $target $kind $size B acks=$acks: skipped, $why"
      record "{\"kind\":\"$kind\",\"target\":\"$target\",\"size\":$size,\"acks\":\"$acks\",\"rep\":$rep,\"result\":null}"
      return 0
    fi
  fi
  local out rc=0 server_pid cpu0 cpu1 wall0 wall1
  server_pid="$([[ $target == mock ]] && echo "$MOCK_PID" || echo "$GREGOR_PID")"
  cpu0="$(cpu_ticks "$server_pid")"
  wall0=$EPOCHREALTIME
  out="$(timeout -k 5 $((tmo + 30)) env "${CLIENT_ENV[@]}" "$LOADGEN" "$@" --bootstrap "$(bootstrap_of "$target")" \
         --timeout-s "$tmo" --label "$target" 2>"$WORK/loadgen.err")" || rc=$?
  wall1=$EPOCHREALTIME
  cpu1="$(cpu_ticks "$server_pid")"
  out="$(printf '%s\n' "$out" | grep '^{' | tail -1 || true)"
  # The server's CPU over the same call, beside the client's own (client_cpu_s): how
  # much of the machine each side used, which a latency figure depends on.
  if [[ -n "$out" && -n "$cpu0" && -n "$cpu1" ]]; then
    out="${out%\}}$(python3 -c "print(',\"server_cpu_s\":%.3f,\"server_wall_s\":%.3f}' % (($cpu1 - $cpu0) / $CLK_TCK, $wall1 - $wall0))")"
  fi
  if [[ -z "$out" ]]; then
    log "  $target $kind $size B acks=$acks: FAILED (exit $rc)"
    tail -5 "$WORK/loadgen.err" >&2 || true
    out=null
    if [[ $target == gregor ]]; then GREGOR_FAILS=$((GREGOR_FAILS + 1)); fi
  else
    if [[ $target == gregor ]]; then GREGOR_FAILS=0; fi
    local summary
    summary="$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
if "p99_ms" in d:
    print("%.0f msgs/s  p50 %.3f  p99 %.3f  p99.9 %.3f ms%s" % (d["achieved_rate"], d["p50_ms"] or -1, d["p99_ms"] or -1, d["p999_ms"] or -1, "" if d["ok"] else "  (INCOMPLETE)"))
else:
    who = " (%d consumers)" % d["consumers"] if d.get("consumers", 1) > 1 else ""
    print("%.0f msgs/s  %.1f MB/s%s%s" % (d["msgs_per_s"], d["mb_per_s"], who, "" if d["ok"] else "  (INCOMPLETE)"))
' "$out" 2>/dev/null || echo "?")"
    log "  $target $kind $size B acks=$acks rep $rep: $summary"
    if [[ $rc != 0 ]]; then tail -3 "$WORK/loadgen.err" >&2; fi
  fi
  record "{\"kind\":\"$kind\",\"target\":\"$target\",\"size\":$size,\"acks\":\"$acks\",\"rep\":$rep,\"result\":$out}"
}

# median_rate <kind> <target> <size> <acks>: median msgs/s of the recorded runs.
median_rate() {
  python3 - "$RESULTS_JSONL" "$1" "$2" "$3" "$4" <<'EOF'
import json, statistics, sys
path, kind, target, size, acks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
rates = []
for line in open(path):
    d = json.loads(line)
    if d.get("kind") == kind and d.get("target") == target and d.get("size") == size \
            and d.get("acks") == acks and d.get("result") and d["result"].get("ok"):
        rates.append(d["result"]["msgs_per_s"])
print(statistics.median(rates) if rates else 0)
EOF
}

# Before any measurement Gregor writes a little more log than the cgroup holds, so that its
# page cache is its own log (see fill_cgroup_with_log in bench/common.sh).
if [[ $RUN_GREGOR == 1 ]]; then
  fill_cgroup_with_log "$GREGOR_BOOTSTRAP" "$PARTITIONS" "$WORK/loadgen.err"
fi

# ---------------------------------------------------------------------------------------
# Produce: throughput (REPS runs per target, interleaved, at TP_LINGER_MS); then the
# maximum rate with the latency runs' client settings (LAT_LINGER_MS, one run per target);
# then latency paced at half of that maximum, each target at half of its own.

for s in "${SIZES[@]}"; do
  for a in "${ACKS[@]}"; do
    topic="bench-tp-$(size_name "$s")-$a"
    log "produce throughput: $s B records, acks=$a, $PARTITIONS partitions, ${TP_SECONDS}s x $REPS per target"
    for rep in $(seq 1 "$REPS"); do
      for t in "${TARGETS[@]}"; do
        loadgen "$t" produce "$s" "$a" "$rep" "$((${TP_SECONDS%.*} + 60))" produce-throughput \
          --topic "$topic" --partitions "$PARTITIONS" --record-bytes "$s" --acks "$a" --count 20000000 \
          --duration-s "$TP_SECONDS" --linger-ms "$TP_LINGER_MS"
      done
    done
    log "produce maximum rate with linger.ms=$LAT_LINGER_MS (the latency settings)"
    for t in "${TARGETS[@]}"; do
      loadgen "$t" maxrate "$s" "$a" 1 "$((${TP_SECONDS%.*} + 60))" produce-throughput \
        --topic "bench-lat-$(size_name "$s")-$a" --partitions "$PARTITIONS" --record-bytes "$s" \
        --acks "$a" --count 20000000 --duration-s "$TP_SECONDS" --linger-ms "$LAT_LINGER_MS"
    done
    declare -A lat_rate=()
    for t in "${TARGETS[@]}"; do
      max="$(median_rate maxrate "$t" "$s" "$a")"
      lat_rate[$t]="$(python3 -c "print(int(float('$max') / 2))")"
      if [[ "${lat_rate[$t]}" -le 0 ]]; then
        log "  $t: no maximum rate measured; skipping its latency runs"
        record "{\"kind\":\"latency\",\"target\":\"$t\",\"size\":$s,\"acks\":\"$a\",\"rep\":1,\"result\":null}"
      else
        log "produce latency: $t, $s B, acks=$a, paced at ${lat_rate[$t]} msgs/s (half of $max), $LAT_REPS runs"
      fi
    done
    # Interleaved, like the throughput runs, so that a slow spell of the machine
    # does not fall on one target only.
    for rep in $(seq 1 "$LAT_REPS"); do
      for t in "${TARGETS[@]}"; do
        [[ "${lat_rate[$t]}" -gt 0 ]] || continue
        loadgen "$t" latency "$s" "$a" "$rep" $(python3 -c "print(int($LAT_SECONDS + $LAT_WARMUP + 60))") \
          produce-latency --topic "bench-lat-$(size_name "$s")-$a" --partitions "$PARTITIONS" \
          --record-bytes "$s" --acks "$a" --rate "${lat_rate[$t]}" --duration-s "$LAT_SECONDS" \
          --warmup-s "$LAT_WARMUP" --linger-ms "$LAT_LINGER_MS"
      done
    done
  done
done

# ---------------------------------------------------------------------------------------
# Consume: fill one topic per record size evenly, then read it all from the beginning.

for s in "${CONSUME_SIZES[@]}"; do
  case $s in
    100) parts=$CONSUME_100_PARTITIONS; per=$CONSUME_100_PER_PARTITION ;;
    1024) parts=$CONSUME_1K_PARTITIONS; per=$CONSUME_1K_PER_PARTITION ;;
    *) parts=$CONSUME_64K_PARTITIONS; per=$CONSUME_64K_PER_PARTITION ;;
  esac
  count=$((parts * per))
  run=$(( per >= 20 ? per / 20 : 1 ))   # about 20 batches per partition
  topic="bench-consume-$(size_name "$s")"
  log "consume: filling $topic ($count x $s B over $parts partitions)"
  for t in "${TARGETS[@]}"; do
    create=()
    [[ $t == gregor ]] && create=(--create-topic)
    loadgen "$t" fill "$s" 1 1 120 produce-throughput --topic "$topic" --partitions "$parts" \
      "${create[@]}" --record-bytes "$s" --acks 1 --count "$count" --spread "$run" \
      --linger-ms "$TP_LINGER_MS"
  done
  log "consume: reading $topic from the beginning with ${CONSUME_CONSUMERS[*]} consumer(s), $REPS times per target"
  for rep in $(seq 1 "$REPS"); do
    for n in "${CONSUME_CONSUMERS[@]}"; do
      for t in "${TARGETS[@]}"; do
        loadgen "$t" consume "$s" - "$rep" 120 consume-throughput --topic "$topic" --count "$count" \
          --consumers "$n"
      done
    done
  done
done

record "$(printf '{"kind":"machine_end","loadavg_end":"%s"}' "$(cut -d' ' -f1-3 /proc/loadavg)")"
if [[ $RUN_GREGOR == 1 ]]; then
  gregor_alive || true   # reports an exit that no later step noticed
fi

# ---------------------------------------------------------------------------------------
# Report

exec 7>&-
python3 "$ROOT/bench/report.py" "$RESULTS_JSONL" --markdown "$RESULTS_MD"
log "raw results: $RESULTS_JSONL"
log "markdown table: $RESULTS_MD"
