"""`anthropic-usage-report`: Admin API usage pages, legacy (`usage_report/messages`, bucket.results[])
and analytics (`analytics/usage`, bucket.group + bucket.usage). The mapping (anthropic_usage_report.toml)
reads one usage row; this module makes the pages into rows (see _pages.py) and says what a
pre-aggregated row cannot: the legacy report's request count is unknown, and a row not grouped by
context window is priced at the base tier (noted in the report)."""

import dataclasses
from pathlib import Path

import polars as pl

from . import _pages, mapped

MAPPING_FILE = Path(__file__).with_suffix(".toml")
MAPPING = _pages.read_mapping(MAPPING_FILE)
BASE_WINDOW = "0-200k"


def _is_usage_page(src) -> bool:
    """Pages ({data: [...]}, no `object` key: OpenAI's pages say "page") whose rows count tokens. The
    cost report shares the envelope but its rows carry amounts. A page with no rows (a day without
    traffic) is read as no rows, not refused."""
    pages_ok = all(isinstance(p.get("data"), list) and "object" not in p for p in src.sample)
    # Every bucket holds usage: results[] (legacy) or usage{} (analytics). An analytics *cost* page
    # has cost{} instead, and must not read as a usage report with no rows.
    buckets = [b for p in src.sample for b in (p.get("data") or []) if isinstance(b, dict)]
    usage_buckets = all(isinstance(b.get("results"), list) or isinstance(b.get("usage"), dict) for b in buckets)
    return pages_ok and usage_buckets and all("uncached_input_tokens" in row for row in _pages.sample_rows(src.sample))


def _prepare(lf: pl.LazyFrame, src, ctx, get) -> pl.LazyFrame:
    lf = _pages.flatten(lf, get, MAPPING)
    return lf.with_columns(get(("requests",)).is_not_null().alias("_x_requests_known"))


def _finish(lf: pl.LazyFrame, src, ctx) -> pl.LazyFrame:
    rows = list(_pages.sample_rows(src.sample))
    if any(row.get("context_window") is None for row in rows):
        ctx.note(_pages.NO_WINDOW.format(MAPPING.name, BASE_WINDOW))
    if not all(row.get("requests") is not None for row in rows):
        ctx.note(_pages.NO_REQUESTS.format(MAPPING.name + " (legacy report)"))
    return _pages.aggregated(lf, BASE_WINDOW, pl.col("_x_requests_known"))


DIALECT = dataclasses.replace(
    mapped.dialect_from_mapping(MAPPING_FILE, prepare=_prepare, finish=_finish,
                reads={("data",): _pages.page_type(_pages.row_type(MAPPING))}),
    matches=_is_usage_page)
