"""otel-genai: OpenTelemetry GenAI spans as OTLP/JSON (collector file exporter lines)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl
from polars.testing import assert_frame_equal

from .cloud_helpers import FIXTURES, M, detected, expected, normalized, other_fixtures, priced, quarantine_lines, report

LOG = FIXTURES / "otel-genai" / "spans.jsonl"
COLUMNS = {"request_id": pl.String, "timestamp": pl.Datetime("us"), "platform": pl.String, "model_raw": pl.String,
           "input_tokens": pl.Int64, "cache_write_5m_tokens": pl.Int64, "cache_write_1h_tokens": pl.Int64,
           "cache_read_tokens": pl.Int64, "output_tokens": pl.Int64, "service": pl.String, "environment": pl.String}


def _row(rid, t, platform, model, i, w5, r, o, service, env=None):
    return dict(request_id=rid, timestamp=dt.datetime.fromisoformat(t), platform=platform, model_raw=model,
                input_tokens=i, cache_write_5m_tokens=w5, cache_write_1h_tokens=0, cache_read_tokens=r,
                output_tokens=o, service=service, environment=env)


# gen_ai.usage.input_tokens INCLUDES cache reads and writes: uncached input = input - read - creation.
EXPECTED = [
    _row("msg_01XFDUDYJgAACzvnptvVoYEL", "2025-11-25 10:30:01.120", "anthropic", "claude-sonnet-4-5-20250929",
         50305 - 48210, 48210, 0, 503, "support-triage", "prod"),
    _row("0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331", "2025-11-25 10:36:31", "bedrock",
         "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 48210, 0, 0, 733, "contract-summarizer"),
    # OpenLLMetry's deprecated names: gen_ai.system, prompt_tokens, completion_tokens
    _row("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7", "2025-01-01 00:00:00", "anthropic",
         "claude-3-5-sonnet-20241022", 1204, 0, 0, 311, "legacy-chatbot"),
    _row("msg_vrtx_01OtelHaiku000000000001", "2026-11-24 09:00:01", "vertex", "claude-haiku-4-5@20251001",
         3000 - 2000 - 500, 500, 2000, 120, "rag-api", "staging"),
    _row("msg_01OtelOpus0000000000001", "2026-11-24 09:00:05", "anthropic", "claude-opus-4-6",
         10000 - 8000, 0, 8000, 2000, "rag-api", "staging"),
]
COSTS = [
    (2095 * 3 + 48210 * Decimal("3.75") + 503 * 15) / M,
    Decimal("1.1") * (48210 * 3 + 733 * 15) / M,  # Bedrock us. profile: a regional endpoint
    (1204 * 3 + 311 * 15) / M,
    (500 * 1 + 500 * Decimal("1.25") + 2000 * Decimal("0.1") + 120 * 5) / M,  # the span names no Vertex region
    (2000 * 5 + 8000 * Decimal("0.5") + 2000 * 25) / M,
]


def test_detected_without_dialect():
    assert detected(LOG) == "otel-genai"


def test_normalizes_spans_to_expected_frame():
    got = normalized(LOG).filter(pl.col("_ok")).select(list(COLUMNS))
    assert_frame_equal(got, expected(EXPECTED, COLUMNS))


def test_total_is_hand_computed(tmp_path):
    rep = report([LOG], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.quarantined) == (7, 5, 2)  # usage spans; the HTTP span is not one
    assert rep.totals["requests"] == 5
    assert acc.balanced


def test_per_span_costs(tmp_path):
    assert priced([LOG], tmp_path).sort("timestamp")["cost"].to_list() == [COSTS[2], *COSTS[:2], *COSTS[3:]]


def test_quarantine_names_file_and_line(tmp_path):
    report([LOG], tmp_path)
    assert quarantine_lines(tmp_path) == {
        ("spans.jsonl", 5): "cache tokens exceed input tokens (input is cache-inclusive in this format)",
        ("spans.jsonl", 6): "input_tokens is not a number (abc)",
    }


def test_input_includes_cache_is_converted_not_double_counted(tmp_path):
    """The pitfall: pricing gen_ai.usage.input_tokens as uncached input would bill 48,210 cache-write
    tokens twice. The converted span costs exactly its uncached input plus its cache write."""
    rows = priced([LOG], tmp_path).filter(pl.col("request_id") == "msg_01XFDUDYJgAACzvnptvVoYEL")
    assert rows.select("input_tokens", "cache_write_5m_tokens").row(0) == (2095, 48210)
    assert rows["cost"].to_list() == [COSTS[0]]


def test_non_genai_spans_are_not_usage(tmp_path):
    """Line 4 carries an HTTP span beside two gen_ai spans: it is skipped, not quarantined."""
    got = normalized(LOG)
    assert "1111111111111111" not in " ".join(got["request_id"].drop_nulls().to_list())


def test_int_value_as_json_number_is_accepted(tmp_path):
    """intValue is a string in OTLP/JSON; some exporters write a number. Both read the same."""
    doc = json.loads(LOG.read_text().splitlines()[0])
    for a in doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]:
        if "intValue" in a["value"]:
            a["value"]["intValue"] = int(a["value"]["intValue"])
    path = tmp_path / "numbers.jsonl"
    path.write_text(json.dumps(doc) + "\n")
    assert report([path], tmp_path).totals["cost"] == COSTS[0]


def test_does_not_claim_other_formats():
    assert [p.name for p in other_fixtures("otel-genai") if detected(p) == "otel-genai"] == []


def test_claude_code_otel_log_records_are_not_spans(tmp_path):
    """Claude Code exports OTLP *logs* (resourceLogs), with cache-exclusive counts: not this dialect."""
    log = tmp_path / "cc.jsonl"
    log.write_text(json.dumps({"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": []}]}) + "\n")
    assert detected(log) != "otel-genai"  # (it is claude-code-otel when its scope says Claude Code)


def test_truncated_document_is_quarantined_and_the_rest_priced(tmp_path):
    lines = LOG.read_text().splitlines()
    log = tmp_path / "cut.jsonl"
    log.write_text("\n".join(lines[:4]) + "\n" + lines[3][:200] + "\n")
    rep = report([log], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    lines = quarantine_lines(tmp_path)
    assert list(lines) == [("cut.jsonl", 5)] and lines["cut.jsonl", 5].startswith("not a JSON object (unparsable line)")


def _span(span_id, parent, op, model, i, o, t="1764066601000000000"):
    attrs = [{"key": "gen_ai.operation.name", "value": {"stringValue": op}},
             {"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}},
             {"key": "gen_ai.request.model", "value": {"stringValue": model}},
             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(i)}},
             {"key": "gen_ai.usage.output_tokens", "value": {"intValue": str(o)}}]
    return {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "parentSpanId": parent,
            "name": f"{op} {model}", "kind": 1, "startTimeUnixNano": t, "attributes": attrs}


def test_agent_spans_aggregate_their_model_calls_and_are_not_counted_again(tmp_path):
    """An agent span (invoke_agent, with a model) carries the sum of its model calls' usage, and a
    tool span may carry its own sub-agent's: counting them doubled the tokens. Only inference
    operations are requests; the others are not billable, named."""
    spans = [_span("a0", "", "invoke_agent", "claude-sonnet-4-5", 1500, 300),
             _span("c1", "a0", "chat", "claude-sonnet-4-5", 1000, 200),
             _span("t1", "a0", "execute_tool", "claude-sonnet-4-5", 500, 100),
             _span("c2", "t1", "chat", "claude-sonnet-4-5", 500, 100),
             _span("x0", "", "create_agent", "claude-sonnet-4-5", 1, 1),
             _span("e1", "", "embeddings", "claude-sonnet-4-5", 40, 0),  # (embeddings: a model call, priced)
             _span("l1", "", "call_llm", "claude-sonnet-4-5", 10, 0)]  # any-agent's own name for a model call
    doc = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]}
    log = tmp_path / "agent.jsonl"
    log.write_text(json.dumps(doc) + "\n")
    rep = report([log], tmp_path, by=("operation",))
    # chat 1,000 + 500 in, 200 + 100 out; embeddings 40 in; call_llm 10 in: Sonnet 4.5 $3 / $15
    assert rep.totals["cost"] == ((1000 + 500 + 40 + 10) * 3 + (200 + 100) * 15) / M
    assert {r["operation"]: r["requests"] for r in rep.rows.to_dicts()} == {"chat": 2, "embeddings": 1, "call_llm": 1}
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.not_billable, acc.quarantined) == (7, 4, 3, 0) and acc.balanced
    assert set(acc.not_billable_reasons) == {
        f"{op} span: its usage aggregates its model calls (counted on their own spans)"
        for op in ("invoke_agent", "execute_tool", "create_agent")}
