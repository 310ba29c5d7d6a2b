# shellcheck shell=bash
# bench/common.sh: shell functions shared by bench/run.sh, bench/replication.sh and
# bench/idempotence.sh.
# Sourced, not run. Expects ROOT and BUILD_DIR to be set; LOG_TAG names the script in
# progress lines (default "bench").

# The client (and the mock) keep the memory they free: glibc would hand large blocks back
# to the kernel, and on a VM the next fresh page costs a fault in the host. The broker
# does the same on its own (src/runtime/engine.cc).
CLIENT_ENV=(GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824)

log() { printf '\033[1m[%s %s]\033[0m %s\n' "${LOG_TAG:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# tree_description: the commit the tree is at, with "+changes" when tracked files differ.
tree_description() {
  local rev dirty=""
  rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true)" ]] && dirty="+changes"
  echo "$rev$dirty"
}

# record <json object>: one line of raw results, appended to RESULTS_JSONL.
record() { printf '%s\n' "$1" >>"$RESULTS_JSONL"; }

# find_gregor_bin: sets GREGOR_BIN to the broker binary unless it is set already;
# returns 1 when there is none.
find_gregor_bin() {
  if [[ -z "${GREGOR_BIN:-}" ]]; then
    for c in "$BUILD_DIR/gregor" "$BUILD_DIR/src/app/gregor"; do
      [[ -x "$c" ]] && { GREGOR_BIN="$c"; break; }
    done
  fi
  [[ -n "${GREGOR_BIN:-}" && -x "$GREGOR_BIN" ]]
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_listening <pid> <port> <tenths of a second>: until the process accepts connections
# on 127.0.0.1:<port>; fails if it exits or the time runs out.
wait_listening() {
  local pid=$1 port=$2 tenths=$3
  for _ in $(seq 1 "$tenths"); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# stop_pids <seconds> <pid>...: SIGTERM to all at once (a cluster's controlled shutdowns
# are answered while its quorum is still up), then SIGKILL to any still running after
# <seconds>. Sets KILLED_PIDS to the pids that had to be killed. Call it in the shell that
# started the processes (not in $(...)): only that shell can reap them.
KILLED_PIDS=()
stop_pids() {
  local secs=$1 pid running
  shift
  KILLED_PIDS=()
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 $((secs * 10))); do
    running=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && running=1; done
    ((running)) || break
    sleep 0.1
  done
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      KILLED_PIDS+=("$pid")
    fi
    wait "$pid" 2>/dev/null || true
  done
}

# shellcheck disable=SC2034  # used by the scripts that source this
CLK_TCK="$(getconf CLK_TCK)"
# cpu_ticks <pid>: user + system CPU of a process so far, in clock ticks; empty if it is gone.
cpu_ticks() {
  [[ -n "$1" && -r "/proc/$1/stat" ]] || return 0
  # The name in parentheses may hold spaces: count fields after its closing one.
  sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}

# warn_if_busy: a warning when the load average is over half the cores.
warn_if_busy() {
  local load1
  load1="$(cut -d' ' -f1 /proc/loadavg)"
  if python3 -c "import sys; sys.exit(0 if float('$load1') > 0.5 * $(nproc) else 1)"; then
    log "WARNING: load average is $load1 on $(nproc) cores; other work will distort the figures"
  fi
}

# Memory. A broker that has run for a while has a page cache as large as the
# memory it may use, and writes new log data into pages it reclaims from old
# data. A fresh VM is not in that state: its memory is mostly free, and many
# hypervisors (this project's CI VMs among them: free page reporting) take free
# guest memory back, so every page the page cache takes from free memory faults
# in the host first. Measured here: fresh memory fills at ~400 MB/s, reused
# memory at >10 GB/s. That is the VM, not the broker, and the mock never pays it
# (it keeps 5 MiB per partition). So every process of a run (client, mock,
# brokers, disk test) runs in one memory cgroup of BENCH_MEMORY_GIB GiB, which is
# filled with a file first, as on a long-running broker whose page cache is full.
# That recycles pages only where the VM does not take freed memory back at once:
# with free page reporting it does (see run.sh's page-cache measurement), and new
# log data costs a host fault per page even then. BENCH_MEMORY_GIB=0 runs without it.
CGROUP_DIR=""
CGROUP_PARENT=""
enter_memory_cgroup() {
  local bytes=$((BENCH_MEMORY_GIB * 1024 * 1024 * 1024)) name="gregor-bench-$$"
  if [[ -d /sys/fs/cgroup/memory && -w /sys/fs/cgroup/memory/cgroup.procs ]]; then
    CGROUP_PARENT=/sys/fs/cgroup/memory   # cgroup v1
    mkdir "$CGROUP_PARENT/$name" 2>/dev/null || return 1
    CGROUP_DIR="$CGROUP_PARENT/$name"
    echo "$bytes" >"$CGROUP_DIR/memory.limit_in_bytes" || return 1
  elif [[ -w /sys/fs/cgroup/cgroup.procs ]] && grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
    CGROUP_PARENT=/sys/fs/cgroup          # cgroup v2
    mkdir "$CGROUP_PARENT/$name" 2>/dev/null || return 1
    CGROUP_DIR="$CGROUP_PARENT/$name"
    echo "$bytes" >"$CGROUP_DIR/memory.max" || return 1
  else
    return 1
  fi
  echo $$ >"$CGROUP_DIR/cgroup.procs"
}
leave_memory_cgroup() {
  [[ -n "$CGROUP_DIR" ]] || return 0
  echo $$ >"$CGROUP_PARENT/cgroup.procs" 2>/dev/null
  rmdir "$CGROUP_DIR" 2>/dev/null || log "WARNING: could not remove $CGROUP_DIR"
  CGROUP_DIR=""
}

# use_memory_cgroup <dir>: moves this script (and so everything it starts from now on)
# into a memory cgroup of BENCH_MEMORY_GIB GiB and fills its page cache with files in
# <dir>; sets MEMORY_MODE to a description of what the run measures on.
# shellcheck disable=SC2034  # MEMORY_MODE is for the scripts that source this
use_memory_cgroup() {
  MEMORY_MODE="fresh memory (no cgroup)"
  [[ "$BENCH_MEMORY_GIB" -gt 0 ]] || return 0
  if enter_memory_cgroup; then
    MEMORY_MODE="steady-state page cache: a ${BENCH_MEMORY_GIB} GiB memory cgroup, filled first"
    log "running in a ${BENCH_MEMORY_GIB} GiB memory cgroup; filling its page cache first"
    for i in $(seq 1 "$BENCH_MEMORY_GIB"); do
      dd if=/dev/zero of="$1/fill.$i" bs=1M count=1024 conv=fsync status=none || break
    done
  else
    [[ -n "$CGROUP_DIR" ]] && rmdir "$CGROUP_DIR" 2>/dev/null
    CGROUP_DIR=""
    log "WARNING: no memory cgroup (needs root and cgroup v1 memory or v2 with the memory controller);"
    log "  measuring on fresh memory, where a VM's first touch of each page can dominate the figures"
  fi
}

# fill_cgroup_with_log <bootstrap> <partitions> <stderr file>: in a memory cgroup, writes
# 10% more log through the broker(s) at <bootstrap> than the cgroup holds, to a topic
# nothing reads (bench-warmup, 1 KiB records, created with replication factor 1).
# A long-running broker's page cache is its own log. The file that filled the cgroup is
# not: the kernel caches it in large folios, and while the broker's smaller appends
# reclaim those, its writes run at about half speed (measured: 380-640 MB/s in the
# first seconds, 900-1,000 MB/s once the cgroup holds only log data). Needs LOADGEN.
fill_cgroup_with_log() {
  [[ -n "$CGROUP_DIR" ]] || return 0
  local warm_records=$((BENCH_MEMORY_GIB * 1100 * 1024))   # 1 KiB records
  log "warm-up: writing $((warm_records >> 10)) MiB of log to gregor so that its page cache is its own"
  if ! timeout -k 5 150 env "${CLIENT_ENV[@]}" "$LOADGEN" produce-throughput --bootstrap "$1" \
       --topic bench-warmup --partitions "$2" --create-topic --record-bytes 1024 --acks 1 \
       --count "$warm_records" --duration-s 120 --timeout-s 120 --label warmup >/dev/null 2>"$3"; then
    log "WARNING: the warm-up did not finish; the first Gregor figures may measure fresh memory"
    tail -3 "$3" >&2 || true
  fi
}

# ---------------------------------------------------------------------------------------
# What replication.sh and idempotence.sh share: the load generator, a work directory,
# Gregor nodes on 127.0.0.1 and measured loadgen runs against them. They expect BUILD_DIR,
# LOGS_DIR, RESULTS_JSONL, PARTITIONS, START_TIMEOUT_S and (optionally) GREGOR_ARGS.

# ensure_loadgen: sets LOADGEN to the load generator of the existing build, building only
# that target when it is missing (SKIP_BUILD=1: not even that); dies when there is none.
find_loadgen() {
  [[ -n "${LOADGEN:-}" ]] && { [[ -x "$LOADGEN" ]]; return; }
  for c in "$BUILD_DIR/bench/gregor-loadgen" "$BUILD_DIR/bench-standalone/gregor-loadgen"; do
    [[ -x "$c" ]] && { LOADGEN="$c"; return 0; }
  done
  return 1
}
ensure_loadgen() {
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
}

# prepare_work <name>: a temporary directory WORK for the run's brokers (removed, with the
# brokers stopped and the memory cgroup left, on any exit), a copy of GREGOR_BIN there so
# that every setup runs the same binary even if the build directory is rebuilt meanwhile
# (GREGOR_SOURCE_BIN names the original), and an empty RESULTS_JSONL. The last run's node
# logs and loadgen.log in LOGS_DIR are removed.
BROKER_PIDS=()
NODE_LOGS=()
SETUP=""        # what is running now; names the results and the node logs
BOOTSTRAP=""
prepare_work() {
  mkdir -p "${BENCH_TMPDIR:-$BUILD_DIR}" "$LOGS_DIR"
  rm -f "$LOGS_DIR"/*-node*.log "$LOGS_DIR/loadgen.log"   # the last run's
  WORK="$(mktemp -d "${BENCH_TMPDIR:-$BUILD_DIR}/$1.XXXXXX")"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  GREGOR_SOURCE_BIN="$GREGOR_BIN"
  cp "$GREGOR_BIN" "$WORK/gregor"
  GREGOR_BIN="$WORK/gregor"
  "$GREGOR_BIN" --help >/dev/null 2>&1 || die "$GREGOR_SOURCE_BIN does not run (is it being rebuilt?)"
  : >"$RESULTS_JSONL"   # record() appends to it
}
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

# record_machine [key=value]...: the run's first line of results: this machine, the tree
# and the broker binary, then the script's own settings given as arguments.
record_machine() {
  record "$(python3 -c 'import json, sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:])))' \
    kind=machine "nproc=$(nproc)" "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    "kernel=$(uname -r)" "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)" "git=$(tree_description)" \
    "build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)" \
    "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "gregor_bin=$GREGOR_SOURCE_BIN ($(date -u -r "$GREGOR_SOURCE_BIN" +%Y-%m-%dT%H:%M:%SZ))" "gregor_args=${GREGOR_ARGS:-}" \
    "$@")"
}

# ---------------------------------------------------------------------------------------
# A cluster of N nodes, each broker and controller, on 127.0.0.1


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
