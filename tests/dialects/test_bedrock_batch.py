"""bedrock-batch: AWS Bedrock batch inference output (`*.jsonl.out`)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from decimal import Decimal

import polars as pl
from polars.testing import assert_frame_equal

from .cloud_helpers import FIXTURES, M, detected, expected, normalized, other_fixtures, quarantine_lines, report

DIR = FIXTURES / "bedrock-batch"
OUT = DIR / "tickets.jsonl.out"
WHEN = dt.datetime(2026, 11, 24, 18, 30, tzinfo=dt.UTC)
COLUMNS = {"request_id": pl.String, "timestamp": pl.Datetime("us"), "platform": pl.String,
           "endpoint_scope": pl.String, "service_tier": pl.String, "model_raw": pl.String, "input_tokens": pl.Int64,
           "cache_write_5m_tokens": pl.Int64, "cache_write_1h_tokens": pl.Int64, "cache_read_tokens": pl.Int64,
           "output_tokens": pl.Int64}
HAIKU = "claude-haiku-4-5-20251001"


def _row(rid, i, w5, w1, r, o):
    return dict(request_id=rid, timestamp=WHEN.replace(tzinfo=None), platform="bedrock", endpoint_scope="regional",
                service_tier="batch", model_raw=HAIKU, input_tokens=i, cache_write_5m_tokens=w5,
                cache_write_1h_tokens=w1, cache_read_tokens=r, output_tokens=o)


EXPECTED = [
    _row("msg_bdrk_01Batch0000000000000001", 21, 0, 0, 0, 4),
    _row("msg_bdrk_01Batch0000000000000002", 22, 0, 0, 0, 4),
    _row("msg_bdrk_01Batch0000000000000004", 30, 0, 2000, 500, 50),  # the whole cache write is 1h
]
# Haiku 4.5 $/MTok 1 / 1.25 / 2 / 0.10 / 5; batch x0.5; an in-region job is a regional endpoint: x1.1.
K = Decimal("0.5") * Decimal("1.1")
COSTS = [K * (21 + 4 * 5) / M, K * (22 + 4 * 5) / M, K * (30 + 2000 * 2 + 500 * Decimal("0.1") + 50 * 5) / M]


def _copy(tmp_path):
    """The fixture with a known modification time (batch output has no timestamps: the file's time is used)."""
    d = tmp_path / "job-7x9"
    d.mkdir()
    for f in DIR.iterdir():
        shutil.copy(f, d / f.name)
    os.utime(d / OUT.name, (WHEN.timestamp(), WHEN.timestamp()))
    return d


def test_detected_without_dialect():
    assert detected(OUT) == "bedrock-batch"


def test_normalizes_to_expected_frame(tmp_path):
    got = normalized(_copy(tmp_path) / OUT.name)
    assert_frame_equal(got.filter(pl.col("_ok")).select(list(COLUMNS)), expected(EXPECTED, COLUMNS))


def test_total_is_hand_computed_and_error_records_are_not_billable(tmp_path):
    rep = report([_copy(tmp_path)], tmp_path)  # the directory: its manifest.json.out is not read
    assert rep.totals["cost"] == sum(COSTS)
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.quarantined) == (5, 3, 1)
    assert acc.not_billable == 1
    assert acc.balanced
    assert list(rep.dialects.values()) == ["bedrock-batch"]


def test_times_come_from_the_file_and_the_report_says_so(tmp_path):
    rep = report([_copy(tmp_path)], tmp_path, by=("day",))
    assert rep.rows["day"].to_list() == ["2026-11-24"]
    assert any("time" in n and OUT.name in n for n in rep.notes)


def test_broken_record_quarantined_with_file_and_line(tmp_path):
    report([_copy(tmp_path)], tmp_path)
    assert quarantine_lines(tmp_path) == {(OUT.name, 5): "negative output_tokens (-3)"}


def test_does_not_claim_other_formats():
    assert [p.name for p in other_fixtures("bedrock-batch") if detected(p) == "bedrock-batch"] == []


def test_batch_time_dates_the_records(tmp_path):
    rep = report([_copy(tmp_path)], tmp_path, by=("day",), batch_time="2026-11-20T08:00:00Z")
    assert rep.rows["day"].to_list() == ["2026-11-20"]
    assert any("--batch-time" in n for n in rep.notes)
    assert rep.totals["cost"] == sum(COSTS)
