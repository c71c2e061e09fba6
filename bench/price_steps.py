"""Time the steps of `llm-cost price F -o OUT` in one process, as the command runs them
(writers.sink_rows, its collects and appends timed where they happen), for docs/performance.md:

    python bench/price_steps.py F.parquet [OUT.parquet [ROUNDS]]

start-up (imports), the aggregate pass (`price_requests`), then write_rows ROUNDS times (2) each
way, alternating: with the steps one after the other (writers.OVERLAP off: the priced slices
collected, and appended to the writer, each timed), then as `price` runs it (the next slice
collected while one is appended). CPU seconds (user+sys) of this process, and wall seconds."""

from __future__ import annotations

import resource
import sys
import time


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(path: str, out: str, rounds: int = 2) -> None:
    t0 = cpu()
    import polars as pl

    from analyzer import pipeline, writers
    t1, w1 = cpu(), time.monotonic()
    rows, _ = pipeline.price_requests([path], pipeline.Options())
    t2, w2 = cpu(), time.monotonic()
    spent = {"collect": 0.0, "append": 0.0}

    def timed(f, step):
        def run(*a, **k):
            t = cpu()
            try:
                return f(*a, **k)
            finally:
                spent[step] += cpu() - t
        return run

    collect, append, close = pl.LazyFrame.collect, writers._Appender.append, writers._Appender.close
    fmt = writers.format_for(None, out, "parquet")
    print("                            CPU s   wall s")
    print(f"start-up (imports)         {t1 - t0:6.2f}")
    print(f"aggregate pass             {t2 - t1:6.2f}   {w2 - w1:6.2f}")
    for _ in range(rounds):  # (alternating, so that both see the same machine)
        for k in spent:
            spent[k] = 0.0
        pl.LazyFrame.collect = timed(collect, "collect")
        writers._Appender.append = timed(append, "append")
        writers._Appender.close = timed(close, "append")
        writers.OVERLAP = False
        t3, w3 = cpu(), time.monotonic()
        writers.sink_rows(rows, fmt, out)
        t4, w4 = cpu(), time.monotonic()
        pl.LazyFrame.collect, writers._Appender.append, writers._Appender.close = collect, append, close
        writers.OVERLAP = True
        writers.sink_rows(rows, fmt, out)
        t5, w5 = cpu(), time.monotonic()
        print(f"written, one step a time   {t4 - t3:6.2f}   {w4 - w3:6.2f}"
              f"   (collect {spent['collect']:.2f}, append {spent['append']:.2f})")
        print(f"written, overlapped        {t5 - t4:6.2f}   {w5 - w4:6.2f}")
    print(f"load average               {open('/proc/loadavg').read().split()[0]}")

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "price-steps-out.parquet",
         int(sys.argv[3]) if len(sys.argv) > 3 else 2)
