"""The benchmark's load generator (bench/loadgen.cc, gregor-loadgen) against a real
broker on a small scale: what the consume figures are computed from must count every
record exactly once, with one consumer and with several side by side; and report.py
must judge the consume target on the row with the most consumers."""

import json
import os
import subprocess
import sys

import pytest

from bb_broker import REPO, bench_bin


def run_loadgen(*args, timeout=90):
    path = bench_bin("gregor-loadgen", "GREGOR_LOADGEN")
    if not os.access(path, os.X_OK):
        pytest.skip("gregor-loadgen is not built (%s missing): install librdkafka-dev and build "
                    "the tree (scripts/build.sh release) or set GREGOR_LOADGEN" % path)
    p = subprocess.run([path] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    assert p.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("consumers", [1, 3])
def test_loadgen_consume_counts_every_record_once(broker, consumers):
    topic = "bench-consume-%d-%d" % (consumers, os.getpid())
    count, size = 3000, 1024
    produced = run_loadgen("produce-throughput", "--bootstrap", broker.bootstrap, "--topic", topic,
                           "--partitions", "5", "--create-topic", "--record-bytes", str(size),
                           "--count", str(count), "--spread", "50", "--timeout-s", "60")
    assert produced["ok"] and produced["delivered"] == count, produced
    # No --count: every consumer reads its partitions to their end, so a record read
    # twice or missed shows in the totals.
    consumed = run_loadgen("consume-throughput", "--bootstrap", broker.bootstrap, "--topic", topic,
                           "--consumers", str(consumers), "--timeout-s", "60")
    assert consumed["ok"], consumed
    assert consumed["consumers"] == consumers
    assert consumed["partitions"] == 5
    assert consumed["records"] == count
    assert consumed["bytes"] == count * size
    assert consumed["errors"] == 0
    assert consumed["seconds"] > 0 and consumed["mb_per_s"] > 0


def test_report_judges_consume_target_with_most_consumers(tmp_path):
    def consume(target, consumers, mb):
        return {"kind": "consume", "target": target, "size": 65536, "acks": "-", "rep": 1,
                "result": {"ok": True, "consumers": consumers, "msgs_per_s": mb * 15.0,
                           "mb_per_s": mb}}
    rows = [{"kind": "machine", "nproc": 2},
            {"kind": "netdisk", "result": {"loopback_mb_per_s": 5000.0, "disk_write_mb_per_s": 1000.0}},
            consume("gregor", 1, 1500.0), consume("mock", 1, 2000.0),
            consume("gregor", 2, 2100.0), consume("mock", 2, 2100.0)]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    md = tmp_path / "results.md"
    p = subprocess.run([sys.executable, os.path.join(REPO, "bench", "report.py"), str(path),
                        "--markdown", str(md)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert p.returncode == 0, p.stderr.decode()
    lines = md.read_text().splitlines()
    one = next(l for l in lines if l.startswith("| consume 64 KiB, 1 consumer: MB/s"))
    two = next(l for l in lines if l.startswith("| consume 64 KiB, 2 consumers: MB/s"))
    # 1,500 / 5,000 = 0.30x loopback would miss; it is shown but not judged.
    assert "0.30" in one and "PASS" not in one and "MISS" not in one
    # 2,100 / 5,000 = 0.42x loopback: the judged row.
    assert "0.42" in two and "PASS" in two
