"""anthropic-batch: Message Batches results; only succeeded lines bill, all at batch rates."""

from __future__ import annotations

import os
from decimal import Decimal

from analyzer import analyze, dialects
from analyzer.pipeline import Options, read_logs
from analyzer.sources import open_source
from tests.conftest import ROOT

RESULTS = str(ROOT / "fixtures" / "dialects" / "anthropic-batch" / "results.jsonl")


def test_detected():
    assert dialects.detect(open_source(RESULTS)).name == "anthropic-batch"


def test_only_succeeded_lines_bill_at_batch_rates():
    rep = analyze([RESULTS], ["model", "service_tier"], Options(batch_time="2026-11-20T10:00:00Z"))
    (row,) = rep.rows.to_dicts()
    assert (row["model"], row["service_tier"], row["requests"]) == ("claude-sonnet-4-5-20250929", "batch", 2)
    # Sonnet 4.5 at half price: input 1.5, cache read 0.15, output 7.5 $/MTok
    by_hand = (1180 * Decimal("1.5") + 6 * Decimal("7.5")
               + 342 * Decimal("1.5") + 9876 * Decimal("0.15") + 5 * Decimal("7.5")) / 10**6
    assert rep.totals["cost"] == by_hand == Decimal("0.0038469")
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.not_billable, acc.quarantined) == (5, 2, 3, 0) and acc.balanced
    assert acc.not_billable_reasons == {"batch request canceled": 1, "batch request errored": 1,
                                        "batch request expired": 1}


def test_time_from_batch_time_or_file_mtime_is_stated(tmp_path):
    rep = analyze([RESULTS], ["day"], Options(batch_time="2026-11-20T10:00:00Z"))
    assert rep.rows["day"].to_list() == ["2026-11-20"]
    assert any("--batch-time" in n for n in rep.notes)
    copy = tmp_path / "results.jsonl"
    copy.write_bytes(open(RESULTS, "rb").read())
    os.utime(copy, (1_790_000_000, 1_790_000_000))  # 2026-09-21T13:33:20Z
    rep = analyze([str(copy)], ["day"])
    assert rep.rows["day"].to_list() == ["2026-09-21"]
    assert any("modification time" in n for n in rep.notes)


def test_tier_is_batch_even_when_usage_does_not_say_so(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(open(RESULTS).read().replace('"service_tier":"batch"', '"service_tier":null'))
    rows = read_logs([str(path)], Options(batch_time="2026-11-20")).frame.collect()
    assert set(rows["service_tier"].to_list()) == {"batch"}


def test_bad_batch_time_is_one_clear_error():
    import pytest

    from analyzer.errors import OptionError

    with pytest.raises(OptionError, match="--batch-time 'yesterday'"):
        analyze([RESULTS], ["model"], Options(batch_time="yesterday"))
