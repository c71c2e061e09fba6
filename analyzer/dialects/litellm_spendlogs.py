"""`litellm-spendlogs`: LiteLLM proxy spend logs (CSV or Parquet dumps of LiteLLM_SpendLogs, or the
rows as the proxy's `/spend/logs` API returns them: JSON objects whose `metadata` is an object and
`request_tags` a list). The mapping (litellm_spendlogs.toml) reads the columns and the JSON inside
`metadata`; this module adds:

- `startTime` as Postgres writes timestamptz text (`2026-11-24 10:30:01.12+00`): the two-digit
  offset is made ISO (`+00:00`); a Parquet timestamp column is used as it is;
- `request_tags`, a JSON list of strings, as one dimension value (`a,b`; none: null). The strings are
  picked out with a pattern, not decoded, so that a malformed list cannot fail the file;
- Parquet dumps that kept `request_tags` as a list, and JSON rows (a list there): joined directly. (The engine compares the
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

    def from_text(text: pl.Expr) -> pl.Expr:
        return text.str.extract_all(r'"((?:[^"\\]|\\.)*)"').list.eval(pl.element().str.strip_chars('"')).list.join(",")
    if isinstance(lf.select(tags).collect_schema().dtypes()[0], pl.List):
        joined = tags.cast(pl.List(pl.String)).list.join(",")
        # A JSON row holding the list as text (`"[\"a\"]"`) decodes as a list of that one text.
        text = (tags.list.len() == 1) & joined.str.contains(r'^\s*\[\s*("|\]\s*$)')
        tags = pl.when(text).then(from_text(joined)).otherwise(joined)
    else:
        tags = from_text(tags.cast(pl.String))
    return lf.with_columns(start.alias("_x_start"), pl.when(tags != "").then(tags).alias("_x_tags"))


# Read by the hook, for JSON rows: the start as text; the tags as the list the API writes.
DIALECT = mapped.load(Path(__file__).with_suffix(".toml"), prepare=_prepare,
                      reads={("startTime",): pl.String(), ("request_tags",): pl.List(pl.String())})
