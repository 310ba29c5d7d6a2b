#!/usr/bin/env python3
"""Turns bench/replication.sh's raw results (one JSON object per line) into its table.

usage: replication_report.py RESULTS.jsonl [--markdown OUT.md]

Prints the setup, the table and any problems to stdout and, with --markdown, writes the
same as markdown. Each figure is given for the unreplicated setup (one broker, replication
factor 1) and the replicated one (REPLICAS brokers, replication factor REPLICAS), with
replicated / unreplicated beside it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import (RunInfo, client_name, command_line, emit, fmt_cores, fmt_mb,  # noqa: E402
                    fmt_ms, fmt_rate, fmt_ratio, load, median_of, size_label, verdict)


def cores(cpu_s, wall_s):
    return cpu_s / wall_s if cpu_s is not None and wall_s else None


class Results(RunInfo):
    def __init__(self, rows):
        super().__init__(rows)
        self.setups = [r for r in rows if r.get("kind") == "setup"]
        self.ends = {r["setup"]: r for r in rows if r.get("kind") == "setup_end"}
        self.failed = {r["setup"] for r in rows if r.get("kind") == "setup_failed"}
        self.target_ratio = float(self.machine.get("target_ratio", 0.5))

    def runs(self, kind, setup, rate=None):
        return [r for r in self.rows if r.get("kind") == kind and r.get("setup") == setup
                and (rate is None or r.get("rate") == rate)]

    def ok_results(self, kind, setup, rate=None):
        return [r["result"] for r in self.runs(kind, setup, rate) if r.get("result") and r["result"].get("ok")]

    def throughput(self, setup):
        res = self.ok_results("throughput", setup)
        if not res:
            return None
        return {"msgs": median_of([x["msgs_per_s"] for x in res]),
                "mb": median_of([x["mb_per_s"] for x in res]),
                "each": [x["msgs_per_s"] for x in res],
                **self._cpu(res)}

    def latency(self, setup, rate):
        res = self.ok_results("latency", setup, rate)
        if not res:
            return None
        out = {k: median_of([x.get(k) for x in res]) for k in ("p50_ms", "p99_ms", "p999_ms", "achieved_rate")}
        out["max_ms"] = max(x["max_ms"] for x in res if x.get("max_ms") is not None)
        out["p99_each"] = [x.get("p99_ms") for x in res]
        out.update(self._cpu(res))
        return out

    @staticmethod
    def _cpu(res):
        """Cores (CPU seconds per second) the brokers used, in all and each, and the client."""
        per_broker = [median_of([cores(x["broker_cpu_s"][i], x.get("server_wall_s")) for x in res])
                      for i in range(len(res[0].get("broker_cpu_s", [])))]
        total = median_of([cores(sum(c for c in x.get("broker_cpu_s", []) if c is not None),
                                 x.get("server_wall_s")) for x in res])
        client = median_of([cores(x.get("client_cpu_s"), x.get("client_wall_s")) for x in res])
        # Time the brokers' threads were ready to run but had no core, and what the whole
        # machine (this run and anything else on it) kept busy: when these are high, the
        # figures measure a shortage of cores more than the brokers.
        waited = median_of([cores(sum(c for c in x.get("broker_wait_s", []) if c is not None),
                                  x.get("server_wall_s")) if "broker_wait_s" in x else None for x in res])
        machine = median_of([cores(x.get("machine_busy_s"), x.get("server_wall_s")) for x in res])
        # The brokers' CPU per record the client sent (warm-up records included): what a
        # record costs them, which a busy machine changes less than it changes rates.
        sent = lambda x: x.get("delivered") or (x.get("warmup_records", 0) + x.get("measured_records", 0))
        per_record = median_of([sum(c for c in x.get("broker_cpu_s", []) if c is not None) / sent(x) * 1e6
                                if sent(x) else None for x in res])
        return {"broker_cores": total, "broker_cores_each": per_broker, "client_cores": client,
                "broker_waited": waited, "machine_busy": machine, "broker_us_per_record": per_record}

    def rates(self):
        return sorted({r["rate"] for r in self.rows if r.get("kind") == "latency"})


def fmt_broker_cores(point):
    if not point or point["broker_cores"] is None:
        return "n/a"
    each = point["broker_cores_each"]
    if len(each) <= 1:
        return fmt_cores(point["broker_cores"])
    return "%s (%s)" % (fmt_cores(point["broker_cores"]), " + ".join(fmt_cores(c) for c in each))


def build_table(res, base, repl, baseline="unreplicated"):
    """The table's rows: throughput with its target (>= target_ratio x <baseline>), then
    latency at each rate, each with its CPU rows; a column per setup and their ratio."""
    m = res.machine
    rows = []
    point = f"produce {size_label(int(m.get('record_bytes', 1024)))} acks={m.get('acks', 'all')}"
    a, b = res.throughput(base), res.throughput(repl)
    get = lambda p, k: p[k] if p else None
    ratio = get(b, "msgs") / get(a, "msgs") if get(a, "msgs") and get(b, "msgs") is not None else None
    rows.append((f"{point}, linger.ms={m.get('tp_linger_ms', '?')}: msgs/s (median)",
                 fmt_rate(get(a, "msgs")), fmt_rate(get(b, "msgs")), fmt_ratio(get(b, "msgs"), get(a, "msgs")),
                 f">= {res.target_ratio:g} x {baseline}", verdict(None if ratio is None else ratio >= res.target_ratio)))
    rows.append((f"{point}: MB/s", fmt_mb(get(a, "mb")), fmt_mb(get(b, "mb")),
                 fmt_ratio(get(b, "mb"), get(a, "mb")), "", ""))
    each = lambda p: "n/a" if not p else " / ".join(fmt_rate(x) for x in p["each"])
    rows.append((f"{point}: msgs/s of each run", each(a), each(b), "", "", ""))
    rows += cpu_rows(point, a, b)
    for rate in res.rates():
        a, b = res.latency(base, rate), res.latency(repl, rate)
        at = f"latency at {fmt_rate(rate)} msgs/s"
        for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"),
                          ("max_ms", "max (largest of the runs)")):
            rows.append((f"{at}: {name} ms", fmt_ms(get(a, key)), fmt_ms(get(b, key)),
                         fmt_ratio(get(b, key), get(a, key)), "", ""))
        p99s = lambda p: "n/a" if not p else " / ".join(fmt_ms(x) for x in p["p99_each"])
        rows.append((f"{at}: p99 ms of each run", p99s(a), p99s(b), "", "", ""))
        rows += cpu_rows(at, a, b)
    return rows


def cpu_rows(point, a, b):
    """The CPU rows of one point (throughput, or latency at one rate): medians over its runs."""
    get = lambda p, k: p[k] if p else None
    rows = [(f"{point}: CPU cores of the broker(s)", fmt_broker_cores(a), fmt_broker_cores(b),
             fmt_ratio(get(b, "broker_cores"), get(a, "broker_cores")), "", "")]
    for key, name in (("broker_us_per_record", "CPU us of the broker(s) per record"),
                      ("client_cores", "CPU cores of the client"),
                      ("broker_waited", "broker threads waiting for a core (thread-seconds per second)"),
                      ("machine_busy", "cores busy on the machine, everything counted")):
        rows.append((f"{point}: {name}", fmt_cores(get(a, key)), fmt_cores(get(b, key)),
                     fmt_ratio(get(b, key), get(a, key)), "", ""))
    return rows


def notes(res):
    """What a reader must know to trust the figures: rates near saturation, replicas that
    left the ISR, runs that failed, brokers that stopped or logged warnings and errors."""
    out = []
    for s in res.setups:
        name = s["setup"]
        tp = res.throughput(name)
        for rate in res.rates():
            lat = res.latency(name, rate)
            if tp and tp["msgs"] and rate > 0.5 * tp["msgs"]:
                out.append(f"{name}: {fmt_rate(rate)} msgs/s is over half of its measured throughput "
                           f"({fmt_rate(tp['msgs'])}): that latency is not measured with room to spare")
            ncores = int(res.machine.get("nproc", 0) or 0)
            if lat and ncores and lat["machine_busy"] is not None and lat["machine_busy"] >= 0.75 * ncores:
                own = (lat["broker_cores"] or 0) + (lat["client_cores"] or 0)
                out.append(f"{name}: at {fmt_rate(rate)} msgs/s the machine had {fmt_cores(lat['machine_busy'])} of "
                           f"{ncores} cores busy (brokers and client {fmt_cores(own)}, the rest other work and the "
                           f"kernel) and the brokers' threads waited {fmt_cores(lat['broker_waited'])} thread-seconds "
                           "per second for a core: no room left, so that latency includes waiting for a core")
            if lat and lat["achieved_rate"] and lat["achieved_rate"] < 0.98 * rate:
                out.append(f"{name}: the client reached only {fmt_rate(lat['achieved_rate'])} of "
                           f"{fmt_rate(rate)} msgs/s (median)")
        if name in res.failed:
            out.append(f"{name}: the setup did not start (brokers or topic not ready); see the logs")
        for r in res.rows:
            if r.get("setup") != name or r.get("kind") not in ("throughput", "latency"):
                continue
            what = f"{name} {r['kind']}" + (f" at {fmt_rate(r['rate'])} msgs/s" if r["kind"] == "latency" else "")
            x = r.get("result")
            if not x:
                out.append(f"{what}, run {r['rep']}: no result (loadgen exit {r.get('exit', '?')})")
            elif not x.get("ok"):
                why = [f"{x.get('errors')} delivery errors" if x.get("errors") else "",
                       f"stopped: {x['stop_reason']}" if x.get("stop_reason") else "",
                       f"{x['latencies']}/{x['measured_records']} latencies" if "latencies" in x
                       and x["latencies"] != x.get("measured_records") else "",
                       f"{x['delivered']}/{x['produced']} delivered" if "delivered" in x
                       and x["delivered"] != x.get("produced") else ""]
                out.append(f"{what}, run {r['rep']}: incomplete ({', '.join(w for w in why if w) or 'see the logs'})")
        state = next((r for r in res.rows if r.get("kind") == "topic_state" and r.get("setup") == name
                      and r.get("when") == "end"), None)
        if state is not None:
            parts = state.get("state", {}).get("partitions")
            if not parts:
                out.append(f"{name}: the topic could not be described after the runs")
            else:
                short = [p for p in parts if len(p["isr"]) < len(p["replicas"]) or p["leader"] < 0]
                for p in short:
                    out.append(f"{name}: after the runs partition {p['partition']} has leader {p['leader']}, "
                               f"ISR {p['isr']} of replicas {p['replicas']}")
        end = res.ends.get(name, {})
        if end.get("exited_early"):
            out.append(f"{name}: node(s) {end['exited_early']} had exited before the end of the runs")
        if end.get("killed"):
            out.append(f"{name}: node(s) {end['killed']} did not stop within 20 s of SIGTERM and were killed")
        when = {"start": "while starting (before the measurements)", "runs": "during the measurements",
                "stop": "while stopping (SIGTERM to every node at once)"}
        for node, phases in sorted(end.get("logs", {}).items()):
            for phase, info in phases.items():
                lines = info.get("first", []) + (["..."] + info["last"] if info.get("last") else [])
                out.append(f"{name} node {node} logged {info['warnings']} warning(s) and {info['errors']} "
                           f"error(s) {when.get(phase, phase)}: " + " | ".join(lines))
    return out


def describe(res):
    m = res.machine
    setups = ", ".join(
        f"{s['setup']}: {s['brokers']} broker(s), replication factor {s['rf']}, min.insync.replicas="
        f"{s['min_insync']}; load average {s.get('loadavg_start', '?')} at its start, "
        f"{res.ends.get(s['setup'], {}).get('loadavg_end', '?')} at its end" for s in res.setups)
    rates = ", ".join(fmt_rate(float(r)) for r in str(m.get("lat_rates", "")).split()) or "none"
    out = [
        f"- machine: {m.get('nproc', '?')} cores, {m.get('cpu', '?')}, Linux {m.get('kernel', '?')}; load average "
        f"{m.get('loadavg_start', '?')} at start, {res.machine_end.get('loadavg_end', '?')} at end",
        f"- tree: {m.get('git', '?')} ({m.get('build_type') or 'RelWithDebInfo'} build), {m.get('date', '?')}; "
        f"broker binary {m.get('gregor_bin', '?')}" + (f" with {m['gregor_args']}" if m.get("gregor_args") else ""),
        f"- memory: {res.memory}",
        f"- setups, one after the other, every node broker and controller on 127.0.0.1: {setups}",
        f"- client: {client_name(res)}, {size_label(int(m.get('record_bytes', 1024)))} records, acks={m.get('acks', '?')}, "
        f"one topic of {m.get('partitions', '?')} partitions, bootstrap: every broker; throughput runs "
        f"{m.get('tp_seconds', '?')} s each, median of {m.get('reps', '?')}, linger.ms={m.get('tp_linger_ms', '?')}; "
        f"latency runs at fixed rates ({rates} msgs/s), {m.get('lat_seconds', '?')} s each after "
        f"{m.get('lat_warmup', '?')} s of warm-up, median of {m.get('lat_reps', '?')}, "
        f"linger.ms={m.get('lat_linger_ms', '?')}",
        "- CPU: cores are CPU seconds per second of wall time over each run (median of the runs): the "
        "brokers' from /proc (their sum, then each node), the client's from getrusage; the brokers' "
        "threads waiting for a core is their run-queue time (/proc/PID/task/*/schedstat); the machine's "
        "busy cores (all cores less their idle time in /proc/stat) count every process on it, other "
        "people's work included",
    ]
    return "\n".join(out)


def main():
    args = command_line()
    res = Results(load(args.results))
    names = [s["setup"] for s in res.setups]
    if len(names) < 2:
        print("replication_report: the results hold fewer than two setups", file=sys.stderr)
        names += ["rf1", "rf3"][len(names):]
    base, repl = names[0], names[1]
    label = lambda name: next((f"{s['brokers']} broker{'s' if s['brokers'] > 1 else ''}, RF {s['rf']}"
                               for s in res.setups if s["setup"] == name), name)
    header = ("figure", label(base), label(repl), "replicated/unreplicated", "target", "result")
    emit("Replication benchmark results", describe(res), build_table(res, base, repl), header,
         "Notes and problems in this run", notes(res), args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
