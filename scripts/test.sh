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
"$root/scripts/build.sh" asan

echo "==> unit tests (release)"
ctest --test-dir build --output-on-failure -j2 --timeout 300
echo "==> unit tests (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2 --timeout 600

echo "==> black-box tests with real clients (release broker)"
# Each replication fault class runs 20 times here (scripts/fault-campaign.sh runs 1000).
GREGOR_BIN="$root/build/gregor" GREGOR_FAULT_RUNS="${GREGOR_FAULT_RUNS:-20}" \
  /usr/bin/python3 -m pytest tests/blackbox -q -p no:cacheprovider --durations=25

echo "==> black-box tests with real clients (ASan+UBSan broker)"
GREGOR_BIN="$root/build-asan/gregor" GREGOR_SANITIZED=1 \
  /usr/bin/python3 -m pytest tests/blackbox -q -p no:cacheprovider -m "not slow" --durations=25

echo "==> all tests passed in $(( $(date +%s) - start ))s"
