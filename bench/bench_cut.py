"""Time the content cut (analyzer/dialects/mapped.py `_cut`) alone, on assistant lines of a generated
Claude Code tree: the CPU of one `select` of the cut over the lines, in this process (all threads).

    python bench/claude_code_data.py --records 300000 --out /tmp/t300k
    python bench/bench_cut.py /tmp/t300k --lines 92000 --repeat 5

Run it from a worktree of each code to compare (the analyzer imported is the one on `sys.path`
first: the current directory). Prints the median and the least of the repeats, the lines cut and a
hash of the output, which must be the same for two codes that cut the same."""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path.cwd()))
from analyzer.dialects import mapped  # noqa: E402


def lines_of(tree: Path, n: int) -> pl.Series:
    """The first `n` lines holding `"assistant"` of the tree's transcripts, by path order."""
    out: list[str] = []
    for f in sorted(tree.rglob("*.jsonl")):
        out.extend(line for line in f.read_text(encoding="utf-8").split("\n") if '"assistant"' in line)
        if len(out) >= n:
            break
    return pl.Series("l", out[:n], dtype=pl.String)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tree", type=Path)
    p.add_argument("--lines", type=int, default=92_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    frame = pl.DataFrame([lines_of(args.tree, args.lines)])
    cut = mapped._cut(pl.col("l"), "content", "stop_reason")
    times = []
    for _ in range(args.repeat):
        start = time.process_time()
        out = frame.select(cut)
        times.append(time.process_time() - start)
    digest = hashlib.sha1("\n".join(out["l"].to_list()).encode()).hexdigest()[:12]
    shorter = int((out["l"].str.len_bytes() < frame["l"].str.len_bytes()).sum())
    print(f"polars {pl.__version__}, {frame.height:,} lines ({frame['l'].str.len_bytes().sum():,} bytes): "
          f"CPU s median {statistics.median(times):.3f}, least {min(times):.3f}; {shorter:,} cut; output {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
