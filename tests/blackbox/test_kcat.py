"""kcat (librdkafka 2.0.2): metadata listing, produce and consume byte-exact."""

import json

from bb_clients import (Rec, create_topic, kcat_consume, kcat_produce, now_ms, run,
                        unique_topic)


def test_kcat_metadata_lists_broker_and_topics(broker):
    t1 = create_topic(broker.bootstrap, unique_topic("kcat-md1"), 1)
    t3 = create_topic(broker.bootstrap, unique_topic("kcat-md3"), 3)

    p = run(["kcat", "-L", "-J", "-b", broker.bootstrap, "-m", "15"], timeout=30)
    md = json.loads(p.stdout)
    assert [b["id"] for b in md["brokers"]] == [1], md["brokers"]
    assert md["brokers"][0]["name"] == broker.bootstrap, md["brokers"]
    topics = {t["topic"]: t for t in md["topics"]}
    assert t1 in topics and t3 in topics, sorted(topics)
    for name, n in ((t1, 1), (t3, 3)):
        parts = sorted(topics[name]["partitions"], key=lambda x: x["partition"])
        assert [x["partition"] for x in parts] == list(range(n))
        for x in parts:
            assert x["leader"] == 1, x
            assert [r["id"] for r in x["replicas"]] == [1], x
            assert [r["id"] for r in x["isrs"]] == [1], x
        assert "error" not in topics[name] or not topics[name]["error"], topics[name]

    # The human-readable listing too.
    text = run(["kcat", "-L", "-b", broker.bootstrap, "-m", "15"], timeout=30).stdout.decode()
    assert "broker 1 at %s" % broker.bootstrap in text, text
    assert 'topic "%s" with 3 partitions' % t3 in text, text


def test_kcat_metadata_single_topic(broker):
    t = create_topic(broker.bootstrap, unique_topic("kcat-md"), 2)
    p = run(["kcat", "-L", "-J", "-b", broker.bootstrap, "-t", t, "-m", "15"], timeout=30)
    md = json.loads(p.stdout)
    assert [x["topic"] for x in md["topics"]] == [t]
    assert len(md["topics"][0]["partitions"]) == 2


def test_kcat_produce_consume_keys_headers_byte_exact(broker):
    t = create_topic(broker.bootstrap, unique_topic("kcat-rt"), 1)
    kvs = [
        (b"k1", b"v1"),
        (None, b"no key here"),
        (b"bin\x00\x01\xff", bytes(b for b in range(256) if b not in (0x1E, 0x1F))),
        (b"k=,;", b"value with = and , and \n newline"),
        (b"big", b"x" * 200_000),
    ]
    headers = [("a", "1"), ("b", "two"), ("a", "3")]  # duplicate keys keep their order
    t0 = now_ms()
    kcat_produce(broker.bootstrap, t, kvs, headers=headers)
    t1 = now_ms()

    got = kcat_consume(broker.bootstrap, t, partition=0)
    assert len(got) == len(kvs), got
    for i, (r, (k, v)) in enumerate(zip(got, kvs)):
        assert r.partition == 0 and r.offset == i, r
        assert r.key == k, (i, r.key, k)
        assert r.value == v, (i, len(r.value or b""), len(v))
        assert r.headers == (("a", b"1"), ("b", b"two"), ("a", b"3")), r.headers
        assert t0 - 1000 <= r.timestamp <= t1 + 1000, (r.timestamp, t0, t1)


def test_kcat_produce_text_lines_with_colon_keys(broker):
    """The everyday form: newline-separated lines, `-K:` key delimiter, -H."""
    t = create_topic(broker.bootstrap, unique_topic("kcat-lines"), 1)
    lines = b"alice:likes tea\nbob:likes:colons\nno key here\n"
    run(["kcat", "-P", "-b", broker.bootstrap, "-t", t, "-p", "0", "-K:",
         "-H", "source=kcat", "-H", "lang=en", "-m", "15"], input=lines, timeout=30)
    got = kcat_consume(broker.bootstrap, t, partition=0)
    assert [(r.key, r.value) for r in got] == [
        (b"alice", b"likes tea"), (b"bob", b"likes:colons"), (None, b"no key here")]
    assert all(r.headers == (("source", b"kcat"), ("lang", b"en")) for r in got), got


def test_kcat_null_key_and_null_value(broker):
    t = create_topic(broker.bootstrap, unique_topic("kcat-null"), 1)
    # With -Z an empty key or value is sent as NULL.
    kvs = [(b"tomb", b""), (b"", b"null key"), (b"k", b"v")]
    kcat_produce(broker.bootstrap, t, kvs, null_empty=True)
    got = kcat_consume(broker.bootstrap, t, partition=0)
    assert [(r.key, r.value) for r in got] == [
        (b"tomb", None), (None, b"null key"), (b"k", b"v")], got
    assert [r.offset for r in got] == [0, 1, 2]


def test_kcat_multi_partition_and_offsets(broker):
    t = create_topic(broker.bootstrap, unique_topic("kcat-mp"), 3)
    for p in range(3):
        kcat_produce(broker.bootstrap, t, [(b"p%d-%d" % (p, i), b"v%d" % i)
                                           for i in range(p + 2)], partition=p)
    got = kcat_consume(broker.bootstrap, t)  # all partitions
    by_part = {}
    for r in got:
        by_part.setdefault(r.partition, []).append(r)
    assert sorted(by_part) == [0, 1, 2]
    for p, recs in by_part.items():
        assert [r.offset for r in recs] == list(range(p + 2))
        assert [r.key for r in recs] == [b"p%d-%d" % (p, i) for i in range(p + 2)]

    # Start at an absolute offset and at a relative offset from the end.
    got = kcat_consume(broker.bootstrap, t, partition=2, offset=2)
    assert [r.offset for r in got] == [2, 3]
    got = kcat_consume(broker.bootstrap, t, partition=2, offset=-1)
    assert [r.offset for r in got] == [3]


def test_kcat_query_offset_by_timestamp(broker):
    from bb_clients import ck_produce
    t = create_topic(broker.bootstrap, unique_topic("kcat-q"), 1)
    base = now_ms() - 3_600_000
    ck_produce(broker.bootstrap, t, [Rec(b"k", b"v%d" % i, (), base + i * 1000)
                                     for i in range(5)])
    out = run(["kcat", "-Q", "-b", broker.bootstrap, "-t", "%s:0:%d" % (t, base + 2500)],
              timeout=30).stdout.decode()
    assert "offset 3" in out, out
