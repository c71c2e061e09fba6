"""claude-code-otel: Claude Code's OpenTelemetry events (OTLP/JSON logs, claude_code.api_request)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl
from polars.testing import assert_frame_equal

from .cloud_helpers import FIXTURES, M, detected, expected, normalized, other_fixtures, quarantine_lines, report

LOG = FIXTURES / "claude-code-otel" / "events.jsonl"
SESSION = "2ff46cd5-f4e7-4724-bb20-579dae7956ea"
COLUMNS = {"request_id": pl.String, "timestamp": pl.Datetime("us"), "model_raw": pl.String, "speed": pl.String,
           "input_tokens": pl.Int64, "cache_write_5m_tokens": pl.Int64, "cache_read_tokens": pl.Int64,
           "output_tokens": pl.Int64, "reported_cost": pl.Decimal(38, 12), "session": pl.String,
           "terminal": pl.String}


def _row(seq, t, model, i, w5, r, o, cost, speed=None):
    return dict(request_id=f"{SESSION}:{seq}", timestamp=dt.datetime.fromisoformat(t), model_raw=model, speed=speed,
                input_tokens=i, cache_write_5m_tokens=w5, cache_read_tokens=r, output_tokens=o,
                reported_cost=Decimal(cost), session=SESSION, terminal="vscode")


# Counts are Anthropic's (input excludes cache); cache creation has no TTL: 5m. The first record is the
# reference example: its event.timestamp (2026-11-24) is the time, not timeUnixNano (a year earlier).
EXPECTED = [
    _row(3, "2026-11-24 09:12:05.704", "claude-opus-4-6", 6, 8837, 16410, 136, "0.100005"),
    _row(5, "2026-11-24 09:12:11", "claude-haiku-4-5-20251001", 1200, 0, 0, 80, "0.0021"),
    _row(6, "2026-11-24 09:12:12", "claude-opus-4-6", 10, 0, 20000, 1000, "0.9", speed="fast"),
]
COSTS = [
    (6 * 5 + 8837 * Decimal("6.25") + 16410 * Decimal("0.5") + 136 * 25) / M,
    (1200 * 1 + 80 * 5) / M,
    (10 * 5 + 20000 * Decimal("0.5") + 1000 * 25) / M,  # fast mode ended 2026-06-28: standard rates
]


def test_detected_without_dialect():
    assert detected(LOG) == "claude-code-otel"


def test_api_request_records_normalize_to_expected_frame():
    got = normalized(LOG).filter(pl.col("_ok")).select(list(COLUMNS))
    assert_frame_equal(got, expected(EXPECTED, COLUMNS))


def test_total_reported_cost_and_accounting(tmp_path):
    rep = report([LOG], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    assert rep.totals["reported_cost"] == Decimal("1.002105")  # Claude Code's estimate, kept beside
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.quarantined) == (4, 3, 1)  # the user_prompt event is not usage


def test_broken_record_quarantined_with_file_and_line(tmp_path):
    report([LOG], tmp_path)
    assert quarantine_lines(tmp_path) == {("events.jsonl", 3): "negative output_tokens (-5)"}


def test_other_applications_logs_are_not_claude_code(tmp_path):
    log = tmp_path / "app.jsonl"
    doc = json.loads(LOG.read_text().splitlines()[0])
    doc["resourceLogs"][0]["scopeLogs"][0]["scope"]["name"] = "my.app.logger"
    log.write_text(json.dumps(doc) + "\n")
    assert detected(log) != "claude-code-otel"


def test_does_not_claim_other_formats():
    assert [p.name for p in other_fixtures("claude-code-otel") if detected(p) == "claude-code-otel"] == []
