"""Per-request tags, computed as vectorized expressions before any aggregation.

Two small integers carry everything about a request that can change its rate but is not already a
column: its *time unit* (its UTC day when, as in the shipped book, every price changes at midnight;
after aggregation it gives the price band: which interval between two consecutive rate changes holds
the request) and its *prompt band* (how many long-context thresholds the prompt exceeds). A third,
its *uses* (which components it has: a bitmask of nonzero counts), decides whether it can be priced at
all: a model may lack a rate (no cache-read price for Claude 3 Sonnet), and only a request that uses
that component is unpriced. Grouping by them loses nothing: every request in the same (model, time
unit, prompt band, uses, tier, speed, geo, endpoint) group is priced alike, so pricing the group's
summed counts is exact, and a priceable request never shares a group with an unpriceable one.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from .pricebook import PriceBook
from .schema import COMPONENTS, PROMPT_COLUMNS

TIME_BAND = "_tband"
TIME_UNIT = "_tunit"
PROMPT_BAND = "_pband"
USES = "_uses"
# The columns that, with the price band, prompt band and uses, decide a request's rates and whether
# it can be priced.
RATE_KEY_COLUMNS = ("model_raw", "platform", "service_tier", "speed", "inference_geo", "endpoint_scope",
                    "context_window")
RATE_KEYS = (*RATE_KEY_COLUMNS, TIME_BAND, PROMPT_BAND, USES)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAY_US = 86_400_000_000


def _epoch_us(t: dt.datetime) -> int:
    return (t - _EPOCH) // dt.timedelta(microseconds=1)


def time_unit_us(book: PriceBook) -> int:
    """The coarsest unit (day, hour, minute, second, microsecond) that divides every rate-change
    instant: the shipped book changes prices at midnight UTC, so a request's UTC day decides its band."""
    edges = [_epoch_us(t) for t in book.boundaries()]
    for unit in (_DAY_US, 3_600_000_000, 60_000_000, 1_000_000):
        if all(e % unit == 0 for e in edges):
            return unit
    return 1


def time_unit(book: PriceBook) -> pl.Expr:
    """The request's time in whole units (see time_unit_us): a cheap, streamable group key that
    determines the price band. (Searching the band per row would hold the column in memory.)"""
    return (pl.col("timestamp").dt.epoch("us") // time_unit_us(book)).alias(TIME_UNIT)


def with_time_band(frame, book: PriceBook):
    """Add the price band (index of the last rate-change instant at or before the request; -1 before
    any price) to a frame that carries TIME_UNIT. Meant for small frames: aggregates, lookups."""
    edges = pl.Series("edges", [_epoch_us(t) for t in book.boundaries()], dtype=pl.Int64)
    instant = pl.col(TIME_UNIT) * time_unit_us(book)
    return frame.with_columns((pl.lit(edges).search_sorted(instant, side="right").cast(pl.Int32) - 1).alias(TIME_BAND))


def buckets_from_unit(buckets: list[str], tz: str, book: PriceBook) -> bool:
    """Whether these time buckets can be derived from the time unit after aggregation, instead of
    being computed for every request: UTC buckets of a day or longer, when prices change at midnight."""
    return tz == "UTC" and time_unit_us(book) == _DAY_US and all(b in ("day", "week", "month", "quarter", "year")
                                                                 for b in buckets)


def unit_start(book: PriceBook) -> pl.Expr:
    """The first instant of a row's time unit (for buckets derived after aggregation)."""
    return (pl.col(TIME_UNIT) * time_unit_us(book)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def prompt_tokens() -> pl.Expr:
    """Tokens in the request's prompt: uncached input plus cache writes and reads (not output)."""
    return pl.sum_horizontal(*[pl.col(c) for c in PROMPT_COLUMNS])


def prompt_band(book: PriceBook) -> pl.Expr:
    """How many of the book's long-context thresholds the prompt exceeds (strictly: exactly
    200,000 tokens is not over a 200,000 threshold). Comparisons, not a search: they stream."""
    prompt = prompt_tokens()
    band = pl.sum_horizontal([(prompt > t).cast(pl.Int32) for t in book.thresholds()] or [pl.lit(0, pl.Int32)])
    # A row that stands for several requests (pre-aggregated, `requests` > 1) sums their prompts: the
    # sum says nothing about any one request (ten 30K prompts are not one 300K prompt). Such a row's
    # tier comes from its own context_window; without one it is the base tier, a lower bound.
    return pl.when(pl.col("requests").fill_null(1) > 1).then(pl.lit(0, pl.Int32)).otherwise(band) \
        .cast(pl.Int32).alias(PROMPT_BAND)


def uses() -> pl.Expr:
    """Which components the request has (bit i set: COMPONENTS[i] has a nonzero count). A rate key:
    whether a request can be priced depends on it, so requests that differ in it never share a group."""
    # (16 bits: room for components yet to come; a null count is no use, like 0)
    bits = [pl.when(pl.col(c.column) > 0).then(pl.lit(1 << i, pl.UInt16)).otherwise(pl.lit(0, pl.UInt16))
            for i, c in enumerate(COMPONENTS)]
    return pl.sum_horizontal(bits).cast(pl.UInt16).alias(USES)


def used(mask: int) -> list[str]:
    """The count columns a `uses` mask names."""
    return [c.column for i, c in enumerate(COMPONENTS) if mask & (1 << i)]


def row_tags(book: PriceBook) -> list[pl.Expr]:
    """The per-request rate keys that are not columns of the canonical row (before aggregation)."""
    return [time_unit(book), prompt_band(book), uses()]


def cache_use() -> pl.Expr:
    """Which cache operations the request performed; part of its discount_type."""
    parts = [
        pl.when(pl.col("cache_read_tokens") > 0).then(pl.lit("cache_read")),
        pl.when(pl.col("cache_write_5m_tokens") > 0).then(pl.lit("cache_write_5m")),
        pl.when(pl.col("cache_write_1h_tokens") > 0).then(pl.lit("cache_write_1h")),
    ]
    return pl.concat_str(parts, separator="+", ignore_nulls=True).alias("_cache_use")


_HOUR_US = 3_600_000_000
BLOCK_HOURS = 5


def block_key(ts: pl.Expr) -> pl.Expr:
    """A request's UTC hour, times two, plus one unless it ran exactly on the hour: all a 5-hour window
    needs to know of a request (see block_starts), as one integer to group by."""
    us = ts.dt.epoch("us")
    hour = us // _HOUR_US
    return (hour * 2 + (us != hour * _HOUR_US).cast(pl.Int64)).alias("block")


def block_starts(keys: pl.Series, tz: str = "UTC") -> pl.DataFrame:
    """Claude's 5-hour usage windows over the report's requests (as ccusage finds them): a window
    starts at the UTC hour of the first request not in an earlier window and takes every request up
    to and including 5 hours after that hour (ccusage: a new window when `time - start > 5h`); a
    request 5 hours and a microsecond after, or any later, starts the next. Windows are found over
    the distinct block keys (at most two per hour of usage), one loop step per window, never per
    request. Returns each key with its window's start, a naive datetime in `tz`."""
    k = keys.drop_nulls().cast(pl.Int64).unique().sort()
    hours = k // 2
    # A request's latest possible instant within its hour, in microseconds: on the hour exactly, or
    # after it (one microsecond stands for "after": windows start on the hour, so it decides alike).
    instant = hours * _HOUR_US + (k % 2)
    import bisect

    # (as Python lists: one bisect per window costs a microsecond, a Series search ~100 times that)
    hours_at, instants = hours.to_list(), instant.to_list()
    first, starts, sizes = 0, [], []
    while first < len(instants):  # one step per window
        start = hours_at[first] * _HOUR_US
        end = bisect.bisect_right(instants, start + BLOCK_HOURS * _HOUR_US, lo=first)
        starts.append(start)
        sizes.append(end - first)
        first = end
    windows = pl.DataFrame({"s": starts, "n": sizes}, schema={"s": pl.Int64, "n": pl.UInt32})
    start = windows.select(pl.col("s").repeat_by("n").explode())["s"].cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    local = start if tz == "UTC" else start.dt.convert_time_zone(tz)
    return pl.DataFrame({"block": k, "_start": local.dt.replace_time_zone(None)})


def time_bucket(unit: str, tz: str, ts: pl.Expr | None = None) -> pl.Expr:
    """The start of the request's hour/day/week/month/quarter/year in the report's time zone (a
    naive local datetime; bucket_label makes it text after aggregation). Weeks start on Monday.
    A `block` is known only with every request (block_starts): per request, its block_key."""
    ts = pl.col("timestamp") if ts is None else ts
    if unit == "block":
        return block_key(ts)
    local = ts if tz == "UTC" else ts.dt.convert_time_zone(tz)
    every = {"hour": "1h", "day": "1d", "week": "1w", "month": "1mo", "quarter": "1q", "year": "1y"}[unit]
    return local.dt.truncate(every).dt.replace_time_zone(None).alias(unit)


_FORMAT = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "week": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y",
           "block": "%Y-%m-%d %H:%M"}


def bucket_label(unit: str) -> pl.Expr:
    """A bucket's label, sortable as text: `2026-10-01 10:00`, `2026-10-01` (a week: its Monday),
    `2026-10`, `2026-Q4`, `2026`."""
    start = pl.col(unit)
    if unit == "quarter":  # (strftime has no quarter)
        return pl.format("{}-Q{}", start.dt.year(), start.dt.quarter()).alias(unit)
    return start.dt.strftime(_FORMAT[unit]).alias(unit)
