"""kafkajs 2.2.4 (node): producer, low-level fetch (kafkajs's Consumer needs
groups, so reads go through kafkajs's own cluster/broker Fetch path), and the
admin client."""

import time

import pytest

from bb_clients import (Rec, assert_same, ck_consume, create_topic, kcat_produce,
                        kjs, kjs_available, kjs_fetch, kjs_ok, kjs_produce, now_ms,
                        sample_records, unique_topic)

pytestmark = pytest.mark.skipif(
    not kjs_available(),
    reason="kafkajs not installed: run scripts/install-deps.sh (npm ci in tests/blackbox/js)")


def test_kafkajs_produce_and_fetch_byte_exact(broker):
    t = create_topic(broker.bootstrap, unique_topic("kjs-rt"), 1)
    recs = sample_records(n_extra=30)
    res = kjs_produce(broker.bootstrap, t, recs)
    assert [(r["partition"], r["errorCode"], r["baseOffset"]) for r in res] == [(0, 0, "0")], res

    got = kjs_fetch(broker.bootstrap, t, expected=len(recs))
    assert_same(got, recs)
    assert [r.offset for r in got] == list(range(len(recs)))

    # And librdkafka reads exactly what kafkajs wrote.
    assert_same(ck_consume(broker.bootstrap, t, expected=len(recs)), recs)


def test_kafkajs_gzip(broker):
    t = create_topic(broker.bootstrap, unique_topic("kjs-gz"), 1)
    recs = [Rec(b"k%d" % i, b"squeeze " * 30 + b"%d" % i, (("i", b"%d" % i),), now_ms())
            for i in range(100)]
    step = {"op": "produce", "topic": t, "compression": "gzip"}
    # kafkajs picks compression per send(); the driver passes it through.
    from bb_clients import rec_to_js
    msgs = []
    for r in recs:
        m = rec_to_js(r)
        m["partition"] = 0
        msgs.append(m)
    step["messages"] = msgs
    kjs_ok(broker.bootstrap, [step])
    assert_same(kjs_fetch(broker.bootstrap, t, expected=len(recs)), recs)
    assert_same(ck_consume(broker.bootstrap, t, expected=len(recs)), recs)


def test_kafkajs_admin_create_list_delete(broker):
    t = unique_topic("kjs-admin")
    res = kjs(broker.bootstrap, [
        {"op": "createTopics", "topics": [{"topic": t, "numPartitions": 3}]},
        {"op": "createTopics", "topics": [{"topic": t, "numPartitions": 3}]},
        {"op": "listTopics"},
        {"op": "fetchTopicMetadata", "topics": [t]},
    ])
    assert res[0] == {"ok": True}, res[0]
    # kafkajs swallows TOPIC_ALREADY_EXISTS and returns false.
    assert res[1] == {"ok": False}, res[1]
    assert t in res[2]["ok"], res[2]
    md = res[3]["ok"]["topics"]
    assert [x["name"] for x in md] == [t]
    parts = sorted(md[0]["partitions"], key=lambda p: p["partitionId"])
    assert [p["partitionId"] for p in parts] == [0, 1, 2]
    assert all(p["leader"] == 1 and p["replicas"] == [1] and p["isr"] == [1] for p in parts), parts

    res = kjs(broker.bootstrap, [{"op": "deleteTopics", "topics": [t]}])
    assert res[0] == {"ok": True}, res[0]
    deadline = time.monotonic() + 15
    while True:
        listed = kjs_ok(broker.bootstrap, [{"op": "listTopics"}])[0]
        if t not in listed:
            break
        assert time.monotonic() < deadline, "deleted topic still listed: %r" % listed
        time.sleep(0.5)


def test_kafkajs_admin_create_invalid_partitions(broker):
    t = unique_topic("kjs-bad")
    res = kjs(broker.bootstrap, [
        {"op": "brokerCreateTopics", "topics": [{"topic": t, "numPartitions": 0,
                                                 "replicationFactor": 1}]},
        {"op": "createTopics", "topics": [{"topic": t, "numPartitions": 0}]},
    ])
    assert "error" in res[1], res  # the admin API fails too
    assert "error" in res[0], res
    err = res[0]["error"]
    # KafkaJSAggregateError wrapping the per-topic INVALID_PARTITIONS error.
    types = [e.get("type") for e in (err.get("errors") or [])] + [err.get("type")]
    assert "INVALID_PARTITIONS" in types, err


def test_kafkajs_fetch_topic_offsets_after_kcat_produce(broker):
    t = create_topic(broker.bootstrap, unique_topic("kjs-offs"), 2)
    kcat_produce(broker.bootstrap, t, [(b"k%d" % i, b"v%d" % i) for i in range(7)], partition=1)
    kcat_produce(broker.bootstrap, t, [(b"k", b"v")], partition=0)
    offs = kjs_ok(broker.bootstrap, [{"op": "fetchTopicOffsets", "topic": t}])[0]
    by_p = {o["partition"]: o for o in offs}
    assert sorted(by_p) == [0, 1]
    assert (by_p[0]["low"], by_p[0]["high"], by_p[0]["offset"]) == ("0", "1", "1"), by_p[0]
    assert (by_p[1]["low"], by_p[1]["high"], by_p[1]["offset"]) == ("0", "7", "7"), by_p[1]


def test_kafkajs_fetch_topic_offsets_by_timestamp(broker):
    t = create_topic(broker.bootstrap, unique_topic("kjs-ts"), 1)
    base = now_ms() - 3_600_000
    recs = [Rec(b"k", b"v%d" % i, (), base + i * 1000) for i in range(10)]
    kjs_produce(broker.bootstrap, t, recs)
    res = kjs_ok(broker.bootstrap, [
        {"op": "fetchTopicOffsetsByTimestamp", "topic": t, "timestamp": base + 3500},
        {"op": "fetchTopicOffsetsByTimestamp", "topic": t, "timestamp": base},
        {"op": "fetchTopicOffsetsByTimestamp", "topic": t, "timestamp": base + 10 * 1000},
    ])
    assert res[0] == [{"partition": 0, "offset": "4"}], res[0]
    assert res[1] == [{"partition": 0, "offset": "0"}], res[1]
    # Past the last timestamp kafkajs falls back to the latest offset.
    assert res[2] == [{"partition": 0, "offset": "10"}], res[2]


def test_kafkajs_describe_cluster(broker):
    d = kjs_ok(broker.bootstrap, [{"op": "describeCluster"}])[0]
    assert d["brokers"] == [{"nodeId": 1, "host": "127.0.0.1", "port": broker.port}], d
    assert d["controller"] == 1, d
    assert d["clusterId"], d
