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
find_loadgen() {
  [[ -n "${LOADGEN:-}" ]] && { [[ -x "$LOADGEN" ]]; return; }
  for c in "$BUILD_DIR/bench/gregor-loadgen" "$BUILD_DIR/bench-standalone/gregor-loadgen"; do
    [[ -x "$c" ]] && { LOADGEN="$c"; return 0; }
  done
  return 1
}
if ! find_loadgen && [[ "${SKIP_BUILD:-0}" != 1 && -z "${LOADGEN:-}" && -f "$BUILD_DIR/build.ninja" ]]; then
  # Another build of the same tree may be running: ninja must not run twice in one
  # build directory, so wait for it (bounded) before building the one target.
  for _ in $(seq 1 120); do
    pgrep -x ninja >/dev/null || break
    log "waiting for a running ninja to finish before building gregor-loadgen"
    sleep 5
  done
  pgrep -x ninja >/dev/null && die "ninja is still running after 10 minutes; build gregor-loadgen when it is done"
  log "building gregor-loadgen"
  timeout 600 ninja -C "$BUILD_DIR" gregor-loadgen >&2 || die "building gregor-loadgen failed"
fi
find_loadgen || die "no gregor-loadgen (looked in $BUILD_DIR/bench and $BUILD_DIR/bench-standalone; set LOADGEN)"

# ---------------------------------------------------------------------------------------
# Work directory, cleanup

mkdir -p "${BENCH_TMPDIR:-$BUILD_DIR}" "$LOGS_DIR"
rm -f "$LOGS_DIR"/rf*-node*.log "$LOGS_DIR/loadgen.log"   # the last run's
WORK="$(mktemp -d "${BENCH_TMPDIR:-$BUILD_DIR}/bench-replication.XXXXXX")"
BROKER_PIDS=()
NODE_LOGS=()
cleanup() {
  set +e
  if ((${#BROKER_PIDS[@]} > 0)); then
    log "stopping brokers ${BROKER_PIDS[*]}"
    stop_pids 20 "${BROKER_PIDS[@]}"
    BROKER_PIDS=()
    local i
    for ((i = 1; i <= ${#NODE_LOGS[@]}; i++)); do cp "${NODE_LOGS[i - 1]}" "$LOGS_DIR/$SETUP-node$i.log"; done
  fi
  rm -rf "$WORK"
  leave_memory_cgroup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Both setups run the same binary, even if the build directory is rebuilt meanwhile.
GREGOR_SOURCE_BIN="$GREGOR_BIN"
cp "$GREGOR_BIN" "$WORK/gregor"
GREGOR_BIN="$WORK/gregor"
"$GREGOR_BIN" --help >/dev/null 2>&1 || die "$GREGOR_SOURCE_BIN does not run (is it being rebuilt?)"

: >"$RESULTS_JSONL"   # record() appends to it

record "$(python3 -c 'import json, sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:])))' \
  kind=machine "nproc=$(nproc)" "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
  "kernel=$(uname -r)" "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)" "git=$(tree_description)" \
  "build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)" \
  "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "gregor_bin=$GREGOR_SOURCE_BIN ($(date -u -r "$GREGOR_SOURCE_BIN" +%Y-%m-%dT%H:%M:%SZ))" "gregor_args=${GREGOR_ARGS:-}" \
  "partitions=$PARTITIONS" "record_bytes=$RECORD_BYTES" "acks=$ACKS" "replicas=$REPLICAS" \
  "min_insync=$MIN_INSYNC" "tp_seconds=$TP_SECONDS" "reps=$REPS" "tp_linger_ms=$TP_LINGER_MS" \
  "lat_rates=${LAT_RATES[*]}" "lat_seconds=$LAT_SECONDS" "lat_warmup=$LAT_WARMUP" "lat_reps=$LAT_REPS" \
  "lat_linger_ms=$LAT_LINGER_MS" "target_ratio=$TARGET_RATIO")"
warn_if_busy

# Every process of the run in one memory cgroup whose page cache is filled first; the
# single broker then writes more log than the cgroup holds (fill_cgroup_with_log), so that
# both setups write into pages reclaimed from log data, as a broker that has run for a
# while does. The three brokers reclaim the single broker's log, kept until the end.
use_memory_cgroup "$WORK"
record "$(printf '{"kind":"memory","mode":"%s"}' "$MEMORY_MODE")"

# ---------------------------------------------------------------------------------------
# A cluster of N nodes, each broker and controller, on 127.0.0.1

SETUP=""        # rf1 or rf<REPLICAS>: what is running now
BOOTSTRAP=""

# start_cluster <setup> <nodes>: starts the nodes at once (a lone voter cannot elect) and
# waits until each one listens for clients, which it does once it has registered.
start_cluster() {
  local setup=$1 n=$2 i
  local -a ports=()
  # free_port closes its socket, so the OS may hand out the same port twice: every node's
  # two ports must differ.
  while ((${#ports[@]} < 2 * n)); do
    local p
    p="$(free_port)"
    [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
  done
  local voters="" listeners=()
  for ((i = 1; i <= n; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:${ports[n + i - 1]}"
  done
  SETUP=$setup
  BOOTSTRAP=""
  NODE_LOGS=()
  BROKER_PIDS=()
  for ((i = 1; i <= n; i++)); do
    local dir="$WORK/$setup/node$i"
    mkdir -p "$dir/data"
    listeners+=("${ports[i - 1]}")
    BOOTSTRAP+="${BOOTSTRAP:+,}127.0.0.1:${ports[i - 1]}"
    NODE_LOGS+=("$dir/gregor.log")
    # shellcheck disable=SC2086
    "$GREGOR_BIN" server \
      --override process.roles=broker,controller \
      --override "node.id=$i" \
      --override "listeners=PLAINTEXT://127.0.0.1:${ports[i - 1]},CONTROLLER://127.0.0.1:${ports[n + i - 1]}" \
      --override controller.listener.names=CONTROLLER \
      --override "controller.quorum.voters=$voters" \
      --override "log.dirs=$dir/data" \
      ${GREGOR_ARGS:-} </dev/null >"$dir/gregor.log" 2>&1 &
    BROKER_PIDS+=($!)
  done
  log "$setup: started $n node(s) (pids ${BROKER_PIDS[*]}), clients at $BOOTSTRAP"
  for ((i = 1; i <= n; i++)); do
    if ! wait_listening "${BROKER_PIDS[i - 1]}" "${listeners[i - 1]}" $((START_TIMEOUT_S * 10)); then
      log "$setup: node $i did not start listening within ${START_TIMEOUT_S}s; last lines of its log:"
      tail -20 "${NODE_LOGS[i - 1]}" >&2 || true
      return 1
    fi
  done
  log "$setup: every node accepts clients"
}

# topic_state <topic>: the topic as `gregor topics --describe` gives it, as one JSON object
# ({"partitions": [{"partition", "leader", "replicas", "isr"}...]}), or {} when that fails.
topic_state() {
  local out
  out="$(timeout -k 2 15 "$GREGOR_BIN" topics --bootstrap-server "$BOOTSTRAP" --describe --topic "$1" 2>&1)" || true
  python3 - "$out" <<'EOF'
import json, re, sys
parts = []
for line in sys.argv[1].splitlines():
    m = re.search(r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+)\s+Replicas:\s*([\d,]*)\s+Isr:\s*([\d,]*)", line)
    if m:
        ids = lambda s: [int(x) for x in s.split(",") if x]
        parts.append({"partition": int(m.group(1)), "leader": int(m.group(2)),
                      "replicas": ids(m.group(3)), "isr": ids(m.group(4))})
print(json.dumps({"partitions": parts} if parts else {}))
EOF
}

# create_topic <topic> <replication factor> <min.insync.replicas>: creates it (retrying
# while brokers are still registering) and waits until every partition has a leader and
# its full ISR.
create_topic() {
  local topic=$1 rf=$2 min_isr=$3 out="" deadline=$((SECONDS + START_TIMEOUT_S))
  while :; do
    if out="$(timeout -k 2 20 "$GREGOR_BIN" topics --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
                --topic "$topic" --partitions "$PARTITIONS" --replication-factor "$rf" \
                --config "min.insync.replicas=$min_isr" 2>&1)"; then
      break
    fi
    ((SECONDS < deadline)) || { log "$SETUP: creating $topic failed: $out"; return 1; }
    sleep 0.5
  done
  while :; do
    local state
    state="$(topic_state "$topic")"
    if python3 -c '
import json, sys
s, n, rf = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
p = s.get("partitions", [])
sys.exit(0 if len(p) == n and all(x["leader"] >= 0 and len(x["isr"]) == rf for x in p) else 1)
' "$state" "$PARTITIONS" "$rf"; then
      record "{\"kind\":\"topic_state\",\"setup\":\"$SETUP\",\"when\":\"created\",\"topic\":\"$topic\",\"state\":$state}"
      log "$SETUP: topic $topic: $PARTITIONS partitions, replication factor $rf, min.insync.replicas=$min_isr, every ISR full"
      return 0
    fi
    ((SECONDS < deadline)) || { log "$SETUP: topic $topic not ready within ${START_TIMEOUT_S}s: $state"; return 1; }
    sleep 0.5
  done
}

# mark_logs: notes how many lines each node's log has now, so that its warnings and
# errors can be told apart by phase: start-up (up to the first mark), the measurements,
# and the shutdown (after the second).
LOG_MARKS=()
mark_logs() {
  local counts="" f
  for f in "${NODE_LOGS[@]}"; do counts+="${counts:+,}$(wc -l <"$f" 2>/dev/null || echo 0)"; done
  LOG_MARKS+=("$counts")
}

# stop_cluster: SIGTERM to every node at once; the logs go to LOGS_DIR and their
# warnings and errors into the results.
stop_cluster() {
  local i exited=()
  for ((i = 1; i <= ${#BROKER_PIDS[@]}; i++)); do
    kill -0 "${BROKER_PIDS[i - 1]}" 2>/dev/null || exited+=("$i")
  done
  while ((${#LOG_MARKS[@]} < 2)); do mark_logs; done
  log "$SETUP: stopping the node(s)"
  stop_pids 20 "${BROKER_PIDS[@]}"
  local killed=()
  for ((i = 1; i <= ${#BROKER_PIDS[@]}; i++)); do
    [[ " ${KILLED_PIDS[*]} " == *" ${BROKER_PIDS[i - 1]} "* ]] && killed+=("$i")
  done
  ((${#killed[@]} == 0)) || log "$SETUP: node(s) ${killed[*]} did not stop within 20 s of SIGTERM; killed"
  for ((i = 1; i <= ${#NODE_LOGS[@]}; i++)); do
    cp "${NODE_LOGS[i - 1]}" "$LOGS_DIR/$SETUP-node$i.log" 2>/dev/null || true
  done
  record "$(python3 - "$SETUP" "$(cut -d' ' -f1-3 /proc/loadavg)" "${exited[*]:-}" "${killed[*]:-}" \
           "${LOG_MARKS[0]}" "${LOG_MARKS[1]}" "${NODE_LOGS[@]}" <<'EOF'
import json, re, sys
setup, load, exited, killed, runs_from, stop_from = sys.argv[1:7]
logs = sys.argv[7:]
runs_from, stop_from = [int(x) for x in runs_from.split(",")], [int(x) for x in stop_from.split(",")]
nodes = {}
for i, path in enumerate(logs, 1):
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        lines = []
    node = {}
    for phase, lo, hi in (("start", 0, runs_from[i - 1]), ("runs", runs_from[i - 1], stop_from[i - 1]),
                          ("stop", stop_from[i - 1], len(lines))):
        bad = [(m.group(1), l) for l in lines[lo:hi]
               for m in [re.match(r"\[[^]]*\] (warning|error|critical) ", l)] if m]
        if bad:
            node[phase] = {"warnings": sum(level == "warning" for level, _ in bad),
                           "errors": sum(level != "warning" for level, _ in bad),
                           "first": [l for _, l in bad[:5]], "last": [l for _, l in bad[5:][-3:]]}
    nodes[str(i)] = node
print(json.dumps({"kind": "setup_end", "setup": setup, "loadavg_end": load,
                  "exited_early": [int(x) for x in exited.split()], "killed": [int(x) for x in killed.split()],
                  "logs": nodes}))
EOF
)"
  BROKER_PIDS=()
  LOG_MARKS=()
}

# sched_wait_ns <pid>: how long the threads of a process have waited for a core so far
# (run-queue time, /proc/<pid>/task/*/schedstat), in ns; empty if it is gone.
sched_wait_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ w += $2 } END { if (NR) printf "%.0f\n", w }'
}
# counters: the machine's "cores:idle clock ticks of all cores so far" (/proc/stat), then
# each broker's "cpu ticks:run-queue ns" ("x" where it is gone), on one line. The machine
# is busy for what is not idle: everything on it counted, this run's processes and anyone
# else's. (Idle time is measured exactly by tickless kernels; the busy columns of
# /proc/stat are sampled at ticks and miss short bursts, by half over a few seconds here.)
counters() {
  local pid c w line
  line="$(awk '/^cpu / { idle = $5 + $6 } /^cpu[0-9]/ { n++ } END { printf "%d:%.0f\n", n, idle }' /proc/stat)"
  for pid in "${BROKER_PIDS[@]}"; do
    c="$(cpu_ticks "$pid")"
    w="$(sched_wait_ns "$pid")"
    line+=" ${c:-x}:${w:-x}"
  done
  echo "$line"
}

# measure <kind> <rep> <rate> <timeout> <loadgen args...>: one loadgen run against the
# running setup, recorded with the CPU each broker used meanwhile, how long its threads
# waited for a core, and how busy the whole machine was.
measure() {
  local kind=$1 rep=$2 rate=$3 tmo=$4
  shift 4
  local pid gone=()
  for pid in "${BROKER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || gone+=("$pid"); done
  if ((${#gone[@]} > 0)); then
    log "  $SETUP $kind rep $rep: skipped, broker process(es) ${gone[*]} exited"
    record "{\"kind\":\"$kind\",\"setup\":\"$SETUP\",\"rate\":$rate,\"rep\":$rep,\"result\":null}"
    return 0
  fi
  local before after out rc=0 wall0 wall1
  before="$(counters)"
  wall0=$EPOCHREALTIME
  out="$(timeout -k 5 $((tmo + 30)) env "${CLIENT_ENV[@]}" "$LOADGEN" "$@" --bootstrap "$BOOTSTRAP" \
         --timeout-s "$tmo" --label "$SETUP" 2>"$WORK/loadgen.err")" || rc=$?
  wall1=$EPOCHREALTIME
  after="$(counters)"
  { echo "===== $SETUP $kind rate=$rate rep=$rep exit=$rc: $*"; cat "$WORK/loadgen.err"; } >>"$LOGS_DIR/loadgen.log"
  out="$(printf '%s\n' "$out" | grep '^{' | tail -1 || true)"
  if [[ -z "$out" ]]; then
    log "  $SETUP $kind rep $rep: FAILED (exit $rc)"
    tail -5 "$WORK/loadgen.err" >&2 || true
    record "{\"kind\":\"$kind\",\"setup\":\"$SETUP\",\"rate\":$rate,\"rep\":$rep,\"result\":null,\"exit\":$rc}"
    return 0
  fi
  local line
  line="$(python3 - "$out" "$kind" "$SETUP" "$rate" "$rep" "$rc" "$CLK_TCK" "$wall0" "$wall1" "$before" "$after" <<'EOF'
import json, sys
out, kind, setup, rate, rep, rc, tck, w0, w1, before, after = sys.argv[1:]
r = json.loads(out)
tck = int(tck)
(m0, *b0), (m1, *b1) = before.split(), after.split()
c0, q0 = [x.split(":")[0] for x in b0], [x.split(":")[1] for x in b0]
c1, q1 = [x.split(":")[0] for x in b1], [x.split(":")[1] for x in b1]
# The brokers' CPU over the same call, each one and their sum, beside the client's own
# (client_cpu_s): on 2 cores they all share, and a latency figure depends on what is left.
diff = lambda a, b, unit: None if "x" in (a, b) else round((int(b) - int(a)) / unit, 3)
r["broker_cpu_s"] = [diff(a, b, tck) for a, b in zip(c0, c1)]
# How long the brokers' threads were ready to run but waited for a core (summed over
# threads), and what the whole machine, including other people's work, kept busy.
r["broker_wait_s"] = [diff(a, b, 1e9) for a, b in zip(q0, q1)]
(ncpu, idle0), (_, idle1) = map(int, m0.split(":")), map(int, m1.split(":"))
r["server_wall_s"] = round(float(w1) - float(w0), 3)
r["machine_idle_s"] = round((idle1 - idle0) / tck, 3)
r["machine_busy_s"] = round(max(0.0, ncpu * r["server_wall_s"] - r["machine_idle_s"]), 3)
print(json.dumps({"kind": kind, "setup": setup, "rate": float(rate), "rep": int(rep), "exit": int(rc), "result": r}))
if "p99_ms" in r:
    s = "%.0f msgs/s  p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms" % (
        r["achieved_rate"], r["p50_ms"] or -1, r["p99_ms"] or -1, r["p999_ms"] or -1, r["max_ms"] or -1)
else:
    s = "%.0f msgs/s  %.1f MB/s" % (r["msgs_per_s"], r["mb_per_s"])
cores = sum(x for x in r["broker_cpu_s"] if x is not None) / r["server_wall_s"] if r["server_wall_s"] else 0
s += "  brokers %.2f cores (waited %.2f), client %.2f, machine %.2f busy" % (
    cores, sum(x for x in r["broker_wait_s"] if x is not None) / r["server_wall_s"] if r["server_wall_s"] else 0,
    r["client_cpu_s"] / r["client_wall_s"] if r.get("client_wall_s") else 0,
    r["machine_busy_s"] / r["server_wall_s"] if r["server_wall_s"] else 0)
if not r.get("ok"):
    s += "  (INCOMPLETE: %s)" % (r.get("stop_reason") or "%s errors" % r.get("errors"))
print(s)
EOF
)" || line="{\"kind\":\"$kind\",\"setup\":\"$SETUP\",\"rate\":$rate,\"rep\":$rep,\"result\":null,\"exit\":$rc}"$'\n'"(could not read the results: $out)"
  record "${line%%$'\n'*}"
  log "  $SETUP $kind $([[ $rate == 0 ]] || echo "at $rate msgs/s ")rep $rep: ${line#*$'\n'}"
  if [[ $rc != 0 ]]; then tail -3 "$WORK/loadgen.err" >&2 || true; fi
}

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
