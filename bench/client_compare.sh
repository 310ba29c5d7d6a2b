#!/usr/bin/env bash
# bench/client_compare.sh: Gregor's own C++ client (src/client, via gregor-client-check)
# against librdkafka (gregor-loadgen) on the same freshly started broker, the same record
# size, count and partitions. Prints a table of producer and consumer throughput of both
# and the ratio ours / librdkafka. See bench/README.md. Bounded: well under a minute.
#
# Environment (all optional):
#   BUILD_DIR      build directory holding gregor and bench/ (default: <repo>/build)
#   GREGOR_BIN     broker binary (default: $BUILD_DIR/gregor)
#   CLIENT_CHECK   gregor-client-check (default: $BUILD_DIR/bench/gregor-client-check)
#   LOADGEN        gregor-loadgen (default: $BUILD_DIR/bench/gregor-loadgen, or bench-standalone/)
#   COUNT          records per run (default 100000)
#   RECORD_BYTES   record value size (default 1024)
#   PARTITIONS     partitions per topic (default 4)
#   ACKS           producer acks (default 1)
#   LINGER_MS      producer linger.ms, both clients (default 5)
#   REPS           repetitions, median reported (default 3)
#   BENCH_TMPDIR   where the broker's temporary log dir goes (default: $TMPDIR or /tmp)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
GREGOR_BIN="${GREGOR_BIN:-$BUILD_DIR/gregor}"
CLIENT_CHECK="${CLIENT_CHECK:-$BUILD_DIR/bench/gregor-client-check}"
COUNT="${COUNT:-100000}"
RECORD_BYTES="${RECORD_BYTES:-1024}"
PARTITIONS="${PARTITIONS:-4}"
ACKS="${ACKS:-1}"
LINGER_MS="${LINGER_MS:-5}"
REPS="${REPS:-3}"
RUN_TIMEOUT=20   # seconds, per client run

log() { printf '[client-compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -z "${LOADGEN:-}" ]]; then
  for c in "$BUILD_DIR/bench/gregor-loadgen" "$BUILD_DIR/bench-standalone/gregor-loadgen"; do
    [[ -x "$c" ]] && { LOADGEN="$c"; break; }
  done
fi
[[ -x "$GREGOR_BIN" ]] || die "no broker binary at $GREGOR_BIN (scripts/build.sh release, or set GREGOR_BIN)"
[[ -x "$CLIENT_CHECK" ]] || die "no gregor-client-check at $CLIENT_CHECK (ninja -C $BUILD_DIR gregor-client-check)"
[[ -x "${LOADGEN:-}" ]] || die "no gregor-loadgen (needs librdkafka; ninja -C $BUILD_DIR gregor-loadgen, or set LOADGEN)"
command -v python3 >/dev/null || die "python3 is needed for the table"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BOOT="127.0.0.1:$PORT"
WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/gregor-client-compare.XXXXXX")"
BROKER_PID=""
cleanup() {
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log "starting $GREGOR_BIN on $BOOT (data in $WORK)"
"$GREGOR_BIN" server --override "listeners=PLAINTEXT://$BOOT" --override "log.dirs=$WORK/data" \
  >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$BROKER_PID" 2>/dev/null || { tail -20 "$WORK/broker.log" >&2; die "broker exited"; }
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "broker not listening on $BOOT after 10 s"

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
# run <label> <command...>: one JSON line from the command, tagged with label, into RESULTS.
run() {
  local label="$1"; shift
  local out
  if ! out="$(timeout "$RUN_TIMEOUT" "$@" 2>"$WORK/run.err")"; then
    tail -20 "$WORK/run.err" >&2
    die "$label failed: $*"
  fi
  out="$(printf '%s\n' "$out" | grep '^{' | tail -1)"
  [[ -n "$out" ]] || die "$label printed no result"
  printf '%s\t%s\n' "$label" "$out" >>"$RESULTS"
  log "$label: $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%.0f msgs/s, %.1f MB/s" % (d["msgs_per_s"], d["mb_per_s"]))' "$out")"
}

common=(--bootstrap "$BOOT" --record-bytes "$RECORD_BYTES" --count "$COUNT")
for rep in $(seq "$REPS"); do
  ours="cmp-ours-$rep"; theirs="cmp-rdkafka-$rep"
  # Alternate which client goes first, so neither always meets a warmer broker.
  order=(ours rdkafka); (( rep % 2 == 0 )) && order=(rdkafka ours)
  for who in "${order[@]}"; do
    if [[ $who == ours ]]; then
      run "produce ours" "$CLIENT_CHECK" produce-throughput "${common[@]}" --topic "$ours" \
        --partitions "$PARTITIONS" --create-topic --acks "$ACKS" --linger-ms "$LINGER_MS"
    else
      run "produce librdkafka" "$LOADGEN" produce-throughput "${common[@]}" --topic "$theirs" \
        --partitions "$PARTITIONS" --create-topic --acks "$ACKS" --linger-ms "$LINGER_MS"
    fi
  done
  # Both consumers read the same records: the topic our producer wrote in this repetition.
  for who in "${order[@]}"; do
    if [[ $who == ours ]]; then
      run "consume ours" "$CLIENT_CHECK" consume-throughput --bootstrap "$BOOT" --topic "$ours" --count "$COUNT"
    else
      run "consume librdkafka" "$LOADGEN" consume-throughput --bootstrap "$BOOT" --topic "$ours" --count "$COUNT"
    fi
  done
done

python3 - "$RESULTS" "$COUNT" "$RECORD_BYTES" "$PARTITIONS" "$ACKS" "$LINGER_MS" "$REPS" <<'EOF'
import json, statistics, sys
path, count, size, parts, acks, linger, reps = sys.argv[1:]
runs = {}
for line in open(path):
    label, js = line.rstrip("\n").split("\t", 1)
    runs.setdefault(label, []).append(json.loads(js))
def med(label, key):
    return statistics.median(r[key] for r in runs[label])
print("Gregor client vs librdkafka: %s records of %s B, %s partitions, acks=%s, linger.ms=%s, median of %s"
      % (count, size, parts, acks, linger, reps))
print("| %-8s | %-13s | %-13s | %-13s | %-13s | %-11s |" % ("", "ours msgs/s", "ours MB/s", "rdkafka msgs/s", "rdkafka MB/s", "ours/rdkafka"))
print("|%s|" % "|".join("-" * w for w in (10, 15, 15, 16, 15, 14)))
for op in ("produce", "consume"):
    om, ob = med(op + " ours", "msgs_per_s"), med(op + " ours", "mb_per_s")
    rm, rb = med(op + " librdkafka", "msgs_per_s"), med(op + " librdkafka", "mb_per_s")
    print("| %-8s | %13.0f | %13.1f | %14.0f | %13.1f | %11.2fx |" % (op, om, ob, rm, rb, om / rm if rm else float("nan")))
EOF
