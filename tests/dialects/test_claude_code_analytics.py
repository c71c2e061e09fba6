"""Issue 21.6: the Admin API's Claude Code usage report (GET /v1/organizations/usage_report/claude_code).

Fixture origin: the first record is the response example of platform.claude.com/docs/en/api/admin-api/
claude-code/get-claude-code-usage-report (its e-mail address, obfuscated on the page, made up); a second
record, an API key's day with a plain `YYYY-MM-DD` date, is added in the documented shape. The docs'
estimated costs are illustrative (not the list price of their counts): the reported column shows them.

By hand (per 1M tokens; cache_creation has no TTL split: 5m writes):
- Sonnet 4 (2025-08-08): 45,230 x $3 + 2,340 x $3.75 + 8,790 x $0.30 + 12,450 x $15 = 0.333852
- Claude 3.5 Haiku:      23,100 x $0.80 + 890 x $1 + 3,420 x $0.08 + 5,680 x $4    = 0.0423636
- Opus 4.1:              30,000 x $15 + 10,000 x $18.75 + 200,000 x $1.50 + 20,000 x $75 = 2.4375
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from .exports_util import FIXTURES, cost, detect, normalized, quarantined

HERE = FIXTURES / "claude-code-analytics"
PAGE, RECORDS = HERE / "claude_code_usage.json", HERE / "records.jsonl"
SONNET, HAIKU, OPUS = D("0.333852"), D("0.0423636"), D("2.4375")


@pytest.mark.parametrize("path", [PAGE, RECORDS])
def test_detected_without_dialect(path):
    assert detect(path) == "claude-code-analytics"


def test_other_admin_pages_are_not_claimed():
    ref = FIXTURES / "anthropic-usage-report"
    assert detect(ref / "admin_usage_report.json") == "anthropic-usage-report"


@pytest.mark.parametrize("path", [PAGE, RECORDS])
def test_model_breakdown_priced_per_day_actor_model(path):
    total, report = cost([path])
    assert total == SONNET + HAIKU + OPUS
    acc = report.accounting
    assert (acc.rows_read, acc.priced, acc.quarantined) == (3, 3, 0) and acc.balanced
    # estimated_cost.amount is in cents: $1.86 + $0.42 + $2.44 reported beside
    assert report.totals["reported_cost"] == D("4.72")
    assert report.totals["requests"] == 0  # a day's total gives no request count
    assert any("no request count" in n for n in report.notes)


def test_rows_and_dimensions():
    rows = normalized(PAGE)
    assert rows["user"].to_list() == ["dev@example.com", "dev@example.com", "ci-review-bot"]
    assert rows["actor_type"].to_list() == ["user_actor", "user_actor", "api_actor"]
    assert rows["terminal"].to_list() == ["iTerm.app", "iTerm.app", "non-interactive"]
    assert rows["timestamp"].dt.to_string("%Y-%m-%d %H:%M").to_list() == ["2025-08-08 00:00"] * 3
    assert rows["cache_write_5m_tokens"].to_list() == [2340, 890, 10000]
    assert rows["requests"].is_null().all() and rows["context_window"].to_list() == ["0-200k"] * 3


def test_pages_as_lines_and_an_empty_page(tmp_path):
    page = json.loads(PAGE.read_text())
    path = tmp_path / "pages.jsonl"
    path.write_text(json.dumps({"data": [], "has_more": False, "next_page": None}) + "\n" + json.dumps(page) + "\n")
    total, report = cost([path])
    assert total == SONNET + HAIKU + OPUS and report.accounting.rows_read == 3


def test_other_currency_is_not_a_usd_figure(tmp_path):
    page = json.loads(PAGE.read_text())
    page["data"][1]["model_breakdown"][0]["estimated_cost"]["currency"] = "EUR"
    path = tmp_path / "eur.json"
    path.write_text(json.dumps(page))
    assert normalized(path)["reported_cost"].to_list() == [D("1.86"), D("0.42"), None]


def test_broken_record_is_quarantined_rest_priced(tmp_path, quarantine):
    lines = RECORDS.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["model_breakdown"][0]["tokens"]["output"] = "lots"
    path = tmp_path / "records.jsonl"
    path.write_text(lines[0] + "\n" + json.dumps(bad) + "\n")
    total, report = cost([path], quarantine=quarantine)
    assert total == SONNET + HAIKU and report.accounting.quarantined == 1 and report.accounting.balanced
    [q] = quarantined(quarantine)
    assert "output_tokens is not a number (lots)" in q["reason"] and '"ci-review-bot"' in q["raw"]


def test_subscription_usage_is_noted(tmp_path):
    page = json.loads(PAGE.read_text())
    page["data"][0]["customer_type"] = "subscription"
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(page))
    _, report = cost([path])
    assert any("subscription" in n for n in report.notes)
