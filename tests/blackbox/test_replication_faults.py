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

Each fault class is one test that repeats GREGOR_FAULT_RUNS runs (default 2),
each on a fresh topic, 5-17 s a run, spread over GREGOR_FAULT_CLUSTERS clusters
(default 2) that work side by side. The long campaign
(1000 runs a class) is scripts/fault-campaign.sh.
"""

import concurrent.futures
import os
import threading

import pytest

import bb_faults

RUNS = int(os.environ.get("GREGOR_FAULT_RUNS", "2"))
# Clusters working side by side on a class's runs (each three nodes in its own
# namespaces; a run mostly waits, so two share these 2 cores easily).
CLUSTERS = int(os.environ.get("GREGOR_FAULT_CLUSTERS", "2"))
# A run takes 5-17 s when all is well; a broken cluster can make one wait out
# its bounded waits (about 90 s).
DEADLINE = 120 + 100 * -(-RUNS // max(1, CLUSTERS))

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory):
    """get(slot, renew=False): the cluster of worker slot, made on first use
    (each slot's cluster has its own namespaces and subnet). get.pool runs the
    workers: its threads live as long as the clusters, because a broker dies
    with the thread that started it (PR_SET_PDEATHSIG, bb_broker)."""
    why = bb_faults.unavailable()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("faults")
    lock = threading.Lock()
    holder = {"fcs": {}, "n": 0}

    def get(slot=0, renew=False):
        old = holder["fcs"].pop(slot, None) if renew else None
        if old is not None:
            old.close()
        if slot not in holder["fcs"]:
            with lock:
                holder["n"] += 1
                name = "cluster%d" % holder["n"]
            holder["fcs"][slot] = bb_faults.FaultCluster(str(root / name))
        return holder["fcs"][slot]

    get.root = root
    get.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, CLUSTERS))
    yield get
    for fc in holder["fcs"].values():
        fc.close()
    get.pool.shutdown(wait=True)


def repeat(fault_cluster, register_broker, fault, runs):
    """runs of fault, spread over CLUSTERS clusters working side by side (a run
    mostly waits: for a session to time out, a leader to move, the load to
    settle), worker w doing runs w, w + CLUSTERS, ..."""
    workers = max(1, min(CLUSTERS, runs))
    results, failures = [None] * runs, []
    lock, stop = threading.Lock(), threading.Event()

    def work(slot):
        fc, registered = fault_cluster(slot), None
        for k in range(slot, runs, workers):
            if stop.is_set():
                return
            if registered is not fc:  # a failing test shows the logs of the cluster(s) it used
                with lock:
                    for b in fc.nodes.values():
                        register_broker(b)
                registered = fc
            r = bb_faults.run_once(fc, fault, k, str(fault_cluster.root / "runs"))
            results[k] = r
            with lock:
                print("[%s %d/%d] %s %s" % (fault, k + 1, runs, "ok " if r.ok else "BAD", r.line()), flush=True)
                if not r.ok and r.check and r.check.details():
                    print("    " + r.check.details().replace("\n", "\n    "), flush=True)
            if r.error or r.crashed:
                fc = fault_cluster(slot, renew=True)  # next run on a clean cluster

    def guarded(slot):
        try:
            work(slot)
        except BaseException as e:  # a harness failure (a cluster that cannot start): fail the test with it
            failures.append(e)
            stop.set()

    futures = [fault_cluster.pool.submit(guarded, w_) for w_ in range(workers)]
    try:
        while not all(f.done() for f in futures):
            concurrent.futures.wait(futures, timeout=0.5)  # short waits: the test's deadline (SIGALRM) can interrupt
    finally:
        stop.set()
    if failures:
        raise failures[0]
    return [r for r in results if r is not None]


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
