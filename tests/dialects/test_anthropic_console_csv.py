"""anthropic-console-csv: the Console usage export (CSV with a BOM, `≤ 200k` labels, pre-aggregated).

Hand-computed costs from the published prices (platform.claude.com pricing page): Sonnet 4.5 $3 in, $3.75 5m write, $6 1h write, $0.30 read,
$15 out (until 2026-04-29 also the >200K tier: $6, $7.50, $12, $0.60, $22.50); Haiku 4.5 $1, $1.25,
$2, $0.10, $5; Opus 4.6 $5, $6.25, $10, $0.50, $25 (fast mode ended 2026-06-28); batch 0.5x; web search
$10 per 1,000.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analyzer.dialects import _parse

from .exports_util import FIXTURES, cost, detect, expected, normalized, quarantined

HERE = FIXTURES / "anthropic-console-csv"
CURRENT = HERE / "console_usage_export.csv"
OLD = HERE / "console_usage_export_2025.csv"
S45, H45 = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
COLS = ["timestamp", "model_raw", "platform", "service_tier", "context_window", "inference_geo", "speed",
        "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens",
        "web_search_requests", "api_key", "workspace"]


@pytest.mark.parametrize("path", [CURRENT, OLD])
def test_detected(path):
    assert detect(path) == "anthropic-console-csv"


def test_current_export_normalizes():
    rows = [
        ("2026-11-23", S45, "standard", "global", "standard", 1250000, 400000, 100000, 8000000, 300000, 120,
         "prod-backend", "Default"),
        ("2026-11-23", H45, "standard", "not_available", "standard", 46981, 15969, 0, 812004, 16932, 0,
         "claude_code_key_jdoe_x7qa", "Claude Code"),
        ("2026-11-23", "claude-opus-4-6", "standard", "global", "fast", 109911, 2528, 0, 0, 34988, 0,
         "prod-backend", "Default"),
        ("2026-11-24", S45, "batch", "global", "standard", 2400000, 0, 0, 0, 1000000, 0, "nightly-etl", "Batch Jobs"),
    ]
    want = expected([dict(zip(COLS, (f"{d}T00:00:00Z", m, "anthropic", tier, "0-200k", geo, speed, *rest)))
                     for d, m, tier, geo, speed, *rest in rows], dims=("api_key", "workspace"))
    assert_frame_equal(normalized(CURRENT).select(COLS), want)


def test_current_export_total_by_hand():
    # Sonnet 4.5: 1.25M x $3 + 0.4M x $3.75 + 0.1M x $6 + 8M x $0.30 + 0.3M x $15 + 120 x $0.01 = 13.95
    # Haiku 4.5:  46,981 x $1 + 15,969 x $1.25 + 812,004 x $0.10 + 16,932 x $5 (per 1M)       =  0.23280265
    # Opus 4.6 "fast" in Nov 2026 (fast mode ended 2026-06-28): 109,911 x $5 + 2,528 x $6.25 + 34,988 x $25
    #                                                                                         =  1.440055
    # Sonnet 4.5 batch: (2.4M x $3 + 1M x $15) x 0.5                                          = 11.10
    total, report = cost([CURRENT])
    assert total == D("26.72285765")
    assert report.accounting.priced == 4 and report.accounting.balanced


def test_old_export_single_cache_write_column_is_5m():
    """Dec 2025 exports: one `usage_input_tokens_cache_write` column (5m, the only TTL then), other column
    order, no inference_geo/speed, and a `> 200k` row priced at the long-context rates of the time."""
    got = normalized(OLD)
    assert got["cache_write_5m_tokens"].to_list() == [120000, 0, 8000]
    assert got["cache_write_1h_tokens"].to_list() == [0, 0, 0]
    assert got["context_window"].to_list() == ["0-200k", "200k-1m", "0-200k"]
    # ≤ 200k:  0.9M x $3 + 0.12M x $3.75 + 4M x $0.30 + 0.21M x $15 + 15 x $0.01 = 7.65
    # > 200k:  0.4M x $6 + 1M x $0.60 + 20,000 x $22.50 / 1M                    = 3.45
    # Haiku:   30,000 x $1 + 8,000 x $1.25 + 0.5M x $0.10 + 9,000 x $5 (per 1M)  = 0.135
    total, _ = cost([OLD])
    assert total == D("11.235")


def test_bom_and_unicode_label_are_read(tmp_path):
    """The export starts with a UTF-8 BOM and labels the window with U+2264; without the BOM (a
    re-saved file) it reads the same."""
    assert CURRENT.read_bytes().startswith(b"\xef\xbb\xbf")
    plain = tmp_path / "no_bom.csv"
    plain.write_bytes(CURRENT.read_bytes()[3:])
    assert_frame_equal(normalized(plain).select(COLS), normalized(CURRENT).select(COLS))


def test_rows_are_not_requests():
    """A row sums a day of traffic; the export gives no request count: unknown, not 1 per row."""
    assert normalized(CURRENT)["requests"].is_null().all()
    _, report = cost([CURRENT])
    assert report.totals["requests"] == 0 and any("no request count" in n for n in report.notes)


def test_row_without_context_window_is_base_tier_and_noted(tmp_path):
    """Dec 2025, Sonnet 4.5 (which then had a >200K tier): a row with no window label is priced at the
    base tier (a lower bound), whatever its summed tokens, and the report says so."""
    lines = OLD.read_text(encoding="utf-8-sig").splitlines()
    lines[2] = lines[2].replace(",> 200k,", ",,")
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n")
    total, report = cost([path])
    # 0.4M x $3 + 1M x $0.30 + 20,000 x $15 / 1M = 1.80 instead of 3.45
    assert total == D("11.235") - D("3.45") + D("1.80")
    assert any("not grouped by context window" in n for n in report.notes)


def test_broken_row_is_quarantined_with_file_and_line(tmp_path, quarantine):
    lines = CURRENT.read_text(encoding="utf-8-sig").splitlines()
    lines[3] = lines[3].replace(",34988,", ",-34988,")  # line 4 of the file: the Opus row
    path = tmp_path / "export.csv"
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    total, report = cost([path], quarantine=quarantine)
    assert report.accounting.quarantined == 1
    assert total == D("26.72285765") - D("1.440055")
    [bad] = quarantined(quarantine)
    assert (bad["file"], bad["line"]) == (str(path), 4)
    assert "negative output_tokens" in bad["reason"]


def test_unknown_usage_type_is_quarantined(tmp_path, quarantine):
    lines = CURRENT.read_text(encoding="utf-8-sig").splitlines()
    lines[1] = lines[1].replace(",message,", ",mystery,")
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n")
    _, report = cost([path], quarantine=quarantine)
    assert report.accounting.quarantined == 1
    assert "unknown service_tier (mystery)" in quarantined(quarantine)[0]["reason"]


HOURLY = HERE / "console_usage_export_hourly.csv"


def test_hourly_export_is_read_at_its_hour():
    """Issue 21.1: the hourly (and per-minute) grain writes `2026-03-31 02:00`: minutes, no seconds, no
    zone. Naive means UTC; every row was quarantined as an unparsable timestamp before."""
    assert detect(HOURLY) == "anthropic-console-csv"
    got = normalized(HOURLY)
    assert got["timestamp"].dt.to_string("%Y-%m-%dT%H:%M:%S%z").to_list() == [
        "2026-03-31T02:00:00+0000", "2026-03-31T03:00:00+0000"]
    # Sonnet 4.5: 0.1M x $3 + 20,000 x $3.75 + 0.5M x $0.30 + 10,000 x $15 (per 1M) = 0.675
    # Haiku 4.5:  0.2M x $1 + 40,000 x $5 (per 1M)                                   = 0.40
    total, report = cost([HOURLY])
    assert total == D("1.075")
    assert report.accounting.priced == 2 and report.accounting.quarantined == 0


@pytest.mark.parametrize("stamp", ["2026-03-31 02:00", "2026-03-31T02:00", "2026-03-31 02:00:00",
                                   "2026-03-31T02:00:00Z", "2026-03-31 02:00:00+00:00"])
def test_every_console_grain_and_time_form_reads_the_same_instant(tmp_path, stamp):
    text = HOURLY.read_text(encoding="utf-8-sig").replace("2026-03-31 02:00", stamp)
    path = tmp_path / "export.csv"
    path.write_text(text)
    assert normalized(path)["timestamp"][0].isoformat() == "2026-03-31T02:00:00+00:00"


@pytest.mark.parametrize("stamp", ["2026-03-31 2:00pm", "2026-03-31 25:00", "2026-03-31 02"])
def test_malformed_hour_is_still_quarantined(tmp_path, quarantine, stamp):
    text = HOURLY.read_text(encoding="utf-8-sig").replace("2026-03-31 02:00", stamp)
    path = tmp_path / "export.csv"
    path.write_text(text)
    total, report = cost([path], quarantine=quarantine)
    assert report.accounting.quarantined == 1 and total == D("0.40")
    assert "unparsable timestamp" in quarantined(quarantine)[0]["reason"]


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2199, 12, 31)),
       st.sampled_from(["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]))
def test_any_minute_time_without_zone_is_that_utc_minute(when, fmt):
    """The rule behind the hourly grain: a naive minute time is that minute in UTC, never shifted."""
    field = _parse.timestamp("raw", "timestamp", pl.String)
    got = _parse.frame(pl.LazyFrame({"raw": [when.strftime(fmt)]}), [field], {}, {}).collect()
    assert got["_ok"][0]
    assert got["timestamp"][0] == when.replace(second=0, microsecond=0, tzinfo=dt.UTC)
