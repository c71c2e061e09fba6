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


def normalize(src: SourceFile, robust: bool = False) -> pl.LazyFrame:
    """`robust` reads JSON Lines line by line (exact line numbers, malformed lines quarantined);
    the default uses Polars' NDJSON reader, about 20x faster, which fails on a malformed line: the
    pipeline then retries the run robustly (see pipeline.analyze)."""
    if src.container == "json":
        src = json_to_lines(src)
    cols = [c.lstrip("\ufeff") for c in src.columns]
    if src.container == "parquet":
        lf = src.scan_parquet().with_row_index("_row", offset=1)
        dtypes = dict(lf.collect_schema())
        return canonical_frame(lf, cols, dtypes, pl.col, pl.struct(pl.all().exclude("_row")).struct.json_encode(),
                               src, dialect="canonical")
    if src.container == "csv":
        lf = src.scan_csv()
        if src.columns and src.columns[0].startswith("\ufeff"):
            lf = lf.rename({src.columns[0]: cols[0]})
        raw = pl.struct([pl.col(c) for c in cols]).struct.json_encode()
        return canonical_frame(lf, cols, {c: pl.String() for c in cols}, pl.col, raw, src, dialect="canonical")
    if not robust:
        lf = src.scan_ndjson({c: pl.String() for c in cols})
        raw = pl.struct([pl.col(c) for c in cols]).struct.json_encode()
        return canonical_frame(lf, cols, {c: pl.String() for c in cols}, pl.col, raw, src, dialect="canonical")
    lf = src.scan_lines().filter(pl.col(LINE).str.strip_chars() != "")

    def get(c: str) -> pl.Expr:
        path = f"$.{c}" if c.isidentifier() else f"$['{c}']"
        return pl.col(LINE).str.json_path_match(path)

    return canonical_frame(lf, cols, {c: pl.String() for c in cols}, get, pl.col(LINE), src, dialect="canonical",
                           bad_record=_bad_json_line())


def _bad_json_line() -> _parse.Parsed:
    line = pl.col(LINE).str.strip_chars()
    ok = line.str.starts_with("{") & line.str.json_path_match("$").is_not_null()
    return _parse.Parsed(pl.lit(None), ok, pl.when(~ok).then(pl.lit("not a JSON object (unparsable line)")))


def canonical_frame(lf: pl.LazyFrame, cols: list[str], dtypes: dict, get, raw: pl.Expr, src: SourceFile,
                    dialect: str, bad_record: _parse.Parsed | None = None) -> pl.LazyFrame:
    """Build the normalized frame from a record source whose field names are canonical.

    Adds `_ok` (every field valid), `_reason` (why not; evaluated only when asked for) and `_raw`."""
    present = set(cols)
    checks: list[_parse.Parsed] = []
    out: dict[str, pl.Expr] = {}

    def dt(c: str) -> pl.DataType:
        return dtypes.get(c, pl.String())

    ts = _parse.timestamp(get("timestamp"), "timestamp", dt("timestamp"))
    out["timestamp"] = ts.value
    checks.append(ts)
    model_col = "model_raw" if "model_raw" in present else "model"
    model = _parse.text(get(model_col), dt(model_col))
    out["model_raw"] = model
    checks.append(_parse.Parsed(model, model.is_not_null(), pl.when(model.is_null()).then(pl.lit("missing model"))))
    for c in schema.COUNT_COLUMNS:
        if c in present:
            p = _parse.count(get(c), c, dt(c), required=c in ("input_tokens", "output_tokens"))
            out[c] = p.value
            checks.append(p)
        else:
            out[c] = pl.lit(0, pl.Int64)
    if "requests" in present:
        p = _parse.count(get("requests"), "requests", dt("requests"), required=False)
        out["requests"] = pl.when(get("requests").is_null()).then(pl.lit(1, pl.Int64)).otherwise(p.value)
        checks.append(p)
    else:
        out["requests"] = pl.lit(1, pl.Int64)
    if "reported_cost" in present:
        p = _parse.money(get("reported_cost"), "reported_cost", dt("reported_cost"))
        out["reported_cost"] = p.value
        checks.append(p)
    else:
        out["reported_cost"] = pl.lit(None, schema.MONEY)
    for c in ("request_id", "platform", "endpoint_scope", "service_tier", "speed", "inference_geo", "context_window"):
        if c not in present:
            out[c] = pl.lit(DEFAULTS.get(c), pl.String)
            continue
        v = _parse.text(get(c), dt(c))
        if c != "request_id":
            v = v.str.to_lowercase()
        out[c] = v.fill_null(DEFAULTS[c]) if DEFAULTS.get(c) else v
    for c, allowed in (("service_tier", schema.SERVICE_TIERS), ("speed", ("standard", "fast"))):
        if c in present:
            ok = out[c].is_in(allowed)
            checks.append(_parse.Parsed(out[c], ok, pl.when(~ok).then(pl.format(f"unknown {c} ({{}})", out[c]))))
    out["source"] = pl.lit(dialect)
    out["source_file"] = pl.lit(src.display)
    out["source_row"] = pl.col("_row").cast(pl.Int64)
    dims = {c: _parse.text(get(c), dt(c)) for c in cols if _is_dimension(c)}
    ok = pl.all_horizontal([p.ok for p in checks])
    reason = pl.concat_str([p.reason for p in checks], separator="; ", ignore_nulls=True)
    reason = pl.when(reason == "").then(None).otherwise(reason)
    if bad_record is not None:  # an unreadable record has one reason; its fields are not worth listing
        ok = bad_record.ok & ok
        reason = pl.coalesce(bad_record.reason, reason)
    exprs = [out[c].cast(t).alias(c) for c, t in schema.CANONICAL.items()]
    exprs += [e.alias(c) for c, e in dims.items()]
    exprs += [ok.alias("_ok"), reason.alias("_reason"), raw.alias("_raw"), pl.lit(src.index, pl.Int64).alias("_file")]
    return lf.select(exprs)


DIALECT = Dialect(
    name="canonical",
    description="llm-cost's own request schema (timestamp, model, token counts; what `llm-cost price` writes)",
    required=REQUIRED,
    optional=OPTIONAL,
    normalize=normalize,
)
