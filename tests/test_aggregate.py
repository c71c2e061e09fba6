"""aggregate.py: grouping priced rows by the report's keys, totals, components, labels of buckets."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import aggregate
from analyzer.schema import COUNT_COLUMNS, MONEY

D = Decimal
COSTS = list(aggregate.COST_COLUMNS)


def priced(rows: list[dict]) -> pl.DataFrame:
    """Priced rate-key groups as pipeline hands them to summarize: keys, counts, Decimal costs."""
    full = []
    for r in rows:
        row = {"requests": 1, **{c: 0 for c in COUNT_COLUMNS}, **{c: D(0) for c in COSTS}, "reported_cost": None,
               "_reported_rows": 0}
        row.update(r)
        full.append(row)
    # Keys are labels (strings) or time buckets (datetimes, truncated in the report's zone).
    schema = {**{k: pl.Datetime("us") if isinstance(v, dt.datetime) else pl.String for k, v in full[0].items()},
              "requests": pl.Int64, **{c: pl.Int64 for c in COUNT_COLUMNS}, **{c: MONEY for c in COSTS},
              "reported_cost": MONEY, "_reported_rows": pl.Int64}
    return pl.DataFrame(full, schema=schema)


def test_groups_sum_and_totals_are_the_sum_of_the_same_rows():
    frame = priced([
        {"model": "a", "input_tokens": 1000, "cost_input": D("0.003"), "cost": D("0.003"), "list_cost": D("0.003")},
        {"model": "a", "input_tokens": 500, "cost_input": D("0.0015"), "cost": D("0.0015"), "list_cost": D("0.002")},
        {"model": "b", "output_tokens": 7, "cost_output": D("0.000105"), "cost": D("0.000105"),
         "list_cost": D("0.000105")},
    ])
    rows, totals = aggregate.summarize(frame, ["model"], "UTC")
    assert rows.select("model", "requests", "input_tokens", "cost").rows() == [
        ("a", 2, 1500, D("0.0045")), ("b", 1, 0, D("0.000105"))]
    assert totals["cost"] == D("0.004605") and totals["requests"] == 3 and totals["list_cost"] == D("0.005105")
    assert rows.schema["cost"] == MONEY


def test_no_reported_cost_is_not_zero():
    # A source that reported no cost shows none (no column, a null total), never $0.
    frame = priced([{"model": "a", "cost": D("1")}])
    rows, totals = aggregate.summarize(frame, ["model"], "UTC")
    assert "reported_cost" not in rows.columns and totals["reported_cost"] is None
    # Where some rows reported a cost, groups without any show null, the others their sum.
    frame = priced([{"model": "a", "reported_cost": D("0.25"), "_reported_rows": 1},
                    {"model": "a", "reported_cost": D("0.5"), "_reported_rows": 1},
                    {"model": "b", "reported_cost": D("9"), "_reported_rows": 0}])
    rows, totals = aggregate.summarize(frame, ["model"], "UTC")
    assert rows.select("model", "reported_cost").rows() == [("a", D("0.75")), ("b", None)]
    assert totals["reported_cost"] == D("0.75")


def test_week_month_year_and_hour_buckets_become_labels():
    t = dt.datetime(2026, 10, 1, 10, 0)  # buckets arrive truncated in the report's zone (tagging.time_bucket)
    frame = priced([{"hour": t, "day": t.replace(hour=0), "week": dt.datetime(2026, 9, 28),
                     "month": dt.datetime(2026, 10, 1), "quarter": dt.datetime(2026, 10, 1),
                     "year": dt.datetime(2026, 1, 1), "cost": D("1")}])
    rows, _ = aggregate.summarize(frame, ["year", "quarter", "month", "week", "day", "hour"], "UTC")
    assert rows.select("year", "quarter", "month", "week", "day", "hour").rows() == [
        ("2026", "2026-Q4", "2026-10", "2026-09-28", "2026-10-01", "2026-10-01 10:00")]


def test_buckets_sort_in_time_order_not_as_text():
    frame = priced([{"week": dt.datetime(2027, 1, 4), "cost": D("1")}, {"week": dt.datetime(2026, 12, 28), "cost": D("2")}])
    rows, _ = aggregate.summarize(frame, ["week"], "UTC")
    assert rows.select("week", "cost").rows() == [("2026-12-28", D("2")), ("2027-01-04", D("1"))]


def test_by_component_gives_one_row_per_token_class_in_book_order_without_empty_ones():
    frame = priced([{"model": "a", "input_tokens": 10, "output_tokens": 5, "web_search_requests": 1,
                     "cost_input": D("0.00003"), "cost_output": D("0.000075"), "cost_web_search": D("0.01")}])
    rows, _ = aggregate.summarize(frame, ["model", "component"], "UTC")
    assert rows.rows() == [("a", "input", 10, D("0.00003")), ("a", "output", 5, D("0.000075")),
                           ("a", "web_search", 1, D("0.01"))]


def test_discount_type_joins_tier_and_cache_use():
    frame = pl.DataFrame({"discount_type": ["standard", "standard", "batch", "batch+long_context"],
                          "_cache_use": ["", "cache_read", "", "cache_read+cache_write_5m"]})
    assert frame.select(aggregate.with_cache_use()).to_series().to_list() == [
        "standard", "cache_read", "batch", "batch+long_context+cache_read+cache_write_5m"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["x", "y"]),
                          st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False)), min_size=1, max_size=20))
def test_any_grouping_adds_up_to_the_grand_total_exactly(items):
    frame = priced([{"model": m, "workspace": w, "cost": c, "list_cost": c} for m, w, c in items])
    grand = sum((c for *_, c in items), D(0))
    for by in (["model"], ["workspace"], ["model", "workspace"], []):
        rows, totals = aggregate.summarize(frame, by, "UTC")
        assert totals["cost"] == grand
        assert sum(rows["cost"].to_list(), D(0)) == grand
