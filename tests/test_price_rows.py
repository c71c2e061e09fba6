"""Per-request pricing without a join (pricing.rate_row, pricing.integer_costs): each row finds its
rate row by integer codes and is priced in Int128 units of 10^-12 USD. The values must be those of
the Decimal expressions (cost_columns, totals_columns) on the joined rates, to the last digit."""

from __future__ import annotations

import os
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import Options, price_requests
from analyzer.pipeline import MONEY_COLUMNS, RATE_COLUMNS
from analyzer.pricing import (
    LIST_RATE,
    RATE,
    RATE_ROW,
    cost_columns,
    integer_cost_steps,
    integer_costs,
    lookup,
    rate_row,
    rate_units,
    totals_columns,
    unit_columns,
)
from analyzer.schema import COMPONENTS, MONEY
from analyzer.tagging import RATE_KEYS

from .conftest import canonical_frame, write_frame

KEY_TYPES = {"model_raw": pl.String, "platform": pl.String, "service_tier": pl.String, "speed": pl.String,
             "inference_geo": pl.String, "endpoint_scope": pl.String, "context_window": pl.String,
             "_tband": pl.Int32, "_pband": pl.Int32, "_uses": pl.UInt16}


def _rates(keys: list[dict], rates: list[list[Decimal | None]]) -> pl.DataFrame:
    """A rate frame: its keys, and per key one rate and one list rate per component."""
    rows = []
    for k, r in zip(keys, rates):
        rows.append({**{c: k.get(c) for c in RATE_KEYS}, "unpriced_reason": None,
                     **{RATE + c.column: r[i] for i, c in enumerate(COMPONENTS)},
                     **{LIST_RATE + c.column: r[-1 - i] for i, c in enumerate(COMPONENTS)}})
    return pl.DataFrame(rows, schema={**KEY_TYPES, "unpriced_reason": pl.String,
                                      **{RATE + c.column: MONEY for c in COMPONENTS},
                                      **{LIST_RATE + c.column: MONEY for c in COMPONENTS}})


def _with_row(frame: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(rate_row(rates)).with_columns(
        [pl.lit(rates[c]).gather(pl.col(RATE_ROW)).alias(c) for c in rates.columns if c not in RATE_KEYS])


def _decimal(frame: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
    joined = frame.join(rates, on=list(RATE_KEYS), how="left", nulls_equal=True, maintain_order="left")
    return joined.with_columns(cost_columns()).with_columns(totals_columns()).select(MONEY_COLUMNS)


def _integer(frame: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
    return _with_row(frame, rates).with_columns(integer_costs(rates, pl.col(RATE_ROW))).select(MONEY_COLUMNS)


def _stepped(frame: pl.DataFrame, rates: pl.DataFrame, unpriced: pl.Expr) -> pl.DataFrame:
    """integer_cost_steps as price_rows applies them (money null where `unpriced`)."""
    out = _with_row(frame, rates)
    for step in integer_cost_steps(rates, pl.col(RATE_ROW), unpriced):
        out = out.with_columns(step)
    assert set(unit_columns()) <= set(out.columns)
    return out.select(MONEY_COLUMNS)


KEY = {"model_raw": "m", "service_tier": "standard", "speed": "standard", "_tband": 3, "_pband": 0, "_uses": 1}


def test_rate_row_matches_keys_as_a_join_with_equal_nulls():
    rates = _rates([KEY, {**KEY, "model_raw": "n", "platform": "vertex"}, {**KEY, "_tband": 5, "_uses": 17}],
                   [[Decimal(1)] * 14] * 3)
    rows = pl.DataFrame([KEY, {**KEY, "model_raw": "n", "platform": "vertex"}, {**KEY, "_tband": 5, "_uses": 17},
                         {**KEY, "model_raw": "n"},  # platform null: no rate row has (n, null)
                         {**KEY, "model_raw": "zzz"},  # a value no rate row holds
                         {**KEY, "_tband": 4},  # inside the band range, but no row
                         {**KEY, "_tband": 99},  # outside it
                         {**KEY, "_tband": None},
                         {**KEY, "platform": "vertex"}],  # each value known, the combination not
                        schema=KEY_TYPES)
    assert rows.select(rate_row(rates))[RATE_ROW].to_list() == [0, 1, 2, None, None, None, None, None, None]


def test_rate_row_declines_what_it_cannot_code():
    assert rate_row(_rates([], [])) is None  # no rates: nothing to code
    assert rate_row(_rates([KEY, KEY], [[Decimal(1)] * 14] * 2)) is None  # a key twice: ambiguous
    # codes whose product passes 2^62: 2e9 price bands x 65,536 uses x 2e9 prompt bands
    wide = _rates([KEY, {**KEY, "_tband": 2 * 10**9, "_uses": 65_535, "_pband": 2 * 10**9}], [[Decimal(1)] * 14] * 2)
    assert rate_row(wide) is None


def test_rate_units_are_exact_and_bounded():
    rates = _rates([KEY], [[Decimal("0.000003750000"), Decimal("0.000000000001"), None, Decimal(0),
                            Decimal("99999999999999"), Decimal("-2.5"), Decimal("0.01")] * 2])
    assert rate_units(rates, RATE + "input_tokens").to_list() == [3_750_000]
    assert rate_units(rates, RATE + "cache_write_5m_tokens").to_list() == [1]
    assert rate_units(rates, RATE + "cache_write_1h_tokens").to_list() == [None]
    assert rate_units(rates, RATE + "cache_read_tokens").to_list() == [0]
    assert rate_units(rates, RATE + "output_tokens") is None  # $10^14 a unit: beyond integer costs
    assert rate_units(rates, RATE + "web_search_requests").to_list() == [-2_500_000_000_000]
    # MONEY's own integer (to_physical) and the Decimal loop that any other scale takes agree, value
    # for value; a rate finer than 10^-12 is not a whole number of units (None: the Decimal path).
    finer = rates.with_columns(pl.col(RATE_COLUMNS).cast(pl.Decimal(38, 13)))
    for c in RATE_COLUMNS:
        ours, loop = rate_units(rates, c), rate_units(finer, c)
        assert (ours is None and loop is None) or (ours.dtype == loop.dtype == pl.Int128 and ours.to_list() == loop.to_list())
    tiny = finer.with_columns(pl.lit(Decimal("0.0000000000001"), pl.Decimal(38, 13)).alias(RATE + "input_tokens"))
    assert rate_units(tiny, RATE + "input_tokens") is None


rate = st.one_of(st.none(), st.decimals(min_value=0, max_value=Decimal("99.999999999999"), places=12,
                                        allow_nan=False, allow_infinity=False))
count = st.one_of(st.none(), st.just(0), st.integers(0, 10**12), st.integers(-(2**63), 2**63 - 1))


@settings(max_examples=200, deadline=None)
@given(rates=st.lists(st.lists(rate, min_size=14, max_size=14), min_size=1, max_size=3),
       counts=st.lists(st.tuples(st.integers(0, 3), st.lists(count, min_size=7, max_size=7)), min_size=1, max_size=8))
def test_integer_costs_equal_decimal_costs(rates, counts):
    """Any count (null, 0, any Int64) times any rate (null, 0, up to $100 a unit at 12 places): the
    integer path gives exactly the Decimal path's cost columns, totals and nulls."""
    keys = [{**KEY, "_uses": i} for i in range(len(rates))]
    frame_rates = _rates(keys, rates)
    rows = pl.DataFrame([{**KEY, "_uses": k, **{c.column: n for c, n in zip(COMPONENTS, ns)}} for k, ns in counts],
                        schema={**KEY_TYPES, **{c.column: pl.Int64 for c in COMPONENTS}})
    assert _integer(rows, frame_rates).equals(_decimal(rows, frame_rates))
    # In steps, as `price` prices rows: the same, and null where a row is unpriced (here: key 1).
    unpriced = pl.col("_uses") == 1
    nulled = _decimal(rows, frame_rates).with_columns(
        pl.when(rows["_uses"] == 1).then(None).otherwise(pl.col(c)).alias(c) for c in MONEY_COLUMNS)
    assert _stepped(rows, frame_rates, unpriced).equals(nulled)


def test_integer_costs_by_hand():
    # 1,234,567 input tokens at $3/MTok and 89 output tokens at $15/MTok; list: at $3.75 and $18.75
    rates = _rates([KEY], [[Decimal("0.000003"), None, None, None, Decimal("0.000015"), None, None,
                            None, None, Decimal("0.00001875"), None, None, None, Decimal("0.00000375")]])
    rows = pl.DataFrame([{**KEY, "input_tokens": 1_234_567, "output_tokens": 89, "cache_read_tokens": 0}],
                        schema={**KEY_TYPES, **{c.column: pl.Int64 for c in COMPONENTS}})
    out = _integer(rows, rates).row(0, named=True)
    assert out["cost_input"] == Decimal("3.703701")
    assert out["cost_output"] == Decimal("0.001335")
    assert out["cost_cache_read"] == Decimal(0)  # unused component without a rate costs 0
    assert out["cost_web_search"] is None  # null count: unknown cost, as the Decimal path says
    assert out["cost"] == Decimal("3.705036")
    assert out["list_cost"] == Decimal("4.62962625") + Decimal("0.00166875")
    assert out["savings"] == out["list_cost"] - out["cost"]
    assert _integer(rows, rates).schema == pl.Schema({c: MONEY for c in MONEY_COLUMNS})


def test_rows_beyond_64_bits_take_the_128_bit_path():
    """A row's costs are Int64 arithmetic when its counts prove they cannot wrap around (FITS), else
    Int128, row by row. 10^12 output tokens (the per-row cap) at $75 per million is 7.5e19 units of
    10^-12 USD, past 2^63: in Int64 it would wrap to a wrong (negative) cost."""
    rates = _rates([KEY], [[Decimal("0.000015"), None, None, None, Decimal("0.000075"), None, None,
                            None, None, Decimal("0.000075"), None, None, None, Decimal("0.000015")]])
    limit = 2 ** 59 // 75_000_000  # the largest count of the Int64 path at the largest rate ($75/MTok)
    rows = pl.DataFrame([{**KEY, "input_tokens": 1_000, "output_tokens": 10**12},
                         {**KEY, "input_tokens": 1_000, "output_tokens": 2_000},
                         {**KEY, "input_tokens": limit, "output_tokens": limit},
                         {**KEY, "input_tokens": 0, "output_tokens": limit + 1}],
                        schema={**KEY_TYPES, **{c.column: pl.Int64 for c in COMPONENTS}}).with_columns(
        [pl.lit(0, pl.Int64).alias(c.column) for c in COMPONENTS if c.column not in ("input_tokens", "output_tokens")])
    out = _with_row(rows, rates)
    steps = integer_cost_steps(rates, pl.col(RATE_ROW), pl.lit(False))
    for step in steps:
        out = out.with_columns(step)
    assert out["_fits"].to_list() == [False, True, True, False]
    assert out["cost_output"][0] == Decimal(75_000_000)
    assert out["cost"][0] == Decimal(75_000_000) + Decimal("0.015")
    assert out["list_cost"][0] == out["cost"][0] and out["savings"][0] == 0  # (list rates: the same)
    assert out["cost"][1] == Decimal("0.165")
    assert out["cost_output"][3] == Decimal(limit + 1) * Decimal("0.000075")
    assert out.select(MONEY_COLUMNS).equals(_decimal(rows, rates))
    # Each half alone (one batch of rows that all fit, one where none does): the same values.
    for part in (rows[1:3], rows[0:1], rows[3:4]):
        assert _stepped(part, rates, pl.lit(False)).equals(_decimal(part, rates))


def test_a_book_with_a_huge_rate_is_priced_with_decimals():
    rates = _rates([KEY], [[Decimal("200000000000000")] + [Decimal(1)] * 13])  # $2e14 a token
    assert integer_costs(rates, pl.col(RATE_ROW)) is None
    rows = pl.DataFrame([{**KEY, "input_tokens": 3}], schema={**KEY_TYPES, **{c.column: pl.Int64 for c in COMPONENTS}})
    assert _decimal(rows, rates)["cost_input"].to_list() == [Decimal("600000000000000")]


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_price_of_parts_with_duplicates_across_files(tmp_path, quarantine, fmt):
    """Several files, a request logged in two of them (the copy with more output wins), priced part by
    part: every request once, in file order, with hand-computed money."""
    a = [{"request_id": "r1", "timestamp": "2026-10-01T10:00:00Z", "model": "claude-sonnet-4-5",
          "input_tokens": 1000, "output_tokens": 100},
         {"request_id": "r2", "timestamp": "2026-10-01T11:00:00Z", "model": "claude-sonnet-4-5",
          "input_tokens": 2000, "output_tokens": 10}]  # partial: the copy in b.* has the final count
    b = [{"request_id": "r2", "timestamp": "2026-10-01T11:00:00Z", "model": "claude-sonnet-4-5",
          "input_tokens": 2000, "output_tokens": 300},
         {"request_id": "r3", "timestamp": "2026-10-02T09:00:00Z", "model": "claude-haiku-4-5",
          "input_tokens": 500, "output_tokens": 50, "service_tier": "batch"},
         {"request_id": "r1", "timestamp": "2026-10-01T10:00:00Z", "model": "claude-sonnet-4-5",
          "input_tokens": 1000, "output_tokens": 100}]  # an exact copy: the first one stays
    src = tmp_path / "logs"
    src.mkdir()
    write_frame(canonical_frame(a), src / f"a.{fmt}")
    write_frame(canonical_frame(b), src / f"b.{fmt}")
    rows, acc = price_requests([str(src)], Options(quarantine=quarantine))
    assert len(rows.parts) == 2
    out = rows.lazy().collect()
    assert (acc.priced, acc.duplicates, acc.rows_read) == (3, 2, 5)
    assert [(r, os.path.basename(f)) for r, f in zip(out["request_id"], out["source_file"])] == [
        ("r1", f"a.{fmt}"), ("r2", f"b.{fmt}"), ("r3", f"b.{fmt}")]
    # sonnet 4.5 $3/$15 per MTok; haiku 4.5 $1/$5 at half price (batch)
    assert out["cost"].to_list() == [Decimal("0.0045"), Decimal("0.0105"), Decimal("0.000375")]
    assert out["list_cost"].to_list() == [Decimal("0.0045"), Decimal("0.0105"), Decimal("0.00075")]
    assert out["savings"].to_list() == [Decimal(0), Decimal(0), Decimal("0.000375")]
    out_file = tmp_path / f"out.{fmt}"
    rows.sink(str(out_file), fmt)
    back = (pl.read_parquet(out_file) if fmt == "parquet" else pl.read_csv(out_file, infer_schema=False)
            if fmt == "csv" else pl.read_ndjson(out_file))
    assert back["request_id"].to_list() == ["r1", "r2", "r3"]
    assert [Decimal(str(c)) for c in back["cost"]] == [Decimal("0.0045"), Decimal("0.0105"), Decimal("0.000375")]


@settings(max_examples=100, deadline=None)
@given(table=st.dictionaries(st.one_of(st.none(), st.integers(-50, 50)), st.integers(-3, 300), max_size=12),
       values=st.lists(st.one_of(st.none(), st.integers(-60, 60)), min_size=1, max_size=30))
def test_lookup_is_replace_strict_with_null_default(table, values):
    """The price band of a time unit (and key codes) by gather: what replace_strict with default
    None gives, for units inside, between and outside the table's keys, and null units."""
    frame = pl.DataFrame({"v": values}, schema={"v": pl.Int64})
    got = frame.select(lookup(table, pl.col("v")).alias("b"))["b"].to_list()
    want = [table.get(v) for v in values]  # (a null value finds a null key, as in replace_strict)
    assert got == want


def test_lookup_declines_a_range_too_wide():
    assert lookup({0: 1, 1 << 40: 2}, pl.col("v")) is None


def test_price_rows_streams_without_whole_column_functions(tmp_path, quarantine):
    """No node of the priced plan holds the whole input: no join, and no replace_strict (a
    whole-column function in the streaming engine). Either would hold every row of the file."""
    rows = [{"request_id": f"r{i}", "timestamp": f"2026-10-{10 + i % 3}T10:00:00Z",
             "model": ["claude-sonnet-4-5", "claude-haiku-4-5"][i % 2], "input_tokens": 10 * i, "output_tokens": 5}
            for i in range(6)]
    src = write_frame(canonical_frame(rows), tmp_path / "log.parquet")
    priced, acc = price_requests([str(src)], Options(quarantine=quarantine))
    text = priced.lazy().explain()
    assert acc.priced == 6
    assert "JOIN" not in text and "replace_strict" not in text, text
