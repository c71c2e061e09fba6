"""`--engine spark`: the same report on Apache Spark, for logs that outgrow one machine (DESIGN §12).

The work splits at the engine seam:
- reading, normalizing and tagging run inside Spark, one task per file scan: the driver detects each
  file's format (it reads only the files' first bytes) and builds each scan's Polars plan; the plan
  travels to an executor serialized, and `mapInArrow` runs it there with the very dialect and tagging
  expressions of the Polars engine, handing Spark Arrow batches of slim rows (group keys, counts,
  request-id hashes);
- Spark sums the counts by rate keys and report keys (as DECIMAL(38,0): exact, never wrapping), and
  finds the request ids seen more than once across the cluster;
- the driver receives the small aggregate and the rows of repeated ids, and from there on runs the
  Polars engine's own code: the same keep rule for duplicates (dedupe.losers), the same accounting,
  exact Decimal pricing, quarantine file and report. So both engines give identical reports.

pyspark is an optional extra (`pip install 'llm-cost[spark]'`); `--master URL` or SPARK_REMOTE (Spark
Connect) picks a cluster, else local[*]. `python -m analyzer.spark_job` is the spark-submit entry point.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

import polars as pl
import pyarrow as pa

from . import aggregate, dedupe, pipeline, pricebook, tagging
from .errors import OptionError, SourceError
from .pipeline import (
    OK,
    REPEAT,
    ROWS,
    STATUS,
    Accounting,
    Options,
    Report,
)
from .pricing import rate_frame
from .schema import COUNT_COLUMNS, TIME_BUCKETS
from .sources import one_reading

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
    pipeline.check_tz(opts.tz)
    book = book or pricebook.load_price_book(opts.prices)
    spark = session(master)
    with one_reading(native=True):
        return _with_retry(lambda robust: _analyze(spark, paths, list(by), opts, book, robust))


def analyze_groups(paths, by=(), opts: Options | None = None, book: pricebook.PriceBook | None = None,
                   all_dimensions: bool = False, master: str | None = None) -> pipeline.Groups:
    """`pipeline.analyze_groups` on Spark (what `audit` and what-if start from)."""
    opts = opts or Options()
    pipeline.check_tz(opts.tz)
    book = book or pricebook.load_price_book(opts.prices)
    spark = session(master)
    with one_reading(native=True):
        return _with_retry(lambda robust: _analyze(spark, paths, list(by), opts, book, robust, True, all_dimensions))


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

def _plans(loaded: pipeline.Loaded, opts: Options, book, extra: list[pl.Expr], columns: list[str]
           ) -> tuple[list[bytes], dict[str, pl.DataType]]:
    """Each scan's plan, ending in the slim rows Spark needs, all with one schema, serialized."""
    def slim(part: pl.LazyFrame) -> pl.LazyFrame:
        lf = pipeline.with_status(part, opts).with_columns(*tagging.row_tags(book), *extra)
        if "request_id" in lf.collect_schema().names() and dedupe.H1 not in lf.collect_schema().names():
            lf = lf.with_columns(dedupe.hashes())
        return lf

    parts = [slim(p) for p in loaded.parts]
    schemas = [p.collect_schema() for p in parts]
    target: dict[str, pl.DataType] = {}
    for c in columns:
        types = [s[c] for s in schemas if c in s]
        if c in (dedupe.H1, dedupe.H2):
            target[c] = pl.UInt64
        elif types:
            # (one supertype for the column across scans, as a diagonal concat would give)
            target[c] = pl.concat([pl.DataFrame(schema={c: t}) for t in types], how="diagonal_relaxed").schema[c]
    plans = []
    for p, s in zip(parts, schemas):
        plans.append(p.select([(pl.col(c).cast(t) if c in s else pl.lit(None, t).alias(c))
                               for c, t in target.items()]).serialize())
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


def _aggregate(spark, rows, target, keys: list[str], book, loaded: pipeline.Loaded, post_buckets,
               opts: Options) -> pl.DataFrame:
    """pipeline._aggregate with the pass over every row on Spark."""
    rate_keys = [tagging.TIME_UNIT if k == tagging.TIME_BAND else k for k in tagging.RATE_KEYS]
    nb = ["_nb"] if "_nb" in loaded.bookkeeping else []
    group = ["_ok", "_out", *nb, *[k for k in rate_keys if k not in loaded.constant], *keys]
    agg = pipeline._finish_groups(_sums(rows, group, loaded, target), book, loaded, post_buckets)
    dup = _duplicates(rows, target, loaded, opts)
    if dup is not None:
        lf, cands = dup
        scope = lf.filter(pl.col("_file").is_in(loaded.repeat_files)) if not opts.dedupe else lf
        losers, lost = pipeline._duplicate_losers(lf, scope, group, cands, loaded, pipeline._GroupSums(loaded))
        if losers.height:
            lost = lost.with_columns(pl.col("_file").is_in(loaded.repeat_files).alias("_repeat"))
            lost = pipeline._finish_groups(pipeline._GroupSums(loaded)(lost, [*group, "_repeat"]), book, loaded,
                                           post_buckets)
            moved = pl.when(pl.col("_repeat")).then(pl.lit(REPEAT, pl.UInt8)).otherwise(
                pl.lit(pipeline.DUPLICATE, pl.UInt8))
            minus = lost.with_columns([(-pl.col(m)).alias(m) for m in pipeline._MEASURES])
            plus = lost.with_columns(moved.alias(STATUS))
            agg = pl.concat([agg, minus.select(agg.columns), plus.select(agg.columns)])
    return pipeline._regroup(agg)


def _duplicates(rows, target, loaded: pipeline.Loaded, opts: Options):
    """The ids seen more than once, found across the cluster, and their rows on the driver (lazy),
    or None. (`pipeline._candidates`: formats that repeat records always; the rest unless --no-dedupe.)"""
    from pyspark.sql import functions as F

    if not loaded.has_ids or not (opts.dedupe or loaded.repeat_files) or dedupe.H1 not in target:
        return None
    scope = rows if opts.dedupe else rows.filter(F.col("_file").isin(list(loaded.repeat_files)))
    ids = scope.filter(F.col(dedupe.H1).isNotNull()).groupBy(dedupe.H1).count().filter(F.col("count") > 1) \
        .select(dedupe.H1)
    competing = _collect(rows.join(F.broadcast(ids), on=dedupe.H1, how="left_semi"), target)
    if not competing.height:
        return None
    cands = competing.select(dedupe.H1).unique()[dedupe.H1]
    if not opts.dedupe:
        cands = competing.filter(pl.col("_file").is_in(loaded.repeat_files)).select(dedupe.H1).unique()[dedupe.H1]
    absent = [pl.lit(None, pl.Int64).alias(c) for c in COUNT_COLUMNS if c not in competing.columns]
    return competing.with_columns(absent).lazy(), cands


def _analyze(spark, paths, by: list[str], opts: Options, book, robust: bool, groups: bool = False,
             all_dimensions: bool = False):
    """pipeline._analyze, step for step, with the pass over every row on Spark."""
    loaded = pipeline.read_logs(paths, opts, robust, dimensions=None if all_dimensions else set(by))
    by = pipeline.resolve_by(by, loaded.dimensions)
    if all_dimensions:
        by = [*by, *(d for d in loaded.dimensions if d not in by)]
    row_keys = pipeline.check_by(by, loaded.dimensions)
    buckets = [k for k in row_keys if k in TIME_BUCKETS]
    post = buckets if buckets and tagging.buckets_from_unit(buckets, opts.tz, book) else []
    row_keys = [k for k in row_keys if k not in post]
    extra = pipeline._bucket_exprs(row_keys, opts.tz)
    if "discount_type" in by:
        extra.append(tagging.cache_use())
        row_keys = [*row_keys, "_cache_use"]
    keys = [k for k in dict.fromkeys(row_keys) if k not in tagging.RATE_KEYS]
    rate_keys = [tagging.TIME_UNIT if k == tagging.TIME_BAND else k for k in tagging.RATE_KEYS]
    nb = ["_nb"] if "_nb" in loaded.bookkeeping else []
    group = ["_ok", "_out", *nb, *[k for k in rate_keys if k not in loaded.constant], *keys]
    # (every count column a scan has, carried or not: the keep rule sums them all per copy)
    measures = ["_rec", "requests", *COUNT_COLUMNS, "reported_cost"]
    dupe = ["_file", "source_row", *(["_rank"] if "_rank" in loaded.bookkeeping else []), dedupe.H1, dedupe.H2] \
        if loaded.has_ids else []
    columns = list(dict.fromkeys([*group, *measures, *dupe]))
    plans, target = _plans(loaded, opts, book, extra, columns)
    rows = _rows(spark, plans, target)
    agg = _aggregate(spark, rows, target, keys, book, loaded, post, opts)
    pipeline.check_totals(agg)
    acc = Accounting(files=len(loaded.dialects), files_skipped=dict(sorted(loaded.skipped.items())))
    pipeline._account(agg, acc)
    ok = agg.filter(pl.col(STATUS) == OK)
    priced = pipeline._price_groups(ok, rate_frame(ok, book), book, acc)
    if "discount_type" in by:
        priced = priced.with_columns(aggregate.with_cache_use())
    if acc.quarantined:
        acc.quarantine_file = pipeline.write_quarantine(paths, loaded, opts)
    for tmp in loaded.spooled:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    notes = pipeline._notes(priced, acc) + loaded.notes + (
        [f"empty files skipped: {', '.join(loaded.empty)}"] if loaded.empty else [])
    if groups:
        return pipeline.Groups(by, priced, acc, book, opts.tz, loaded.dialects, notes, list(loaded.dimensions))
    rows_, totals = aggregate.summarize(priced, by, opts.tz, ok["block"] if "block" in ok.columns else None)
    return Report(by, rows_, totals, acc, book, opts.tz, loaded.dialects, notes, priced)

