#!/usr/bin/env bash
# bench/run.sh: one command that measures Gregor and, as the reference, librdkafka's
# in-memory mock cluster with the same client, plus this machine's loopback TCP and
# sequential disk write bandwidth and the CPU cost of appending to the page cache, and
# prints/writes the results table. Latency is measured at fixed rates (LAT_RATES) for
# Gregor and the mock taking turns, end-to-end latency for Gregor and Redis Streams, and
# the peers (Redis Streams, NATS JetStream; bench/install-peers.sh installs them from
# Debian) in the same run at the same rates.
# See bench/README.md. Every step is bounded by a timeout; a full run takes ~20 minutes
# (QUICK=1: ~3 minutes, every figure from one short run).
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
#   QUICK=1            short run: REPS=1 LAT_REPS=1 LAT_SECONDS=1 TP_SECONDS=1, 1 KiB acks=all
#                      only, no consume runs, smaller disk test (each can still be set)
#   LAT_SECONDS        measured seconds per latency run (default 3)
#   LAT_REPS           repetitions of each latency point, median reported (default 3)
#   LAT_WARMUP         unmeasured seconds before that (default 0.5)
#   LAT_LINGER_MS      linger.ms of the latency runs (default 0)
#   LAT_RATES          fixed rates (records/s) of the latency runs (default "1000 10000 50000")
#   LAT_ACKS           acks of the fixed-rate latency runs (default "all 1")
#   LAT_BYTES          record size of the fixed-rate runs (default 1024)
#   E2E=0              no end-to-end latency runs (produce to a consumer's poll)
#   PEERS              peers measured in the same run (default "redis nats"; "" none); a
#                      peer whose server or load generator is missing is left out
#   INSTALL_PEERS=0    do not run bench/install-peers.sh (apt-get) for missing peers
#   GREGOR_FSYNC=0     no second broker with log.flush.interval.messages=1
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
if [[ "${QUICK:-0}" == 1 ]]; then
  : "${REPS:=1}" "${LAT_REPS:=1}" "${LAT_SECONDS:=1}" "${TP_SECONDS:=1}" "${DISK_MIB:=256}"
  : "${PRODUCE_SIZES:=1024}" "${PRODUCE_ACKS:=all}" "${CONSUME_SIZES=}"
fi
LAT_RATES="${LAT_RATES:-1000 10000 50000}"
LAT_ACKS="${LAT_ACKS:-all 1}"
LAT_BYTES="${LAT_BYTES:-1024}"
E2E="${E2E:-1}"
PEERS="${PEERS-redis nats}"
GREGOR_FSYNC="${GREGOR_FSYNC:-1}"
PARTITIONS="${PARTITIONS:-4}"
TP_SECONDS="${TP_SECONDS:-2}"
REPS="${REPS:-5}"
LAT_SECONDS="${LAT_SECONDS:-3}"
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

# The peers' servers and client libraries, from Debian (before the build, which finds
# the libraries).
if [[ -n "$PEERS" && "${INSTALL_PEERS:-1}" != 0 ]]; then
  log "peers: checking/installing their Debian packages (bench/install-peers.sh)"
  "$ROOT/bench/install-peers.sh" || log "WARNING: bench/install-peers.sh failed; peers without their packages are left out"
fi

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
  # The peers' load generators exist as targets only when their libraries were found.
  if [[ -n "$PEERS" ]]; then
    peer_dir="$BUILD_DIR"
    [[ $configured == 0 ]] && peer_dir="$BUILD_DIR/bench-standalone"
    cmake "$peer_dir" >/dev/null 2>&1 || true   # finds libraries installed since it was configured
    for t in gregor-redis-loadgen gregor-nats-loadgen; do
      if ninja -C "$peer_dir" -t targets all 2>/dev/null | grep -q "^$t:"; then
        ninja -C "$peer_dir" "$t" >&2 || log "WARNING: building $t failed"
      fi
    done
  fi
fi
find_bench_bins || die "bench tools not built (looked in $BUILD_DIR/bench and $BUILD_DIR/bench-standalone)"
LOADGEN="$BENCH_BIN_DIR/gregor-loadgen"
MOCK_BIN="$BENCH_BIN_DIR/gregor-mock-cluster"
NETDISK="$BENCH_BIN_DIR/gregor-netdisk"
REDIS_LOADGEN="$BENCH_BIN_DIR/gregor-redis-loadgen"
NATS_LOADGEN="$BENCH_BIN_DIR/gregor-nats-loadgen"

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
declare -A PID_OF=() BOOT_OF=()   # every measured server: its process and address
cleanup() {
  set +e
  if [[ -n "$GREGOR_PID" ]] && kill -0 "$GREGOR_PID" 2>/dev/null; then
    stop_pids 10 "$GREGOR_PID"
    ((${#KILLED_PIDS[@]} == 0)) || log "gregor did not stop on SIGTERM; killed it"
  fi
  local t
  for t in gregor-fsync redis nats; do
    if [[ -n "${PID_OF[$t]:-}" ]] && kill -0 "${PID_OF[$t]}" 2>/dev/null; then
      stop_pids 10 "${PID_OF[$t]}"
      ((${#KILLED_PIDS[@]} == 0)) || log "$t did not stop on SIGTERM; killed it"
    fi
  done
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
record "$(printf '{"kind":"machine","build_type":"%s","nproc":%d,"cpu":"%s","kernel":"%s","loadavg_start":"%s","git":"%s","date":"%s","gregor_bin":"%s","partitions":%d,"tp_seconds":%s,"reps":%d,"lat_seconds":%s,"lat_reps":%d,"lat_linger_ms":%d,"tp_linger_ms":%d,"lat_rates":"%s","lat_bytes":%d}' \
  "${build_type_now:-RelWithDebInfo}" "$(nproc)" "${cpu_model//\"/}" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(tree_description)" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${GREGOR_BIN:-}" "$PARTITIONS" "$TP_SECONDS" "$REPS" "$LAT_SECONDS" \
  "$LAT_REPS" "$LAT_LINGER_MS" "$TP_LINGER_MS" "$LAT_RATES" "$LAT_BYTES")"
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
read -r -a LAT_ACKS_LIST <<<"$LAT_ACKS"
read -r -a LAT_RATES_LIST <<<"$LAT_RATES"
for a in "${LAT_ACKS_LIST[@]}"; do mock_topics+=(--topic "bench-fixed-$a:$PARTITIONS"); done
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
PID_OF[mock]=$MOCK_PID
BOOT_OF[mock]=$MOCK_BOOTSTRAP
PID_OF[gregor]=$GREGOR_PID
BOOT_OF[gregor]=$GREGOR_BOOTSTRAP
bootstrap_of() { echo "${BOOT_OF[$1]}"; }

# start_server <name> <port> <tenths to wait> <command...>: starts a peer (or the second
# broker) in the background, its output in $WORK/<name>.log; sets PID_OF and BOOT_OF, or
# leaves them unset (with the log's tail) when it does not listen in time.
start_server() {
  local name=$1 port=$2 tenths=$3
  shift 3
  "$@" </dev/null >"$WORK/$name.log" 2>&1 &
  local pid=$!
  if wait_listening "$pid" "$port" "$tenths"; then
    PID_OF[$name]=$pid
    BOOT_OF[$name]="127.0.0.1:$port"
    log "$name is accepting connections at 127.0.0.1:$port"
    return 0
  fi
  log "WARNING: $name did not start (last lines of its log follow); leaving it out"
  tail -10 "$WORK/$name.log" >&2 || true
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 1
}

# Gregor with log.flush.interval.messages=1: every append fsynced before it is
# acknowledged (the durability of Redis' appendfsync always).
if [[ $RUN_GREGOR == 1 && $GREGOR_FSYNC == 1 ]]; then
  port="$(free_port)"
  mkdir -p "$WORK/gregor-fsync-logs"
  # shellcheck disable=SC2086
  if start_server gregor-fsync "$port" 300 "$GREGOR_BIN" server \
      --override "listeners=PLAINTEXT://127.0.0.1:$port" --override "log.dirs=$WORK/gregor-fsync-logs" \
      --override node.id=1 --override "num.partitions=$PARTITIONS" \
      --override log.flush.interval.messages=1 ${GREGOR_ARGS:-}; then
    GREGOR_FSYNC_TARGET=gregor-fsync
  fi
fi

# The peers, each on a free port with its data in $WORK. Redis: one server, its
# appendfsync switched per run (CONFIG SET) between "no" (written to the page cache, as
# Gregor does by default) and "always" (fsynced before the reply); no RDB snapshots, no
# AOF rewrites. NATS: JetStream with file storage (its default fsyncs every 2 minutes).
PEER_TARGETS=()
for peer in $PEERS; do
  case $peer in
    redis)
      if ! command -v redis-server >/dev/null || [[ ! -x $REDIS_LOADGEN ]]; then
        log "WARNING: redis-server or gregor-redis-loadgen missing; Redis Streams left out"
        continue
      fi
      port="$(free_port)"
      mkdir -p "$WORK/redis-data"
      start_server redis "$port" 100 redis-server --bind 127.0.0.1 --port "$port" \
        --dir "$WORK/redis-data" --appendonly yes --appendfsync no --save "" \
        --auto-aof-rewrite-percentage 0 --protected-mode no --daemonize no || continue
      BOOT_OF[redis-no]=${BOOT_OF[redis]}; PID_OF[redis-no]=${PID_OF[redis]}
      BOOT_OF[redis-always]=${BOOT_OF[redis]}; PID_OF[redis-always]=${PID_OF[redis]}
      PEER_TARGETS+=(redis-no redis-always)
      ;;
    nats)
      if ! command -v nats-server >/dev/null || [[ ! -x $NATS_LOADGEN ]]; then
        log "WARNING: nats-server or gregor-nats-loadgen missing; NATS JetStream left out"
        continue
      fi
      port="$(free_port)"
      mkdir -p "$WORK/nats-data"
      start_server nats "$port" 100 nats-server -js -a 127.0.0.1 -p "$port" -sd "$WORK/nats-data" || continue
      PEER_TARGETS+=(nats)
      ;;
    *) log "WARNING: unknown peer $peer (known: redis nats)" ;;
  esac
done
record "{\"kind\":\"peers\",\"targets\":\"${PEER_TARGETS[*]}\",\"redis\":\"$(redis-server --version 2>/dev/null | awk '{print $3}')\",\"nats\":\"$(nats-server --version 2>/dev/null)\"}"
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
      record "{\"kind\":\"$kind\",\"target\":\"$target\",\"size\":$size,\"acks\":\"$acks\",\"rep\":$rep$REC_EXTRA,\"result\":null}"
      return 0
    fi
  fi
  local server_pid="${PID_OF[$target]:-}"
  if [[ $target != gregor ]] && ! kill -0 "$server_pid" 2>/dev/null; then
    log "  $target $kind $size B acks=$acks: skipped, its server is not running"
    record "{\"kind\":\"$kind\",\"target\":\"$target\",\"size\":$size,\"acks\":\"$acks\",\"rep\":$rep$REC_EXTRA,\"result\":null}"
    return 0
  fi
  local bin=$LOADGEN addr=(--bootstrap "$(bootstrap_of "$target")")
  case $target in
    redis-*)
      bin=$REDIS_LOADGEN
      addr=(--server "$(bootstrap_of "$target")")
      redis-cli -h 127.0.0.1 -p "${BOOT_OF[$target]##*:}" CONFIG SET appendfsync "${target#redis-}" >/dev/null ||
        log "WARNING: CONFIG SET appendfsync ${target#redis-} failed"
      ;;
    nats)
      bin=$NATS_LOADGEN
      addr=(--server "$(bootstrap_of "$target")")
      ;;
  esac
  local out rc=0 cpu0 cpu1 wall0 wall1
  cpu0="$(cpu_ticks "$server_pid")"
  wall0=$EPOCHREALTIME
  out="$(timeout -k 5 $((tmo + 30)) env "${CLIENT_ENV[@]}" "$bin" "$@" "${addr[@]}" \
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
if "e2e_p99_ms" in d:
    print("%.0f msgs/s  end to end p50 %.3f  p99 %.3f  p99.9 %.3f ms%s" % (d["achieved_rate"], d["e2e_p50_ms"] or -1, d["e2e_p99_ms"] or -1, d["e2e_p999_ms"] or -1, "" if d["ok"] else "  (INCOMPLETE)"))
elif "p99_ms" in d:
    print("%.0f msgs/s  p50 %.3f  p99 %.3f  p99.9 %.3f ms%s" % (d["achieved_rate"], d["p50_ms"] or -1, d["p99_ms"] or -1, d["p999_ms"] or -1, "" if d["ok"] else "  (INCOMPLETE)"))
else:
    who = " (%d consumers)" % d["consumers"] if d.get("consumers", 1) > 1 else ""
    print("%.0f msgs/s  %.1f MB/s%s%s" % (d["msgs_per_s"], d["mb_per_s"], who, "" if d["ok"] else "  (INCOMPLETE)"))
' "$out" 2>/dev/null || echo "?")"
    log "  $target $kind $size B acks=$acks rep $rep: $summary"
    if [[ $rc != 0 ]]; then tail -3 "$WORK/loadgen.err" >&2; fi
  fi
  record "{\"kind\":\"$kind\",\"target\":\"$target\",\"size\":$size,\"acks\":\"$acks\",\"rep\":$rep$REC_EXTRA,\"result\":$out}"
}
REC_EXTRA=""   # more fields for the records loadgen() writes, e.g. ,"rate":10000

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
# maximum rate with the latency runs' client settings (LAT_LINGER_MS, one run per target).

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
  done
done

# ---------------------------------------------------------------------------------------
# Latency at fixed rates: LAT_BYTES records at each of LAT_RATES, LAT_REPS runs per point,
# the targets taking turns within each repetition so that a slow spell of the machine
# does not fall on one of them. Gregor and the mock for each of LAT_ACKS; the peers with
# the acks=all runs (their acknowledgement is their only one).

lat_timeout() { python3 -c "print(int($LAT_SECONDS + $LAT_WARMUP + 60))"; }
kafka_latency_args() {   # <acks> <rate> [--e2e]: gregor-loadgen's arguments
  LAT_ARGS=(produce-latency --topic "bench-fixed-$1" --partitions "$PARTITIONS" --record-bytes "$LAT_BYTES"
            --acks "$1" --rate "$2" --duration-s "$LAT_SECONDS" --warmup-s "$LAT_WARMUP" --linger-ms "$LAT_LINGER_MS")
  if [[ ${3:-} == --e2e ]]; then
    # Its own topic: the consumer starts at the end of an otherwise idle log.
    LAT_ARGS=(produce-latency --topic bench-e2e --partitions "$PARTITIONS" --record-bytes "$LAT_BYTES"
              --acks all --rate "$2" --duration-s "$LAT_SECONDS" --warmup-s 1 --linger-ms "$LAT_LINGER_MS" --e2e)
  fi
}
peer_latency_args() {   # <rate> [--e2e]: the peers' load generators' arguments
  LAT_ARGS=(latency --partitions "$PARTITIONS" --record-bytes "$LAT_BYTES" --rate "$1"
            --duration-s "$LAT_SECONDS" --warmup-s "$LAT_WARMUP" ${2:-})
}
n_points=$(( ${#LAT_ACKS_LIST[@]} * ${#LAT_RATES_LIST[@]} ))
point=0
for a in "${LAT_ACKS_LIST[@]}"; do
  for r in "${LAT_RATES_LIST[@]}"; do
    point=$((point + 1))
    who=("${TARGETS[@]}")
    [[ $a == all ]] && who+=(${GREGOR_FSYNC_TARGET:-} "${PEER_TARGETS[@]}")
    log "latency [$point/$n_points]: $LAT_BYTES B at $r records/s, acks=$a, ${LAT_SECONDS}s x $LAT_REPS: ${who[*]}"
    REC_EXTRA=",\"rate\":$r"
    for rep in $(seq 1 "$LAT_REPS"); do
      for t in "${who[@]}"; do
        case $t in
          redis-*|nats) peer_latency_args "$r" ;;
          *) kafka_latency_args "$a" "$r" ;;
        esac
        loadgen "$t" fixed "$LAT_BYTES" "$a" "$rep" "$(lat_timeout)" "${LAT_ARGS[@]}"
      done
    done
    REC_EXTRA=""
  done
done

# End-to-end latency: produce to a consumer's poll, for Gregor and the peers (not the mock:
# its long poll answers on its own timer, not when a record arrives).
if [[ $E2E == 1 ]]; then
  who=()
  [[ $RUN_GREGOR == 1 ]] && who+=(gregor)
  for t in "${PEER_TARGETS[@]}"; do [[ $t == redis-always ]] || who+=("$t"); done
  for r in "${LAT_RATES_LIST[@]}"; do
    log "end-to-end latency: $LAT_BYTES B at $r records/s, ${LAT_SECONDS}s x $LAT_REPS: ${who[*]}"
    REC_EXTRA=",\"rate\":$r"
    for rep in $(seq 1 "$LAT_REPS"); do
      for t in "${who[@]}"; do
        case $t in
          redis-*|nats) peer_latency_args "$r" --e2e ;;
          *) kafka_latency_args all "$r" --e2e ;;
        esac
        loadgen "$t" e2e "$LAT_BYTES" all "$rep" "$(lat_timeout)" "${LAT_ARGS[@]}"
      done
    done
    REC_EXTRA=""
  done
fi

# Maximum throughput at equal durability: Gregor (acks=all, as the produce runs above),
# Gregor fsyncing every append, and the peers, taking turns, REPS runs each.
tp_who=()
[[ $RUN_GREGOR == 1 ]] && tp_who+=(gregor ${GREGOR_FSYNC_TARGET:-})
tp_who+=("${PEER_TARGETS[@]}")
if ((${#tp_who[@]} > 1)); then
  log "peers' maximum throughput: $LAT_BYTES B, ${TP_SECONDS}s x $REPS: ${tp_who[*]}"
  for rep in $(seq 1 "$REPS"); do
    for t in "${tp_who[@]}"; do
      case $t in
        redis-*|nats)
          loadgen "$t" peer_tp "$LAT_BYTES" all "$rep" "$((${TP_SECONDS%.*} + 60))" throughput \
            --partitions "$PARTITIONS" --record-bytes "$LAT_BYTES" --duration-s "$TP_SECONDS" --window 1000 ;;
        *)
          loadgen "$t" peer_tp "$LAT_BYTES" all "$rep" "$((${TP_SECONDS%.*} + 60))" produce-throughput \
            --topic bench-peer-tp --partitions "$PARTITIONS" --record-bytes "$LAT_BYTES" --acks all \
            --count 20000000 --duration-s "$TP_SECONDS" --linger-ms "$TP_LINGER_MS" ;;
      esac
    done
  done
fi

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
