# shellcheck shell=bash
# bench/common.sh: shell functions shared by bench/run.sh and bench/replication.sh.
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
