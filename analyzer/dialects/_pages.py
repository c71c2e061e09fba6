"""Usage API pages, pre-aggregated: shared by anthropic-usage-report and openai-usage.

Both APIs return pages `{data: [bucket, ...], has_more, next_page}` whose buckets hold the usage rows,
either as a list (`bucket.results[]`: Anthropic's legacy report, OpenAI) or as one row split in two
objects (`bucket.group` + `bucket.usage`: Anthropic's analytics API). A page is one JSON document (a
`.json` file) or one line of a `.jsonl` file.

`flatten` turns each page into one record per usage row, with the bucket's own keys (its start and
end) written into the row, so that the dialect's mapping reads plain paths (`starting_at`,
`cache_creation.ephemeral_5m_input_tokens`) exactly as for a log of single records. It replaces the
page, in the frame the mapping reads, by the row: the decoded struct on the fast path, the JSON text
on the robust path (and as the raw record of the quarantine file). A row's `source_row` is its
ordinal in the file: a page holds many rows, so the page's line would not say which one.

Rows are not requests: `aggregated` says what a pre-aggregated row cannot (see its docstring).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl

from ..sources import LINE
from . import mapped

BUCKET_KEYS = ("starting_at", "ending_at", "start_time", "end_time")  # copied into each row of a bucket


def read_mapping(path: Path) -> mapped.Mapping:
    """The mapping alone (a hook's types derive from it before the dialect is built)."""
    return mapped.parse_mapping(tomllib.loads(path.read_text(encoding="utf-8")), str(path))


def row_type(m: mapped.Mapping, extra: dict[tuple[str, ...], pl.DataType] | None = None,
             robust: bool = False) -> pl.Struct:
    """The struct of one usage row: every path the mapping reads (counts as integers, the rest as
    text; everything as text on the robust path), plus `extra` paths a hook reads."""
    paths: dict[tuple[str, ...], pl.DataType] = {}
    for name, alts in (*m.fields.items(), *m.dimensions.items()):
        for alt in alts:
            if alt[0][:1] != "@":
                paths[alt] = pl.Int64() if name in mapped.COUNTS and not robust else pl.String()
    for path, dtype in (extra or {}).items():
        paths[path] = pl.String() if robust else dtype
    return mapped._dtype_tree(paths)


def page_type(row: pl.Struct) -> pl.List:
    """`data`: a list of buckets, each with its keys and either `results` or `group` + `usage`."""
    bucket = {k: pl.String() for k in BUCKET_KEYS}
    bucket.update(results=pl.List(row), group=row, usage=row)
    return pl.List(pl.Struct(bucket))


def flatten(lf: pl.LazyFrame, get, m: mapped.Mapping, extra: dict | None = None) -> pl.LazyFrame:
    """One record per usage row of each page (see the module docstring)."""
    robust = mapped.DECODED not in lf.collect_schema().names()
    row = row_type(m, extra, robust)
    data = get(("data",))
    if robust:  # read as JSON text by the engine's path reader: decode it, every leaf as text
        data = data.str.json_decode(page_type(row))
    fields = [f.name for f in row.fields]
    lf = lf.with_columns(data.alias("_x_bucket")).explode("_x_bucket")
    bucket = pl.col("_x_bucket")
    group, usage = bucket.struct.field("group"), bucket.struct.field("usage")
    # The analytics API's row: its counts in `usage`, its dimensions in `group`.
    split = pl.struct([pl.coalesce(usage.struct.field(f), group.struct.field(f)).alias(f) for f in fields])
    rows = (pl.when(bucket.struct.field("results").is_not_null()).then(bucket.struct.field("results"))
            .when(usage.is_not_null()).then(pl.concat_list(split)))
    lf = lf.with_columns(rows.alias("_x_row")).explode("_x_row")
    # An empty page or bucket has no rows; an unreadable line is kept, to be quarantined.
    lf = lf.filter(pl.col("_x_row").is_not_null() | ~pl.col("_line_ok"))
    keys = [k for k in BUCKET_KEYS if k in fields]
    r = pl.col("_x_row").struct.with_fields(
        [pl.coalesce(pl.field(k), bucket.struct.field(k)).alias(k) for k in keys])
    lf = lf.with_columns(r.alias("_x_row"))
    row_text = pl.when(pl.col("_x_row").is_not_null()).then(pl.col("_x_row").struct.json_encode())
    replaced = [row_text.otherwise(pl.col(LINE)).alias(LINE), pl.int_range(1, pl.len() + 1).alias("_row")]
    if not robust:
        replaced.append(pl.col("_x_row").alias(mapped.DECODED))
        return lf.with_columns(replaced).drop("_x_bucket", "_x_row")
    # (the robust reading's paths read each row's own text now, not the page's: see mapped.FIRSTS)
    return mapped.with_first_keys(lf.with_columns(replaced).drop("_x_bucket", "_x_row"), pl.col(LINE))


def aggregated(lf: pl.LazyFrame, base_window: str, requests_known: pl.Expr | None = None) -> pl.LazyFrame:
    """What a pre-aggregated row cannot say, made explicit (the dialect notes it under the report):

    - its request count, when the source gives none (`requests_known` false or absent): null
      (unknown), not 1 per row; the report's request totals then count only rows that state one;
    - its context window, when the source does not give it: `base_window` (the base tier). A row's
      summed tokens say nothing about any one request's prompt, so the per-request rule (prompt over
      the threshold) must never see them; the base tier is a lower bound."""
    known = requests_known if requests_known is not None else pl.lit(False)
    return lf.with_columns(
        pl.when(known).then(pl.col("requests")).otherwise(None).alias("requests"),
        pl.col("context_window").fill_null(base_window),
    )


NO_REQUESTS = "{}: rows are totals and give no request count; their requests are not counted"
NO_WINDOW = ("{}: rows not grouped by context window are priced at the base tier ({}), a lower bound; "
             "export them grouped by context window for exact long-context prices")


def sample_rows(sample: list[dict]):
    """The usage rows of the first pages (detection and notes only; never the data itself)."""
    for page in sample:
        for bucket in page.get("data") or [] if isinstance(page, dict) else []:
            if not isinstance(bucket, dict):
                continue
            if isinstance(bucket.get("results"), list):
                yield from (r for r in bucket["results"] if isinstance(r, dict))
            elif isinstance(bucket.get("usage"), dict):
                yield {**(bucket.get("group") or {}), **bucket["usage"]}
