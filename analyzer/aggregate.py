"""Group priced rows by the report's keys (any dimensions and time buckets) and total them.

Input rows are already aggregates (one per rate-key group), so this step works on a small frame.
Sums of Decimal columns stay exact; totals are the sum of the same priced rows, so the groups of any
--by add up to the grand total by construction (and the tests check it).
"""

from __future__ import annotations

import polars as pl

from .schema import COMPONENTS, COUNT_COLUMNS, MONEY, TIME_BUCKETS
from .tagging import block_starts, bucket_label

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


def summarize(priced: pl.DataFrame, by: list[str], tz: str, block_keys: pl.Series | None = None
              ) -> tuple[pl.DataFrame, dict]:
    """(rows grouped by `by`, grand totals). Time buckets become labels in the report's zone.
    `block_keys`: the block keys of every request that decides the 5-hour windows (priced or not);
    default, the priced rows' own."""
    reported = pl.when(pl.col("_reported_rows") > 0).then(pl.col("reported_cost"))
    priced = priced.with_columns(reported.alias("reported_cost"))
    if "project" in by and priced.height:
        priced = _project_paths(priced)
    priced = with_blocks(priced, tz, block_keys)
    if "component" in by:
        rows = _by_component(priced, [k for k in by if k != "component"], by)
    elif by:
        rows = priced.group_by(by).agg(_sums(MEASURES)).sort(by, nulls_last=True)
    else:
        rows = priced.select(_sums(MEASURES))
    rows = _fix_money(rows)
    for k in by:
        if k in TIME_BUCKETS and rows.schema[k] != pl.String:
            rows = rows.with_columns(bucket_label(k))
    totals_frame = _fix_money(priced.select(_sums(MEASURES)))
    totals = totals_frame.to_dicts()[0] if totals_frame.height else {m: 0 for m in MEASURES}
    if not priced.height or priced["_reported_rows"].sum() == 0:
        totals["reported_cost"] = None
        rows = rows.drop("reported_cost") if "reported_cost" in rows.columns else rows
    return rows, totals


def with_blocks(priced: pl.DataFrame, tz: str, block_keys: pl.Series | None = None) -> pl.DataFrame:
    """The priced groups with their block key (tagging.block_key) replaced by the start of its 5-hour
    window, like any time bucket's start (a naive datetime in `tz`). `block_keys`: the keys of every
    request that decides the windows (priced or not); default, the groups' own."""
    if "block" not in priced.columns or not priced.schema["block"].is_integer():
        return priced
    starts = block_starts(priced["block"] if block_keys is None else block_keys, tz)
    return priced.join(starts, on="block", how="left").with_columns(pl.col("_start").alias("block")).drop("_start")


def _project_paths(priced: pl.DataFrame) -> pl.DataFrame:
    """Claude Code names a project's directory by its escaped path (`-home-dev-app`); rows whose cwd
    showed the path are labelled with it (dialects/claude_code.py), rows without are left with the
    escaped name. Where the report holds exactly one path escaping to such a name, both are one
    project, shown as the path. (On the report's few rows, after aggregation.)"""
    names = priced.select(pl.col("project").unique().drop_nulls())
    escaped = pl.col("project").str.replace_all(r"[^A-Za-z0-9]", "-")
    # (only absolute paths: a project `my app` of another log is not the same as one named `my-app`)
    paths = (names.filter(pl.col("project").str.contains(r"^(/|[A-Za-z]:[\\/])"))
             .with_columns(escaped.alias("_name"))
             .filter(pl.len().over("_name") == 1))
    if not paths.height:
        return priced
    lookup = dict(zip(paths["_name"].to_list(), paths["project"].to_list()))
    return priced.with_columns(pl.col("project").replace(lookup))


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
