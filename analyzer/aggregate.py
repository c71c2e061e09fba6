"""Group priced rows by the report's keys (any dimensions and time buckets) and total them.

Input rows are already aggregates (one per rate-key group), so this step works on a small frame.
Sums of Decimal columns stay exact; totals are the sum of the same priced rows, so the groups of any
--by add up to the grand total by construction (and the tests check it).
"""

from __future__ import annotations

import polars as pl

from .schema import COMPONENTS, COUNT_COLUMNS, MONEY, TIME_BUCKETS
from .tagging import bucket_label

COST_COLUMNS = [*("cost_" + c.rate for c in COMPONENTS), "cost", "list_cost", "savings"]
MEASURES = ["requests", *COUNT_COLUMNS, *COST_COLUMNS, "reported_cost"]


def with_cache_use() -> pl.Expr:
    """discount_type including the request's cache operations (cache_read, cache_write_5m/1h)."""
    base = pl.when(pl.col("discount_type") == "standard").then(None).otherwise(pl.col("discount_type"))
    cache = pl.when(pl.col("_cache_use") == "").then(None).otherwise(pl.col("_cache_use"))
    joined = pl.concat_str([base, cache], separator="+", ignore_nulls=True)
    return pl.when(joined == "").then(pl.lit("standard")).otherwise(joined).alias("discount_type")


def _sums(cols: list[str]) -> list[pl.Expr]:
    # A reported cost is a sum only where some row reported one: no report is not $0.
    return [pl.col(c).sum() if c != "reported_cost" else
            pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum()).alias(c) for c in cols]


def summarize(priced: pl.DataFrame, by: list[str], tz: str) -> tuple[pl.DataFrame, dict]:
    """(rows grouped by `by`, grand totals). Time buckets become labels in the report's zone."""
    reported = pl.when(pl.col("_reported_rows") > 0).then(pl.col("reported_cost"))
    priced = priced.with_columns(reported.alias("reported_cost"))
    if "component" in by:
        rows = _by_component(priced, [k for k in by if k != "component"], by)
    elif by:
        rows = priced.group_by(by).agg(_sums(MEASURES)).sort(by, nulls_last=True)
    else:
        rows = priced.select(_sums(MEASURES))
    rows = _fix_money(rows)
    for k in by:
        if k in TIME_BUCKETS:
            rows = rows.with_columns(bucket_label(k))
    totals_frame = _fix_money(priced.select(_sums(MEASURES)))
    totals = totals_frame.to_dicts()[0] if totals_frame.height else {m: 0 for m in MEASURES}
    if not priced.height or priced["_reported_rows"].sum() == 0:
        totals["reported_cost"] = None
        rows = rows.drop("reported_cost") if "reported_cost" in rows.columns else rows
    return rows, totals


def _fix_money(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns([pl.col(c).cast(MONEY) for c in df.columns if c in COST_COLUMNS or c == "reported_cost"])


def _by_component(priced: pl.DataFrame, keys: list[str], order: list[str]) -> pl.DataFrame:
    """One row per token class / server tool: its quantity and cost (and what it would have cost at
    list price, so cache and batch savings show per component)."""
    parts = [
        priced.select(
            *keys,
            pl.lit(c.rate).alias("component"),
            pl.col(c.column).alias("quantity"),
            pl.col("cost_" + c.rate).fill_null(pl.lit(0, MONEY)).alias("cost"),
        )
        for c in COMPONENTS
    ]
    frame = pl.concat(parts)
    rank = {c.rate: i for i, c in enumerate(COMPONENTS)}
    out = frame.group_by(order).agg(pl.col("quantity").sum(), pl.col("cost").sum())
    out = out.filter(pl.col("quantity") > 0)
    return out.with_columns(pl.col("component").replace_strict(rank, return_dtype=pl.Int32).alias("_rank")).sort(
        [*[k if k != "component" else "_rank" for k in order]], nulls_last=True
    ).drop("_rank")
