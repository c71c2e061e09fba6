"""Issue 21.7: --batch-time dates every record that carries no time, whatever its format: usage-report
buckets without `starting_at`, OTel spans without `startTimeUnixNano` were quarantined ("missing
timestamp") even with it. Records that carry a time keep theirs; a broken time is still quarantined.

Sonnet 4.5 (Nov 2026): $3 in, $15 out per 1M (base tier).
"""

from __future__ import annotations

import json
from decimal import Decimal as D

from .exports_util import cost, normalized, quarantined

BATCH_TIME = "2026-11-20T10:00:00Z"
S45 = "claude-sonnet-4-5-20250929"


def _row(inp: int, out: int) -> dict:
    return {"uncached_input_tokens": inp, "cache_creation": {"ephemeral_1h_input_tokens": 0,
            "ephemeral_5m_input_tokens": 0}, "cache_read_input_tokens": 0, "output_tokens": out,
            "model": S45, "service_tier": "standard", "context_window": "0-200k"}


def _report(tmp_path, buckets) -> str:
    path = tmp_path / "usage.json"
    path.write_text(json.dumps({"data": buckets, "has_more": False, "next_page": None}))
    return str(path)


def _span(start: str | None, inp: int, out: int, span_id: str) -> str:
    attrs = [{"key": "gen_ai.response.model", "value": {"stringValue": S45}},
             {"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}},
             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(inp)}},
             {"key": "gen_ai.usage.output_tokens", "value": {"intValue": str(out)}}]
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "name": "chat", "attributes": attrs}
    if start is not None:
        span["startTimeUnixNano"] = start
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]})


def test_usage_report_bucket_without_start_takes_batch_time(tmp_path):
    path = _report(tmp_path, [{"results": [_row(1_000_000, 100_000)]},
                              {"starting_at": "2026-11-23T00:00:00Z", "results": [_row(2_000_000, 0)]}])
    # 1M x $3 + 0.1M x $15 = 4.50; the timed bucket: 2M x $3 = 6.00
    total, report = cost([path], batch_time=BATCH_TIME)
    assert total == D("10.50") and report.accounting.priced == 2 and report.accounting.quarantined == 0
    times = normalized(path, batch_time=BATCH_TIME)["timestamp"].dt.to_string("%Y-%m-%dT%H:%M:%S").to_list()
    assert times == ["2026-11-20T10:00:00", "2026-11-23T00:00:00"]


def test_without_batch_time_untimed_bucket_is_still_quarantined(tmp_path, quarantine):
    path = _report(tmp_path, [{"results": [_row(1_000_000, 100_000)]}])
    total, report = cost([path], quarantine=quarantine)
    assert report.accounting.quarantined == 1 and total == 0
    assert quarantined(quarantine)[0]["reason"] == "missing timestamp"


def test_otel_span_without_start_takes_batch_time(tmp_path):
    path = tmp_path / "spans.jsonl"
    # the timed span: 2025-11-25T10:30:01.12Z (1764066601120000000 ns)
    path.write_text(_span(None, 1_000_000, 100_000, "a1") + "\n" + _span("1764066601120000000", 0, 200_000, "a2") + "\n")
    total, report = cost([path], batch_time=BATCH_TIME)
    # 1M x $3 + 0.1M x $15 = 4.50; 0.2M x $15 = 3.00
    assert total == D("7.50") and report.accounting.priced == 2
    times = normalized(path, batch_time=BATCH_TIME)["timestamp"].dt.to_string("%Y-%m-%dT%H:%M:%S%.3f").to_list()
    assert times == ["2026-11-20T10:00:00.000", "2025-11-25T10:30:01.120"]


def test_broken_time_is_not_replaced_by_batch_time(tmp_path, quarantine):
    path = _report(tmp_path, [{"starting_at": "yesterday", "results": [_row(1_000_000, 0)]}])
    total, report = cost([path], batch_time=BATCH_TIME, quarantine=quarantine)
    assert report.accounting.quarantined == 1 and total == 0
    assert "unparsable timestamp (yesterday)" in quarantined(quarantine)[0]["reason"]

