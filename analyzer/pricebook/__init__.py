"""The price book: shipped TOML files (one per provider) plus user overlays, loaded and validated.

Rates are read with `parse_float=Decimal`, so `3.75` is exactly 3.75. See FORMAT.md beside this file
for the format. Validation errors name the file, the model and the field.
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
SHIPPED = ("anthropic.toml", "openai.toml")
MAX_RATE = Decimal(1_000_000)  # USD per million tokens (or per 1,000 tool uses)
_BOOK_KEYS = {"provider", "currency", "service_tier", "multipliers", "server_tools", "discount", "discount_from", "name"}
_MODEL_KEYS = {"id", "name", "family", "aliases", "platform_ids", "us_geo", "regional_premium", "batch", "released",
               "deprecated", "retired", "period", "provider"}
_PERIOD_KEYS = {*RATE_KEYS, "from", "source", "checked", "confidence", "note", "long_context", "fast"}
_WINDOW_KEYS = {*RATE_KEYS, "from", "until", "threshold"}


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
class Window:
    """Rates that apply inside [start, end) of a period: long-context or fast mode."""

    start: dt.datetime
    end: dt.datetime | None
    rates: Rates
    threshold: int | None = None

    def contains(self, t: dt.datetime) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    rates: Rates
    long_context: Window | None = None
    fast: Window | None = None
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
    lifecycle: dict = field(default_factory=dict)
    periods: tuple[Period, ...] = ()

    def period_at(self, t: dt.datetime) -> Period | None:
        found = None
        for p in self.periods:
            if p.start <= t:
                found = p
        return found


@dataclass(frozen=True)
class Provider:
    name: str
    service_tier: dict[str, Decimal]
    us_geo: Decimal
    regional: Decimal
    server_tools: dict[str, Decimal]


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

    def boundaries(self) -> list[dt.datetime]:
        """Every instant at which some rate changes: the edges of all periods and windows."""
        out: set[dt.datetime] = set()
        for m in self.models.values():
            for p in m.periods:
                out.add(p.start)
                for w in (p.long_context, p.fast):
                    if w is not None:
                        out.add(w.start)
                        if w.end is not None:
                            out.add(w.end)
        for d in self.discounts:
            if d.start is not None:
                out.add(d.start)
        return sorted(out)

    def thresholds(self) -> list[int]:
        """Every long-context threshold in the book (prompt sizes at which a tier can change)."""
        return sorted({p.long_context.threshold for m in self.models.values() for p in m.periods
                       if p.long_context is not None and p.long_context.threshold is not None})

    def discount_at(self, t: dt.datetime) -> Decimal:
        factor = Decimal(1)
        for d in self.discounts:
            if d.start is None or d.start <= t:
                factor *= (Decimal(100) - d.percent) / Decimal(100)
        return factor


# ---------------------------------------------------------------------------------------------
# Loading and validation


class _Ctx:
    def __init__(self, file: str):
        self.file = file

    def fail(self, where: str, msg: str) -> None:
        raise PriceBookError(f"{self.file}: {where}: {msg}")


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


def _check_keys(ctx: _Ctx, where: str, table: dict, allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        ctx.fail(where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _rates(ctx: _Ctx, where: str, table: dict) -> Rates:
    return Rates(**{k: _decimal(ctx, where, k, table[k]) for k in RATE_KEYS if k in table})


def _window(ctx: _Ctx, where: str, table, period_start: dt.datetime, kind: str) -> Window:
    if not isinstance(table, dict):
        ctx.fail(where, f"{kind} must be a table")
    _check_keys(ctx, where, table, _WINDOW_KEYS)
    start = _instant(ctx, where, "from", table["from"]) if "from" in table else period_start
    end = _instant(ctx, where, "until", table["until"]) if "until" in table else None
    if start < period_start:
        ctx.fail(where, f"{kind}.from {start.date()} is before the period's from {period_start.date()}")
    if end is not None and end <= start:
        ctx.fail(where, f"{kind}.until must be after its from")
    threshold = None
    if kind == "long_context":
        t = table.get("threshold")
        if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
            ctx.fail(where, "long_context.threshold must be a positive whole number of prompt tokens")
        threshold = t
    rates = _rates(ctx, f"{where} {kind}", table)
    if rates.input is None or rates.output is None:
        ctx.fail(where, f"{kind} needs at least input and output rates")
    return Window(start, end, rates, threshold)


def _provider(ctx: _Ctx, book: dict, base: Provider | None) -> Provider:
    name = book.get("provider", base.name if base else "custom")
    tiers = dict(base.service_tier) if base else {"standard": Decimal(1)}
    for k, v in book.get("service_tier", {}).items():
        if k not in TIERS:
            ctx.fail("[book.service_tier]", f"unknown service tier {k!r} (allowed: {', '.join(TIERS)})")
        tiers[k] = _decimal(ctx, "[book.service_tier]", k, v)
    mult = book.get("multipliers", {})
    _check_keys(ctx, "[book.multipliers]", mult, {"us_geo", "regional"})
    tools = dict(base.server_tools) if base else {}
    for k, v in book.get("server_tools", {}).items():
        if k not in ("web_search", "web_fetch"):
            ctx.fail("[book.server_tools]", f"unknown server tool {k!r} (allowed: web_search, web_fetch)")
        tools[k] = _decimal(ctx, "[book.server_tools]", k, v)
    return Provider(
        name=name,
        service_tier=tiers,
        us_geo=_decimal(ctx, "[book.multipliers]", "us_geo", mult["us_geo"]) if "us_geo" in mult else (base.us_geo if base else Decimal(1)),
        regional=_decimal(ctx, "[book.multipliers]", "regional", mult["regional"]) if "regional" in mult else (base.regional if base else Decimal(1)),
        server_tools=tools,
    )


def _period(ctx: _Ctx, where: str, table: dict, origin: str) -> Period:
    if "from" not in table:
        ctx.fail(where, "a period needs `from` (the UTC date its prices start)")
    start = _instant(ctx, where, "from", table["from"])
    where = f"{where} (from {start.date()})"
    _check_keys(ctx, where, table, _PERIOD_KEYS)
    rates = _rates(ctx, where, table)
    if rates.input is None or rates.output is None:
        ctx.fail(where, "a period needs at least `input` and `output` rates")
    conf = table.get("confidence", "verified")
    if conf not in CONFIDENCE:
        ctx.fail(where, f"confidence must be one of {', '.join(CONFIDENCE)}, got {conf!r}")
    lc = _window(ctx, where, table["long_context"], start, "long_context") if "long_context" in table else None
    fast = _window(ctx, where, table["fast"], start, "fast") if "fast" in table else None
    return Period(start, rates, lc, fast, str(table.get("source", "")), str(table.get("checked", "")), conf,
                  str(table.get("note", "")), origin)


def _merge_periods(ctx: _Ctx, where: str, old: tuple[Period, ...], new: list[Period]) -> tuple[Period, ...]:
    by_start = {p.start: p for p in old}
    seen: set[dt.datetime] = set()
    for p in new:
        if p.start in seen:
            ctx.fail(where, f"two periods start on {p.start.date()} (overlapping periods)")
        seen.add(p.start)
        by_start[p.start] = p  # an overlay period with the same start replaces the shipped one
    periods = tuple(sorted(by_start.values(), key=lambda p: p.start))
    for a, b in zip(periods, periods[1:]):
        for w in (a.long_context, a.fast):
            if w is not None and w.start >= b.start:
                ctx.fail(where, f"a window starting {w.start.date()} lies outside its period (next period starts {b.start.date()})")
    return periods


def _load_file(path: str, text: bytes, models: dict[str, Model], providers: dict[str, Provider],
               discounts: list[Discount], overlay: bool) -> None:
    ctx = _Ctx(path)
    try:
        doc = tomllib.loads(text.decode("utf-8"), parse_float=Decimal)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        ctx.fail("TOML", str(e))
    except RecursionError:  # the TOML reader recurses per level of nested arrays or tables
        ctx.fail("TOML", "nested too deeply to be a price book")
    _check_keys(ctx, "top level", doc, {"book", "model"})
    book = _table(ctx, "[book]", doc.get("book", {}))
    _check_keys(ctx, "[book]", book, _BOOK_KEYS)
    name = book.get("provider")
    if overlay and name is None and any(k in book for k in ("service_tier", "multipliers", "server_tools")):
        ctx.fail("[book]", "service_tier, multipliers and server_tools apply to a provider: add provider = \"...\"")
    if name is not None or not overlay:
        name = name or "custom"
        providers[name] = _provider(ctx, book, providers.get(name))
    if "discount" in book:
        if not overlay:
            ctx.fail("[book]", "discount belongs in an overlay (--prices), not in the shipped book")
        pct = _decimal(ctx, "[book]", "discount", book["discount"])
        if pct >= 100:
            ctx.fail("[book]", "discount is a percentage below 100")
        start = _instant(ctx, "[book]", "discount_from", book["discount_from"]) if "discount_from" in book else None
        discounts.append(Discount(pct, start, path))
    models_list = doc.get("model", [])
    if not isinstance(models_list, list):
        ctx.fail("[[model]]", "model entries are written [[model]] (an array of tables)")
    for i, m in enumerate(models_list):
        m = _table(ctx, f"model #{i + 1}", m)
        mid = m.get("id")
        if not isinstance(mid, str) or not mid.strip():
            ctx.fail(f"model #{i + 1}", "every [[model]] needs an `id`")
        where = f"model {mid}"
        _check_keys(ctx, where, m, _MODEL_KEYS)
        for key in ("us_geo", "regional_premium", "batch"):
            if key in m:
                _bool(ctx, where, key, m[key])
        for key in ("aliases", "platform_ids"):
            if key in m:
                _strings(ctx, where, key, m[key])
        raw_periods = m.get("period", [])
        if not isinstance(raw_periods, list):
            ctx.fail(where, "periods are written [[model.period]] (an array of tables)")
        periods = [_period(ctx, where, _table(ctx, where, p), path) for p in raw_periods]
        existing = models.get(mid)
        if existing is None:
            if not periods:
                ctx.fail(where, "a new model needs at least one [[model.period]]")
            prov = m.get("provider", name or "custom")
            if prov not in providers:
                providers[prov] = _provider(ctx, {"provider": prov}, None)
            model = Model(
                id=mid, provider=prov, name=str(m.get("name", mid)), family=str(m.get("family", mid)),
                aliases=tuple(m.get("aliases", ())), platform_ids=tuple(m.get("platform_ids", ())),
                us_geo=bool(m.get("us_geo", False)), regional_premium=bool(m.get("regional_premium", False)),
                batch=bool(m.get("batch", True)),
                lifecycle={k: str(m[k]) for k in ("released", "deprecated", "retired") if k in m},
                periods=_merge_periods(ctx, where, (), periods),
            )
        else:
            changes = {k: tuple(m[k]) if k in ("aliases", "platform_ids") else m[k]
                       for k in ("name", "family", "aliases", "platform_ids", "us_geo", "regional_premium", "batch")
                       if k in m}
            model = replace(existing, periods=_merge_periods(ctx, where, existing.periods, periods), **changes)
        models[mid] = model


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
    models: dict[str, Model] = {}
    providers: dict[str, Provider] = {}
    discounts: list[Discount] = []
    digest = hashlib.sha256()
    files: list[str] = []
    if shipped:
        for name in SHIPPED:
            text = resources.files(__package__).joinpath(name).read_bytes()
            _load_file(f"pricebook/{name}", text, models, providers, discounts, overlay=False)
            digest.update(text)
            files.append(f"pricebook/{name}")
    for path in overlays:
        try:
            text = Path(path).read_bytes()
        except OSError as e:
            raise PriceBookError(f"{path}: cannot read price overlay ({e.strerror})") from None
        _load_file(path, text, models, providers, discounts, overlay=True)
        digest.update(text)
    _check_aliases(models)
    return PriceBook(models, providers, files, list(overlays), digest.hexdigest()[:12], discounts)


def check(path: str) -> PriceBook:
    """Validate an overlay file on top of the shipped book (what `llm-cost prices check` does)."""
    return load_price_book([path])


def per_unit(rate: Decimal, multiplier: Decimal, per: int) -> Decimal:
    """A rate per single unit (token or tool use) with its multipliers, exact to 12 places.

    Every shipped rate and multiplier lands exactly on 12 places; an overlay discount such as 1/3
    could not, and is rounded half-even at the 12th place (a millionth of a millionth of a dollar).
    """
    return (rate * multiplier / per).quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)
