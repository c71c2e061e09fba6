"""Properties of the FOCUS export and what-if for any input (hypothesis), checked against the plain
report of the same or of rewritten logs: they share the pricing, so any drift is a bug."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import given

from analyzer import Options, analyze, focus, whatif

from .conftest import canonical_frame, write_frame
from .test_properties import SETTINGS, requests


def _paths(tmp: str, rows: list[dict], name: str = "log") -> list[str]:
    df = canonical_frame([{**r, "request_id": r.get("request_id", f"r{i}")} for i, r in enumerate(rows)])
    return [str(write_frame(df, Path(tmp) / f"{name}.csv"))]


@SETTINGS
@given(requests)
def test_focus_rows_sum_to_the_report_and_keep_the_spec_identities(rows):
    with tempfile.TemporaryDirectory() as tmp:
        opts = Options(quarantine=str(Path(tmp) / "q.jsonl"))
        paths = _paths(tmp, rows)
        out = focus.export(paths, opts).rows
        report = analyze(paths, [], opts)
    assert out["BilledCost"].sum() == report.totals["cost"]
    for r in out.to_dicts():
        assert r["ListUnitPrice"] * r["PricingQuantity"] == r["ListCost"]
        assert r["ContractedUnitPrice"] * r["PricingQuantity"] == r["ContractedCost"] == r["BilledCost"]
    # every token counted once: consumed quantities are the logs' token totals
    for col, cls in (("input_tokens", "input"), ("cache_read_tokens", "cache_read"), ("output_tokens", "output")):
        assert out.filter(pl.col("x_TokenClass") == cls)["ConsumedQuantity"].sum() == report.totals[col]


@SETTINGS
@given(requests)
def test_batch_scenario_equals_the_report_of_the_logs_sent_to_batch(rows):
    """--batch prices exactly as if the logs had said `batch` (every model here has a batch price)."""
    with tempfile.TemporaryDirectory() as tmp:
        opts = Options(quarantine=str(Path(tmp) / "q.jsonl"))
        w = whatif.run(_paths(tmp, rows), whatif.Scenario(batch=True), [], opts)
        moved = analyze(_paths(tmp, [dict(r, service_tier="batch") for r in rows], "batch"), [], opts)
        base = analyze(_paths(tmp, rows, "base"), [], opts)
    assert w.totals["scenario_cost"] == moved.totals["cost"]
    assert w.totals["baseline_cost"] == base.totals["cost"]
    assert w.totals["difference"] == moved.totals["cost"] - base.totals["cost"]


@SETTINGS
@given(requests)
def test_swap_equals_the_report_of_the_logs_with_the_other_model(rows):
    """--swap A=B prices A's requests exactly as logs naming B would be priced."""
    a, b = "claude-sonnet-4-5", "claude-opus-4-8"
    with tempfile.TemporaryDirectory() as tmp:
        opts = Options(quarantine=str(Path(tmp) / "q.jsonl"))
        w = whatif.run(_paths(tmp, rows), whatif.Scenario(swaps=((a, b),)), ["workspace"], opts)
        swapped = analyze(_paths(tmp, [dict(r, model=b) if r["model"] == a else r for r in rows], "b"),
                          ["workspace"], opts)
    got = dict(zip(w.rows["workspace"], w.rows["scenario_cost"]))
    assert got == dict(zip(swapped.rows["workspace"], swapped.rows["cost"]))
    assert w.totals["unpriced_requests"] == 0
