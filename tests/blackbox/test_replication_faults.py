"""Replication under real faults: three gregor processes in network namespaces,
a topic with replication factor 3 and min.insync.replicas=2, an acks=all
producer (librdkafka, retries, max.in.flight=1, no idempotence) and a consumer
group running while the leader of a partition is killed, stopped, cut off from
its followers or from the controller, or the nodes are restarted in turn
(bb_faults). After each run bb_checker reads every partition back and holds
Gregor to what Kafka promises for acks=all with min.insync.replicas=2:

- no acknowledged record is lost;
- no producer key's records are out of order in a way the producer did not see
  (disorder the client caused itself is reported, see bb_checker);
- a group's committed offsets never go back.

Duplicates, records found at another offset than acknowledged, failed
deliveries, phantom reads and the unavailability are printed per run (run
pytest with -s to see them as they come).

Each fault class is one test that repeats GREGOR_FAULT_RUNS runs (default 2)
against one cluster, each on a fresh topic, 5-17 s a run. The long campaign
(1000 runs a class) is scripts/fault-campaign.sh.
"""

import os

import pytest

import bb_faults

RUNS = int(os.environ.get("GREGOR_FAULT_RUNS", "2"))
# A run takes 5-17 s when all is well; a broken cluster can make one wait out
# its bounded waits (about 90 s).
DEADLINE = 120 + 100 * RUNS

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory):
    why = bb_faults.unavailable()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("faults")
    holder = {"fc": None, "n": 0}

    def get(renew=False):
        if renew and holder["fc"] is not None:
            holder["fc"].close()
            holder["fc"] = None
        if holder["fc"] is None:
            holder["n"] += 1
            holder["fc"] = bb_faults.FaultCluster(str(root / ("cluster%d" % holder["n"])))
        return holder["fc"]

    get.root = root
    yield get
    if holder["fc"] is not None:
        holder["fc"].close()


def repeat(fault_cluster, register_broker, fault, runs):
    results, registered = [], None
    fc = fault_cluster()
    for k in range(runs):
        if registered is not fc:  # a failing test shows the logs of the cluster(s) it used
            for b in fc.nodes.values():
                register_broker(b)
            registered = fc
        r = bb_faults.run_once(fc, fault, k, str(fault_cluster.root / "runs"))
        results.append(r)
        print("[%s %d/%d] %s %s" % (fault, k + 1, runs, "ok " if r.ok else "BAD", r.line()), flush=True)
        if not r.ok and r.check and r.check.details():
            print("    " + r.check.details().replace("\n", "\n    "), flush=True)
        if r.error or r.crashed:
            fc = fault_cluster(renew=True)  # next run on a clean cluster
    return results


def verdict(results):
    bad = [r for r in results if not r.ok]
    if not bad:
        return
    lines = ["%d of %d runs failed:" % (len(bad), len(results))]
    for r in bad:
        lines.append(r.line())
        if r.check and r.check.details():
            lines.append("    " + r.check.details().replace("\n", "\n    "))
    pytest.fail("\n".join(lines), pytrace=False)


@pytest.mark.deadline(DEADLINE)
def test_no_fault_baseline(fault_cluster, register_broker):
    """Without a fault, nothing at all may go wrong: every record acknowledged,
    once, in order, where it was acknowledged; commits only go forward.
    (Replicas that differ in size are printed, not failed: the binary may not
    replicate yet.)"""
    # The baseline is not a fault class: a few runs say the harness is sound,
    # and CI's time goes to the faults.
    results = repeat(fault_cluster, register_broker, "none", min(RUNS, 3))
    verdict(results)
    for r in results:
        c = r.check
        assert (c.failed, c.unreported, len(c.moved), c.duplicates, len(c.client_reorders), c.unacked_in_log,
                len(c.phantom_reads)) == (0, 0, 0, 0, 0, 0, 0), r.line()
        assert c.acked > 0 and c.log_records == c.acked, r.line()


@pytest.mark.deadline(DEADLINE)
@pytest.mark.parametrize("fault", bb_faults.FAULTS)
def test_fault(fault_cluster, register_broker, fault):
    verdict(repeat(fault_cluster, register_broker, fault, RUNS))
