"""Per-request tags, computed as vectorized expressions before any aggregation.

Two small integers carry everything about a request that can change its rate but is not already a
column: which price *band* its timestamp falls in (between two consecutive instants at which any rate
in the book changes) and which prompt-size band it is in (between two consecutive long-context
thresholds). Grouping by them loses nothing: every request in the same (model, band, prompt band,
tier, speed, geo, endpoint) group pays the same rates, so pricing the group's summed counts is exact.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from .pricebook import PriceBook
from .schema import PROMPT_COLUMNS

TIME_BAND = "_tband"
PROMPT_BAND = "_pband"
# The columns that, with the two bands, decide a request's rates.
RATE_KEY_COLUMNS = ("model_raw", "platform", "service_tier", "speed", "inference_geo", "endpoint_scope",
                    "context_window")
RATE_KEYS = (*RATE_KEY_COLUMNS, TIME_BAND, PROMPT_BAND)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _epoch_us(t: dt.datetime) -> int:
    return (t - _EPOCH) // dt.timedelta(microseconds=1)


def band_instants(book: PriceBook) -> list[dt.datetime]:
    return book.boundaries()


def time_band(book: PriceBook) -> pl.Expr:
    """Index of the last rate-change instant at or before the request (-1: before any price)."""
    edges = pl.Series("edges", [_epoch_us(t) for t in book.boundaries()], dtype=pl.Int64)
    ts = pl.col("timestamp").dt.epoch("us")
    return (pl.lit(edges).search_sorted(ts, side="right").cast(pl.Int32) - 1).alias(TIME_BAND)


def prompt_tokens() -> pl.Expr:
    """Tokens in the request's prompt: uncached input plus cache writes and reads (not output)."""
    return pl.sum_horizontal(*[pl.col(c) for c in PROMPT_COLUMNS])


def prompt_band(book: PriceBook) -> pl.Expr:
    """How many of the book's long-context thresholds the prompt exceeds (strictly: exactly
    200,000 tokens is not over a 200,000 threshold)."""
    th = pl.Series("th", book.thresholds(), dtype=pl.Int64)
    return pl.lit(th).search_sorted(prompt_tokens(), side="left").cast(pl.Int32).alias(PROMPT_BAND)


def cache_use() -> pl.Expr:
    """Which cache operations the request performed; part of its discount_type."""
    parts = [
        pl.when(pl.col("cache_read_tokens") > 0).then(pl.lit("cache_read")),
        pl.when(pl.col("cache_write_5m_tokens") > 0).then(pl.lit("cache_write_5m")),
        pl.when(pl.col("cache_write_1h_tokens") > 0).then(pl.lit("cache_write_1h")),
    ]
    return pl.concat_str(parts, separator="+", ignore_nulls=True).alias("_cache_use")


def time_bucket(unit: str, tz: str) -> pl.Expr:
    """The request's hour/day/week/month/year in the report's time zone, as a sortable label.
    Weeks start on Monday and are labelled by that Monday's date."""
    local = pl.col("timestamp").dt.convert_time_zone(tz)
    every = {"hour": "1h", "day": "1d", "week": "1w", "month": "1mo", "year": "1y"}[unit]
    return local.dt.truncate(every).dt.replace_time_zone(None).alias(unit)


BUCKET_FORMAT = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "week": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
