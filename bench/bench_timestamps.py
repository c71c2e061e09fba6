"""Time `llm-cost report` on the same synthetic requests with their timestamps written in each form.

    python bench/bench_timestamps.py --rows 1000000 [--repeat 3] [--python OTHER/.venv/bin/python]

Real exporters write `+00:00`, `+0000`, no zone, epoch milliseconds, ...: every form must read on
the fast path (issue 12 §5, issue 17 §1). Writes one CSV and one JSONL per form under
bench/data/timestamps-<rows>/ (git-ignored) from bench.py's generator, runs `llm-cost report --by
day,model --format json` on each in its own process, checks that every form gives the same totals,
and prints the best wall and CPU time of --repeat runs and the CPU ratio to the `Z` form
(the machine may be shared: CPU time is steadier).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

FORMS = {
    "Z": pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
    "+00:00": pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00"),
    "+0000": pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3f+0000"),
    "+05:30": pl.col("timestamp").dt.convert_time_zone("Asia/Kolkata").dt.strftime("%Y-%m-%dT%H:%M:%S%.3f+05:30"),
    "no zone": pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3f"),
    "space +00": pl.col("timestamp").dt.strftime("%Y-%m-%d %H:%M:%S%.3f+00"),
    "epoch ms": pl.col("timestamp").dt.epoch("ms"),  # a number, as exporters write it (JSON and CSV)
}


def _children_cpu() -> float:
    """CPU seconds of finished child processes: on a shared machine, wall time measures the
    neighbours as much as the command; CPU time is what the command itself cost."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--formats", default="csv,jsonl")
    p.add_argument("--forms", default=",".join(FORMS))
    p.add_argument("--python", default=sys.executable, help="the interpreter whose llm-cost is timed")
    args = p.parse_args()
    root = bench.BENCH_DIR / "data" / f"timestamps-{args.rows}"
    root.mkdir(parents=True, exist_ok=True)
    chunk = None
    results = {}
    for fmt in args.formats.split(","):
        for name in args.forms.split(","):
            path = root / f"{name.replace(' ', '_').replace(':', '').replace('+', 'p')}.{fmt}"
            if not path.exists():
                chunk = chunk if chunk is not None else bench.synthetic_chunk(0, args.rows, args.rows, 42)
                text = chunk.with_columns(FORMS[name].alias("timestamp"))
                text.write_csv(path) if fmt == "csv" else text.write_ndjson(path)
            times, cpus, totals = [], [], None
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), _children_cpu()
                out = subprocess.run([args.python, "-m", "analyzer", "report", str(path), "--by", "day,model",
                                      "--format", "json", "--quiet", "--quarantine", str(root / "q.jsonl")],
                                     capture_output=True, text=True, check=True)
                times.append(time.perf_counter() - t0)
                cpus.append(_children_cpu() - c0)
                doc = json.loads(out.stdout)
                totals = (doc["totals"]["cost"], doc["accounting"]["priced"], doc["accounting"]["quarantined"])
            results[fmt, name] = (min(times), min(cpus), totals)
            print(f"{fmt:6s} {name:10s} wall {min(times):6.2f} s  cpu {min(cpus):6.2f} s  total {totals}", flush=True)
    print("\nformat form         wall  cpu (user+sys)  cpu vs Z")
    for (fmt, name), (wall, cpu, totals) in results.items():
        base = results.get((fmt, "Z"))
        same = "" if base is None or base[2] == totals else "  DIFFERENT TOTALS"
        ratio = f"{cpu / base[1]:.2f}x" if base else "-"
        print(f"{fmt:6s} {name:10s} {wall:6.2f} s  {cpu:6.2f} s  {ratio:>6s}{same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
