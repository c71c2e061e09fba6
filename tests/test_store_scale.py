"""The store at scale: a night's work does not grow with the history (issue 18).

What the nightly ingest reads of the store is bounded by the night itself: the repeat check opens
only the data files whose logged time range is within a day of the night's days, and the Delta
log is replayed from a checkpoint written every CHECKPOINT_EVERY versions."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import hypothesis.strategies as hs
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings

from analyzer import pipeline, store

from .test_store import json_report, log, req

EACH = Decimal("0.0045")  # one request of 1,000 input and 100 output tokens of Sonnet 4.5 ($3 / $15 per MTok)


def _ingest(tmp_path, name, rows, st):
    return store.ingest([str(log(tmp_path / "in" / f"{name}.csv", rows))], str(st)).files[0]


def _spoil(st, month):
    """Turn every data file of a month into garbage: opening one is then an error."""
    d = st / f"_llm_month={month}"
    for f in d.iterdir():
        f.write_bytes(b"garbage")


def test_a_night_reads_only_the_data_files_within_a_day_of_its_own_days(tmp_path):
    st = tmp_path / "store"
    _ingest(tmp_path, "oct01", [req("a", "2026-10-01")], st)
    _ingest(tmp_path, "oct20", [req("b", "2026-10-20")], st)
    _ingest(tmp_path, "oct31", [req("c", "2026-10-31")], st)
    # Were the repeat check to open them, these files would fail it: it must not (they are weeks away).
    far = _files_of(st, "2026-10-01") | _files_of(st, "2026-10-20")
    assert len(far) == 2
    before = {p.name: p.read_bytes() for p in (st / "_llm_month=2026-10").iterdir()}
    for name in far:
        (st / "_llm_month=2026-10" / name).write_bytes(b"garbage")
    # c again, stamped a day later by another exporter (across the month's end): a repeat.
    night = _ingest(tmp_path, "nov01", [req("c", "2026-11-01"), req("d", "2026-11-01")], st)
    assert (night.accounting.duplicates, night.stored) == (1, 1)
    for name, data in before.items():  # put them back: the report reads every month
        (st / "_llm_month=2026-10" / name).write_bytes(data)
    rep = store.report(str(st), ["model"])
    assert rep.totals["requests"] == 4 and rep.totals["cost"] == 4 * EACH and rep.accounting.balanced


def _files_of(st, day: str) -> set[str]:
    """Names of the data files holding rows of `day`."""
    t = store._table(str(st))
    out = set()
    for uri in t.file_uris():
        stamps = pq.read_table(uri.removeprefix("file://"), columns=["timestamp"]).column("timestamp").to_pylist()
        if any(s.date().isoformat() == day for s in stamps):
            out.add(os.path.basename(uri))
    return out


def test_an_id_stored_weeks_away_from_the_night_is_another_request(tmp_path):
    # The stated rule: a copy counts as a repeat when stamped within a day of the night's rows.
    st = tmp_path / "store"
    _ingest(tmp_path, "oct01", [req("a", "2026-10-01"), req("b", "2026-10-09")], st)
    night = _ingest(tmp_path, "oct10", [req("a", "2026-10-10"), req("b", "2026-10-10")], st)
    assert (night.accounting.duplicates, night.stored) == (1, 1)  # b (a day apart) repeats; a (9 days) does not
    assert store.report(str(st), ["model"]).totals["cost"] == 3 * EACH


def test_a_night_whose_months_hold_only_far_away_files_opens_none(tmp_path):
    st = tmp_path / "store"
    _ingest(tmp_path, "oct01", [req("a", "2026-10-01")], st)
    _spoil(st, "2026-10")  # the only file of the month: weeks before the night
    night = _ingest(tmp_path, "oct25", [req("a", "2026-10-25"), req("e", "2026-10-25")], st)
    assert (night.accounting.duplicates, night.stored) == (0, 2)


@settings(max_examples=40, deadline=None)
@given(hs.lists(hs.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)), min_size=1, max_size=12))
def test_repeat_windows_cover_each_day_and_one_either_side_and_nothing_more(days):
    spans = store._repeat_windows(days)
    assert all(a < b for a, b in spans) and all(b1 < a2 for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False))

    def covered(t):
        return any(a <= t < b for a, b in spans)

    for d in days:
        start = dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)
        for hours in (-24, 0, 23, 47):
            try:
                t = start + dt.timedelta(hours=hours)
            except OverflowError:
                continue
            assert covered(t), (d, hours, spans)
    near = {d + dt.timedelta(days=k) for d in days for k in (-1, 0, 1) if dt.date(1, 1, 2) <= d <= dt.date(9999, 12, 30)}
    for a, b in spans:  # every day a span holds is a day of the night or next to one
        day = a.date()
        while day < b.date() and day < dt.date(9999, 12, 31):
            assert day in near or not any(dt.date(1, 1, 2) <= d <= dt.date(9999, 12, 30) for d in days), (day, days)
            day += dt.timedelta(days=1)
    assert store._span_months(spans) >= {d.strftime("%Y-%m") for d in days if d.year >= 1000}


def test_a_checkpoint_every_n_versions_and_the_table_opens_from_it(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "CHECKPOINT_EVERY", 3)
    st = tmp_path / "store"
    for n in range(7):
        _ingest(tmp_path, f"n{n}", [req(f"r{n}", f"2026-10-{10 + n}"), req(f"r{n - 1}", f"2026-10-{10 + n}")], st)
    names = set(os.listdir(st / "_delta_log"))
    assert {f"{v:020d}.checkpoint.parquet" for v in (3, 6)} <= names
    assert not any(n.startswith(f"{v:020d}.checkpoint") for v in (1, 2, 4, 5) for n in names)
    assert any(n.endswith(".checkpoint.parquet") for n in os.listdir(st / "_llm_cost" / "files" / "_delta_log"))
    before = json_report(st)
    # Opening the latest version needs only the checkpoint and the commits after it: the commits
    # before it can go (Delta's log cleanup would remove them) and the report is the same.
    for v in range(6):
        os.rename(st / "_delta_log" / f"{v:020d}.json", tmp_path / f"{v}.json")
    assert store._table(str(st)).version() == 6
    assert json_report(st) == before
    rep = store.report(str(st), ["model"])
    assert rep.totals["requests"] == 8 and rep.totals["cost"] == 8 * EACH and rep.accounting.duplicates == 6  # r-1, r0..r6


def test_compact_writes_row_groups_a_time_filter_can_skip(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "ROW_GROUP", 4)
    st = tmp_path / "store"
    for n in range(3):
        _ingest(tmp_path, f"n{n}", [req(f"r{n}-{i}", f"2026-10-1{n}") for i in range(5)], st)
    before = json_report(st)
    store.compact(str(st), retention_days=0)
    (part,) = (st / "_llm_month=2026-10").iterdir()
    meta = pq.ParquetFile(part).metadata
    assert meta.num_rows == 15 and max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) <= 4
    assert json_report(st) == before
    rep = store.report(str(st), ["model"], pipeline.Options(since="2026-10-11", until="2026-10-11"))  # (a whole day)
    assert rep.totals["cost"] == 5 * EACH


# (the first and last days every --tz can show: outside them a timestamp is quarantined)
@pytest.mark.parametrize("day", ["0999-12-31", "9999-12-30", "0001-01-02"])
def test_a_night_at_the_ends_of_the_calendar_checks_its_repeats(tmp_path, day):
    st = tmp_path / "store"
    _ingest(tmp_path, "a", [req("a", day)], st)
    night = _ingest(tmp_path, "b", [req("a", day), req("b", day)], st)
    assert (night.accounting.duplicates, night.stored) == (1, 1)


@pytest.mark.parametrize("name", ["a%41b", "x%2Fy", "%20"])
def test_a_store_path_holding_a_url_escape_is_refused_in_one_line_before_anything_is_written(tmp_path, name):
    # delta-rs read such a store's first commit (and its checkpoints) at the decoded path: "damaged".
    st = tmp_path / name
    src = log(tmp_path / "in" / "a.csv", [req("a")])
    from click.testing import CliRunner

    from analyzer.cli import main

    r = CliRunner().invoke(main, ["ingest", str(src), "--store", str(st)])
    assert r.exit_code == 2 and "cannot hold '%' followed by two hex digits" in r.output
    assert "Traceback" not in r.output and not st.exists()


def test_a_store_path_with_a_plain_percent_or_space_works(tmp_path):
    st = tmp_path / "50% off store"
    night = _ingest(tmp_path, "a", [req("a"), req("b")], st)
    assert night.stored == 2 and store.report(str(st), ["model"]).totals["cost"] == 2 * EACH


def test_a_night_out_of_time_order_lands_each_row_in_its_month_file_with_its_time_range(tmp_path):
    st = tmp_path / "store"
    days = ["2026-11-03", "2026-09-30", "2026-11-01", "2026-10-15", "2026-09-01", "2026-10-31"]
    _ingest(tmp_path, "mixed", [req(f"r{i}", d) for i, d in enumerate(days)], st)
    adds = store.status(str(st))
    assert adds["months"] == {"2026-09": 2, "2026-10": 2, "2026-11": 2} and adds["consistent"]
    t = store._table(str(st))
    import polars as pl

    a = pl.DataFrame(t.get_add_actions(flatten=True)).sort("partition._llm_month")
    assert a["num_records"].to_list() == [2, 2, 2]
    assert [x.date().isoformat() for x in a["min.timestamp"]] == ["2026-09-01", "2026-10-15", "2026-11-01"]
    assert [x.date().isoformat() for x in a["max.timestamp"]] == ["2026-09-30", "2026-10-31", "2026-11-03"]
    for uri in t.file_uris():  # each file holds only its month's rows
        month = uri.split("_llm_month=")[1][:7]
        stamps = pq.read_table(uri, columns=["timestamp"]).column("timestamp").to_pylist()
        assert {s.strftime("%Y-%m") for s in stamps} == {month}
    assert store.report(str(st), ["model"]).totals["cost"] == 6 * EACH
