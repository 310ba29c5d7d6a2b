"""Real clients' idempotent producers against a real broker, with produce
responses lost on the way back (bb_proxy): the broker appended, the client
never heard and sends the batch again. With idempotence each record is in the
log once and in order; without it the same loss writes duplicates, as it does
on Apache Kafka, which shows the loss really caused resends.

kafka-python 2.0.2 (Debian 12) has no idempotent producer, so it is not here.
"""

import pytest
from confluent_kafka import Producer

from bb_clients import ck_consume, create_topic, kjs_available, kjs_ok, now_ms, rec_to_js, Rec, unique_topic

PRODUCE = 0


def produce_rounds(bootstrap, topic, rounds, per_round, drops, proxy, **conf):
    """Produces rounds of records (flushing after each); before round i the
    proxy loses drops[i] produce responses. Returns the values sent."""
    p = Producer(dict({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                       "message.timeout.ms": 60000, "socket.timeout.ms": 10000,
                       "retry.backoff.ms": 50}, **conf))
    errors, sent = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    for r in range(rounds):
        proxy.drop_responses(PRODUCE, drops[r])
        for i in range(per_round):
            v = b"r%d-%d" % (r, i)
            sent.append(v)
            p.produce(topic, v, partition=0, on_delivery=on_delivery)
        assert p.flush(60) == 0, "records still queued after 60 s"
    assert not errors, errors
    return sent


def lossy_run(proxied, prefix, idempotence):
    """Four rounds of 50 records with 4 produce responses lost: (sent, read back)."""
    b, proxy = proxied
    t = create_topic(b.bootstrap, unique_topic(prefix), 1)
    sent = produce_rounds("127.0.0.1:%d" % proxy.port, t, 4, 50, [0, 1, 2, 1], proxy,
                          **{"enable.idempotence": idempotence})
    assert proxy.dropped_count(PRODUCE) == 4
    return sent, [r.value for r in ck_consume(b.bootstrap, t, expected=len(sent))]


def test_librdkafka_idempotent_producer_writes_each_record_once_despite_lost_responses(proxied):
    sent, got = lossy_run(proxied, "idem-rdk", True)
    assert got == sent  # once each, in order


def test_without_idempotence_the_same_lost_responses_write_duplicates(proxied):
    sent, got = lossy_run(proxied, "dup-rdk", False)
    assert len(got) > len(sent) and set(got) == set(sent), (len(got), len(sent))


def test_kcat_with_idempotence_enabled(broker):
    from bb_clients import kcat_produce
    t = create_topic(broker.bootstrap, unique_topic("idem-kcat"), 1)
    kcat_produce(broker.bootstrap, t, [(None, b"v%d" % i) for i in range(100)],
                 extra=["-X", "enable.idempotence=true"])
    assert [r.value for r in ck_consume(broker.bootstrap, t, expected=100)] == [b"v%d" % i for i in range(100)]


@pytest.mark.skipif(not kjs_available(), reason="kafkajs not installed: run scripts/install-deps.sh")
def test_kafkajs_idempotent_producer_writes_each_record_once_despite_a_lost_response(proxied):
    b, proxy = proxied
    t = create_topic(b.bootstrap, unique_topic("idem-kjs"), 1)
    recs = [Rec(None, b"j%d" % i, (), now_ms()) for i in range(60)]
    msgs = [dict(rec_to_js(r), partition=0) for r in recs]
    proxy.drop_responses(PRODUCE, 1)  # the first send's answer is lost
    kjs_ok("127.0.0.1:%d" % proxy.port,
           [{"op": "produce", "topic": t, "messages": msgs, "idempotent": True, "sends": 3}])
    assert proxy.dropped_count(PRODUCE) == 1
    got = [r.value for r in ck_consume(b.bootstrap, t, expected=60)]
    assert got == [r.value for r in recs]
