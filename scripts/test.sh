#!/usr/bin/env bash
# Installs what is needed, builds Gregor twice (release, and ASan+UBSan), and
# runs every test: unit tests in both builds, then the black-box tests with
# real clients against the release broker and against the sanitized broker.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
start=$(date +%s)

"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" release

# The sanitized build compiles at the lowest priority while the release tests
# run: those mostly wait (for sessions to time out, leaders to move, clients to
# retry), so the compiler takes the idle cores without slowing them.
asan_log="$root/build/asan-build.log"
echo "==> building asan into $root/build-asan in the background at nice 19 (log: $asan_log)"
nice -n 19 setsid "$root/scripts/build.sh" asan >"$asan_log" 2>&1 &
asan_pid=$!
trap 'kill -- -$asan_pid 2>/dev/null || true' EXIT

echo "==> unit tests (release)"
ctest --test-dir build --output-on-failure -j2 --timeout 300

echo "==> black-box tests with real clients (release broker)"
# Each replication fault class runs 20 times here (scripts/fault-campaign.sh runs 1000).
GREGOR_BIN="$root/build/gregor" GREGOR_FAULT_RUNS="${GREGOR_FAULT_RUNS:-20}" \
  /usr/bin/python3 -m pytest tests/blackbox -q -p no:cacheprovider --durations=25

echo "==> waiting for the asan build"
if ! wait "$asan_pid"; then
  tail -n 60 "$asan_log"
  echo "==> the asan build failed (whole log: $asan_log)" >&2
  exit 1
fi
trap - EXIT
tail -n 1 "$asan_log"

echo "==> unit tests (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2 --timeout 600

echo "==> black-box tests with real clients (ASan+UBSan broker)"
GREGOR_BIN="$root/build-asan/gregor" GREGOR_SANITIZED=1 \
  /usr/bin/python3 -m pytest tests/blackbox -q -p no:cacheprovider -m "not slow" --durations=25

echo "==> all tests passed in $(( $(date +%s) - start ))s"
