"""Fetch long-poll: a fetch parked on an empty partition with a long
max_wait is completed as soon as a record arrives, and an idle fetch is
answered by its max_wait (never dropped, never spun)."""

import threading
import time

from bb_clients import Rec, ck_consumer, ck_produce, create_topic, kp_consumer, now_ms, unique_topic
from bb_wire import (API_FETCH, Conn, fetch_v4_body, parse_fetch_v4,
                     parse_record_batches)
from confluent_kafka import KafkaError, TopicPartition

WAIT_MAX_MS = 10_000
# Loose on purpose: the record must arrive "promptly", i.e. well before the
# fetch's max wait would have completed it anyway.
PROMPT_S = 4.0


def _produce_later(bootstrap, topic, delay, stamp):
    def run():
        time.sleep(delay)
        stamp["sent"] = time.monotonic()
        ck_produce(bootstrap, topic, [Rec(b"k", b"late record", (), now_ms())])
        stamp["acked"] = time.monotonic()
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def test_long_poll_confluent(broker):
    t = create_topic(broker.bootstrap, unique_topic("lp-ck"), 1)
    c = ck_consumer(broker.bootstrap, **{"fetch.wait.max.ms": WAIT_MAX_MS,
                                        "fetch.min.bytes": 1,
                                        "socket.timeout.ms": 30000})
    try:
        c.assign([TopicPartition(t, 0, 0)])
        # Let the consumer settle into a parked fetch on the empty partition.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            m = c.poll(0.1)
            assert m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF), m
        stamp = {}
        th = _produce_later(broker.bootstrap, t, 1.0, stamp)
        got = None
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            m = c.poll(0.05)
            if m is not None and not m.error():
                got = (m, time.monotonic())
                break
        th.join(20)
        assert got is not None, "record produced during a long poll never arrived"
        assert got[0].value() == b"late record"
        latency = got[1] - stamp["sent"]
        assert latency < PROMPT_S, (
            "record arrived %.1f s after it was produced (fetch.wait.max.ms=%d): "
            "the parked fetch was not woken by the produce" % (latency, WAIT_MAX_MS))
    finally:
        c.close()


def test_long_poll_kafka_python(broker):
    from kafka import TopicPartition as KTP
    t = create_topic(broker.bootstrap, unique_topic("lp-kp"), 1)
    c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=WAIT_MAX_MS, fetch_min_bytes=1,
                    request_timeout_ms=40000, session_timeout_ms=30000)
    try:
        tp = KTP(t, 0)
        c.assign([tp])
        c.seek(tp, 0)
        assert c.poll(timeout_ms=1500) == {}
        stamp = {}
        th = _produce_later(broker.bootstrap, t, 1.0, stamp)
        got = None
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline and got is None:
            for _, msgs in c.poll(timeout_ms=100).items():
                if msgs:
                    got = (msgs[0], time.monotonic())
        th.join(20)
        assert got is not None, "record produced during a long poll never arrived"
        assert got[0].value == b"late record"
        latency = got[1] - stamp["sent"]
        assert latency < PROMPT_S, "record arrived %.1f s after it was produced" % latency
    finally:
        c.close()


def test_raw_fetch_idle_waits_then_answers(broker):
    t = create_topic(broker.bootstrap, unique_topic("lp-idle"), 1)
    with Conn(broker.bootstrap, timeout=30) as c:
        for max_wait in (0, 1500):
            start = time.monotonic()
            r = c.call(API_FETCH, 4, fetch_v4_body(t, 0, 0, max_wait), timeout=max_wait / 1000 + 10)
            elapsed = time.monotonic() - start
            p = parse_fetch_v4(r)[t][0]
            assert p["error_code"] == 0 and p["high_watermark"] == 0, p
            assert not p["records"], p
            assert elapsed < max_wait / 1000 + 3, "idle fetch answered after %.1f s" % elapsed
            if max_wait:
                assert elapsed >= max_wait / 2000, (
                    "empty fetch with min_bytes=1 answered after %.2f s, max_wait %d ms"
                    % (elapsed, max_wait))


def test_raw_fetch_woken_by_produce(broker):
    t = create_topic(broker.bootstrap, unique_topic("lp-raw"), 1)
    with Conn(broker.bootstrap, timeout=30) as c:
        start = time.monotonic()
        corr = c.send(API_FETCH, 4, fetch_v4_body(t, 0, 0, WAIT_MAX_MS))
        stamp = {}
        th = _produce_later(broker.bootstrap, t, 1.0, stamp)
        r = c.recv_response(corr, timeout=WAIT_MAX_MS / 1000 + 10)
        done = time.monotonic()
        th.join(20)
        p = parse_fetch_v4(r)[t][0]
        assert p["error_code"] == 0, p
        recs = parse_record_batches(p["records"] or b"")
        assert [x["value"] for x in recs] == [b"late record"], recs
        assert done - stamp["sent"] < PROMPT_S, (
            "parked fetch answered %.1f s after the produce (%.1f s after it was sent)"
            % (done - stamp["sent"], done - start))
