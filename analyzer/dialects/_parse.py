"""Validating parsers shared by the dialects: raw fields to canonical values.

A parser describes a field in stages that the dialect applies as successive `with_columns`, so that
each stage refers to the previous one by column name (an expression that repeats a sub-expression is
evaluated once per repetition: a fallback chain written as nested expressions grows exponentially):

- `first`: the fast parse, from the raw column (most rows end here);
- `then`: an optional second try, on the rows `first` could not parse (null elsewhere, so cheap);
- `ok`: a cheap boolean, is the field valid? (the main pass evaluates only this);
- `reason`: why not, as a sentence (evaluated only in the quarantine pass, for the rows that need it);
- `final`: the value after defaults (null counts become 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ..schema import MONEY

_NEG = r"^\s*-\d+(\.0*)?\s*$"
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_DIGITS = r"^\s*\+?\d+\s*$"


@dataclass(frozen=True)
class Field:
    name: str  # canonical column
    first: pl.Expr
    ok: pl.Expr
    reason: pl.Expr
    then: pl.Expr | None = None
    final: pl.Expr | None = None


def _missing(name: str, required: bool) -> pl.Expr:
    return pl.lit(f"missing {name}") if required else pl.lit(None, pl.String)


# No request has a trillion tokens; a count above this is corrupt, and summing such values could
# overflow 64-bit integers. Such rows are quarantined.
MAX_COUNT = 10**12


def count(raw: str, name: str, dtype: pl.DataType, *, required: bool) -> Field:
    """A token/request count: a non-negative integer. Null is 0 unless the field is required."""
    src, val = pl.col(raw), pl.col(name)
    absent_ok = src.is_null() & (not required)
    in_range = val.is_between(0, MAX_COUNT)
    final = val.fill_null(0)
    if dtype == pl.String:
        text = src.str.strip_chars()
        # " 7 " or "+7" do not cast; only those rows (null elsewhere) pay for stripping.
        # "7.0" is a whole number too; "7.5" is not (it stays null and is quarantined).
        retry = pl.when(val.is_null() & src.is_not_null()).then(
            text.str.strip_prefix("+").str.replace(r"^(\d+)\.0*$", "${1}"))
        reason = (
            pl.when(src.is_null() | (text == "")).then(_missing(name, required))
            .when(val > MAX_COUNT).then(pl.format(f"{name} is implausibly large ({{}})", text))
            .when(val >= 0).then(None)
            .when(text.str.contains(_NEG)).then(pl.format(f"negative {name} ({{}})", text))
            .when(text.str.contains(_DIGITS)).then(pl.format(f"{name} is too large ({{}})", text))
            .when(text.str.contains(_NUMBER)).then(pl.format(f"{name} is not a whole number ({{}})", text))
            .otherwise(pl.format(f"{name} is not a number ({{}})", text.str.slice(0, 40)))
        )
        return Field(name, src.cast(pl.Int64, strict=False), (in_range | absent_ok).fill_null(False), reason,
                     then=pl.coalesce(val, retry.cast(pl.Int64, strict=False)), final=final)
    if dtype.is_integer():
        reason = (
            pl.when(src.is_null()).then(_missing(name, required))
            .when(val.is_null()).then(pl.lit(f"{name} is too large"))
            .when(val < 0).then(pl.format(f"negative {name} ({{}})", val))
            .when(val > MAX_COUNT).then(pl.format(f"{name} is implausibly large ({{}})", val))
        )
        return Field(name, src.cast(pl.Int64, strict=False), (in_range | absent_ok).fill_null(False), reason,
                     final=final)
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        as_float = src.cast(pl.Float64)  # only to test integrality; the count itself is an integer
        whole = (as_float == as_float.floor()) & as_float.is_finite() & val.is_not_null()
        reason = (
            pl.when(src.is_null()).then(_missing(name, required))
            .when(as_float < 0).then(pl.format(f"negative {name} ({{}})", src))
            .when(~whole).then(pl.format(f"{name} is not a whole number ({{}})", src))
        )
        return Field(name, src.cast(pl.Int64, strict=False), ((whole & in_range) | absent_ok).fill_null(False),
                     reason, final=final)
    if dtype == pl.Null:
        return Field(name, pl.lit(None, pl.Int64), pl.lit(not required), _missing(name, required), final=final)
    return Field(name, pl.lit(None, pl.Int64), pl.lit(False), pl.lit(f"{name} has unsupported type {dtype}"),
                 final=final)


def _iso(text: pl.Expr, fmt: str) -> pl.Expr:
    return text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")


PRIMARY = "%Y-%m-%dT%H:%M:%S%.fZ"  # RFC 3339 in UTC: what nearly every log writes
FALLBACKS = (
    "%Y-%m-%dT%H:%M:%S%.f%z",  # with an offset
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%#z",  # Postgres text: +00
    "%Y-%m-%dT%H:%M:%S%.f",  # naive: UTC
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M%z",
    # Minutes, no seconds, no zone (naive: UTC): the Claude Console's hourly and per-minute usage
    # exports write `2026-03-31 02:00`.
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)


def timestamp(raw: str, name: str, dtype: pl.DataType) -> Field:
    """ISO-8601 with Z or an offset (naive means UTC), a date, or epoch seconds/milliseconds."""
    src, val = pl.col(raw), pl.col(name)
    missing = pl.lit(f"missing {name}")
    if isinstance(dtype, pl.Datetime):
        first = src.dt.replace_time_zone("UTC") if dtype.time_zone is None else src.dt.convert_time_zone("UTC")
        return Field(name, first.dt.cast_time_unit("us"), val.is_not_null(), pl.when(val.is_null()).then(missing))
    if isinstance(dtype, pl.Date):
        first = src.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return Field(name, first, val.is_not_null(), pl.when(val.is_null()).then(missing))
    text = src.cast(pl.String)
    # Every other accepted form, tried only on the rows the primary format left unparsed.
    rest = pl.when(val.is_null()).then(text.str.strip_chars())
    epoch = (
        pl.when(rest.str.contains(r"^\d{9,11}(\.\d+)?$"))
        .then((rest.cast(pl.Decimal(20, 6), strict=False) * 1_000_000).cast(pl.Int64, strict=False))
        .when(rest.str.contains(r"^\d{12,14}$"))
        .then(rest.cast(pl.Int64, strict=False) * 1_000)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )
    then = pl.coalesce(val, *[_iso(rest, f) for f in FALLBACKS], epoch)
    reason = (
        pl.when(src.is_null() | (text.str.strip_chars() == "")).then(missing)
        .when(val.is_null()).then(pl.format(f"unparsable {name} ({{}})", text.str.slice(0, 40)))
    )
    return Field(name, _iso(text, PRIMARY), val.is_not_null(), reason, then=then)


# A reported cost above a quadrillion dollars is corrupt; capping each row keeps the sum of 10^11
# rows within the 26 integer digits of a money column (beyond, the sum cannot be exact). Such rows
# are quarantined, like counts above MAX_COUNT.
MAX_MONEY = 10**15


def money(raw: str, name: str, dtype: pl.DataType) -> Field:
    """A cost the source reported (kept to compare, never used to price): exact decimal."""
    src, val = pl.col(raw), pl.col(name)
    big = val.abs() > MAX_MONEY
    # The quarantined row keeps its text (_raw); its value is dropped, so no sum ever adds it.
    final = pl.when(big).then(None).otherwise(val)
    if dtype == pl.String:
        text = src.str.strip_chars()
        bad = text.is_not_null() & (text != "") & val.is_null()
        reason = (pl.when(bad).then(pl.format(f"{name} is not a decimal number ({{}})", text.str.slice(0, 40)))
                  .when(big).then(pl.format(f"{name} is implausibly large ({{}})", text.str.slice(0, 40))))
        return Field(name, text.cast(MONEY, strict=False), (~bad & ~big).fill_null(True), reason, final=final)
    reason = pl.when(big).then(pl.format(f"{name} is implausibly large ({{}})", val))
    if dtype.is_float():
        # A float in the source is rendered to its shortest decimal text first, so 0.1 stays 0.1.
        return Field(name, src.cast(pl.String).cast(MONEY, strict=False), (~big).fill_null(True), reason,
                     final=final)
    return Field(name, src.cast(MONEY, strict=False), (~big).fill_null(True), reason, final=final)


def label(raw: str, dtype: pl.DataType) -> pl.Expr:
    """A label as logged, as a string (trimmed and checked later, see labels.py)."""
    return pl.col(raw) if dtype == pl.String else pl.col(raw).cast(pl.String)


def frame(lf: pl.LazyFrame, fields: list[Field], labels: dict[str, pl.Expr], constants: dict[str, pl.Expr],
          extra_checks: list[tuple[pl.Expr, pl.Expr]] = ()) -> pl.LazyFrame:
    """Apply parsers stage by stage; add `_ok` and `_reason`. `labels` are computed alongside the first
    stage; `extra_checks` are (ok, reason) pairs over parsed columns (e.g. an allowed-values test)."""
    lf = lf.with_columns([f.first.alias(f.name) for f in fields] + [e.alias(c) for c, e in labels.items()]
                         + [e.alias(c) for c, e in constants.items()])
    thens = [f.then.alias(f.name) for f in fields if f.then is not None]
    if thens:
        lf = lf.with_columns(thens)
    oks = [f.ok for f in fields] + [ok for ok, _ in extra_checks]
    reasons = [f.reason for f in fields] + [r for _, r in extra_checks]
    reason = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    lf = lf.with_columns(
        pl.all_horizontal(oks).alias("_ok") if oks else pl.lit(True).alias("_ok"),
        pl.when(reason == "").then(None).otherwise(reason).alias("_reason"),
    )
    finals = [f.final.alias(f.name) for f in fields if f.final is not None]
    return lf.with_columns(finals) if finals else lf
