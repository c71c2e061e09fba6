"""`litellm-spendlogs`: LiteLLM proxy spend logs (CSV or Parquet dumps of LiteLLM_SpendLogs, or the
rows as the proxy's `/spend/logs` API returns them: JSON objects whose `metadata` is an object and
`request_tags` a list). The mapping (litellm_spendlogs.toml) reads the columns and the JSON inside
`metadata`; this module adds:

- `startTime` as Postgres writes timestamptz text (`2026-11-24 10:30:01.12+00`): the two-digit
  offset is made ISO (`+00:00`); a Parquet timestamp column is used as it is;
- `request_tags`, a JSON list of strings, as one dimension value (`a,b`; none: null). The strings are
  picked out with a pattern, not decoded, so that a malformed list cannot fail the file;
- Parquet dumps that kept `request_tags` as a list, and JSON rows (a list there): joined directly.
  (The engine compares the not-billable columns as text, decodes `metadata` text once, and reads a
  struct `metadata` as is.)
- The UI endpoint's pages (`/spend/logs/ui`: `{data: [rows], total, page, ...}`): each row of a page
  becomes a record, read exactly like a row of `/spend/logs` (its ordinal in the file is its
  `source_row`, and its JSON the quarantined text), as the usage pages' rows are (see _pages.py).
"""

import dataclasses
from pathlib import Path

import polars as pl

from ..sources import LINE
from . import _pages, mapped

MAPPING_FILE = Path(__file__).with_suffix(".toml")
MAPPING = _pages.read_mapping(MAPPING_FILE)
_TAGS = ("request_tags",)


def _row_type(robust: bool) -> pl.Struct:
    """One spend-log row: every path the mapping and this module read, as text (the tags a list)."""
    paths = {alt: pl.String() for alts in (*MAPPING.fields.values(), *MAPPING.dimensions.values())
             for alt in alts if alt[0][:1] != "@"}
    paths.update({path: pl.String() for path in MAPPING.not_billable})
    paths.update({("startTime",): pl.String(), _TAGS: pl.List(pl.String())})
    return mapped._dtype_tree(paths)


def _rows(src) -> list[dict]:
    """The spend-log rows among the first records: the records, or the rows of UI pages."""
    out = []
    for rec in src.sample:
        out.extend(r for r in (rec["data"] if isinstance(rec.get("data"), list) else [rec]) if isinstance(r, dict))
    return out


def _is_spendlogs(src) -> bool:
    rows = _rows(src)
    return bool(rows) and all("request_id" in r and "prompt_tokens" in r and "startTime" in r for r in rows)


def _unwrap_pages(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Each UI page's rows as records (a line that is a row already stays one)."""
    robust = mapped.DECODED not in lf.collect_schema().names()
    row = _row_type(robust)
    page = (pl.when(pl.col("_line_ok")).then(pl.col(LINE)).str.json_decode(pl.Struct({"data": pl.List(row)}))
            .struct.field("data"))
    lf = (lf.with_columns(page.alias("_x_row")).explode("_x_row", empty_as_null=True)
          .with_columns(pl.col("_x_row").is_null().alias("_x_whole")))
    # A page with no rows holds no record; a line that is a row, or cannot be read, stays as it is.
    page_without_rows = pl.col("_line_ok") & pl.col(LINE).str.contains('"data"\\s*:\\s*\\[')
    lf = lf.filter(pl.col("_x_row").is_not_null() | (pl.col("_x_whole") & ~page_without_rows))
    text = pl.when(pl.col("_x_whole")).then(pl.col(LINE)).otherwise(pl.col("_x_row").struct.json_encode())
    replaced = [text.alias(LINE), pl.int_range(1, pl.len() + 1).alias("_row")]
    if not robust:
        replaced.append(pl.when(pl.col("_x_whole")).then(pl.col(mapped.DECODED)).otherwise(pl.col("_x_row"))
                        .alias(mapped.DECODED))
        return lf.with_columns(replaced).drop("_x_row", "_x_whole")
    # (the robust reading's paths read each row's own text now, not the page's: see mapped.FIRSTS)
    return mapped.with_first_keys(lf.with_columns(replaced).drop("_x_row", "_x_whole"), pl.col(LINE))


def _prepare(lf: pl.LazyFrame, src, ctx, get) -> pl.LazyFrame:
    if src.container in ("json", "jsonl") and any(isinstance(r.get("data"), list) for r in src.sample):
        lf = _unwrap_pages(lf)
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
    return lf.with_columns(start.alias("_x_start"), pl.when(tags != "").then(tags).alias("_x_tags"),
                           *_metadata_text(src))


# The metadata paths a JSON row holding `metadata` as JSON text (a table dumped by a tool that writes
# a JSON column as a string) is read at: the paths into an object find nothing there, and its cache
# reads and writes were priced as plain input (a 48K-token write 20% under its cost, exit 0).
_META_TEXT = {"_x_meta_cache_read": "additional_usage_values.cache_read_input_tokens",
              "_x_meta_cache_write": "additional_usage_values.cache_creation_input_tokens",
              "_x_meta_5m": "additional_usage_values.cache_creation_token_details.ephemeral_5m_input_tokens",
              "_x_meta_1h": "additional_usage_values.cache_creation_token_details.ephemeral_1h_input_tokens",
              "_x_meta_key_alias": "user_api_key_alias", "_x_meta_user": "user_api_key_user_id",
              "_x_meta_team_alias": "user_api_key_team_alias"}


def _metadata_text(src) -> list[pl.Expr]:
    """The `@_x_meta_*` columns: read inside a JSON row's metadata text (null for an object, which
    the mapping's paths read, and for CSV/Parquet, whose metadata column the engine decodes). Only a
    file whose first rows hold the text pays for the second parse (one tool dumps a table one way)."""
    if src.container not in ("json", "jsonl") or not any(isinstance(r.get("metadata"), str) for r in _rows(src)):
        return [pl.lit(None, pl.String).alias(c) for c in _META_TEXT]
    as_text = pl.col(LINE).str.contains(r'"metadata"\s*:\s*"')
    text = pl.when(as_text).then(pl.col(LINE).str.json_path_match("$.metadata"))
    return [text.str.json_path_match(f"$.{path}").alias(c) for c, path in _META_TEXT.items()]


# Read by the hook, for JSON rows: the start as text; the tags as the list the API writes.
DIALECT = dataclasses.replace(
    mapped.dialect_from_mapping(MAPPING_FILE, prepare=_prepare, reads={("startTime",): pl.String(), _TAGS: pl.List(pl.String())}),
    matches=_is_spendlogs)
