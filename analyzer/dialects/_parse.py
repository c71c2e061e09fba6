"""Validating parsers shared by the dialects: text (or loosely typed) fields to canonical values.

Each parser returns the parsed expression and a *reason* expression: null when the field is fine,
otherwise a short human sentence. A row with any reason is quarantined, never guessed at.
"""

from __future__ import annotations

import polars as pl

from ..schema import MONEY

_INT = r"^\s*\+?\d{1,18}\s*$"
_NEG = r"^\s*-\d+\s*$"
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def count(expr: pl.Expr, name: str, dtype: pl.DataType, *, required: bool) -> tuple[pl.Expr, pl.Expr]:
    """A token/request count: a non-negative integer. Null is 0 unless the field is required."""
    if dtype == pl.String:
        text = expr.str.strip_chars()
        value = text.cast(pl.Int64, strict=False)
        reason = (
            pl.when(text.is_null() | (text == ""))
            .then(pl.lit(f"missing {name}") if required else None)
            .when(text.str.contains(_INT))
            .then(None)
            .when(text.str.contains(r"^\s*\+?\d+\s*$"))
            .then(pl.format(f"{name} is too large ({{}})", text))
            .when(text.str.contains(_NEG))
            .then(pl.format(f"negative {name} ({{}})", text))
            .when(text.str.contains(_NUMBER))
            .then(pl.format(f"{name} is not a whole number ({{}})", text))
            .otherwise(pl.format(f"{name} is not a number ({{}})", text.str.slice(0, 40)))
        )
        value = pl.when(text.is_null() | (text == "")).then(0).otherwise(value)
    elif dtype.is_integer():
        value = expr.cast(pl.Int64, strict=False)
        reason = (
            pl.when(expr.is_null())
            .then(pl.lit(f"missing {name}") if required else None)
            .when(value.is_null())
            .then(pl.lit(f"{name} is too large"))
            .when(value < 0)
            .then(pl.format(f"negative {name} ({{}})", value))
        )
        value = value.fill_null(0)
    elif dtype.is_float() or isinstance(dtype, pl.Decimal):
        as_float = expr.cast(pl.Float64)  # only to test integrality; the count itself is an integer
        value = expr.cast(pl.Int64, strict=False)
        reason = (
            pl.when(expr.is_null())
            .then(pl.lit(f"missing {name}") if required else None)
            .when(as_float < 0)
            .then(pl.format(f"negative {name} ({{}})", expr))
            .when(as_float.is_nan() | as_float.is_infinite() | (as_float != as_float.floor()) | value.is_null())
            .then(pl.format(f"{name} is not a whole number ({{}})", expr))
        )
        value = value.fill_null(0)
    elif dtype == pl.Null:
        value = pl.lit(0, pl.Int64)
        reason = pl.lit(f"missing {name}") if required else pl.lit(None, pl.String)
    else:
        value = pl.lit(0, pl.Int64)
        reason = pl.lit(f"{name} has unsupported type {dtype}")
    return value.cast(pl.Int64), reason.cast(pl.String)


def _iso(text: pl.Expr, fmt: str) -> pl.Expr:
    return text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")


def timestamp(expr: pl.Expr, name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """ISO-8601 with Z or an offset (naive means UTC), a date, or epoch seconds/milliseconds."""
    if isinstance(dtype, pl.Datetime):
        value = expr.dt.replace_time_zone("UTC") if dtype.time_zone is None else expr.dt.convert_time_zone("UTC")
        value = value.dt.cast_time_unit("us")
        return value, pl.when(value.is_null()).then(pl.lit(f"missing {name}")).cast(pl.String)
    if isinstance(dtype, pl.Date):
        value = expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return value, pl.when(value.is_null()).then(pl.lit(f"missing {name}")).cast(pl.String)
    if dtype.is_integer() or dtype.is_float():
        text = expr.cast(pl.String)
    else:
        text = expr.cast(pl.String)
    text = text.str.strip_chars()
    # One shape for all offsets: "Z" -> "+00:00", a space separator -> "T".
    iso = text.str.replace(r"[zZ]$", "+00:00").str.replace(r"^(\d{4}-\d\d-\d\d) ", "${1}T")
    epoch = text.cast(pl.Float64, strict=False)
    as_epoch = (
        pl.when(text.str.contains(r"^\d{9,11}(\.\d+)?$"))
        .then((epoch * 1_000_000).round(0).cast(pl.Int64, strict=False))
        .when(text.str.contains(r"^\d{12,14}$"))
        .then(text.cast(pl.Int64, strict=False) * 1_000)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )
    value = pl.coalesce(
        _iso(iso, "%Y-%m-%dT%H:%M:%S%.f%z"),
        _iso(iso, "%Y-%m-%dT%H:%M:%S%.f"),
        _iso(iso, "%Y-%m-%dT%H:%M%z"),
        _iso(iso, "%Y-%m-%d"),
        as_epoch,
    )
    reason = (
        pl.when(text.is_null() | (text == ""))
        .then(pl.lit(f"missing {name}"))
        .when(value.is_null())
        .then(pl.format(f"unparsable {name} ({{}})", text.str.slice(0, 40)))
    )
    return value, reason.cast(pl.String)


def money(expr: pl.Expr, name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """A cost the source reported (kept to compare, never used to price): exact decimal."""
    if dtype == pl.String:
        text = expr.str.strip_chars()
        value = text.cast(MONEY, strict=False)
        reason = pl.when(text.is_not_null() & (text != "") & value.is_null()).then(
            pl.format(f"{name} is not a decimal number ({{}})", text.str.slice(0, 40))
        )
        return value, reason.cast(pl.String)
    if dtype.is_float():
        # Floats in a source are rendered to their shortest decimal text first, so 0.1 stays 0.1.
        value = expr.cast(pl.String).cast(MONEY, strict=False)
    else:
        value = expr.cast(MONEY, strict=False)
    return value, pl.lit(None, pl.String)


def text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A label: trimmed string, empty as null."""
    s = expr.cast(pl.String).str.strip_chars()
    return pl.when(s == "").then(None).otherwise(s)
