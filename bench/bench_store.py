"""Benchmark the store of nightly runs (`llm-cost ingest`, `report --store`) on synthetic logs.

    python bench/bench_store.py                      # or: make bench-store (30 files x 300,000 rows, CSV)
    python bench/bench_store.py --files 5 --rows-per-file 100000

1. Generates FILES x ROWS_PER_FILE synthetic requests with bench.py's generator (the same rows as
   `make bench`), one file per "night" (consecutive rows, so each file covers a few days of the
   Aug-Nov 2026 span), under bench/data/ (git-ignored, reused between runs).
2. Measures, each command in its own process (wall time and peak RSS, as bench.py does):
   `llm-cost price` over all files (the reference for ingest throughput); `llm-cost ingest` of all
   files in one run; the same files ingested night by night, one run per file (as cron does); a
   re-run (a no-op); a one-month report from the store; a report of the whole store;
   `llm-cost report` of the log files themselves; `store compact` of the night-by-night store and
   a report after it.
3. Sizes: the store's Parquet against the same priced rows as `llm-cost price` writes them (with
   their cost columns) as gzip-compressed CSV (level 6), and against the input logs gzip-compressed.
4. Prints a table and writes bench/results-store-<rows>.json.
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
from decimal import Decimal
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402  (bench.py's generator and measuring harness)

BY = "month,workspace,model"
MONTH = ("2026-10-01", "2026-10-31")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=30)
    p.add_argument("--rows-per-file", type=int, default=300_000)
    p.add_argument("--format", default="csv", choices=B.FORMATS)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--max-rss-mib", type=float, default=8192)
    return p.parse_args(argv)


def gzip_csv_bytes(frames) -> int:
    """Bytes of these frames as one gzip-compressed CSV (level 6, gzip's default), money exact."""
    total = 0
    for i, df in enumerate(frames):
        text = df.with_columns([pl.col(c).cast(pl.String) for c, t in df.schema.items() if isinstance(t, pl.Decimal)])
        total += len(gzip.compress(text.write_csv(include_header=i == 0).encode(), compresslevel=6))
    return total


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = args.files * args.rows_per_file
    data = B.dataset_dir(B.BENCH_DIR / "data", rows, args.seed)
    B.generate(data, rows, args.seed, [args.format], args.rows_per_file)
    src = data / args.format
    nights = sorted(p for p in src.iterdir() if not p.name.startswith("."))
    work = Path(tempfile.mkdtemp(dir=B.BENCH_DIR / "data", prefix="store-run-"))
    env = dict(os.environ)
    exe = B.llm_cost()
    q = ["--quarantine", str(work / "quarantine.jsonl")]
    store, nightly = work / "store", work / "store-nightly"

    def measure(what: str, cmd: list[str], n: int | None = rows) -> B.Measurement:
        m = B.Measurement(args.format, what, [*exe, *cmd], rows=n)
        B.log(f"{what} ...")
        B.run_measured(m, str(work), args.timeout, args.max_rss_mib, env)
        B.log(f"  {m.wall_s[-1]:.2f} s, {m.rss or 0:.0f} MiB" + (f"  FAILED {m.failure}" if m.failure else ""))
        return m

    ms = [
        measure("llm-cost price (all files -> Parquet)", ["price", str(src), "-o", str(work / "priced.parquet"), *q]),
        measure("llm-cost ingest (all files, one run)", ["ingest", str(src), "--store", str(store), "-q"]),
        measure("llm-cost ingest again (no-op)", ["ingest", str(src), "--store", str(store), "-q"]),
    ]
    per_night = [measure(f"ingest night {k + 1}", ["ingest", str(p), "--store", str(nightly), "-q"],
                         args.rows_per_file) for k, p in enumerate(nights)]
    month_out, all_out, logs_out = (work / f"{n}.json" for n in ("month", "all", "logs"))
    ms += [
        measure(f"report --store --by {BY} --since {MONTH[0]} --until {MONTH[1]}",
                ["report", "--store", str(store), "--by", BY, "--since", MONTH[0], "--until", MONTH[1], "-o",
                 str(month_out)], None),
        measure(f"report --store --by {BY} (every month)", ["report", "--store", str(store), "--by", BY, "-o",
                                                            str(all_out)]),
        measure(f"report <log files> --by {BY}", ["report", str(src), "--by", BY, "-o", str(logs_out), *q]),
    ]
    month_rep, all_rep, logs_rep = (json.loads(p.read_text()) for p in (month_out, all_out, logs_out))
    month_rows = all_rep["accounting"]["rows_read"] - all_rep["accounting"]["duplicates"] \
        - all_rep["accounting"]["quarantined"] - month_rep["accounting"]["filtered_out"]
    ms[3].rows = month_rows

    import deltalake

    from analyzer import store as st

    ms += [measure("store compact (optimize + vacuum)", ["store", "compact", str(nightly)], None),
           measure(f"report --store --by {BY} (every month, after compact)",
                   ["report", "--store", str(nightly), "--by", BY, "-o", str(work / "compacted.json")])]
    status = st.status(str(store))
    B.log("sizing the same rows as gzip CSV ...")
    # The same priced rows as `llm-cost price` writes them (the table holds their cost columns), as gzip CSV.
    stored_gz = gzip_csv_bytes(pl.read_parquet(f).drop(st.SHA) for f in deltalake.DeltaTable(str(store)).file_uris())
    input_gz = gzip_csv_bytes(pl.read_csv(p, infer_schema=False) if args.format == "csv" else pl.read_parquet(p)
                              for p in nights) if args.format != "jsonl" else None
    nightly_status = st.status(str(nightly))

    # Wall time, and CPU time (user + system): on a shared machine, other work inflates the first only.
    lines = [f"{'run':<70} {'wall s':>8} {'CPU s':>8} {'rows/s':>11} {'peak RSS MiB':>13}"]
    for m in ms:
        rate = f"{m.rows / m.wall:,.0f}" if m.rows and m.wall else ""
        lines.append(f"{m.what:<70} {m.wall or float('nan'):>8.2f} {m.cpu_s[-1]:>8.2f} {rate:>11} {m.rss or 0:>13.0f}")
    walls = [m.wall for m in per_night if m.wall]
    cpus = [m.cpu_s[-1] for m in per_night]
    lines.append(f"{f'ingest night by night ({len(nights)} runs): total':<70} {sum(walls):>8.2f} {sum(cpus):>8.2f} "
                 f"{rows / sum(walls):>11,.0f} {max(m.rss or 0 for m in per_night):>13.0f}")
    lines.append(f"{'  first night / last night':<70} {walls[0]:>8.2f} / {walls[-1]:.2f} s wall")
    price, ingest = ms[0], ms[1]
    month_m = ms[3]
    lines.append(f"ingest / price: wall {ingest.wall / price.wall:.2f}x, CPU {ingest.cpu_s[-1] / price.cpu_s[-1]:.2f}x "
                 f"in one run; night by night wall {sum(walls) / price.wall:.2f}x, CPU {sum(cpus) / price.cpu_s[-1]:.2f}x "
                 "(target <= 1.5x)")
    other = sum(sum(m.other_cpu_s) for m in [*ms, *per_night])
    lines.append(f"other processes used {other:,.0f} CPU s meanwhile (this machine has {os.cpu_count()} cores)")
    lines.append(f"one-month report: {month_m.wall:.2f} s for {month_rows:,} rows (target < 2 s)")
    lines.append(f"store: {status['bytes'] / 2**20:,.1f} MiB of Parquet (Delta data files) for {status['rows_stored']:,} rows; the same "
                 f"rows as gzip CSV {stored_gz / 2**20:,.1f} MiB -> {status['bytes'] / stored_gz:.0%} (target <= 40%)")
    if input_gz:
        lines.append(f"       the input logs themselves as gzip CSV: {input_gz / 2**20:,.1f} MiB "
                     f"({status['bytes'] / input_gz:.0%} of it)")
    totals = {n: Decimal(r["totals"]["cost"]) for n, r in (("store", all_rep), ("logs", logs_rep))}
    lines.append(f"total cost: store ${totals['store']:,.2f}, logs ${totals['logs']:,.2f} (difference "
                 f"{totals['store'] - totals['logs']}); duplicates: store {all_rep['accounting']['duplicates']:,}, "
                 f"logs {logs_rep['accounting']['duplicates']:,}")
    lines.append(f"night-by-night store consistent: {nightly_status['consistent']}, same rows as one run: "
                 f"{nightly_status['rows_stored'] == status['rows_stored']}")
    text = "\n".join(lines)
    print(text)
    out = B.BENCH_DIR / f"results-store-{rows}.json"
    out.write_text(json.dumps({
        "rows": rows, "files": args.files, "format": args.format, "machine": platform.platform(),
        "cpus": os.cpu_count(), "code": B.code_version(), "table": text,
        "runs": [{"what": m.what, "wall_s": m.wall_s, "cpu_s": m.cpu_s, "other_cpu_s": m.other_cpu_s,
                  "peak_rss_mib": m.peak_rss_mib, "rows": m.rows, "failure": m.failure} for m in [*ms, *per_night]],
        "store_bytes": status["bytes"], "stored_rows_gzip_csv_bytes": stored_gz, "input_gzip_csv_bytes": input_gz,
    }, indent=1) + "\n")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
