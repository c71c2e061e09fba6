"""System time of `llm-cost price`'s CSV and JSON Lines output by the size of its writes, for
docs/performance.md (issue 18, sixth round):

    python bench/text_writes.py F.parquet OUT_DIR [ROUNDS [PIECES_KIB]]

The priced rows of F are collected first (slices as `price` collects them), then written from
memory as JSON Lines and CSV into OUT_DIR/o.EXT (a new file each time, removed after, 3 s apart):
by Polars' writers on the open file (their own writes, 8-25 MB each), then through writers._Pieces
in writes of each size in PIECES_KIB (default 16,64,256,1024). User and system CPU seconds of this
process, and minor page faults, for each write; the bytes are checked equal to the first's."""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import time


def usage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def main(path: str, out_dir: str, rounds: int = 2, pieces: str = "16,64,256,1024") -> None:
    from analyzer import pipeline, writers

    rows, _ = pipeline.price_requests([path], pipeline.Options())
    n, step = writers._sliceable(rows.sources[0]), 430_000
    frames = [rows.plan(0, (o, step)).collect(engine="streaming") for o in range(0, n, step)]
    digests = {}
    for _ in range(rounds):
        for fmt in ("jsonl", "csv"):
            for piece in (None, *(int(k) << 10 for k in pieces.split(","))):
                out = os.path.join(out_dir, f"o.{fmt}")
                time.sleep(3)  # (the page cache of the file before is free, and handed back to a VM's host)
                u0, s0, f0 = usage()
                with open(out, "wb") as f:
                    target = f
                    if piece is not None:
                        writers.WRITE_PIECE = piece
                        target = writers._Pieces(f.fileno())
                    for i, frame in enumerate(frames):
                        if fmt == "csv":
                            frame.write_csv(target, include_header=i == 0)
                        else:
                            frame.write_ndjson(target)
                u1, s1, f1 = usage()
                with open(out, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
                assert digests.setdefault(fmt, digest) == digest, "the bytes differ"
                size = os.path.getsize(out)
                os.unlink(out)
                name = "Polars' own writes" if piece is None else f"{piece >> 10} KiB pieces"
                print(f"{fmt:5s} {name:20s} user {u1 - u0:5.2f}  sys {s1 - s0:5.2f}  faults {f1 - f0:7d}  "
                      f"{size / 1e6:7.0f} MB", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) if i == 0 else a for i, a in enumerate(sys.argv[3:])))
