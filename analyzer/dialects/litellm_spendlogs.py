"""`litellm-spendlogs`: LiteLLM proxy spend logs (CSV or Parquet dumps of LiteLLM_SpendLogs). The
mapping (litellm_spendlogs.toml) reads the columns and the JSON inside `metadata`; this module adds:

- `startTime` as Postgres writes timestamptz text (`2026-11-24 10:30:01.12+00`): the two-digit
  offset is made ISO (`+00:00`); a Parquet timestamp column is used as it is;
- `request_tags`, a JSON list of strings, as one dimension value (`a,b`; none: null). The strings are
  picked out with a pattern, not decoded, so that a malformed list cannot fail the file;
- Parquet dumps that kept `request_tags` as a list: joined directly. (The engine compares the
  not-billable columns as text, decodes `metadata` text once, and reads a struct `metadata` as is.)
"""

from pathlib import Path

import polars as pl

from . import mapped


def _prepare(lf: pl.LazyFrame, src, ctx, get) -> pl.LazyFrame:
    start = get(("startTime",))
    if lf.select(start).collect_schema().dtypes()[0] == pl.String:
        start = start.str.replace(r"([+-]\d\d)$", "${1}:00")
    tags = get(("request_tags",))
    if isinstance(lf.select(tags).collect_schema().dtypes()[0], pl.List):
        tags = tags.cast(pl.List(pl.String)).list.join(",")
    else:
        tags = tags.cast(pl.String).str.extract_all(r'"((?:[^"\\]|\\.)*)"').list.eval(
            pl.element().str.strip_chars('"')).list.join(",")
    return lf.with_columns(start.alias("_x_start"), pl.when(tags != "").then(tags).alias("_x_tags"))


DIALECT = mapped.load(Path(__file__).with_suffix(".toml"), prepare=_prepare)
