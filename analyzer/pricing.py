"""Rates and exact costs.

`rate_frame` turns the distinct rate keys of a run (a few hundred rows at most, whatever the number
of requests) into one row of per-unit Decimal rates each, deciding model, price period, context tier,
applied speed, multipliers and tags from the price book. `cost_columns` then prices any frame that
carries those rates, as Polars Decimal expressions: count x per-unit rate, exact at 12 places.
"""

from __future__ import annotations

import datetime as dt
from decimal import Context, Decimal

import polars as pl

from .models import Resolver
from .pricebook import PriceBook, Rates, per_unit
from .schema import COMPONENTS, MONEY, TOKEN_COMPONENTS, TOOL_COMPONENTS
from .tagging import PROMPT_BAND, RATE_KEYS, TIME_BAND, USES

PARTNER_PLATFORMS = ("bedrock", "vertex")  # their own regional pricing; inference_geo does not apply
RATE = "rate_"  # prefix of per-unit rate columns
LIST_RATE = "list_rate_"
# A pre-aggregated row whose context window spans a long-context threshold: priced at base, noted.
TIER_UNKNOWN = "tier_unknown"


def _window_bounds(context_window: str | None) -> tuple[int, int | None] | None:
    """Prompt sizes a pre-aggregated report's context-window label covers: '0-200k' -> (0, 200000),
    '200k-1m' -> (200000, 1000000), '>200k' -> (200000, None), '≤ 200k' -> (0, 200000)."""
    if not context_window:
        return None
    text = context_window.strip().lower()
    if text.startswith(("≤", "<")):  # the Console's "≤ 200k": up to 200k, the base window
        upper = _tokens(text.lstrip("≤<= "))
        return (0, upper) if upper is not None else None
    head, _, tail = text.lstrip(">=≥ ").partition("-")
    lower = _tokens(head)
    if lower is None:
        return None
    return lower, _tokens(tail) if tail else None


def _tokens(label: str) -> int | None:
    """'200k' -> 200000, '1m' -> 1000000, '5000' -> 5000; None when it is no size."""
    label = label.strip()
    mult = 1_000_000 if label.endswith("m") else 1_000 if label.endswith("k") else 1
    try:
        return int(Decimal(label.rstrip("km")) * mult)
    except ArithmeticError:
        return None


_EMPTY = {"model": None, "family": None, "provider": None, "price_period": None, "confidence": None,
          "context_tier": None, "discount_type": None, "unpriced_reason": None, TIER_UNKNOWN: False}


class _Unpriced(Exception):  # noqa: N818 (control flow inside _row_rates, never raised out of it)
    """This rate key has no price; the message says why."""


def _row_rates(key: dict, book: PriceBook, resolver: Resolver, edges: list[dt.datetime], thresholds: list[int]) -> dict:
    """Model, period, context tier, speed, multipliers and per-unit rates of one distinct rate key."""
    out = dict(_EMPTY)
    rates: dict[str, Decimal | None] = {c.column: None for c in COMPONENTS}
    list_rates: dict[str, Decimal | None] = dict(rates)
    model_id, id_scope, problem = resolver.resolve(key["model_raw"])
    scope = key["endpoint_scope"] or id_scope
    out["endpoint_scope_resolved"] = scope
    try:
        if model_id is None:
            raise _Unpriced(f"{problem}: {key['model_raw']}")
        model = book.models[model_id]
        out.update(model=model.id, family=model.family, provider=model.provider)
        band = key[TIME_BAND]
        t = edges[band] if band >= 0 else None  # every instant of a band resolves alike: rate changes are its edges
        period = _period(model, t)
        out.update(price_period=period.start.date().isoformat(), confidence=period.confidence)
        chosen, long, fast, unsure = _applied_rates(model, period, key, t, thresholds)
        tier_mult, tags = _tier(book.providers[model.provider], model, key["service_tier"], t, fast)
        mult, more = _multipliers(book, model, key, scope, t)
        tags = [*tags, *(["long_context"] if long else []), *(["fast"] if fast else []), *more]
        _fill_rates(rates, list_rates, chosen, book.providers[model.provider], mult, tier_mult, book.discount_at(t))
        out.update(context_tier="long" if long else "base", discount_type="+".join(tags) or "standard")
        out[TIER_UNKNOWN] = unsure
        _check_components(key, rates, model)
    except _Unpriced as e:
        out["unpriced_reason"] = str(e)
    return out | _rate_cols(rates, list_rates)


def _period(model, t: dt.datetime | None):
    period = model.period_at(t) if t is not None else None
    if period is None:
        raise _Unpriced(f"no price for {model.id} before {model.periods[0].start.date()}")
    return period


def _applied_rates(model, period, key: dict, t: dt.datetime, thresholds: list[int]) -> tuple[Rates, bool, bool, bool]:
    """(rates, long context?, fast?, tier unknown?) for the request at t.

    The request's prompt band says which thresholds it exceeds; a pre-aggregated report says its
    context window instead, and a window that spans the threshold cannot say: base rates, flagged."""
    lc = model.long_context_at(t)
    long = unsure = False
    if lc is not None:
        bounds = _window_bounds(key["context_window"])
        if bounds is not None:
            lower, upper = bounds
            long = lower >= lc.threshold
            unsure = not long and (upper is None or upper > lc.threshold)
        else:
            long = key[PROMPT_BAND] > thresholds.index(lc.threshold)
    fw = model.fast_at(t) if key["speed"] == "fast" else None
    # Fast-mode prices hold across the whole context window, so a fast request is never charged the
    # long-context tier; its context_tier says which rates were applied, not how long the prompt was.
    if fw is not None:
        return fw.rates, False, True, False
    return (lc.rates if long else period.rates), long, False, unsure


def _tier(provider, model, tier: str, t: dt.datetime, fast: bool) -> tuple[Decimal, list[str]]:
    """The service tier's factor at t and its tag (none for standard)."""
    if tier not in provider.tiers:
        raise _Unpriced(f"no {tier} tier price for {model.id} ({model.provider})")
    if tier == "batch" and not model.batch:
        raise _Unpriced(f"no batch price for {model.id}")
    if tier == "priority" and not model.priority:
        raise _Unpriced(f"no priority price for {model.id} in the book (its priority rates are not the "
                        f"{model.provider} book's x{provider.tier_at(tier, t)})")
    factor = provider.tier_at(tier, t)
    if factor is None:
        raise _Unpriced(f"no {tier} tier price for {model.id} {_outside(provider.tiers[tier], t)}")
    # Fast mode cannot be combined with the Batch API; if a log says both, fast pricing wins.
    if fast:
        return Decimal(1), [] if tier in ("standard", "batch") else [tier]
    return factor, [] if tier == "standard" else [tier]


def _outside(factors, t: dt.datetime) -> str:
    """'before 2024-10-08' or 'after 2027-01-01': why no factor of a tier holds at t."""
    starts = [f.start for f in factors if f.start is not None and f.start > t]
    return f"before {min(starts).date()}" if starts else f"after {max(f.end for f in factors if f.end).date()}"


def _multipliers(book: PriceBook, model, key: dict, scope: str | None, t: dt.datetime) -> tuple[Decimal, list[str]]:
    """US-only inference and regional-endpoint multipliers in force at t, with their tags."""
    provider = book.providers[model.provider]
    applies = {"us_geo": key["inference_geo"] == "us" and model.us_geo
               and (key["platform"] or "") not in PARTNER_PLATFORMS,
               "regional": scope == "regional" and model.regional_premium}
    mult, tags = Decimal(1), []
    for name, on in applies.items():
        factor = provider.multiplier_at(name, t) if on else None
        if factor is not None:
            mult *= factor
            tags.append(name)
    return mult, tags


def _fill_rates(rates: dict, list_rates: dict, chosen: Rates, provider, mult: Decimal, tier_mult: Decimal,
                discount: Decimal) -> None:
    """Per-unit rates with every multiplier, and list rates: the same request at the standard tier,
    every prompt token at the plain input rate."""
    mult *= discount
    for c in TOKEN_COMPONENTS:
        r = chosen.get(c.rate)
        rates[c.column] = None if r is None else per_unit(r, mult * tier_mult, c.per)
        list_rates[c.column] = per_unit(chosen.output if c.column == "output_tokens" else chosen.input, mult, c.per)
    for c in TOOL_COMPONENTS:
        r = provider.server_tools.get(c.rate)
        rates[c.column] = None if r is None else per_unit(r, discount, c.per)
        list_rates[c.column] = rates[c.column]


def _check_components(key: dict, rates: dict, model) -> None:
    # Whether the request can be priced is decided here, from the components it uses (a rate key),
    # never from the summed counts of a group: a request without cache reads is priceable on a model
    # that has no cache-read rate, whatever other requests of its month did.
    missing = [c for i, c in enumerate(COMPONENTS) if key[USES] & (1 << i) and rates[c.column] is None]
    if missing:
        raise _Unpriced("; ".join(f"no {c.rate} rate for {model.id}" for c in missing))


def _rate_cols(rates: dict, list_rates: dict) -> dict:
    return {**{RATE + k: v for k, v in rates.items()}, **{LIST_RATE + k: v for k, v in list_rates.items()}}


def rate_frame(keys: pl.DataFrame, book: PriceBook) -> pl.DataFrame:
    """Rates for each distinct combination of rate keys (a small frame, built once per run)."""
    resolver = Resolver(book)
    edges = book.boundaries()
    thresholds = book.thresholds()
    distinct = keys.select(RATE_KEYS).unique(maintain_order=True)
    rows = [dict(k, **_row_rates(k, book, resolver, edges, thresholds)) for k in distinct.to_dicts()]
    schema = {**{k: distinct.schema[k] for k in RATE_KEYS},
              **{k: pl.String for k in ("model", "family", "provider", "price_period", "confidence", "context_tier",
                                        "discount_type", "unpriced_reason", "endpoint_scope_resolved")},
              TIER_UNKNOWN: pl.Boolean,
              **{RATE + c.column: MONEY for c in COMPONENTS}, **{LIST_RATE + c.column: MONEY for c in COMPONENTS}}
    # Rates go in as text and are cast to Decimal: exact either way, and Polars builds a column of
    # Python Decimals through numpy, whose import (~0.1-0.2 s) was a tenth of a small report's run.
    money = {k for k, t in schema.items() if t == MONEY}
    text = [{k: (format(v, "f") if k in money and v is not None else v) for k, v in r.items()} for r in rows]
    frame = pl.DataFrame(text, schema={k: pl.String if k in money else t for k, t in schema.items()},
                         orient="row" if not rows else None)
    return frame.with_columns(pl.col(sorted(money)).cast(MONEY))


def _as_money_count(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Decimal(38, 0))


def cost_columns() -> list[pl.Expr]:
    """cost_<component>, cost, list_cost and savings from counts and joined per-unit rates."""
    # A component the request does not use costs 0 even where the model has no rate for it (a
    # component it uses without a rate makes the request unpriced: see _row_rates).
    return [pl.when(pl.col(c.column) == 0).then(pl.lit(0, MONEY))
            .otherwise((_as_money_count(c.column) * pl.col(RATE + c.column)).cast(MONEY)).alias("cost_" + c.rate)
            for c in COMPONENTS]


def totals_columns() -> list[pl.Expr]:
    cost = pl.sum_horizontal([pl.col("cost_" + c.rate).fill_null(pl.lit(0, MONEY)) for c in COMPONENTS])
    list_cost = pl.sum_horizontal(
        [(_as_money_count(c.column) * pl.col(LIST_RATE + c.column)).fill_null(pl.lit(0, MONEY)) for c in COMPONENTS]
    )
    return [cost.cast(MONEY).alias("cost"), list_cost.cast(MONEY).alias("list_cost"),
            (list_cost - cost).cast(MONEY).alias("savings")]



class _Banded:
    """A price book whose rate-change instants and long-context thresholds are those of several
    books together. Aggregating a run with it makes every group fine enough for each of those
    books: a group's price band and prompt band lie inside one band of any of them, so the groups
    can be priced again with another book (a what-if overlay, the shipped list prices) exactly."""

    def __init__(self, book: PriceBook, edges: list[dt.datetime], thresholds: list[int]):
        self._book, self._edges, self._thresholds = book, edges, thresholds

    def __getattr__(self, name):
        return getattr(self._book, name)

    def boundaries(self) -> list[dt.datetime]:
        return self._edges

    def thresholds(self) -> list[int]:
        return self._thresholds


def banded(*books: PriceBook) -> list[PriceBook]:
    """Each book, seeing the rate-change instants and thresholds of all of them (see _Banded)."""
    edges = sorted({t for b in books for t in b.boundaries()})
    thresholds = sorted({t for b in books for t in b.thresholds()})
    return [_Banded(b, edges, thresholds) for b in books]  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------
# Per-request pricing without a join: each row finds its rate key's row of the small rate frame by
# integer arithmetic, and takes its rates and tags from it by position. A join onto every row
# buffers what passes through it in the streaming engine (and hashes ten columns per row); this is a
# few integer operations per row and streams.

RATE_ROW = "_rate_row"  # a row's position in the rate frame (null: its key is not in the frame)
_SCALE = 10 ** MONEY.scale  # money in units of 10^-12 USD: MONEY's raw integer
# Integer costs need |count x rate| summed over every component to fit MONEY (38 digits) and Int128:
# counts are Int64 (< 9.3e18), so per-unit rates under 10^14 units ($100 a token) always fit. A book
# with a larger rate is priced with Decimal expressions instead.
_MAX_RATE_UNITS = 10 ** 14


# Lookup tables are gathered from, never searched: `replace_strict` (and any expression taking a
# Series of values) runs in the streaming engine as a whole-column function, which holds the whole
# input; a gather from a literal is element-wise and streams. Tables stay small: at most this many
# entries, else the rows are joined.
_MAX_TABLE = 1 << 22


def lookup(table: dict[int, int], value: pl.Expr, dtype: pl.DataType = pl.Int32) -> pl.Expr | None:
    """table[value] per row, null for a value the table lacks (as replace_strict with default None),
    as a gather over the range of the keys. None when the range is too wide for a table."""
    if None in table:  # (a null key, as replace_strict matches it: the value for null rows)
        table = dict(table)
        when_null = table.pop(None)
        rest = lookup(table, value, dtype)
        return None if rest is None else pl.when(value.is_null()).then(pl.lit(when_null, dtype)).otherwise(rest)
    if not table:  # (null for every row, with the rows' length)
        return pl.when(pl.lit(False)).then(value.cast(dtype))
    lo, hi = min(table), max(table)
    if hi - lo >= _MAX_TABLE:
        return None
    dense = pl.Series([None] * (hi - lo + 1), dtype=dtype).scatter(
        pl.Series(list(table), dtype=pl.Int64) - lo, pl.Series(list(table.values()), dtype=dtype))
    v = value.cast(pl.Int64)
    # (when/then evaluates both branches on every row: the index is clipped into the table first)
    return pl.when(v.is_between(lo, hi)).then(pl.lit(dense).gather((v - lo).clip(0, hi - lo)))


def _key_code(col: str, values: pl.Series) -> tuple[pl.Expr, int] | None:
    """An injective code of a rate key column over the values the rate frame holds: 0 for null,
    1..n for its values, null for a value the frame does not hold; and n + 1."""
    present = values.drop_nulls().unique(maintain_order=True)
    if values.dtype == pl.String:
        # (a non-strict Enum cast maps a value outside the categories to null: no rate row has it)
        code = pl.col(col).cast(pl.Enum(present.to_list()), strict=False).to_physical().cast(pl.Int64) + 1
    elif values.dtype.is_integer():
        code = lookup(dict(zip(present.cast(pl.Int64).to_list(), range(1, present.len() + 1))), pl.col(col), pl.Int64)
        if code is None:
            return None
    else:
        return None
    return pl.when(pl.col(col).is_null()).then(pl.lit(0, pl.Int64)).otherwise(code), present.len() + 1


def rate_row(rates: pl.DataFrame, keys=RATE_KEYS) -> pl.Expr | None:
    """RATE_ROW of each row: its rate keys, compared as a join with nulls equal would, to the rate
    frame's. Key by key, the code of the keys so far and the next key's are combined into one dense
    code of the combinations the frame holds (a gather from a table of codes x codes entries), so
    that the last code names the rate row. None when a table would be too large or a key has a type
    without a code (then join)."""
    if not rates.height or rates.select(keys).is_duplicated().any():
        return None
    prefix, own, size = pl.lit(0, pl.Int64), pl.Series([0] * rates.height, dtype=pl.Int64), 1
    for col in keys:
        coded = _key_code(col, rates[col])
        if coded is None or size * coded[1] > _MAX_TABLE:
            return None
        code, n = coded
        both = own * n + rates.select(code.alias("c"))["c"]
        if both.null_count():  # a rate row whose own value has no code: cannot happen; never guess
            return None
        combos = both.unique().sort()
        table = pl.Series([None] * (size * n), dtype=pl.Int64).scatter(combos, pl.int_range(combos.len(), eager=True))
        prefix = pl.lit(table).gather(prefix * n + code)
        own, size = both.rank("dense").cast(pl.Int64) - 1, combos.len()
    # (rows are unique on their keys: the last codes number them, in some order)
    position = pl.Series([0] * size, dtype=pl.UInt32).scatter(own, pl.int_range(rates.height, eager=True,
                                                                                 dtype=pl.UInt32))
    return pl.lit(position).gather(prefix).alias(RATE_ROW)


def take(values: pl.Series, row: pl.Expr) -> pl.Expr:
    """values[row] per row (null where row is null): a gather, which streams (see _MAX_TABLE)."""
    return pl.lit(values).gather(row)


def rate_units(rates: pl.DataFrame, col: str) -> pl.Series | None:
    """A MONEY rate column as Int128 units of 10^-12 USD (exact: MONEY has scale 12); None when a
    rate is too large for integer costs (see _MAX_RATE_UNITS)."""
    values = rates[col]
    if values.dtype == MONEY:
        # MONEY's own integer is the count of units (scale 12): no Decimal per value in Python, which
        # cost ~0.03-0.07 CPU s a `price` run (the rate frame's ~2,000 rows, 14 columns, each twice).
        units = values.to_physical()
        return None if (units.abs() >= _MAX_RATE_UNITS).any() else units.alias(col)
    out = []
    for v in rates[col].to_list():  # (one value per distinct rate key: a few hundred at most)
        if v is None:
            out.append(None)
            continue
        n = v.scaleb(MONEY.scale, context=_EXACT)
        if n != n.to_integral_value() or abs(n) >= _MAX_RATE_UNITS:
            return None
        out.append(int(n))
    return pl.Series(col, out, dtype=pl.Int128)


_EXACT = Context(prec=80)


def _money(units: pl.Expr) -> pl.Expr:
    """Int128 units of 10^-12 USD as MONEY, exactly (the product's scale is 0 + 12)."""
    return (units.cast(pl.Decimal(38, 0)) * pl.lit(Decimal(1).scaleb(-MONEY.scale), MONEY)).cast(MONEY)


def _component_units(rates: pl.DataFrame, row: pl.Expr) -> tuple[dict, dict] | None:
    """Each component's cost and list cost of a row in Int128 units of 10^-12 USD (see integer_costs)."""
    units, lists = {}, {}
    for c in COMPONENTS:
        u, lu = rate_units(rates, RATE + c.column), rate_units(rates, LIST_RATE + c.column)
        if u is None or lu is None:
            return None
        count = pl.col(c.column).cast(pl.Int128)
        # As cost_columns: a component the request does not use costs 0, even without a rate.
        units[c.rate] = pl.when(pl.col(c.column) == 0).then(pl.lit(0, pl.Int128)).otherwise(
            count * take(u, row))
        lists[c.rate] = (count * take(lu, row)).fill_null(0)
    return units, lists


def integer_costs(rates: pl.DataFrame, row: pl.Expr) -> list[pl.Expr] | None:
    """cost_<component>, cost, list_cost and savings of rows whose position in `rates` is `row`, in
    integer arithmetic: count x rate in Int128 units of 10^-12 USD, summed, and made MONEY once per
    column. The values are those of cost_columns and totals_columns (counts times MONEY rates are
    exact there too); None when a rate is too large for them (then those)."""
    found = _component_units(rates, row)
    if found is None:
        return None
    units, lists = found
    cost = pl.sum_horizontal([u.fill_null(0) for u in units.values()])
    listed = pl.sum_horizontal(list(lists.values()))
    return [*(_money(u).alias("cost_" + k) for k, u in units.items()), _money(cost).alias("cost"),
            _money(listed).alias("list_cost"), _money(listed - cost).alias("savings")]


# Columns of integer_cost_steps' first two steps (dropped after the last).
UNITS, LIST_UNITS = "_u_", "_l_"
FITS = "_fits"  # a row whose costs integer_cost_steps computes in Int64 (see there)
# Each count x rate of the Int64 path stays under this: the seven components' sum stays under 2^62,
# and list cost minus cost under 2^63, so nothing the path computes can wrap around.
_FAST_UNITS = 2 ** 59
if len(COMPONENTS) * _FAST_UNITS >= 2 ** 62:  # (a component added: the bound above no longer holds)
    raise ImportError(f"pricing._FAST_UNITS is too large for {len(COMPONENTS)} components: lower it")


def integer_cost_steps(rates: pl.DataFrame, row: pl.Expr, unpriced: pl.Expr) -> list[list[pl.Expr]] | None:
    """integer_costs' columns as three steps of with_columns (then drop `unit_columns`): each
    component's units once, their sums once, then MONEY from them, null where `unpriced` holds (as
    with_costs makes it). In one step, every sum computed its components' gathers and products again
    (savings all fourteen) and the nulls were a pass of their own: ~0.3 CPU s a million rows.

    The units are Int64 for a row whose every count is at most _FAST_UNITS over the largest rate of
    its component (FITS: any real request; the per-row cap of 10^12 tokens times $75 per million
    is not), Int128 otherwise. Int128 products, gathers and sums cost ~0.2 CPU s a million rows
    more; the Int128 path is written inside each money column's `otherwise`, which Polars evaluates
    only for a batch of rows where some row needs it."""
    found = _component_units(rates, row)
    if found is None:
        return None
    units, lists = found
    fast, fast_lists, limits = {}, {}, []
    for c in COMPONENTS:
        u, lu = rate_units(rates, RATE + c.column), rate_units(rates, LIST_RATE + c.column)
        largest = max(int(u.abs().max() or 0), int(lu.abs().max() or 0), 1)  # (units < 10^14: Int64)
        limit = _FAST_UNITS // largest
        count = pl.col(c.column)
        limits.append(count.is_between(-limit, limit))
        fast[c.rate] = pl.when(count == 0).then(pl.lit(0, pl.Int64)).otherwise(count * take(u.cast(pl.Int64), row))
        fast_lists[c.rate] = (count * take(lu.cast(pl.Int64), row)).fill_null(0)
    cost = pl.sum_horizontal([u.fill_null(0) for u in units.values()])
    listed = pl.sum_horizontal(list(lists.values()))
    exact = {**{"cost_" + k: u for k, u in units.items()}, "cost": cost, "list_cost": listed, "savings": listed - cost}

    def money(fast: pl.Expr, name: str) -> pl.Expr:
        # (a null FITS, from a null count, takes the Int128 path: the same nulls either way)
        return (pl.when(unpriced).then(None).when(pl.col(FITS)).then(_money(fast))
                .otherwise(_money(exact[name])).alias(name))

    cost64, list64 = pl.col(UNITS), pl.col(LIST_UNITS)
    return [[*(u.alias(UNITS + k) for k, u in fast.items()), *(u.alias(LIST_UNITS + k) for k, u in fast_lists.items()),
             pl.all_horizontal(limits).alias(FITS)],
            [pl.sum_horizontal([pl.col(UNITS + k).fill_null(0) for k in fast]).alias(UNITS),
             pl.sum_horizontal([pl.col(LIST_UNITS + k) for k in fast_lists]).alias(LIST_UNITS)],
            [*(money(pl.col(UNITS + k), "cost_" + k) for k in fast), money(cost64, "cost"),
             money(list64, "list_cost"), money(list64 - cost64, "savings")]]


def unit_columns() -> list[str]:
    return [UNITS, LIST_UNITS, FITS, *(UNITS + c.rate for c in COMPONENTS), *(LIST_UNITS + c.rate for c in COMPONENTS)]
