"""Where `llm-cost price F -o OUT` spends its CPU, step by step, in one process, for
docs/performance.md (issue 18, eleventh round):

    python bench/price_profile.py F.parquet [ROUNDS]

start-up (imports); the aggregate pass (`price_requests`); then the priced plan of the whole file
collected at growing depths, each ROUNDS times (3), interleaved, the median kept:
read (the file's normalized rows, as the priced plan reads them), + status and dedupe (with_status, the losers' filter, labels,
the validity filter), + tags (row tags, time band, rate row and the seven gathered tags), + money
(the ten money columns), + select (the output's columns: the whole priced plan), + mask (what
`price` writes: credentials masked); then the masked rows encoded from memory: Parquet (PyArrow, the
writer's settings), CSV and JSON Lines (Polars, into a sink that drops the bytes). A depth's cost
is its time less the one before. CPU seconds (user+sys) of this process: other jobs on the machine
move wall time, not these."""

from __future__ import annotations

import io
import resource
import statistics
import sys


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Drop(io.RawIOBase):
    def writable(self):
        return True

    def write(self, b):
        return len(memoryview(b))


def main(path: str, rounds: int = 3) -> None:
    t0 = cpu()
    import polars as pl

    from analyzer import pipeline, writers
    from analyzer.schema import CANONICAL
    t1 = cpu()
    depth = {"stage": "select"}
    schema = {}
    original = pipeline.row_pricing

    def staged_pricing(rates, band, book, blamed=False):
        # row_pricing's own plan, cut after a stage; the columns it would add after it as typed nulls
        full = original(rates, band, book, blamed)
        env = dict(zip(full.__code__.co_freevars, (c.cell_contents for c in full.__closure__)))

        def apply(lf):
            stage = depth["stage"]
            if stage == "select":
                return full(lf)
            if stage == "tags":
                lf = lf.with_columns(*env["tags"]).with_columns(env["tband"].alias(pipeline.tagging.TIME_BAND))
                lf = lf.with_columns(env["row"]).with_columns(env["taken"]).with_columns(*env["last"])
            have = lf.collect_schema()
            return lf.with_columns([pl.lit(None, t).alias(c) for c, t in schema.items() if c not in have])
        return apply

    pipeline.row_pricing = staged_pricing
    rows, _ = pipeline.price_requests([path], pipeline.Options())
    t2 = cpu()
    print(f"start-up (imports)   {t1 - t0:6.2f}")
    print(f"aggregate pass       {t2 - t1:6.2f}")
    source = rows.sources[0]
    schema.update(rows.plan(0).collect_schema())
    cols = list(schema)
    stages = ["read", "status", "tags", "select"]

    def plan_at(stage):
        if stage == "read":  # (the columns the priced plan reads: not the record's text kept for quarantine)
            return source.drop("_raw", "_reason", strict=False)
        depth["stage"] = stage
        return rows.plan(0)

    spent = {s: [] for s in [*stages, "mask"]}
    masked = None
    for _ in range(rounds):
        for s in stages:
            try:
                lf = plan_at(s)
                t = cpu()
                lf.collect(engine="streaming")
                spent[s].append(cpu() - t)
            except pl.exceptions.PolarsError as e:
                spent[s].append(float("nan"))
                print(s, "failed:", str(e).splitlines()[0])
        depth["stage"] = "select"
        t = cpu()
        # (the columns writers.sink_rows masks: as logged, and dimensions)
        masked = writers.safe_text.mask_frame(rows.plan(0), [
            c for c in cols if c in writers._AS_LOGGED or (c not in CANONICAL and c not in writers._PRICE_TAGS)
        ]).collect(engine="streaming")
        spent["mask"].append(cpu() - t)
    med = {s: statistics.median(v) for s, v in spent.items()}
    before = 0.0
    for s in [*stages, "mask"]:
        print(f"{s:20s} {med[s]:6.2f}  (+{med[s] - before:5.2f})  rounds {' '.join(f'{x:.2f}' for x in spent[s])}")
        before = med[s] if s != "mask" else before
    import pyarrow.parquet as pq
    enc = {"parquet": [], "csv": [], "jsonl": []}
    for _ in range(rounds):
        t = cpu()
        table = masked.to_arrow(compat_level=pl.CompatLevel.newest())
        strings = [c for c, ty in masked.schema.items() if ty == pl.String and c != "request_id"]
        stats = [c for c, ty in masked.schema.items() if ty.is_temporal() or ty.is_integer()]
        with pq.ParquetWriter(_Drop(), table.schema, compression="zstd", use_dictionary=strings,
                              write_statistics=stats) as w:
            w.write_table(table, row_group_size=writers.PRICED_ROW_GROUP)
        enc["parquet"].append(cpu() - t)
        t = cpu()
        writers.safe_text.csv_frame(masked).write_csv(_Drop())
        enc["csv"].append(cpu() - t)
        t = cpu()
        masked.write_ndjson(_Drop())
        enc["jsonl"].append(cpu() - t)
    for k, v in enc.items():
        print(f"encode {k:13s} {statistics.median(v):6.2f}  rounds {' '.join(f'{x:.2f}' for x in v)}")
    print(f"load average {open('/proc/loadavg').read().split()[0]}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
