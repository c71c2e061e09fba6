"""The `canonical` dialect: the canonical schema itself, as CSV, JSONL/JSON or Parquet.

Only `timestamp`, `model`, `input_tokens` and `output_tokens` are required; other columns default
(tier standard, speed standard, counts 0). Any column that is not canonical is a dimension
(workspace, api_key, project, ...). What `llm-cost price` writes reads back through this dialect.
"""

from __future__ import annotations

import polars as pl

from .. import schema
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
DEFAULTS = {"service_tier": "standard", "speed": "standard", "platform": None}


def _is_dimension(col: str) -> bool:
    return (col not in schema.CANONICAL and col not in DERIVED and col != "model"
            and not col.startswith(DERIVED_PREFIXES) and not col.startswith("_") and col != "")


def normalize(src: SourceFile) -> pl.LazyFrame:
    if src.container == "json":
        src = json_to_lines(src)
    cols = [c.lstrip("\ufeff") for c in src.columns]
    if src.container == "parquet":
        lf = src.scan_parquet().with_row_index("_row", offset=1)
        dtypes = dict(lf.collect_schema())
        get = pl.col
        raw = pl.struct(pl.all().exclude("_row")).struct.json_encode()
    elif src.container == "csv":
        lf = src.scan_csv()
        if src.columns and src.columns[0].startswith("\ufeff"):
            lf = lf.rename({src.columns[0]: cols[0]})
        dtypes = {c: pl.String() for c in cols}
        get = pl.col
        raw = pl.struct([pl.col(c) for c in cols]).struct.json_encode()
    else:  # jsonl
        lf = src.scan_lines().filter(pl.col(LINE).str.strip_chars() != "")
        dtypes = {c: pl.String() for c in cols}

        def get(c: str) -> pl.Expr:
            return pl.col(LINE).str.json_path_match(f"$.{c}") if c.isidentifier() else pl.col(LINE).str.json_path_match(f"$['{c}']")

        raw = pl.col(LINE)
    return canonical_frame(lf, cols, dtypes, get, raw, src, dialect="canonical",
                           bad_record=None if src.container != "jsonl" else _bad_json_line())


def _bad_json_line() -> pl.Expr:
    line = pl.col(LINE).str.strip_chars()
    return (
        pl.when(~line.str.starts_with("{") | line.str.json_path_match("$").is_null())
        .then(pl.lit("not a JSON object (unparsable line)"))
    )


def canonical_frame(lf: pl.LazyFrame, cols: list[str], dtypes: dict, get, raw: pl.Expr, src: SourceFile,
                    dialect: str, bad_record: pl.Expr | None = None) -> pl.LazyFrame:
    """Build the normalized frame from a record source whose field names are canonical."""
    present = set(cols)
    reasons: list[pl.Expr] = [] if bad_record is None else [bad_record]
    out: dict[str, pl.Expr] = {}

    def dt(c: str) -> pl.DataType:
        return dtypes.get(c, pl.String())

    ts, r = _parse.timestamp(get("timestamp"), "timestamp", dt("timestamp"))
    out["timestamp"] = ts
    reasons.append(r)
    model_col = "model_raw" if "model_raw" in present else "model"
    model = _parse.text(get(model_col), dt(model_col))
    out["model_raw"] = model
    reasons.append(pl.when(model.is_null()).then(pl.lit("missing model")))
    for c in schema.COUNT_COLUMNS:
        if c in present:
            v, r = _parse.count(get(c), c, dt(c), required=c in ("input_tokens", "output_tokens"))
            out[c] = v
            reasons.append(r)
        else:
            out[c] = pl.lit(0, pl.Int64)
    if "requests" in present:
        v, r = _parse.count(get("requests"), "requests", dt("requests"), required=False)
        out["requests"] = pl.when(get("requests").is_null()).then(pl.lit(1, pl.Int64)).otherwise(v)
        reasons.append(r)
    else:
        out["requests"] = pl.lit(1, pl.Int64)
    if "reported_cost" in present:
        v, r = _parse.money(get("reported_cost"), "reported_cost", dt("reported_cost"))
        out["reported_cost"] = v
        reasons.append(r)
    else:
        out["reported_cost"] = pl.lit(None, schema.MONEY)
    for c in ("request_id", "platform", "endpoint_scope", "service_tier", "speed", "inference_geo", "context_window"):
        v = _parse.text(get(c), dt(c)) if c in present else pl.lit(None, pl.String)
        if c in ("service_tier", "speed", "platform", "endpoint_scope", "inference_geo", "context_window"):
            v = v.str.to_lowercase()
        if DEFAULTS.get(c):
            v = v.fill_null(DEFAULTS[c])
        out[c] = v
    tier = out["service_tier"]
    reasons.append(pl.when(~tier.is_in(schema.SERVICE_TIERS)).then(pl.format("unknown service_tier ({})", tier)))
    speed = out["speed"]
    reasons.append(pl.when(~speed.is_in(["standard", "fast"])).then(pl.format("unknown speed ({})", speed)))
    out["source"] = pl.lit(dialect)
    out["source_file"] = pl.lit(src.display)
    out["source_row"] = pl.col("_row").cast(pl.Int64)
    dims = {c: _parse.text(get(c), dt(c)) for c in cols if _is_dimension(c)}
    reason = pl.concat_str(reasons[1:] if bad_record is not None else reasons, separator="; ", ignore_nulls=True)
    reason = pl.when(reason == "").then(None).otherwise(reason)
    if bad_record is not None:  # an unreadable record has one reason; its fields are not worth listing
        reason = pl.coalesce(bad_record, reason)
    exprs = [out[c].cast(t).alias(c) for c, t in schema.CANONICAL.items()]
    exprs += [e.alias(c) for c, e in dims.items()]
    exprs += [reason.alias("_reason"), raw.alias("_raw"), pl.lit(src.index, pl.Int64).alias("_file")]
    return lf.select(exprs)


DIALECT = Dialect(
    name="canonical",
    description="llm-cost's own request schema (timestamp, model, token counts; what `llm-cost price` writes)",
    required=REQUIRED,
    optional=OPTIONAL,
    normalize=normalize,
)
