"""Benchmark the nightly store at scale (issue 18): big nights, a long history, compaction, size.

    python bench/bench_store.py                 # or: make bench-store
    python bench/bench_store.py --sizes 1000000,2000000 --nights 30 --night-rows 20000
    python bench/bench_store.py --sizes '' --small-nights 0    # only the 100-night history

Each command runs in its own process (wall time, CPU time and peak RSS, as bench.py measures):

1. Big nights. For each size N: one CSV file of N synthetic requests (bench.py's generator),
   `llm-cost price` of it to Parquet, and `llm-cost ingest` of it into a new store. Ingest / price
   is the issue's ratio; peak RSS should stay flat as N doubles.
2. History. NIGHTS files of NIGHT_ROWS requests (consecutive rows of one data set, so each night
   is about a day and nights repeat a few requests of the night before), ingested one run per
   night, as cron does. The last night's ingest against the first's (flat in the store's size),
   `report --store` of one month and of all history after 30 nights and after all of them.
3. `store compact` after the history, and the all-history report before and after it.
4. Many small parts: the same SMALL_ROWS requests ingested as SMALL_NIGHTS small nights and as 30
   nights (each store built in this process, not measured), then the reports of one month and of
   all history from each, and from the small-night store after `store compact`: what the number
   of parts costs a report, with the rows held equal.
5. Size: the store of the first big night against its input CSV gzip-compressed (level 6).

CPU time is the number to compare on a shared machine (other work inflates wall time only).
Writes bench/results-store-scale.json and prints the table.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402  (bench.py's generator and measuring harness)

BY = "month,workspace,model"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000000,2000000,4000000", help="rows of each big night, comma-separated")
    p.add_argument("--nights", type=int, default=100)
    p.add_argument("--night-rows", type=int, default=200_000)
    p.add_argument("--history-rows", type=int, default=0,
                   help="rows of the data set the nights are cut from (default NIGHTS x NIGHT_ROWS): the first "
                        "NIGHTS nights of a longer set keep a night's span of days (30 of 100 nights)")
    p.add_argument("--small-nights", type=int, default=365, help="nights of the many-small-parts store (0: skip)")
    p.add_argument("--small-rows", type=int, default=730_000, help="requests of the many-small-parts store, all nights")
    p.add_argument("--dense-nights", type=int, default=10, help="nights of a day of DENSE_ROWS requests each (0: skip)")
    p.add_argument("--dense-rows", type=int, default=1_000_000, help="requests a night (a day) of the dense store")
    p.add_argument("--long-nights", type=int, default=0,
                   help="7. nights of a long history: one generated day of LONG_ROWS requests, shifted a day a night")
    p.add_argument("--long-rows", type=int, default=1_000_000, help="requests a night of the long history")
    p.add_argument("--long-dir", default="", help="the long history's store (kept after the run, so a history "
                   "can be built over several runs); default: a new one in the work directory")
    p.add_argument("--long-from", type=int, default=1, help="first night (1-based) this run ingests: the store "
                   "holds the nights before")
    p.add_argument("--long-control", type=int, default=0, help="for the last N nights of the run, also ingest "
                   "the night into a new store (a first night, measured at the same load)")
    p.add_argument("--long-marks", default="30,100", help="after these nights: reports with and without rollups")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--max-rss-mib", type=float, default=8192)
    p.add_argument("--out", default="results-store-scale.json", help="file name under bench/")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(dir=B.BENCH_DIR / "data", prefix="store-scale-"))
    exe, env = B.llm_cost(), dict(os.environ)
    q = ["--quarantine", str(work / "quarantine.jsonl")]
    ms: list[tuple[str, B.Measurement]] = []

    def measure(key: str, what: str, cmd: list[str], rows: int | None = None) -> B.Measurement:
        m = B.Measurement("csv", what, [*exe, *cmd], rows=rows)
        B.log(f"{what} ...")
        B.run_measured(m, str(work), args.timeout, args.max_rss_mib, env)
        B.log(f"  {m.wall_s[-1]:.2f} s wall, {m.cpu_s[-1]:.2f} s CPU, {m.rss or 0:.0f} MiB"
              + (f"  FAILED {m.failure}" if m.failure else ""))
        ms.append((key, m))
        return m

    measure.drop = ms.pop
    measure.all = lambda: list(ms)

    from analyzer import store as st

    size_line = ""
    for n in sizes:  # 1. big nights
        data = B.dataset_dir(B.BENCH_DIR / "data", n, args.seed) / "one-file"
        B.generate(data, n, args.seed, ["csv"], n)
        night = next((data / "csv").glob("*.csv"))
        measure(f"price-{n}", f"price, a night of {n:,} rows -> Parquet",
                ["price", str(night), "-o", str(work / "priced.parquet"), *q], n)
        store = work / f"store-{n}"
        measure(f"ingest-{n}", f"ingest, a night of {n:,} rows, new store", ["ingest", str(night), "--store",
                                                                               str(store), "-q"], n)
        if n == sizes[0]:
            with open(night, "rb") as f:
                gz = len(gzip.compress(f.read(), compresslevel=6))
            stored = st.status(str(store))["bytes"]
            size_line = (f"store size: {stored / 2**20:,.1f} MiB for a night of {n:,} requests; its input CSV "
                         f"{night.stat().st_size / 2**20:,.1f} MiB, gzip -6 {gz / 2**20:,.1f} MiB -> store = "
                         f"{stored / gz:.0%} of the gzip input")
        shutil.rmtree(store)
        (work / "priced.parquet").unlink(missing_ok=True)

    walls, cpus, rss = [], [], []
    nights: list[Path] = []
    if args.nights:
        walls, cpus, rss, nights = history(args, work, measure, st)
    if args.small_nights:
        small_parts(args, work, measure, st)
    dense_lines = dense(args, work, measure, st) if args.dense_nights else []
    long_lines = long_history(args, work, measure, st) if args.long_nights else []
    lines = [f"{'run':<72} {'wall s':>8} {'CPU s':>7} {'rows/s (CPU)':>13} {'peak RSS MiB':>13}"]
    for _, m in ms:
        rate = f"{m.rows / m.cpu_s[-1]:,.0f}" if m.rows and m.cpu_s[-1] else ""
        lines.append(f"{m.what:<72} {m.wall or float('nan'):>8.2f} {m.cpu_s[-1]:>7.2f} {rate:>13} {m.rss or 0:>13.0f}")
    by = dict(ms)
    for n in sizes:
        p, i = by[f"price-{n}"], by[f"ingest-{n}"]
        lines.append(f"night of {n:,}: ingest / price = {i.cpu_s[-1] / p.cpu_s[-1]:.2f}x CPU, "
                     f"{(i.wall or 0) / (p.wall or 1):.2f}x wall (target <= 1.5x); peak RSS {i.rss or 0:.0f} MiB")
    if nights:
        ten = max(1, len(nights) // 10)
        half = len(cpus) // 2
        slope = _slope(cpus[half:])
        lines.append(f"{len(nights)} nights of {args.night_rows:,}: ingest CPU first {ten} nights "
                     f"{sum(cpus[:ten]) / ten:.2f} s, last {ten} nights {sum(cpus[-ten:]) / ten:.2f} s "
                     f"({sum(cpus[-ten:]) / sum(cpus[:ten]):.2f}x; target 1 +- 0.2); wall {sum(walls[:ten]) / ten:.2f} / "
                     f"{sum(walls[-ten:]) / ten:.2f} s; peak RSS first {max(rss[:ten]):.0f} MiB, max {max(rss):.0f} MiB; "
                     f"CPU trend over the last {len(cpus) - half} nights {slope * 100:+.3f} s per 100 nights")
        lines.append(HISTORY_LINE[0])
    if args.small_nights:
        for what in ("month", "all"):
            few, many, packed = (by[f"{what}-{k}"] for k in ("30-parts", f"{args.small_nights}-parts", "compacted-parts"))
            lines.append(f"{args.small_rows:,} requests, report of {'one month' if what == 'month' else 'all history'}: "
                         f"{args.small_nights} nights {many.cpu_s[-1]:.2f} CPU s, compacted {packed.cpu_s[-1]:.2f}, "
                         f"as 30 nights {few.cpu_s[-1]:.2f} (compacted / 30 nights = "
                         f"{packed.cpu_s[-1] / few.cpu_s[-1]:.2f}x; target <= 1)")
    lines += dense_lines + long_lines
    if size_line:
        lines.append(size_line)
    other = sum(sum(m.other_cpu_s) for _, m in ms)
    lines.append(f"other processes used {other:,.0f} CPU s meanwhile ({os.cpu_count()} cores)")
    text = "\n".join(lines)
    print(text)
    out = B.BENCH_DIR / args.out
    out.write_text(json.dumps({
        "sizes": sizes, "nights": args.nights, "night_rows": args.night_rows, "machine": platform.platform(),
        "cpus": os.cpu_count(), "code": B.code_version(), "table": text,
        "runs": [{"what": m.what, "wall_s": m.wall_s, "cpu_s": m.cpu_s, "other_cpu_s": m.other_cpu_s,
                  "peak_rss_mib": m.peak_rss_mib, "rows": m.rows, "failure": m.failure} for _, m in ms],
        "nightly": {"wall_s": walls, "cpu_s": cpus, "peak_rss_mib": rss},
        "long": LONG,
    }, indent=1) + "\n")
    shutil.rmtree(work)
    return 0


HISTORY_LINE = [""]
LONG: dict = {}


def long_history(args, work: Path, measure, st) -> list[str]:
    """7.: a history of LONG_NIGHTS nights of LONG_ROWS requests, one ingest run each. Generating
    100 distinct nights of 1M requests costs more than ingesting them, so one day of bench.py's data
    (its first day, at LONG_ROWS requests a day) is generated once and each night is that day shifted
    by k days, its request ids suffixed with the night (so no night repeats another's requests; the
    day's own duplicates stay, deduped within the night). After each night of LONG_MARKS: reports
    of one month (August, full after 31 nights) and of all history, from the rollups and with the
    rollups moved aside (the files' day summaries); the rollups' and day summaries' cells, and the
    CPU of writing every month's rollup again from its files' day summaries (in this process)."""
    import polars as pl

    rows = args.long_rows
    root = Path(args.long_dir).resolve() if args.long_dir else work / "long"  # (commands run in `work`)
    marks = {int(x) for x in args.long_marks.split(",") if x}
    day = B.synthetic_chunk(0, rows, DAYS * rows, args.seed)
    nightly = LONG.setdefault("nightly", {})
    lines: list[str] = []
    if args.long_from - 1 in marks:  # (a store built by an earlier run, up to a mark)
        _long_mark(args, work, measure, st, root, args.long_from - 1, lines)
    for k in range(args.long_from - 1, args.long_nights):
        # (a file of its own each night: the store knows a file by its path, and a path whose
        # content changed replaces its earlier rows)
        night = work / f"night-{k + 1:03d}.csv"
        day.with_columns(
            (pl.col("timestamp") + pl.duration(days=k)).dt.strftime(B.TS_TEXT),
            pl.col("request_id") + f"-n{k + 1}").write_csv(night)
        m = measure(f"long-night-{k + 1}", f"ingest, long history night {k + 1}",
                    ["ingest", str(night), "--store", str(root), "-q"], rows)
        measure.drop()
        nightly[k + 1] = {"cpu_s": m.cpu_s[-1], "wall_s": m.wall_s[-1], "peak_rss_mib": m.rss,
                          "other_cpu_s": m.other_cpu_s[-1] if m.other_cpu_s else None, "failure": m.failure}
        if k >= args.long_nights - args.long_control:
            # The machine's load moves CPU seconds by more than the history does (12 -> 19 CPU s for
            # the same night over an hour here): the same night into an empty store, right after,
            # is the first night to compare with at the same load.
            fresh = work / "fresh"
            c = measure(f"long-fresh-{k + 1}", f"ingest, night {k + 1} into a new store", ["ingest", str(night),
                                                                                          "--store", str(fresh), "-q"], rows)
            measure.drop()
            shutil.rmtree(fresh)
            nightly[k + 1].update(fresh_cpu_s=c.cpu_s[-1], fresh_wall_s=c.wall_s[-1], fresh_peak_rss_mib=c.rss)
        night.unlink()
        B.log(f"  night {k + 1}: {m.cpu_s[-1]:.2f} CPU s, {m.rss or 0:.0f} MiB")
        if k + 1 in marks:
            _long_mark(args, work, measure, st, root, k + 1, lines)
    return _long_tail(lines)


def _long_mark(args, work: Path, measure, st, root: Path, n: int, lines: list[str]) -> None:
    """Reports after `n` nights, with rollups and from day cells; cells; a rebuild of the rollups."""
    import time

    import polars as pl

    rows = args.long_rows
    month = ["--since", "2026-08-01", "--until", "2026-08-31"]  # (--until: that whole day: August whole)
    for key, what, extra in (("month", "one month (August)", month), ("all", "all history", [])):
        measure(f"long-{key}-{n}", f"report --store --by {BY}, {what}, after {n} nights of {rows:,}",
                ["report", "--store", str(root), "--by", BY, *extra, "-o", str(work / "l.json")])
    rollups, aside = root / st.ROLLUP, work / "rollups-aside"
    rollups.rename(aside)  # the same reports from the files' day summaries
    for key, what, extra in (("month", "one month (August)", month), ("all", "all history", [])):
        measure(f"long-{key}-{n}-days", f"report --store --by {BY}, {what}, after {n} nights, DAY CELLS "
                "(no rollup)", ["report", "--store", str(root), "--by", BY, *extra, "-o", str(work / "l.json")])
    t0 = time.process_time()
    written = st._write_rollups(str(root), st._table(str(root)))  # every month from its day summaries
    rebuild = time.process_time() - t0
    shutil.rmtree(aside)
    cells = {g: pl.scan_parquet(str(root / st.SUMMARY / g / "*" / "*.parquet")).select(pl.len()).collect().item()
             for g in (*st.GRAINS, "month")}
    status = st.status(str(root))
    summary_bytes = {g: sum(p.stat().st_size for p in (root / st.SUMMARY / g).rglob("*.parquet"))
                     for g in (*st.GRAINS, "month")}
    LONG[f"after-{n}"] = {"cells": cells, "summary_bytes": summary_bytes, "rows_stored": status["rows_stored"],
                          "data_files": status["data_files"], "bytes": status["bytes"],
                          "rollups_rebuilt": written, "rollup_rebuild_cpu_s": rebuild}
    by = dict(measure.all())
    lines.append(f"long history after {n} nights of {rows:,} ({status['rows_stored']:,} rows, "
                 f"{status['data_files']} data files, {status['bytes'] / 2**30:,.2f} GiB): cells day {cells['day']:,}, "
                 f"hour {cells['hour']:,}, month rollups {cells['month']:,}; rebuilding {written} rollups "
                 f"{rebuild:.2f} CPU s")
    for key in ("month", "all"):
        a, b = by[f"long-{key}-{n}"], by[f"long-{key}-{n}-days"]
        lines.append(f"  report {key}: {a.cpu_s[-1]:.2f} CPU s {a.rss or 0:.0f} MiB with rollups, "
                     f"{b.cpu_s[-1]:.2f} CPU s {b.rss or 0:.0f} MiB from day cells")


def _long_tail(lines: list[str]) -> list[str]:
    nightly = LONG.get("nightly", {})
    done = sorted(nightly)
    pairs = [(nightly[i]["cpu_s"], nightly[i]["fresh_cpu_s"]) for i in done if "fresh_cpu_s" in nightly[i]]
    if pairs:
        lines.append(f"nights {done[-len(pairs)]}-{done[-1]} against the same night into a new store: "
                     f"{sum(a for a, _ in pairs) / len(pairs):.2f} / {sum(b for _, b in pairs) / len(pairs):.2f} CPU s "
                     f"= {sum(a for a, _ in pairs) / sum(b for _, b in pairs):.2f}x (target 1 +- 0.2)")
    if done:
        ten = [nightly[i]["cpu_s"] for i in done[:10]], [nightly[i]["cpu_s"] for i in done[-10:]]
        lines.append(f"long history nights {done[0]}-{done[-1]}: ingest CPU first 10 {sum(ten[0]) / len(ten[0]):.2f} s, "
                     f"last 10 {sum(ten[1]) / len(ten[1]):.2f} s; peak RSS max "
                     f"{max(v['peak_rss_mib'] or 0 for v in nightly.values()):.0f} MiB")
    return lines


DAYS = 116  # bench.py's data span (2026-08-01 to 2026-11-24): a dataset of DAYS x N rows has N a day


def dense(args, work: Path, measure, st) -> list[str]:
    """6.: nights of a whole day of DENSE_ROWS requests (the rate of 30x DENSE_ROWS a month), one
    ingest each; reports of one month (the nights' month) after half and all of the nights, from
    the summaries and, with the summary directory moved aside, from the rows; the summaries' size
    and the CPU they add to a night."""
    import time

    import polars as pl

    rows = args.dense_rows
    data = B.BENCH_DIR / "data" / f"dense-{rows}-seed{args.seed}-g{B.GENERATOR_VERSION}"
    data.mkdir(parents=True, exist_ok=True)
    root = work / "dense"
    cpus: list[float] = []
    month = ["--since", "2026-08-01", "--until", "2026-08-31"]  # (--until: that whole day)
    marks = sorted({max(1, args.dense_nights // 2), args.dense_nights})
    for k in range(args.dense_nights):
        night = data / f"night-{k:03d}.csv"
        if not night.exists():  # a chunk of a DAYS x rows data set: one day; written whole, then renamed
            B.synthetic_chunk(k * rows, (k + 1) * rows, DAYS * rows, args.seed).with_columns(
                pl.col("timestamp").dt.strftime(B.TS_TEXT)).write_csv(data / "tmp.csv")
            (data / "tmp.csv").rename(night)
        if k == 0:
            measure("dense-price", f"price, a day of {rows:,} rows -> Parquet",
                    ["price", str(night), "-o", str(work / "priced.parquet"), "-q"], rows)
            (work / "priced.parquet").unlink(missing_ok=True)
        m = measure(f"dense-night-{k + 1}", f"ingest, dense night {k + 1}", ["ingest", str(night), "--store", str(root),
                                                                             "-q"], rows)
        if k:
            measure.drop()
        cpus.append(m.cpu_s[-1])
        if k + 1 in marks:
            for key, what, extra in (("month", "one month", month), ("all", "all history", [])):
                measure(f"dense-{key}-{k + 1}", f"report --store --by {BY}, {what}, {k + 1} days of {rows:,}",
                        ["report", "--store", str(root), "--by", BY, *extra, "-o", str(work / "d.json")])
    summary = root / st.SUMMARY
    aside = work / "summary-aside"
    summary.rename(aside)  # the same reports from the rows (as a store without summaries reads)
    for key, what, extra in (("month", "one month", month), ("all", "all history", [])):
        measure(f"dense-{key}-rows", f"report --store --by {BY}, {what}, {args.dense_nights} days, ROWS (no summary)",
                ["report", "--store", str(root), "--by", BY, *extra, "-o", str(work / "d.json")])
    aside.rename(summary)
    status = st.status(str(root))
    parts = [os.path.relpath(p, root) for p in root.glob("_llm_month=*/*.parquet")]
    t0 = time.process_time()
    for rel in parts:  # the summaries' CPU, alone (written again: the same bytes)
        st._write_summaries(str(root), rel)
    per_night = (time.process_time() - t0) / args.dense_nights
    size = {g: sum(p.stat().st_size for p in (summary / g).rglob("*.parquet")) for g in st.GRAINS}
    cells = {g: pl.scan_parquet(str(summary / g / "*" / "*.parquet")).select(pl.len()).collect().item()
             for g in st.GRAINS}
    by = {k: m for k, m in measure.all()}
    price, first = by["dense-price"], by["dense-night-1"]
    lines = [f"dense store: {args.dense_nights} days of {rows:,} requests ({status['rows_stored']:,} rows, "
             f"{status['bytes'] / 2**20:,.1f} MiB); summaries: "
             + ", ".join(f"{g} {cells[g]:,} cells {size[g] / 2**20:,.1f} MiB" for g in st.GRAINS)
             + f" ({sum(size.values()) / status['bytes']:.0%} of the rows)",
             f"dense night: ingest / price = {first.cpu_s[-1] / price.cpu_s[-1]:.2f}x CPU (target <= 1.5x); "
             f"summaries {per_night:.2f} CPU s a night of it; ingest CPU first {cpus[0]:.2f} s, last {cpus[-1]:.2f} s"]
    if len(marks) == 2:
        a, b = marks
        for key in ("month", "all"):
            ta, tb = by[f"dense-{key}-{a}"].cpu_s[-1], by[f"dense-{key}-{b}"].cpu_s[-1]
            slope = max(0.0, (tb - ta) / (b - a))  # (a negative slope is the machine's noise)
            lines.append(f"{key} report from summaries: {ta:.2f} CPU s after {a} days, {tb:.2f} after {b} "
                         f"({slope:+.3f} s a day): 30 days ~{tb + slope * (30 - b):.2f} CPU s; "
                         f"from rows after {b}: {by[f'dense-{key}-rows'].cpu_s[-1]:.2f}")
    return lines


def _slope(ys: list[float]) -> float:
    """Least-squares slope of ys against their index: what a night's cost gains per night."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def small_parts(args, work: Path, measure, st) -> None:
    """4.: the same requests as many small nights and as 30 nights; reports from each; compact."""
    import math

    month = "2026-10"
    stores = {}
    for count in (30, args.small_nights):
        per = math.ceil(args.small_rows / count)
        data = B.dataset_dir(B.BENCH_DIR / "data", args.small_rows, args.seed) / f"nights-{per}"
        B.generate(data, args.small_rows, args.seed, ["csv"], per)
        root = work / f"parts-{count}"
        B.log(f"building a store of {count} nights of {per:,} requests (in this process, not measured) ...")
        for night in sorted((data / "csv").glob("*.csv")):
            st.ingest([str(night)], str(root))
        stores[count] = root
    for key, root in ((f"{args.small_nights}-parts", stores[args.small_nights]), ("30-parts", stores[30]),
                      ("compacted-parts", None)):
        if root is None:
            root = stores[args.small_nights]
            files = st.status(str(root))["data_files"]
            measure("compact-parts", f"store compact of the {args.small_nights}-night store ({files} data files)",
                    ["store", "compact", str(root)])
        label = key.replace("-parts", " nights" if key[0].isdigit() else "")
        measure(f"month-{key}", f"report --store --by {BY}, one month, {args.small_rows:,} requests as {label}",
                ["report", "--store", str(root), "--by", BY, "--since", f"{month}-01", "--until", "2026-10-31",
                 "-o", str(work / "m.json")])
        measure(f"all-{key}", f"report --store --by {BY}, all history, {args.small_rows:,} requests as {label}",
                ["report", "--store", str(root), "--by", BY, "-o", str(work / "a.json")])


def history(args, work: Path, measure, st):
    """2. and 3.: nights ingested one run each, reports after 30 and after all, compact."""
    total = max(args.history_rows, args.nights * args.night_rows)
    # The first month of the data: full after 27 of 100 nights, so the one-month report after 30
    # nights and after all of them reads the same rows (does a month's report grow with history?).
    month, last_day = "2026-08", "2026-08-31"  # (--until: that whole day)
    data = B.dataset_dir(B.BENCH_DIR / "data", total, args.seed) / f"nights-{args.night_rows}"
    B.generate(data, total, args.seed, ["csv"], args.night_rows)
    nights = sorted((data / "csv").glob("*.csv"))[:args.nights]
    hist = work / "history"
    walls, cpus, rss = [], [], []
    for k, night in enumerate(nights):
        m = measure(f"night-{k + 1}", f"ingest night {k + 1}", ["ingest", str(night), "--store", str(hist), "-q"],
                    args.night_rows)
        measure.drop()  # kept in the nightly series below, not one line each
        walls.append(m.wall_s[-1])
        cpus.append(m.cpu_s[-1])
        rss.append(m.rss or 0)
        if k + 1 in (30, len(nights)):
            measure(f"month-{k + 1}", f"report --store --by {BY}, one month, after {k + 1} nights",
                    ["report", "--store", str(hist), "--by", BY, "--since", f"{month}-01", "--until", last_day,
                     "-o", str(work / "m.json")])
            measure(f"all-{k + 1}", f"report --store --by {BY}, all history, after {k + 1} nights",
                    ["report", "--store", str(hist), "--by", BY, "-o", str(work / "a.json")])
    status = st.status(str(hist))
    measure("compact", f"store compact ({status['data_files']} data files)", ["store", "compact", str(hist)])
    measure("month-compacted", f"report --store --by {BY}, one month, after compact",
            ["report", "--store", str(hist), "--by", BY, "--since", f"{month}-01", "--until", last_day,
             "-o", str(work / "m.json")])
    measure("all-compacted", f"report --store --by {BY}, all history, after compact",
            ["report", "--store", str(hist), "--by", BY, "-o", str(work / "a.json")])
    after = st.status(str(hist))

    HISTORY_LINE[0] = (f"history store: {status['rows_stored']:,} rows, {status['data_files']} data files "
                       f"({status['bytes'] / 2**20:,.1f} MiB) -> {after['data_files']} after compact "
                       f"({after['bytes'] / 2**20:,.1f} MiB)")
    return walls, cpus, rss, nights


if __name__ == "__main__":
    sys.exit(main())
