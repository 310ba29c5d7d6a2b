"""Every client reads exactly what every other client wrote: (key, value,
headers, timestamp) compared byte for byte, plus offsets."""

import pytest

from bb_clients import (assert_same, ck_consume, ck_produce, create_topic,
                        kcat_consume, kcat_produce, kjs_available, kjs_fetch,
                        kjs_produce, kp_consume, kp_produce, now_ms,
                        portable_records, unique_topic)

PRODUCERS = ["kcat", "confluent", "kafka-python", "kafkajs"]
CONSUMERS = ["kcat", "confluent", "kafka-python", "kafkajs"]


def _consume(name, bootstrap, topic, n):
    if name == "kcat":
        return kcat_consume(bootstrap, topic, partition=0)
    if name == "confluent":
        return ck_consume(bootstrap, topic, expected=n)
    if name == "kafka-python":
        return kp_consume(bootstrap, topic, expected=n)
    if name == "kafkajs":
        return kjs_fetch(bootstrap, topic, expected=n)
    raise ValueError(name)


@pytest.mark.parametrize("producer", PRODUCERS)
def test_cross_client(broker, producer):
    if "kafkajs" in (producer,) and not kjs_available():
        pytest.skip("kafkajs not installed")
    t = create_topic(broker.bootstrap, unique_topic("x-" + producer.replace("-", "")), 1)
    tag = producer.encode()

    if producer == "kcat":
        # kcat cannot set timestamps or per-message headers, nor send empty
        # messages: it writes binary key/values with one fixed header set and
        # the client's own CreateTime.
        recs = [r for r in portable_records(tag=b"-" + tag) if r.value]
        kvs = [(r.key, r.value) for r in recs]
        t0 = now_ms()
        kcat_produce(broker.bootstrap, t, kvs, headers=[("src", "kcat"), ("n", "1")])
        t1 = now_ms()
        # Reference read with librdkafka; every other client must agree.
        expected = ck_consume(broker.bootstrap, t, expected=len(kvs))
        assert [(r.key, r.value) for r in expected] == kvs
        for r in expected:
            assert r.headers == (("src", b"kcat"), ("n", b"1")), r.headers
            assert t0 - 1000 <= r.timestamp <= t1 + 1000, (r.timestamp, t0, t1)
    else:
        expected = portable_records(tag=b"-" + tag)
        if producer == "confluent":
            res = ck_produce(broker.bootstrap, t, expected)
        elif producer == "kafka-python":
            res = kp_produce(broker.bootstrap, t, expected)
        else:
            res = kjs_produce(broker.bootstrap, t, expected)
            res = [(x["partition"], int(x["baseOffset"])) for x in res]
        if producer != "kafkajs":
            assert res == [(0, i) for i in range(len(expected))], res
        else:
            assert res == [(0, 0)], res

    failures = []
    for consumer in CONSUMERS:
        if consumer == "kafkajs" and not kjs_available():
            continue
        try:
            got = _consume(consumer, broker.bootstrap, t, len(expected))
            assert [r.offset for r in got] == list(range(len(expected))), \
                [r.offset for r in got]
            assert_same(got, expected)
        except AssertionError as e:
            failures.append("%s -> %s: %s" % (producer, consumer, e))
        except Exception as e:  # noqa: BLE001 - report every pair, then fail
            failures.append("%s -> %s: %r" % (producer, consumer, e))
    assert not failures, "\n\n".join(failures)
