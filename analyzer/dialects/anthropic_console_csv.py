"""`anthropic-console-csv`: the Console usage export. The mapping (anthropic_console_csv.toml) reads
its columns by name; this module says what a pre-aggregated row cannot (see _pages.aggregated): the
export gives no request count, and a row without a context window is priced at the base tier."""

from pathlib import Path

import polars as pl

from . import _pages, mapped

NAME = "anthropic-console-csv"
BASE_WINDOW = "0-200k"


def _finish(lf: pl.LazyFrame, src, ctx) -> pl.LazyFrame:
    ctx.note(_pages.NO_REQUESTS.format(NAME))
    if any(not (row.get("context_window") or "").strip() for row in src.sample):
        ctx.note(_pages.NO_WINDOW.format(NAME, BASE_WINDOW))
    return _pages.aggregated(lf, BASE_WINDOW)


# `adds`: requests are stated (as unknown: null), not 1 per row; a context window is stated even by an export
# without the column (the base tier); and the older exports' unsplit cache-write column is folded into
# the 5m count even when no 5m column exists (mapped.carries forgets it for CSV).
DIALECT = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), finish=_finish,
                      adds=("cache_write_5m_tokens", "requests", "context_window"))
