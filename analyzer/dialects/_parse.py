"""Validating parsers shared by the dialects: raw fields to canonical values.

A parser describes a field in stages that the dialect applies as successive `with_columns`, so that
each stage refers to the previous one by column name (an expression that repeats a sub-expression is
evaluated once per repetition: a fallback chain written as nested expressions grows exponentially):

- `first`: the fast parse, from the raw column (most rows end here);
- `mid`: optional helper columns between the two (a sub-result `then` reads several times);
- `then`: an optional second try, on the rows `first` could not parse (null elsewhere, so cheap);
- `ok`: a cheap boolean, is the field valid? (the main pass evaluates only this);
- `reason`: why not, as a sentence (evaluated only in the quarantine pass, for the rows that need it);
- `final`: the value after defaults (null counts become 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from ..schema import MONEY

# Digits are ASCII: Rust's \d also matches other scripts' digits (٣), which no cast reads.
_NEG = r"^\s*-[0-9]+(\.0*)?\s*$"
_NUMBER = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
_DIGITS = r"^\s*\+?[0-9]+\s*$"
# A number that may be whole, read exactly as a decimal: `7.0`, `-0`, `1e3`, `1.5E+3` (a count
# written by a float formatter). At most 18 fraction digits and no negative exponent, so that the
# decimal holds it exactly and `1.0000000000000000001` is not taken for 1.
_WHOLE_CANDIDATE = r"^[-+]?[0-9]+(\.[0-9]{0,18})?([eE]\+?[0-9]{1,3})?$"
_EXACT = pl.Decimal(38, 18)


@dataclass(frozen=True)
class Field:
    name: str  # canonical column
    first: pl.Expr
    ok: pl.Expr
    reason: pl.Expr
    then: pl.Expr | None = None
    final: pl.Expr | None = None
    mid: tuple[pl.Expr, ...] = ()


def nested(dtype: pl.DataType) -> bool:
    """A struct, list, array or map column (Parquet, or a JSON object where a value was expected)."""
    return isinstance(dtype, (pl.Struct, pl.List, pl.Array, pl.Map))


def unreadable(dtype: pl.DataType) -> bool:
    """A value no time or money field reads: nested, or a duration (Polars casts none to text)."""
    return nested(dtype) or isinstance(dtype, pl.Duration)


def map_as_entries(dtype: pl.DataType) -> pl.DataType:
    """`dtype` with every Map keyed by other than text, at any depth, as the list of its entries
    (`{key, value}` structs): Polars' JSON encoder refuses such a map ("JSON Map keys must be
    String"), and Spark writes `map<int, ...>` columns a log may carry beside its counts."""
    if isinstance(dtype, pl.Map):
        key, value = map_as_entries(dtype.key), map_as_entries(dtype.value)
        if isinstance(key, (pl.String, pl.Categorical, pl.Enum)):  # (the keys JSON can hold)
            return pl.Map(key, value)
        return pl.List(pl.Struct({"key": key, "value": value}))
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: map_as_entries(f.dtype) for f in dtype.fields})
    if isinstance(dtype, pl.List):
        return pl.List(map_as_entries(dtype.inner))
    if isinstance(dtype, pl.Array):
        return pl.Array(map_as_entries(dtype.inner), dtype.shape)
    return dtype


def json_encodable(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A Parquet column as the record's raw text can hold it (see map_as_entries)."""
    safe = map_as_entries(dtype)
    return col if safe == dtype else col.cast(safe)


def as_json(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A nested value as its JSON text (`{"a":1}`, `["x","y"]`), so that it can be a label."""
    return pl.struct(json_encodable(expr, dtype).alias("v")).struct.json_encode().str.strip_prefix(
        '{"v":').str.strip_suffix("}")


def _missing(name: str, required: bool) -> pl.Expr:
    return pl.lit(f"missing {name}") if required else pl.lit(None, pl.String)


# No request has a trillion tokens; a count above this is corrupt, and summing such values could
# overflow 64-bit integers. Such rows are quarantined.
MAX_COUNT = 10**12


def _whole(text: pl.Expr) -> pl.Expr:
    """A stripped text as the whole number it writes (`7.0`, `-0`, `1e3`), else null."""
    exact = pl.when(text.str.contains(_WHOLE_CANDIDATE)).then(text.str.strip_prefix("+").cast(_EXACT, strict=False))
    return pl.when(exact == exact.cast(pl.Int64, strict=False).cast(_EXACT)).then(exact.cast(pl.Int64, strict=False))


def count_value(text: pl.Expr) -> pl.Expr:
    """The value `count` reads from a count's text (an Int64; null where it reads none), in one
    expression: for a dialect that must weigh counts before they become rows (the Claude Code
    stream's reported $), so that it weighs the values the rows count."""
    val = text.cast(pl.Int64, strict=False)
    return pl.coalesce(val, _whole(pl.when(val.is_null()).then(text).str.strip_chars()))


def count(raw: str, name: str, dtype: pl.DataType, *, required: bool) -> Field:
    """A token/request count: a non-negative integer. Null is 0 unless the field is required."""
    src, val = pl.col(raw), pl.col(name)
    absent_ok = src.is_null() & (not required)
    in_range = val.is_between(0, MAX_COUNT)
    final = val.fill_null(0)
    if dtype == pl.String:
        text = src.str.strip_chars()
        # " 7 " or "+7" do not cast; only those rows (null elsewhere) pay for stripping.
        # "7.0", "-0" and "1e3" are whole numbers too; "7.5" is not (it stays null and is quarantined).
        # (Masked before any string work: a `then` branch is computed for every row.)
        rest = pl.when(val.is_null()).then(src).str.strip_chars()
        whole = _whole(rest)
        # The JSON reader renders a number beyond 64 bits as a float's text (1.1805916207174113e+21).
        huge = text.str.contains(_NUMBER) & (text.cast(pl.Float64, strict=False).abs() > MAX_COUNT)
        reason = (
            pl.when(src.is_null() | (text == "")).then(_missing(name, required))
            .when(val > MAX_COUNT).then(pl.format(f"{name} is implausibly large ({{}})", text))
            .when(val >= 0).then(None)
            .when(text.str.contains(_NEG)).then(pl.format(f"negative {name} ({{}})", text))
            .when(text.str.contains(_DIGITS) | huge).then(pl.format(f"{name} is too large ({{}})", text))
            .when(text.str.contains(_NUMBER)).then(pl.format(f"{name} is not a whole number ({{}})", text))
            .otherwise(pl.format(f"{name} is not a number ({{}})", text.str.slice(0, 40)))
        )
        return Field(name, src.cast(pl.Int64, strict=False), (in_range | absent_ok).fill_null(False), reason,
                     then=pl.coalesce(val, whole), final=final)
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
        if isinstance(dtype, pl.Decimal):
            # Judged in the decimal itself: 1.00000000000000000001 is 1.0 as a float, and the cast
            # to an integer truncates it, so the float test alone counted it as 1 token.
            whole = whole & (src == val.cast(dtype))
        reason = (
            pl.when(src.is_null()).then(_missing(name, required))
            .when(as_float < 0).then(pl.format(f"negative {name} ({{}})", src))
            .when(as_float.abs() > MAX_COUNT).then(pl.format(f"{name} is too large ({{}})", src))
            .when(~whole).then(pl.format(f"{name} is not a whole number ({{}})", src))
        )
        return Field(name, src.cast(pl.Int64, strict=False), ((whole & in_range) | absent_ok).fill_null(False),
                     reason, final=final)
    if dtype == pl.Null:
        return Field(name, pl.lit(None, pl.Int64), pl.lit(not required), _missing(name, required), final=final)
    return Field(name, pl.lit(None, pl.Int64), pl.lit(False), pl.lit(f"{name} has unsupported type {dtype}"),
                 final=final)


def _iso(text: pl.Expr, fmt: str) -> pl.Expr:
    # (No cache: a log's timestamps are nearly all distinct, and the cache of parsed values cost
    # 15% of the parse.)
    return text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC", cache=False)


PRIMARY = "%Y-%m-%dT%H:%M:%S%.fZ"  # RFC 3339 in UTC: what nearly every log writes
# The strict formats a file's timestamps may be read with in one pass (its fast path), picked from
# the file's first records by `fast_format`: a log writes one form, and one parse of the right
# format costs what the `Z` form costs. Rows in another form go through `_any_form` (see timestamp).
# `%.f` takes 0-9 fraction digits; `%z` takes +00:00, +0000 and any offset; `%#z` also +00.
FAST_FORMATS = (
    PRIMARY,
    "%Y-%m-%dT%H:%M:%S%.fz",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.fZ",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",  # no zone: UTC
    "%Y-%m-%d %H:%M:%S%.f",
    # Minutes, no seconds (no zone: UTC): the Claude Console's hourly and per-minute usage exports
    # write `2026-03-31 02:00`.
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%d",
)
EPOCH_S, EPOCH_MS = "epoch-seconds", "epoch-milliseconds"
# ISO 8601 in every form exporters write: `T`, `t` or a space; seconds and fraction optional (any
# number of digits, read to the microsecond); zone `Z`, `z`, `UTC`, `±HH`, `±HHMM`, `±HH:MM`, or none
# (UTC); or a date alone (midnight UTC).
_ISO = (r"^(?<d>[0-9]{4}-[0-9][0-9]-[0-9][0-9])(?:[Tt ](?<hm>[0-9][0-9]:[0-9][0-9])(?<s>:[0-9][0-9])?(?<f>[.,][0-9]+)?\s*"
        r"(?<z>[Zz]|UTC|[+-][0-9][0-9](?::?[0-9][0-9])?)?)?$")
_NAIVE = r"^[0-9]{4}-[0-9][0-9]-[0-9][0-9](?:[Tt ][0-9][0-9]:[0-9][0-9](?::[0-9][0-9])?(?:[.,][0-9]+)?)?$"
# Epoch numbers by their digits: seconds (9-11, optionally with a fraction) cover 1973-5138;
# milliseconds, microseconds and nanoseconds follow in steps of three digits.
_EPOCH = {r"^[0-9]{9,11}(?:\.[0-9]+)?$": None, r"^[0-9]{12,14}$": 1_000, r"^[0-9]{15,17}$": 1, r"^[0-9]{18,19}$": -1_000}


def fast_format(values) -> str:
    """The format of `FAST_FORMATS` (or an epoch unit) that reads the most of `values` (a file's
    first timestamps; a broken one among them must not send every row to the slow path); PRIMARY
    when none reads any (the other rows still parse, more slowly)."""
    text = [str(v).strip() for v in values if v is not None and str(v).strip() != ""]
    if not text:
        return PRIMARY
    col = pl.Series(text, dtype=pl.String)
    read = {EPOCH_S: col.str.contains(r"^[0-9]{9,11}(?:\.[0-9]+)?$").sum(),
            EPOCH_MS: col.str.contains(r"^[0-9]{12,14}$").sum()}
    for fmt in FAST_FORMATS:
        read[fmt] = len(text) - col.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC").null_count()
        if read[fmt] == len(text):
            break
    best = max(read, key=lambda f: read[f])  # the first of equals, in the order above
    return best if read[best] else PRIMARY


@dataclass(frozen=True)
class Layout:
    """Where every character of a file's timestamps is, when its first ones agree: `2026-11-03T14:05:09`
    (date and time separated by `sep`), then a `.` and exactly `digits` fraction digits (none when 0),
    then always the same zone text `suffix` (`Z`, `+00:00`, `+0530`, or nothing), `offset_us` east of
    UTC. A machine writes one layout; such a timestamp is read as a fixed-width date-time (Polars
    parses `%Y-%m-%dT%H:%M:%S` of a fixed width natively, ~4x faster than any format with a fraction or
    a zone), its fraction as an integer, and one pattern checks every character: 0.28 -> 0.17 CPU s
    per million rows, the same instants."""

    sep: str
    digits: int
    suffix: str
    offset_us: int

    def pattern(self) -> str:
        frac = rf"\.[0-9]{{{self.digits}}}" if self.digits else ""
        return (rf"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}{re.escape(self.sep)}[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}{frac}"
                rf"{re.escape(self.suffix)}$")

    def parse(self, text: pl.Expr) -> pl.Expr:
        """The instant, or null where the text is not in this layout (read then by the format)."""
        head = text.str.slice(0, 19).str.to_datetime(f"%Y-%m-%d{self.sep}%H:%M:%S", strict=False, time_unit="us",
                                                      cache=False)
        us = head.dt.epoch("us") - self.offset_us
        if self.digits:  # %.f cuts digits beyond the microsecond, as here
            kept = min(self.digits, 6)
            us = us + text.str.slice(20, kept).cast(pl.Int64, strict=False) * 10 ** (6 - kept)
        return pl.when(text.str.contains(self.pattern())).then(us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


_LAYOUT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?P<sep>[T ])[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.(?P<frac>[0-9]{1,9}))?"
                     r"(?P<zone>Z|z|[+-](?P<hh>[0-9]{2})(?::?(?P<mm>[0-9]{2}))?)?$")


def fast_layout(values, fmt: str) -> Layout | None:
    """The one Layout of `values` (a file's first timestamps) that `fmt` reads, if they share one
    (values `fmt` does not read are left out, as in fast_format); None otherwise: a file whose
    fractions vary in length, or whose offsets change (summer time), is read by `fmt` alone."""
    if fmt in (EPOCH_S, EPOCH_MS):
        return None
    text = [str(v).strip() for v in values if v is not None and str(v).strip() != ""]
    if not text:
        return None
    # (which it reads, not to what: an instant past year 9999 is no Python datetime)
    read = pl.Series(text, dtype=pl.String).str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC",
                                                            cache=False).is_not_null()
    found = set()
    for value, ok in zip(text, read.to_list()):
        if not ok:
            continue
        m = _LAYOUT.match(value)
        if m is None:
            return None  # read by the format, but in no layout this knows
        zone = m["zone"] or ""
        offset = 0 if zone in ("", "Z", "z") else (1 if zone[0] == "+" else -1) * (
            int(m["hh"]) * 60 + int(m["mm"] or 0)) * 60_000_000
        found.add(Layout(m["sep"], len(m["frac"] or ""), zone, offset))
    return found.pop() if len(found) == 1 else None


def is_naive(values) -> bool:
    """Whether any of `values` (a file's first timestamps) is an ISO date-time without a zone."""
    return any(isinstance(v, str) and re.match(_NAIVE, v.strip()) for v in values)


def _epoch_seconds(text: pl.Expr) -> pl.Expr:
    """Epoch seconds, to the microsecond: further digits are cut (as `%.f` cuts them), not rounded."""
    exact = text.str.replace(r"^([0-9]+\.[0-9]{6})[0-9]+$", "${1}").cast(pl.Decimal(20, 6), strict=False)
    return (exact * 1_000_000).cast(pl.Int64, strict=False)


def _fast(text: pl.Expr, fmt: str, layout: Layout | None = None) -> pl.Expr:
    # An epoch column is read only within its digit count: a number of the wrong magnitude is
    # another unit or junk (tried in every form later), not a date thousands of years away.
    if layout is not None:
        # The rows not in the file's layout (none, usually) are read by its format: masked first,
        # so that the format's parse costs nothing on the others.
        fixed = layout.parse(text)
        return pl.coalesce(fixed, _iso(pl.when(fixed.is_null()).then(text), fmt))
    if fmt == EPOCH_S:
        us = _epoch_seconds(text)
        us = pl.when(us.is_between(10**14, 10**17, closed="left")).then(us)
    elif fmt == EPOCH_MS:
        ms = text.cast(pl.Int64, strict=False)
        us = pl.when(ms.is_between(10**11, 10**14, closed="left")).then(ms * 1_000)
    else:
        return _iso(text, fmt)
    return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _any_form(rest: pl.Expr, g: pl.Expr) -> pl.Expr:
    """Every accepted form, rewritten to one (`2026-11-03T14:05:09.123+05:30`) and parsed once.
    `rest`: the text of rows the fast format left unparsed (null elsewhere); `g`: its `_ISO` groups
    (both columns: each is read several times here)."""
    zone = g.struct.field("z")
    offset = (pl.when(zone.is_null() | zone.is_in(["Z", "z", "UTC"])).then(pl.lit("+00:00"))
              .when(zone.str.len_bytes() == 3).then(zone + ":00").otherwise(zone))
    iso = pl.concat_str(g.struct.field("d"), pl.lit("T"), g.struct.field("hm").fill_null("00:00"),
                        g.struct.field("s").fill_null(":00"),
                        g.struct.field("f").str.replace(",", ".", literal=True).str.slice(0, 10).fill_null(""), offset)
    epochs = [pl.when(rest.str.contains(pattern)).then(
        _epoch_seconds(rest) if unit is None
        else rest.cast(pl.Int64, strict=False) * unit if unit > 0 else rest.cast(pl.Int64, strict=False) // -unit)
        for pattern, unit in _EPOCH.items()]
    epoch = pl.coalesce(epochs).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return pl.coalesce(_iso(iso, "%Y-%m-%dT%H:%M:%S%.f%z"), epoch)


def timestamp(raw: str, name: str, dtype: pl.DataType, fmt: str = PRIMARY, layout: Layout | None = None) -> Field:
    """ISO-8601 with Z or an offset (naive means UTC), a date, or epoch seconds/milliseconds (and
    micro/nanoseconds). `fmt` (see `fast_format`) reads most rows, faster in their `layout` when they
    share one (see fast_layout); the rest are tried in every form."""
    src, val = pl.col(raw), pl.col(name)
    missing = pl.lit(f"missing {name}")
    if isinstance(dtype, pl.Datetime):
        first = src.dt.replace_time_zone("UTC") if dtype.time_zone is None else src.dt.convert_time_zone("UTC")
        return Field(name, first.dt.cast_time_unit("us"), val.is_not_null(), pl.when(val.is_null()).then(missing))
    if isinstance(dtype, pl.Date):
        first = src.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return Field(name, first, val.is_not_null(), pl.when(val.is_null()).then(missing))
    if unreadable(dtype) or dtype == pl.Null:
        reason = missing if dtype == pl.Null else pl.lit(f"{name} has unsupported type {dtype}")
        return Field(name, pl.lit(None, pl.Datetime("us", "UTC")), pl.lit(False), reason)
    text = src.cast(pl.String)
    # A parser reads second 60 (a leap second, or a typo) as the next minute: such a row is
    # quarantined, never shifted. A colon is in no epoch number, and `:60` in no other valid time.
    shifted = text.str.contains(":60", literal=True)
    rest = pl.when(val.is_null()).then(text).str.strip_chars()  # masked first: cheap on parsed rows
    names = (f"_{name}_rest", f"_{name}_iso")
    mid = (rest.alias(names[0]), rest.str.extract_groups(_ISO).alias(names[1]))
    then = pl.when(shifted).then(None).otherwise(pl.coalesce(val, _any_form(*map(pl.col, names))))
    stripped = text.str.strip_chars()
    reason = (
        pl.when(src.is_null() | (stripped == "")).then(missing)
        .when(val.is_not_null()).then(None)
        .when(shifted).then(pl.format(f"{name} has second or minute 60 ({{}})", stripped.str.slice(0, 40)))
        .when(stripped.str.contains(_ISO)).then(
            pl.format(f"{name} is not a real date or time ({{}})", stripped.str.slice(0, 40)))
        .otherwise(pl.format(f"unparsable {name} ({{}})", stripped.str.slice(0, 40)))
    )
    return Field(name, _fast(text, fmt, layout), val.is_not_null(), reason, then=then, mid=mid)


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
    if unreadable(dtype):
        return Field(name, pl.lit(None, MONEY), pl.lit(False), pl.lit(f"{name} has unsupported type {dtype}"))
    reason = pl.when(big).then(pl.format(f"{name} is implausibly large ({{}})", val))
    if dtype.is_float():
        # A float in the source is rendered to its shortest decimal text first, so 0.1 stays 0.1.
        return Field(name, src.cast(pl.String).cast(MONEY, strict=False), (~big).fill_null(True), reason,
                     final=final)
    return Field(name, src.cast(MONEY, strict=False), (~big).fill_null(True), reason, final=final)


def label(raw: str, dtype: pl.DataType) -> pl.Expr:
    """A label as logged, as a string (trimmed and checked later, see labels.py); a nested value
    (a Parquet struct or list column) as its JSON text."""
    if nested(dtype):
        return as_json(pl.col(raw), dtype)
    if isinstance(dtype, pl.Duration):  # (Polars casts no duration to text: ISO 8601, `PT1.5S`)
        return pl.col(raw).dt.to_string("iso")
    return pl.col(raw) if dtype == pl.String else pl.col(raw).cast(pl.String)


def frame(lf: pl.LazyFrame, fields: list[Field], labels: dict[str, pl.Expr], constants: dict[str, pl.Expr],
          extra_checks: list[tuple[pl.Expr, pl.Expr]] = ()) -> pl.LazyFrame:
    """Apply parsers stage by stage; add `_ok` and `_reason`. `labels` are computed alongside the first
    stage; `extra_checks` are (ok, reason) pairs over parsed columns (e.g. an allowed-values test)."""
    lf = lf.with_columns([f.first.alias(f.name) for f in fields] + [e.alias(c) for c, e in labels.items()]
                         + [e.alias(c) for c, e in constants.items()])
    mids = [e for f in fields for e in f.mid]
    if mids:
        lf = lf.with_columns(mids)
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
