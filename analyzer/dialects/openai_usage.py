"""`openai-usage`: OpenAI organization Usage API pages (usage/completions). The mapping
(openai_usage.toml) reads one usage row; this module makes the pages into rows (see _pages.py), takes
the tier from `batch` (true: the Batch API, 0.5x) or `service_tier`, and prices every row at the base
tier: the API has no context window, and a bucket's summed prompt tokens say nothing about any one
request's (a long-context request in the bucket is under-priced; the report says so)."""

import dataclasses
from pathlib import Path

import polars as pl

from . import _pages, mapped

MAPPING_FILE = Path(__file__).with_suffix(".toml")
MAPPING = _pages.read_mapping(MAPPING_FILE)
EXTRA = {("batch",): pl.String(), ("service_tier",): pl.String()}
BASE_WINDOW = "0-272k"  # below the OpenAI book's long-context threshold (272K prompt tokens)


def _is_usage_page(src) -> bool:
    """OpenAI pages ({object: "page", data: [...]}) whose rows count requests. The Costs API shares the
    envelope but its rows carry amounts. A page with no rows is read as no rows, not refused."""
    pages_ok = all(p.get("object") == "page" and isinstance(p.get("data"), list) for p in src.sample)
    return pages_ok and all("num_model_requests" in row for row in _pages.sample_rows(src.sample))


def _prepare(lf: pl.LazyFrame, src, ctx, get) -> pl.LazyFrame:
    lf = _pages.flatten(lf, get, MAPPING, EXTRA)
    batch = get(("batch",)).cast(pl.String).str.to_lowercase() == "true"
    return lf.with_columns(
        pl.when(batch).then(pl.lit("batch")).otherwise(get(("service_tier",))).alias("_x_tier"),
        get(("num_model_requests",)).is_not_null().alias("_x_requests_known"),
    )


def _finish(lf: pl.LazyFrame, src, ctx) -> pl.LazyFrame:
    ctx.note(f"{MAPPING.name}: the Usage API gives no context window; rows are priced at the base tier (prompts up "
             "to 272K tokens), a lower bound if any request was longer")
    return _pages.aggregated(lf, BASE_WINDOW, pl.col("_x_requests_known"))


DIALECT = dataclasses.replace(
    mapped.dialect_from_mapping(MAPPING_FILE, prepare=_prepare, finish=_finish, adds=("context_window",),
                reads={("data",): _pages.page_type(_pages.row_type(MAPPING, EXTRA))}),
    matches=_is_usage_page)
