"""Real logs that other open-source projects publish (fixtures/real, origins in SOURCES.md), each priced
end to end and checked against totals computed here by hand from the published prices (USD per million
tokens). Each shape once fooled llm-cost (issue 12 §9); the comments say how.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from analyzer import analyze, dialects
from analyzer.pipeline import Options
from analyzer.sources import open_source
from tests.conftest import ROOT

REAL = ROOT / "fixtures" / "real"
M = D(10**6)


def _report(path, by, **opts):
    return analyze([str(path)], by, Options(**opts))


# -- ccusage's own fixtures: Claude Code lines without a `type` (older versions) ---------------------
# Read as Messages API records before: no project, session or costUSD. Published prices: Sonnet 4
# $3 in / $3.75 5m write / $0.30 read / $15 out; Opus 4 $15 / $18.75 / $1.50 / $75; Haiku 4.5
# $1 / $1.25 / $0.10 / $5.

SONNET4 = (100 * 3 + 25 * D("3.75") + 10 * D("0.3") + 50 * 15  # msg-alpha-1: 1,146.75
           + 300 * 3 + 40 * D("0.3") + 125 * 15) / M  # msg-alpha-3: 2,787 -> 0.00393375
# msg-alpha-2 says `speed: "fast"`, which Opus 4 does not offer and the book has no fast rates for:
# priced at its standard rates (the pricing core's rule; see docs/real-logs.md).
OPUS4 = (200 * 15 + 50 * D("18.75") + 20 * D("1.5") + 75 * 75) / M  # 9,592.5 -> 0.0095925
HAIKU45 = (50 * 1 + 5 * D("1.25") + 15 * D("0.1") + 25 * 5  # msg-beta-1: 182.75
           + 80 * 1 + 10 * D("1.25") + 25 * D("0.1") + 35 * 5) / M  # msg-beta-2: 270 -> 0.00045275


def test_ccusage_fixtures_are_claude_code_with_project_session_and_cost():
    path = REAL / "ccusage" / "projects" / "project-alpha" / "session-alpha" / "chat.jsonl"
    assert dialects.detect(open_source(str(path))).name == "claude-code"
    rep = _report(REAL / "ccusage", ["project", "session", "model"])
    rows = {(r["project"], r["session"], r["model"]): r for r in rep.rows.to_dicts()}
    assert {k: r["cost"] for k, r in rows.items()} == {
        ("project-alpha", "session-alpha", "claude-sonnet-4-20250514"): SONNET4,
        ("project-alpha", "session-alpha", "claude-opus-4-20250514"): OPUS4,
        ("project-beta", "session-beta", "claude-haiku-4-5-20251001"): HAIKU45,
    }
    assert rep.totals["cost"] == D("0.013979")
    # costUSD is kept beside the computed cost (ccusage's fixture values are not real prices)
    assert {k[2]: r["reported_cost"] for k, r in rows.items()} == {
        "claude-sonnet-4-20250514": D("0.68"), "claude-opus-4-20250514": D("0.34"),
        "claude-haiku-4-5-20251001": D("0.07")}
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.quarantined, acc.repeats) == (5, 5, 0, 0) and acc.balanced


# -- goccc's fixture: a current transcript and its subagent -------------------------------------------
# goccc writes one request's streaming snapshots with three message ids (msg_streaming_001a/b/c) under
# one requestId, and merges them on requestId alone (its own total: Opus $1.2335, Haiku $0.057625).
# llm-cost keys a request on its message id (an Anthropic `msg_` id names one billed response): three
# message ids are three requests. Opus 4.6: $5 in / $6.25 5m write / $10 1h write / $0.50 read / $25
# out; Haiku 4.5 as above plus $2 1h write.
GOCCC_OPUS = [  # (input, 5m write, 1h write, read, output) of each (message id, request id)
    (15000, 8000, 3000, 50000, 200),  # msg_streaming_001a: 185,000
    (15000, 8000, 3000, 50000, 800),  # msg_streaming_001b: 200,000
    (15000, 8000, 3000, 50000, 2500),  # msg_streaming_001c: 242,500
    (22000, 0, 5000, 62000, 4800),  # msg_002: 311,000
    (30000, 2000, 0, 70000, 1000),  # msg_streaming_003a: 222,500
    (30000, 2000, 0, 70000, 6200),  # msg_streaming_003b: 352,500
    (35000, 4000, 0, 80000, 3500),  # msg_004: an unsplit 4,000-token cache write is 5m: 327,500
]


def _cost(rows, rates) -> D:
    return sum(sum(n * r for n, r in zip(row, rates, strict=True)) for row in rows) / M


def test_goccc_fixture_by_hand():
    opus = _cost(GOCCC_OPUS, (5, D("6.25"), 10, D("0.5"), 25))
    assert opus == D("1.841")
    rep = _report(REAL / "goccc", ["model", "project"])
    rows = {r["model"]: r for r in rep.rows.to_dicts()}
    assert rows["claude-opus-4-6"]["cost"] == opus and rows["claude-opus-4-6"]["requests"] == 7
    # the project is the working directory (from cwd) that projects/C--Users-alice-git-webapp escapes,
    # for the subagent file too
    assert set(rep.rows["project"].to_list()) == {"C:\\Users\\alice\\git\\webapp"}
    haiku = rows["claude-haiku-4-5-20251001"]
    assert (haiku["requests"], haiku["input_tokens"], haiku["output_tokens"]) == (4, 27000, 5400)
    assert (haiku["cache_write_5m_tokens"], haiku["cache_write_1h_tokens"], haiku["cache_read_tokens"]) == (
        4500, 4000, 60000)
    assert haiku["cost"] == (27000 * 1 + 4500 * D("1.25") + 4000 * 2 + 60000 * D("0.1") + 5400 * 5) / M
    assert rep.totals["cost"] == D("1.914625")
    acc = rep.accounting  # the <synthetic> usage-limit message is not billable; lines repeating a pair merge
    assert (acc.rows_read, acc.priced, acc.not_billable, acc.quarantined) == (12, 11, 1, 0) and acc.balanced


# -- OpenAI API responses recorded by the official .NET SDK's tests ----------------------------------
# Shipped-book rates (pricebook/openai.toml): gpt-4o-mini $0.15 in / $0.60 out, gpt-4o-2024-08-06
# $2.50 / $10, gpt-5.5 $5 / $30.

def test_openai_responses_stream_is_openai_dated_by_created_at():
    """A recorded Responses API stream: once detected as Anthropic Messages (it has
    `response.usage.input_tokens`) and dated by --batch-time; 17 events, one of them usage."""
    path = REAL / "openai-dotnet" / "hello_world_streaming_gpt-4o-mini.jsonl"
    assert dialects.detect(open_source(str(path))).name == "openai"
    rep = _report(path, ["day", "model"], batch_time="2020-01-01T00:00:00Z")
    [row] = rep.rows.to_dicts()
    assert (row["day"], row["model"], row["requests"]) == ("2025-09-16", "gpt-4o-mini", 1)  # created_at 1758064436
    assert row["cost"] == (11 * D("0.15") + 10 * D("0.6")) / M == D("0.00000765")
    assert (rep.accounting.rows_read, rep.accounting.priced) == (1, 1) and rep.accounting.balanced


def test_openai_recorded_responses_by_hand():
    rep = _report(REAL / "openai-dotnet", ["model"])
    costs = {r["model"]: r["cost"] for r in rep.rows.to_dicts()}
    assert costs == {
        # chat completion 11 in / 9 out; Responses 35 / 857; the Responses stream 11 / 10
        "gpt-4o-mini": ((11 + 35 + 11) * D("0.15") + (9 + 857 + 10) * D("0.6")) / M,
        "gpt-5.5": (10 * 5 + 13 * 30) / M,  # gpt-5.5-2026-04-23, 2026-06-25
        "gpt-4o-2024-08-06": (26 * D("2.5") + 10 * 10) / M,  # the chat stream's last chunk (include_usage): 26 / 10
    }
    assert rep.totals["cost"] == D("0.00113915")
    # 13 chunks of the chat stream, 12 without usage; 17 events of the Responses stream, 16 without
    assert (rep.accounting.rows_read, rep.accounting.priced, rep.accounting.quarantined) == (5, 5, 0)
    assert rep.accounting.balanced


@pytest.mark.parametrize("path", sorted(p for p in REAL.rglob("*.jsonl")), ids=lambda p: str(p.relative_to(REAL)))
def test_every_real_log_is_read_without_quarantine(path):
    rep = _report(path, [], batch_time="2026-08-10T00:00:00Z")
    acc = rep.accounting
    assert acc.balanced and acc.quarantined == 0 and acc.unpriced == 0 and acc.priced > 0


# -- Messages API responses recorded by pydantic-ai's tests (VCR cassettes) ----------------------------
# Bare Message objects carry no time: dated by --batch-time, here the day each cassette was committed.
# Shipped-book rates: Sonnet 4.5 and 4.6 $3 in / $3.75 5m write / $0.30 read / $15 out; Sonnet 5 $2 / $10;
# Opus 4.8 $5 / $25.
PYDANTIC = REAL / "pydantic-ai"


def test_pydantic_ai_cache_responses_with_inference_geo_not_available():
    """`inference_geo: "not_available"` (the API's own value) is not the US-only multiplier."""
    rep = _report(PYDANTIC / "cache_real_api.jsonl", ["inference_geo", "discount_type"],
                  batch_time="2026-04-15T00:00:00Z")
    first = 3 * 3 + 1111 * D("0.3") + 406 * 15  # 6,432.3
    second = 3 * 3 + 418 * D("3.75") + 1111 * D("0.3") + 33 * 15  # 2,404.8
    assert rep.totals["cost"] == (first + second) / M == D("0.0088371")
    assert set(rep.rows["inference_geo"].to_list()) == {"not_available"}
    assert "us_geo" not in "".join(rep.rows["discount_type"].to_list())


def test_pydantic_ai_compaction_bills_the_iteration_the_top_level_usage_leaves_out():
    """The top-level usage says 0 cache writes; the compaction iteration wrote 55,096 tokens: billed."""
    rep = _report(PYDANTIC / "compaction_usage_with_cache.jsonl", ["model"], batch_time="2026-08-10T00:00:00Z")
    compaction = 100 * 3 + 55096 * D("3.75") + 131 * 15  # 208,875
    message = 229 * 3 + 5 * 15  # 762
    assert rep.totals["cost"] == (compaction + message) / M == D("0.209637")
    assert rep.totals["requests"] == 1 and rep.totals["cache_write_5m_tokens"] == 55096


def test_pydantic_ai_advisor_iteration_priced_by_its_own_model():
    rep = _report(PYDANTIC / "advisor_tool.jsonl", ["model"], batch_time="2026-07-24T00:00:00Z")
    costs = {r["model"]: r["cost"] for r in rep.rows.to_dicts()}
    assert costs == {"claude-sonnet-5": ((1128 + 1262) * 2 + (110 + 11) * 10) / M,  # executor, two turns
                     "claude-opus-4-8": (2518 * 5 + 22 * 25) / M}  # the advisor
    assert rep.totals["requests"] == 1 and rep.totals["cost"] == D("0.01913")
