#!/usr/bin/env python3
"""Turns bench/idempotence.sh's raw results (one JSON object per line) into its table.

usage: idempotence_report.py RESULTS.jsonl [--markdown OUT.md]

Prints the set-up, the table and any problems to stdout and, with --markdown, writes the
same as markdown. Each figure is given for the non-idempotent producer and the idempotent
one (the same client, enable.idempotence=false / true, against the same broker), with
idempotent / non-idempotent beside it; the last rows are the transactional producer's
(the same client again, committing every 100 ms), against the non-idempotent one.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import client_name, command_line, emit, fmt_rate, fmt_ratio, load, size_label, verdict  # noqa: E402
from replication_report import Results, build_table, notes  # noqa: E402

BASE, IDEM, TXN = "plain", "idempotent", "transactional"


def transactional_rows(res):
    """The transactional producer's throughput (runs of setup "transactional", the same
    client committing every TXN_MS) against the non-idempotent one of the same run; or,
    for results without such runs, why not."""
    m = res.machine
    target_ratio = float(m.get("txn_target_ratio", 0.8))
    target = f">= {target_ratio:g} x non-idempotent"
    txn_ms = m.get("txn_ms", 100)
    name = f"transactional producer, commit every {txn_ms} ms: msgs/s (median)"
    row = next((r for r in res.rows if r.get("kind") == "transactional"), None)
    t, a = res.throughput(TXN), res.throughput(BASE)
    if not t:
        why = (row or {}).get("why") or "not measured"
        return [(name, fmt_rate(a["msgs"]) if a else "n/a", "n/a", "n/a", target, why)]
    ratio = t["msgs"] / a["msgs"] if a and a["msgs"] and t["msgs"] is not None else None
    commits = [r.get("transactions_committed") for r in res.ok_results("throughput", TXN)]
    commits = [c for c in commits if c is not None]
    return [
        (name, fmt_rate(a["msgs"]) if a else "n/a", fmt_rate(t["msgs"]),
         fmt_ratio(t["msgs"], a["msgs"] if a else None), target,
         verdict(None if ratio is None else ratio >= target_ratio)),
        ("transactional producer: msgs/s of each run", "", " / ".join(fmt_rate(x) for x in t["each"]), "", "", ""),
        ("transactional producer: transactions committed per run", "",
         " / ".join(str(c) for c in commits) or "n/a", "", "", ""),
    ]


def describe(res):
    m = res.machine
    broker = next((s for s in res.setups if s["setup"] == "broker"), {})
    rates = ", ".join(fmt_rate(float(r)) for r in str(m.get("lat_rates", "")).split()) or "none"
    return "\n".join([
        f"- machine: {m.get('nproc', '?')} cores, {m.get('cpu', '?')}, Linux {m.get('kernel', '?')}; load average "
        f"{m.get('loadavg_start', '?')} at start, {res.machine_end.get('loadavg_end', '?')} at end",
        f"- tree: {m.get('git', '?')} ({m.get('build_type') or 'RelWithDebInfo'} build), {m.get('date', '?')}; "
        f"broker binary {m.get('gregor_bin', '?')}" + (f" with {m['gregor_args']}" if m.get("gregor_args") else ""),
        f"- memory: {res.memory}",
        f"- one broker (broker and controller) on 127.0.0.1, topic {broker.get('topic', '?')} of "
        f"{m.get('partitions', '?')} partitions, replication factor 1",
        f"- client: {client_name(res)}, {size_label(int(m.get('record_bytes', 1024)))} records, acks={m.get('acks', '?')}, "
        "enable.idempotence=false and =true taking turns (which goes first alternates too); throughput runs "
        f"{m.get('tp_seconds', '?')} s each, median of {m.get('reps', '?')} per mode, "
        f"linger.ms={m.get('tp_linger_ms', '?')}; latency runs at fixed rates ({rates} msgs/s), "
        f"{m.get('lat_seconds', '?')} s each after {m.get('lat_warmup', '?')} s of warm-up, median of "
        f"{m.get('lat_reps', '?')} per mode, linger.ms={m.get('lat_linger_ms', '?')}; the transactional producer "
        f"(transactional.id set, a commit every {m.get('txn_ms', '?')} ms) takes its turn in the throughput runs only",
        "- CPU: cores are CPU seconds per second of wall time over each run (median of the runs): the "
        "broker's from /proc, the client's from getrusage; the broker's threads waiting for a core is "
        "their run-queue time; the machine's busy cores count every process on it",
    ])


def main():
    args = command_line()
    res = Results(load(args.results))
    if any(r.get("kind") == "idempotence_unsupported" for r in res.rows):
        print("idempotence_report: the broker did not take an idempotent producer "
              "(no InitProducerId); nothing was measured", file=sys.stderr)
    rows = build_table(res, BASE, IDEM, baseline="non-idempotent") + transactional_rows(res)
    header = ("figure", "non-idempotent", "idempotent", "idempotent/non-idempotent", "target", "result")
    emit("Idempotent producer benchmark results", describe(res), rows, header,
         "Notes and problems in this run", notes(res), args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
