"""Gregor's own C++ client library (src/client) against a real broker, through
bench/client_check.cc (gregor-client-check): admin CreateTopics, the producer
with acks=all and every codec (none, gzip, snappy, lz4, zstd), keyed records
with headers and timestamps, and a group consumer (subscribe, commitSync). The
program checks byte-exact records, key placement, per-partition order, and
that the committed offsets equal the end offsets; it exits non-zero with the
mismatches on stderr."""

import os
import subprocess

import pytest

from bb_broker import bench_bin


def run_check(*args, timeout=90):
    path = bench_bin("gregor-client-check", "GREGOR_CLIENT_CHECK")
    if not os.access(path, os.X_OK):
        pytest.skip("gregor-client-check is not built (%s missing): build the tree with GREGOR_BENCH=ON "
                    "(scripts/build.sh release) or set GREGOR_CLIENT_CHECK" % path)
    return subprocess.run([path] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def explain(p):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout.decode(errors="replace"),
                                                 p.stderr.decode(errors="replace"))


def test_client_round_trip_all_codecs(broker):
    p = run_check("check", "--bootstrap", broker.bootstrap, "--partitions", "3", "--count", "300",
                  "--max-in-flight", "1", "--timeout-s", "60")
    assert p.returncode == 0, explain(p)
    assert b"OK: 1500 records" in p.stdout, explain(p)


# Our producer keeps 5 requests in flight on one connection; the broker handles
# them concurrently and must still append each partition's batches in order.
def test_client_pipelined_produce_keeps_order(broker):
    p = run_check("check", "--bootstrap", broker.bootstrap, "--partitions", "3", "--count", "300",
                  "--max-in-flight", "5", "--timeout-s", "60")
    assert p.returncode == 0, explain(p)


def test_client_round_trip_single_partition(broker):
    # One partition: every record of every codec in one log, order across producers.
    p = run_check("check", "--bootstrap", broker.bootstrap, "--partitions", "1", "--count", "100",
                  "--max-in-flight", "1",
                  "--timeout-s", "60")
    assert p.returncode == 0, explain(p)
    assert b"OK: 500 records" in p.stdout, explain(p)


def test_client_throughput_modes_report(broker):
    # The bench modes (bench/client_compare.sh) on a small scale: they run and agree on counts.
    import json
    topic = "client-bench-%d" % os.getpid()
    p = run_check("produce-throughput", "--bootstrap", broker.bootstrap, "--topic", topic,
                  "--partitions", "2", "--create-topic", "--count", "2000", "--record-bytes", "1024")
    assert p.returncode == 0, explain(p)
    produced = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert produced["msgs"] == 2000 and produced["msgs_per_s"] > 0
    p = run_check("consume-throughput", "--bootstrap", broker.bootstrap, "--topic", topic)
    assert p.returncode == 0, explain(p)
    consumed = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert consumed["msgs"] == 2000 and consumed["record_bytes"] == 1024
