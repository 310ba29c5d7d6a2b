"""Gregor's own C++ producer (src/client) is idempotent by default, as Kafka's
Java client is since 3.0, driven here through `gregor console-producer` and
`gregor perf-producer` against a real broker:

- by default the batches on the broker carry a producer id (read back with a
  raw Fetch), and the records are there once each, in order;
- acks=1 without enable.idempotence quietly produces without one;
- enable.idempotence=true with acks=1 is refused with a message that says why;
- produce responses lost on the way back (tests/blackbox/bb_proxy.py) make
  the producer send its batches again; the broker answers them with their
  original offsets and every record is there once, in order. Without
  idempotence the same losses write duplicates.
"""

import subprocess
import time

from bb_broker import SANITIZED, gregor_bin
from bb_clients import create_topic, run, unique_topic
from bb_wire import Conn, fetch_v4_body, parse_fetch_v4, parse_record_batches

SLOW = 3 if SANITIZED else 1


def gregor(*args, input=None, timeout=60, check=True):
    return run([gregor_bin()] + list(args), input=input, timeout=timeout, check=check)


def read_partition(bootstrap, topic, partition=0):
    """Every record of a partition, as stored (with its batch's producer id)."""
    out = []
    offset = 0
    with Conn(bootstrap) as c:
        while True:
            r = c.call(1, 4, fetch_v4_body(topic, partition, offset, 100))
            part = parse_fetch_v4(r)[topic][partition]
            assert part["error_code"] == 0, part
            recs = [x for x in parse_record_batches(part["records"] or b"") if x["offset"] >= offset]
            if not recs:
                return out
            out += recs
            offset = recs[-1]["offset"] + 1


def console_produce(bootstrap, topic, lines, *props, acks=None, check=True):
    args = ["console-producer", "--bootstrap-server", bootstrap, "--topic", topic]
    if acks is not None:
        args += ["--request-required-acks", acks]
    for p in props:
        args += ["--producer-property", p]
    data = "".join(l + "\n" for l in lines).encode()
    return gregor(*args, input=data, timeout=60 * SLOW, check=check)


def values(recs):
    return [r["value"].decode() for r in recs]


def test_default_producer_is_idempotent(broker):
    b = broker.bootstrap
    topic = unique_topic("idem-default")
    create_topic(b, topic, 1)
    lines = ["r%d" % i for i in range(300)]
    console_produce(b, topic, lines, "linger.ms=2", "batch.size=512")
    recs = read_partition(b, topic)
    assert values(recs) == lines
    ids = {(r["producer_id"], r["producer_epoch"]) for r in recs}
    assert len(ids) == 1, ids
    pid, epoch = ids.pop()
    assert pid >= 0 and epoch == 0

    p = gregor("perf-producer", "--topic", topic, "--num-records", "500", "--record-size", "50",
               "--throughput", "-1", "--producer-props", "bootstrap.servers=" + b, timeout=60 * SLOW)
    text = p.stdout.decode()
    assert "Idempotence: on (producer id " in text, text
    recs = read_partition(b, topic)
    assert len(recs) == 800
    assert all(r["producer_id"] >= 0 for r in recs)


def test_acks_1_without_the_setting_is_not_idempotent(broker):
    b = broker.bootstrap
    topic = unique_topic("idem-acks1")
    create_topic(b, topic, 1)
    lines = ["a%d" % i for i in range(50)]
    console_produce(b, topic, lines, acks="1")
    recs = read_partition(b, topic)
    assert values(recs) == lines
    assert {r["producer_id"] for r in recs} == {-1}

    p = gregor("perf-producer", "--topic", topic, "--num-records", "100", "--record-size", "10",
               "--throughput", "-1", "--producer-props", "bootstrap.servers=" + b, "acks=1", timeout=60 * SLOW)
    assert "Idempotence: off: acks must be all" in p.stdout.decode(), p.stdout.decode()
    p = gregor("perf-producer", "--topic", topic, "--num-records", "100", "--record-size", "10",
               "--throughput", "-1", "--producer-props", "bootstrap.servers=" + b, "enable.idempotence=false",
               timeout=60 * SLOW)
    assert "Idempotence: off: enable.idempotence=false" in p.stdout.decode(), p.stdout.decode()
    assert {r["producer_id"] for r in read_partition(b, topic)} == {-1}


def test_explicit_idempotence_with_acks_1_is_refused(broker):
    b = broker.bootstrap
    topic = unique_topic("idem-refused")
    create_topic(b, topic, 1)
    p = gregor("perf-producer", "--topic", topic, "--num-records", "10", "--record-size", "10",
               "--throughput", "-1", "--producer-props", "bootstrap.servers=" + b, "acks=1",
               "enable.idempotence=true", check=False)
    err = p.stderr.decode()
    assert p.returncode != 0
    assert "enable.idempotence=true" in err and "acks must be all" in err, err
    assert len(err.strip().splitlines()) == 1, err
    p = console_produce(b, topic, ["x"], "enable.idempotence=true", acks="1", check=False)
    assert p.returncode != 0 and "enable.idempotence=true" in p.stderr.decode(), p.stderr.decode()
    assert read_partition(b, topic) == []


def lossy_console_run(proxied, prefix, *props):
    """console-producer through a proxy that loses the first two produce
    responses, 300 records fed in three bursts: (sent, stored records)."""
    b, proxy = proxied
    topic = unique_topic(prefix)
    create_topic(b.bootstrap, topic, 1)
    proxy.drop_responses(0, 2)
    args = [gregor_bin(), "console-producer", "--bootstrap-server", "127.0.0.1:%d" % proxy.port, "--topic", topic]
    for prop in ("linger.ms=0", "retry.backoff.ms=100") + props:
        args += ["--producer-property", prop]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sent = []
    try:
        for burst in range(3):
            for i in range(burst * 100, burst * 100 + 100):
                sent.append("s%d" % i)
                proc.stdin.write(("s%d\n" % i).encode())
            proc.stdin.flush()
            time.sleep(0.5)
        _, err = proc.communicate(timeout=120 * SLOW)  # closes stdin: the producer flushes and exits
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    assert proxy.dropped_count(0) == 2
    return sent, read_partition(b.bootstrap, topic)


def test_lost_produce_responses_leave_no_duplicates(proxied):
    sent, recs = lossy_console_run(proxied, "idem-lost")
    assert values(recs) == sent  # the resent batches were answered, not written again
    assert all(r["producer_id"] >= 0 for r in recs)


def test_without_idempotence_lost_responses_write_duplicates(proxied):
    # The same losses, to show they do make the client resend.
    sent, recs = lossy_console_run(proxied, "dup-lost", "enable.idempotence=false")
    got = values(recs)
    assert len(got) > len(sent) and set(got) == set(sent), (len(got), len(sent))
