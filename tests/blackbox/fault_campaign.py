"""The long fault campaign: N runs of each fault class (bb_faults) against a
three-node cluster in network namespaces, a progress line per run and a
summary per class. Exits 1 if any run lost an acknowledged record, broke a
key's order, saw a committed offset go back, crashed a node or could not be
judged; 0 otherwise. Needs root (namespaces, nftables).

    /usr/bin/python3 tests/blackbox/fault_campaign.py --runs 1000
    /usr/bin/python3 tests/blackbox/fault_campaign.py --runs 50 --faults kill9_leader,sigstop_leader

scripts/fault-campaign.sh wraps it (and pins a copy of the binary).
"""

import argparse
import collections
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bb_faults  # noqa: E402
from bb_broker import gregor_bin  # noqa: E402


def pct(xs, q):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def fmt_s(x):
    return "-" if x is None else "%.1fs" % x


def spread(xs):
    return "p50=%s p95=%s max=%s" % (fmt_s(pct(xs, 0.5)), fmt_s(pct(xs, 0.95)), fmt_s(max(xs) if xs else None))


class Tally:
    def __init__(self, fault):
        self.fault = fault
        self.runs = self.bad = self.errors = self.crashes = 0
        self.lost = self.moved = self.dup = self.order = self.back = self.phantom = self.failed = 0
        self.unavail, self.group_gap, self.took = [], [], []

    def add(self, r):
        self.runs += 1
        self.bad += 0 if r.ok else 1
        self.errors += 1 if r.error else 0
        self.crashes += 1 if r.crashed else 0
        self.took.append(r.took_s)
        c = r.check
        if c:
            self.lost += len(c.lost)
            self.moved += len(c.moved)
            self.dup += c.duplicates
            self.order += len(c.order_violations)
            self.back += len(c.committed_back)
            self.phantom += len(c.phantom_reads)
            self.failed += c.failed
            gaps = [u["max_gap_s"] for u in c.unavailability.values()]
            if gaps:
                self.unavail.append(max(gaps))
            gaps = [u["group_commit_gap_s"] for u in c.unavailability.values() if "group_commit_gap_s" in u]
            if gaps:
                self.group_gap.append(max(gaps))

    def line(self):
        return ("%-22s runs=%d bad=%d lost=%d order=%d commits_back=%d crashes=%d errors=%d | moved=%d dup=%d "
                "phantom=%d failed_deliveries=%d | unavailable %s | group commits stalled %s | run avg=%s"
                % (self.fault, self.runs, self.bad, self.lost, self.order, self.back, self.crashes, self.errors,
                   self.moved, self.dup, self.phantom, self.failed, spread(self.unavail), spread(self.group_gap),
                   fmt_s(statistics.mean(self.took) if self.took else None)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000, help="runs per fault class (default 1000)")
    ap.add_argument("--faults", default=",".join(bb_faults.FAULTS),
                    help="comma-separated, from: none,%s" % ",".join(bb_faults.FAULTS))
    ap.add_argument("--workdir", help="where clusters, failed runs' files and results.jsonl go "
                                      "(default: a new /tmp/gregor-faults-*)")
    ap.add_argument("--rate", type=float, default=bb_faults.RATE, help="records per second (default %(default)s)")
    ap.add_argument("--restart-every", type=int, default=50,
                    help="a fresh cluster after this many runs (default %(default)s)")
    ap.add_argument("--clusters", type=int, default=2,
                    help="clusters working side by side, each on its own runs (default %(default)s)")
    ap.add_argument("--stop-on-failure", action="store_true", help="stop at the first bad run")
    ap.add_argument("--keep", action="store_true", help="keep every run's files, not only the bad runs'")
    a = ap.parse_args(argv)
    faults = [f for f in a.faults.split(",") if f]
    unknown = [f for f in faults if f not in bb_faults.FAULT_FNS]
    if unknown:
        ap.error("unknown fault classes %s" % unknown)
    why = bb_faults.unavailable()
    if why:
        print("fault campaign: cannot run: %s" % why, file=sys.stderr)
        return 2
    workdir = a.workdir or tempfile.mkdtemp(prefix="gregor-faults-")
    os.makedirs(workdir, exist_ok=True)
    results_path = os.path.join(workdir, "results.jsonl")
    print("fault campaign: %d runs x %s on %d clusters side by side, binary %s, %.0f records/s, files in %s"
          % (a.runs, ",".join(faults), a.clusters, gregor_bin(), a.rate, workdir), flush=True)

    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True
        print("fault campaign: stopping after this run", flush=True)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    tallies = {f: Tally(f) for f in faults}
    jobs = collections.deque((fault, k) for fault in faults for k in range(a.runs))
    lock = threading.Lock()
    clusters = {"n": 0}
    t0 = time.monotonic()

    def work(slot, results):
        """One cluster's worker: takes the next run from jobs until none is left.
        It runs in a thread that outlives its cluster: a broker dies with the
        thread that started it (PR_SET_PDEATHSIG, bb_broker)."""
        fc, since_start = None, 0
        try:
            while not stop["now"]:
                with lock:
                    if not jobs:
                        return
                    fault, k = jobs.popleft()
                if fc is None or since_start >= a.restart_every:
                    if fc is not None:
                        fc.close()
                    with lock:
                        clusters["n"] += 1
                        name = "cluster%d" % clusters["n"]
                    fc = bb_faults.FaultCluster(os.path.join(workdir, name))
                    since_start = 0
                since_start += 1
                r = bb_faults.run_once(fc, fault, k, os.path.join(workdir, "runs"), rate=a.rate, keep_files=a.keep)
                with lock:
                    if stop["now"]:
                        # A Ctrl-C reaches the gregor processes too: this run is not the cluster's verdict.
                        print("[%s %d/%d] interrupted, not counted: %s" % (fault, k + 1, a.runs, r.line()), flush=True)
                        return
                    tallies[fault].add(r)
                    results.write(json.dumps(r.as_dict(), default=str) + "\n")
                    results.flush()
                    print("[%s %d/%d] %s %s" % (fault, k + 1, a.runs, "ok  " if r.ok else "BAD ", r.line()), flush=True)
                    if not r.ok and r.check:
                        d = r.check.details()
                        if d:
                            print("    " + d.replace("\n", "\n    "), flush=True)
                    if not r.ok and a.stop_on_failure:
                        stop["now"] = True
                if r.error or r.crashed:
                    # Start from a clean cluster after anything odd.
                    since_start = a.restart_every
        finally:
            if fc is not None:
                fc.close()

    with open(results_path, "a") as results:
        workers = [threading.Thread(target=work, args=(slot, results)) for slot in range(max(1, a.clusters))]
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.5)  # short waits: SIGINT/SIGTERM reach on_signal in this thread
    print("fault campaign summary (%.0f min, results in %s):" % ((time.monotonic() - t0) / 60, results_path))
    for t in tallies.values():
        if t.runs:
            print("  " + t.line())
    bad = sum(t.bad for t in tallies.values())
    print("fault campaign: %s" % ("FAILED: %d bad runs" % bad if bad else "no acknowledged record lost"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
