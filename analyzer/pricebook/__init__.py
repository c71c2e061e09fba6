"""The price book: shipped TOML files (one per provider) plus user overlays, loaded and validated.

Rates are read with `parse_float=Decimal`, so `3.75` is exactly 3.75. See FORMAT.md beside this file
for the format. Validation errors name the file, the model and the field.

A price is a base-rate period plus dated facts of their own: fast-mode and long-context windows (per
model) and the multipliers and service tiers (per provider). A new period changes base rates only; it
never ends a window or a multiplier, which is why they are not written inside periods.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from ..errors import PriceBookError

RATE_KEYS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
CONFIDENCE = ("verified", "secondary", "estimate")
TIERS = ("standard", "batch", "priority", "flex")
MULTIPLIERS = ("us_geo", "regional")
WINDOWS = ("long_context", "fast")
SHIPPED = ("anthropic.toml", "openai.toml")
MAX_RATE = Decimal(1_000_000)  # USD per million tokens (or per 1,000 tool uses)
_BOOK_KEYS = {"provider", "currency", "service_tier", "multipliers", "server_tools", "discount", "discount_from", "name"}
_MODEL_KEYS = {"id", "name", "family", "aliases", "platform_ids", "us_geo", "regional_premium", "batch", "priority", "released",
               "deprecated", "retired", "period", "provider", *WINDOWS}
_FACT_KEYS = {"source", "checked", "confidence", "note"}
_PERIOD_KEYS = {*RATE_KEYS, "from", *_FACT_KEYS, *WINDOWS}
_WINDOW_KEYS = {*RATE_KEYS, "from", "until", "threshold", *_FACT_KEYS}
_FACTOR_KEYS = {"factor", "from", "until", *_FACT_KEYS}


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for each token class; None = the model never had that price."""

    input: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    cache_read: Decimal | None = None
    output: Decimal | None = None

    def get(self, key: str) -> Decimal | None:
        return getattr(self, key)


@dataclass(frozen=True)
class Provenance:
    """Where a fact comes from: its public source, when it was last compared, how sure that is."""

    source: str = ""
    checked: str = ""
    confidence: str = "verified"
    note: str = ""
    origin: str = ""  # the file this fact came from (shipped book or an overlay)


@dataclass(frozen=True)
class Window:
    """Rates that replace a model's base rates inside [start, end): long context or fast mode.

    A window is dated on its own, independent of the base-price periods: a new period keeps it."""

    kind: str  # "long_context" | "fast"
    start: dt.datetime
    end: dt.datetime | None
    rates: Rates
    threshold: int | None = None  # long context: prompt tokens above which the window's rates apply
    about: Provenance = field(default_factory=Provenance)

    def contains(self, t: dt.datetime) -> bool:
        return self.start <= t and (self.end is None or t < self.end)

    def span(self) -> str:
        return f"{self.start.date()}..{self.end.date() if self.end else 'open'}"


@dataclass(frozen=True)
class Factor:
    """A multiplier (us_geo, regional) or service-tier factor (batch x0.5) with the dates it holds.

    No start: since always; no end: still in force. Outside every factor of its name, a multiplier is
    x1 and a service tier has no price."""

    value: Decimal
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    about: Provenance = field(default_factory=Provenance)

    def contains(self, t: dt.datetime) -> bool:
        return (self.start is None or self.start <= t) and (self.end is None or t < self.end)


def _latest_containing(facts, t: dt.datetime):
    """The fact in force at t: of those containing it, the one that starts last (overlays layer
    on top of the book this way: a later-starting window wins where it overlaps an earlier one)."""
    found = None
    for f in facts:
        if f.contains(t) and (found is None or (f.start or _MIN) >= (found.start or _MIN)):
            found = f
    return found


_MIN = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Period:
    """Base rates from `start` until the next period's start."""

    start: dt.datetime
    rates: Rates
    source: str = ""
    checked: str = ""
    confidence: str = "verified"
    note: str = ""
    origin: str = ""  # the file this period came from (shipped book or an overlay)


@dataclass(frozen=True)
class Model:
    id: str
    provider: str
    name: str
    family: str
    aliases: tuple[str, ...] = ()
    platform_ids: tuple[str, ...] = ()
    us_geo: bool = False
    regional_premium: bool = False
    batch: bool = True
    priority: bool = True  # false: the provider's priority factor is not this model's (its rows stay unpriced)
    lifecycle: dict = field(default_factory=dict)
    periods: tuple[Period, ...] = ()
    long_context: tuple[Window, ...] = ()
    fast: tuple[Window, ...] = ()

    def period_at(self, t: dt.datetime) -> Period | None:
        found = None
        for p in self.periods:
            if p.start <= t:
                found = p
        return found

    def long_context_at(self, t: dt.datetime) -> Window | None:
        return _latest_containing(self.long_context, t)

    def fast_at(self, t: dt.datetime) -> Window | None:
        return _latest_containing(self.fast, t)

    def windows(self) -> tuple[Window, ...]:
        return (*self.long_context, *self.fast)


@dataclass(frozen=True)
class Provider:
    name: str
    tiers: dict[str, tuple[Factor, ...]]
    multipliers: dict[str, tuple[Factor, ...]]
    server_tools: dict[str, Decimal]

    def tier_at(self, tier: str, t: dt.datetime) -> Decimal | None:
        """The tier's factor at t; None when the tier has no price then (batch before its launch)."""
        f = _latest_containing(self.tiers.get(tier, ()), t)
        return None if f is None else f.value

    def multiplier_at(self, name: str, t: dt.datetime) -> Decimal | None:
        """The multiplier's factor at t; None when none is in force (nothing to apply or tag)."""
        f = _latest_containing(self.multipliers.get(name, ()), t)
        return None if f is None else f.value

    @property
    def service_tier(self) -> dict[str, Decimal]:
        """Each tier's latest factor (for display; pricing asks tier_at)."""
        return {k: v[-1].value for k, v in self.tiers.items() if v}

    @property
    def us_geo(self) -> Decimal:
        return self.multipliers["us_geo"][-1].value if self.multipliers.get("us_geo") else Decimal(1)

    @property
    def regional(self) -> Decimal:
        return self.multipliers["regional"][-1].value if self.multipliers.get("regional") else Decimal(1)

    def factors(self):
        for facts in (*self.tiers.values(), *self.multipliers.values()):
            yield from facts


@dataclass(frozen=True)
class Discount:
    """A book-wide percentage off every rate, from an overlay (a negotiated rebate)."""

    percent: Decimal
    start: dt.datetime | None
    origin: str


@dataclass
class PriceBook:
    models: dict[str, Model]
    providers: dict[str, Provider]
    files: list[str]
    overlays: list[str]
    version: str
    discounts: list[Discount] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what an overlay changed that it may not mean to

    def boundaries(self) -> list[dt.datetime]:
        """Every instant at which some rate changes: the edges of periods, windows, factors, discounts."""
        out: set[dt.datetime] = set()
        for m in self.models.values():
            out.update(p.start for p in m.periods)
            for w in m.windows():
                out.update(e for e in (w.start, w.end) if e is not None)
        for prov in self.providers.values():
            for f in prov.factors():
                out.update(e for e in (f.start, f.end) if e is not None)
        out.update(d.start for d in self.discounts if d.start is not None)
        return sorted(out)

    def thresholds(self) -> list[int]:
        """Every long-context threshold in the book (prompt sizes at which a tier can change)."""
        return sorted({w.threshold for m in self.models.values() for w in m.long_context if w.threshold is not None})

    def discount_at(self, t: dt.datetime) -> Decimal:
        factor = Decimal(1)
        for d in self.discounts:
            if d.start is None or d.start <= t:
                factor *= (Decimal(100) - d.percent) / Decimal(100)
        return factor


# ---------------------------------------------------------------------------------------------
# Loading and validation


class _Ctx:
    """The file being read: where errors and warnings point."""

    def __init__(self, file: str, overlay: bool, warnings: list[str]):
        self.file = file
        self.overlay = overlay
        self.warnings = warnings

    def fail(self, where: str, msg: str) -> None:
        raise PriceBookError(f"{self.file}: {where}: {msg}")

    def warn(self, where: str, msg: str) -> None:
        self.warnings.append(f"{self.file}: {where}: {msg}")


@dataclass
class _Book:
    """What the files read so far define (each file adds to it, overlays last)."""

    models: dict[str, Model] = field(default_factory=dict)
    providers: dict[str, Provider] = field(default_factory=dict)
    discounts: list[Discount] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _instant(ctx: _Ctx, where: str, key: str, v) -> dt.datetime:
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.UTC)
        return v.astimezone(dt.UTC)
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)
    if isinstance(v, str):
        try:
            return _instant(ctx, where, key, dt.datetime.fromisoformat(v.replace("Z", "+00:00")))
        except ValueError:
            pass
    ctx.fail(where, f"{key} must be a date (2026-03-13) or a date-time with offset, got {v!r}")
    raise AssertionError


def _decimal(ctx: _Ctx, where: str, key: str, v) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, (int, Decimal, str)):
        ctx.fail(where, f"{key} must be a decimal number, got {v!r}")
    try:
        d = Decimal(v) if not isinstance(v, Decimal) else v
    except InvalidOperation:
        ctx.fail(where, f"{key} must be a decimal number, got {v!r}")
    if not d.is_finite() or d < 0:
        ctx.fail(where, f"{key} must be a non-negative decimal number, got {v!r}")
    if d > MAX_RATE:
        ctx.fail(where, f"{key} = {v} is beyond any plausible price (more than {MAX_RATE:,} USD per million)")
    return d


def _bool(ctx: _Ctx, where: str, key: str, v) -> bool:
    if not isinstance(v, bool):
        ctx.fail(where, f"{key} must be true or false, got {v!r}")
    return v


def _strings(ctx: _Ctx, where: str, key: str, v) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
        ctx.fail(where, f"{key} must be a list of model ids, e.g. [\"claude-x\"], got {v!r}")
    return tuple(v)


def _table(ctx: _Ctx, where: str, v) -> dict:
    if not isinstance(v, dict):
        ctx.fail(where, f"must be a table, got {v!r}")
    return v


def _tables(ctx: _Ctx, where: str, v, spelling: str) -> list[dict]:
    """An array of tables; a single table is accepted as an array of one."""
    if isinstance(v, dict):
        return [v]
    if not isinstance(v, list):
        ctx.fail(where, f"write it as {spelling} (an array of tables)")
    return [_table(ctx, where, x) for x in v]


def _check_keys(ctx: _Ctx, where: str, table: dict, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        ctx.fail(where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _rates(ctx: _Ctx, where: str, table: dict) -> Rates:
    return Rates(**{k: _decimal(ctx, where, k, table[k]) for k in RATE_KEYS if k in table})


def _provenance(ctx: _Ctx, where: str, table: dict) -> Provenance:
    conf = table.get("confidence", "verified")
    if conf not in CONFIDENCE:
        ctx.fail(where, f"confidence must be one of {', '.join(CONFIDENCE)}, got {conf!r}")
    return Provenance(str(table.get("source", "")), str(table.get("checked", "")), conf, str(table.get("note", "")),
                      ctx.file)


def _span(ctx: _Ctx, where: str, table: dict, default_start: dt.datetime | None):
    """A fact's [from, until): `from` is required unless a default is given; until after from. (`where`
    names the fact, "model x fast #1": the message does not name it again.)"""
    if "from" not in table and default_start is None:
        ctx.fail(where, "needs `from` (the UTC date it starts)")
    start = _instant(ctx, where, "from", table["from"]) if "from" in table else default_start
    end = _instant(ctx, where, "until", table["until"]) if "until" in table else None
    if end is not None and start is not None and end <= start:
        ctx.fail(where, "until must be after its from")
    return start, end


# --- [book]: provider factors, server tools, discount


def _factor(ctx: _Ctx, where: str, table: dict) -> Factor:
    _check_keys(ctx, where, table, _FACTOR_KEYS)
    if "factor" not in table:
        ctx.fail(where, "a dated multiplier needs `factor`")
    start = _instant(ctx, where, "from", table["from"]) if "from" in table else None
    end = _instant(ctx, where, "until", table["until"]) if "until" in table else None
    if start is not None and end is not None and end <= start:
        ctx.fail(where, "until must be after its from")
    return Factor(_decimal(ctx, where, "factor", table["factor"]), start, end, _provenance(ctx, where, table))


def _factors(ctx: _Ctx, where: str, v) -> tuple[tuple[Factor, ...], bool]:
    """A multiplier or tier written as a number (all dates) or as dated table(s); (factors, dated)."""
    if isinstance(v, (dict, list)):
        facts = tuple(_factor(ctx, where, t) for t in _tables(ctx, where, v, "[[...]] tables"))
        if not facts:  # (an empty list would leave the tier with no price at any date, silently)
            ctx.fail(where, "needs a factor: a number, or tables with `factor`")
        starts = [f.start for f in facts]
        if len(set(starts)) != len(starts):
            ctx.fail(where, "two entries start on the same date")
        return facts, True
    return (Factor(_decimal(ctx, where, "factor", v), about=Provenance(origin=ctx.file)),), False


def _merge_factors(ctx: _Ctx, where: str, old: tuple[Factor, ...], v) -> tuple[Factor, ...]:
    new, dated = _factors(ctx, where, v)
    if not dated:
        if ctx.overlay and any(f.start or f.end for f in old):
            ctx.warn(where, f"x{new[0].value} without dates replaces the dated {_describe_factors(old)}: "
                            "it now applies at every date")
        return new
    by_start = {f.start: f for f in old}
    for f in new:
        before = by_start.get(f.start)
        if ctx.overlay and before is not None and _ends_earlier(f.end, before.end):
            ctx.warn(where, f"cuts x{before.value} from {_day(f.start)}: it now ends {_day(f.end)}, "
                            f"not {_day(before.end)}")
        by_start[f.start] = f
    return tuple(sorted(by_start.values(), key=lambda f: f.start or _MIN))


def _describe_factors(facts) -> str:
    return ", ".join(f"x{f.value} {_day(f.start, 'always')}..{_day(f.end)}" for f in facts)


def _day(t: dt.datetime | None, none: str = "open") -> str:
    return none if t is None else t.date().isoformat()


def _ends_earlier(new_end: dt.datetime | None, old_end: dt.datetime | None) -> bool:
    return new_end is not None and (old_end is None or new_end < old_end)


def _provider(ctx: _Ctx, book: dict, base: Provider | None) -> Provider:
    name = book.get("provider", base.name if base else "custom")
    tiers = dict(base.tiers) if base else {"standard": (Factor(Decimal(1)),)}
    for k, v in _table(ctx, "[book.service_tier]", book.get("service_tier", {})).items():
        if k not in TIERS:
            ctx.fail("[book.service_tier]", f"unknown service tier {k!r} (allowed: {', '.join(TIERS)})")
        tiers[k] = _merge_factors(ctx, f"[book.service_tier] {k}", tiers.get(k, ()), v)
    mult = _table(ctx, "[book.multipliers]", book.get("multipliers", {}))
    _check_keys(ctx, "[book.multipliers]", mult, set(MULTIPLIERS))
    multipliers = dict(base.multipliers) if base else {}
    for k, v in mult.items():
        multipliers[k] = _merge_factors(ctx, f"[book.multipliers] {k}", multipliers.get(k, ()), v)
    tools = dict(base.server_tools) if base else {}
    for k, v in book.get("server_tools", {}).items():
        if k not in ("web_search", "web_fetch"):
            ctx.fail("[book.server_tools]", f"unknown server tool {k!r} (allowed: web_search, web_fetch)")
        tools[k] = _decimal(ctx, "[book.server_tools]", k, v)
    return Provider(name=name, tiers=tiers, multipliers=multipliers, server_tools=tools)


def _read_book(ctx: _Ctx, book: dict, st: _Book) -> str | None:
    """The [book] table: provider factors and an overlay's discount. Returns the provider it names."""
    _check_keys(ctx, "[book]", book, _BOOK_KEYS)
    name = book.get("provider")
    if ctx.overlay and name is None and any(k in book for k in ("service_tier", "multipliers", "server_tools")):
        ctx.fail("[book]", "service_tier, multipliers and server_tools apply to a provider: add provider = \"...\"")
    if name is not None or not ctx.overlay:
        name = name or "custom"
        st.providers[name] = _provider(ctx, book, st.providers.get(name))
    if "discount" in book:
        st.discounts.append(_discount(ctx, book))
    return name


def _discount(ctx: _Ctx, book: dict) -> Discount:
    if not ctx.overlay:
        ctx.fail("[book]", "discount belongs in an overlay (--prices), not in the shipped book")
    pct = _decimal(ctx, "[book]", "discount", book["discount"])
    if pct >= 100:
        ctx.fail("[book]", "discount is a percentage below 100")
    start = _instant(ctx, "[book]", "discount_from", book["discount_from"]) if "discount_from" in book else None
    return Discount(pct, start, ctx.file)


# --- [[model]]: periods and windows


def _window(ctx: _Ctx, where: str, table: dict, kind: str, default_start: dt.datetime | None) -> Window:
    _check_keys(ctx, where, table, _WINDOW_KEYS)
    start, end = _span(ctx, where, table, default_start)
    threshold = None
    if kind == "long_context":
        t = table.get("threshold")
        if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
            ctx.fail(where, "threshold must be a positive whole number of prompt tokens")
        threshold = t
    elif "threshold" in table:
        ctx.fail(where, "threshold belongs to long_context, not fast")
    rates = _rates(ctx, where, table)
    if rates.input is None or rates.output is None:
        ctx.fail(where, "needs at least input and output rates")
    return Window(kind, start, end, rates, threshold, _provenance(ctx, where, table))


def _period(ctx: _Ctx, where: str, table: dict) -> tuple[Period, list[Window]]:
    """A base-rate period, and any window written inside it (the old spelling: see _nested_window)."""
    if "from" not in table:
        ctx.fail(where, "a period needs `from` (the UTC date its prices start)")
    start = _instant(ctx, where, "from", table["from"])
    where = f"{where} (from {start.date()})"
    _check_keys(ctx, where, table, _PERIOD_KEYS)
    rates = _rates(ctx, where, table)
    if rates.input is None or rates.output is None:
        ctx.fail(where, "a period needs at least `input` and `output` rates")
    about = _provenance(ctx, where, table)
    period = Period(start, rates, about.source, about.checked, about.confidence, about.note, ctx.file)
    nested = [_nested_window(ctx, where, table[kind], kind, period) for kind in WINDOWS if kind in table]
    return period, nested


def _nested_window(ctx: _Ctx, where: str, table, kind: str, period: Period) -> Window:
    """A window written inside a period, as books did before windows were facts of their own. It
    reads as a window from the period's start (unless it says) that a later period no longer ends."""
    w = _window(ctx, f"{where} {kind}", _table(ctx, f"{where} {kind}", table), kind, period.start)
    if w.start < period.start:
        ctx.fail(where, f"{kind}.from {w.start.date()} is before the period's from {period.start.date()}")
    ctx.warn(where, f"{kind} written inside a period is a window of its own ({w.span()}) that later periods "
                    f"keep; write it as [[model.{kind}]]")
    about = w.about if w.about.source else Provenance(period.source, period.checked, period.confidence, "", ctx.file)
    return replace(w, about=about)


def _model_windows(ctx: _Ctx, where: str, m: dict, nested: list[Window]) -> dict[str, list[Window]]:
    out: dict[str, list[Window]] = {kind: [w for w in nested if w.kind == kind] for kind in WINDOWS}
    for kind in WINDOWS:
        for i, t in enumerate(_tables(ctx, where, m.get(kind, []), f"[[model.{kind}]]")):
            out[kind].append(_window(ctx, f"{where} {kind} #{i + 1}", t, kind, None))
    for kind, ws in out.items():
        _no_overlap(ctx, where, kind, ws)
    return out


def _no_overlap(ctx: _Ctx, where: str, kind: str, windows: list[Window]) -> None:
    """Within one file, two windows of a kind may not overlap: which one holds would be a guess."""
    ws = sorted(windows, key=lambda w: w.start)
    for a, b in zip(ws, ws[1:]):
        if a.end is None or b.start < a.end:
            ctx.fail(where, f"two {kind} windows overlap ({a.span()} and {b.span()})")


def _merge_windows(ctx: _Ctx, where: str, kind: str, old: tuple[Window, ...], new: list[Window]) -> tuple[Window, ...]:
    """Add a file's windows to a model's: the same `from` replaces, an overlapping one layers on top."""
    by_start = {w.start: w for w in old}
    for w in new:
        before = by_start.get(w.start)
        if ctx.overlay and before is not None and _ends_earlier(w.end, before.end):
            ctx.warn(where, f"cuts the {kind} window {before.span()} to {w.span()}")
        elif ctx.overlay and before is None:
            for o in old:
                if w.start < (o.end or dt.datetime.max.replace(tzinfo=dt.UTC)) and o.start < (
                        w.end or dt.datetime.max.replace(tzinfo=dt.UTC)):
                    ctx.warn(where, f"the {kind} window {w.span()} replaces the rates of {o.span()} where they overlap")
        by_start[w.start] = w
    return tuple(sorted(by_start.values(), key=lambda w: w.start))


def _merge_periods(ctx: _Ctx, where: str, old: tuple[Period, ...], new: list[Period]) -> tuple[Period, ...]:
    by_start = {p.start: p for p in old}
    seen: set[dt.datetime] = set()
    for p in new:
        if p.start in seen:
            ctx.fail(where, f"two periods start on {p.start.date()} (overlapping periods)")
        seen.add(p.start)
        by_start[p.start] = p  # an overlay period with the same start replaces the shipped one
    return tuple(sorted(by_start.values(), key=lambda p: p.start))


def _warn_periods_in_windows(ctx: _Ctx, where: str, model: Model, new: list[Period]) -> None:
    """An overlay period that starts inside a window changes base rates only: say the window stays."""
    for p in new:
        for w in (model.long_context_at(p.start), model.fast_at(p.start)):
            if w is not None and w.start < p.start:
                ctx.warn(where, f"the period from {p.start.date()} keeps the {w.kind} window {w.span()} "
                                f"(input {w.rates.input}, output {w.rates.output}); to change it, add a "
                                f"[[model.{w.kind}]]")


_MODEL_FLAGS = ("us_geo", "regional_premium", "batch", "priority")


def _model_id(ctx: _Ctx, i: int, m: dict) -> str:
    mid = m.get("id")
    if not isinstance(mid, str) or not mid.strip():
        ctx.fail(f"model #{i + 1}", "every [[model]] needs an `id`")
    return mid


def _check_model_fields(ctx: _Ctx, where: str, m: dict) -> None:
    _check_keys(ctx, where, m, _MODEL_KEYS)
    for key in _MODEL_FLAGS:
        if key in m:
            _bool(ctx, where, key, m[key])
    for key in ("aliases", "platform_ids"):
        if key in m:
            _strings(ctx, where, key, m[key])


def _new_model(ctx: _Ctx, where: str, mid: str, m: dict, provider: str, periods: list[Period],
               windows: dict[str, list[Window]]) -> Model:
    if not periods:
        ctx.fail(where, "a new model needs at least one [[model.period]]")
    return Model(
        id=mid, provider=provider, name=str(m.get("name", mid)), family=str(m.get("family", mid)),
        aliases=tuple(m.get("aliases", ())), platform_ids=tuple(m.get("platform_ids", ())),
        us_geo=bool(m.get("us_geo", False)), regional_premium=bool(m.get("regional_premium", False)),
        batch=bool(m.get("batch", True)), priority=bool(m.get("priority", True)),
        lifecycle={k: str(m[k]) for k in ("released", "deprecated", "retired") if k in m},
        periods=_merge_periods(ctx, where, (), periods),
        long_context=tuple(sorted(windows["long_context"], key=lambda w: w.start)),
        fast=tuple(sorted(windows["fast"], key=lambda w: w.start)),
    )


def _update_model(ctx: _Ctx, where: str, existing: Model, m: dict, periods: list[Period],
                  windows: dict[str, list[Window]]) -> Model:
    """A later file's entry for a model already in the book: its fields, periods and windows win."""
    changes = {k: tuple(m[k]) if k in ("aliases", "platform_ids") else m[k]
               for k in ("name", "family", "aliases", "platform_ids", *_MODEL_FLAGS) if k in m}
    model = replace(existing, periods=_merge_periods(ctx, where, existing.periods, periods),
                    long_context=_merge_windows(ctx, where, "long_context", existing.long_context,
                                                windows["long_context"]),
                    fast=_merge_windows(ctx, where, "fast", existing.fast, windows["fast"]), **changes)
    if ctx.overlay:
        _warn_periods_in_windows(ctx, where, model, periods)
    return model


def _read_model(ctx: _Ctx, i: int, m: dict, book_provider: str | None, st: _Book) -> None:
    mid = _model_id(ctx, i, m)
    where = f"model {mid}"
    _check_model_fields(ctx, where, m)
    read = [_period(ctx, where, p) for p in _tables(ctx, where, m.get("period", []), "[[model.period]]")]
    periods = [p for p, _ in read]
    windows = _model_windows(ctx, where, m, [w for _, ws in read for w in ws])
    existing = st.models.get(mid)
    if existing is not None:
        st.models[mid] = _update_model(ctx, where, existing, m, periods, windows)
        return
    provider = m.get("provider", book_provider or "custom")
    if provider not in st.providers:
        st.providers[provider] = _provider(ctx, {"provider": provider}, None)
    st.models[mid] = _new_model(ctx, where, mid, m, provider, periods, windows)


def _parse_toml(ctx: _Ctx, text: bytes) -> dict:
    try:
        return tomllib.loads(text.decode("utf-8"), parse_float=Decimal)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        ctx.fail("TOML", str(e))
    except RecursionError:  # the TOML reader recurses per level of nested arrays or tables
        ctx.fail("TOML", "nested too deeply to be a price book")
    raise AssertionError


def _load_file(path: str, text: bytes, st: _Book, overlay: bool) -> None:
    """Read one book file into `st`: its [book] table, then each [[model]] in order."""
    ctx = _Ctx(path, overlay, st.warnings)
    doc = _parse_toml(ctx, text)
    _check_keys(ctx, "top level", doc, {"book", "model"})
    book_provider = _read_book(ctx, _table(ctx, "[book]", doc.get("book", {})), st)
    models = doc.get("model", [])
    if not isinstance(models, list):
        ctx.fail("[[model]]", "model entries are written [[model]] (an array of tables)")
    for i, m in enumerate(models):
        _read_model(ctx, i, _table(ctx, f"model #{i + 1}", m), book_provider, st)


def _check_aliases(models: dict[str, Model]) -> None:
    claimed: dict[str, str] = {}
    for m in models.values():
        for a in (m.id, *m.aliases, *m.platform_ids):
            key = a.strip().lower()
            if key in claimed and claimed[key] != m.id:
                raise PriceBookError(f"price book: alias {a!r} is claimed by both {claimed[key]} and {m.id}")
            claimed[key] = m.id


def load_price_book(overlays: list[str] | tuple[str, ...] = (), shipped: bool = True) -> PriceBook:
    """The shipped book plus overlays (later files win). Raises PriceBookError naming file/model/field."""
    st = _Book()
    digest = hashlib.sha256()
    files: list[str] = []
    if shipped:
        for name in SHIPPED:
            text = resources.files(__package__).joinpath(name).read_bytes()
            _load_file(f"pricebook/{name}", text, st, overlay=False)
            digest.update(text)
            files.append(f"pricebook/{name}")
    for path in overlays:
        try:
            text = Path(path).read_bytes()
        except OSError as e:
            raise PriceBookError(f"{path}: cannot read price overlay ({e.strerror})") from None
        _load_file(path, text, st, overlay=True)
        digest.update(text)
    _check_aliases(st.models)
    return PriceBook(st.models, st.providers, files, list(overlays), digest.hexdigest()[:12], st.discounts, st.warnings)


def check(path: str) -> PriceBook:
    """Validate an overlay file on top of the shipped book (what `llm-cost prices check` does)."""
    return load_price_book([path])


def per_unit(rate: Decimal, multiplier: Decimal, per: int) -> Decimal:
    """A rate per single unit (token or tool use) with its multipliers, exact to 12 places.

    Every shipped rate and multiplier lands exactly on 12 places; an overlay discount such as 1/3
    could not, and is rounded half-even at the 12th place (a millionth of a millionth of a dollar).
    """
    return (rate * multiplier / per).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)
