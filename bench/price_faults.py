"""Page faults and system time of `price`'s two halves, for docs/performance.md (issue 18, eleventh
round): the allocator setting to try goes in the environment, as the command would set it before
Polars loads:

    _RJEM_MALLOC_CONF=narenas:1,dirty_decay_ms:-1,muzzy_decay_ms:-1 python bench/price_faults.py F.parquet

Prints, for the aggregate pass (`price_requests`) and the writing (`writers.sink_rows` to Parquet,
into a temporary file): CPU s (user+sys), system s and minor page faults of this process, then its
peak RSS and the setting Polars' allocator was given. `price` itself adds its own setting only when
the environment has none of the user's (cli._keep_freed_memory); this script runs neither."""

from __future__ import annotations

import os
import resource
import sys
import tempfile


def usage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_stime, r.ru_minflt


def main(path: str) -> None:
    import analyzer.cli  # noqa: F401  (the arenas setting the command makes, unless the environment has one)
    from analyzer import pipeline, writers

    a = usage()
    rows, _ = pipeline.price_requests([path], pipeline.Options())
    b = usage()
    with tempfile.TemporaryDirectory() as d:
        writers.sink_rows(rows, "parquet", os.path.join(d, "o.parquet"))
    c = usage()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"aggregate: CPU {b[0] - a[0]:.2f} s, system {b[1] - a[1]:.2f} s, {b[2] - a[2]:,} faults | "
          f"write: CPU {c[0] - b[0]:.2f} s, system {c[1] - b[1]:.2f} s, {c[2] - b[2]:,} faults | "
          f"peak {peak} MiB | {os.environ.get('_RJEM_MALLOC_CONF')}")


if __name__ == "__main__":
    main(sys.argv[1])
