"""Issue 21.2: LiteLLM spend logs as the proxy's `/spend/logs` API returns them (JSON: an array of rows,
or one object per line), `metadata` an object, `request_tags` a list, `cache_hit` a boolean. The rows
are those of litellm_spendlogs.csv (from LiteLLM_SpendLogs in BerriAI/litellm schema.prisma), the
first with the provider-prefixed id LiteLLM writes (`anthropic/claude-3-5-sonnet-20241022`), plus an
unknown model with LiteLLM's own spend. `spend_logs_ui.jsonl` is the same rows without `call_type`
(the session and UI endpoints).

By hand (per 1M tokens): Claude 3.5 Sonnet $3 in, $3.75 5m write, $15 out; Sonnet 4.5 $3 in, $0.30 read,
$15 out, x1.1 on a Bedrock geo profile (regional). prompt_tokens include cache tokens.
- anthropic/claude-3-5-sonnet-20241022: 2,095 x 3 + 48,210 x 3.75 + 503 x 15 = 0.1946175
- us.anthropic.claude-sonnet-4-5 (Bedrock): (412 x 3 + 9,800 x 0.30 + 6 x 15) x 1.1 = 0.0046926
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from analyzer.models import parse_model_id
from analyzer.writers import table_text

from .exports_util import FIXTURES, cost, detect, normalized, quarantined

HERE = FIXTURES / "litellm-spendlogs"
PAGE = HERE / "spend_logs.json"
UI = HERE / "spend_logs_ui.jsonl"
CSV = HERE / "litellm_spendlogs.csv"
TOTAL = D("0.1946175") + D("0.0046926")
UNKNOWN = "anthropic/claude-imaginary-9"


@pytest.mark.parametrize("path", [PAGE, UI])
def test_detected_without_dialect(path):
    assert detect(path) == "litellm-spendlogs"


@pytest.mark.parametrize("path", [PAGE, UI])
def test_total_by_hand(path):
    total, report = cost([path])
    acc = report.accounting
    assert total == TOTAL
    assert (acc.priced, acc.unpriced, acc.not_billable, acc.rows_read) == (2, 1, 2, 5) and acc.balanced
    # LiteLLM's own spend beside it: what it reported for the two priced rows
    assert report.totals["reported_cost"] == D("0.1969095") + D("0.004266")


def test_json_rows_read_as_the_csv_rows():
    """The same facts from the API's JSON and the table's CSV dump (ids, times, counts, dimensions)."""
    cols = ["request_id", "timestamp", "input_tokens", "cache_write_5m_tokens", "cache_read_tokens",
            "output_tokens", "platform", "api_key", "user", "team", "tags", "session"]
    got = normalized(PAGE).select(cols).head(2)
    assert got.to_dicts() == normalized(CSV).select(cols).to_dicts()


def test_provider_prefixed_id_resolves_exactly():
    rows = normalized(PAGE)
    assert rows["model_raw"][0] == "anthropic/claude-3-5-sonnet-20241022"
    _, report = cost([PAGE])
    assert set(report.accounting.unpriced_models) == {UNKNOWN}


@pytest.mark.parametrize("raw, key", [
    ("anthropic/claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022"),
    ("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
    ("bedrock/converse/anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku-20241022"),
    ("vertex_ai/claude-sonnet-4-5@20250929", "claude-sonnet-4-5@20250929"),
    ("openai/gpt-4o", "gpt-4o"),
    # LiteLLM's route to OpenRouter, then OpenRouter's vendor: the slug remains (resolved in the book)
    ("openrouter/anthropic/claude-3.5-sonnet", "claude-3.5-sonnet"),
    ("openrouter/anthropic/claude-3.7-sonnet:thinking", "claude-3.7-sonnet"),
    # a route LiteLLM takes to a provider the book does not know is left whole, so it stays unknown
    ("groq/llama-3.1-8b-instant", "groq/llama-3.1-8b-instant"),
    ("anthropic/", "anthropic/"),
])
def test_litellm_routes(raw, key):
    assert parse_model_id(raw)[0] == key


def test_unpriced_row_shows_its_reported_spend():
    _, report = cost([PAGE])
    assert report.accounting.unpriced_reported == {UNKNOWN: D("0.0123")}
    assert report.accounting.as_dict()["unpriced_reported_cost"] == {UNKNOWN: "0.012300000000"}
    assert f"unpriced: {UNKNOWN} (1 row; reported $0.01): unknown model" in table_text(report)


def test_no_reported_spend_no_key(tmp_path):
    rows = json.loads(PAGE.read_text())
    for r in rows:
        r.pop("spend")
    path = tmp_path / "page.json"
    path.write_text(json.dumps(rows))
    _, report = cost([path])
    assert report.accounting.unpriced_reported == {} and "unpriced_reported_cost" not in report.accounting.as_dict()


def test_tags_as_text_and_float_spend(tmp_path):
    """A row holding its tags as JSON text, and LiteLLM's float spend written in exponent form."""
    rows = json.loads(PAGE.read_text())
    rows[1]["request_tags"] = '["a","b"]'
    rows[1]["spend"] = 1.095e-05
    rows[0]["request_tags"] = ["[prod]"]  # a tag that merely starts with a bracket stays a tag
    path = tmp_path / "page.json"
    path.write_text(json.dumps(rows))
    frame = normalized(path)
    assert frame["tags"].to_list()[:2] == ["[prod]", "a,b"]
    assert frame["reported_cost"][1] == D("0.00001095")


def test_single_object_and_broken_line(tmp_path, quarantine):
    """One saved object per file reads; a cut line among JSON lines is quarantined with its line."""
    one = tmp_path / "one.json"
    one.write_text(json.dumps(json.loads(PAGE.read_text())[0], indent=2))
    assert cost([one])[0] == D("0.1946175")
    lines = UI.read_text().splitlines()
    lines[1] = lines[1][:80]
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines) + "\n")
    total, report = cost([cut], quarantine=quarantine)
    assert total == D("0.1946175") and report.accounting.quarantined == 1
    assert quarantined(quarantine)[0]["line"] == 2


def _ui_pages(rows: list[dict], size: int) -> list[dict]:
    """As /spend/logs/ui returns them (BerriAI/litellm ui_view_spend_logs): {data, total, page, ...}."""
    pages = [rows[i:i + size] for i in range(0, len(rows), size)]
    return [{"data": p, "total": len(rows), "page": n + 1, "page_size": size, "total_pages": len(pages)}
            for n, p in enumerate(pages)]


@pytest.mark.parametrize("as_lines", [True, False])
def test_ui_pages_are_read_row_by_row(tmp_path, as_lines):
    rows = [json.loads(line) for line in UI.read_text().splitlines()]
    pages = _ui_pages(rows, 3)
    if as_lines:
        path = tmp_path / "ui.jsonl"
        empty = {"data": [], "total": 5, "page": 3, "page_size": 3, "total_pages": 2}  # past the last page
        path.write_text("".join(json.dumps(p) + "\n" for p in [*pages, empty]))
    else:
        path = tmp_path / "ui.json"
        path.write_text(json.dumps(pages[0]))
    assert detect(path) == "litellm-spendlogs"
    total, report = cost([path])
    acc = report.accounting
    if as_lines:  # every row once; the empty page holds none
        assert total == TOTAL and (acc.priced, acc.unpriced, acc.not_billable, acc.rows_read) == (2, 1, 2, 5)
    else:  # the first page: the two priced rows and a cache hit
        assert total == TOTAL and (acc.priced, acc.not_billable, acc.rows_read) == (2, 1, 3)


def test_broken_ui_page_is_quarantined(tmp_path, quarantine):
    rows = [json.loads(line) for line in UI.read_text().splitlines()]
    path = tmp_path / "ui.jsonl"
    path.write_text(json.dumps(_ui_pages(rows, 5)[0]) + "\n" + '{"data": [{"request_id": "x", "prompt_tok\n')
    total, report = cost([path], quarantine=quarantine)
    assert total == TOTAL and report.accounting.quarantined == 1 and report.accounting.balanced
    assert quarantined(quarantine)[0]["raw"].startswith('{"data": [{"request_id": "x"')


def test_other_pages_are_not_spend_logs():
    """A usage report's page has `data` too: its rows are not spend logs."""
    assert detect(FIXTURES / "anthropic-usage-report" / "admin_usage_report.json") == "anthropic-usage-report"
    assert detect(FIXTURES / "claude-code-analytics" / "claude_code_usage.json") == "claude-code-analytics"
