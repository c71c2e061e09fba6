"""The `canonical` dialect: the canonical schema itself, as CSV, JSONL/JSON or Parquet.

Only `timestamp`, `model`, `input_tokens` and `output_tokens` are required; other columns default
(tier standard, speed standard, counts 0). Any column that is not canonical is a dimension
(workspace, api_key, project, ...). What `llm-cost price` writes reads back through this dialect.
"""

from __future__ import annotations

import polars as pl

from .. import schema
from ..labels import DEFAULTS
from ..sources import LINE, SourceFile, json_to_lines
from . import Dialect, _parse

REQUIRED = ("timestamp", "model|model_raw", "input_tokens", "output_tokens")
OPTIONAL = tuple(
    c for c in schema.CANONICAL if c not in ("timestamp", "model_raw", "input_tokens", "output_tokens", "source",
                                             "source_file", "source_row")
)
# Columns `llm-cost price` adds: derived again on every run, so never read back as dimensions.
DERIVED_PREFIXES = ("cost", "list_cost", "savings", "rate_")
DERIVED = {"model", "family", "provider", "endpoint_scope_resolved", "context_tier", "discount_type", "price_period", "price_book", "cache_write_tokens",
           "source", "source_file", "source_row", "pricing_status", "unpriced_reason"}


def _is_dimension(col: str) -> bool:
    return (col not in schema.CANONICAL and col not in DERIVED and col != "model"
            and not col.startswith(DERIVED_PREFIXES) and not col.startswith("_") and col != "")


def normalize(src: SourceFile, robust: bool = False) -> pl.LazyFrame:
    """Two ways to read text: the default (fast) lets Polars' readers parse JSON Lines and CSV counts
    natively and fails on a malformed line or a non-integer count; the pipeline then retries the run
    with `robust`, which reads every field as text (and JSON line by line), so that such a record is
    quarantined with its line number instead (see pipeline._with_retry)."""
    if src.container == "json":
        src = json_to_lines(src)
    cols = [c.lstrip("\ufeff") for c in src.columns]
    if src.container == "parquet":
        lf = src.scan_parquet().with_row_index("_row", offset=1)
        dtypes = dict(lf.collect_schema())
        return canonical_frame(lf, cols, dtypes, pl.col, pl.struct(pl.all().exclude("_row")).struct.json_encode(),
                               src, dialect="canonical")
    if src.container == "csv":
        # Fast path: counts parsed by the CSV reader. A file with a non-integer count fails it, and
        # the run is retried robustly, where such a value quarantines its row (see pipeline).
        integers = () if robust else tuple(c for c in src.columns if c in (*schema.COUNT_COLUMNS, "requests"))
        lf = src.scan_csv(integers)
        if src.columns and src.columns[0].startswith("\ufeff"):
            lf = lf.rename({src.columns[0]: cols[0]})
        raw = pl.struct([pl.col(c) for c in cols]).struct.json_encode()
        dtypes = {c: pl.Int64() if c in integers else pl.String() for c in cols}
        return canonical_frame(lf, cols, dtypes, pl.col, raw, src, dialect="canonical")
    if not robust:
        integers = {c for c in cols if c in (*schema.COUNT_COLUMNS, "requests")}
        dtypes = {c: pl.Int64() if c in integers else pl.String() for c in cols}
        lf = src.scan_ndjson(dtypes)
        raw = pl.struct([pl.col(c) for c in cols]).struct.json_encode()
        return canonical_frame(lf, cols, dtypes, pl.col, raw, src, dialect="canonical")
    lf = src.scan_lines().filter(pl.col(LINE).str.strip_chars() != "")

    def get(c: str) -> pl.Expr:
        path = f"$.{c}" if c.isidentifier() else f"$['{c}']"
        return pl.col(LINE).str.json_path_match(path)

    return canonical_frame(lf, cols, {c: pl.String() for c in cols}, get, pl.col(LINE), src, dialect="canonical",
                           bad_record=_bad_json_line())


def _bad_json_line() -> tuple[pl.Expr, pl.Expr]:
    line = pl.col(LINE).str.strip_chars()
    ok = line.str.starts_with("{") & line.str.json_path_match("$").is_not_null()
    return ok, pl.when(~ok).then(pl.lit("not a JSON object (unparsable line)"))


def _raw(c: str) -> str:
    return f"_f_{c}"


def canonical_frame(lf: pl.LazyFrame, cols: list[str], dtypes: dict, get, raw: pl.Expr, src: SourceFile,
                    dialect: str, bad_record: tuple[pl.Expr, pl.Expr] | None = None) -> pl.LazyFrame:
    """Build the normalized frame from a record source whose field names are canonical.

    Adds `_ok` (every field valid), `_reason` (why not; evaluated only when asked for), `_raw` (the
    record, for the quarantine file) and `_file`."""
    present = set(cols)
    model_col = "model_raw" if "model_raw" in present else "model"
    wanted = {"timestamp", model_col, *(c for c in schema.COUNT_COLUMNS if c in present)}
    wanted |= {c for c in ("requests", "reported_cost", "request_id", "platform", "endpoint_scope", "service_tier",
                           "speed", "inference_geo", "context_window") if c in present}
    dims = [c for c in cols if _is_dimension(c)]
    lf = lf.select(
        pl.col("_row"), *(get(c).alias(_raw(c)) for c in sorted(wanted | set(dims))), raw.alias("_raw"),
        *([bad_record[0].alias("_line_ok"), bad_record[1].alias("_line_reason")] if bad_record else []),
    )

    def dt(c: str) -> pl.DataType:
        return dtypes.get(c, pl.String())

    fields = [_parse.timestamp(_raw("timestamp"), "timestamp", dt("timestamp"))]
    for c in schema.COUNT_COLUMNS:
        if c in present:
            fields.append(_parse.count(_raw(c), c, dt(c), required=c in ("input_tokens", "output_tokens")))
    if "requests" in present:
        f = _parse.count(_raw("requests"), "requests", dt("requests"), required=False)
        fields.append(_parse.Field(f.name, f.first, f.ok, f.reason, f.then, pl.col("requests").fill_null(1)))
    if "reported_cost" in present:
        fields.append(_parse.money(_raw("reported_cost"), "reported_cost", dt("reported_cost")))
    # Labels are kept as logged here; `labels.py` trims, lower-cases and checks them after aggregation.
    labels = {"model_raw": _parse.label(_raw(model_col), dt(model_col))}
    labels.update({c: _parse.label(_raw(c), dt(c)) for c in ("request_id", "platform", "endpoint_scope",
                  "service_tier", "speed", "inference_geo", "context_window") if c in present})
    labels.update({c: _parse.label(_raw(c), dt(c)) for c in dims})
    constants = {c: pl.lit(0, pl.Int64) for c in schema.COUNT_COLUMNS if c not in present}
    constants.update({c: pl.lit(DEFAULTS.get(c), pl.String) for c in ("request_id", "platform", "endpoint_scope",
                      "service_tier", "speed", "inference_geo", "context_window") if c not in present})
    if "requests" not in present:
        constants["requests"] = pl.lit(1, pl.Int64)
    if "reported_cost" not in present:
        constants["reported_cost"] = pl.lit(None, schema.MONEY)
    constants.update(source=pl.lit(dialect), source_file=pl.lit(src.display), source_row=pl.col("_row").cast(pl.Int64),
                     _file=pl.lit(src.index, pl.Int64))
    out = _parse.frame(lf, fields, labels, constants)
    if bad_record is not None:  # an unreadable record has one reason; its fields are not worth listing
        out = out.with_columns((pl.col("_line_ok") & pl.col("_ok")).alias("_ok"),
                               pl.coalesce("_line_reason", "_reason").alias("_reason"))
    names = [*schema.CANONICAL, *dims, "_ok", "_reason", "_raw", "_file"]
    return out.select([pl.col(c).cast(schema.CANONICAL[c]) if c in schema.CANONICAL else pl.col(c) for c in names])


DIALECT = Dialect(
    name="canonical",
    description="llm-cost's own request schema (timestamp, model, token counts; what `llm-cost price` writes)",
    required=REQUIRED,
    optional=OPTIONAL,
    normalize=normalize,
)
