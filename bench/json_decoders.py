"""The JSON decoders this machine has, each timed on the same bytes (issue 17 §1, fourth round).

    python bench/json_decoders.py canonical FILE.jsonl [--rounds 3]
    python bench/json_decoders.py claude-code TREE [--files 2000] [--rounds 3]

`canonical`: a canonical JSON Lines file (the bench's JSONL) decoded into the 11 keys its records
hold, typed, by Polars' NDJSON reader (with the report's schema: the absent canonical fields as
Null), PyArrow's JSON reader, Polars string functions on the lines, and DuckDB (a dev extra).
`claude-code`: the assistant lines of a tree's first --files transcripts (the lines the mapping's
prefilter keeps) decoded into the struct of the 22 paths the claude-code mapping reads.

Each candidate runs in its own process, every candidate once per round (so that a busy spell of a
shared machine falls on all of them); the CPU is the decode's alone (`time.process_time`, every
thread, after the imports and after the input is read where the pipeline has it in memory).
docs/performance.md records what it measured.
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

# The canonical fast path's schema for the bench's records (analyzer/dialects/canonical.py): the keys
# the records hold, typed, and the canonical fields they lack, read as Null.
PRESENT = {"timestamp": pl.String, "model": pl.String, "input_tokens": pl.Int64, "cache_write_5m_tokens": pl.Int64,
           "cache_write_1h_tokens": pl.Int64, "cache_read_tokens": pl.Int64, "output_tokens": pl.Int64,
           "request_id": pl.String, "service_tier": pl.String, "workspace": pl.String, "api_key": pl.String}
ABSENT = ["model_raw", "web_search_requests", "web_fetch_requests", "cache_write_tokens", "requests",
          "reported_cost", "platform", "endpoint_scope", "speed", "inference_geo", "context_window"]
REPORT_SCHEMA = {**PRESENT, **{k: pl.Null for k in ABSENT}}

# The claude-code fast path's struct (mapped._typed_paths: every path as text), for `report --by day`.
_S = pl.String
CC_STRUCT = pl.Struct({
    "timestamp": _S,
    "message": pl.Struct({"model": _S, "usage": pl.Struct({
        "input_tokens": _S, "output_tokens": _S, "cache_read_input_tokens": _S, "cache_creation_input_tokens": _S,
        "cache_creation": pl.Struct({"ephemeral_5m_input_tokens": _S, "ephemeral_1h_input_tokens": _S}),
        "server_tool_use": pl.Struct({"web_search_requests": _S, "web_fetch_requests": _S}),
        "service_tier": _S, "speed": _S, "inference_geo": _S}), "id": _S}),
    "isSidechain": _S, "costUSD": _S, "sessionId": _S, "cwd": _S, "gitBranch": _S, "agentId": _S, "type": _S,
    "requestId": _S})
CC_COUNTS = {"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
             "ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens", "web_search_requests", "web_fetch_requests"}


def _paths(t: pl.Struct, pre: tuple = ()):
    for f in t.fields:
        if isinstance(f.dtype, pl.Struct):
            yield from _paths(f.dtype, (*pre, f.name))
        else:
            yield (*pre, f.name)


def _arrow_type(name: str, t: pl.DataType):
    """PyArrow's and DuckDB's readers refuse a number read as text: counts typed as numbers."""
    import pyarrow as pa
    if isinstance(t, pl.Struct):
        return pa.struct([(f.name, _arrow_type(f.name, f.dtype)) for f in t.fields])
    if t == pl.Int64 or name in CC_COUNTS:
        return pa.int64()
    return {"isSidechain": pa.bool_(), "costUSD": pa.float64()}.get(name, pa.string())


def _duck_type(name: str, t: pl.DataType) -> str:
    if isinstance(t, pl.Struct):
        return "STRUCT(" + ", ".join(f'"{f.name}" {_duck_type(f.name, f.dtype)}' for f in t.fields) + ")"
    if t == pl.Int64 or name in CC_COUNTS:
        return "BIGINT"
    return {"isSidechain": "BOOLEAN", "costUSD": "DOUBLE"}.get(name, "VARCHAR")


def _duck_read(path: str, fields: dict) -> str:
    cols = "{" + ", ".join(f"'{k}': '{_duck_type(k, t)}'" for k, t in fields.items()) + "}"
    return f"read_json('{path}', format = 'newline_delimited', columns = {cols})"


def canonical(name: str, path: str) -> int:
    import pyarrow as pa
    import pyarrow.json as pj

    def arrow(block_mib: int, stream: bool) -> pl.DataFrame:
        options = (pj.ReadOptions(block_size=block_mib << 20),
                   pj.ParseOptions(explicit_schema=pa.schema([(k, _arrow_type(k, t)) for k, t in PRESENT.items()]),
                                   unexpected_field_behavior="ignore"))
        if stream:
            return pl.from_arrow(pa.Table.from_batches(list(pj.open_json(path, *options))))
        return pl.from_arrow(pj.read_json(path, *options))

    def duckdb(inside: bool):
        import duckdb
        if inside:  # every column decoded, nothing handed back
            return duckdb.sql(f"SELECT count(*), {', '.join(f'max({k})' for k in PRESENT)} "
                              f"FROM {_duck_read(path, PRESENT)}").fetchall()[0][0]
        return pl.from_arrow(duckdb.sql(f"SELECT * FROM {_duck_read(path, PRESENT)}").arrow())

    candidates = {
        "polars-report-schema": lambda: pl.scan_ndjson(path, schema=REPORT_SCHEMA, row_index_name="_row",
                                                       row_index_offset=1).collect(),
        "polars-11-keys": lambda: pl.scan_ndjson(path, schema=PRESENT).collect(),
        "polars-batch-16k": lambda: pl.scan_ndjson(path, schema=REPORT_SCHEMA, batch_size=16384).collect(),
        "polars-low-memory": lambda: pl.scan_ndjson(path, schema=REPORT_SCHEMA, low_memory=True).collect(),
        "polars-inside": lambda: pl.scan_ndjson(path, schema=PRESENT).select(
            pl.len(), *[pl.col(k).max() for k in PRESENT]).collect(),
        "pyarrow-1mib": lambda: arrow(1, False),
        "pyarrow-16mib": lambda: arrow(16, False),
        "pyarrow-stream-4mib": lambda: arrow(4, True),
        "duckdb-to-polars": lambda: duckdb(False),
        "duckdb-inside": lambda: duckdb(True),
        "lines-json-decode": lambda: pl.read_lines(path, name="l").select(
            pl.col("l").str.json_decode(pl.Struct(PRESENT))).unnest("l"),
        "lines-json-path": lambda: pl.read_lines(path, name="l").select(
            pl.col("l").str.json_path_match(f"$.{k}").cast(t).alias(k) for k, t in PRESENT.items()),
    }
    if name == "list":
        print(" ".join(candidates))
        return 0
    return _timed(name, candidates[name])


def claude_code_lines(tree: str, files: int) -> bytes:
    """The assistant lines of the first `files` transcripts: what claude_code.toml's prefilter keeps."""
    out = io.BytesIO()
    for f in sorted(Path(tree).rglob("*.jsonl"))[:files]:
        for line in f.read_bytes().splitlines(keepends=True):
            if b'"assistant"' in line or b'"type"' not in line:
                out.write(line)
    return out.getvalue()


def claude_code(name: str, path: str) -> int:
    data = Path(path).read_bytes()
    lines = pl.read_lines(io.BytesIO(data), name="l")
    paths = ["$." + ".".join(p) for p in _paths(CC_STRUCT)]

    def arrow():
        import pyarrow as pa
        import pyarrow.json as pj
        schema = pa.schema([(f.name, _arrow_type(f.name, f.dtype)) for f in CC_STRUCT.fields])
        return pl.from_arrow(pj.read_json(io.BytesIO(data), pj.ReadOptions(block_size=4 << 20),
                                          pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")))

    def duck_paths():
        import duckdb
        con = duckdb.connect()
        con.register("lines", lines.to_arrow())
        listed = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
        return pl.from_arrow(con.sql(f"SELECT json_extract_string(l, {listed}) AS v FROM lines").arrow())

    def duck_read():
        import duckdb
        fields = {f.name: f.dtype for f in CC_STRUCT.fields}
        return pl.from_arrow(duckdb.sql(f"SELECT * FROM {_duck_read(path, fields)}").arrow())

    candidates = {
        "polars-json-decode": lambda: lines.select(pl.col("l").str.json_decode(CC_STRUCT)).unnest("l"),
        "polars-read-ndjson": lambda: pl.read_ndjson(io.BytesIO(data), schema=dict(CC_STRUCT.to_schema())),
        "pyarrow": arrow,
        "duckdb-read-json": duck_read,
        "duckdb-extract-paths": duck_paths,
    }
    if name == "list":
        print(" ".join(candidates))
        return 0
    return _timed(name, candidates[name])


def _timed(name: str, run) -> int:
    t0, w0 = time.process_time(), time.perf_counter()
    out = run()
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    rows = out.height if isinstance(out, pl.DataFrame) else out
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:24} cpu {cpu:6.2f} s  wall {wall:6.2f} s  peak {rss:6.0f} MiB  {rows}", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=["canonical", "claude-code"])
    p.add_argument("path", help="a canonical .jsonl file, or a Claude Code config dir (the tree)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--files", type=int, default=2000, help="claude-code: transcripts sampled")
    p.add_argument("--only", default=None, help="comma-separated candidates (default: all)")
    p.add_argument("--candidate", help=argparse.SUPPRESS)  # internal: run one, in this process
    args = p.parse_args()
    one = canonical if args.kind == "canonical" else claude_code
    if args.candidate:
        return one(args.candidate, args.path)
    path = args.path
    if args.kind == "claude-code":
        path = str(Path(args.path).with_name(Path(args.path).name + f"-assistant-{args.files}.jsonl"))
        if not Path(path).exists():
            Path(path).write_bytes(claude_code_lines(args.path, args.files))
    me = [sys.executable, __file__, args.kind, path]
    names = args.only.split(",") if args.only else subprocess.run(
        [*me, "--candidate", "list"], capture_output=True, text=True, check=True).stdout.split()
    for r in range(args.rounds):
        print(f"round {r + 1}", flush=True)
        for n in names:
            subprocess.run([*me, "--candidate", n], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
