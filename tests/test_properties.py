"""Invariants that must hold for any input (hypothesis): linearity, sum of parts = whole, row
conservation, container independence, determinism."""

from __future__ import annotations

import itertools
import tempfile
from decimal import Decimal
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import Options, analyze

from .conftest import canonical_frame, write_frame

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Models and dates chosen so that every request prices (each model is live on each date).
MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-8", "claude-sonnet-5-5", "claude-haiku-5-5",
          "us.anthropic.claude-opus-5-5", "claude-fable-5-1"]
DAYS = [f"2026-10-{d:02d}T{h:02d}:30:00Z" for d in (8, 15, 31) for h in (0, 23)]
count = st.integers(min_value=0, max_value=150_000)

request = st.fixed_dictionaries({
    "timestamp": st.sampled_from(DAYS),
    "model": st.sampled_from(MODELS),
    "workspace": st.sampled_from(["a", "b", "c"]),
    "service_tier": st.sampled_from(["standard", "batch", "priority"]),
    "inference_geo": st.sampled_from([None, "us", "global"]),
    "input_tokens": count, "cache_write_5m_tokens": count, "cache_write_1h_tokens": count,
    "cache_read_tokens": count, "output_tokens": st.integers(0, 20_000), "web_search_requests": st.integers(0, 3),
})
requests = st.lists(request, min_size=1, max_size=12)


def _report(rows: list[dict], by: list[str], suffix: str = ".csv", **kw):
    with tempfile.TemporaryDirectory() as tmp:
        df = canonical_frame([{**r, "request_id": r.get("request_id", f"r{i}")} for i, r in enumerate(rows)])
        path = write_frame(df, Path(tmp) / f"log{suffix}")
        return analyze([str(path)], by, Options(quarantine=str(Path(tmp) / "q.jsonl"), **kw))


@SETTINGS
@given(requests, st.integers(min_value=2, max_value=7))
def test_cost_is_linear_in_repeated_requests(rows, k):
    """k copies of a set of requests (distinct ids) cost exactly k times as much."""
    one = _report(rows, [])
    many = _report([dict(r, request_id=f"{i}-{j}") for j in range(k) for i, r in enumerate(rows)], [])
    assert many.totals["cost"] == one.totals["cost"] * k
    assert many.totals["list_cost"] == one.totals["list_cost"] * k


@SETTINGS
@given(request, st.integers(min_value=2, max_value=5))
def test_cost_is_linear_in_tokens_within_a_tier(r, k):
    """Scaling every count scales the cost, as long as the context tier does not change."""
    r = dict(r, model="claude-opus-4-8")  # no long-context tier: the rate never depends on size
    scaled = {c: (v * k if c.endswith(("_tokens", "_requests")) else v) for c, v in r.items()}
    assert _report([scaled], []).totals["cost"] == _report([r], []).totals["cost"] * k


BY_CHOICES = ["day", "month", "model", "workspace", "service_tier", "discount_type", "context_tier", "inference_geo",
              "component", "family", "endpoint_scope"]


@SETTINGS
@given(requests, st.lists(st.sampled_from(BY_CHOICES), min_size=1, max_size=3, unique=True))
def test_groups_sum_to_the_grand_total(rows, by):
    rep = _report(rows, by)
    assert sum(rep.rows["cost"].to_list(), Decimal(0)) == rep.totals["cost"]
    if "component" not in by:
        assert sum(rep.rows["requests"].to_list()) == rep.totals["requests"] == len(rows)
        assert sum(rep.rows["savings"].to_list(), Decimal(0)) == rep.totals["savings"]


@SETTINGS
@given(requests, st.lists(st.sampled_from(["ok", "dup", "bad_count", "bad_time", "unknown"]), min_size=1,
                          max_size=12))
def test_every_row_is_accounted_for(rows, fates):
    """rows read = priced + unpriced + duplicates + quarantined, whatever the mix."""
    out = []
    for i, (r, fate) in enumerate(zip(itertools.cycle(rows), fates)):
        r = dict(r, request_id=f"id{i}")
        if fate == "dup" and out:
            r = dict(out[0])
        elif fate == "bad_count":
            r["input_tokens"] = -1
        elif fate == "bad_time":
            r["timestamp"] = "31/10/2026"
        elif fate == "unknown":
            r["model"] = "claude-nonexistent-9"
        out.append(r)
    df = canonical_frame(out).with_columns(pl.col("input_tokens").cast(pl.String))
    with tempfile.TemporaryDirectory() as tmp:
        df.write_csv(Path(tmp) / "log.csv")
        rep = analyze([str(Path(tmp) / "log.csv")], ["model"], Options(quarantine=str(Path(tmp) / "q.jsonl")))
        a = rep.accounting
        assert a.rows_read == len(out)
        assert a.priced + a.unpriced + a.duplicates + a.quarantined == a.rows_read
        bad = [r["input_tokens"] < 0 or r["timestamp"] == "31/10/2026" for r in out]
        assert a.quarantined == sum(bad)
        # Repeats of a good first row are duplicates; repeats of a bad one are quarantined themselves.
        assert a.duplicates == (0 if bad[0] else sum(f == "dup" for f in fates[1:]))
        assert a.priced == sum(rep.rows["requests"].to_list())
        if a.quarantined:
            assert len(Path(a.quarantine_file).read_text().splitlines()) == a.quarantined


@SETTINGS
@given(requests, st.sampled_from([["model"], ["day", "workspace"], ["discount_type"], ["model", "component"]]))
def test_same_report_from_csv_jsonl_and_parquet(rows, by):
    reports = [_report(rows, by, suffix) for suffix in (".csv", ".jsonl", ".parquet")]
    for other in reports[1:]:
        assert other.rows.equals(reports[0].rows)
        assert other.totals == reports[0].totals


@SETTINGS
@given(requests)
def test_repricing_is_deterministic(rows):
    a, b = _report(rows, ["model", "day"]), _report(rows, ["model", "day"])
    assert a.rows.equals(b.rows) and a.totals == b.totals


@SETTINGS
@given(requests, st.lists(st.integers(0, 11), max_size=4))
def test_per_request_prices_add_up_to_the_report(rows, repeats):
    """`llm-cost price` (rows priced one by one) and `llm-cost report` (groups priced) agree to the
    last decimal, duplicates included."""
    from analyzer import price_requests

    rows = [dict(r, request_id=f"r{i}") for i, r in enumerate(rows)]
    rows += [dict(rows[i % len(rows)], output_tokens=0) for i in repeats]  # weaker copies: duplicates
    with tempfile.TemporaryDirectory() as tmp:
        path = write_frame(canonical_frame(rows), Path(tmp) / "log.csv")
        opts = Options(quarantine=str(Path(tmp) / "q.jsonl"))
        report = analyze([str(path)], ["model"], opts)
        priced, acc = price_requests([str(path)], opts)
        per_row = priced.lazy().collect()
        assert per_row.height == report.accounting.priced == acc.priced
        assert sum(per_row["cost"].to_list(), Decimal(0)) == report.totals["cost"]
