"""The replication fault checker (bb_checker) judged on made-up evidence, so
that it is known to fail when it must: a lost acknowledged record, one found
elsewhere, duplicates, disorder the broker caused versus disorder the client
caused, committed offsets going back or vanishing, phantom reads, and the
unavailability figures. No broker is started."""

import bb_checker as ck
from bb_loadgen import make_value

TAG = "t1"


def acks(entries, failed=()):
    """entries: [(key, seq, partition, offset, t_ack)]."""
    return ck.Acks({(k, s): (p, o, t) for k, s, p, o, t in entries}, {ks: "err" for ks in failed},
                   {"unreported": 0}, TAG)


def log_of(parts):
    """parts: {partition: [(key, seq), ...]} at offsets 0.. -> (log, marks)."""
    log = {p: [(o, make_value(TAG, k, s)) for o, (k, s) in enumerate(recs)] for p, recs in parts.items()}
    return log, {p: (0, len(v)) for p, v in log.items()}


def clean_case():
    # Two partitions, keys 0 and 2 on p0, key 1 on p1 (key % 2).
    a = acks([(0, 0, 0, 0, 1.0), (2, 0, 0, 1, 1.1), (0, 1, 0, 2, 1.2), (1, 0, 1, 0, 1.0), (1, 1, 1, 1, 1.3)])
    log, marks = log_of({0: [(0, 0), (2, 0), (0, 1)], 1: [(1, 0), (1, 1)]})
    return a, log, marks


def test_a_clean_run_passes():
    a, log, marks = clean_case()
    r = ck.check(a, log, marks)
    assert r.ok and r.acked == 5 and r.log_records == 5, r.summary()
    assert not (r.lost or r.moved or r.duplicates or r.order_violations or r.client_reorders)


def test_an_acknowledged_record_missing_from_the_log_is_lost():
    a, log, marks = clean_case()
    log[0] = log[0][:2]  # the leader's tail is gone (truncated, or never copied)
    marks[0] = (0, 2)
    r = ck.check(a, log, marks)
    assert not r.ok
    assert r.lost == [(0, 1, 0, 2)]
    assert "lost" in r.details() and "p0 2..2" in r.details()


def test_a_record_at_another_offset_is_moved_not_lost():
    a, log, marks = clean_case()
    log[0] = [(0, make_value(TAG, 2, 0)), (1, make_value(TAG, 0, 0)), (2, make_value(TAG, 0, 1))]
    r = ck.check(a, log, marks)
    assert not r.lost and r.ok
    assert sorted(m[:2] for m in r.moved) == [(0, 0), (2, 0)]


def test_duplicates_are_counted_and_do_not_fail():
    a, log, marks = clean_case()
    # A retried batch appended twice: (0,1) again after itself.
    log[0].append((3, make_value(TAG, 0, 1)))
    marks[0] = (0, 4)
    r = ck.check(a, log, marks)
    assert r.ok and r.duplicates == 1 and r.duplicated_acked == 1 and not r.order_violations


def test_disorder_the_broker_caused_fails():
    # seq 1 acknowledged before seq 2, yet the log has 2 then 1.
    a = acks([(0, 0, 0, 0, 1.0), (0, 1, 0, 2, 1.1), (0, 2, 0, 1, 1.2)])
    log, marks = log_of({0: [(0, 0), (0, 2), (0, 1)]})
    r = ck.check(a, log, marks)
    assert not r.ok
    assert r.order_violations == [(0, 2, 0, 1, 2)]


def test_disorder_the_client_caused_is_reported_only():
    # seq 1 was in flight to the old leader while seq 2 went to the new one and
    # was acknowledged first; seq 1 was retried behind it.
    a = acks([(0, 0, 0, 0, 1.0), (0, 2, 0, 1, 2.0), (0, 1, 0, 2, 3.0)])
    log, marks = log_of({0: [(0, 0), (0, 2), (0, 1)]})
    r = ck.check(a, log, marks)
    assert r.ok and not r.order_violations
    assert r.client_reorders == [(0, 2, 0, 1, 2)]


def test_unacknowledged_records_in_the_log_are_allowed():
    a, log, marks = clean_case()
    log[1].append((2, make_value(TAG, 1, 2)))  # delivery failed, but the broker wrote it
    marks[1] = (0, 3)
    r = ck.check(ck.Acks(a.acked, {(1, 2): "timed out"}, a.summary, TAG), log, marks)
    assert r.ok and r.unacked_in_log == 1 and r.failed == 1


def group(commits=(), probes=(), reads=()):
    return ck.Group(list(reads), list(commits), list(probes), [])


def test_committed_offsets_going_back_fail():
    a, log, marks = clean_case()
    g = group(commits=[(1.0, {0: 2, 1: 1})], probes=[(1.5, {0: 2, 1: 1}), (2.0, {0: 1, 1: 1})])
    r = ck.check(a, log, marks, g)
    assert not r.ok
    assert r.committed_back == [(0, 2.0, 2, 1, "committed()")]


def test_committed_offsets_vanishing_fail():
    a, log, marks = clean_case()
    g = group(probes=[(1.0, {0: 2, 1: 1}), (2.0, {0: ck.OFFSET_INVALID, 1: 1})])
    r = ck.check(a, log, marks, g)
    assert not r.ok and r.committed_back == [(0, 2.0, 2, ck.OFFSET_INVALID, "committed()")]


def test_committed_offsets_growing_pass_and_beyond_the_end_is_reported():
    a, log, marks = clean_case()
    g = group(commits=[(1.0, {0: 1}), (2.0, {0: 3, 1: 5})], probes=[(0.5, {0: ck.OFFSET_INVALID}), (1.5, {0: 1})])
    r = ck.check(a, log, marks, g)
    assert r.ok and not r.committed_back
    assert r.committed_beyond_end == [(1, 5, 2)]


def test_a_read_of_a_record_no_longer_in_the_log_is_a_phantom_read():
    a, log, marks = clean_case()
    g = group(reads=[(0, 0, make_value(TAG, 0, 0).decode()), (0, 3, make_value(TAG, 0, 9).decode())])
    r = ck.check(a, log, marks, g)
    assert r.phantom_reads == [(0, 3, make_value(TAG, 0, 9).decode(), None)]


def test_unavailability_from_the_fault_to_the_next_acknowledgement():
    # p0 acknowledges at 1.0, 1.1, (fault at 2.0), 2.05 (in flight), 6.0, 6.1; p1 is untouched.
    a = acks([(0, 0, 0, 0, 1.0), (0, 1, 0, 1, 1.1), (0, 2, 0, 2, 2.05), (0, 3, 0, 3, 6.0), (0, 4, 0, 4, 6.1),
              (1, 0, 1, 0, 3.0)])
    log, marks = log_of({0: [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)], 1: [(1, 0)]})
    r = ck.check(a, log, marks, windows=[ck.Window("kill9", 2.0, 5.0, [0])], t_end=7.0)
    u = r.unavailability["kill9"]
    assert abs(u["first_ack_s"] - 0.05) < 1e-9
    assert abs(u["max_gap_s"] - 3.95) < 1e-9
    assert u["never_acked_after"] == [] and abs(u["fault_s"] - 3.0) < 1e-9
    # A partition that never acknowledges again: unavailable until the end.
    r = ck.check(a, log, marks, windows=[ck.Window("cut", 3.5, 5.0, [1])], t_end=7.0)
    assert r.unavailability["cut"]["never_acked_after"] == [1]
    assert r.unavailability["cut"]["first_ack_s"] is None
    assert abs(r.unavailability["cut"]["max_gap_s"] - 3.5) < 1e-9


def test_the_group_commit_gap_counts_only_commits_of_every_partition():
    a, log, marks = clean_case()
    g = group(commits=[(1.0, {0: 1, 1: 1}), (2.5, {0: 2, 1: ck.OFFSET_INVALID}), (4.0, {0: 2, 1: 2})])
    r = ck.check(a, log, marks, g, windows=[ck.Window("sigstop", 2.0, 3.0, [0])], t_end=4.5)
    assert abs(r.unavailability["sigstop"]["group_commit_gap_s"] - 2.0) < 1e-9
    assert "group commits 2.0s" in r.summary()


def test_a_window_measures_only_until_its_end():
    # Two restarts in a row: the first window must not count the second's gap.
    a = acks([(0, 0, 0, 0, 1.0), (0, 1, 0, 1, 2.5), (0, 2, 0, 2, 3.0), (0, 3, 0, 3, 8.0)])
    log, marks = log_of({0: [(0, 0), (0, 1), (0, 2), (0, 3)]})
    w1, w2 = ck.Window("restart-n1", 2.0, 2.2, [0], until=4.0), ck.Window("restart-n2", 4.0, 4.2, [0])
    r = ck.check(a, log, marks, windows=[w1, w2], t_end=9.0)
    assert abs(r.unavailability["restart-n1"]["max_gap_s"] - 1.0) < 1e-9
    assert abs(r.unavailability["restart-n2"]["max_gap_s"] - 4.0) < 1e-9
    # But a partition still down when its window ends counts until it acknowledges again.
    w1.until = 2.3
    r = ck.check(a, log, marks, windows=[w1, w2], t_end=9.0)
    assert abs(r.unavailability["restart-n1"]["max_gap_s"] - 0.5) < 1e-9
    assert abs(r.unavailability["restart-n1"]["first_ack_s"] - 0.5) < 1e-9
