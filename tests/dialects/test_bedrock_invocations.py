"""bedrock-invocations: AWS Bedrock model invocation logs (CloudWatch Logs / S3, gzip)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from .cloud_helpers import FIXTURES, M, detected, expected, normalized, other_fixtures, priced, quarantine_lines, report

LOG = FIXTURES / "bedrock-invocations" / "invocations.jsonl"
APP = "arn:aws:sts::123456789012:assumed-role/app-backend-role/i-0abc123def456"
JANE = "arn:aws:sts::123456789012:assumed-role/data-team/jane.doe"
DEV = "arn:aws:sts::123456789012:assumed-role/claude-code-users/dev42"
RUNNER = "arn:aws:iam::123456789012:user/batch-runner"
COLUMNS = {"request_id": pl.String, "timestamp": pl.Datetime("us"), "platform": pl.String,
           "endpoint_scope": pl.String, "model_raw": pl.String, "input_tokens": pl.Int64,
           "cache_write_5m_tokens": pl.Int64, "cache_write_1h_tokens": pl.Int64, "cache_read_tokens": pl.Int64,
           "output_tokens": pl.Int64, "identity": pl.String, "team": pl.String, "costCentre": pl.String,
           "project": pl.String, "_ok": pl.Boolean}


def _row(rid, t, scope, model, i, w5, w1, r, o, identity, ok=True, **dims):
    return dict(request_id=rid, timestamp=dt.datetime.fromisoformat(t), platform="bedrock", endpoint_scope=scope,
                model_raw=model, input_tokens=i, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
                cache_read_tokens=r, output_tokens=o, identity=identity, _ok=ok, **dims)


EXPECTED = [
    _row("6f1c2a9e-3b7d-4e8a-9c0f-1a2b3c4d5e6f", "2026-11-24 10:15:02", "regional",
         "anthropic.claude-sonnet-4-5-20250929-v1:0", 412, 0, 0, 9800, 6, APP),
    _row("b2e4d6f8-0a1c-4e3b-8d5f-7a9c1e3b5d7f", "2026-11-24 10:16:40", "regional",
         "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
         48210, 0, 0, 0, 733, JANE, team="data", costCentre="CC-1234"),
    _row("0c9b8a7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d", "2026-11-24 10:17:55", "global",
         "arn:aws:bedrock:us-west-2:123456789012:inference-profile/global.anthropic.claude-opus-4-5-20251101-v1:0",
         3, 2210, 0, 95500, 418, DEV),
    # a stream whose counts are only in its last chunk's amazon-bedrock-invocationMetrics
    _row("7d3e1f20-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "2026-11-24 11:02:13", "regional",
         "eu.anthropic.claude-haiku-4-5-20251001-v1:0", 120, 1000, 0, 0, 80, APP, team="support"),
    # Converse cacheDetails split the 3000 cache-write tokens: 2000 1h, the rest 5m
    _row("c4d5e6f7-0809-4a1b-8c2d-3e4f5a6b7c8d", "2026-11-24 11:30:00", "regional",
         "au.anthropic.claude-sonnet-4-5-20250929-v1:0", 500, 1000, 2000, 0, 100, JANE, team="data",
         project="contracts"),
    _row("e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b", "2026-11-24 12:00:00", "regional",
         "apac.anthropic.claude-3-5-sonnet-20241022-v2:0", 1000, 0, 0, 0, 200, RUNNER),
    _row("f0e1d2c3-b4a5-4968-8776-655443322110", "2026-11-24 12:05:00", "regional",
         "anthropic.claude-sonnet-4-5-20250929-v1:0", 0, 0, 0, 0, 5, RUNNER, ok=False),
    _row("0a0b0c0d-1e1f-4a2b-9c3d-4e5f6a7b8c9d", "2026-11-24 12:10:00", None,
         "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6", 10, 0, 0, 0, 10, APP),
]

# Hand-computed, $/MTok: Sonnet 4.5 3/3.75/6/0.30/15, Haiku 4.5 1/1.25/2/0.10/5, Opus 4.5 5/6.25/10/0.50/25,
# Claude 3.5 Sonnet v2 3/.../15 (no regional premium: before 4.5). Regional endpoints x1.1 from 4.5 on.
R = Decimal("1.1")
COSTS = [
    R * (412 * 3 + Decimal("9800") * Decimal("0.3") + 6 * 15) / M,        # base id in-region: regional
    R * (48210 * 3 + 733 * 15) / M,                                       # us. profile: regional
    (3 * 5 + 2210 * Decimal("6.25") + 95500 * Decimal("0.5") + 418 * 25) / M,  # global.: 1P price
    R * (120 * 1 + 1000 * Decimal("1.25") + 80 * 5) / M,                  # eu. profile
    R * (500 * 3 + 1000 * Decimal("3.75") + 2000 * 6 + 100 * 15) / M,     # au. profile, 1h split
    (1000 * 3 + 200 * 15) / M,                                            # apac. profile, pre-4.5 model
]


def test_detected_without_dialect():
    assert detected(LOG) == "bedrock-invocations"  # its first three records are the reference example


def test_normalizes_to_expected_frame():
    got = normalized(LOG).select(list(COLUMNS))
    want = expected(EXPECTED, COLUMNS)
    ok = pl.col("_ok")
    assert_frame_equal(got.filter(ok), want.filter(ok))
    assert got["_ok"].to_list() == want["_ok"].to_list()


def test_total_is_hand_computed(tmp_path):
    rep = report([LOG], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.unpriced, acc.quarantined) == (8, 6, 1, 1)
    assert acc.balanced
    assert "application-inference-profile ARN does not name a model" in " ".join(acc.unpriced_reasons.values())


def test_broken_record_quarantined_with_file_and_line(tmp_path):
    report([LOG], tmp_path)
    assert quarantine_lines(tmp_path) == {("invocations.jsonl", 7): "input_tokens is not a number (twelve)"}


def test_regional_profiles_pay_the_premium_global_does_not(tmp_path):
    rows = priced([LOG], tmp_path).sort("timestamp")
    tags = dict(zip(rows["request_id"].to_list(), rows["discount_type"].to_list()))
    assert tags["6f1c2a9e-3b7d-4e8a-9c0f-1a2b3c4d5e6f"] == "regional"  # in-region base model id
    assert tags["b2e4d6f8-0a1c-4e3b-8d5f-7a9c1e3b5d7f"] == "regional"  # us. profile ARN
    assert tags["0c9b8a7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"] == "standard"  # global. profile
    assert tags["e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"] == "standard"  # apac. profile, but a pre-4.5 model
    assert rows.filter(pl.col("model").is_not_null())["cost"].to_list() == COSTS


def test_unsplit_cache_write_is_5m():
    """input.cacheWriteInputTokenCount has no TTL: priced as 5m (the stream record: 2210 written)."""
    row = normalized(LOG).filter(pl.col("request_id") == "0c9b8a7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d")
    assert row.select("cache_write_5m_tokens", "cache_write_1h_tokens").row(0) == (2210, 0)


def test_request_metadata_and_caller_are_dimensions(tmp_path):
    rep = report([LOG], tmp_path, by=("team",))
    teams = dict(zip(rep.rows["team"].to_list(), rep.rows["requests"].to_list()))
    assert teams == {"data": 2, "support": 1, None: 3}  # priced requests; the unpriced one is counted apart
    rep = report([LOG], tmp_path, by=("identity",))
    assert set(rep.rows["identity"].to_list()) == {APP, JANE, DEV, RUNNER}


def test_s3_delivery_gzipped_json_lines(tmp_path):
    """S3 delivers gzipped JSON Lines named *.json.gz under AWSLogs/<account>/BedrockModelInvocationLogs/."""
    d = tmp_path / "AWSLogs" / "123456789012" / "BedrockModelInvocationLogs" / "us-east-1" / "2026" / "11" / "24" / "10"
    d.mkdir(parents=True)
    (d / "20261124T1015Z_0a1b2c.json.gz").write_bytes(gzip.compress(LOG.read_bytes()))
    rep = report([tmp_path / "AWSLogs"], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    assert rep.dialects == {str(d / "20261124T1015Z_0a1b2c.json.gz"): "bedrock-invocations"}


def test_duplicate_delivery_counted_once(tmp_path):
    """The same record delivered twice (CloudWatch and S3 exports of one stream) is billed once."""
    first = json.loads(LOG.read_text().splitlines()[0])
    log = tmp_path / "dup.jsonl"
    log.write_text(json.dumps(first) + "\n" + json.dumps(first) + "\n")
    rep = report([log], tmp_path)
    assert rep.totals["cost"] == COSTS[0]
    assert rep.accounting.duplicates == 1


def test_does_not_claim_other_formats():
    assert [p.name for p in other_fixtures("bedrock-invocations") if detected(p) == "bedrock-invocations"] == []


def test_truncated_last_line_is_quarantined_and_the_rest_priced(tmp_path):
    """A log cut mid-write (a crashed shipper) loses only its broken line."""
    lines = LOG.read_text().splitlines()
    log = tmp_path / "cut.jsonl"
    log.write_text("\n".join(lines[:6]) + "\n" + lines[0][: len(lines[0]) // 2] + "\n")
    rep = report([log], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    lines = quarantine_lines(tmp_path)
    assert list(lines) == [("cut.jsonl", 7)] and lines["cut.jsonl", 7].startswith("not a JSON object (unparsable line)")


# --- exported from CloudWatch Logs (bedrock-cloudwatch) ---------------------------------------------
CW = FIXTURES / "bedrock-cloudwatch"


def test_cloudwatch_exports_detected():
    assert detected(CW / "filter-log-events.json") == "bedrock-cloudwatch"  # aws logs filter-log-events
    assert detected(CW / "events.jsonl") == "bedrock-cloudwatch"  # one log event per line


def test_cloudwatch_filter_log_events_document_reads_like_the_records(tmp_path):
    got = normalized(CW / "filter-log-events.json").select(list(COLUMNS))
    assert_frame_equal(got, expected(EXPECTED[:6], COLUMNS))
    assert report([CW / "filter-log-events.json"], tmp_path).totals["cost"] == sum(COSTS)


def test_cloudwatch_event_lines_same_total_accounting_and_quarantine(tmp_path):
    rep = report([CW / "events.jsonl"], tmp_path, by=("team",))
    assert rep.totals["cost"] == sum(COSTS)
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.unpriced, acc.quarantined) == (8, 6, 1, 1)
    assert quarantine_lines(tmp_path) == {("events.jsonl", 7): "input_tokens is not a number (twelve)"}
    assert set(rep.rows["team"].to_list()) == {"data", "support", None}


def test_cloudwatch_empty_page_and_non_record_message(tmp_path):
    """An empty page of events is not usage; an event whose message is not a record is unreadable."""
    log = tmp_path / "pages.jsonl"
    page = json.loads((CW / "filter-log-events.json").read_text())
    log.write_text(json.dumps({"events": [], "searchedLogStreams": []}) + "\n" + json.dumps(page) + "\n"
                   + json.dumps({"events": [{"timestamp": 1, "message": "START RequestId: 42"}]}) + "\n")
    rep = report([log], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    assert rep.accounting.quarantined == 1
    assert list(quarantine_lines(tmp_path)) == [("pages.jsonl", 3)]


def test_record_and_event_files_mix_and_dedupe(tmp_path):
    """The same requests delivered to S3 and exported from CloudWatch are billed once."""
    rep = report([LOG, CW / "events.jsonl"], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    assert rep.accounting.duplicates == 7  # every record with a request id, the quarantined one aside


@pytest.mark.parametrize("model_id,scope,tag", [
    ("anthropic.claude-haiku-4-5-20251001-v1:0", "regional", "regional"),  # in-region
    ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "regional", "regional"),
    ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "regional", "regional"),
    ("apac.anthropic.claude-haiku-4-5-20251001-v1:0", "regional", "regional"),
    ("jp.anthropic.claude-haiku-4-5-20251001-v1:0", "regional", "regional"),
    ("au.anthropic.claude-haiku-4-5-20251001-v1:0", "regional", "regional"),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "global", "standard"),
    ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0", "regional", "regional"),
    ("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-haiku-4-5-20251001-v1:0",
     "regional", "regional"),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-haiku-4-5-20251001-v1:0",
     "global", "standard"),
    ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "regional", "standard"),  # no premium before 4.5
])
def test_every_model_id_form_prices_with_its_endpoint(tmp_path, model_id, scope, tag):
    rec = json.loads(LOG.read_text().splitlines()[5])  # 1000 input, 200 output, no cache
    rec["modelId"] = model_id
    log = tmp_path / "one.jsonl"
    log.write_text(json.dumps(rec) + "\n")
    row = priced([log], tmp_path)
    assert row.select("endpoint_scope", "discount_type").row(0) == (scope, tag)
    haiku_45 = "4-5" in model_id
    rates = (1, 5) if haiku_45 else (Decimal("0.8"), 4)
    want = (1000 * rates[0] + 200 * rates[1]) / M * (Decimal("1.1") if tag == "regional" else 1)
    assert row["cost"].to_list() == [want]


# --- Logs Insights: `aws logs get-query-results` (issue 21.5) --------------------------------------
# The output shape is the CLI's documented one (docs.aws.amazon.com/cli/latest/reference/logs/
# get-query-results.html: results = rows of {field, value}, the log event in @message, plus @ptr);
# the rows carry the events of filter-log-events.json, as `fields @timestamp, @message` returns them.
INSIGHTS = CW / "get-query-results.json"


def _insights(rows) -> dict:
    return {"results": rows, "statistics": {"recordsMatched": float(len(rows))}, "status": "Complete"}


def _insights_row(message: str, *extra: tuple[str, str]) -> list[dict]:
    return [{"field": "@timestamp", "value": "2026-11-24 10:15:02.000"}, *({"field": f, "value": v} for f, v in extra),
            {"field": "@message", "value": message}, {"field": "@ptr", "value": "CmAKJwoj"}]


def test_logs_insights_results_detected_and_read_like_the_records(tmp_path):
    assert detected(INSIGHTS) == "bedrock-cloudwatch"
    got = normalized(INSIGHTS).select(list(COLUMNS))
    assert_frame_equal(got, expected(EXPECTED[:6], COLUMNS))
    rep = report([INSIGHTS], tmp_path)
    assert rep.totals["cost"] == sum(COSTS) and rep.accounting.rows_read == 6
    assert report([INSIGHTS], tmp_path, dialect="bedrock-cloudwatch").totals["cost"] == sum(COSTS)


def test_logs_insights_pages_as_lines_rows_without_message_and_broken_message(tmp_path):
    """Pages saved one per line; a row that does not select @message holds no record; a message cut
    by CloudWatch's event size limit is quarantined (the rest priced)."""
    events = json.loads((CW / "filter-log-events.json").read_text())["events"]
    first = _insights([_insights_row(events[0]["message"]), [{"field": "modelId", "value": "x"}]])
    second = _insights([_insights_row(e["message"]) for e in events[1:6]] + [_insights_row(events[0]["message"][:90])])
    log = tmp_path / "insights.jsonl"
    log.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    rep = report([log], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    assert (rep.accounting.rows_read, rep.accounting.quarantined) == (7, 1)
    assert list(quarantine_lines(tmp_path)) == [("insights.jsonl", 2)]


def test_logs_insights_duplicate_of_s3_delivery_counted_once(tmp_path):
    rep = report([LOG, INSIGHTS], tmp_path)
    assert rep.totals["cost"] == sum(COSTS) and rep.accounting.duplicates == 6
