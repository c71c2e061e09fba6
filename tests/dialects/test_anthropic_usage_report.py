"""anthropic-usage-report: Admin API usage report pages (legacy and analytics), pre-aggregated rows.

Costs are hand-computed from the published $/MTok (platform.claude.com pricing page): Sonnet 4.5 $3 in, $3.75 5m
write, $6 1h write, $0.30 read, $15 out; Haiku 4.5 $1/$1.25/$2/$0.10/$5; Sonnet 4.6 before 2026-03-13
$3/.../$15 with the >200K tier $6 in, $12 1h write, $0.60 read, $22.50 out; batch 0.5x; web search
$10 per 1,000; inference_geo us 1.1x on 4.6+.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal as D

import pytest
from polars.testing import assert_frame_equal

from analyzer.errors import DialectError

from .exports_util import FIXTURES, cost, detect, expected, normalized, quarantined

HERE = FIXTURES / "anthropic-usage-report"
LEGACY = HERE / "admin_usage_report.json"
ANALYTICS = HERE / "admin_analytics_usage.json"
WINDOWS = HERE / "context_windows.json"
S45, H45 = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
KEY, WS = "apikey_01Rj2N8SVvo6BePZj99NhmiT", "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
COLS = ["timestamp", "model_raw", "platform", "service_tier", "context_window", "inference_geo", "requests",
        "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens",
        "web_search_requests", "workspace", "api_key"]


@pytest.mark.parametrize("path", [LEGACY, ANALYTICS, WINDOWS])
def test_detected(path):
    assert detect(path) == "anthropic-usage-report"


def test_cost_report_is_not_taken_for_a_usage_report(tmp_path):
    """The cost report has the same envelope (data[].results[]) but amounts, not tokens."""
    path = tmp_path / "admin_cost_report.json"
    path.write_text(json.dumps({"data": [{"starting_at": "2026-11-23T00:00:00Z", "ending_at": "2026-11-24T00:00:00Z",
                                          "results": [{"amount": "123.45", "currency": "USD", "model": S45,
                                                       "token_type": "output_tokens"}]}],
                                "has_more": False, "next_page": None}))
    with pytest.raises(DialectError):
        detect(path)


def test_legacy_report_normalizes_to_one_row_per_result():
    rows = [  # (bucket start, model, tier, window, geo, uncached, 5m, 1h, read, out, web search, workspace, key)
        ("2026-11-23T00:00:00Z", S45, "standard", "0-200k", "global", 1250000, 400000, 100000, 8000000, 300000, 120,
         WS, KEY),
        ("2026-11-23T00:00:00Z", S45, "batch", "0-200k", "global", 2400000, 0, 0, 0, 1000000, 0, WS, KEY),
        ("2026-11-23T00:00:00Z", S45, "standard", "200k-1m", "global", 310000, 25000, 0, 2950000, 41000, 0, None,
         None),
        ("2026-11-24T00:00:00Z", H45, "priority", "0-200k", "us", 52000, 0, 0, 0, 8100, 0, WS,
         "apikey_01QpZr5ZxWmDnV7wTc3sK2eH"),
    ]
    want = expected([dict(zip(COLS, (t, m, "anthropic", tier, w, g, None, *counts, ws, key)))
                     for t, m, tier, w, g, *counts, ws, key in rows], dims=("workspace", "api_key"))
    assert_frame_equal(normalized(LEGACY).select(COLS), want)


def test_analytics_rows_carry_requests():
    """Not grouped by context window here: the base window is assumed (see test_context_window_...)."""
    base = dict(timestamp="2026-11-23T00:00:00Z", model_raw=S45, platform="anthropic", context_window="0-200k",
                inference_geo=None, workspace=None, api_key=KEY)
    want = expected([
        {**base, "service_tier": "standard", "requests": 4180, "input_tokens": 1250000, "cache_write_5m_tokens": 400000,
         "cache_write_1h_tokens": 100000, "cache_read_tokens": 8000000, "output_tokens": 300000,
         "web_search_requests": 120},
        {**base, "service_tier": "batch", "requests": 2000, "input_tokens": 2400000, "cache_write_5m_tokens": 0,
         "cache_write_1h_tokens": 0, "cache_read_tokens": 0, "output_tokens": 1000000, "web_search_requests": 0},
    ], dims=("workspace", "api_key"))
    assert_frame_equal(normalized(ANALYTICS).select(COLS), want.select(COLS))


def test_legacy_total_by_hand():
    # standard: 1.25M x $3 + 0.4M x $3.75 + 0.1M x $6 + 8M x $0.30 + 0.3M x $15 + 120 x $0.01 = 13.95
    # batch:    (2.4M x $3 + 1M x $15) x 0.5                                                = 11.10
    # 200k-1M:  Sonnet 4.5's long-context rates ended 2026-04-29, so base rates:
    #           0.31M x $3 + 25,000 x $3.75 + 2.95M x $0.30 + 41,000 x $15 / 1M              =  2.52375
    # Haiku 4.5 priority (list), us geo (no us_geo premium before 4.6): 52,000 x $1 + 8,100 x $5 = 0.0925
    total, report = cost([LEGACY])
    assert total == D("27.66625")
    assert report.accounting.priced == 4 and report.accounting.balanced


def test_analytics_total_by_hand():
    total, report = cost([ANALYTICS])
    assert total == D("13.95") + D("11.10")
    assert report.totals["requests"] == 4180 + 2000


def test_context_window_decides_the_long_context_tier():
    """Pre-aggregated rows: the summed tokens of a bucket say nothing about one request's prompt;
    the `context_window` group does. Sonnet 4.6 on 2026-03-10 still had its >200K tier."""
    total, report = cost([WINDOWS])
    # 0-200k:          1M x $3 + 0.1M x $15                                  = 4.50 (3.1M tokens, yet base)
    # 200k-1M:         1M x $6 + 0.1M x $12 (1h) + 2M x $0.60 + 0.1M x $22.50 = 10.65
    # not grouped:     base (a lower bound; the report says so)             = 4.50
    # priority_on_demand -> priority, at list                               = 3.00
    # inference_geo us: 1M x $3 x 1.1                                        = 3.30
    # flex_discount -> flex: Anthropic has no flex price: unpriced
    assert total == D("25.95")
    assert report.accounting.priced == 5 and report.accounting.unpriced == 1
    assert "no flex tier price" in report.accounting.unpriced_reasons["claude-sonnet-4-6"]


def test_what_rows_cannot_say_is_noted():
    _, report = cost([WINDOWS])
    assert any("not grouped by context window are priced at the base tier" in n for n in report.notes)
    assert any("no request count" in n for n in report.notes)
    _, report = cost([LEGACY])  # every row grouped by context window
    assert not any("context window" in n for n in report.notes)


@pytest.mark.parametrize("raw,tier", [("priority_on_demand", "priority"), ("flex", "flex"),
                                      ("flex_discount", "flex"), ("batch", "batch")])
def test_service_tier_values(tmp_path, raw, tier):
    page = json.loads(LEGACY.read_text())
    page["data"][0]["results"][0]["service_tier"] = raw
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page))
    assert normalized(path)["service_tier"][0] == tier


def test_pages_one_per_line_equal_pages_as_files(tmp_path):
    """`curl ... >> pages.jsonl`: each line one page; the same rows as the pages as files."""
    lines = tmp_path / "pages.jsonl"
    lines.write_text(json.dumps(json.loads(LEGACY.read_text())) + "\n" + json.dumps(json.loads(WINDOWS.read_text())))
    as_lines, _ = cost([lines])
    as_files, _ = cost([LEGACY, WINDOWS])
    assert detect(lines) == "anthropic-usage-report"
    assert as_lines == as_files == D("27.66625") + D("25.95")


def test_broken_row_is_quarantined_with_file_and_line(tmp_path, quarantine):
    page = json.loads(LEGACY.read_text())
    page["data"][1]["results"][0]["output_tokens"] = "8,100"
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page, indent=2))
    total, report = cost([path], quarantine=quarantine)
    assert report.accounting.quarantined == 1 and report.accounting.priced == 3
    assert total == D("27.66625") - D("0.0925")
    [bad] = quarantined(quarantine)
    assert bad["file"] == str(path) and "output_tokens" in bad["reason"]
    assert bad["line"] == 4  # the 4th usage row of the file


def test_row_not_grouped_by_model_cannot_be_priced(tmp_path, quarantine):
    page = json.loads(LEGACY.read_text())
    page["data"][0]["results"][0]["model"] = None
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page))
    _, report = cost([path], quarantine=quarantine)
    assert report.accounting.quarantined == 1
    assert "missing model" in quarantined(quarantine)[0]["reason"]


def test_empty_page(tmp_path):
    """A day with no traffic: a page with no buckets (or empty buckets) has no rows, and no error."""
    path = tmp_path / "empty.json"
    shutil.copy(LEGACY, path)
    page = json.loads(LEGACY.read_text())
    page["data"][1]["results"] = []
    path.write_text(json.dumps(page))
    total, report = cost([path])
    assert total == D("27.66625") - D("0.0925") and report.accounting.rows_read == 3


def test_unreadable_page_line_is_quarantined_as_one_row(tmp_path, quarantine):
    page = json.dumps(json.loads(LEGACY.read_text()))
    path = tmp_path / "pages.jsonl"
    path.write_text(f"{page}\n{{broken\n{page}\n")
    total, report = cost([path], quarantine=quarantine, dedupe=False)
    assert total == 2 * D("27.66625")
    assert (report.accounting.rows_read, report.accounting.quarantined) == (9, 1)
    [bad] = quarantined(quarantine)
    assert bad["line"] == 5 and bad["raw"] == "{broken" and "unparsable line" in bad["reason"]


@pytest.mark.parametrize("data", [[], [{"starting_at": "2026-11-24T00:00:00Z", "ending_at": "2026-11-25T00:00:00Z",
                                        "results": []}]])
def test_a_day_without_traffic_is_no_rows(tmp_path, data):
    path = tmp_path / "empty_day.json"
    path.write_text(json.dumps({"data": data, "has_more": False, "next_page": None}))
    assert detect(path) == "anthropic-usage-report"
    total, report = cost([path, LEGACY])
    assert total == D("27.66625") and report.accounting.rows_read == 4
