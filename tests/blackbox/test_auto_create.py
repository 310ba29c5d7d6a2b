"""Topic auto-creation: Metadata (and client produce) for an unknown topic
creates it with num.partitions when auto.create.topics.enable=true (the
default); otherwise the topic gets UNKNOWN_TOPIC_OR_PARTITION (3)."""

import time

import pytest

from bb_clients import Rec, admin, ck_consume, ck_produce, kp_produce, now_ms, unique_topic
from bb_wire import Conn, metadata_v4

UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5


def _metadata_until_ready(bootstrap, topic, timeout=15):
    deadline = time.monotonic() + timeout
    seen = []
    with Conn(bootstrap) as c:
        while time.monotonic() < deadline:
            md = metadata_v4(c, [topic], allow_auto_create=True)
            t = md["topics"][topic]
            seen.append(t["error_code"])
            if t["error_code"] == 0 and t["partitions"] and all(
                    p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"]):
                return t, seen
            assert t["error_code"] in (0, LEADER_NOT_AVAILABLE), t
            time.sleep(0.1)
    raise AssertionError("auto-created topic %s never became ready; error codes seen %r"
                         % (topic, seen))


def test_metadata_auto_creates_with_default_partitions(broker):
    t = unique_topic("auto-md")
    topic, _ = _metadata_until_ready(broker.bootstrap, t)
    assert len(topic["partitions"]) == 1  # num.partitions default
    assert topic["is_internal"] is False


def test_metadata_without_allow_auto_create_does_not_create(broker):
    t = unique_topic("auto-no")
    with Conn(broker.bootstrap) as c:
        md = metadata_v4(c, [t], allow_auto_create=False)
        assert md["topics"][t]["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
        time.sleep(0.5)
        md = metadata_v4(c, None, allow_auto_create=False)  # all topics
        assert t not in md["topics"]


def test_auto_create_uses_num_partitions(broker_factory):
    b = broker_factory(overrides={"num.partitions": 3})
    t = unique_topic("auto-np")
    topic, _ = _metadata_until_ready(b.bootstrap, t)
    assert sorted(p["partition"] for p in topic["partitions"]) == [0, 1, 2]

    # Clients that just produce to a new topic get it created too.
    t2 = unique_topic("auto-kp")
    recs = [Rec(b"k%d" % i, b"v%d" % i, (), now_ms(), partition=i % 3) for i in range(6)]
    res = kp_produce(b.bootstrap, t2, recs)
    assert sorted(res) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]

    t3 = unique_topic("auto-ck")
    ck_produce(b.bootstrap, t3, [Rec(b"k", b"v", (), now_ms())])
    md = admin(b.bootstrap).list_topics(timeout=10)
    assert len(md.topics[t3].partitions) == 3
    got = ck_consume(b.bootstrap, t3, partitions=range(3), expected=1)
    assert [(r.key, r.value) for r in got] == [(b"k", b"v")]


def test_auto_create_disabled(broker_factory):
    b = broker_factory(overrides={"auto.create.topics.enable": "false"})
    t = unique_topic("noauto")
    with Conn(b.bootstrap) as c:
        for _ in range(3):
            md = metadata_v4(c, [t], allow_auto_create=True)
            assert md["topics"][t]["error_code"] == UNKNOWN_TOPIC_OR_PARTITION, md["topics"][t]
            time.sleep(0.2)
        assert t not in metadata_v4(c, None, allow_auto_create=False)["topics"]

    # kafka-python's producer never gets metadata for it and gives up.
    from kafka.errors import KafkaTimeoutError
    with pytest.raises(KafkaTimeoutError):
        kp_produce(b.bootstrap, t, [Rec(b"k", b"v", (), now_ms())], max_block_ms=3000,
                   timeout=5)

    # librdkafka sees the error in metadata.
    md = admin(b.bootstrap).list_topics(topic=t, timeout=10)
    assert md.topics[t].error is not None
    assert md.topics[t].error.code() == UNKNOWN_TOPIC_OR_PARTITION, md.topics[t].error
