"""litellm-spendlogs: LiteLLM_SpendLogs rows dumped to CSV or Parquet.

prompt_tokens INCLUDES cache reads and writes (the reference rows' `spend` proves it: see
test_spend_confirms_cache_inclusive_prompts). Hand-computed from the published prices (pricing page): Sonnet 4.5 $3 in,
$3.75 5m write, $0.30 read, $15 out; Bedrock geo profiles (us.) are regional endpoints: 1.1x on 4.5+.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from .exports_util import FIXTURES, cost, detect, expected, normalized, quarantined

CSV = FIXTURES / "litellm-spendlogs" / "litellm_spendlogs.csv"
S45 = "claude-sonnet-4-5-20250929"
COLS = ["request_id", "timestamp", "model_raw", "platform", "input_tokens", "cache_write_5m_tokens",
        "cache_write_1h_tokens", "cache_read_tokens", "output_tokens", "reported_cost", "api_key", "user", "team",
        "tags", "session"]
WANT = [
    dict(request_id="chatcmpl-3f1e2d4c-5b6a-4978-8c0d-1e2f3a4b5c6d", timestamp="2026-11-24T10:30:01.120Z",
         model_raw=S45, platform="anthropic", input_tokens=50305 - 48210, cache_write_5m_tokens=48210,
         cache_write_1h_tokens=0, cache_read_tokens=0, output_tokens=503, reported_cost="0.1946175",
         api_key="prod-backend", user="svc-billing", team="billing", tags="nightly-etl", session=None),
    dict(request_id="msg_bdrk_01AbCdEfGhIjKlMnOpQrStUv", timestamp="2026-11-24T10:31:11.002Z",
         model_raw="us.anthropic.claude-sonnet-4-5-20250929-v1:0", platform="bedrock", input_tokens=10212 - 9800,
         cache_write_5m_tokens=0, cache_write_1h_tokens=0, cache_read_tokens=9800, output_tokens=6,
         reported_cost="0.004266", api_key="prod-backend", user="jane.doe@example.com", team="billing", tags=None,
         session="sess-77a1"),
]


def _parquet(tmp_path, timestamps_typed: bool = True, nested: bool = False):
    """The same rows as a Parquet dump: typed columns, startTime a timestamp, metadata as JSON text (or,
    `nested`, the JSON columns as a struct and a list, as some exporters write them)."""
    frame = pl.read_csv(CSV, infer_schema_length=0).with_columns(
        pl.col("spend").cast(pl.Float64), pl.col("prompt_tokens", "completion_tokens", "total_tokens").cast(pl.Int64))
    if timestamps_typed:
        frame = frame.with_columns(pl.col("startTime").str.to_datetime("%Y-%m-%d %H:%M:%S%.f%#z", time_zone="UTC"))
    if nested:
        meta = pl.Series([json.loads(m) for m in frame["metadata"]])  # the struct type inferred from every row
        frame = frame.with_columns(meta.alias("metadata"), pl.col("request_tags").str.json_decode(pl.List(pl.String)))
    path = tmp_path / "spendlogs.parquet"
    frame.write_parquet(path)
    return path


def test_detected(tmp_path):
    assert detect(CSV) == detect(_parquet(tmp_path)) == "litellm-spendlogs"


def test_normalizes_csv():
    got = normalized(CSV)
    assert_frame_equal(got.select(COLS), expected(WANT, dims=("api_key", "user", "team", "tags", "session")))


@pytest.mark.parametrize("typed,nested", [(True, False), (False, False), (True, True)])
def test_parquet_equals_csv(tmp_path, typed, nested):
    got = normalized(_parquet(tmp_path, typed, nested)).select(COLS)
    assert_frame_equal(got, normalized(CSV).select(COLS))


def test_spend_confirms_cache_inclusive_prompts():
    """LiteLLM's own spend equals the cost of (prompt - cache) uncached tokens plus the cache classes:
    row 1: 2,095 x $3 + 48,210 x $3.75 + 503 x $15 = $0.1946175 (per 1M); had prompt_tokens excluded
    the cache, uncached input would be 50,305 tokens and spend $0.3391."""
    total, report = cost([CSV], dialect="litellm-spendlogs")
    rows = normalized(CSV)
    assert rows["reported_cost"][0] == D("0.1946175")
    assert report.totals["reported_cost"] == D("0.1946175") + D("0.004266")


def test_total_by_hand():
    # row 1 anthropic: 2,095 x $3 + 48,210 x $3.75 + 503 x $15 (per 1M)        = 0.1946175
    # row 2 bedrock us. profile, regional 1.1x: (412 x $3 + 9,800 x $0.30 + 6 x $15) / 1M x 1.1 = 0.0046926
    #   (LiteLLM's spend, $0.004266, leaves the regional premium out)
    # row 3: a LiteLLM response-cache hit (no provider call); row 4: a failed request: not billable
    total, report = cost([CSV])
    assert total == D("0.1993101")
    acc = report.accounting
    assert acc.priced == 2 and acc.rows_read == 4 and acc.balanced and acc.quarantined == 0


def test_not_billable_rows_are_counted_with_reasons():
    _, report = cost([CSV])
    text = json.dumps(report.accounting.as_dict())
    assert "response cache" in text and "request failed" in text


def test_request_id_is_the_dedupe_key(tmp_path):
    """A dump taken twice (overlapping nights) counts each request once."""
    lines = CSV.read_text().splitlines()
    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join([*lines, *lines[1:]]) + "\n")
    total, report = cost([twice])
    acc = report.accounting
    # the billable copies are duplicates; the not-billable rows (cache hit, failure) stay not billable
    assert total == D("0.1993101") and (acc.duplicates, acc.not_billable, acc.rows_read) == (2, 4, 8)


def test_cache_over_prompt_is_quarantined_with_file_and_line(tmp_path, quarantine):
    """A LiteLLM version whose prompt_tokens excluded the cache would show cache > prompt on cached
    rows: quarantined, never priced with a negative input."""
    lines = CSV.read_text().splitlines()
    lines[2] = lines[2].replace(",10218,10212,6,", ",10218,412,6,")  # line 3: prompt 412 < 9,800 cache read
    path = tmp_path / "spendlogs.csv"
    path.write_text("\n".join(lines) + "\n")
    total, report = cost([path], quarantine=quarantine)
    assert total == D("0.1946175") and report.accounting.quarantined == 1
    [bad] = quarantined(quarantine)
    assert (bad["file"], bad["line"]) == (str(path), 3)
    assert "cache tokens exceed input" in bad["reason"]


def test_by_team_and_tags():
    from analyzer.pipeline import analyze

    report = analyze([str(CSV)], by=["team", "tags"])
    rows = {(r["team"], r["tags"]): r["cost"] for r in report.rows.to_dicts()}
    assert rows == {("billing", "nightly-etl"): D("0.1946175"), ("billing", None): D("0.0046926")}


def test_boolean_cache_hit_column(tmp_path):
    """`cache_hit` is text in the table ("True"/"False"/""); a Parquet export may make it a boolean."""
    frame = pl.read_csv(CSV, infer_schema_length=0).with_columns((pl.col("cache_hit") == "True").alias("cache_hit"))
    path = tmp_path / "spendlogs.parquet"
    frame.write_parquet(path)
    total, report = cost([path])
    assert total == D("0.1993101") and report.accounting.not_billable == 2
