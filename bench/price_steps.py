"""Time the steps of `llm-cost price F -o OUT` in one process, as the command runs them
(writers.sink_rows, its collects and appends timed where they happen), for docs/performance.md:

    python bench/price_steps.py F.parquet [OUT.parquet]

start-up (imports), the aggregate pass (`price_requests`), then write_rows: the priced slices
collected, and appended to the writer. CPU seconds (user+sys) of this process."""

from __future__ import annotations

import resource
import sys


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(path: str, out: str) -> None:
    t0 = cpu()
    import polars as pl

    from analyzer import pipeline, writers
    t1 = cpu()
    rows, _ = pipeline.price_requests([path], pipeline.Options())
    t2 = cpu()
    spent = {"collect": 0.0, "append": 0.0}

    def timed(f, step):
        def run(*a, **k):
            t = cpu()
            try:
                return f(*a, **k)
            finally:
                spent[step] += cpu() - t
        return run

    pl.LazyFrame.collect = timed(pl.LazyFrame.collect, "collect")
    writers._Appender.append = timed(writers._Appender.append, "append")
    writers._Appender.close = timed(writers._Appender.close, "append")
    writers.sink_rows(rows, writers.format_for(None, out, "parquet"), out)
    t3 = cpu()
    print(f"start-up (imports)   {t1 - t0:6.2f}")
    print(f"aggregate pass       {t2 - t1:6.2f}")
    print(f"collect slices       {spent['collect']:6.2f}")
    print(f"append to writer     {spent['append']:6.2f}")
    print(f"total                {t3 - t0:6.2f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "price-steps-out.parquet")
