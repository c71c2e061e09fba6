"""What the pass `llm-cost price` runs before its first priced row costs, step by step, for
docs/performance.md (issue 18, tenth round):

    python bench/price_pass.py F.parquet [ROUNDS]

`pipeline.price_requests` ROUNDS times (3), each of its steps timed where it is called: reading the
files' shape (read_logs: detection and the Parquet check), the ids seen twice (_candidates), the
group sums over every row and, with duplicates, over the losing copies (exact_sums: the steps that
serve only the accounting, which `price` could fold into its priced pass), the losing copies
themselves (_duplicate_losers: a read of its own above pipeline.ONE_READ_MAX_ROWS), and the rate
frame and pricing expressions (row_pricer). A step's time includes the steps it calls; "rest" is
the pass less the steps listed. CPU seconds (user+sys) of this process."""

from __future__ import annotations

import functools
import resource
import sys

STEPS = ("read_logs", "_candidates", "exact_sums", "_duplicate_losers", "row_pricer")


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(path: str, rounds: int = 3) -> None:
    from analyzer import pipeline

    spent = dict.fromkeys(STEPS, 0.0)

    def timed(step):
        f = getattr(pipeline, step)

        @functools.wraps(f)
        def run(*a, **k):
            t = cpu()
            try:
                return f(*a, **k)
            finally:
                spent[step] += cpu() - t
        setattr(pipeline, step, run)

    for step in STEPS:
        timed(step)
    print("round  pass   " + "  ".join(f"{s.strip('_'):>15s}" for s in STEPS) + "    rest")
    for r in range(rounds):
        for s in STEPS:
            spent[s] = 0.0
        t = cpu()
        _, acc = pipeline.price_requests([path], pipeline.Options())
        total = cpu() - t
        # (exact_sums is called inside the pass, after read_logs and _candidates; row_pricer last)
        rest = total - sum(spent.values())
        print(f"{r + 1:5d} {total:5.2f}   " + "  ".join(f"{spent[s]:15.2f}" for s in STEPS) + f"  {rest:6.2f}")
    print(acc.summary())


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
