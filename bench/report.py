#!/usr/bin/env python3
"""Turns bench/run.sh's raw results (one JSON object per line) into the results table.

usage: report.py RESULTS.jsonl [--markdown OUT.md]

Prints an aligned table to stdout and, with --markdown, writes the same table as markdown
(with the machine description and the method) for the README.
"""

import argparse
import json
import statistics
import sys

TARGET_PRODUCE_VS_MOCK = 0.6   # produce 1 KiB acks=all msgs/s >= 0.6 x mock
TARGET_CONSUME_VS_LOOPBACK = 0.4  # consume MB/s >= 0.4 x loopback
# Latency at fixed rates (issue 18): at 10,000/s p99 <= 1 ms and <= 1.5 x the mock's;
# at 50,000/s p99 <= the mock's; p99.9 <= 2 x the mock's at both rates; end to end at
# 10,000/s p99 <= 1 ms. With fsync before acknowledging, Gregor keeps >= 0.5 x its own
# throughput and beats Redis with appendfsync always.
TARGET_P99_MS_AT_10K = 1.0
TARGET_P99_VS_MOCK_AT_10K = 1.5
TARGET_P999_VS_MOCK = 2.0
TARGET_E2E_P99_MS_AT_10K = 1.0
TARGET_FSYNC_VS_NO_FSYNC = 0.5
PEERS = [("gregor-fsync", "gregor fsync"), ("redis-no", "redis aof no-fsync"),
         ("redis-always", "redis aof always"), ("nats", "nats js file")]

SIZES = [100, 1024]
CONSUME_SIZES = [100, 1024, 65536]
# The consume target is judged where the broker, not the client's per-record
# work, sets the pace: with 1 KiB records even the in-memory mock stays far below it.
CONSUME_TARGET_SIZE = 65536
ACKS = ["1", "all"]


def size_label(size):
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def median_of(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class RunInfo:
    """What every bench script records about its run: the machine at its start and end,
    and the memory set-up (bench/common.sh)."""

    def __init__(self, rows):
        self.rows = rows
        self.machine = next((r for r in rows if r.get("kind") == "machine"), {})
        self.machine_end = next((r for r in rows if r.get("kind") == "machine_end"), {})
        self.memory = next((r["mode"] for r in rows if r.get("kind") == "memory"), "not recorded")


class Results(RunInfo):
    def __init__(self, rows):
        super().__init__(rows)
        nd = [r["result"] for r in rows if r.get("kind") == "netdisk" and r.get("result")]
        self.loopback_samples = [d["loopback_mb_per_s"] for d in nd if "loopback_mb_per_s" in d]
        self.disk_samples = [d["disk_write_mb_per_s"] for d in nd if "disk_write_mb_per_s" in d]
        self.page_cache_new_samples = [x for d in nd for x in d.get("page_cache_new_mb_per_cpu_s", [])]
        self.page_cache_cached_samples = [x for d in nd for x in d.get("page_cache_cached_mb_per_cpu_s", [])]
        self.page_cache_new = median_of(self.page_cache_new_samples)
        self.page_cache_cached = median_of(self.page_cache_cached_samples)
        self.loopback = median_of(self.loopback_samples)
        self.disk = median_of(self.disk_samples)
        self.targets = sorted({r["target"] for r in rows if "target" in r})
        self.problems = []
        for r in rows:
            if r.get("kind") == "gregor_exit":
                self.problems.append(f'gregor exited during the run (status {r.get("status")}); '
                                     "later gregor figures are missing")
        for r in rows:
            if "target" not in r:
                continue
            res = r.get("result")
            acks = f' acks={r["acks"]}' if r.get("acks") in ACKS else ""
            n = res.get("consumers", 1) if isinstance(res, dict) else 1
            who = f" {n} consumers" if n > 1 else ""
            what = f'{r["target"]} {r["kind"]} {size_label(r["size"])}{acks}{who} rep {r["rep"]}'
            if res is None:
                self.problems.append(f"{what}: no result")
            elif not res.get("ok", False):
                self.problems.append(f"{what}: incomplete ({_why(res)})")

    def runs(self, kind, target, size, acks=None, consumers=None):
        out = []
        for r in self.rows:
            if r.get("kind") != kind or r.get("target") != target or r.get("size") != size:
                continue
            if acks is not None and r.get("acks") != acks:
                continue
            res = r.get("result")
            if consumers is not None and res and res.get("consumers", 1) != consumers:
                continue
            if res and res.get("ok"):
                out.append(res)
        return out

    def consumer_counts(self, size):
        """The consumer counts the consume runs of this record size used, lowest first."""
        return sorted({(r.get("result") or {}).get("consumers", 1) for r in self.rows
                       if r.get("kind") == "consume" and r.get("size") == size
                       and isinstance(r.get("result"), dict)})

    def throughput(self, kind, target, size, acks=None, consumers=None):
        runs = self.runs(kind, target, size, acks, consumers)
        return (median_of([x["msgs_per_s"] for x in runs]),
                median_of([x["mb_per_s"] for x in runs]), len(runs))

    def fixed(self, kind, target, rate, acks=None):
        """One point of the fixed-rate runs (kind "fixed" or "e2e"): each figure the median
        over the runs, with the CPU cores each side used."""
        runs = [r["result"] for r in self.rows
                if r.get("kind") == kind and r.get("target") == target and r.get("rate") == rate
                and (acks is None or r.get("acks") == acks) and r.get("result") and r["result"].get("ok")]
        if not runs:
            return None
        keys = ("p50_ms", "p99_ms", "p999_ms", "max_ms", "achieved_rate",
                "e2e_p50_ms", "e2e_p99_ms", "e2e_p999_ms", "e2e_max_ms")
        out = {k: median_of([r.get(k) for r in runs]) for k in keys}
        out["server_cores"] = median_of([_cores(r, "server") for r in runs])
        out["client_cores"] = median_of([_cores(r, "client") for r in runs])
        out["runs"] = len(runs)
        out["p99_runs"] = [r.get("p99_ms") for r in runs]
        return out

    def rates(self):
        return sorted({r["rate"] for r in self.rows if r.get("kind") in ("fixed", "e2e") and "rate" in r})


def _cores(res, side):
    cpu, wall = res.get(f"{side}_cpu_s"), res.get(f"{side}_wall_s")
    return cpu / wall if cpu is not None and wall else None


def _why(res):
    bits = []
    if res.get("timed_out"):
        bits.append("timed out")
    if res.get("errors"):
        bits.append(f'{res["errors"]} errors')
    if "latencies" in res and "measured_records" in res and res["latencies"] != res["measured_records"]:
        bits.append(f'{res["latencies"]}/{res["measured_records"]} latencies')
    if "records" in res and "expected_records" in res and res["expected_records"] > 0 \
            and res["records"] < res["expected_records"]:
        bits.append(f'{res["records"]}/{res["expected_records"]} records')
    return ", ".join(bits) or "see raw results"


def fmt_rate(v):
    return "n/a" if v is None else f"{v:,.0f}"


def fmt_mb(v):
    return "n/a" if v is None else f"{v:,.1f}"


def fmt_ms(v):
    return "n/a" if v is None else f"{v:.3f}"


def fmt_cores(v):
    return "n/a" if v is None else f"{v:.2f}"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def verdict(ok):
    if ok is None:
        return "n/a"
    return "PASS" if ok else "MISS"


def judged(ok, why):
    """PASS/MISS with the measured reason, n/a when a figure is missing."""
    return "n/a" if ok is None else f"{verdict(ok)} ({why})"


def fixed_targets(rate, g, m):
    """(target, verdict) pairs for Gregor's produce latency at one rate against the mock."""
    out = []
    gv = lambda k: g.get(k) if g else None
    mv = lambda k: m.get(k) if m else None
    if rate == 10000:
        p, mp = gv("p99_ms"), mv("p99_ms")
        ok = None if p is None or mp is None else (p <= TARGET_P99_MS_AT_10K and p <= TARGET_P99_VS_MOCK_AT_10K * mp)
        out.append(("p99", f"<= {TARGET_P99_MS_AT_10K:g} ms and <= {TARGET_P99_VS_MOCK_AT_10K:g} x mock",
                    judged(ok, f"{fmt_ms(p)} ms, {fmt_ratio(p, mp)} x mock")))
    if rate == 50000:
        p, mp = gv("p99_ms"), mv("p99_ms")
        ok = None if p is None or mp is None else p <= mp
        out.append(("p99", "<= mock", judged(ok, f"{fmt_ms(p)} vs {fmt_ms(mp)} ms")))
    if rate in (10000, 50000):
        p, mp = gv("p999_ms"), mv("p999_ms")
        ok = None if p is None or mp is None else p <= TARGET_P999_VS_MOCK * mp
        out.append(("p99.9", f"<= {TARGET_P999_VS_MOCK:g} x mock", judged(ok, f"{fmt_ratio(p, mp)} x mock")))
    return dict((k, (t, v)) for k, t, v in out)


FIXED_HEADER = ("figure", "gregor", "mock", "gregor/mock", "target", "result")


def build_fixed_table(res):
    """Produce latency at fixed rates, Gregor against the mock in the same run."""
    rows = []
    size = res.machine.get("lat_bytes", 1024)
    for acks in ACKS[::-1]:
        for rate in res.rates():
            g, m = res.fixed("fixed", "gregor", rate, acks), res.fixed("fixed", "mock", rate, acks)
            if g is None and m is None:
                continue
            point = f"{size_label(size)} acks={acks} at {rate:,}/s"
            judge = fixed_targets(rate, g, m)
            for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max")):
                gv, mv = (g or {}).get(key), (m or {}).get(key)
                t, v = judge.get(name, ("", ""))
                rows.append((f"{point}: {name} ms", fmt_ms(gv), fmt_ms(mv), fmt_ratio(gv, mv), t, v))
            each = lambda pt: "n/a" if not pt else " / ".join(fmt_ms(x) for x in pt["p99_runs"])
            rows.append((f"{point}: p99 ms of each run", each(g), each(m), "", "", ""))
            for side in ("server", "client"):
                gv, mv = (g or {}).get(f"{side}_cores"), (m or {}).get(f"{side}_cores")
                rows.append((f"{point}: CPU cores, {side}", fmt_cores(gv), fmt_cores(mv), fmt_ratio(gv, mv), "", ""))
    return rows


PEER_HEADER = ("figure", "gregor") + tuple(name for _, name in PEERS) + (
    "gregor/redis no-fsync", "gregor/nats", "gregor fsync/redis always", "target", "result")


def build_peer_table(res):
    """Gregor and the peers at equal durability: produce latency (acks=all), end-to-end
    latency and maximum throughput, with Gregor's ratio to each."""
    rows = []
    size = res.machine.get("lat_bytes", 1024)
    names = ["gregor"] + [t for t, _ in PEERS]

    def line(label, values, fmt, target="", result=""):
        v = dict(zip(names, values))
        rows.append((label,) + tuple(fmt(x) for x in values) + (
            fmt_ratio(v["gregor"], v["redis-no"]), fmt_ratio(v["gregor"], v["nats"]),
            fmt_ratio(v["gregor-fsync"], v["redis-always"]), target, result))

    for kind, what in (("fixed", "produce"), ("e2e", "end to end")):
        prefix = "e2e_" if kind == "e2e" else ""
        for rate in res.rates():
            pts = [res.fixed(kind, t, rate, "all") for t in names]
            if all(p is None for p in pts):
                continue
            for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max")):
                vals = [p.get(prefix + key) if p else None for p in pts]
                target = result = ""
                if kind == "e2e" and rate == 10000 and key == "p99_ms":
                    target = f"gregor <= {TARGET_E2E_P99_MS_AT_10K:g} ms"
                    gv = vals[0]
                    result = judged(None if gv is None else gv <= TARGET_E2E_P99_MS_AT_10K,
                                    f"{fmt_ms(gv)} ms; redis {fmt_ms(vals[2])} ms")
                line(f"{what} {size_label(size)} at {rate:,}/s: {name} ms", vals, fmt_ms, target, result)
            if kind == "fixed":
                line(f"{what} at {rate:,}/s: CPU cores, server", [p.get("server_cores") if p else None for p in pts], fmt_cores)
                line(f"{what} at {rate:,}/s: CPU cores, client", [p.get("client_cores") if p else None for p in pts], fmt_cores)
    tp = [res.throughput("peer_tp", t, size)[0] for t in names]
    if any(v is not None for v in tp):
        v = dict(zip(names, tp))
        ok = None
        if v["gregor-fsync"] is not None and v["gregor"] and v["redis-always"] is not None:
            ok = (v["gregor-fsync"] >= TARGET_FSYNC_VS_NO_FSYNC * v["gregor"]
                  and v["gregor-fsync"] > v["redis-always"])
        line(f"maximum throughput {size_label(size)}, msgs/s", tp, fmt_rate,
             f"fsync >= {TARGET_FSYNC_VS_NO_FSYNC:g} x gregor and > redis always",
             judged(ok, f"{fmt_ratio(v['gregor-fsync'], v['gregor'])} x gregor, "
                        f"{fmt_ratio(v['gregor-fsync'], v['redis-always'])} x redis always"))
    return rows


def build_table(res):
    """Rows of (figure, gregor, mock, g/mock, g/loopback, g/disk, target, result)."""
    rows = []
    have_gregor = "gregor" in res.targets

    def both(fn, missing=None):
        g = fn("gregor") if have_gregor else missing
        m = fn("mock") if "mock" in res.targets else missing
        return g, m

    for size in SIZES:
        for acks in ACKS:
            point = f"produce {size_label(size)} acks={acks}"
            (g_rate, g_mb, _), (m_rate, m_mb, _) = both(lambda t: res.throughput("produce", t, size, acks),
                                                   (None, None, 0))
            target, ok = "", None
            if size == 1024 and acks == "all":
                target = f">= {TARGET_PRODUCE_VS_MOCK} x mock"
                if g_rate is not None and m_rate:
                    ok = g_rate / m_rate >= TARGET_PRODUCE_VS_MOCK
            rows.append((f"{point}: msgs/s", fmt_rate(g_rate), fmt_rate(m_rate),
                         fmt_ratio(g_rate, m_rate), "", "", target, verdict(ok) if target else ""))
            rows.append((f"{point}: MB/s", fmt_mb(g_mb), fmt_mb(m_mb), fmt_ratio(g_mb, m_mb),
                         fmt_ratio(g_mb, res.loopback), fmt_ratio(g_mb, res.disk), "", ""))
            (g_max, _, _), (m_max, _, _) = both(lambda t: res.throughput("maxrate", t, size, acks),
                                                (None, None, 0))
            rows.append((f"{point}: msgs/s at linger.ms={res.machine.get('lat_linger_ms', '?')}",
                         fmt_rate(g_max), fmt_rate(m_max), fmt_ratio(g_max, m_max), "", "", "", ""))
    for size in CONSUME_SIZES:
        if not any(r.get("kind") == "consume" and r.get("size") == size for r in res.rows):
            continue  # not measured in this run (CONSUME_SIZES)
        counts = res.consumer_counts(size) or [1]
        for n in counts:
            point = f"consume {size_label(size)}, {n} consumer{'s' if n > 1 else ''}"
            (g_rate, g_mb, _), (m_rate, m_mb, _) = both(
                lambda t: res.throughput("consume", t, size, consumers=n), (None, None, 0))
            # Judged with the most consumers measured (one per core by default): one
            # librdkafka consumer reads its connection on one thread, which paces it.
            target, ok = "", None
            if size == CONSUME_TARGET_SIZE and n == counts[-1]:
                target = f">= {TARGET_CONSUME_VS_LOOPBACK} x loopback"
                if g_mb is not None and res.loopback:
                    ok = g_mb / res.loopback >= TARGET_CONSUME_VS_LOOPBACK
            rows.append((f"{point}: msgs/s", fmt_rate(g_rate), fmt_rate(m_rate),
                         fmt_ratio(g_rate, m_rate), "", "", "", ""))
            rows.append((f"{point}: MB/s", fmt_mb(g_mb), fmt_mb(m_mb), fmt_ratio(g_mb, m_mb),
                         fmt_ratio(g_mb, res.loopback), fmt_ratio(g_mb, res.disk), target,
                         verdict(ok) if target else ""))
    return rows


HEADER = ("figure", "gregor", "mock", "gregor/mock", "gregor/loopback", "gregor/disk",
          "target", "result")


def text_table(rows, header=HEADER):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = []
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    lines.append(fmt.format(*header))
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(fmt.format(*r))
    return "\n".join(lines)


def markdown_table(rows, header=HEADER):
    """The first column and the last two (target, result) left-aligned, figures right."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 3) + ["---", "---"]) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def describe(res):
    m = res.machine
    samples = lambda xs: ", ".join(f"{x:,.0f}" for x in xs)
    out = [
        f"- machine: {m.get('nproc', '?')} cores, {m.get('cpu', '?')}, Linux {m.get('kernel', '?')}; "
        f"load average {m.get('loadavg_start', '?')} at start, {res.machine_end.get('loadavg_end', '?')} at end",
        f"- tree: {m.get('git', '?')} ({m.get('build_type', '?')} build), {m.get('date', '?')}",
        f"- memory: {res.memory}",
        f"- loopback TCP: {fmt_mb(res.loopback)} MB/s (median of {samples(res.loopback_samples)})",
        f"- sequential disk write + fdatasync: {fmt_mb(res.disk)} MB/s (median of {samples(res.disk_samples)})",
        f"- appending to the page cache, 16 KiB writes: {fmt_mb(res.page_cache_new)} MB per CPU second into "
        f"new pages (median of {samples(res.page_cache_new_samples)}), {fmt_mb(res.page_cache_cached)} "
        f"into pages already cached (median of {samples(res.page_cache_cached_samples)})",
        f"- client: {client_name(res)}; produce topics with {m.get('partitions', '?')} partitions; "
        f"throughput runs {m.get('tp_seconds', '?')} s each, median of {m.get('reps', '?')}, "
        f"linger.ms={m.get('tp_linger_ms', '?')}; latency runs {m.get('lat_seconds', '?')} s each, "
        f"median of {m.get('lat_reps', 1)}, with "
        f"linger.ms={m.get('lat_linger_ms', '?')}, at fixed rates of {m.get('lat_rates', '?')} records/s, "
        f"the targets taking turns",
    ]
    if m.get("gregor_bin"):
        out.append(f"- broker binary: {m['gregor_bin']}")
    if "gregor" not in res.targets:
        out.append("- gregor: not measured in this run (no binary, or it did not start)")
    return "\n".join(out)


def client_name(res):
    for r in res.rows:
        c = (r.get("result") or {}).get("client") if isinstance(r.get("result"), dict) else None
        if c:
            return c
    return "librdkafka"


def command_line():
    """RESULTS.jsonl [--markdown OUT.md], as every report script takes them."""
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--markdown")
    return ap.parse_args()


def main():
    args = command_line()
    res = Results(load(args.results))
    peers = next((r for r in res.rows if r.get("kind") == "peers"), {})
    extra = [("Latency at fixed rates (median of the runs)", build_fixed_table(res), FIXED_HEADER),
             ("Peers at equal durability, in the same run (redis {}, nats {})".format(
                 peers.get("redis") or "n/a", peers.get("nats") or "n/a"), build_peer_table(res), PEER_HEADER)]
    emit("Benchmark results", describe(res), build_table(res), HEADER, "Problems in this run",
         res.problems, args.markdown, [t for t in extra if t[1]])
    return 0


def emit(title, description, rows, header, problems_title, problems, markdown_path=None, extra=()):
    """Prints the description, the table (and the extra (title, rows, header) tables) and
    the problems; writes them as markdown too when markdown_path is given."""
    print()
    print(description)
    print()
    print(text_table(rows, header))
    for sub, sub_rows, sub_header in extra:
        print()
        print(sub + ":")
        print(text_table(sub_rows, sub_header))
    if problems:
        print()
        print(problems_title.lower() + ":")
        for p in problems:
            print("  - " + p)
    print()
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(f"## {title}\n\n")
            f.write(description + "\n\n")
            f.write(markdown_table(rows, header) + "\n")
            for sub, sub_rows, sub_header in extra:
                f.write(f"\n### {sub}\n\n")
                f.write(markdown_table(sub_rows, sub_header) + "\n")
            if problems:
                f.write(f"\n{problems_title}:\n\n")
                for p in problems:
                    f.write(f"- {p}\n")


if __name__ == "__main__":
    sys.exit(main())
