"""Rates and exact costs.

`rate_frame` turns the distinct rate keys of a run (a few hundred rows at most, whatever the number
of requests) into one row of per-unit Decimal rates each, deciding model, price period, context tier,
applied speed, multipliers and tags from the price book. `cost_columns` then prices any frame that
carries those rates, as Polars Decimal expressions: count x per-unit rate, exact at 12 places.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl

from .models import Resolver
from .pricebook import PriceBook, Rates, per_unit
from .schema import COMPONENTS, MONEY, TOKEN_COMPONENTS, TOOL_COMPONENTS
from .tagging import PROMPT_BAND, RATE_KEYS, TIME_BAND, USES

PARTNER_PLATFORMS = ("bedrock", "vertex")  # their own regional pricing; inference_geo does not apply
RATE = "rate_"  # prefix of per-unit rate columns
LIST_RATE = "list_rate_"


def _window_lower(context_window: str | None) -> int | None:
    """Lower bound of a pre-aggregated report's context window label ('200k-1m' -> 200000)."""
    if not context_window:
        return None
    text = context_window.strip().lower()
    if text.startswith(("≤", "<")):  # the Console's "≤ 200k": up to 200k, the base window
        return 0
    head = text.lstrip(">=≥ ").split("-")[0].strip()
    mult = 1_000_000 if head.endswith("m") else 1_000 if head.endswith("k") else 1
    try:
        return int(Decimal(head.rstrip("km")) * mult)
    except ArithmeticError:
        return None


def _row_rates(key: dict, book: PriceBook, resolver: Resolver, edges: list[dt.datetime], thresholds: list[int]) -> dict:
    out: dict = {"model": None, "family": None, "provider": None, "price_period": None, "confidence": None,
                 "context_tier": None, "discount_type": None, "unpriced_reason": None}
    rates: dict[str, Decimal | None] = {c.column: None for c in COMPONENTS}
    list_rates: dict[str, Decimal | None] = {c.column: None for c in COMPONENTS}
    model_id, id_scope, problem = resolver.resolve(key["model_raw"])
    scope = key["endpoint_scope"] or id_scope
    out["endpoint_scope_resolved"] = scope
    if model_id is None:
        out["unpriced_reason"] = f"{problem}: {key['model_raw']}"
        return out | _rate_cols(rates, list_rates)
    model = book.models[model_id]
    provider = book.providers[model.provider]
    out.update(model=model.id, family=model.family, provider=model.provider)
    band = key[TIME_BAND]
    t = edges[band] if band >= 0 else None  # every instant of a band resolves alike: rate changes are its edges
    period = model.period_at(t) if t is not None else None
    if period is None:
        out["unpriced_reason"] = f"no price for {model.id} before {model.periods[0].start.date()}"
        return out | _rate_cols(rates, list_rates)
    out["price_period"] = period.start.date().isoformat()
    out["confidence"] = period.confidence
    # Context tier: the request's prompt band says which thresholds it exceeds; a pre-aggregated
    # report says its context window instead.
    lc = period.long_context if period.long_context and period.long_context.contains(t) else None
    long = False
    if lc is not None:
        lower = _window_lower(key["context_window"])
        if lower is not None:
            long = lower >= lc.threshold
        else:
            long = key[PROMPT_BAND] > thresholds.index(lc.threshold)
    fast = key["speed"] == "fast" and period.fast is not None and period.fast.contains(t)
    # Fast-mode prices hold across the whole context window, so a fast request is never charged the
    # long-context tier; its context_tier says which rates were applied, not how long the prompt was.
    long = long and not fast
    chosen: Rates = period.fast.rates if fast else lc.rates if long else period.rates
    tier = key["service_tier"]
    tags = []
    if tier not in provider.service_tier:
        out["unpriced_reason"] = f"no {tier} tier price for {model.id} ({model.provider})"
        return out | _rate_cols(rates, list_rates)
    if tier == "batch" and not model.batch:
        out["unpriced_reason"] = f"no batch price for {model.id}"
        return out | _rate_cols(rates, list_rates)
    # Fast mode cannot be combined with the Batch API; if a log says both, fast pricing wins.
    tier_mult = Decimal(1) if fast else provider.service_tier[tier]
    if tier != "standard" and not (fast and tier == "batch"):  # the tag says what was applied
        tags.append(tier)
    mult = Decimal(1)
    if long:
        tags.append("long_context")
    if fast:
        tags.append("fast")
    if key["inference_geo"] == "us" and model.us_geo and (key["platform"] or "") not in PARTNER_PLATFORMS:
        mult *= provider.us_geo
        tags.append("us_geo")
    if scope == "regional" and model.regional_premium:
        mult *= provider.regional
        tags.append("regional")
    mult *= book.discount_at(t)
    for c in TOKEN_COMPONENTS:
        r = chosen.get(c.rate)
        rates[c.column] = None if r is None else per_unit(r, mult * tier_mult, c.per)
    # List price: the same request at the standard tier, every prompt token at the plain input rate.
    for c in TOKEN_COMPONENTS:
        r = chosen.output if c.column == "output_tokens" else chosen.input
        list_rates[c.column] = per_unit(r, mult, c.per)
    for c in TOOL_COMPONENTS:
        r = provider.server_tools.get(c.rate)
        rates[c.column] = None if r is None else per_unit(r, book.discount_at(t), c.per)
        list_rates[c.column] = rates[c.column]
    out["context_tier"] = "long" if long else "base"
    out["discount_type"] = "+".join(tags) or "standard"
    # Whether the request can be priced is decided here, from the components it uses (a rate key),
    # never from the summed counts of a group: a request without cache reads is priceable on a model
    # that has no cache-read rate, whatever other requests of its month did.
    missing = [c for i, c in enumerate(COMPONENTS) if key[USES] & (1 << i) and rates[c.column] is None]
    if missing:
        out["unpriced_reason"] = "; ".join(f"no {c.rate} rate for {model.id}" for c in missing)
    return out | _rate_cols(rates, list_rates)


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
              **{RATE + c.column: MONEY for c in COMPONENTS}, **{LIST_RATE + c.column: MONEY for c in COMPONENTS}}
    return pl.DataFrame(rows, schema=schema, orient="row" if not rows else None)


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
