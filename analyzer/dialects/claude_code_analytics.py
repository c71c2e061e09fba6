"""`claude-code-analytics`: the Admin API's Claude Code usage report. The mapping
(claude_code_analytics.toml) names columns this module makes from each record's `model_breakdown`:

- One row per record x model: each day x actor x model is a record of the accounting (its ordinal
  in the file is its `source_row`, and its JSON the quarantined text), as for the usage report's
  rows (see _pages.py).
- `estimated_cost.amount` is in minor units (cents for USD): it is the reported cost in dollars, set
  beside the computed one; an amount in another currency is not a USD figure and is left out.
- A row sums a day of an actor's requests: its request count is unknown and it is priced at the base
  context tier (a lower bound; see _pages.aggregated). Both are noted under the report, and so is a
  subscription customer's usage (Pro/Max plans do not pay these per-token prices).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import polars as pl

from ..sources import LINE
from . import _pages, mapped

NAME = "claude-code-analytics"
BASE_WINDOW = "0-200k"
_TOKENS = ("input", "output", "cache_read", "cache_creation")
_ACTOR = {"type": pl.String(), "email_address": pl.String(), "api_key_name": pl.String()}
_LABELS = ("date", "customer_type", "terminal_type", "subscription_type", "organization_id")


def _types(robust: bool) -> tuple[pl.DataType, pl.DataType]:
    """(one model_breakdown entry, one record); counts as integers, or everything as text (robust)."""
    count = pl.String() if robust else pl.Int64()
    entry = pl.Struct({"model": pl.String(), "tokens": pl.Struct({k: count for k in _TOKENS}),
                       "estimated_cost": pl.Struct({"amount": pl.String(), "currency": pl.String()})})
    record = pl.Struct({**{k: pl.String() for k in _LABELS}, "actor": pl.Struct(_ACTOR),
                        "model_breakdown": pl.List(entry)})
    return entry, record


_ENTRY, _RECORD = _types(robust=False)
READS = {("data",): pl.List(_RECORD), ("model_breakdown",): pl.List(_ENTRY), ("actor",): pl.Struct(_ACTOR),
         **{(k,): pl.String() for k in _LABELS}}


def _records(src) -> list[dict]:
    """The report's records among the first records (a page's data, or bare records)."""
    out = []
    for rec in src.sample:
        out.extend(r for r in (rec.get("data") if isinstance(rec.get("data"), list) else [rec]) if isinstance(r, dict))
    return out


def _is_report(src) -> bool:
    records = _records(src)
    return bool(records) and all(isinstance(r.get("model_breakdown"), list) for r in records)


def _prepare(lf: pl.LazyFrame, src, ctx, get) -> pl.LazyFrame:
    robust = mapped.DECODED not in lf.collect_schema().names()
    entry, record = _types(robust)
    data, breakdown = get(("data",)), get(("model_breakdown",))
    if robust:  # read as JSON text by the engine's path reader: decoded here, every leaf as text
        data, breakdown = data.str.json_decode(pl.List(record)), breakdown.str.json_decode(pl.List(entry))
        actor = get(("actor",)).str.json_decode(pl.Struct(_ACTOR))
    else:
        actor = get(("actor",))
    # A bare record (one per line) is a page of one.
    bare = pl.struct(*[get((k,)).cast(pl.String).alias(k) for k in _LABELS], actor.alias("actor"),
                     breakdown.alias("model_breakdown"))
    records = pl.when(data.is_not_null()).then(data).when(breakdown.is_not_null()).then(pl.concat_list(bare))
    lf = (lf.with_columns(records.alias("_x_record")).explode("_x_record")
          .with_columns(pl.col("_x_record").struct.field("model_breakdown").alias("_x_entry")).explode("_x_entry")
          # An empty page or a day without models has no rows; an unreadable line stays, to be quarantined.
          .filter(pl.col("_x_entry").is_not_null() | ~pl.col("_line_ok")))
    rec, ent = pl.col("_x_record"), pl.col("_x_entry")
    tokens, cost = ent.struct.field("tokens"), ent.struct.field("estimated_cost")
    usd = cost.struct.field("currency").fill_null("USD").str.to_uppercase() == "USD"
    amount = cost.struct.field("amount").str.strip_chars()
    whole = pl.struct(rec.struct.field("date"), rec.struct.field("actor"), ent).struct.json_encode()
    act = rec.struct.field("actor")
    return lf.with_columns(
        rec.struct.field("date").alias("_x_date"),
        ent.struct.field("model").alias("_x_model"),
        *[tokens.struct.field(k).alias(f"_x_{n}") for k, n in
          (("input", "input"), ("output", "output"), ("cache_read", "cache_read"), ("cache_creation", "cache_write"))],
        # cents to dollars, exactly (a minor unit is 1/100 of a USD); text that is no number is quarantined
        pl.when(usd & amount.is_not_null()).then(
            amount.cast(pl.Decimal(38, 12), strict=False) * pl.lit(Decimal("0.01"), pl.Decimal(38, 2))
        ).alias("_x_cost"),
        pl.coalesce(act.struct.field("email_address"), act.struct.field("api_key_name")).alias("_x_user"),
        act.struct.field("type").alias("_x_actor_type"),
        rec.struct.field("customer_type").alias("_x_customer_type"),
        rec.struct.field("terminal_type").alias("_x_terminal"),
        rec.struct.field("organization_id").alias("_x_organization"),
        pl.when(ent.is_not_null()).then(whole).otherwise(pl.col(LINE)).alias(LINE),
        pl.int_range(1, pl.len() + 1).alias("_row"),
        pl.lit(None, pl.String).alias("_x_requests"),  # a day's total: unknown (see _finish)
        # (the decoded page is not read again: every field is a column made here)
        *([] if robust else [pl.lit(None, pl.Struct({})).alias(mapped.DECODED)]),
    ).drop("_x_record", "_x_entry")


def _finish(lf: pl.LazyFrame, src, ctx) -> pl.LazyFrame:
    ctx.note(_pages.NO_REQUESTS.format(NAME))
    ctx.note(_pages.NO_WINDOW.format(NAME, BASE_WINDOW).split("; export")[0])
    if any(r.get("customer_type") == "subscription" for r in _records(src)):
        ctx.note(f"{NAME}: subscription (Pro/Max) usage is priced at API list prices, which such plans do not pay")
    return _pages.aggregated(lf, BASE_WINDOW)


DIALECT = dataclasses.replace(
    # `adds`: the finish hook states a context window (the base tier) the mapping does not read
    mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_prepare, finish=_finish, reads=READS,
                adds=("context_window",)),
    matches=_is_report)
