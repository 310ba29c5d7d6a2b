"""Bad input from the network gets a clear Kafka error code or a closed
connection; it never takes the broker down. After each case a normal client
must still produce and consume."""

import random
import struct
import time

from bb_clients import (Rec, assert_healthy, ck_consume, ck_produce, create_topic, now_ms,
                        unique_topic)
from bb_wire import (API_API_VERSIONS, API_FETCH, API_METADATA, API_PRODUCE, Conn, api_versions_v0,
                     api_versions_v3, array, compact_string, fetch_v4_body, frame, i16, i32,
                     parse_api_versions_v0, produce_v3, produce_v3_body, record_batch,
                     request_header, string, uvarint)

CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
UNSUPPORTED_VERSION = 35


def _healthy(broker):
    assert broker.alive(), "gregor died:\n" + broker.log_tail()
    with Conn(broker.bootstrap) as c:
        err, keys = api_versions_v0(c)
        assert err == 0 and API_API_VERSIONS in keys
    assert_healthy(broker.bootstrap)
    assert broker.alive()


def _expect_closed(conn, what, timeout=10):
    closed = conn.wait_closed(timeout)
    assert closed, "broker kept the connection open after %s" % what
    return conn.received_before_close


# ------------------------------------------------------------------ framing


def test_oversized_frame_closes_connection(broker):
    for size in (104857600 + 1, 0x7FFFFFFF):  # socket.request.max.bytes default is 100 MiB
        with Conn(broker.bootstrap) as c:
            c.send_raw(i32(size) + b"\x00\x12\x00\x00" * 8)
            _expect_closed(c, "a %d-byte frame length" % size)
    _healthy(broker)


def test_oversized_frame_respects_configured_limit(broker_factory):
    b = broker_factory(overrides={"socket.request.max.bytes": 4096})
    with Conn(b.bootstrap) as c:
        c.send_raw(i32(8192) + b"\x00" * 100)
        _expect_closed(c, "a frame over socket.request.max.bytes=4096")
    with Conn(b.bootstrap) as c:  # small requests are still fine
        assert api_versions_v0(c)[0] == 0
    _healthy(b)


def test_negative_frame_length_closes_connection(broker):
    for size in (-1, -0x80000000):
        with Conn(broker.bootstrap) as c:
            c.send_raw(i32(size) + b"\x00" * 16)
            _expect_closed(c, "frame length %d" % size)
    _healthy(broker)


def test_truncated_frame_then_close(broker):
    data = frame(request_header(API_API_VERSIONS, 0, 1))
    for cut in (1, 3, 4, 6, len(data) - 1):
        with Conn(broker.bootstrap) as c:
            c.send_raw(data[:cut])
    # A frame announcing 100 bytes, 10 sent, then the client hangs up.
    with Conn(broker.bootstrap) as c:
        c.send_raw(i32(100) + b"\x00" * 10)
    # A zero-length frame is not a request either.
    with Conn(broker.bootstrap) as c:
        c.send_raw(i32(0))
        _expect_closed(c, "a zero-length frame")
    _healthy(broker)


def test_truncated_request_header_closes_connection(broker):
    # Valid frame, but the header inside stops in the middle of client_id.
    with Conn(broker.bootstrap) as c:
        c.send_raw(frame(i16(API_API_VERSIONS) + i16(0) + i32(7) + i16(20) + b"abc"))
        _expect_closed(c, "a truncated request header")
    _healthy(broker)


def test_unknown_api_key_closes_connection(broker):
    for key in (9999, 32767, -1):
        with Conn(broker.bootstrap) as c:
            c.send_raw(frame(request_header(key, 0, 5)))
            data = _expect_closed(c, "api key %d" % key)
            assert data == b"", "unexpected reply to api key %d: %r" % (key, data)
    _healthy(broker)


def test_unsupported_version_of_known_api_closes_connection(broker):
    # For any API but ApiVersions, Kafka closes the connection (kafka-python's
    # version probing relies on it).
    with Conn(broker.bootstrap) as c:
        c.send_raw(frame(request_header(API_METADATA, 999, 5) + i32(0)))
        data = _expect_closed(c, "Metadata v999")
        assert data == b"", data
    _healthy(broker)


def test_garbage_bytes(broker):
    rnd = random.Random(20240601)
    # An HTTP request: its first four bytes read as a ~1.2 GB frame length.
    with Conn(broker.bootstrap) as c:
        c.send_raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _expect_closed(c, "an HTTP request")
    # Random frames with a plausible length and random content.
    for _ in range(20):
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300)))
        with Conn(broker.bootstrap) as c:
            try:
                c.send_raw(frame(body))
                c.wait_closed(2)  # closing or answering are both fine; dying is not
            except OSError:
                pass
        assert broker.alive(), "gregor died on garbage:\n" + broker.log_tail()
    # Plain random bytes.
    with Conn(broker.bootstrap) as c:
        try:
            c.send_raw(bytes(rnd.getrandbits(8) for _ in range(4096)))
            c.wait_closed(2)
        except OSError:
            pass
    _healthy(broker)


def test_garbage_in_valid_produce_request(broker):
    """Well-framed Produce v3 requests with broken bodies: bad array counts,
    bad record-set lengths, truncated batches."""
    t = create_topic(broker.bootstrap, unique_topic("bad-prod"), 1)
    good = record_batch([(b"k", b"v", [], now_ms())], now_ms())
    bodies = [
        string(None) + i16(-1) + i32(1000) + i32(0x7FFFFFFF),                 # huge topic count
        string(None) + i16(-1) + i32(1000) + i32(1) + string(t) + i32(-5),    # negative partitions
        produce_v3_body(t, 0, good)[:-7],                                     # truncated batch
        string(None) + i16(-1) + i32(1000) + array([string(t) + array([
            i32(0) + i32(len(good) + 1000) + good])]),                        # records length lies
        string(None) + i16(-1) + i32(1000) + array([string(t) + array([
            i32(0) + i32(30) + b"\x00" * 30])]),                              # zeros as a batch
    ]
    for body in bodies:
        with Conn(broker.bootstrap) as c:
            try:
                c.send(API_PRODUCE, 3, body)
                c.wait_closed(3)
            except OSError:
                pass
        assert broker.alive(), "gregor died on a malformed Produce:\n" + broker.log_tail()
    _healthy(broker)


def test_client_disconnects_with_responses_pending(broker):
    """A client that hangs up while the broker still has responses to write
    (pipelined fetches of a few MB each) must not take the broker down, e.g.
    with SIGPIPE from a write or sendfile to the closed socket."""
    t = create_topic(broker.bootstrap, unique_topic("hangup"), 1)
    ck_produce(broker.bootstrap, t, [Rec(b"k", b"x" * 100_000, (), now_ms())] * 20)
    for round_ in range(20):
        with Conn(broker.bootstrap) as c:
            c.send_raw(b"".join(
                c.request_bytes(API_FETCH, 4, fetch_v4_body(t, 0, 0, 200), correlation_id=i)[1]
                for i in range(10)))
        # closed without reading a byte
    time.sleep(1)
    assert broker.alive(), ("gregor died (exit %s) after clients hung up with responses "
                            "pending" % broker.proc.returncode)
    _healthy(broker)


# ------------------------------------------------------------------ Kafka error codes


def _batch(records):
    ts = now_ms()
    return record_batch([(k, v, h, ts + i) for i, (k, v, h) in enumerate(records)], ts)


def test_produce_corrupt_crc_is_rejected(broker):
    t = create_topic(broker.bootstrap, unique_topic("crc"), 1)
    recs = [(b"k1", b"v1", [("h", b"x")]), (None, b"\x00\xff", [])]
    with Conn(broker.bootstrap) as c:
        bad = produce_v3(c, t, 0, record_batch(
            [(k, v, h, now_ms()) for k, v, h in recs], now_ms(), corrupt_crc=True))
        assert bad["error_code"] == CORRUPT_MESSAGE, bad

        # Same connection: a valid batch built by the same code is accepted,
        # so the rejection above was about the CRC alone.
        ts = now_ms()
        good_batch = record_batch([(k, v, h, ts + i) for i, (k, v, h) in enumerate(recs)], ts)
        ok = produce_v3(c, t, 0, good_batch)
        assert ok["error_code"] == 0 and ok["base_offset"] == 0, ok

        # A flipped payload byte (CRC computed before the flip) is corrupt too.
        flipped = bytearray(good_batch)
        flipped[-3] ^= 0x40
        bad2 = produce_v3(c, t, 0, bytes(flipped))
        assert bad2["error_code"] == CORRUPT_MESSAGE, bad2

    got = ck_consume(broker.bootstrap, t, expected=2)
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in got] == [
        (0, b"k1", b"v1", (("h", b"x"),), ts), (1, None, b"\x00\xff", (), ts + 1)]
    _healthy(broker)


def test_produce_message_too_large(broker_factory):
    b = broker_factory(overrides={"message.max.bytes": 2048})
    t = create_topic(b.bootstrap, unique_topic("big"), 1)
    with Conn(b.bootstrap) as c:
        r = produce_v3(c, t, 0, _batch([(b"k", b"x" * 4096, [])]))
        assert r["error_code"] == MESSAGE_TOO_LARGE, r
        r = produce_v3(c, t, 0, _batch([(b"k", b"x" * 1000, [])]))
        assert r["error_code"] == 0 and r["base_offset"] == 0, r
    # librdkafka reports the broker's error on the record.
    from confluent_kafka import KafkaError, Producer
    errs = []
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 10000})
    p.produce(t, value=b"y" * 5000, partition=0, on_delivery=lambda e, m: errs.append(e))
    assert p.flush(15) == 0
    assert errs and errs[0] is not None and errs[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errs
    got = ck_consume(b.bootstrap, t, expected=1)
    assert [len(r.value) for r in got] == [1000]
    _healthy(b)


def test_produce_unknown_partition_and_topic(broker):
    t = create_topic(broker.bootstrap, unique_topic("unk"), 1)
    with Conn(broker.bootstrap) as c:
        r = produce_v3(c, t, 7, _batch([(b"k", b"v", [])]))
        assert r["error_code"] == UNKNOWN_TOPIC_OR_PARTITION, r
        r = produce_v3(c, t, -1, _batch([(b"k", b"v", [])]))
        assert r["error_code"] == UNKNOWN_TOPIC_OR_PARTITION, r
        # Produce never auto-creates.
        missing = unique_topic("unk-missing")
        r = produce_v3(c, missing, 0, _batch([(b"k", b"v", [])]))
        assert r["error_code"] == UNKNOWN_TOPIC_OR_PARTITION, r
    _healthy(broker)


def test_api_versions_unsupported_version(broker):
    with Conn(broker.bootstrap) as c:
        # v99 with a v2 (flexible) request header, as a newer client would send.
        body = compact_string("gregor-bb") + compact_string("9.9") + uvarint(0)
        r = c.call(API_API_VERSIONS, 99, body, header_version=2)
        err, keys = parse_api_versions_v0(r)  # answered in the v0 body format
        assert err == UNSUPPORTED_VERSION, err
        assert API_API_VERSIONS in keys, keys
        lo, hi = keys[API_API_VERSIONS]
        assert lo == 0 and hi >= 3, (lo, hi)
        # The connection stays usable: the client retries at a version it knows.
        err, keys = api_versions_v0(c)
        assert err == 0
    _healthy(broker)


def test_api_versions_v3_and_v0(broker):
    with Conn(broker.bootstrap) as c:
        err, keys0 = api_versions_v0(c)
        assert err == 0
        # The response header of ApiVersions is always v0 (no tagged fields),
        # even for v3: api_versions_v3 parses it that way and checks the body
        # is consumed exactly.
        err, keys3, throttle = api_versions_v3(c)
        assert err == 0 and throttle >= 0
        assert keys3 == keys0
    # compatibility.md: never raise the advertised min of Produce, ListOffsets,
    # Metadata or ApiVersions above 0 (librdkafka, kafka-python need them);
    # Fetch may start at 4 until down-conversion exists.
    for key in (0, 2, 3, 18):
        assert key in keys0, "api key %d not advertised" % key
        assert keys0[key][0] == 0, "api key %d min version %d" % (key, keys0[key][0])
    assert 1 in keys0 and keys0[1][0] <= 4, keys0.get(1)
    assert keys0[0][1] >= 3 and keys0[1][1] >= 4, keys0  # magic-2 batches need these


def test_pipelined_requests_answered_in_order(broker):
    """kafka-python sends ApiVersions v0 and Metadata v0 back to back; answers
    must come back in request order on the connection."""
    with Conn(broker.bootstrap) as c:
        frames = []
        corrs = []
        for i in range(30):
            api, ver, body = ((API_API_VERSIONS, 0, b"") if i % 2 == 0
                              else (API_METADATA, 0, i32(0)))
            corr, data = c.request_bytes(api, ver, body, correlation_id=1000 + i)
            frames.append(data)
            corrs.append(corr)
        c.send_raw(b"".join(frames))
        for corr in corrs:
            payload = c.recv_frame(timeout=10)
            (got,) = struct.unpack(">i", payload[:4])
            assert got == corr, "response for %d arrived when %d was due" % (got, corr)


def test_acks0_produce_gets_no_response(broker):
    t = create_topic(broker.bootstrap, unique_topic("acks0"), 1)
    with Conn(broker.bootstrap) as c:
        c.send(API_PRODUCE, 3, produce_v3_body(t, 0, _batch([(b"k", b"v0", [])]), acks=0))
        corr = c.send(API_API_VERSIONS, 0, b"")
        r = c.recv_response(corr)  # the first frame back must be the ApiVersions reply
        assert r.i16() == 0
    got = ck_consume(broker.bootstrap, t, expected=1)
    assert [r.value for r in got] == [b"v0"]
