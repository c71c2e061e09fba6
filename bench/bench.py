"""Benchmark `llm-cost report` on synthetic usage logs, against hand-written Polars baselines.

    python bench/bench.py --rows 10000000              # or: make bench ROWS=10000000
    python bench/bench.py --rows 1000000 --formats parquet --keep-data

1. Generates a synthetic canonical log of N requests as Parquet, CSV and JSONL (the same rows in
   each), in part files of --chunk-rows rows, under bench/data/ (git-ignored). A data set is kept
   between runs only with --keep-data; one that is already there is reused.
2. Runs each measured command in its own process, so that peak RSS belongs to that command alone:
   the product (`llm-cost report --by day,model`, with and without dedupe), a row-wise Float64
   baseline, an aggregate-first Float64 baseline and a bare scan-and-sum floor, per format; plus
   `llm-cost --help` and a 1,000-row report, which show the fixed cost of a run.
3. Writes the CSV and JSONL logs again with their timestamps in each form real exporters write
   (`+00:00`, `+0000`, no zone, epoch milliseconds; `--forms`), and in the variants they ship
   (columns in another order, gzip parts; `--variants`), and times on each the same report by
   llm-cost (with and without dedupe) and by DuckDB: one hand-written Float64 SQL query that reads,
   keeps one row per request id (the one with most tokens), joins a price table and groups by day
   and model (and the same query without the dedupe).
4. Prints a table, the ratios llm-cost / DuckDB per format and form, and writes
   bench/results-<rows>.json.

The baselines are what a competent Polars user would write for a rough estimate: typed scans,
Float64 money, one rate per model, no validation, no dedupe, no price periods or long-context
tiers. They bound what the product's exactness, validation and dedupe cost; the floor bounds what
reading the format costs at all.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

BENCH_DIR = Path(__file__).resolve().parent
FORMATS = ("parquet", "csv", "jsonl")
EXT = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
# Bump when the generator changes, so that cached data sets made by an older generator are not reused.
GENERATOR_VERSION = 1
TINY_ROWS = 1_000

# ---------------------------------------------------------------------------------------------
# Synthetic data
#
# Every value is a pure function of (seed, row index), computed with Polars expressions from
# seeded 64-bit hashes of the index: no per-row Python and no NumPy, and a chunk's rows do not
# depend on the chunk size, so the data set is the same however it is cut into parts.
# ---------------------------------------------------------------------------------------------

START = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)  # exclusive: the last day is 2026-11-24
TS_TEXT = "%Y-%m-%dT%H:%M:%S%.3fZ"  # how CSV/JSONL carry timestamps (millisecond precision, UTC)
# Timestamp forms real exporters write (issue 17 §1): the same instants, as text. Epoch
# milliseconds are a JSON number (an integer column in CSV).
FORMS = {
    "Z": pl.col("timestamp").dt.strftime(TS_TEXT),
    "+00:00": pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00"),
    "+0000": pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3f+0000"),
    "no zone": pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3f"),
    "epoch ms": pl.col("timestamp").dt.epoch("ms"),
}
# How exporters ship them besides: another column order (a tool that writes its own), and gzip
# parts. Each is one extra data set: (format, form, variant). "malformed" is the plain data set with
# one bad line appended to its last part (a torn JSON line; a CSV count `1.5`): the fast reader
# fails on it and the run is read again robustly (pipeline._with_retry), quarantining that line.
VARIANTS = (("csv", "+0000", "shuffled"), ("csv", "Z", "gzip"), ("jsonl", "+00:00", "gzip"),
            ("jsonl", "epoch ms", "shuffled"), ("csv", "Z", "malformed"), ("jsonl", "Z", "malformed"))
MALFORMED_ID = "req_malformed"
TOKEN_COLUMNS = ("input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens",
                 "output_tokens")
DUPLICATE_SHARE = 0.01
DUPLICATE_LOOKBACK = 50_000  # a duplicate repeats a request logged at most this many rows earlier
WORKSPACES = (
    "production", "staging", "research", "support-bot", "search", "data-eng", "evals", "growth", "mobile",
    "docs-assistant", "sales", "legal-review", "finance", "internal-tools", "code-review", "onboarding",
    "marketing", "security", "labs", "sandbox",
)
KEYS_PER_WORKSPACE = 10  # 20 workspaces x 10 = 200 API keys

# Launch days: a newer model takes most of its family's traffic from its launch day on (an older
# one lingers), so that every request names a model that existed then and nearly all of them price.
SONNET_5_5 = dt.datetime(2026, 9, 28, tzinfo=dt.UTC)
HAIKU_5_5 = dt.datetime(2026, 10, 7, tzinfo=dt.UTC)
OPUS_5_5 = dt.datetime(2026, 9, 22, tzinfo=dt.UTC)
FABLE_5_1 = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
# A few percent of traffic goes through Bedrock and carries its model-id forms.
BEDROCK_IDS = {
    "claude-sonnet-4-5": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "claude-sonnet-5-5": "us.anthropic.claude-sonnet-5-5-v1:0",
    "claude-haiku-4-5": "global.anthropic.claude-haiku-4-5-20251001-v1:0",
    "claude-haiku-5-5": "eu.anthropic.claude-haiku-5-5-v1:0",
    "claude-opus-4-8": "us.anthropic.claude-opus-4-8-v1:0",
    "claude-opus-5-5": "global.anthropic.claude-opus-5-5-v1:0",
}
DATED_IDS = {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929", "claude-haiku-4-5": "claude-haiku-4-5-20251001"}

# The baselines' price table: USD per million tokens of each model's current period
# (input, cache write 5m, cache write 1h, cache read, output). Deliberately naive: no price
# periods, no long-context tier; Bedrock regional ids (us., eu.) carry the +10% regional premium.
FLOAT_PRICES = {
    "claude-sonnet-4-5": (3, 3.75, 6, 0.3, 15),
    "claude-sonnet-5-5": (2, 2.5, 4, 0.1, 10),
    "claude-haiku-4-5": (1, 1.25, 2, 0.1, 5),
    "claude-haiku-5-5": (0.1, 0.125, 0.2, 0.01, 0.5),
    "claude-opus-4-8": (5, 6.25, 10, 0.5, 25),
    "claude-opus-5-5": (4, 5, 8, 0.2, 20),
    "claude-fable-5-1": (10, 12.5, 20, 0.25, 50),
}
BATCH_DISCOUNT = 0.5


def float_price_table() -> pl.DataFrame:
    rows = []
    for model, rates in FLOAT_PRICES.items():
        ids = [(model, 1.0)]
        if model in DATED_IDS:
            ids.append((DATED_IDS[model], 1.0))
        if model in BEDROCK_IDS:
            raw = BEDROCK_IDS[model]
            ids.append((raw, 1.1 if raw.startswith(("us.", "eu.")) else 1.0))
        rows += [(raw, *(r * mult for r in rates)) for raw, mult in ids]
    return pl.DataFrame(rows, schema=["model", *(f"usd_mtok_{c}" for c in TOKEN_COLUMNS)], orient="row")


def _uniform(index: pl.Expr, seed: int, salt: int) -> pl.Expr:
    """A uniform in (0, 1), one independent stream per salt."""
    bits = index.hash(seed * 1_000 + salt) % (1 << 53)
    return (bits.cast(pl.Float64) + 0.5) / float(1 << 53)


def _lognormal(index: pl.Expr, seed: int, salt: int, median: float, sigma: float, cap: int) -> pl.Expr:
    """Heavy-tailed token counts: Box-Muller normal -> lognormal, rounded, in [1, cap]."""
    r = (-2.0 * _uniform(index, seed, salt).log()).sqrt()
    z = r * (2 * math.pi * _uniform(index, seed, salt + 1)).cos()
    return (math.log(median) + sigma * z).exp().round(0).clip(1, cap).cast(pl.Int64)


def _is_duplicate(index: pl.Expr, seed: int) -> pl.Expr:
    return (_uniform(index, seed, 1) < DUPLICATE_SHARE) & (index >= 3)


def _source_index(i: pl.Expr, seed: int) -> pl.Expr:
    """The row whose request this row logs: itself, or for ~1% of rows an earlier row that is not a
    duplicate itself (so that every id stands for one real request)."""
    window = pl.min_horizontal(i - 2, pl.lit(DUPLICATE_LOOKBACK, pl.Int64))
    j = i - 1 - (_uniform(i, seed, 2) * window).floor().cast(pl.Int64)  # in [2, i-1]: j-2 is still a row
    return (
        pl.when(~_is_duplicate(i, seed)).then(i)
        .when(~_is_duplicate(j, seed)).then(j)
        .when(~_is_duplicate(j - 1, seed)).then(j - 1)
        .when(~_is_duplicate(j - 2, seed)).then(j - 2)
        .otherwise(i)  # three duplicates in a row (~1 in a million): keep the row as its own request
    )


def _model(s: pl.Expr, ts: pl.Expr, seed: int) -> pl.Expr:
    family, newer, form = _uniform(s, seed, 10), _uniform(s, seed, 11), _uniform(s, seed, 12)

    def migrated(new: str, old: str, launch: dt.datetime, share: float) -> pl.Expr:
        return pl.when((ts >= launch) & (newer < share)).then(pl.lit(new)).otherwise(pl.lit(old))

    base = (
        pl.when(family < 0.45).then(migrated("claude-sonnet-5-5", "claude-sonnet-4-5", SONNET_5_5, 0.75))
        .when(family < 0.77).then(migrated("claude-haiku-5-5", "claude-haiku-4-5", HAIKU_5_5, 0.70))
        .when(family < 0.93).then(migrated("claude-opus-5-5", "claude-opus-4-8", OPUS_5_5, 0.70))
        .otherwise(migrated("claude-fable-5-1", "claude-opus-4-8", FABLE_5_1, 1.0))
    )
    return (
        pl.when(form < 0.05).then(base.replace(BEDROCK_IDS))
        .when(form < 0.10).then(base.replace(DATED_IDS))
        .otherwise(base)
    )


def synthetic_chunk(first: int, stop: int, rows: int, seed: int) -> pl.DataFrame:
    """Rows [first, stop) of an N-row data set; timestamp as Datetime(us, UTC)."""
    i = pl.col("_i")
    s = pl.col("_src")
    start_ms = int(START.timestamp() * 1000)
    span_ms = int((END - START).total_seconds() * 1000)
    # Requests arrive in time order (a duplicate carries its original's timestamp, so it is late).
    ts = (pl.lit(start_ms) + ((s.cast(pl.Float64) + _uniform(s, seed, 3)) * (span_ms / rows)).floor()
          .cast(pl.Int64)).cast(pl.Datetime("ms", "UTC"))
    cache = _uniform(s, seed, 20)
    reads = (cache >= 0.70) & (cache < 0.96)  # 26% read a cached prefix
    writes_5m = (cache >= 0.90) & (cache < 0.985)  # some extend it, some start one
    writes_1h = cache >= 0.985
    cached = cache >= 0.70
    workspace = (_uniform(s, seed, 30) ** 2 * len(WORKSPACES)).floor().cast(pl.Int64)  # a few dominate
    key = workspace * KEYS_PER_WORKSPACE + (_uniform(s, seed, 31) ** 1.5 * KEYS_PER_WORKSPACE).floor().cast(pl.Int64)
    output = _lognormal(s, seed, 50, 350, 1.1, 64_000)
    # A duplicate is the same request logged again: half exactly, half as an earlier partial record
    # of a streamed response (fewer output tokens). Dedupe must keep the complete one.
    partial = (i != s) & (_uniform(i, seed, 4) < 0.5)
    output = pl.when(partial).then((output.cast(pl.Float64) * _uniform(i, seed, 5)).floor().cast(pl.Int64)).otherwise(output)
    return (
        pl.select(pl.int_range(first, stop, dtype=pl.Int64).alias("_i"))
        .with_columns(_source_index(i, seed).alias("_src"))
        .with_columns(ts.alias("timestamp"))
        .select(
            pl.concat_str(pl.lit("req_"), s.cast(pl.String).str.zfill(12)).alias("request_id"),
            pl.col("timestamp").dt.cast_time_unit("us"),
            _model(s, pl.col("timestamp"), seed).alias("model"),
            workspace.replace_strict(list(range(len(WORKSPACES))), list(WORKSPACES), return_dtype=pl.String)
            .alias("workspace"),
            pl.format("key-{}", key.cast(pl.String).str.zfill(3)).alias("api_key"),
            pl.when(_uniform(s, seed, 40) < 0.05).then(pl.lit("batch")).otherwise(pl.lit("standard"))
            .alias("service_tier"),
            # Uncached prompts are long-tailed on their own; cached requests send a short new turn.
            pl.when(cached).then(_lognormal(s, seed, 60, 250, 1.5, 900_000))
            .otherwise(_lognormal(s, seed, 62, 1_200, 1.7, 900_000)).alias("input_tokens"),
            pl.when(writes_5m).then(_lognormal(s, seed, 64, 4_000, 1.0, 400_000)).otherwise(0)
            .alias("cache_write_5m_tokens"),
            pl.when(writes_1h).then(_lognormal(s, seed, 66, 8_000, 1.0, 400_000)).otherwise(0)
            .alias("cache_write_1h_tokens"),
            pl.when(reads).then(_lognormal(s, seed, 68, 15_000, 1.2, 800_000)).otherwise(0)
            .alias("cache_read_tokens"),
            output.alias("output_tokens"),
        )
    )


def dataset_dir(data_dir: Path, rows: int, seed: int) -> Path:
    return data_dir / f"n{rows}-seed{seed}-g{GENERATOR_VERSION}"


def _chunks(rows: int, seed: int, chunk_rows: int):
    """(index, number of parts, rows) of each generated part, in order: one part in memory at a time."""
    parts = math.ceil(rows / chunk_rows)
    for k in range(parts):
        yield k, parts, synthetic_chunk(k * chunk_rows, min(rows, (k + 1) * chunk_rows), rows, seed)


def _emptied(missing: list, directory) -> list:
    """`missing` data sets, each with its `directory(item)` made new and empty (an interrupted run's
    half-written parts removed); returns `missing`."""
    for item in missing:
        shutil.rmtree(directory(item), ignore_errors=True)
        directory(item).mkdir(parents=True)
    return missing


def generate(root: Path, rows: int, seed: int, formats: list[str], chunk_rows: int) -> list[str]:
    """Write whichever formats are missing; returns those it wrote. A format's directory counts only
    once its `.complete` marker exists, so an interrupted run is redone rather than reused."""
    missing = _emptied([f for f in formats if not (root / f / ".complete").exists()], lambda f: root / f)
    if not missing:
        return []
    t0 = time.perf_counter()
    for k, parts, chunk in _chunks(rows, seed, chunk_rows):
        text = chunk.with_columns(pl.col("timestamp").dt.strftime(TS_TEXT))
        for f in missing:
            path = root / f / f"part-{k:05d}.{EXT[f]}"
            if f == "parquet":
                chunk.write_parquet(path)
            elif f == "csv":
                text.write_csv(path)
            else:
                text.write_ndjson(path)
        log(f"generated part {k + 1}/{parts} ({', '.join(missing)}) in {time.perf_counter() - t0:.0f}s")
    for f in missing:
        (root / f / ".complete").write_text(json.dumps({"rows": rows, "seed": seed, "parts": math.ceil(rows / chunk_rows)}))
    return missing


FORM_SLUG = {"Z": "z", "+00:00": "colon", "+0000": "hhmm", "no zone": "naive", "epoch ms": "epochms"}


def form_specs(formats: list[str], forms: list[str], variants: bool) -> list[tuple[str, str, str]]:
    """(format, form, variant) of every text data set beyond the plain `Z` one."""
    specs = [(f, form, "") for f in formats if f != "parquet" for form in forms if form != "Z"]
    return specs + [v for v in VARIANTS if variants and v[0] in formats and v[1] in forms]


def spec_dir(root: Path, spec: tuple[str, str, str]) -> Path:
    fmt, form, variant = spec
    if form == "Z" and not variant:
        return root / fmt
    return root / f"{fmt}-{FORM_SLUG[form]}{'-' + variant if variant else ''}"


def _shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    import random
    return frame.select(random.Random(seed).sample(frame.columns, len(frame.columns)))


def generate_forms(root: Path, rows: int, seed: int, specs: list[tuple[str, str, str]], chunk_rows: int) -> list[Path]:
    """The text data sets of `specs` that are missing (see generate): the same rows as the plain
    ones, timestamps in another form, columns reordered or parts gzipped. Returns those written."""
    import gzip
    import io
    missing = _emptied([sp for sp in specs if not (spec_dir(root, sp) / ".complete").exists()],
                       lambda sp: spec_dir(root, sp))
    if not missing:
        return []
    t0 = time.perf_counter()
    for k, parts, chunk in _chunks(rows, seed, chunk_rows):
        for sp in missing:
            fmt, form, variant = sp
            text = chunk.with_columns(FORMS[form].alias("timestamp"))
            if variant == "shuffled":
                text = _shuffled(text, seed)
            path = spec_dir(root, sp) / f"part-{k:05d}.{EXT[fmt]}"
            if variant == "gzip":
                buf = io.BytesIO()
                text.write_csv(buf) if fmt == "csv" else text.write_ndjson(buf)
                Path(f"{path}.gz").write_bytes(gzip.compress(buf.getvalue(), compresslevel=6, mtime=0))
            else:
                text.write_csv(path) if fmt == "csv" else text.write_ndjson(path)
            if variant == "malformed" and k == parts - 1:
                with path.open("a") as f:
                    f.write(_malformed_line(fmt, text))
        log(f"generated part {k + 1}/{parts} of {len(missing)} timestamp-form data sets in {time.perf_counter() - t0:.0f}s")
    for sp in missing:
        (spec_dir(root, sp) / ".complete").write_text(json.dumps({"rows": rows, "seed": seed, "parts": math.ceil(rows / chunk_rows)}))
    return [spec_dir(root, sp) for sp in missing]


def _malformed_line(fmt: str, text: pl.DataFrame) -> str:
    """One bad record for the "malformed" variant: a JSON line cut short (`tru` for `true`), or a
    CSV row (the part's first, under another id) whose input count is `1.5`."""
    if fmt == "jsonl":
        return f'{{"request_id":"{MALFORMED_ID}","timestamp":"2026-09-01T00:00:00.000Z","input_tokens": tru}}\n'
    row = text.head(1).cast(pl.String).with_columns(pl.lit(MALFORMED_ID).alias("request_id"),
                                                    pl.lit("1.5").alias("input_tokens"))
    return row.write_csv(include_header=False)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# Baselines (run in a child process: `bench.py --job KIND --format F --dir D`)
# ---------------------------------------------------------------------------------------------

TEXT_SCHEMA = {"request_id": pl.String, "timestamp": pl.String, "model": pl.String, "workspace": pl.String,
               "api_key": pl.String, "service_tier": pl.String, **{c: pl.Int64 for c in TOKEN_COLUMNS}}


def scan(fmt: str, directory: str) -> pl.LazyFrame:
    """A typed scan, as a user who knows the schema would write it (the product must instead read
    text formats as strings and validate every field)."""
    pattern = str(Path(directory) / f"*.{EXT[fmt]}")
    if fmt == "parquet":
        return pl.scan_parquet(pattern)
    lf = pl.scan_csv(pattern, schema=TEXT_SCHEMA) if fmt == "csv" else pl.scan_ndjson(pattern, schema=TEXT_SCHEMA)
    return lf.with_columns(pl.col("timestamp").str.to_datetime(TS_TEXT, time_zone="UTC", time_unit="us"))


def _cost(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Join the Float64 price table and price each row (or pre-summed group) of token counts."""
    tier = pl.when(pl.col("service_tier") == "batch").then(BATCH_DISCOUNT).otherwise(1.0)
    usd = pl.sum_horizontal(pl.col(c) * pl.col(f"usd_mtok_{c}") for c in TOKEN_COLUMNS) * tier / 1e6
    return lf.join(float_price_table().lazy(), on="model", how="left").with_columns(usd.alias("cost"))


def job_float(fmt: str, directory: str) -> pl.DataFrame:
    lf = scan(fmt, directory).with_columns(pl.col("timestamp").dt.date().alias("day"))
    return (_cost(lf).group_by("day", "model")
            .agg(pl.len().alias("requests"), pl.col("cost").sum(), *[pl.col(c).sum() for c in TOKEN_COLUMNS])
            .collect(engine="streaming"))


def job_aggregate_first(fmt: str, directory: str) -> pl.DataFrame:
    # Sum the counts per (day, model, tier) first: the join and the arithmetic then touch a few
    # thousand rows instead of millions (the same idea the product uses, with exact Decimals).
    sums = (scan(fmt, directory).group_by(pl.col("timestamp").dt.date().alias("day"), "model", "service_tier")
            .agg(pl.len().alias("requests"), *[pl.col(c).sum() for c in TOKEN_COLUMNS]))
    return (_cost(sums).group_by("day", "model")
            .agg(pl.col("requests").sum(), pl.col("cost").sum(), *[pl.col(c).sum() for c in TOKEN_COLUMNS])
            .collect(engine="streaming"))


def job_floor(fmt: str, directory: str) -> pl.DataFrame:
    return (scan(fmt, directory).select(pl.len().alias("requests"), pl.col("input_tokens").sum(),
                                        pl.col("output_tokens").sum())
            .collect(engine="streaming"))


DUCKDB_TYPES = {"request_id": "VARCHAR", "timestamp": "VARCHAR", "model": "VARCHAR", "workspace": "VARCHAR",
                "api_key": "VARCHAR", "service_tier": "VARCHAR", **{c: "BIGINT" for c in TOKEN_COLUMNS}}


def duckdb_query(fmt: str, directory: str, form: str, dedupe: bool) -> str:
    """What a competent DuckDB user would write for the report: typed read of every part (gzip
    read as such), the form's timestamp cast, one row per request id (the one with the most tokens,
    as a streamed response logged early and again complete), a Float64 price join, day x model."""
    files = [str(p) for p in sorted(Path(directory).glob(f"part-*.{EXT[fmt]}*"))]
    types = dict(DUCKDB_TYPES, timestamp="BIGINT" if form == "epoch ms" else "VARCHAR")
    typed = "{" + ", ".join(f"'{c}': '{t}'" for c, t in types.items()) + "}"
    if fmt == "csv":  # (named types: the columns may come in any order)
        read = f"read_csv({files!r}, header = true, types = {typed})"
    else:
        read = f"read_json({files!r}, format = 'newline_delimited', columns = {typed})"
    ts = "make_timestamp(timestamp * 1000)" if form == "epoch ms" else "timestamp::TIMESTAMPTZ"
    tokens = " + ".join(TOKEN_COLUMNS)
    rows = f"SELECT * REPLACE ({ts} AS timestamp) FROM {read}"
    if dedupe:
        rows += f" QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY {tokens} DESC) = 1"
    prices = ", ".join(f"('{r[0]}', {', '.join(repr(float(x)) for x in r[1:])})" for r in float_price_table().rows())
    usd = " + ".join(f"{c} * usd_mtok_{c}" for c in TOKEN_COLUMNS)
    return f"""
        WITH prices(model, {', '.join(f'usd_mtok_{c}' for c in TOKEN_COLUMNS)}) AS (VALUES {prices}),
        requests AS ({rows})
        SELECT timestamp::DATE AS day, r.model, count(*) AS requests,
               sum(({usd}) * CASE WHEN service_tier = 'batch' THEN {BATCH_DISCOUNT} ELSE 1.0 END / 1e6) AS cost
        FROM requests r LEFT JOIN prices p ON r.model = p.model
        GROUP BY ALL"""


def job_duckdb(fmt: str, directory: str, form: str = "Z", dedupe: bool = True) -> pl.DataFrame:
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # days in UTC, as llm-cost's; a form without a zone is UTC
    rows = con.execute(duckdb_query(fmt, directory, form, dedupe)).fetchall()
    return pl.DataFrame(rows, schema=["day", "model", "requests", "cost"], orient="row")


JOBS = {"float": job_float, "aggregate-first": job_aggregate_first, "floor": job_floor,
        "duckdb": job_duckdb, "duckdb-no-dedupe": lambda fmt, d, form: job_duckdb(fmt, d, form, dedupe=False)}


def run_job(kind: str, fmt: str, directory: str, form: str = "Z") -> None:
    out = JOBS[kind](fmt, directory, form) if kind.startswith("duckdb") else JOBS[kind](fmt, directory)
    summary = {"groups": out.height, "requests": int(out["requests"].sum())}
    if "cost" in out.columns:
        summary["cost"] = float(out["cost"].sum())
    print(json.dumps(summary))


# ---------------------------------------------------------------------------------------------
# Measuring a command in a child process
# ---------------------------------------------------------------------------------------------

try:
    import psutil
except ImportError:  # only the fallback RSS measurement and the memory guard need it
    psutil = None


def _gnu_time() -> str | None:
    """/usr/bin/time if it is GNU time (BSD time has no -v)."""
    if not os.path.exists("/usr/bin/time"):
        return None
    probe = subprocess.run(["/usr/bin/time", "-v", "true"], capture_output=True, text=True)
    return "/usr/bin/time" if "Maximum resident set size" in probe.stderr else None


GNU_TIME = _gnu_time()


@dataclass
class Measurement:
    fmt: str
    what: str
    command: list[str]
    wall_s: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # user + system CPU time of the command
    other_cpu_s: list[float] = field(default_factory=list)  # CPU time other processes used meanwhile
    code: list[str | None] = field(default_factory=list)  # the analyzer's version each run measured
    returncode: int | None = None
    failure: str | None = None  # timeout, memory cap, or the command's last stderr line
    stderr_tail: str = ""
    result: dict = field(default_factory=dict)  # what the command reported (rows, cost)
    rows: int | None = None  # input rows, for rows/s
    report: str | None = None  # where an `llm-cost report` command writes its JSON
    json_stdout: bool = False  # the command prints its result as one JSON line (the baselines do)

    @property
    def wall(self) -> float | None:
        return statistics.median(self.wall_s) if self.wall_s and not self.failure else None

    @property
    def rss(self) -> float | None:
        return max(self.peak_rss_mib) if self.peak_rss_mib else None


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has spent busy (all processes), if psutil can tell."""
    if psutil is None:
        return None
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def run_measured(m: Measurement, cwd: str, timeout: float, max_rss_mib: float, env: dict) -> None:
    """Run m.command once: wall time from here (interpreter start-up included, as a user sees it),
    peak RSS from GNU time, else from polling the process tree with psutil. The psutil poller also
    stops a command that exceeds the timeout or the memory cap, so one runaway cannot take the
    machine down with it."""
    rss_file = Path(cwd) / "time-v.txt"
    rss_file.unlink(missing_ok=True)  # never read a previous command's numbers
    cmd = [GNU_TIME, "-v", "-o", str(rss_file), *m.command] if GNU_TIME else list(m.command)
    sampled = [0]
    stop = threading.Event()
    m.code.append(code_version())
    # Other work on the machine inflates wall time but hardly CPU time: record both, and how much
    # CPU everything else (other than the command and this process) used meanwhile.
    cpu0, mine0, busy0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time(), _busy_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # its own process group, so it can be stopped as one

    def guard() -> None:
        ps = psutil.Process(proc.pid) if psutil else None
        while not stop.wait(0.1):
            if ps is not None:
                try:
                    sampled[0] = max(sampled[0], _tree_rss(ps))
                except psutil.Error:
                    pass
            if time.perf_counter() - t0 > timeout:
                m.failure = f"timeout after {timeout:.0f}s"
            elif sampled[0] > max_rss_mib * 2**20:
                m.failure = f"stopped: RSS over {max_rss_mib:.0f} MiB"
            else:
                continue
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:  # it ended meanwhile
                pass
            return

    watcher = threading.Thread(target=guard, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    m.returncode = proc.returncode
    m.stderr_tail = "\n".join(err.decode(errors="replace").strip().splitlines()[-5:])
    if proc.returncode != 0 and not m.failure:
        m.failure = f"exit {proc.returncode}: " + (m.stderr_tail.splitlines()[-1] if m.stderr_tail else "")
    cpu1, mine1, busy1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time(), _busy_cpu_s()
    m.wall_s.append(wall)
    m.cpu_s.append(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime)
    if busy0 is not None and busy1 is not None:
        m.other_cpu_s.append(max(0.0, busy1 - busy0 - m.cpu_s[-1] - (mine1 - mine0)))
    rss = None
    if GNU_TIME and rss_file.exists():
        for line in rss_file.read_text().splitlines():
            if "Maximum resident set size" in line:
                rss = int(line.rsplit(":", 1)[1]) / 1024  # KiB -> MiB
    if rss is None and sampled[0]:
        rss = sampled[0] / 2**20
    if rss is not None:
        m.peak_rss_mib.append(rss)
    if m.json_stdout and not m.failure:
        m.result = json.loads(out.decode().strip().splitlines()[-1])


def code_version() -> str | None:
    """The commit of the code under test, `+dirty` if analyzer/ has uncommitted changes: each run
    loads the code afresh, so a table is only comparable within one version."""
    repo = BENCH_DIR.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "analyzer", "pyproject.toml"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def llm_cost() -> list[str]:
    exe = Path(sys.executable).parent / "llm-cost"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "analyzer"]


def report_measurement(fmt: str, what: str, source: Path, workdir: Path, extra: list[str], rows: int) -> Measurement:
    out = workdir / f"report-{fmt}-{len(extra)}.json"
    cmd = [*llm_cost(), "report", str(source), "--by", "day,model", "--format", "json", "-o", str(out),
           "--quarantine", str(workdir / "quarantine.jsonl"), *extra]
    return Measurement(fmt, what, cmd, rows=rows, report=str(out))


def read_report(m: Measurement) -> None:
    """Keep what the product's JSON report says (total cost, accounting) to compare with the baselines."""
    if m.failure or not m.report or not os.path.exists(m.report):
        return
    rep = json.loads(Path(m.report).read_text())
    acc = rep["accounting"]
    m.result = {"groups": len(rep["rows"]), "cost": float(rep["totals"]["cost"]), "cost_exact": rep["totals"]["cost"],
                **{k: acc[k] for k in ("rows_read", "priced", "unpriced", "duplicates", "quarantined")},
                "unpriced_models": acc["unpriced_models"]}
    os.unlink(m.report)


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a and b else "-"


def table(measurements: list[Measurement]) -> str:
    floors = {m.fmt: m for m in measurements if m.what == "floor: scan+sum"}
    floats = {m.fmt: m for m in measurements if m.what == "float baseline (row-wise)"}

    def ratio(m: Measurement, base: Measurement | None) -> str:
        # Only like for like: the same rows in the same format.
        return _ratio(m.wall, base.wall) if base is not None and base.rows == m.rows else "-"

    head = (f"{'format':<24} {'what':<34} {'wall s':>8} {'CPU s':>8} {'rows/s':>11} {'peak RSS MiB':>13} "
            f"{'/floor':>7} {'/float':>7}")
    lines = [head, "-" * len(head)]
    for m in measurements:
        wall = f"{m.wall:.2f}" if m.wall is not None else "FAILED"
        rate = f"{m.rows / m.wall:,.0f}" if m.wall and m.rows else "-"
        rss = f"{m.rss:,.0f}" if m.rss is not None else "-"
        cpu = f"{statistics.median(m.cpu_s):.2f}" if m.cpu_s else "-"
        lines.append(f"{m.fmt:<24} {m.what:<34} {wall:>8} {cpu:>8} {rate:>11} {rss:>13} "
                     f"{ratio(m, floors.get(m.fmt)):>7} {ratio(m, floats.get(m.fmt)):>7}")
        if m.failure:
            lines.append(f"{'':<24}   ! {m.failure}")
    return "\n".join(lines)


def cost_checks(measurements: list[Measurement]) -> list[str]:
    """Sanity: the two float baselines agree; the product's no-dedupe total is near them (it differs
    by what the baselines ignore: long-context tiers, price periods)."""
    notes = []
    by = {(m.fmt, m.what): m.result for m in measurements if not m.failure}
    for fmt in FORMATS:
        exact = by.get((fmt, "llm-cost report --no-dedupe"), {}).get("cost")
        row_wise = by.get((fmt, "float baseline (row-wise)"), {}).get("cost")
        agg = by.get((fmt, "float baseline (aggregate-first)"), {}).get("cost")
        dedup = by.get((fmt, "llm-cost report"), {})
        if row_wise and agg:
            notes.append(f"{fmt}: float baselines ${row_wise:,.2f} vs ${agg:,.2f} (rel. diff {abs(row_wise - agg) / row_wise:.1e})")
        if exact and row_wise:
            notes.append(f"{fmt}: exact --no-dedupe ${exact:,.2f}, {100 * (exact - row_wise) / row_wise:+.2f}% vs float baseline")
        kept = by.get((fmt, "DuckDB SQL (dedupe)"), {}).get("requests")
        if kept is not None and dedup.get("rows_read") is not None:
            notes.append(f"{fmt}: DuckDB keeps {kept:,} rows of {dedup['rows_read']:,}; llm-cost counts "
                         f"{dedup['rows_read'] - dedup['duplicates']:,} (rows read - duplicates)")
        duck = by.get((fmt, "DuckDB SQL --no-dedupe"), {}).get("cost")
        if duck and row_wise:
            notes.append(f"{fmt}: DuckDB Float64 ${duck:,.2f} (rel. diff {abs(duck - row_wise) / row_wise:.1e} vs Polars float)")
        if dedup.get("cost"):
            notes.append(f"{fmt}: exact with dedupe ${dedup['cost']:,.2f}: rows_read {dedup['rows_read']:,}, "
                         f"duplicates {dedup['duplicates']:,}, unpriced {dedup['unpriced']:,}, quarantined {dedup['quarantined']:,}")
    # Every timestamp form, column order and compression gives the same exact report.
    exact = {(m.fmt, m.what): m.result.get("cost_exact") for m in measurements
             if not m.failure and m.what.startswith("llm-cost report") and m.rows != TINY_ROWS}
    for what in ("llm-cost report", "llm-cost report --no-dedupe"):
        totals = {label: cost for (label, w), cost in exact.items() if w == what and cost is not None}
        if len(totals) > 1:
            same = len(set(totals.values())) == 1
            notes.append(f"{what}: {len(totals)} data sets, " + (
                f"every one ${next(iter(totals.values()))} exactly" if same
                else "DIFFERENT totals: " + ", ".join(f"{k} ${v}" for k, v in totals.items())))
    return notes


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000, help="requests in the synthetic log (default 10,000,000)")
    p.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of parquet,csv,jsonl")
    p.add_argument("--repeat", type=int, default=1, help="runs of each command; the table shows the median wall time")
    p.add_argument("--keep-data", action="store_true",
                   help="keep the generated data in bench/data for later runs (default: delete what this run generated)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows per generated part file")
    p.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    p.add_argument("--forms", default=",".join(FORMS),
                   help=f"timestamp forms of the CSV and JSONL logs (default: all: {', '.join(FORMS)})")
    p.add_argument("--no-variants", dest="variants", action="store_false",
                   help="skip the data sets with reordered columns and gzip parts")
    p.add_argument("--no-duckdb", dest="duckdb", action="store_false", help="skip DuckDB")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a command is stopped")
    p.add_argument("--max-rss-mib", type=float, default=None,
                   help="stop a command whose RSS exceeds this (default: 75%% of RAM; needs psutil)")
    # Internal: run one baseline in this process (the parent measures it).
    p.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    p.add_argument("--format", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--form", default="Z", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    if bad := [f for f in args.forms if f not in FORMS]:
        p.error(f"--forms: unknown {', '.join(bad)} (use {', '.join(FORMS)})")
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if bad := [f for f in args.formats if f not in FORMATS]:
        p.error(f"--formats: unknown {', '.join(bad)} (use {', '.join(FORMATS)})")
    return args


def _label(fmt: str, form: str, variant: str) -> str:
    """A data set's name in the table: its format, then its timestamp form and variant if not plain."""
    if variant == "malformed":
        return f"{fmt} +1 malformed line"
    return fmt if (form, variant) == ("Z", "") else f"{fmt} {form}{', ' + variant if variant else ''}"


def _against_duckdb(fmt: str, form: str, variant: str, src: Path, workdir: Path, rows: int) -> list[Measurement]:
    me = [sys.executable, str(Path(__file__).resolve())]
    return [Measurement(_label(fmt, form, variant), what, [*me, "--job", job, "--format", fmt, "--dir", str(src),
                                                           "--form", form], rows=rows, json_stdout=True)
            for job, what in (("duckdb", "DuckDB SQL (dedupe)"), ("duckdb-no-dedupe", "DuckDB SQL --no-dedupe"))]


def plan(args: argparse.Namespace, data: Path, tiny: Path, workdir: Path) -> list[Measurement]:
    me = [sys.executable, str(Path(__file__).resolve())]
    todo = [Measurement("-", "llm-cost --help", [*llm_cost(), "--help"])]
    for fmt in args.formats:
        src = data / fmt
        todo += [
            report_measurement(fmt, "llm-cost report", src, workdir, [], args.rows),
            report_measurement(fmt, "llm-cost report --no-dedupe", src, workdir, ["--no-dedupe"], args.rows),
            *(_against_duckdb(fmt, "Z", "", src, workdir, args.rows) if args.duckdb and fmt != "parquet" else []),
            *[Measurement(fmt, what, [*me, "--job", job, "--format", fmt, "--dir", str(src)], rows=args.rows,
                          json_stdout=True)
              for job, what in (("float", "float baseline (row-wise)"),
                                ("aggregate-first", "float baseline (aggregate-first)"),
                                ("floor", "floor: scan+sum"))],
            report_measurement(fmt, f"llm-cost report, {TINY_ROWS:,} rows", tiny / fmt, workdir, [], TINY_ROWS),
        ]
    for spec in form_specs(args.formats, args.forms, args.variants):
        src, label = spec_dir(data, spec), _label(*spec)
        todo += [report_measurement(label, "llm-cost report", src, workdir, [], args.rows),
                 report_measurement(label, "llm-cost report --no-dedupe", src, workdir, ["--no-dedupe"], args.rows),
                 *(_against_duckdb(*spec, src, workdir, args.rows) if args.duckdb else [])]
    return todo


def malformed_ratios(measurements: list[Measurement]) -> str:
    """CPU seconds of each report on a data set with one malformed line beside the same report on the
    clean one: the cost of the robust pass (pipeline._with_retry) that one bad line triggers."""
    by = {(m.fmt, m.what): m for m in measurements if not m.failure and m.cpu_s}
    lines = []
    for fmt in FORMATS:
        for what in ("llm-cost report", "llm-cost report --no-dedupe"):
            bad, clean = by.get((_label(fmt, "Z", "malformed"), what)), by.get((fmt, what))
            if bad and clean:
                b, c = statistics.median(bad.cpu_s), statistics.median(clean.cpu_s)
                lines.append(f"{fmt:<6} {what:<28} clean {c:7.2f}   +1 malformed line {b:7.2f}   {b / c:5.1f}x")
    return "\n".join(lines)


def duckdb_ratios(measurements: list[Measurement]) -> str:
    """llm-cost / DuckDB on the same files, with dedupe and without, in wall and in CPU time."""
    by = {(m.fmt, m.what): m for m in measurements if not m.failure}
    head = (f"{'data set':<28} {'dedupe: llm-cost / DuckDB s':>28} {'ratio':>6} {'CPU ratio':>9}   "
            f"{'--no-dedupe: llm-cost / DuckDB s':>32} {'ratio':>6} {'CPU ratio':>9}")
    lines = [head, "-" * len(head)]
    for label in dict.fromkeys(m.fmt for m in measurements):
        cells = []
        for ours, theirs in (("llm-cost report", "DuckDB SQL (dedupe)"),
                             ("llm-cost report --no-dedupe", "DuckDB SQL --no-dedupe")):
            a, b = by.get((label, ours)), by.get((label, theirs))
            if a is None or b is None or not a.wall or not b.wall:
                cells.append(None)
                continue
            cpu = statistics.median(a.cpu_s) / statistics.median(b.cpu_s)
            cells.append((f"{a.wall:.2f} / {b.wall:.2f}", f"{a.wall / b.wall:.2f}x", f"{cpu:.2f}x"))
        if any(cells):
            d, n = (c or ("-", "-", "-") for c in cells)
            lines.append(f"{label:<28} {d[0]:>28} {d[1]:>6} {d[2]:>9}   {n[0]:>32} {n[1]:>6} {n[2]:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.job:
        run_job(args.job, args.format, args.dir, args.form)
        return 0

    data = dataset_dir(args.data_dir, args.rows, args.seed)
    tiny = dataset_dir(args.data_dir, TINY_ROWS, args.seed)
    t0 = time.perf_counter()
    generated = generate(data, args.rows, args.seed, args.formats, args.chunk_rows)
    generate(tiny, TINY_ROWS, args.seed, args.formats, args.chunk_rows)
    written = generate_forms(data, args.rows, args.seed, form_specs(args.formats, args.forms, args.variants),
                             args.chunk_rows)
    gen_s = time.perf_counter() - t0
    sizes = {f: dir_bytes(data / f) for f in args.formats}
    sizes.update({_label(*sp): dir_bytes(spec_dir(data, sp))
                  for sp in form_specs(args.formats, args.forms, args.variants)})
    log(f"data: {data} ({', '.join(f'{f} {b / 2**30:.2f} GiB' for f, b in sizes.items())}); "
        f"{'generated ' + ', '.join(generated) + f' in {gen_s:.0f}s' if generated else 'cached'}")

    # The package as an installed one runs it: compiled once. With PYTHONDONTWRITEBYTECODE set (as on
    # this VM) an editable install compiles every module of llm-cost on every run, 0.15-0.2 CPU s of
    # each command that no installed copy pays (and DuckDB's and Polars' own modules are compiled).
    compileall.compile_dir(str(BENCH_DIR.parent / "analyzer"), quiet=1)
    total_ram = psutil.virtual_memory().total if psutil else None
    max_rss = args.max_rss_mib or (0.75 * total_ram / 2**20 if total_ram else float("inf"))
    env = dict(os.environ)
    measurements: list[Measurement] = []
    try:
        with tempfile.TemporaryDirectory(prefix="llm-cost-bench-") as workdir:
            todo = plan(args, data, tiny, Path(workdir))
            for m in todo:
                for _ in range(args.repeat):
                    log(f"{m.fmt}: {m.what} ...")
                    run_measured(m, workdir, args.timeout, max_rss, env)
                    read_report(m)
                    if m.failure:
                        break
                log(f"{m.fmt}: {m.what}: {m.wall_s[-1]:.2f}s, {m.rss or 0:,.0f} MiB" + (f" ({m.failure})" if m.failure else ""))
                measurements.append(m)
    finally:
        if not args.keep_data:
            for d in [*(data / f for f in generated), *written]:
                shutil.rmtree(d, ignore_errors=True)

    versions = sorted({v or "unknown" for m in measurements for v in m.code})
    print(f"\nllm-cost benchmark: {args.rows:,} requests; code {', '.join(versions)}; {os.cpu_count()} CPUs, "
          f"{(total_ram or 0) / 2**30:.0f} GiB RAM; Polars {pl.__version__}; warm page cache; "
          f"median of {args.repeat} run(s); wall time includes interpreter start-up\n")
    print(table(measurements))
    if len(versions) > 1:
        print("\nnote: the code changed during the run; see `code` per measurement in the JSON results")
    busy = [(m, x / w) for m in measurements for x, w in zip(m.other_cpu_s, m.wall_s, strict=False) if w > 1]
    if busy and max(share for _, share in busy) > 0.2:
        worst, share = max(busy, key=lambda b: b[1])
        print(f"\nnote: other processes kept {share:.1f} of {os.cpu_count()} CPUs busy during {worst.fmt} "
              f"'{worst.what}' (see other_cpu_s in the JSON): their wall times are inflated; CPU times much less")
    cliff = malformed_ratios(measurements)
    if cliff:
        print("\nOne malformed line (the whole run read robustly) beside the clean file, CPU s:\n" + cliff)
    ratios = duckdb_ratios(measurements)
    if len(ratios.splitlines()) > 2:
        print("\nllm-cost (exact Decimal report) / DuckDB (Float64 SQL), the same files; wall time, and CPU time "
              "(steadier on a shared machine):\n" + ratios)
    notes = cost_checks(measurements)
    if notes:
        print("\n" + "\n".join(notes))

    results = {
        "rows": args.rows, "seed": args.seed, "formats": args.formats, "repeat": args.repeat,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "ram_gib": round((total_ram or 0) / 2**30, 1),
                    "platform": platform.platform(), "python": platform.python_version(), "polars": pl.__version__},
        "code": versions,
        "rss_method": "GNU time -v" if GNU_TIME else ("psutil polling" if psutil else None),
        "data_bytes": sizes,
        "measurements": [{**asdict(m), "median_wall_s": m.wall, "max_peak_rss_mib": m.rss,
                          "rows_per_s": (m.rows / m.wall) if m.wall and m.rows else None} for m in measurements],
    }
    out = BENCH_DIR / f"results-{args.rows}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out}")
    return 1 if any(m.failure for m in measurements) else 0


if __name__ == "__main__":
    sys.exit(main())
