"""vertex-logging: Vertex AI request-response logging rows (BigQuery), Claude on Vertex."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl
from polars.testing import assert_frame_equal

from .cloud_helpers import FIXTURES, M, detected, expected, normalized, other_fixtures, priced, quarantine_lines, report

LOG = FIXTURES / "vertex-logging" / "requests.jsonl"
COLUMNS = {"request_id": pl.String, "timestamp": pl.Datetime("us"), "platform": pl.String,
           "endpoint_scope": pl.String, "model_raw": pl.String, "input_tokens": pl.Int64,
           "cache_write_5m_tokens": pl.Int64, "cache_write_1h_tokens": pl.Int64, "cache_read_tokens": pl.Int64,
           "output_tokens": pl.Int64, "web_search_requests": pl.Int64, "project": pl.String, "region": pl.String}


def _row(rid, t, model, region, i, w5, w1, r, o, ws=0):
    return dict(request_id=rid, timestamp=dt.datetime.fromisoformat(t), platform="vertex", endpoint_scope="regional",
                model_raw=model, input_tokens=i, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
                cache_read_tokens=r, output_tokens=o, web_search_requests=ws, project="acme-ml-prod", region=region)


EXPECTED = [
    _row("msg_vrtx_01JkLmNoPqRsTuVwXyZaBcDe", "2026-11-24 10:20:31.482113", "claude-sonnet-4-5-20250929",
         "us-east5", 1312, 0, 0, 0, 286),
    _row("msg_vrtx_011CfckvPAzJNHmSfv4ZAoAF", "2026-11-24 10:21:07.003541", "claude-haiku-4-5-20251001",
         "europe-west1", 14, 50, 0, 900, 4),
    # the response names no model: the row's model@model_version
    _row("msg_vrtx_01OpusWithSearch000000001", "2026-11-24 11:00:00", "claude-opus-4-5@20251101",
         "us-east5", 2000, 0, 4000, 10000, 900, 3),
]
# Logging needs a regional endpoint: x1.1 on 4.5+ models (web search is not multiplied).
R = Decimal("1.1")
COSTS = [
    R * (1312 * 3 + 286 * 15) / M,
    R * (14 * 1 + 50 * Decimal("1.25") + 900 * Decimal("0.1") + 4 * 5) / M,
    R * (2000 * 5 + 4000 * 10 + 10000 * Decimal("0.5") + 900 * 25) / M + 3 * Decimal(10) / 1000,
]


def test_detected_without_dialect():
    assert detected(LOG) == "vertex-logging"


def test_normalizes_to_expected_frame():
    got = normalized(LOG).filter(pl.col("_ok") & pl.col("request_id").str.starts_with("msg_")).select(list(COLUMNS))
    assert_frame_equal(got.head(3), expected(EXPECTED, COLUMNS))


def test_total_is_hand_computed(tmp_path):
    rep = report([LOG], tmp_path)
    assert rep.totals["cost"] == sum(COSTS)
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.quarantined, acc.not_billable) == (5, 3, 1, 1)
    assert acc.balanced


def test_per_request_costs_and_regional_tag(tmp_path):
    rows = priced([LOG], tmp_path).sort("timestamp")
    assert rows["cost"].to_list() == COSTS
    assert rows["discount_type"].to_list() == ["regional"] * 3


def test_broken_row_quarantined_with_file_and_line(tmp_path):
    report([LOG], tmp_path)
    assert quarantine_lines(tmp_path) == {("requests.jsonl", 4): "input_tokens is not a number (1e3x)"}


def test_global_endpoint_is_not_regional(tmp_path):
    rec = json.loads(LOG.read_text().splitlines()[0])
    rec["endpoint"] = rec["endpoint"].replace("/locations/us-east5/", "/locations/global/")
    path = tmp_path / "global.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    row = priced([path], tmp_path)
    assert row.select("endpoint_scope", "discount_type", "region").row(0) == ("global", "standard", "global")
    assert row["cost"].to_list() == [COSTS[0] / R]


def test_bigquery_csv_export_with_json_columns(tmp_path):
    """A BigQuery CSV export holds full_response as JSON text."""
    rows = [json.loads(x) for x in LOG.read_text().splitlines()[:3]]
    df = pl.DataFrame([{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()
                        if k not in ("request_payload", "response_payload")} for r in rows])
    path = tmp_path / "bq_export.csv"
    df.write_csv(path)
    assert detected(path) == "vertex-logging"
    assert report([path], tmp_path).totals["cost"] == sum(COSTS)


def test_does_not_claim_other_formats():
    assert [p.name for p in other_fixtures("vertex-logging") if detected(p) == "vertex-logging"] == []


def test_bigquery_parquet_export(tmp_path):
    """A Parquet export types logging_time as a timestamp and holds the JSON columns as text."""
    rows = [json.loads(x) for x in LOG.read_text().splitlines()[:3]]
    df = pl.DataFrame([{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()
                        if k not in ("request_payload", "response_payload")} for r in rows])
    df = df.with_columns(pl.col("logging_time").str.replace(" UTC", "").str.to_datetime(time_zone="UTC"))
    path = tmp_path / "bq_export.parquet"
    df.write_parquet(path)
    assert detected(path) == "vertex-logging"
    got = normalized(path).select(list(COLUMNS))
    assert_frame_equal(got, expected(EXPECTED, COLUMNS))
    assert report([path], tmp_path).totals["cost"] == sum(COSTS)
