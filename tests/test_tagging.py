"""tagging.py: time buckets, the time unit and price band, the prompt band, cache use."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import Options, analyze, load_price_book, tagging

from .conftest import canonical_frame, write_frame

UTC = dt.UTC
BOOK = load_price_book([])


def _bucket(unit: str, tz: str, *instants: str) -> list[str]:
    ts = pl.Series("timestamp", list(instants)).str.to_datetime(time_zone="UTC", time_unit="us")
    frame = pl.DataFrame({"timestamp": ts}).select(tagging.time_bucket(unit, tz))
    return frame.select(tagging.bucket_label(unit)).to_series().to_list()


# -- time buckets -------------------------------------------------------------------------------------

def test_hour_day_month_year_buckets_in_utc():
    t = "2026-10-01T10:15:59Z"
    assert [_bucket(u, "UTC", t)[0] for u in ("hour", "day", "month", "quarter", "year")] == \
        ["2026-10-01 10:00", "2026-10-01", "2026-10", "2026-Q4", "2026"]


@pytest.mark.parametrize("instant,quarter", [
    ("2026-01-01T00:00:00Z", "2026-Q1"), ("2026-03-31T23:59:59Z", "2026-Q1"), ("2026-04-01T00:00:00Z", "2026-Q2"),
    ("2026-09-30T23:59:59Z", "2026-Q3"), ("2026-10-01T00:00:00Z", "2026-Q4"), ("2026-12-31T23:59:59Z", "2026-Q4")])
def test_quarters_start_in_january_april_july_october(instant, quarter):
    assert _bucket("quarter", "UTC", instant) == [quarter]


def test_quarters_follow_the_time_zone():
    # Los Angeles is UTC-7 on 2026-10-01: 06:59 UTC is still September 30th there, Q3.
    assert _bucket("quarter", "America/Los_Angeles", "2026-10-01T06:59:59Z", "2026-10-01T07:00:00Z") == \
        ["2026-Q3", "2026-Q4"]


def test_weeks_start_on_monday_and_are_labelled_by_it():
    # 2026-09-28 is a Monday; Sunday 2026-10-04 23:59:59 is the same week, Monday 10-05 00:00 the next.
    assert _bucket("week", "UTC", "2026-09-28T00:00:00Z", "2026-10-01T12:00:00Z", "2026-10-04T23:59:59Z",
                   "2026-10-05T00:00:00Z") == ["2026-09-28", "2026-09-28", "2026-09-28", "2026-10-05"]


def test_a_week_spans_the_turn_of_the_year():
    # 2026-12-28 is a Monday: 2027-01-03 (Sunday) is in its week, labelled by the Monday of 2026.
    assert _bucket("week", "UTC", "2027-01-03T12:00:00Z", "2027-01-04T00:00:00Z") == ["2026-12-28", "2027-01-04"]


def test_year_buckets_at_the_turn_of_the_year_and_in_a_time_zone():
    assert _bucket("year", "UTC", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z") == ["2026", "2027"]
    # New York is UTC-5 in winter: 2027-01-01 04:59 UTC is still 2026 there.
    assert _bucket("year", "America/New_York", "2027-01-01T04:59:59Z", "2027-01-01T05:00:00Z") == ["2026", "2027"]


def test_weeks_follow_the_time_zone():
    # Tokyo is UTC+9: Sunday 2026-10-04 15:00 UTC is already Monday 10-05 there.
    assert _bucket("week", "Asia/Tokyo", "2026-10-04T14:59:59Z", "2026-10-04T15:00:00Z") == ["2026-09-28", "2026-10-05"]


def test_hours_across_a_daylight_saving_change():
    # Berlin leaves summer time at 01:00 UTC on 2026-10-25: 00:30 UTC is 02:30 CEST and 01:30 UTC is
    # 02:30 CET, so two UTC hours share the local label 02:00 (one group, as a local clock shows
    # them); 02:30 UTC is 03:30 CET.
    assert _bucket("hour", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z") \
        == ["2026-10-25 02:00", "2026-10-25 02:00", "2026-10-25 03:00"]


def test_day_buckets_follow_the_time_zone(tmp_path):
    """Asia/Kolkata is UTC+5:30: 18:29 UTC is still the same local day, 18:30 UTC is the next."""
    row = {"timestamp": "2026-10-10T10:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 100}
    rows = [dict(row, request_id="a", timestamp="2026-10-10T18:29:59Z"),
            dict(row, request_id="b", timestamp="2026-10-10T18:30:00Z")]
    p = write_frame(canonical_frame(rows), tmp_path / "tz.csv")
    rep = analyze([str(p)], ["day"], Options(tz="Asia/Kolkata", quarantine=str(tmp_path / "q.jsonl")))
    assert rep.rows["day"].to_list() == ["2026-10-10", "2026-10-11"]
    utc = analyze([str(p)], ["day"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert utc.rows["day"].to_list() == ["2026-10-10"]


_instants = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31),
                         timezones=st.just(UTC))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(times=st.lists(_instants, min_size=1, max_size=12), unit=st.sampled_from(["day", "week", "month", "quarter", "year"]))
def test_buckets_derived_after_aggregation_equal_buckets_per_request(tmp_path, times, unit):
    """In UTC, day/week/month/year buckets are derived from each group's UTC day after aggregation
    (tagging.buckets_from_unit); "Etc/UTC" is the same zone but takes the per-request path. Both must
    give the same rows."""
    assert tagging.buckets_from_unit([unit], "UTC", BOOK) and not tagging.buckets_from_unit([unit], "Etc/UTC", BOOK)
    # (Claude 3 Haiku: priced since 2024-03, so every generated request is priced)
    rows = [{"request_id": str(i), "timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "model": "claude-3-haiku-20240307",
             "input_tokens": 1000 + i, "output_tokens": 10} for i, t in enumerate(times)]
    p = write_frame(canonical_frame(rows), tmp_path / "t.csv")
    q = str(tmp_path / "q.jsonl")
    derived = analyze([str(p)], [unit], Options(quarantine=q)).rows
    per_row = analyze([str(p)], [unit], Options(tz="Etc/UTC", quarantine=q)).rows
    assert derived.equals(per_row)
    expected = sorted({_bucket(unit, "UTC", t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))[0] for t in times})
    assert derived[unit].to_list() == expected


# -- time unit, price band, prompt band ---------------------------------------------------------------

def test_the_shipped_book_changes_prices_at_midnight_so_the_unit_is_a_day():
    assert all(t.hour == t.minute == t.second == 0 for t in BOOK.boundaries())
    assert tagging.time_unit_us(BOOK) == 86_400_000_000


def test_an_overlay_changing_a_price_at_an_hour_makes_the_unit_an_hour(tmp_path):
    overlay = tmp_path / "o.toml"
    overlay.write_text('[[model]]\nid = "claude-sonnet-4-5-20250929"\n[[model.period]]\nfrom = 2026-11-01T17:00:00Z\n'
                       'input = 2\ncache_write_5m = 2.5\ncache_write_1h = 4\ncache_read = 0.2\noutput = 10\n')
    book = load_price_book([str(overlay)])
    assert tagging.time_unit_us(book) == 3_600_000_000
    assert not tagging.buckets_from_unit(["day"], "UTC", book)


def test_price_band_is_the_last_change_at_or_before_the_request():
    edges = BOOK.boundaries()
    first, second = edges[0], edges[1]
    unit = tagging.time_unit_us(BOOK)
    epoch = dt.datetime(1970, 1, 1, tzinfo=UTC)
    units = [((t - epoch) // dt.timedelta(microseconds=1)) // unit
             for t in (first - dt.timedelta(days=1), first, second - dt.timedelta(days=1), second)]
    frame = tagging.with_time_band(pl.DataFrame({tagging.TIME_UNIT: units}), BOOK)
    assert frame[tagging.TIME_BAND].to_list() == [-1, 0, 0, 1]


@pytest.mark.parametrize("prompt,band", [(100_000, 0), (100_001, 1), (200_000, 1), (200_001, 2), (272_000, 2),
                                         (272_001, 3)])
def test_prompt_band_counts_thresholds_strictly_exceeded(prompt, band):
    # The shipped books' thresholds: 100K (Haiku 5.5), 200K (Sonnet 4/4.5, Opus/Sonnet 4.6 betas), 272K (OpenAI).
    assert BOOK.thresholds() == [100_000, 200_000, 272_000]
    # The prompt is input + cache writes + cache reads (never output), split across the four here.
    q = prompt // 4
    frame = pl.DataFrame({"input_tokens": [prompt - 3 * q], "cache_write_5m_tokens": [q], "cache_write_1h_tokens": [q],
                          "cache_read_tokens": [q], "output_tokens": [10**9], "requests": [1]})
    assert frame.select(tagging.prompt_band(BOOK)).item() == band
    # A row of several requests sums their prompts: no band (see tests/hostile/test_final_review.py).
    assert frame.with_columns(requests=2).select(tagging.prompt_band(BOOK)).item() == 0


@pytest.mark.parametrize("read,w5,w1,expected", [
    (0, 0, 0, ""), (1, 0, 0, "cache_read"), (0, 1, 0, "cache_write_5m"), (0, 0, 1, "cache_write_1h"),
    (5, 5, 5, "cache_read+cache_write_5m+cache_write_1h")])
def test_cache_use_names_the_cache_operations(read, w5, w1, expected):
    frame = pl.DataFrame({"cache_read_tokens": [read], "cache_write_5m_tokens": [w5], "cache_write_1h_tokens": [w1]})
    assert frame.select(tagging.cache_use()).item() == expected
