"""DescribeConfigs / AlterConfigs / IncrementalAlterConfigs through real admin
clients: round trips, sources and synonyms, INVALID_CONFIG with a reason,
dynamic broker configs, persistence across restarts, changes taking effect
without a restart, and the message.timestamp.* topic configs."""

import pytest
import confluent_kafka
from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource

import bb_admin as ba
from bb_admin import describe_topic, incremental_alter_configs, kjs_admin, kjs_admin_ok, wait_for, watermarks
from bb_clients import (Rec, admin, ck_consume, ck_produce, create_topic, kjs_available, now_ms, unique_topic)

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def test_confluent_describe_alter_round_trip(broker):
    topic = create_topic(broker.bootstrap, unique_topic("cfg-ck"), config={"retention.ms": "123456"})
    d = describe_topic(broker.bootstrap, topic)
    assert d["retention.ms"].value == "123456"
    assert d["retention.ms"].source == ba.DYNAMIC_TOPIC_CONFIG
    syn = [(s.name, s.value, s.source) for s in d["retention.ms"].synonyms.values()]
    assert ("retention.ms", "123456", ba.DYNAMIC_TOPIC_CONFIG) in syn
    assert ("log.retention.hours", "168", ba.DEFAULT_CONFIG) in syn
    assert d["cleanup.policy"].value == "delete" and d["cleanup.policy"].source == ba.DEFAULT_CONFIG
    assert d["max.message.bytes"].value == "1048588"
    # AlterConfigs replaces the whole set: retention.ms returns to its default.
    r = ConfigResource("topic", topic, set_config={"cleanup.policy": "compact,delete", "segment.bytes": "1000000"})
    a = admin(broker.bootstrap)
    a.alter_configs([r])[r].result(10)
    d = describe_topic(broker.bootstrap, topic)
    assert d["cleanup.policy"].value == "compact,delete"
    assert d["segment.bytes"].value == "1000000"
    assert d["retention.ms"].value == "604800000" and d["retention.ms"].source == ba.DEFAULT_CONFIG


def test_invalid_configs_are_refused_with_a_reason(broker):
    topic = create_topic(broker.bootstrap, unique_topic("cfg-bad"))
    a = admin(broker.bootstrap)
    for bad, words in [({"retention.ms": "soon"}, "retention.ms"), ({"no.such.config": "1"}, "no.such.config"),
                       ({"min.cleanable.dirty.ratio": "2"}, "range"), ({"cleanup.policy": "shred"}, "cleanup.policy")]:
        r = ConfigResource("topic", topic, set_config=bad)
        with pytest.raises(KafkaException) as e:
            a.alter_configs([r])[r].result(10)
        err = e.value.args[0]
        assert err.code() == confluent_kafka.KafkaError.INVALID_CONFIG, err
        assert words in err.str(), err.str()
    r = ConfigResource("topic", "no-such-topic-xyz", set_config={"retention.ms": "1"})
    with pytest.raises(KafkaException) as e:
        a.alter_configs([r])[r].result(10)
    assert e.value.args[0].code() == confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART


def test_incremental_alter_configs_operations(broker):
    topic = create_topic(broker.bootstrap, unique_topic("cfg-inc"), config={"retention.ms": "1000"})
    res = incremental_alter_configs(broker.bootstrap, [(2, topic, [
        ("retention.ms", DELETE, None), ("segment.ms", SET, "3600000"), ("cleanup.policy", APPEND, "compact")])])
    assert res[0][0] == 0, res
    d = describe_topic(broker.bootstrap, topic)
    assert d["retention.ms"].value == "604800000"
    assert d["segment.ms"].value == "3600000"
    assert d["cleanup.policy"].value == "delete,compact"
    res = incremental_alter_configs(broker.bootstrap, [(2, topic, [("cleanup.policy", SUBTRACT, "delete")])])
    assert res[0][0] == 0
    assert describe_topic(broker.bootstrap, topic)["cleanup.policy"].value == "compact"
    res = incremental_alter_configs(broker.bootstrap, [(2, topic, [("retention.ms", APPEND, "5")])])
    assert res[0][0] == 40 and "append" in res[0][1]
    # validate_only changes nothing.
    res = incremental_alter_configs(broker.bootstrap, [(2, topic, [("segment.ms", SET, "7200000")])], validate_only=True)
    assert res[0][0] == 0
    assert describe_topic(broker.bootstrap, topic)["segment.ms"].value == "3600000"


def test_kafka_python_admin_describe_alter(broker):
    from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType, KafkaAdminClient
    topic = create_topic(broker.bootstrap, unique_topic("cfg-kp"))
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        resp = a.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic,
                                                configs={"retention.ms": "86400000"})])
        assert resp.resources[0][0] == 0, resp
        resp = a.describe_configs([KConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True)
        entries = {c[0]: c for c in resp[0].resources[0][4]}
        assert entries["retention.ms"][1] == "86400000"
        resp = a.describe_configs([KConfigResource(ConfigResourceType.BROKER, "1")])
        entries = {c[0]: c[1] for c in resp[0].resources[0][4]}
        assert entries["log.retention.hours"] == "168"
    finally:
        a.close()


@pytest.mark.skipif(not kjs_available(), reason="kafkajs not installed (npm ci in tests/blackbox/js)")
def test_kafkajs_admin_describe_alter(broker):
    topic = unique_topic("cfg-kjs")
    res = kjs_admin_ok(broker.bootstrap, [
        {"op": "createTopics", "topics": [{"topic": topic, "numPartitions": 1,
                                           "configEntries": [{"name": "retention.ms", "value": "55555"}]}]},
        {"op": "describeConfigs", "resources": [{"type": 2, "name": topic, "configNames": ["retention.ms"]}],
         "includeSynonyms": True},
        {"op": "alterConfigs", "resources": [{"type": 2, "name": topic,
                                              "configEntries": [{"name": "retention.ms", "value": "77777"}]}]},
        {"op": "describeConfigs", "resources": [{"type": 2, "name": topic, "configNames": []}]},
    ])
    entries = res[1]["resources"][0]["configEntries"]
    assert [(e["configName"], e["configValue"]) for e in entries] == [("retention.ms", "55555")]
    after = {e["configName"]: e for e in res[3]["resources"][0]["configEntries"]}
    assert after["retention.ms"]["configValue"] == "77777"
    assert after["cleanup.policy"]["isDefault"] is True
    bad = kjs_admin(broker.bootstrap, [
        {"op": "alterConfigs", "resources": [{"type": 2, "name": topic,
                                              "configEntries": [{"name": "segment.bytes", "value": "-1"}]}]}])
    assert "error" in bad[0] and bad[0]["error"]["type"] == "INVALID_CONFIG", bad


def test_configs_survive_restart_and_dynamic_broker_configs(broker_factory):
    b = broker_factory({"log.retention.check.interval.ms": "300", "log.segment.bytes": "1500"})
    topic = create_topic(b.bootstrap, unique_topic("cfg-restart"), config={"max.message.bytes": "50000"})
    res = incremental_alter_configs(b.bootstrap, [(2, topic, [("retention.bytes", SET, "123456789")]),
                                                  (4, "1", [("log.retention.ms", SET, "2000")])])
    assert [r[0] for r in res] == [0, 0], res
    # A read-only broker key is refused with a reason.
    res = incremental_alter_configs(b.bootstrap, [(4, "1", [("node.id", SET, "5")])])
    assert res[0][0] == 40 and "node.id" in res[0][1]
    d = describe_topic(b.bootstrap, topic)
    assert d["retention.ms"].value == "2000" and d["retention.ms"].source == ba.DYNAMIC_BROKER_CONFIG
    b.restart()
    d = describe_topic(b.bootstrap, topic)
    assert d["max.message.bytes"].value == "50000"
    assert d["retention.bytes"].value == "123456789"
    assert d["retention.ms"].value == "2000" and d["retention.ms"].source == ba.DYNAMIC_BROKER_CONFIG
    r = ConfigResource("broker", "1")
    a = admin(b.bootstrap)
    bd = a.describe_configs([r])[r].result(10)
    assert bd["log.retention.ms"].value == "2000" and bd["log.retention.ms"].source == ba.DYNAMIC_BROKER_CONFIG
    # It takes effect without a restart: the broker-level retention deletes old segments.
    recs = [Rec(b"k%d" % i, b"v" * 200, (), now_ms() - 3_600_000) for i in range(30)]
    ck_produce(b.bootstrap, topic, recs + [Rec(b"new", b"n", (), now_ms())], **{"linger.ms": 0, "batch.num.messages": 1})
    wait_for("dynamic retention", lambda: watermarks(b.bootstrap, topic)[0] > 0)
    # max.message.bytes applies to produce at once.
    with pytest.raises(AssertionError):
        ck_produce(b.bootstrap, topic, [Rec(b"big", b"x" * 60000)], **{"message.send.max.retries": 0})


def test_log_append_time_and_timestamp_bounds(broker):
    t_lat = create_topic(broker.bootstrap, unique_topic("cfg-lat"), config={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    ck_produce(broker.bootstrap, t_lat, [Rec(b"k", b"v", (), 1000)])
    got = ck_consume(broker.bootstrap, t_lat, expected=1)
    assert got[0].timestamp >= before - 1000
    t_bound = create_topic(broker.bootstrap, unique_topic("cfg-bound"),
                           config={"message.timestamp.before.max.ms": "60000",
                                   "message.timestamp.after.max.ms": "60000"})
    for ts in (now_ms() - 3_600_000, now_ms() + 3_600_000):
        with pytest.raises(AssertionError) as e:
            ck_produce(broker.bootstrap, t_bound, [Rec(b"k", b"v", (), ts)], **{"message.send.max.retries": 0})
        assert "INVALID_TIMESTAMP" in str(e.value) or "32" in str(e.value)
    ck_produce(broker.bootstrap, t_bound, [Rec(b"k", b"ok", (), now_ms())])
    # Changing the topic to LogAppendTime lifts the bounds at once.
    incremental_alter_configs(broker.bootstrap, [(2, t_bound, [("message.timestamp.type", SET, "LogAppendTime")])])
    ck_produce(broker.bootstrap, t_bound, [Rec(b"k", b"old", (), now_ms() - 3_600_000)])
    assert watermarks(broker.bootstrap, t_bound) == (0, 2)
