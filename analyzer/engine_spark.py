"""`--engine spark`: the same report on Apache Spark, for logs that outgrow one machine (DESIGN §12).

The work splits at the engine seam:
- reading, normalizing and tagging run inside Spark, one task per file scan: the driver detects each
  file's format (it reads only the files' first bytes) and builds each scan's Polars plan; the plan
  travels to an executor serialized, and `mapInArrow` runs it there with the very dialect and tagging
  expressions of the Polars engine, handing Spark Arrow batches of slim rows (group keys, counts,
  request-id hashes);
- Spark removes duplicate request ids across the cluster (one window, dedupe.losers' keep rule) and
  sums the counts by rate keys and report keys (as DECIMAL(38,0): exact, never wrapping);
- the driver receives only the small aggregate, and from there on runs the Polars engine's own code:
  the same accounting, exact Decimal pricing, quarantine file and report. So both engines give
  identical reports. (`price` keeps the losing copies' keys on the executors too: see _write_losers.)

pyspark is an optional extra (`pip install 'llm-cost[spark]'`); `--master URL` or SPARK_REMOTE (Spark
Connect) picks a cluster, else local[*]. `python -m analyzer.spark_job` is the spark-submit entry point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import warnings

import polars as pl
import pyarrow as pa

from . import dedupe, labels, pipeline, pricebook, tagging
from .errors import OptionError, SourceError
from .pipeline import (
    REPEAT,
    ROWS,
    STATUS,
    Options,
    Report,
)
from .schema import COUNT_COLUMNS
from .sources import one_reading, process_gone, process_started, read_marker

# Partitions of Spark's own shuffle: the aggregate is small (thousands of groups), so few suffice
# unless the user says otherwise (--conf spark.sql.shuffle.partitions=N through spark-submit).
SHUFFLE_PARTITIONS = "8"


def session(master: str | None = None):
    """The SparkSession: an existing one (spark-submit, Databricks), Spark Connect when SPARK_REMOTE
    is set, else a local one on `master` (default local[*])."""
    # (pyspark 4.x warns on every mapInArrow that pandas 3 is newer than it knows; it uses none of pandas there)
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise OptionError("--engine spark needs pyspark: pip install 'llm-cost[spark]' (and Java 17 or later)") \
            from None
    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    builder = SparkSession.builder.appName("llm-cost")
    if master:
        builder = builder.master(master)
    elif not os.environ.get("SPARK_REMOTE"):
        builder = builder.master("local[*]")
    if not os.environ.get("SPARK_REMOTE"):
        # The executors run the Python this process runs (local mode), polars and all.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.shuffle.partitions", SHUFFLE_PARTITIONS)
                   .config("spark.sql.execution.arrow.useLargeVarTypes", "true"))
    spark = builder.getOrCreate()
    if not os.environ.get("SPARK_REMOTE"):  # (the report is the output; Spark's INFO/WARN lines are noise)
        spark.sparkContext.setLogLevel("OFF")  # (a fast pass that fails on a bad record is retried: not an error to show)
    return spark


def analyze(paths, by=("model",), opts: Options | None = None, book: pricebook.PriceBook | None = None,
            master: str | None = None) -> Report:
    """`pipeline.analyze` on Spark: the same Report."""
    opts = opts or Options()
    pipeline.check_options(opts)
    book = book or pricebook.load_price_book(opts.prices)
    spark = session(master)
    with one_reading(native=True, shipped=True):
        return _with_retry(lambda robust: _analyze(spark, paths, list(by), opts, book, robust))


def analyze_groups(paths, by=(), opts: Options | None = None, book: pricebook.PriceBook | None = None,
                   all_dimensions: bool = False, master: str | None = None,
                   scenario: pl.DataFrame | None = None) -> pipeline.Groups:
    """`pipeline.analyze_groups` on Spark (what `audit` and what-if start from)."""
    opts = opts or Options()
    pipeline.check_options(opts)
    book = book or pricebook.load_price_book(opts.prices)
    spark = session(master)
    with one_reading(native=True, shipped=True):
        return _with_retry(lambda robust: _analyze(spark, paths, list(by), opts, book, robust, True, all_dimensions,
                                                   scenario))


def _with_retry(run):
    """As pipeline._with_retry: a fast pass, and when a native reader failed on a malformed record, a
    robust one. On Spark the reader's error arrives wrapped in the executor's exception: matched by name."""
    try:
        return run(False)
    except Exception as e:
        if not _reader_failure(e):
            raise _one_line(e) from None
    from .sources import read_natively

    read_natively(False)
    try:
        return run(True)
    except Exception as e:
        raise _one_line(e) from None


def _one_line(e: Exception) -> Exception:
    """Our own errors as they are; a Spark job's failure (a file gone, an executor lost) as one line,
    the executor's last Python error line when there is one, not a JVM stack trace."""
    if not type(e).__module__.startswith(("pyspark", "py4j")):
        return e
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith("at ")]
    said = next((ln for ln in reversed(lines) if "Error:" in ln or "Exception:" in ln), lines[0] if lines else "")
    return SourceError(f"the Spark job failed: {said[:300]}")


def _reader_failure(e: BaseException) -> bool:
    if isinstance(e, pipeline.FAST_PATH_FAILURES):
        return True
    text = str(e)
    return type(e).__module__.startswith(("pyspark", "py4j")) and any(
        n in text for n in ("polars.exceptions.ComputeError", "polars.exceptions.ShapeError", "ComputeError:",
                            "ShapeError:"))


# --- the rows Spark aggregates -------------------------------------------------------------------

def _plans(loaded: pipeline.Loaded, opts: Options, book, extra: list[pl.Expr], columns: list[str],
           bad: pl.DataFrame | None = None, scenario: pl.DataFrame | None = None
           ) -> tuple[list[bytes], dict[str, pl.DataType]]:
    """Each scan's plan, ending in the slim rows Spark needs, all with one schema, serialized. With
    `bad` (pipeline.unpriceable_keys), the rows carry pipeline.BLAME, found in the scan's own plan: a
    record's rows come from one line, never split across scans."""
    def slim(part: pl.LazyFrame) -> pl.LazyFrame:
        lf = pipeline.with_status(part, opts)
        if scenario is not None:  # (pipeline.with_scenario_blame, in the scan's own plan)
            lf = pipeline.with_blame(lf, pipeline.scenario_records(lf, scenario, book, loaded).rename(
                {pipeline.BLAME: pipeline.SCENARIO_BLAME}))
        if bad is not None:
            lf = _blamed(lf, bad, book, loaded)
        lf = lf.with_columns(*tagging.row_tags(book), *extra)
        if "request_id" in lf.collect_schema().names() and dedupe.H1 not in lf.collect_schema().names():
            lf = lf.with_columns(dedupe.hashes())
        if RECORD_TOKENS in columns:
            lf = _records(lf)
        return lf

    parts = [slim(p) for p in loaded.parts]
    schemas = [p.collect_schema() for p in parts]
    target: dict[str, pl.DataType] = {}
    for c in columns:
        types = [s[c] for s in schemas if c in s]
        if c in (dedupe.H1, dedupe.H2, dedupe.P1, dedupe.P2):
            target[c] = pl.UInt64
        elif types:
            # (one supertype for the column across scans, as a diagonal concat would give)
            target[c] = pl.concat([pl.DataFrame(schema={c: t}) for t in types], how="diagonal_relaxed").schema[c]
    plans = []
    for p, s in zip(parts, schemas):
        rows = p.select([(pl.col(c).cast(t) if c in s else pl.lit(None, t).alias(c)) for c, t in target.items()])
        if FIT in columns:
            # Whether a row's labels will pass their checks (see _ranked), on the rows as the run's
            # groups hold them: a label column another scan carries is null in this one's rows.
            rows = rows.with_columns(labels.fit(list(target), loaded.constant).alias(FIT))
        plans.append(rows.serialize())
    if FIT in columns:
        target[FIT] = pl.Boolean
    return plans, target


def _to_spark_type(t: pl.DataType):
    """The Spark type a Polars column travels as (and the Polars type it is cast back from)."""
    from pyspark.sql import types as T

    if t == pl.Boolean:
        return T.BooleanType()
    if t.is_integer():  # unsigned hashes travel as their signed bit pattern (Spark has no unsigned type)
        return T.LongType()
    if isinstance(t, pl.Decimal):
        return T.DecimalType(t.precision or 38, t.scale or 0)
    return T.StringType()  # strings, and dates/times (as ISO text, parsed back exactly)


def _to_wire(c: str, t: pl.DataType) -> pl.Expr:
    if t == pl.UInt64:
        return pl.col(c).reinterpret(signed=True)
    if t == pl.Boolean or isinstance(t, pl.Decimal):
        return pl.col(c)
    if t.is_integer():
        return pl.col(c).cast(pl.Int64)
    if t == pl.String:
        return pl.col(c)
    return pl.col(c).cast(pl.String)


def _from_wire(c: str, t: pl.DataType) -> pl.Expr:
    if t == pl.UInt64:
        return pl.col(c).reinterpret(signed=False)
    if isinstance(t, pl.Datetime):
        return pl.col(c).str.to_datetime(time_unit=t.time_unit, time_zone=t.time_zone).cast(t)
    if t == pl.Date:
        return pl.col(c).str.to_date()
    return pl.col(c).cast(t)


def _rows(spark, plans: list[bytes], target: dict[str, pl.DataType]):
    """A Spark DataFrame of every scan's slim rows: one task per scan, the plan run by Polars there."""
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField(c, _to_spark_type(t), True) for c, t in target.items()])
    arrow_schema = pa.schema([pa.field(c, _arrow_type(t)) for c, t in target.items()])
    wire = [_to_wire(c, t) for c, t in target.items()]

    def run(batches):
        import io

        import polars as pl
        import pyarrow as pa

        for batch in batches:
            for i in batch.column(0).to_pylist():
                lf = pl.LazyFrame.deserialize(io.BytesIO(plans[i]))
                for df in lf.select(wire).collect_batches(engine="streaming"):
                    yield from pa.Table.from_batches(df.to_arrow().to_batches()).cast(arrow_schema).to_batches()

    scans = spark.createDataFrame([(i,) for i in range(len(plans))], "scan int").repartition(max(1, len(plans)), "scan")
    return scans.mapInArrow(run, schema)


def _arrow_type(t: pl.DataType) -> pa.DataType:
    if t == pl.Boolean:
        return pa.bool_()
    if t.is_integer():
        return pa.int64()
    if isinstance(t, pl.Decimal):
        return pa.decimal128(t.precision or 38, t.scale or 0)
    return pa.large_string()


def _collect(df, target: dict[str, pl.DataType]) -> pl.DataFrame:
    """A (small) Spark result on the driver, as Polars with the engine's own types."""
    table = df.toArrow()
    out = pl.from_arrow(table)
    return out.with_columns([_from_wire(c, target[c]) for c in out.columns if c in target])


# --- the aggregate -------------------------------------------------------------------------------

def _sums(rows, group: list[str], loaded: pipeline.Loaded, target) -> pl.DataFrame:
    """pipeline._GroupSums on Spark: counts summed as DECIMAL(38,0) (exact; 2^63 overflow is then
    refused by the Polars engine's own check), the same constants for what no source carries."""
    from pyspark.sql import functions as F

    g = pipeline._GroupSums(loaded)
    wide = "decimal(38,0)"
    aggs = [(F.sum("_rec") if "_rec" in loaded.bookkeeping else F.count(F.lit(1))).alias(ROWS)]
    aggs += [F.coalesce(F.sum(F.col(c).cast(wide)), F.lit(0).cast(wide)).alias(c) for c in g.summed]
    if g.reported:  # Polars sums no value to 0, Spark to null
        aggs += [F.coalesce(F.sum("reported_cost"), F.lit(0)).cast("decimal(38,12)").alias("reported_cost"),
                 F.count("reported_cost").alias("_reported_rows")]
    out = _collect(rows.groupBy(*group).agg(*aggs), {c: target[c] for c in group})
    out = out.with_columns([pl.col(c).cast(pl.Int128) for c in g.summed])
    if out.height == 0:
        out = pl.DataFrame(schema={**{c: target[c] for c in group}, ROWS: pl.Int64,
                                   **{c: pl.Int128 for c in g.summed},
                                   **({"reported_cost": target["reported_cost"], "_reported_rows": pl.Int64}
                                      if g.reported else {})})
    if g.reported:
        out = out.with_columns(pl.col("reported_cost").cast(target["reported_cost"]))
    out = pipeline._exact_counts(out, g.summed, pl.col("_ok"))
    return out.with_columns(
        *([] if "requests" in g.summed else [pl.col(ROWS).alias("requests")]),
        *[pl.lit(0, pl.Int64).alias(c) for c in COUNT_COLUMNS if c not in g.summed],
        *([] if g.reported else [pl.lit(None, pipeline.MONEY).alias("reported_cost"),
                                 pl.lit(0, pl.Int64).alias("_reported_rows")]),
    )


FIT = "_fit"  # a row's labels pass their checks (labels.fit): computed by the scans' plans, for _ranked
RECORD_TOKENS = "_rtok"  # the tokens of a row's record (all its rows): for _ranked


def _records(lf: pl.LazyFrame) -> pl.LazyFrame:
    """A scan's rows with their record's id (dedupe.P1, P2: dedupe.parents) and tokens (RECORD_TOKENS),
    so that copies compete as records, as dedupe.losers has them. In the scan's own plan: a record's
    rows are consecutive and come from one line, never split across scans (linear scans, as
    mapped.one_verdict_per_record's)."""
    _, p1, p2 = dedupe.parents(lf)
    names = lf.collect_schema().names()
    tokens = pl.sum_horizontal([c for c in COUNT_COLUMNS if c in names] or [pl.lit(0, pl.Int64)]).cast(pl.Int64)
    if "_rec" not in names:  # (a scan of a format of one row per record)
        return lf.with_columns(p1.alias(dedupe.P1), p2.alias(dedupe.P2), tokens.alias(RECORD_TOKENS))
    first, last = pl.col("_rec") != 0, pl.col("_rec").shift(-1, fill_value=1) != 0
    seen = tokens.cum_sum()
    before = pl.when(first).then(seen - tokens).forward_fill()
    through = pl.when(last).then(seen).backward_fill()
    return lf.with_columns(p1.alias(dedupe.P1), p2.alias(dedupe.P2), (through - before).alias(RECORD_TOKENS))


def _ranked(rows, loaded: pipeline.Loaded, opts: Options, target: dict):
    """The rows with `_repeat`: null, or for a copy that loses to another copy of its request, whether
    it is a repeat (its format writes records several times) or a duplicate. Found on the cluster by
    one window over the request ids, with dedupe.losers' rule: only valid rows compete (a broken or
    not-billable copy never displaces a good one), the lowest `_rank` wins, then the most tokens,
    then the first file and line. (`pipeline._candidates`: formats that repeat records always; the
    rest unless --no-dedupe.) None when the run removes no duplicates."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not loaded.has_ids or not (opts.dedupe or loaded.repeat_files) or dedupe.H1 not in target:
        return None
    # (a copy whose labels will quarantine it, once its group's are checked on the driver, does not
    # compete either: pipeline._competing; the executors' Polars plans computed FIT)
    valid = F.col("_ok") & (F.col("_nb").isNull() if "_nb" in loaded.bookkeeping else F.lit(True)) & F.col(FIT)
    scope = F.lit(True) if opts.dedupe else F.col("_file").isin(list(loaded.repeat_files))
    # Copies of a record of several rows (`_rec`) compete whole, under its first row's id, with all its
    # rows' tokens, and lose whole (see dedupe.losers).
    records = RECORD_TOKENS in target
    h1, h2 = (dedupe.P1, dedupe.P2) if records else (dedupe.H1, dedupe.H2)
    competes = (valid & scope & F.col(h1).isNotNull()).alias("_competes")
    # (dedupe.row_key; a wide integer: the sum of a row's counts as Polars' sum_horizontal gives it)
    key = (F.col("_file").cast("long") * F.lit(1 << 40) + F.col("source_row").cast("long")).alias(dedupe.KEY)
    counts = [F.coalesce(F.col(c).cast("long"), F.lit(0)) for c in COUNT_COLUMNS if c in target]
    tokens = (sum(counts[1:], counts[0]) if counts else F.lit(0)).alias(dedupe.TOKENS)
    # Rows that do not compete each get a window of their own (a spread key), not one huge null-id window.
    spread = F.when(F.col("_competes"), F.lit(0)).otherwise(F.monotonically_increasing_id()).alias("_spread")
    rows = rows.select("*", competes, key, tokens).select("*", spread)
    rank = [F.col("_rank").asc_nulls_first()] if "_rank" in loaded.bookkeeping else []
    window = Window.partitionBy("_competes", "_spread", h1, h2).orderBy(
        *rank, F.col(RECORD_TOKENS if records else dedupe.TOKENS).desc_nulls_first(), F.col(dedupe.KEY).asc_nulls_first())
    if records:  # (every row of a record but the best's)
        lost = F.col("_competes") & (F.first(dedupe.KEY).over(window) != F.col(dedupe.KEY))
    else:
        lost = F.col("_competes") & (F.row_number().over(window) > 1)
    repeat = F.col("_file").isin(list(loaded.repeat_files)) if loaded.repeat_files else F.lit(False)
    return rows.withColumn("_repeat", F.when(lost, repeat))


def _blamed(lf: pl.LazyFrame, bad: pl.DataFrame, book, loaded: pipeline.Loaded) -> pl.LazyFrame:
    """A scan's rows with pipeline.BLAME, its records found in its own plan (see pipeline.blamed_records)."""
    return pipeline.with_blame(lf, pipeline.blamed_records(lf, bad, book, loaded))


def _aggregate(spark, loaded: pipeline.Loaded, opts: Options, book, keys: list[str], extra: list[pl.Expr],
               post_buckets, losers_dir: str | None = None, scenario: pl.DataFrame | None = None):
    """_aggregate_once, and again with pipeline.BLAME when a record of several rows holds a row that
    cannot be priced (pipeline.unpriceable_keys: its rows are found in each scan's plan). Returns
    _aggregate_once's three frames and the unpriceable keys (or None)."""
    agg, lost, units = _aggregate_once(spark, loaded, opts, book, keys, extra, post_buckets, losers_dir,
                                       scenario=scenario)
    bad = pipeline.unpriceable_keys(agg, units, book, loaded)
    if bad is None:
        return agg, lost, units, None
    # (the losing copies are the same: the first pass wrote their keys)
    agg, _, units = _aggregate_once(spark, loaded, opts, book, [*keys, pipeline.BLAME], extra, post_buckets,
                                    None, bad, scenario)
    return agg, lost, units, bad


def _aggregate_once(spark, loaded: pipeline.Loaded, opts: Options, book, keys: list[str], extra: list[pl.Expr],
                    post_buckets, losers_dir: str | None = None, bad: pl.DataFrame | None = None,
                    scenario: pl.DataFrame | None = None):
    """pipeline._aggregate with the pass over every row, and duplicate removal, on Spark: the driver
    receives the groups. With `losers_dir` (for `price`), the executors also write the row keys of
    the losing copies there, one Parquet file per input file (see _write_losers): the driver gets
    only how many each file has. Returns (groups, {file index: (first rows, later rows) lost} or
    None, time unit -> price band)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    group = pipeline.group_keys(loaded, keys)
    # (every count column a scan has, carried or not: the keep rule sums them all per copy)
    measures = ["_rec", "requests", *COUNT_COLUMNS, "reported_cost"]
    dupe = ["_file", "source_row", *(["_rank"] if "_rank" in loaded.bookkeeping else []), dedupe.H1, dedupe.H2,
            FIT, *([dedupe.P1, dedupe.P2, RECORD_TOKENS] if "_rec" in loaded.bookkeeping else [])] if loaded.has_ids else []
    plans, target = _plans(loaded, opts, book, extra, list(dict.fromkeys([*group, *measures, *dupe])), bad,
                           scenario)
    rows = _rows(spark, plans, target)
    ranked = _ranked(rows, loaded, opts, target)
    lost = None
    if ranked is None:
        sums = _sums(rows, group, loaded, target)
    else:
        if losers_dir is not None:  # two results from one reading of the logs
            # (on disk: building a cache of every row in the heap ran local[2]'s default 1 GiB out of
            # memory at 10M rows; it is read once more, by one small job)
            ranked = ranked.persist(StorageLevel.DISK_ONLY)
        sums = _sums(ranked, [*group, "_repeat"], loaded, {**target, "_repeat": pl.Boolean})
        if losers_dir is not None:
            lost = _write_losers(ranked.filter(F.col("_repeat").isNotNull()), loaded, losers_dir, len(plans))
            ranked.unpersist()
    units = tagging.with_time_band(sums.select(tagging.TIME_UNIT).unique(), book)  # (for per-request pricing)
    agg = pipeline._finish_groups(sums, book, loaded, post_buckets)
    if ranked is not None:  # a losing copy moves from its group's status to repeats or duplicates
        agg = agg.with_columns(
            pl.when(pl.col("_repeat").is_null()).then(pl.col(STATUS)).when(pl.col("_repeat"))
            .then(pl.lit(REPEAT, pl.UInt8)).otherwise(pl.lit(pipeline.DUPLICATE, pl.UInt8)).alias(STATUS)
        ).drop("_repeat")
    return pipeline._regroup(agg), lost, units


def _loser_file(directory: str, file_index: int) -> str:
    return os.path.join(directory, f"file-{file_index}.parquet")


def _write_losers(lost, loaded: pipeline.Loaded, directory: str, partitions: int) -> dict[int, tuple[int, int]]:
    """The losing copies' keys (dedupe.LOSER, and `_rec`), written by the executors as one Parquet
    file per input file, `directory/file-N.parquet`, which the per-request plans of that file's scan
    read (see _without_losers). Nothing per row reaches the driver: a billion requests with 1%
    duplicates are 10M losers, 240 MB, which it used to collect. Returns {file index: (losing first
    rows of a record, losing later rows)}: one small row per file that has losers."""
    from pyspark.sql import functions as F

    rec = ["_rec"] if "_rec" in loaded.bookkeeping else []
    key = (F.col("_file").cast("long") * F.lit(1 << 40) + F.col("source_row").cast("long")).alias(dedupe.KEY)
    slim = lost.select(F.col("_file").cast("long").alias("_file"), key, dedupe.H1, dedupe.H2,
                       *[F.col(c).cast("long") for c in rec])
    out_schema = pa.schema([pa.field("file", pa.int64()), pa.field("first", pa.int64()), pa.field("later", pa.int64())])

    def run(batches):
        import os
        import secrets

        import polars as pl
        import pyarrow as pa

        held: dict[int, list] = {}
        for batch in batches:  # (hash-partitioned by file: each file's losers are all in this task)
            for (f,), rows in pl.from_arrow(batch).partition_by("_file", as_dict=True, include_key=False).items():
                held.setdefault(f, []).append(rows)
        for f, parts in held.items():
            df = pl.concat(parts).with_columns(pl.col(h).reinterpret(signed=False) for h in ("_h1", "_h2"))
            path = os.path.join(directory, f"file-{f}.parquet")
            tmp = f"{path}.{secrets.token_hex(6)}.tmp"  # (a retried or speculative task writes its own, then renames)
            df.write_parquet(tmp, statistics=False)
            os.replace(tmp, path)
            later = int((df["_rec"] == 0).sum()) if "_rec" in df.columns else 0
            yield pa.RecordBatch.from_pydict({"file": [f], "first": [df.height - later], "later": [later]},
                                             schema=out_schema)

    counts = slim.repartition(max(1, partitions), "_file").mapInArrow(run, "file long, first long, later long")
    table = counts.toArrow()
    return {int(f): (int(a), int(b)) for f, a, b in zip(*(table.column(c).to_pylist() for c in ("file", "first", "later")))}


def _analyze(spark, paths, by: list[str], opts: Options, book, robust: bool, groups: bool = False,
             all_dimensions: bool = False, scenario: pl.DataFrame | None = None):
    """pipeline._analyze with the pass over every row on Spark: the steps before and after it are
    the Polars engine's own functions."""
    # (by_parts=False: a plan pickled to an executor reads a copy of line_retry's piece, never filled:
    # every JSON Lines file with one broken line failed the job with an AttributeError)
    loaded = pipeline.read_logs(paths, opts, robust, dimensions=None if all_dimensions else set(by),
                                by_parts=False)
    by, row_keys = pipeline.report_keys(by, loaded, all_dimensions)
    keys, post, extra = pipeline.row_exprs(by, row_keys, opts, book)
    if scenario is not None and scenario.height and "_rec" in loaded.bookkeeping:
        # (a what-if's records the scenario cannot price whole: found in each scan's plan, as BLAME is;
        # a null key column where there are none)
        keys = [*keys, pipeline.SCENARIO_BLAME]
    else:
        scenario = None
    agg, _, _, _ = _aggregate(spark, loaded, opts, book, keys, extra, post, scenario=scenario)
    return pipeline.conclude(agg, paths, by, loaded, opts, book, groups)


# --- per-request rows (`price`) ------------------------------------------------------------------

def price(paths, output: str, fmt: str, opts: Options | None = None, book: pricebook.PriceBook | None = None,
          reveal: bool = False, master: str | None = None, warn=None) -> pipeline.Accounting:
    """`llm-cost price` on Spark: every request priced by the Polars engine's own per-row plan
    (pipeline.row_pricer), run by one Spark task per file scan, which writes its rows.

    The run works in a directory of its own beside the output, `.llm-cost-parts-*` (see RunDir): the
    executors write the losing copies' keys there, and the parts. `output` a file: the parts are
    Parquet, joined into the one file by the writer the Polars engine uses. `output` ending in `/`:
    a directory of parts, `part-NNNNN.<fmt>`, each written by its task, then `_SUCCESS` (the Spark
    convention), renamed into place whole at the end. `warn`: where to say what the run tidied (a
    directory left by an interrupted run); default stderr."""
    from . import writers
    from .errors import OutputError

    opts = opts or Options()
    pipeline.check_options(opts)
    book = book or pricebook.load_price_book(opts.prices)
    directory = output.endswith("/")
    target = os.path.abspath(output.rstrip("/") or "/")
    parent = os.path.dirname(target)
    if directory:
        _new_or_empty(output, target)
    if not os.path.isdir(parent):  # (checked before the cluster's work)
        raise OutputError(f"cannot write {output}: no such directory {parent}")
    spark = session(master)
    for line in clear_stale(parent):
        (warn or _say)(line)
    run = RunDir.create(parent, target)
    try:
        with one_reading(shipped=True):
            plans, acc = _with_retry(lambda robust: _price_plans(spark, paths, opts, book, robust, run.losers))
            try:
                if directory:
                    os.mkdir(run.out)
                    _write_parts(spark, plans, run.out, fmt, reveal)
                    writers.atomic_write(os.path.join(run.out, "_SUCCESS"), lambda tmp: None)
                else:
                    parts = _write_parts(spark, plans, run.path, None, reveal)
                    writers.sink_rows(pipeline.PricedRows([pl.scan_parquet(p, glob=False) for p in parts]), fmt,
                                      output, reveal=reveal)
            except Exception as e:
                raise _one_line(e) from None
            if directory:
                run.publish(output, target)
    finally:
        left = run.remove()
        if left:
            (warn or _say)(left)
    return acc


def _say(line: str) -> None:
    sys.stderr.write(f"llm-cost: warning: {line}\n")


def _new_or_empty(output: str, target: str) -> None:
    """`-o DIR/`: a new or empty directory (parts of two runs are never mixed)."""
    from .errors import OutputError

    # (`file/` does not exist to os.path.exists: a file is not a directory)
    if os.path.lexists(target) and (not os.path.isdir(target) or os.path.islink(target) or os.listdir(target)):
        raise OutputError(f"-o {output}: exists and is not an empty directory (per-request parts are written into "
                          "a new one)")


# --- the run's own directory, and one left by an interrupted run ------------------------------

RUN_PREFIX = ".llm-cost-parts-"
MARKER = "llm-cost-run.json"  # who made the directory: the tool, and its driver's pid, start and host


@dataclasses.dataclass
class RunDir:
    """A `price` run's work directory beside its output, `.llm-cost-parts-XXXXXXXX`, with MARKER in it.
    It holds only what the run writes: `part-NNNNN.parquet` (parts to join into -o FILE),
    `losers/file-N.parquet` (keys of losing copies), `out/` (the parts of -o DIR/, renamed into
    place at the end). A run killed (kill -9, a lost driver) leaves it; the next `price` beside the
    same output recognises it by the marker and its driver's pid gone, and removes those files."""

    path: str

    @property
    def losers(self) -> str:
        return os.path.join(self.path, "losers")

    @property
    def out(self) -> str:
        return os.path.join(self.path, "out")

    @classmethod
    def create(cls, parent: str, target: str) -> RunDir:
        import json
        import socket
        import tempfile

        from . import writers

        path = tempfile.mkdtemp(dir=parent, prefix=RUN_PREFIX)
        # (mkdtemp's 0700 would keep out executors that run as another user of a shared file system)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(path, 0o777 & ~mask)
        run = cls(path)

        def mark(tmp: str) -> None:
            with open(tmp, "w") as f:
                json.dump({"tool": "llm-cost", "pid": os.getpid(), "started": process_started(os.getpid()),
                           "host": socket.gethostname(), "output": target}, f)

        writers.atomic_write(os.path.join(path, MARKER), mark)
        os.mkdir(run.losers)
        return run

    def publish(self, output: str, target: str) -> None:
        """The directory of parts, renamed into place whole: onto a new name, or an empty directory."""
        from .errors import OutputError

        try:
            os.rename(self.out, target)
        except OSError as e:
            raise OutputError(f"-o {output}: cannot put the parts in place ({e.strerror}); is the directory still "
                              "empty?") from None

    def remove(self) -> str | None:
        """Delete what a run writes here, and the directory if that leaves it empty. Anything else
        (a file the tool does not write) stays: then a sentence saying so, else None."""
        names = _RUN_FILES
        for sub, pattern in (("losers", _LOSER_FILES), ("out", _OUT_FILES), ("", names)):
            d = os.path.join(self.path, sub) if sub else self.path
            try:
                entries = os.listdir(d)
            except FileNotFoundError:
                continue
            except OSError:
                return f"could not tidy {self.path}"
            for name in entries:
                p = os.path.join(d, name)
                if pattern.fullmatch(name) and os.path.isfile(p) and not os.path.islink(p):
                    with contextlib.suppress(OSError):
                        os.unlink(p)
            if sub:
                with contextlib.suppress(OSError):
                    os.rmdir(d)
        try:
            os.rmdir(self.path)
        except OSError:
            return f"left {self.path}: it holds files llm-cost does not write there"
        return None


_RUN_FILES = re.compile(r"llm-cost-run\.json|part-\d{5,}\.parquet|\.llm-cost-[0-9a-f]+\.tmp")
_LOSER_FILES = re.compile(r"file-\d+\.parquet(\.[0-9a-f]+\.tmp)?")
_OUT_FILES = re.compile(r"part-\d{5,}\.(parquet|csv|jsonl)|_SUCCESS|\.llm-cost-[0-9a-f]+\.tmp")


def clear_stale(parent: str) -> list[str]:
    """Work directories in `parent` left by `price` runs whose driver is gone (killed, or its
    machine lost): each recognised by its marker (written by this tool, this user, this host, and
    that process has ended) is removed, file by file (RunDir.remove). One of another host is not
    touched (its run may be going on): said. Returns what to tell the user."""
    import socket

    said = []
    try:
        names = sorted(n for n in os.listdir(parent) if n.startswith(RUN_PREFIX))
    except OSError:
        return said
    host = socket.gethostname()
    for name in names:
        path = os.path.join(parent, name)
        info = read_marker(path, MARKER)
        if info is None:
            continue
        pid, started, where = info["pid"], info["started"], info["host"]
        who = f"pid {pid} on {where}"
        if where != host:
            said.append(f"{path}: the work directory of a price run on another machine ({who}); "
                        "remove it once that run is over")
        elif process_gone(pid, started):
            left = RunDir(path).remove()
            said.append(left or f"removed {path}, left by an interrupted price run ({who}, no longer running)")
    return said


def _price_plans(spark, paths, opts: Options, book, robust: bool, losers_dir: str
                 ) -> tuple[list[bytes], pipeline.Accounting]:
    """Each scan's per-request plan (serialized), after the aggregate and duplicates found on Spark."""
    # (source_row is in the output; by_parts=False: see _analyze)
    loaded = pipeline.read_logs(paths, opts, robust, exact_lines=True, by_parts=False)
    for name in os.listdir(losers_dir):  # (a fast pass that failed may have written some)
        if _LOSER_FILES.fullmatch(name):
            os.unlink(os.path.join(losers_dir, name))
    agg, lost, units, bad = _aggregate(spark, loaded, opts, book, [], [], [], losers_dir=losers_dir)
    blame = None if bad is None else (lambda lf: _blamed(lf, bad, book, loaded))
    acc, priced = pipeline.row_pricer(agg, units, paths, loaded, opts, book, blame=blame)
    none = pl.DataFrame(schema={dedupe.KEY: pl.Int64, dedupe.H1: pl.UInt64, dedupe.H2: pl.UInt64})
    plans = []
    for src, part in zip(loaded.files, loaded.parts):
        # (each scan's plan reads only the losers of its own files)
        mine = [f for f in (src.index, *src.member_indexes) if lost and f in lost]
        plans.append(priced(_without_losers(part, mine, lost or {}, losers_dir), none).serialize())
    return plans, acc


def _without_losers(part: pl.LazyFrame, files: list[int], lost: dict[int, tuple[int, int]], directory: str
                    ) -> pl.LazyFrame:
    """`part` without the losing copies written for `files` (see _write_losers): the rows
    dedupe.lost names, by left joins on the loser files that keep the rows' order and stream. A
    record's first row (`_rec` not 0) is named by its record's key; a later row by key and id."""
    if not files:
        return part
    lf = pl.scan_parquet([_loser_file(directory, f) for f in files], glob=False)
    rec = "_rec" in part.collect_schema().names()
    key = dedupe.row_key()
    first = pl.when(pl.col("_rec") != 0).then(key) if rec else key
    out = part.with_columns(first.alias("_lost_key")).join(
        (lf.filter(pl.col("_rec") != 0) if rec else lf).select(pl.col(dedupe.KEY).alias("_lost_key"),
                                                               pl.lit(True).alias("_lost")).unique(),
        on="_lost_key", how="left", maintain_order="left")
    gone = pl.col("_lost").is_not_null()
    if rec and any(later for _, later in (lost[f] for f in files)):
        _, h1, h2 = dedupe._ids(part)
        out = out.with_columns(pl.when(pl.col("_rec") == 0).then(key).alias("_lost_key"), h1.alias("_lost_h1"),
                               h2.alias("_lost_h2")).join(
            lf.filter(pl.col("_rec") == 0).select(pl.col(dedupe.KEY).alias("_lost_key"),
                                                   pl.col(dedupe.H1).alias("_lost_h1"),
                                                   pl.col(dedupe.H2).alias("_lost_h2"),
                                                   pl.lit(True).alias("_lost_later")).unique(),
            on=["_lost_key", "_lost_h1", "_lost_h2"], how="left", maintain_order="left")
        gone = gone | pl.col("_lost_later").is_not_null()
    return out.filter(~gone).select(part.collect_schema().names())


def _write_parts(spark, plans: list[bytes], directory: str, fmt: str | None, reveal: bool) -> list[str]:
    """One Spark task per scan runs its plan and writes its rows: with `fmt`, as the output's part
    (masked, CSV-guarded: writers.sink_rows); without, as a raw Parquet part for the driver to join."""
    ext = fmt or "parquet"
    paths = [os.path.join(directory, f"part-{i:05d}.{ext}") for i in range(len(plans))]

    def run(batches):
        import io

        import polars as pl
        import pyarrow as pa

        from analyzer import pipeline, writers

        for batch in batches:
            for i, plan in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                lf = pl.LazyFrame.deserialize(io.BytesIO(plan))
                if fmt is None:
                    lf.sink_parquet(paths[i], compression="lz4", statistics=False)
                else:
                    writers.sink_rows(pipeline.PricedRows([lf]), fmt, paths[i], reveal=reveal)
                yield pa.RecordBatch.from_pydict({"scan": [i]}, schema=pa.schema([pa.field("scan", pa.int32())]))

    # Each plan travels as its scan's row, to that task alone (it holds its files' losers and the rate
    # table): captured by `run`, every task would receive every plan.
    scans = spark.createDataFrame([(i, bytearray(p)) for i, p in enumerate(plans)], "scan int, plan binary") \
        .repartition(max(1, len(plans)), "scan")
    scans.mapInArrow(run, "scan int").collect()
    return paths
