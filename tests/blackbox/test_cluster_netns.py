"""Cut links between real gregor processes, each in its own network namespace
(nftables drops: this kernel has no netem). What KRaft promises and these
tests hold Gregor to:

- pre-vote (KIP-996): a voter cut off from the others for many election
  timeouts does not raise the epoch, so when the link heals it rejoins the
  leader it had instead of deposing it;
- check-quorum: a leader cut off from every follower resigns, the others
  elect a new one at a higher epoch, and the old one follows it on healing;
- a broker whose heartbeats cannot reach the controller is fenced, and is
  unfenced when they can again.
"""

import time

import pytest

import bb_admin
import bb_netns
from bb_broker import SANITIZED
from bb_cluster import FAST_SESSION

SLOW = 3 if SANITIZED else 1
ELECTION_TIMEOUT_MS = 1000  # Kafka's controller.quorum.election.timeout.ms default


@pytest.fixture
def net():
    why = bb_netns.unavailable()
    if why:
        pytest.skip(why)
    n = bb_netns.Net([1, 2, 3])
    yield n
    n.close()


def _cluster(cluster_factory, net):
    c = cluster_factory(3, overrides=FAST_SESSION,
                        hosts={i: net.addr(i) for i in net.ids},
                        prefixes={i: net.prefix(i) for i in net.ids})
    c.wait_brokers({1, 2, 3}, timeout=60 * SLOW)
    return c


def _views(c, ids):
    """{node: (leader, epoch)} as each node's `metadata-quorum describe --status` says."""
    out = {}
    for i in ids:
        s = c.quorum_status(i)
        out[i] = (int(s["LeaderId"]), int(s["LeaderEpoch"])) if s else None
    return out


def _replication(c, via):
    import test_cluster
    return test_cluster.quorum_replication(c, via)


@pytest.mark.deadline(180)
def test_partitioned_voter_rejoins_without_disturbing_the_leader(net, cluster_factory):
    c = _cluster(cluster_factory, net)
    leader, epoch = c.wait_quorum_leader()
    victim = next(i for i in c.ids if i != leader)
    others = [i for i in c.ids if i != victim]

    net.cut(victim, others)
    cut_s = 10 * ELECTION_TIMEOUT_MS / 1000  # many election timeouts, and past the session timeout
    deadline = time.monotonic() + cut_s
    try:
        # The majority side carries on: same leader, same epoch; the cut-off
        # broker is fenced (its heartbeats do not arrive).
        c.wait_brokers(set(others), via=others, timeout=30 * SLOW)
        while time.monotonic() < deadline:
            assert set(_views(c, others).values()) == {(leader, epoch)}
            time.sleep(0.5)
    finally:
        net.heal(victim)

    # Healed: the victim follows the same leader at the same epoch; nobody
    # moved to a new epoch because of it (pre-vote).
    views = bb_admin.wait_for(
        "every node naming leader %d at epoch %d again" % (leader, epoch),
        lambda: (lambda v: v if set(v.values()) == {(leader, epoch)} else None)(_views(c, c.ids)), 30 * SLOW)
    assert views[victim] == (leader, epoch)
    bb_admin.wait_for("node %d a follower again" % victim,
                      lambda: _replication(c, leader).get(victim) == "Follower", 30 * SLOW)
    c.wait_brokers({1, 2, 3}, timeout=30 * SLOW)  # unfenced
    assert c.wait_quorum_leader() == (leader, epoch)


@pytest.mark.deadline(180)
def test_isolated_leader_resigns_and_follows_the_new_one(net, cluster_factory):
    c = _cluster(cluster_factory, net)
    leader, epoch = c.wait_quorum_leader()
    others = [i for i in c.ids if i != leader]

    log_at = len(c.nodes[leader].log_text())
    net.cut(leader, others)
    try:
        new, new_epoch = c.wait_quorum_leader(via=others, exclude={leader}, timeout=30 * SLOW)
        assert new_epoch > epoch
        # The old leader notices on its own that it lost the quorum (check-quorum)
        # and resigns; cut off, it only pre-votes, so its epoch stays put.
        import test_cluster
        test_cluster.wait_log(c.nodes[leader], r"epoch %d, leader -1 \(resigned here\)" % epoch, 30 * SLOW)
        # Admin requests through the majority side work.
        test_cluster.create_until_ok(c.nodes[others[0]].bootstrap, "during-cut", 20 * SLOW)
        assert "(candidate here)" not in c.nodes[leader].log_text()[log_at:], "an isolated voter raised its epoch"
    finally:
        net.heal(leader)

    views = bb_admin.wait_for(
        "every node naming leader %d" % new,
        lambda: (lambda v: v if all(x and x[0] == new for x in v.values()) else None)(_views(c, c.ids)),
        30 * SLOW)
    assert all(e >= new_epoch for _, e in views.values())
    c.wait_brokers({1, 2, 3}, timeout=30 * SLOW)
