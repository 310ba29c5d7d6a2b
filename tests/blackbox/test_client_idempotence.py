"""Gregor's own C++ producer (src/client) is idempotent by default, as Kafka's
Java client is since 3.0, driven here through `gregor console-producer` and
`gregor perf-producer` against a real broker:

- by default the batches on the broker carry a producer id (read back with a
  raw Fetch), and the records are there once each, in order;
- acks=1 without enable.idempotence quietly produces without one;
- enable.idempotence=true with acks=1 is refused with a message that says why;
- a broker SIGSTOPped past the client's request timeout makes the producer
  give up on the request and send it again; afterwards every record is there
  once, in order. Caveat: the same run with enable.idempotence=false showed
  no duplicates either (the broker seems not to append what the closed
  connection had sent), so this checks the retry path end to end rather than
  proving deduplication; client_test's mock-cluster test covers the retries.
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


def test_request_timeout_during_sigstop_leaves_no_duplicates(broker_factory):
    b = broker_factory()
    topic = unique_topic("idem-sigstop")
    create_topic(b.bootstrap, topic, 1)
    # A short request timeout: the client gives up on the request the stopped
    # broker holds (after request.timeout.ms + 5 s), reconnects and resends.
    args = [gregor_bin(), "console-producer", "--bootstrap-server", b.bootstrap, "--topic", topic]
    for prop in ("request.timeout.ms=1000", "delivery.timeout.ms=120000", "linger.ms=0",
                 "retry.backoff.ms=200", "socket.connection.setup.timeout.ms=1000"):
        args += ["--producer-property", prop]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sent = []

    def feed(lo, hi):
        for i in range(lo, hi):
            sent.append("s%d" % i)
            proc.stdin.write(("s%d\n" % i).encode())
        proc.stdin.flush()

    try:
        feed(0, 100)
        time.sleep(1.0)
        b.sigstop()
        try:
            feed(100, 200)
            time.sleep(8.0)  # past request.timeout.ms + the client's 5 s slack
        finally:
            b.sigcont()
        feed(200, 300)
        _, err = proc.communicate(timeout=120 * SLOW)  # closes stdin: the producer flushes and exits
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    recs = read_partition(b.bootstrap, topic)
    got = values(recs)
    dups = sorted({v for v in got if got.count(v) > 1})
    assert not dups, "duplicates: %s" % dups[:20]
    assert got == sent
    assert all(r["producer_id"] >= 0 for r in recs)
