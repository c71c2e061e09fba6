"""Where `llm-cost price` spends its CPU, step by step in one process, for docs/performance.md:

    python bench/price_floor.py F.parquet

start-up (imports), the aggregate pass (`price_requests`), the priced rows collected slice by slice
(what write_rows does before appending), then the same rows written from memory by PyArrow with
the writer's settings, and by Polars' CSV writer: the floor no change to the slicing can go below.
Then the writer's codec choices, each with the file's size: zstd at levels 1 (PyArrow's default,
what `price` writes) and 3 (the store's month files), zstd's fast levels -1, -3 and -5, lz4, snappy
and none, and Polars' write_parquet (zstd, both cores) for comparison."""

from __future__ import annotations

import os
import resource
import sys
import tempfile


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(path: str) -> None:
    t0 = cpu()
    import polars as pl
    import pyarrow.parquet as pq

    from analyzer import pipeline, writers
    t1 = cpu()
    print(f"start-up (imports)            {t1 - t0:.2f}")
    rows, _ = pipeline.price_requests([path], pipeline.Options())
    t2 = cpu()
    print(f"aggregate pass                {t2 - t1:.2f}")
    n, step = writers._sliceable(rows.sources[0]), 320_000
    frames = [rows.plan(0, (o, step)).collect(engine="streaming") for o in range(0, n, step)]
    t3 = cpu()
    print(f"priced rows, collected        {t3 - t2:.2f}")
    df = pl.concat(frames)
    del frames
    with tempfile.TemporaryDirectory() as d:
        t4 = cpu()
        table = df.to_arrow(compat_level=pl.CompatLevel.newest())
        strings = [c for c, t in df.schema.items() if t == pl.String and c != "request_id"]
        stats = [c for c, t in df.schema.items() if t.is_temporal() or t.is_integer()]
        with pq.ParquetWriter(os.path.join(d, "o.parquet"), table.schema, compression="zstd",
                              use_dictionary=strings, write_statistics=stats) as w:
            w.write_table(table, row_group_size=writers.PRICED_ROW_GROUP)
        t5 = cpu()
        print(f"PyArrow writes them (memory)  {t5 - t4:.2f}")
        df.write_csv(os.path.join(d, "o.csv"))
        print(f"Polars write_csv (memory)     {cpu() - t5:.2f}")
        out = os.path.join(d, "c.parquet")
        for codec, level in (("zstd", 1), ("zstd", 3), ("zstd", -1), ("zstd", -3), ("zstd", -5), ("lz4", None),
                             ("snappy", None), ("none", None)):
            t6 = cpu()
            with pq.ParquetWriter(out, table.schema, compression=codec, compression_level=level,
                                  use_dictionary=strings, write_statistics=stats) as w:
                w.write_table(table, row_group_size=writers.PRICED_ROW_GROUP)
            name = codec + ("" if level is None else f" level {level}")
            print(f"  PyArrow, {name:<19s} {cpu() - t6:.2f}  {os.path.getsize(out) / 2**20:6.1f} MiB")
        t6 = cpu()
        df.write_parquet(out, compression="zstd", row_group_size=writers.PRICED_ROW_GROUP)
        print(f"  Polars write_parquet, zstd  {cpu() - t6:.2f}  {os.path.getsize(out) / 2**20:6.1f} MiB")


if __name__ == "__main__":
    main(sys.argv[1])
