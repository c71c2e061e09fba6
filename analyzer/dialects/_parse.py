"""Validating parsers shared by the dialects: text (or loosely typed) fields to canonical values.

Each parser returns three expressions: the parsed value, `ok` (a cheap boolean: is the field fine?)
and `reason` (a human sentence when it is not). The main pass only evaluates `ok`; the reasons are
computed in the quarantine pass, for the few rows that need them. Why: building a reason string per
field per row costs more than all the arithmetic of pricing.
"""

from __future__ import annotations

from typing import NamedTuple

import polars as pl

from ..schema import MONEY

_NEG = r"^\s*-\d+(\.0*)?\s*$"
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_DIGITS = r"^\s*\+?\d+\s*$"


class Parsed(NamedTuple):
    value: pl.Expr
    ok: pl.Expr
    reason: pl.Expr


def _missing(name: str, required: bool) -> pl.Expr:
    return pl.lit(f"missing {name}") if required else pl.lit(None, pl.String)


def count(expr: pl.Expr, name: str, dtype: pl.DataType, *, required: bool) -> Parsed:
    """A token/request count: a non-negative integer. Null is 0 unless the field is required."""
    if dtype == pl.String:
        value = expr.cast(pl.Int64, strict=False)
        # Fast path first: a plain integer casts. Only text that does not (" 7 ", "+7") pays for a strip.
        stripped = pl.when(value.is_null() & expr.is_not_null()).then(expr.str.strip_chars().str.strip_prefix("+"))
        value = pl.coalesce(value, stripped.cast(pl.Int64, strict=False))
        ok = (value >= 0) | (expr.is_null() & (not required))
        text = expr.str.strip_chars()
        reason = (
            pl.when(expr.is_null() | (text == "")).then(_missing(name, required))
            .when(value >= 0).then(None)
            .when(text.str.contains(_NEG)).then(pl.format(f"negative {name} ({{}})", text))
            .when(text.str.contains(_DIGITS)).then(pl.format(f"{name} is too large ({{}})", text))
            .when(text.str.contains(_NUMBER)).then(pl.format(f"{name} is not a whole number ({{}})", text))
            .otherwise(pl.format(f"{name} is not a number ({{}})", text.str.slice(0, 40)))
        )
    elif dtype.is_integer():
        value = expr.cast(pl.Int64, strict=False)
        ok = (value >= 0) | (expr.is_null() & (not required))
        reason = (
            pl.when(expr.is_null()).then(_missing(name, required))
            .when(value.is_null()).then(pl.lit(f"{name} is too large"))
            .when(value < 0).then(pl.format(f"negative {name} ({{}})", value))
        )
    elif dtype.is_float() or isinstance(dtype, pl.Decimal):
        as_float = expr.cast(pl.Float64)  # only to test integrality; the count itself is an integer
        value = expr.cast(pl.Int64, strict=False)
        whole = (as_float == as_float.floor()) & as_float.is_finite() & value.is_not_null()
        ok = (whole & (value >= 0)) | (expr.is_null() & (not required))
        reason = (
            pl.when(expr.is_null()).then(_missing(name, required))
            .when(as_float < 0).then(pl.format(f"negative {name} ({{}})", expr))
            .when(~whole).then(pl.format(f"{name} is not a whole number ({{}})", expr))
        )
    elif dtype == pl.Null:
        value, ok, reason = pl.lit(None, pl.Int64), pl.lit(not required), _missing(name, required)
    else:
        value, ok, reason = pl.lit(None, pl.Int64), pl.lit(False), pl.lit(f"{name} has unsupported type {dtype}")
    return Parsed(value.fill_null(0).cast(pl.Int64), ok.fill_null(False), reason.cast(pl.String))


def _iso(text: pl.Expr, fmt: str) -> pl.Expr:
    return text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")


# Tried in order; each later format only sees the rows every earlier one failed on (see timestamp()).
_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.fZ",  # the common case: RFC 3339 in UTC
    "%Y-%m-%dT%H:%M:%S%.f%z",  # with an offset
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f",  # naive: UTC
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%d",
)


def timestamp(expr: pl.Expr, name: str, dtype: pl.DataType) -> Parsed:
    """ISO-8601 with Z or an offset (naive means UTC), a date, or epoch seconds/milliseconds."""
    if isinstance(dtype, pl.Datetime):
        value = expr.dt.replace_time_zone("UTC") if dtype.time_zone is None else expr.dt.convert_time_zone("UTC")
        value = value.dt.cast_time_unit("us")
    elif isinstance(dtype, pl.Date):
        value = expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    else:
        text = expr.cast(pl.String)
        # Parse with the common format; hand each next format only the rows still unparsed (null
        # elsewhere), so a file in one format pays for one parse, not for every format we accept.
        value = _iso(text, _FORMATS[0])
        for fmt in _FORMATS[1:]:
            rest = pl.when(value.is_null()).then(text)
            value = pl.coalesce(value, _iso(rest, fmt))
        rest = pl.when(value.is_null()).then(text.str.strip_chars())
        epoch = (
            pl.when(rest.str.contains(r"^\d{9,11}(\.\d+)?$"))
            .then((rest.cast(pl.Decimal(20, 6), strict=False) * 1_000_000).cast(pl.Int64, strict=False))
            .when(rest.str.contains(r"^\d{12,14}$"))
            .then(rest.cast(pl.Int64, strict=False) * 1_000)
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC")
        )
        value = pl.coalesce(value, epoch, _iso(rest, "%Y-%m-%dT%H:%M:%S%.f%z"))
        ok = value.is_not_null()
        reason = (
            pl.when(expr.is_null() | (text.str.strip_chars() == "")).then(pl.lit(f"missing {name}"))
            .when(value.is_null()).then(pl.format(f"unparsable {name} ({{}})", text.str.slice(0, 40)))
        )
        return Parsed(value, ok, reason.cast(pl.String))
    return Parsed(value, value.is_not_null(), pl.when(value.is_null()).then(pl.lit(f"missing {name}")))


def money(expr: pl.Expr, name: str, dtype: pl.DataType) -> Parsed:
    """A cost the source reported (kept to compare, never used to price): exact decimal."""
    if dtype == pl.String:
        text = expr.str.strip_chars()
        value = text.cast(MONEY, strict=False)
        bad = text.is_not_null() & (text != "") & value.is_null()
        reason = pl.when(bad).then(pl.format(f"{name} is not a decimal number ({{}})", text.str.slice(0, 40)))
        return Parsed(value, ~bad, reason.cast(pl.String))
    if dtype.is_float():
        # A float in the source is rendered to its shortest decimal text first, so 0.1 stays 0.1.
        value = expr.cast(pl.String).cast(MONEY, strict=False)
    else:
        value = expr.cast(MONEY, strict=False)
    return Parsed(value, pl.lit(True), pl.lit(None, pl.String))


def text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A label: trimmed string, empty as null."""
    s = expr.cast(pl.String).str.strip_chars()
    return pl.when(s == "").then(None).otherwise(s)
