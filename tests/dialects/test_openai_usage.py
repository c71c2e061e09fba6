"""openai-usage: OpenAI organization Usage API pages (usage/completions buckets), pre-aggregated.

input_tokens INCLUDES cached and cache-write tokens. Hand-computed from the OpenAI price book:
gpt-5.4 $2.50 in, $0.25 cached, $15 out; gpt-5.5 $5 / $0.50 / $30; batch 0.5x.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from polars.testing import assert_frame_equal

from analyzer.errors import DialectError

from .exports_util import FIXTURES, cost, detect, expected, normalized, quarantined

HERE = FIXTURES / "openai-usage"
PRICED = HERE / "priced.json"
REFERENCE = HERE / "openai_org_usage_completions.json"
COLS = ["timestamp", "model_raw", "service_tier", "requests", "input_tokens", "cache_write_5m_tokens",
        "cache_read_tokens", "output_tokens", "project", "api_key"]


def test_detected():
    assert detect(PRICED) == detect(REFERENCE) == "openai-usage"


def test_normalizes_buckets():
    base = dict(timestamp="2026-11-23T00:00:00Z", project="proj_abc123", api_key="key_XYZ789", cache_write_5m_tokens=0)
    want = expected([
        {**base, "model_raw": "gpt-5.4-2026-03-05", "service_tier": "standard", "requests": 9120,
         "input_tokens": 5210000 - 3900000, "cache_read_tokens": 3900000, "output_tokens": 412000},
        {**base, "model_raw": "gpt-5.5", "service_tier": "batch", "requests": 2000, "input_tokens": 2400000,
         "cache_read_tokens": 0, "output_tokens": 1000000},
    ], dims=("project", "api_key"))
    assert_frame_equal(normalized(PRICED).select(COLS), want.select(COLS))


def test_total_by_hand_and_no_long_context_from_summed_tokens():
    """A bucket's 5.2M input tokens are many requests: never one >272K prompt."""
    # gpt-5.4: 1.31M x $2.50 + 3.9M x $0.25 + 0.412M x $15 = 10.43
    # gpt-5.5 batch: (2.4M x $5 + 1M x $30) x 0.5          = 21.00
    total, report = cost([PRICED])
    assert total == D("31.43")
    assert report.totals["requests"] == 9120 + 2000
    assert report.accounting.priced == 2 and report.accounting.balanced


def test_broken_row_is_quarantined_with_file_and_line(tmp_path, quarantine):
    page = json.loads(PRICED.read_text())
    page["data"][0]["results"][1]["input_cached_tokens"] = 2500000  # > input_tokens 2,400,000
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page))
    total, report = cost([path], quarantine=quarantine)
    assert total == D("10.43") and report.accounting.quarantined == 1
    [bad] = quarantined(quarantine)
    assert bad["file"] == str(path) and bad["line"] == 2
    assert "cache tokens exceed input" in bad["reason"]


def test_costs_api_page_is_not_a_usage_page(tmp_path):
    """GET /v1/organization/costs pages share the envelope but carry amounts (in dollars), not tokens."""
    page = {"object": "page", "data": [{"object": "bucket", "start_time": 1795392000, "end_time": 1795478400,
                                        "results": [{"object": "organization.costs.result",
                                                     "amount": {"value": 10.43, "currency": "usd"},
                                                     "line_item": "gpt-5.4, input", "project_id": "proj_abc123"}]}],
            "has_more": False, "next_page": None}
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(page))
    with pytest.raises(DialectError):
        detect(path)


def test_pages_one_per_line(tmp_path):
    path = tmp_path / "pages.jsonl"
    page = json.dumps(json.loads(PRICED.read_text()))
    path.write_text(page + "\n" + page + "\n")
    total, report = cost([path], dedupe=False)
    assert total == 2 * D("31.43") and report.accounting.rows_read == 4


def test_a_day_without_traffic_is_no_rows(tmp_path):
    path = tmp_path / "empty_day.json"
    path.write_text(json.dumps({"object": "page", "data": [], "has_more": False, "next_page": None}))
    assert detect(path) == "openai-usage"
    total, report = cost([path, PRICED])
    assert total == D("31.43") and report.accounting.rows_read == 2
