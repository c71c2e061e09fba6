"""The shapes of issue 21 hold the pipeline's invariants beyond `report`: per-request prices (`price`)
sum to the report's total, and a store fed the files reports what the files do (cost and every count
of the accounting). A row priced per request must find the rate its aggregate found: a dialect that
states a column in a hook (a base context window) must declare it, or per-row pricing misses it."""

from __future__ import annotations

import pytest

from analyzer import pipeline, store

from .exports_util import FIXTURES

BT = "2026-11-20T10:00:00Z"
SHAPES = [
    FIXTURES / "anthropic-console-csv" / "console_usage_export_hourly.csv",
    FIXTURES / "litellm-spendlogs" / "spend_logs.json",
    FIXTURES / "litellm-spendlogs" / "spend_logs_ui.jsonl",
    FIXTURES / "claude-code-stream" / "stream.jsonl",
    FIXTURES / "claude-code-stream" / "result.json",
    FIXTURES / "anthropic-messages" / "stream.sse",
    FIXTURES / "bedrock-cloudwatch" / "get-query-results.json",
    FIXTURES / "claude-code-analytics" / "claude_code_usage.json",
    FIXTURES / "claude-code-analytics" / "records.jsonl",
    FIXTURES / "anthropic-usage-report" / "no_starting_at.json",
]
COUNTS = ("rows_read", "priced", "unpriced", "duplicates", "repeats", "not_billable", "quarantined")


@pytest.mark.parametrize("path", SHAPES, ids=lambda p: p.name)
def test_price_rows_sum_to_the_report(path, tmp_path):
    opts = pipeline.Options(batch_time=BT, quarantine=str(tmp_path / "q.jsonl"))
    report = pipeline.analyze([str(path)], [], opts)
    rows, acc = pipeline.price_requests([str(path)], opts)
    frame = rows.lazy().collect()
    priced = frame.filter(frame["unpriced_reason"].is_null())
    assert priced["cost"].null_count() == 0 and priced["price_period"].null_count() == 0
    assert priced["cost"].sum() == report.totals["cost"] > 0
    assert {k: getattr(acc, k) for k in COUNTS} == {k: getattr(report.accounting, k) for k in COUNTS}


@pytest.mark.parametrize("path", SHAPES, ids=lambda p: p.name)
def test_a_store_reports_what_the_files_do(path, tmp_path):
    opts = pipeline.Options(batch_time=BT, quarantine=str(tmp_path / "q.jsonl"))
    store.ingest([str(path)], str(tmp_path / "st"), opts)
    stored = store.report(str(tmp_path / "st"), ["model"])
    logs = pipeline.analyze([str(path)], ["model"], opts)
    assert stored.accounting.balanced and stored.totals["cost"] == logs.totals["cost"]
    assert {k: getattr(stored.accounting, k) for k in COUNTS} == {k: getattr(logs.accounting, k) for k in COUNTS}
