"""Label columns (model ids as logged, tiers, platforms, dimensions): normalised and checked.

Trimming and lower-casing strings is the most expensive thing a pass over every request could do
(it allocates a new string per row and column), and labels take few distinct values. So the main
pass groups by labels exactly as logged, and these expressions run on the aggregated rows, which
are then summed again. Per-request outputs (`llm-cost price`, the quarantine file) apply the very
same expressions to each row, so both paths agree on every row's fate.
"""

from __future__ import annotations

import polars as pl

from .schema import CANONICAL, KNOWN_DIMENSIONS, SERVICE_TIERS

# The reason of a record that could not be decoded at all: it is the whole reason (the fields a
# broken line seems to lack, "missing model", are not what is wrong with it).
UNREADABLE = "not a JSON object (unparsable line)"

LOWERCASE = ("platform", "endpoint_scope", "service_tier", "speed", "inference_geo", "context_window")
DEFAULTS = {"service_tier": "standard", "speed": "standard"}
SPEEDS = ("standard", "fast")

# What a label is trimmed of: whitespace (NBSP, U+3000, U+2028, ...), control characters and invisible
# format characters (Unicode Cf: U+200B zero-width space, U+FEFF BOM, U+2060, bidi marks, ...). Neither
# names anything: a model of only U+200B is no model, and `haiku\u200b` the same model as `haiku`.
# (A regex over both ends: 0.24 CPU s per 5M rows, against 0.16 for strip_chars() of whitespace
# alone and 0.52 for strip_chars() of the 247 characters spelled out.)
_INVISIBLE = r"[\p{White_Space}\p{Cc}\p{Cf}]"
_EDGES = rf"^{_INVISIBLE}+|{_INVISIBLE}+$"


def trim(value: pl.Expr) -> pl.Expr:
    """A label's text without its invisible ends (see _INVISIBLE)."""
    return value.str.replace_all(_EDGES, "")


def spelled(col: str, value: pl.Expr | None = None) -> pl.Expr:
    """A label's words as compared: trimmed, lower-cased for the columns that are, null when blank
    (no default). A format's own words for a value (mapped `[values.<column>]`) are matched on
    these, so `Default` and ` default ` are the alias `default`."""
    s = trim(pl.col(col) if value is None else value)
    s = pl.when(s == "").then(None).otherwise(s)
    return s.str.to_lowercase() if col in LOWERCASE else s


def _clean_label(col: str, value: pl.Expr | None = None) -> pl.Expr:
    s = spelled(col, value)
    if col in DEFAULTS:
        s = s.fill_null(DEFAULTS[col])
    return s.alias(col)


def label_columns(columns: list[str]) -> list[str]:
    """The label columns of a frame: canonical string columns (not request_id) and dimensions."""
    canonical = [c for c, t in CANONICAL.items() if t == pl.String and c not in ("request_id", "source",
                                                                                   "source_file")]
    return [c for c in columns if c in canonical or (c not in CANONICAL and not c.startswith("_")
                                                      and c in KNOWN_DIMENSIONS)]


def clean_labels(columns: list[str], dimensions: list[str] = ()) -> list[pl.Expr]:
    return [_clean_label(c) for c in dict.fromkeys([*label_columns(columns), *[d for d in dimensions if d in columns]])]


# The reason of a row without a model (none, or blank once trimmed).
MISSING_MODEL = "missing model"

# The label columns `checks` looks at.
CHECKED = ("model_raw", "service_tier", "speed")


def checks(columns: list[str], value=pl.col) -> list[tuple[pl.Expr, pl.Expr]]:
    """(ok, reason) for label values a request cannot be priced with: these rows are quarantined.
    `value(column)`: the cleaned label (the column itself, once clean_labels ran)."""
    out = []
    if "model_raw" in columns:
        missing = value("model_raw").is_null()
        out.append((~missing, pl.when(missing).then(pl.lit(MISSING_MODEL))))
    for col, allowed in (("service_tier", SERVICE_TIERS), ("speed", SPEEDS)):
        if col in columns:
            bad = ~value(col).is_in(allowed)
            out.append((~bad, pl.when(bad).then(pl.format(f"unknown {col} ({{}})", value(col)))))
    return out


def ok(columns: list[str]) -> pl.Expr:
    return pl.all_horizontal([c for c, _ in checks(columns)] or [pl.lit(True)])


def fit(columns: list[str], constant: dict[str, str | None]) -> pl.Expr:
    """Whether a row's labels, as logged, will pass `checks` (`ok` on its group, once its labels are
    cleaned after the pass; `constant`: the label columns no source carries, as they are added back
    there). A row that fails will be quarantined, so it must not compete in dedupe: a copy with an
    empty model would otherwise displace its valid twin (see pipeline._competing, which computes it
    on the rows of duplicated ids alone). Only the checked columns are cleaned."""
    value = {c: _clean_label(c) for c in CHECKED if c in columns}
    value.update({c: _clean_label(c, pl.lit(v, pl.String)) for c, v in constant.items()
                  if c in CHECKED and c not in value})
    return pl.all_horizontal([c for c, _ in checks(list(value), value.__getitem__)] or [pl.lit(True)])


def model_missing(columns: list[str]) -> pl.Expr | None:
    """Whether a row's model, as logged, will fail its check (MISSING_MODEL once cleaned), for a
    verdict taken before the pass: a record read as several rows is judged whole
    (dialects/mapped.one_verdict_per_record). The model is the one checked label a record's rows do
    not share (each step names its own); its tier and speed are the record's, so its rows pass or
    fail those checks together. None without a model column."""
    return _clean_label("model_raw").is_null() if "model_raw" in columns else None


def apply_to_rows(lf: pl.LazyFrame, dimensions: list[str]) -> pl.LazyFrame:
    """Per-request: normalise labels and fold their checks into `_ok` and `_reason`."""
    cols = lf.collect_schema().names()
    if "_reason" not in cols:  # rows decoded once into Parquet keep no reasons (see pipeline.spool)
        lf = lf.with_columns(pl.lit(None, pl.String).alias("_reason"))
    lf = lf.with_columns(clean_labels(cols, dimensions))
    found = checks(cols)
    if not found:
        return lf
    reason = pl.concat_str([pl.col("_reason"), *[r for _, r in found]], separator="; ", ignore_nulls=True)
    reason = pl.when(pl.col("_reason") == UNREADABLE).then(pl.col("_reason")).otherwise(reason)
    return lf.with_columns(
        (pl.col("_ok") & pl.all_horizontal([c for c, _ in found])).alias("_ok"),
        pl.when(reason == "").then(None).otherwise(reason).alias("_reason"),
    )
